"""The standard every public module of regjax keeps (issue 19), checked statically.

A *public module* is one whose dotted name has no part starting with ``_``. Each one

1. defines ``__all__``, and every public top-level ``def``, ``class`` or assignment in it is
   in ``__all__`` (or renamed with a leading ``_``);
2. documents everything its ``__all__`` names: a function or class has a docstring with an
   ``Examples:`` section holding a ``>>>`` doctest (``pytest --doctest-modules`` runs it),
   a constant or type alias has an attribute docstring (the string literal after it);
3. lists no deprecated name in ``__all__`` (deprecated names stay reachable, with a
   ``DeprecationWarning``, but are not offered);
4. types no parameter of an exported function or class ``Any``: what users pass is named
   by a :mod:`regjax.typing` alias (or a precise type).

A name's documentation is judged where it is defined (``def``/``class``/assignment, found
by following ``from ... import`` statements, including the ``TYPE_CHECKING`` imports of the
lazily loaded names): a re-export lacking an example is excused only while its defining
module is pending. Rules 1 and 3 are the exporting module's own; 2 and 4 follow the definition.

Run ``python tests/test_api_standard.py`` for the inventory of what each pending module
still lacks (rule breaks, parameters typed ``Any``, mypy errors).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import regjax

ROOT = Path(regjax.__file__).parent
REPO = ROOT.parent

# Modules not yet brought to the standard. Empty since issue 19 brought every module to it:
# never add one (a new module meets the standard when it lands). While it held entries,
# test_pending_modules_still_fail_the_standard made it shrink; private modules could
# appear because they define names that public modules re-export (e.g. `regjax._proxgen`
# defines `prox_adam`).
PENDING: frozenset[str] = frozenset()

_EXAMPLES = re.compile(r"^\s*Examples?:\s*$(.*)", re.MULTILINE | re.DOTALL)
_WARNINGS_OF_DEPRECATION = {"DeprecationWarning", "FutureWarning", "PendingDeprecationWarning"}


# ------------------------------------------------------------------------ source model


# Source text standing in for a module file (the checker's own test uses it).
_PROBES: dict[str, str] = {}


def _module_path(module: str) -> Path | None:
  if module in _PROBES:
    return Path(module)
  if module.split(".")[0] != "regjax":
    return None
  parts = module.split(".")[1:]
  package = ROOT.joinpath(*parts, "__init__.py")
  if package.exists():
    return package
  file = ROOT.joinpath(*parts[:-1], f"{parts[-1]}.py") if parts else None
  return file if file is not None and file.exists() else None


def public_modules() -> list[str]:
  """Every public module of the package, from the files (nothing is imported)."""
  names = []
  for path in sorted(ROOT.rglob("*.py")):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    if not any(part.startswith("_") for part in parts):
      names.append(".".join(parts))
  return names


@functools.cache
def _tree(module: str) -> ast.Module:
  if module in _PROBES:
    return ast.parse(_PROBES[module])
  path = _module_path(module)
  assert path is not None, module
  return ast.parse(path.read_text(), filename=str(path))


def _top_level(body: list[ast.stmt]) -> list[tuple[ast.stmt, ast.stmt | None]]:
  """Module-level statements (through ``if``/``try`` blocks), each with its successor."""
  out: list[tuple[ast.stmt, ast.stmt | None]] = []
  for i, stmt in enumerate(body):
    following = body[i + 1] if i + 1 < len(body) else None
    out.append((stmt, following))
    if isinstance(stmt, ast.If):
      out += _top_level(stmt.body) + _top_level(stmt.orelse)
    elif isinstance(stmt, ast.Try):
      out += _top_level(stmt.body) + _top_level(stmt.orelse) + _top_level(stmt.finalbody)
      for handler in stmt.handlers:
        out += _top_level(handler.body)
  return out


def _assigned_names(stmt: ast.stmt) -> list[str]:
  if isinstance(stmt, ast.Assign):  # `a = ...`, `a = b = ...`, `a, b = ...`
    targets = [e for t in stmt.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return [t.id for t in targets if isinstance(t, ast.Name)]
  if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
    return [stmt.target.id]
  return []


def _source_module(module: str, node: ast.ImportFrom) -> str:
  if not node.level:
    return node.module or ""
  base = module.split(".")
  if _module_path(module) is None or not str(_module_path(module)).endswith("__init__.py"):
    base = base[:-1]
  base = base[: len(base) - node.level + 1]
  return ".".join(base + ([node.module] if node.module else []))


@dataclasses.dataclass(frozen=True)
class Definition:
  """Where a name is bound: a ``def``/``class``, an assignment, or a module."""

  module: str  # the defining module
  name: str
  kind: str  # "function", "class", "data", "module" or "external"
  node: ast.AST | None = None
  docstring: str | None = None


def _imported_module(module: str, name: str) -> str | None:
  """The module that ``name`` (a plain ``import x`` alias or module attribute) denotes."""
  for stmt, _ in _top_level(_tree(module).body):
    if isinstance(stmt, ast.ImportFrom):
      source = _source_module(module, stmt)
      for alias in stmt.names:
        if (alias.asname or alias.name) == name and _module_path(f"{source}.{alias.name}"):
          return f"{source}.{alias.name}"
    if isinstance(stmt, ast.Import):
      for alias in stmt.names:
        if (alias.asname or alias.name) == name:
          return alias.name
  return None


def definition(module: str, name: str, depth: int = 0) -> Definition | None:
  """The last binding of ``name`` at the top level of ``module``, followed to its source."""
  if depth > 10 or _module_path(module) is None:
    return Definition(module, name, "external")
  found: Definition | None = None
  for stmt, following in _top_level(_tree(module).body):
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      if stmt.name == name:
        kind = "class" if isinstance(stmt, ast.ClassDef) else "function"
        found = Definition(module, name, kind, stmt, ast.get_docstring(stmt))
    elif name in _assigned_names(stmt):
      # `name = other` or `name = module.other` re-binds a function or class of regjax
      # (judged where it is defined); anything else is data, documented right here.
      value = stmt.value  # type: ignore[attr-defined]
      if isinstance(value, ast.Tuple):  # `a, b = x, y`: judged as data here
        value = None
      target = None
      if isinstance(value, ast.Name) and value.id != name:
        target = definition(module, value.id, depth + 1)
      elif isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
        source = _imported_module(module, value.value.id)
        target = definition(source, value.attr, depth + 1) if source else None
      if target is not None and target.kind in ("function", "class"):
        found = target
      else:
        doc = None
        if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)):
          doc = following.value.value
        found = Definition(module, name, "data", stmt, doc)
    elif isinstance(stmt, ast.ImportFrom):
      source = _source_module(module, stmt)
      for alias in stmt.names:
        if (alias.asname or alias.name) != name:
          continue
        if _module_path(f"{source}.{alias.name}") is not None:
          found = Definition(f"{source}.{alias.name}", name, "module")
        elif source.split(".")[0] == "regjax":
          found = definition(source, alias.name, depth + 1)
        else:
          found = Definition(source, name, "external")
  return found


def _always_warns_of_deprecation(function: ast.AST) -> bool:
  """A statement of the body itself (not under an ``if``: that deprecates an argument)
  issues a DeprecationWarning (or Future-, PendingDeprecation-)."""
  return any(isinstance(stmt, ast.Expr) and any(
      isinstance(n, ast.Name) and n.id in _WARNINGS_OF_DEPRECATION for n in ast.walk(stmt))
      for stmt in getattr(function, "body", []))


def is_deprecated(found: Definition) -> bool:
  """Deprecated: a ``@deprecated`` decorator, a warning on every call, or a docstring that
  opens with "Deprecated"."""
  node = found.node
  if found.kind in ("function", "class") and node is not None:
    if any("deprecated" in ast.unparse(d) for d in getattr(node, "decorator_list", [])):
      return True
    if isinstance(node, ast.ClassDef):
      node = next((n for n in node.body if isinstance(n, ast.FunctionDef)
                   and n.name == "__init__"), None)
    if node is not None and _always_warns_of_deprecation(node):
      return True
  return bool(found.docstring) and found.docstring.lstrip().lower().startswith("deprecated")


def _any_parameters(found: Definition) -> list[str]:
  node = found.node
  if isinstance(node, ast.ClassDef):
    node = next((n for n in node.body if isinstance(n, ast.FunctionDef)
                 and n.name == "__init__"), None)
  if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
    return []
  arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
  return [a.arg for a in arguments if a.annotation is not None
          and re.search(r"\bAny\b", ast.unparse(a.annotation))]


def _has_runnable_example(docstring: str | None) -> bool:
  match = _EXAMPLES.search(docstring or "")
  return match is not None and ">>>" in match.group(1)


# ---------------------------------------------------------------------- the violations


@dataclasses.dataclass(frozen=True)
class Violation:
  module: str  # the module whose __all__ (or body) breaks the rule
  defined_in: str  # where the name is defined; the same module for module-level rules
  name: str
  rule: str

  def __str__(self) -> str:
    where = "" if self.defined_in == self.module else f" (defined in {self.defined_in})"
    return f"{self.module}.{self.name}{where}: {self.rule}"


def _exported_names(module: str) -> list[str] | None:
  for stmt, _ in _top_level(_tree(module).body):
    if "__all__" in _assigned_names(stmt):
      return list(ast.literal_eval(stmt.value))  # type: ignore[attr-defined]
  return None


def module_violations(module: str) -> list[Violation]:
  """Every break of the standard by one public module."""
  out: list[Violation] = []

  def fail(name: str, rule: str, defined_in: str = module) -> None:
    out.append(Violation(module, defined_in, name, rule))

  public = []
  for stmt, _ in _top_level(_tree(module).body):
    names = _assigned_names(stmt)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      names = [stmt.name]
    public += [name for name in names if not name.startswith("_")]
  exported = _exported_names(module)
  if exported is None:
    fail("__all__", "no __all__")
    exported = public  # judge the rest as if everything public were exported
  for name in public:
    if name not in exported:
      fail(name, "public top-level name not in __all__ (export it or prefix it with _)")
  deprecated = set(getattr(importlib.import_module(module), "_DEPRECATED", {}))
  for name in exported:
    found = definition(module, name)
    if found is None:
      fail(name, "in __all__ but not bound in the module")
      continue
    if name in deprecated or is_deprecated(found):
      fail(name, "deprecated, yet in __all__")  # the exporting module's fault, pending or not
    if found.kind in ("function", "class") and not _has_runnable_example(found.docstring):
      fail(name, "docstring has no `Examples:` section with a >>> doctest", found.module)
    elif found.kind == "data" and not found.docstring:
      fail(name, "no attribute docstring (a string literal right after the assignment)",
           found.module)
    if _any_parameters(found):
      fail(name, f"parameters typed Any (use regjax.typing): {', '.join(_any_parameters(found))}",
           found.module)
  return out


@functools.cache
def all_violations() -> tuple[Violation, ...]:
  return tuple(v for module in public_modules() for v in module_violations(module))


def _excused(violation: Violation) -> bool:
  return violation.module in PENDING or violation.defined_in in PENDING


# -------------------------------------------------------------------------- the tests


def test_public_modules_are_found():
  modules = public_modules()
  assert {"regjax", "regjax.prox", "regjax.typing", "regjax.nn.gates",
          "regjax.experiment.sweeps"} <= set(modules)
  assert not any(part.startswith("_") for m in modules for part in m.split("."))


def test_every_public_module_keeps_the_standard():
  broken = [str(v) for v in all_violations() if not _excused(v)]
  assert not broken, "the API standard is broken (see this file's docstring):\n" + "\n".join(
      broken)


def test_pending_modules_still_fail_the_standard():
  # PENDING only shrinks: an entry that now passes must go, and every entry is a module.
  failing = {v.module for v in all_violations()} | {v.defined_in for v in all_violations()}
  assert all(_module_path(m) is not None for m in PENDING)
  assert not sorted(PENDING - failing), "these modules pass now: remove them from PENDING"


def test_every_exported_name_exists_at_runtime():
  for module in public_modules():
    imported = importlib.import_module(module)
    for name in getattr(imported, "__all__", ()):
      assert hasattr(imported, name), f"{module}.__all__ names {name!r}, which is missing"


def test_the_standard_catches_each_kind_of_break(monkeypatch):
  # The checker itself, on the source of a made-up module.
  module = "regjax.nn.standard_probe"
  monkeypatch.setitem(_PROBES, module, textwrap.dedent('''
      """A probe."""
      import warnings
      from typing import Any
      __all__ = ["documented", "undocumented", "old", "loose", "renamed_argument", "CONSTANT"]
      CONSTANT = 1
      def documented():
        """Doc.

        Examples:
          >>> documented()
        """
      def undocumented():
        """Doc without an example."""
      def old():
        """Old."""
        warnings.warn("old", DeprecationWarning)
      def renamed_argument(new=None, old=None):
        """A deprecated argument does not deprecate the function.

        Examples:
          >>> renamed_argument(1)
        """
        if old is not None:
          warnings.warn("old is new", DeprecationWarning)
      def stray():
        """Public, but not exported."""
      def loose(x: int, strength: Any, *, mask: dict[str, Any] | None = None):
        """Doc.

        Examples:
          >>> loose(1, 2)
        """
  '''))
  monkeypatch.setitem(sys.modules, module, type(sys)(module))
  try:
    rules = {(v.name, v.rule.split(" ")[0]) for v in module_violations(module)}
  finally:
    _tree.cache_clear()
  assert rules == {("undocumented", "docstring"), ("old", "deprecated,"), ("old", "docstring"),
                   ("stray", "public"), ("CONSTANT", "no"), ("loose", "parameters")}


def test_deprecated_name_warns_on_access_and_is_not_offered():
  assert "preconditioned_proximal" not in regjax.__all__
  assert "preconditioned_proximal" not in dir(regjax)
  with pytest.warns(DeprecationWarning, match=r"regjax\.preconditioned_proximal.*prox_adam"):
    old = regjax.preconditioned_proximal
  from regjax import _proxgen, transforms
  assert old is _proxgen.preconditioned_proximal
  # Nor is it offered by regjax.transforms, where it was defined: the same object, a warning.
  assert "preconditioned_proximal" not in transforms.__all__
  assert "preconditioned_proximal" not in dir(transforms)
  with pytest.warns(DeprecationWarning, match=r"regjax\.transforms\.preconditioned_proximal"):
    assert transforms.preconditioned_proximal is old
  with pytest.warns(DeprecationWarning):  # every access warns: the name is never cached
    regjax.preconditioned_proximal  # noqa: B018
  assert "preconditioned_proximal" not in vars(regjax)
  with pytest.warns(DeprecationWarning):
    from regjax import preconditioned_proximal  # noqa: F401


def test_every_deprecated_name_warns_on_each_access_and_still_works():
  # Every module's `_DEPRECATED` table (served by regjax._lazy): the name is not offered,
  # each access warns with what to use instead, and it is the object it always was.
  found = []
  for module_name in public_modules():
    module = importlib.import_module(module_name)
    for old, (source, attribute, instead) in getattr(module, "_DEPRECATED", {}).items():
      found.append(f"{module_name}.{old}")
      assert old not in module.__all__ and old not in dir(module)
      message = rf"{re.escape(module_name)}\.{old} is deprecated: use {re.escape(instead)}"
      for _ in range(2):  # never cached in the module, so every access warns
        with pytest.warns(DeprecationWarning, match=message):
          value = getattr(module, old)
      assert old not in vars(module)
      assert value is getattr(importlib.import_module(source), attribute)
  assert {"regjax.preconditioned_proximal", "regjax.transforms.preconditioned_proximal",
          "regjax.transforms.DEFAULT_MASK",
          "regjax.experiment.checkpoint.resumable_sweep"} <= set(found)


@pytest.mark.parametrize("package", ["regjax", "regjax.experiment"])
def test_type_checking_imports_are_the_lazy_and_deprecated_names(package):
  # `if TYPE_CHECKING:` in the package's __init__.py must import exactly what __getattr__
  # serves, from the same place, or type checkers and IDEs see a different API than users get.
  block = next(stmt for stmt in _tree(package).body
               if isinstance(stmt, ast.If) and ast.unparse(stmt.test) == "TYPE_CHECKING")
  seen = {}
  for stmt in block.body:
    assert isinstance(stmt, ast.ImportFrom)
    for alias in stmt.names:
      source = f"{stmt.module}.{alias.name}"
      seen[alias.asname or alias.name] = ((source, None) if _module_path(source) is not None
                                          else (stmt.module, alias.name))
  imported = importlib.import_module(package)
  expected = dict(imported._LAZY)
  expected.update({name: (module, attribute) for name, (module, attribute, _)
                   in getattr(imported, "_DEPRECATED", {}).items()})
  assert seen == expected


def _mypy(*args: str, cwd: Path = REPO) -> str:
  result = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True,
                          text=True, check=False)
  return result.stdout + result.stderr


def test_type_checkers_see_the_lazily_loaded_names(tmp_path):
  # With only `__getattr__`, a checker types `regjax.sweep` as Any; the TYPE_CHECKING
  # imports give it the real signature. Uses the project's mypy configuration and cache.
  from regjax import experiment

  names = [f"regjax.{n}" for n in sorted(regjax._LAZY)]
  names += [f"regjax.experiment.{n}" for n in sorted(experiment._LAZY)]
  snippet = tmp_path / "uses_regjax.py"
  snippet.write_text("import regjax\nimport regjax.experiment\n"
                     + "".join(f"reveal_type({n})\n" for n in names)
                     + "regjax.stochastic.dropconnect(0, 1.0, 0.5, 7)\n")
  out = _mypy(str(snippet))
  revealed = re.findall(r"uses_regjax\.py:(\d+): note: Revealed type is \"(.*)\"", out)
  assert len(revealed) == len(names), out
  for line, type_ in revealed:
    assert type_ != "Any", f"{names[int(line) - 3]} is Any to a type checker"
  # A wrong call through a lazy name is caught (it would pass silently if it were Any).
  assert re.search(r"uses_regjax\.py:\d+: error: Too many arguments", out), out


# -------------------------------------------------------------------------- inventory


def mypy_pending() -> list[str]:
  """The modules pyproject.toml's mypy overrides still silence (``ignore_errors``)."""
  import tomllib  # Python 3.11; the inventory is a maintainer's tool

  config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
  return [m for o in config.get("overrides", []) if o.get("ignore_errors") for m in o["module"]]


@functools.cache
def mypy_errors_by_module() -> dict[str, list[str]]:
  """mypy's errors per module over ``regjax/``, as if no module were pending."""
  import tomllib

  config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
  lines = ["[mypy]", f"python_version = {config['python_version']}",
           "warn_unused_ignores = True"]
  for override in config.get("overrides", []):
    if override.get("ignore_missing_imports"):
      lines += [f"[mypy-{','.join(override['module'])}]", "ignore_missing_imports = True"]
  ini = REPO / ".mypy_cache" / "unpending.ini"
  ini.parent.mkdir(exist_ok=True)
  ini.write_text("\n".join(lines) + "\n")
  out = _mypy("--config-file", str(ini), "--cache-dir", str(REPO / ".mypy_cache" / "unpending"),
              "regjax")
  errors: dict[str, list[str]] = {}  # (its own cache: a full run, not part of the tests)
  for match in re.finditer(r"^(regjax/\S+)\.py:\d+: error: (.*)$", out, re.MULTILINE):
    module = match.group(1).replace("/", ".").removesuffix(".__init__")
    errors.setdefault(module, []).append(match.group(2))
  return errors


def inventory() -> str:
  """What each pending module lacks, generated from the checks above and mypy."""
  found: dict[str, dict[str, list[str]]] = {}

  def note(module: str, what: str, item: str) -> None:
    items = found.setdefault(module, {}).setdefault(what, [])
    if item not in items:
      items.append(item)

  labels = {"no": "no __all__", "public": "public but not in __all__",
            "docstring": "no example", "deprecated,": "deprecated in __all__",
            "in": "not bound", "no attribute": "no attribute docstring",
            "parameters": "Any parameters"}
  for v in all_violations():
    if _excused(v):
      key = "no attribute" if v.rule.startswith("no attribute") else v.rule.split(" ")[0]
      owner = v.defined_in if v.defined_in in PENDING else v.module
      item = v.name
      if key == "parameters":
        item = f"{v.name}({v.rule.split(': ')[1]})"
      note(owner, labels[key], item)
  errors = mypy_errors_by_module()
  out = [f"mypy pending in pyproject.toml: {', '.join(mypy_pending()) or 'none'}"]
  clean = [m for m in mypy_pending() if not errors.get(m)]
  if clean:
    out.append(f"  ... of which mypy now passes (remove them): {', '.join(clean)}")
  for module in sorted(set(found) | set(errors)):
    out.append(f"{module}: mypy {len(errors.get(module, []))} errors")
    for what, items in found.get(module, {}).items():
      shown = "" if what == "no __all__" else f" ({len(items)}): {', '.join(items)}"
      out.append(f"  {what}{shown}")
    out += [f"  mypy: {e}" for e in sorted(set(errors.get(module, [])))]
  return "\n".join(out)


if __name__ == "__main__":
  print(inventory())
