"""Fails when a public name of regjax has no entry in the built reference, or no docstring.

Run by `make docs` after Sphinx:

    python docs/check_coverage.py [--html docs/_build/html] [--require-all]

For every public module (found by walking the package, as the pages are written) and
every name in its ``__all__``, including the lazily loaded top-level names
(``regjax.sweep``, ``regjax.Trainer``, ...), it checks that

- the object is described in the built site: its home (see ``apigen.py``) is in the
  site's ``objects.inv``, and the module's own page links to it;
- the object has a docstring of its own (a constant or alias: a string after it);
- every lazy top-level name is in ``regjax.__all__``, unless reading it warns that it is
  deprecated.

``--require-all`` also refuses a public module without ``__all__``.
"""

from __future__ import annotations

import argparse
import html
import importlib
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(DOCS.parent))

import apigen  # noqa: E402

# Public names known to lack a docstring. Empty since issue 19 gave every exported name its
# docstring: never add one. The check fails when a name listed here gets its docstring, so
# that the list could only shrink.
PENDING_DOCSTRINGS: set[str] = set()


def _inventory(html_dir: Path) -> set[str]:
  from sphinx.util.inventory import InventoryFile

  with open(html_dir / "objects.inv", "rb") as f:
    inventory = InventoryFile.load(f, "", lambda base, uri: uri)
  return {name for kind, items in inventory.items() if kind.startswith("py:") for name in items}


def _lazy_problems() -> list[str]:
  regjax = importlib.import_module(apigen.PACKAGE)
  problems = []
  for name in sorted(getattr(regjax, "_LAZY", {})):
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      getattr(regjax, name)
    deprecated = any(issubclass(w.category, DeprecationWarning) for w in caught)
    if not deprecated and name not in regjax.__all__:
      problems.append(f"regjax.{name}: loaded lazily but not in regjax.__all__")
  return problems


def check(html_dir: Path, entries: list[apigen.Entry], require_all: bool) -> list[str]:
  problems = []
  documented = _inventory(html_dir)
  for module in apigen.public_modules():
    page = html_dir / "api" / f"{module}.html"
    if module not in documented or not page.exists():
      problems.append(f"{module}: no reference page ({page} and objects.inv)")
      continue
    if require_all and not apigen.has_all(module):
      problems.append(f"{module}: a public module without __all__")
    text = html.unescape(page.read_text())
    for entry in (e for e in entries if e.module == module):
      public = f"{entry.module}.{entry.name}"
      if entry.home not in documented:
        problems.append(f"{public}: not described in the reference ({entry.home} is not "
                        "in objects.inv)")
      elif f"#{entry.home}\"" not in text and f"{entry.home}.html\"" not in text:
        problems.append(f"{public}: the page of {module} does not link to {entry.home}")
  undocumented = set(apigen.missing_docstrings(entries))
  problems += [f"{home}: no docstring" for home in sorted(undocumented - PENDING_DOCSTRINGS)]
  problems += [f"{home}: has its docstring now; remove it from PENDING_DOCSTRINGS"
               for home in sorted(PENDING_DOCSTRINGS - undocumented)]
  problems += _lazy_problems()
  return problems


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--html", type=Path, default=DOCS / "_build" / "html",
                      help="the built site (default: %(default)s)")
  parser.add_argument("--require-all", action="store_true",
                      help="also refuse a public module without __all__")
  args = parser.parse_args()
  try:
    entries = apigen.entries()
  except AttributeError as error:  # a name in some __all__ that does not exist
    print(f"check_coverage: an __all__ names something that does not exist: {error}")
    return 1
  problems = check(args.html, entries, args.require_all)
  homes = {e.home for e in entries}
  print(f"check_coverage: {len(apigen.public_modules())} public modules, {len(entries)} "
        f"exported names, {len(homes)} objects described once each")
  without_all = [m for m in apigen.public_modules() if not apigen.has_all(m)]
  if without_all and not args.require_all:
    print(f"  note: {len(without_all)} public modules have no __all__ and are documented by "
          f"the names they define: {', '.join(without_all)}")
  if PENDING_DOCSTRINGS:
    print(f"  pending (docstrings to come from i19-api): {', '.join(sorted(PENDING_DOCSTRINGS))}")
  for problem in problems:
    print(f"  MISSING {problem}")
  if problems:
    print(f"check_coverage: {len(problems)} problems")
    return 1
  print("check_coverage: every public name is documented")
  return 0


if __name__ == "__main__":
  sys.exit(main())
