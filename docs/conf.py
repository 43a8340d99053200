"""Sphinx configuration of regjax's documentation (`make docs`; see docs/README.md)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(ROOT))

import apigen  # noqa: E402  (docs/apigen.py, shared with check_coverage.py)

import regjax  # noqa: E402

project = "regjax"
author = "The regjax Authors"
copyright = "2026, The regjax Authors"  # noqa: A001  (Sphinx's name)
release = version = regjax.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",  # MyST Markdown for the guides, and the notebooks from their stored outputs
]

exclude_patterns = ["_build", "_templates", "README.md", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# --- The API reference: one page per public module, written from __all__ at build time.
apigen.write_pages(DOCS / "api")
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Signatures say `Strength`, `ArrayLike` or `GridLike`, not the unions they stand for: every
# exported type alias is written by its name, linked to its page (the modules use postponed
# annotations, so autodoc sees the names as written) ...
_ENTRIES = apigen.entries()
autodoc_type_aliases = apigen.type_aliases(_ENTRIES)
# ... also where a module spells an alias by its origin (jax's `ArrayLike` is regjax's),
# and the aliases of other projects that would expand into long unions.
autodoc_type_aliases.update({
    "jax.typing.ArrayLike": "regjax.typing.ArrayLike",
    "jax.typing.DTypeLike": "jax.typing.DTypeLike",
    "DTypeLike": "jax.typing.DTypeLike",
    "npt.ArrayLike": "numpy.typing.ArrayLike",  # (a module using `npt.` may use only this)
    "optax.ScalarOrSchedule": "optax.ScalarOrSchedule",
})
# Linked names read short (`Strength`, `Grid`); a name that links nowhere reads in full.
python_use_unqualified_type_names = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# `Attributes:` sections become fields of the class, not a second description of each
# attribute beside the one `:members:` writes.
napoleon_use_ivar = True

# Every cross-reference must resolve (a role naming a function that does not exist is
# an error), except names of other projects: their sites would need intersphinx, which
# needs the network, so `make docs` does without it.
nitpicky = True
_EXTERNAL = (r"(jax|jaxlib|jnp|np|npt|numpy|optax|flax|nnx|chex|orbax|equinox|eqx|pandas|pd|"
             r"xarray|xr|matplotlib|tqdm|typing|typing_extensions|collections|types|"
             r"builtins|functools|enum|os|pathlib|dataclasses|abc|argparse)")
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL + r"(\..*)?"),
    # Private base classes (named by `:show-inheritance:`) and implementation modules
    # that a docstring points to: no page, by design; they render as plain names.
    (r"py:(class|mod)", r"regjax(\.\w+)*\._\w+(\..*)?"),
    # Python's own types, unlinked without intersphinx.
    (r"py:.*", r"(int|float|str|bool|bytes|dict|list|tuple|set|frozenset|object|type|"
               r"callable|None|NoneType|Any|Callable|Sequence|Mapping|Iterable|Iterator|"
               r"Generator|NamedTuple|TypeAlias|Literal|Optional|Union|Self|Path|"
               r"PathLike|Exception|ValueError|TypeError|KeyError|RuntimeError|"
               r"DeprecationWarning|FutureWarning|UserWarning)"),
]

# Docstrings name objects as users reach them: `regjax.sweep`, `regjax.models.MLP`,
# `regjax.SweepResult.best`, or `sweep` inside regjax.experiment. Those names are
# re-exports, described once at their home (regjax.experiment.sweeps.sweep); a reference
# that Sphinx cannot find as written is looked up again through the re-exports, relative
# to the module it is written in, its parents, and the top-level package.
_ALIASES = apigen.alias_targets(_ENTRIES)


def _through_aliases(target: str) -> str | None:
  parts = target.split(".")
  for i in range(len(parts), 0, -1):
    head = ".".join(parts[:i])
    if head in _ALIASES:
      return ".".join([_ALIASES[head], *parts[i:]])
  return None


def _resolve_alias(app, env, node, contnode):
  if node.get("refdomain") != "py":
    return None
  target = node["reftarget"]
  module = node.get("py:module") or ""
  scopes = [module.rsplit(".", i)[0] for i in range(module.count(".") + 1)] if module else []
  candidates = [target] + [f"{scope}.{target}" for scope in scopes] + [f"regjax.{target}"]
  domain = env.get_domain("py")
  # Last, a name that one documented object ends with (`ProxAdamState` written in
  # regjax._proxgen, documented as regjax.transforms.ProxAdamState). An annotation Sphinx
  # could not evaluate reads as written, through a private import alias of its module
  # (`_rows.RowPlan`): the name after the alias is looked up so.
  head, _, rest = target.partition(".")
  suffix = "." + (rest if rest and head.startswith("_") else target)
  ends = [name for name, entry in domain.objects.items()
          if name.endswith(suffix) and not entry.aliased]  # aliased: autodoc's :canonical:
  if len(ends) == 1:
    candidates.append(ends[0])
  for candidate in candidates:
    for name in (candidate, _through_aliases(candidate)):
      if name is None:
        continue
      if node["reftype"] == "mod" and name not in domain.modules:
        continue
      if node["reftype"] != "mod" and name not in domain.objects and name not in domain.modules:
        continue
      new = node.deepcopy()
      new["reftarget"] = name
      new["refspecific"] = False
      return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], name,
                                 new, contnode)
  return None


def _prose_attribute_docstrings(app) -> None:
  """Napoleon reads an attribute's first line `X: Y` as "type X"; regjax's are prose.

  The docstring of a constant or alias (``regjax.transforms.ProxFn``, ``regjax.typing.Mask``) opens
  with a sentence such as "Optax's mask convention: None, a bool tree, ...". Napoleon
  would render "Optax's mask convention" as the type (and look it up as a class). Types
  come from annotations here, so those docstrings are parsed as plain Google docstrings.
  """
  from sphinx.ext.napoleon import _process_docstring

  listeners = app.events.listeners["autodoc-process-docstring"]
  for listener in list(listeners):
    if listener.handler is _process_docstring:
      app.disconnect(listener.id)

  def process(app, what, name, obj, options, lines):
    if what in ("attribute", "data", "property"):
      what = "object"
    _process_docstring(app, what, name, obj, options, lines)

  app.connect("autodoc-process-docstring", process)


def _alias_names_in_signatures(app, what, name, obj, options, signature, return_annotation):
  """`ArrayLike | None` reads so, not `TypeAliasForwardRef('jax.typing.ArrayLike') | None`.

  Sphinx writes an alias of `autodoc_type_aliases` inside a union as the repr of its
  placeholder object; the alias's name is what the reader should see.
  """
  def clean(text):
    return re.sub(r"TypeAliasForwardRef\('([^']+)'\)", r"\1", text) if text else text

  return clean(_factory_defaults(obj, signature)), clean(return_annotation)


def _factory_defaults(obj, signature):
  """A dataclass field's ``default_factory`` reads as its call (``= dict()``).

  Sphinx writes it ``= <factory>``, which is not Python: the signature then cannot be
  parsed, and is shown as raw text, without links.
  """
  if not signature or "<factory>" not in signature or not dataclasses.is_dataclass(obj):
    return signature
  for field in dataclasses.fields(obj):
    if field.init and field.default_factory is not dataclasses.MISSING:
      made = getattr(field.default_factory, "__qualname__", "factory")
      signature = signature.replace("<factory>", f"{made}()", 1)
  return signature


def setup(app):
  app.connect("missing-reference", _resolve_alias)
  app.connect("autodoc-process-signature", _alias_names_in_signatures)
  _prose_attribute_docstrings(app)


# --- MathJax from the build folder: the `.. math::` blocks render without network.
_mathjax = importlib.util.find_spec("sphinx-mathjax-offline")
if _mathjax is None or not _mathjax.submodule_search_locations:
  raise RuntimeError("`make docs` needs the docs extra: pip install -e '.[docs]'")
html_static_path = [str(Path(_mathjax.submodule_search_locations[0]) / "static")]
mathjax_path = "mathjax/tex-chtml.js"

# --- MyST: guides in Markdown; notebooks rendered from their stored outputs, never run.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_merge_streams = True


def _copy_notebooks() -> None:
  """docs/notebooks/: the notebooks (copied, by glob) and their index with the verdicts."""
  out = DOCS / "notebooks"
  out.mkdir(exist_ok=True)
  sources = sorted((ROOT / "notebooks").glob("*.ipynb"))
  for source in sources:
    target = out / source.name
    if not target.exists() or target.read_bytes() != source.read_bytes():
      shutil.copy2(source, target)
  for stale in out.glob("*.ipynb"):
    if not (ROOT / "notebooks" / stale.name).exists():
      stale.unlink()
  readme = (ROOT / "notebooks" / "README.md").read_text()
  block = re.search(r"<!-- verdicts:begin.*?-->\n(.*?)<!-- verdicts:end", readme, re.S)
  if block is None:
    raise RuntimeError("notebooks/README.md has no <!-- verdicts:begin --> block")
  template = (DOCS / "_templates" / "notebooks_index.md").read_text()
  text = template.replace("{verdicts}", block.group(1))
  index = out / "index.md"
  if not index.exists() or index.read_text() != text:
    index.write_text(text)


_copy_notebooks()

# --- The site.
html_theme = "sphinx_book_theme"
html_title = f"regjax {version}"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "home_page_in_toc": True,
}
html_show_sourcelink = False
html_last_updated_fmt = None
