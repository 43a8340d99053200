"""The public API of regjax as the docs see it, and the reference pages written from it.

One piece of code serves both ``conf.py`` (which writes ``docs/api/*.rst`` before Sphinx
reads the sources) and ``check_coverage.py`` (which checks the built site against the
same list), so the pages and the check cannot disagree about what is public.

What is public:

- a module is public when no part of its dotted name starts with ``_`` (``regjax.prox``,
  ``regjax.nn.gates``, ``regjax.experiment.sweeps``); modules are found by walking the
  package, so a new module gets a page without editing the docs;
- its public names are its ``__all__``; a module without ``__all__`` is documented by
  the public names it defines itself (and ``check_coverage.py --require-all`` refuses it);
- every object is documented once, at its *home*: the public module that defines it, or,
  when it is defined in a private module (``regjax._proxgen.prox_adam``), the most
  specific public module whose ``__all__`` lists it (``regjax.optimizers``). Every other
  module that lists it links there, so re-exports make no duplicate descriptions.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import types
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "regjax"
# Not modules a user imports: `python -m regjax` is the command line.
SKIP_MODULES = {"regjax.__main__"}
_PRIMITIVES = (str, bytes, int, float, complex, bool, type(None))


@dataclasses.dataclass(frozen=True)
class Entry:
  """One public name of one public module, and where that object is documented."""

  module: str  # the module whose __all__ (or public definitions) list the name
  name: str  # the name in that module
  kind: str  # "module", "class", "exception", "function" or "data"
  home: str  # the fully qualified name under which the object is documented

  @property
  def is_home(self) -> bool:
    return self.home == f"{self.module}.{self.name}"


def public_modules() -> list[str]:
  """Every public module of the package, parents before children."""
  root = importlib.import_module(PACKAGE)
  names = [PACKAGE]
  for info in pkgutil.walk_packages(root.__path__, prefix=PACKAGE + "."):
    if info.name in SKIP_MODULES or any(p.startswith("_") for p in info.name.split(".")):
      continue
    names.append(info.name)
  return sorted(names, key=lambda n: (n.count("."), n))


def has_all(module_name: str) -> bool:
  return hasattr(importlib.import_module(module_name), "__all__")


def exported_names(module_name: str) -> list[str]:
  """The module's ``__all__``, or the public names it defines itself when it has none."""
  module = importlib.import_module(module_name)
  if hasattr(module, "__all__"):
    return list(module.__all__)
  names = []
  for name, value in vars(module).items():
    if name.startswith("_") or isinstance(value, types.ModuleType):
      continue
    if getattr(value, "__module__", None) == module_name:
      names.append(name)
  return sorted(names)


def resolve(module_name: str, name: str) -> object:
  """The object behind ``module.name``, loading lazy names (a deprecated one warns)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    return getattr(importlib.import_module(module_name), name)


def kind_of(value: object) -> str:
  if isinstance(value, types.ModuleType):
    return "module"
  if inspect.isclass(value) and not value.__module__.startswith(f"{PACKAGE}.") and (
      value.__module__ != PACKAGE):
    return "data"  # another project's type, exported as an alias (`PRNGKey = jax.Array`)
  if inspect.isclass(value):
    return "exception" if issubclass(value, BaseException) else "class"
  if inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.ismethod(value):
    return "function"
  return "data"


def _same(a: object, b: object) -> bool:
  if isinstance(a, _PRIMITIVES) or isinstance(b, _PRIMITIVES):
    return False  # equal constants in two modules are two things, each documented where it is
  return a is b


def entries() -> list[Entry]:
  """Every (public module, exported name), with the home where its object is documented."""
  modules = public_modules()
  exported = {m: exported_names(m) for m in modules}
  values = {(m, n): resolve(m, n) for m in modules for n in exported[m]}
  result = []
  for (module, name), value in values.items():
    kind = kind_of(value)
    if kind == "module":
      result.append(Entry(module, name, kind, value.__name__))
      continue
    # Data (constants, type aliases) is one thing per name: `Params` and `PyTree` may
    # both stand for `typing.Any`, yet each is documented under its own name.
    listed = [key for key, other in values.items() if _same(value, other)
              and (kind != "data" or key[1] == name)] or [(module, name)]
    defined_in = getattr(value, "__module__", None)
    own_name = getattr(value, "__name__", None)
    if kind != "data" and (defined_in, own_name) in listed:
      home = (defined_in, own_name)
    else:
      # The most specific public module that lists it (regjax.optimizers over regjax).
      home = min(listed, key=lambda key: (-key[0].count("."), key[0], key[1]))
    result.append(Entry(module, name, kind, f"{home[0]}.{home[1]}"))
  return result


def is_type_alias(value: object) -> bool:
  """Whether ``value`` is what a module-level ``Name: TypeAlias = ...`` binds: a typing
  construct (``int | None``, ``Callable[...]``, ``Any``) or a class (``jax.Array``)."""
  return (value is typing.Any or inspect.isclass(value)
          or isinstance(value, (types.UnionType, types.GenericAlias))
          or typing.get_origin(value) is not None)


def type_aliases(all_entries: list[Entry]) -> dict[str, str]:
  """Every exported type alias's name -> its home (``"Strength"`` ->
  ``"regjax.typing.Strength"``), for Sphinx's ``autodoc_type_aliases``.

  Raises:
    ValueError: two aliases of one name live in two places (signatures would be ambiguous).
  """
  found: dict[str, str] = {}
  for e in all_entries:
    if e.kind == "data" and e.is_home and is_type_alias(resolve(e.module, e.name)):
      if found.setdefault(e.name, e.home) != e.home:
        raise ValueError(f"Type alias `{e.name}` is defined twice: {found[e.name]} and "
                         f"{e.home}; rename one.")
  return found


def missing_docstrings(all_entries: list[Entry]) -> Iterator[str]:
  """The homes of exported objects that have no docstring of their own."""
  from sphinx.pycode import ModuleAnalyzer

  seen = set()
  for entry in all_entries:
    if entry.home in seen:
      continue
    seen.add(entry.home)
    module_name, _, name = entry.home.rpartition(".")
    value = importlib.import_module(entry.home) if entry.kind == "module" else resolve(
        module_name, name)
    if entry.kind == "data":
      # A constant or alias is documented by a string (or `#:` comment) after it, or, an
      # instance of a regjax class, by that class's docstring (what autodoc shows then).
      attr_docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
      own_class = type(value).__module__.startswith(PACKAGE + ".") and inspect.getdoc(value)
      if not any(line.strip() for line in attr_docs.get(("", name), [])) and not own_class:
        yield entry.home
    elif not (inspect.getdoc(value) or "").strip() or (
        entry.kind in ("class", "exception") and value.__doc__ is None):
      yield entry.home


def _autosummary(names: list[str], toctree: bool) -> list[str]:
  lines = [".. autosummary::"]
  if toctree:
    lines.append("   :toctree: generated")
  lines.append("   :nosignatures:")
  lines.append("")
  lines += [f"   {n}" for n in names]
  return lines + [""]


def module_page(module_name: str, module_entries: list[Entry]) -> str:
  """The reST of one module's reference page."""
  own = [e for e in module_entries if e.is_home and e.kind != "module"]
  submodules = [e for e in module_entries if e.kind == "module"]
  elsewhere = [e for e in module_entries if not e.is_home and e.kind != "module"]
  lines = [module_name, "=" * len(module_name), "", f".. automodule:: {module_name}", "",
           f".. currentmodule:: {module_name}", ""]
  for kinds, title in ((("class", "exception"), "Classes"), (("function",), "Functions"),
                       (("data",), "Constants and aliases")):
    names = [e.name for e in own if e.kind in kinds]
    if names:
      lines += [title, "-" * len(title), ""] + _autosummary(names, toctree=True)
  if submodules:
    # autosummary wants names under the current module written relative to it.
    names = [e.home.removeprefix(module_name + ".") for e in submodules]
    lines += ["Modules", "-------", ""] + _autosummary(names, toctree=False)
  if elsewhere:
    title = "Also available here"
    lines += [title, "-" * len(title), "",
              f"Documented at their home; reachable as ``{module_name}.NAME``.", ""]
    lines += [".. list-table::", "   :widths: 30 70", ""]
    for e in elsewhere:
      home_module = e.home.rpartition(".")[0]
      lines += [f"   * - ``{e.name}``",
                f"     - :{_role(e.kind)}:`~{e.home}` (from :mod:`{home_module}`)"]
    lines.append("")
  return "\n".join(lines)


def _role(kind: str) -> str:
  return {"class": "class", "exception": "exc", "function": "func", "data": "data",
          "module": "mod"}[kind]


def write_pages(out_dir: Path) -> list[str]:
  """Writes ``index.rst`` and one page per public module; returns the module names."""
  all_entries = entries()
  modules = public_modules()
  out_dir.mkdir(parents=True, exist_ok=True)
  pages = {}
  for module in modules:
    pages[f"{module}.rst"] = module_page(module, [e for e in all_entries if e.module == module])
  index = ["API reference", "=============", "",
           "One page per public module, generated from the docstrings and each module's",
           "``__all__`` when the site is built. Every object is described once, on the page",
           "of the module that defines it; the others link there.", "",
           ".. toctree::", "   :maxdepth: 1", ""] + [f"   {m}" for m in modules]
  pages["index.rst"] = "\n".join(index) + "\n"
  for name, text in pages.items():
    path = out_dir / name
    if not path.exists() or path.read_text() != text:  # unchanged pages keep their mtime
      path.write_text(text)
  for stale in out_dir.glob("*.rst"):
    if stale.name not in pages:
      stale.unlink()
  # autosummary writes a page per documented object into generated/; drop the pages of
  # objects that are no longer public, which would otherwise be orphans (a warning).
  stubs = {f"{e.home}.rst" for e in all_entries if e.is_home and e.kind != "module"}
  for stale in (out_dir / "generated").glob("*.rst"):
    if stale.name not in stubs:
      stale.unlink()
  return modules


def alias_targets(all_entries: list[Entry]) -> dict[str, str]:
  """Every public dotted name that is not a home (``regjax.sweep``), mapped to its home.

  Docstrings name objects as users reach them (``regjax.sweep``, ``regjax.models.MLP``);
  ``conf.py`` resolves such references to the one page where the object is described.
  """
  aliases = {}
  for e in all_entries:
    if not e.is_home:
      aliases[f"{e.module}.{e.name}"] = e.home
  return aliases
