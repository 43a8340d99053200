"""The docs' coverage check (docs/check_coverage.py) fails when a public name loses its docs.

`make docs` runs the check on the built site; here it runs on a stand-in site (an
inventory and one page per module that link every exported name), so that removing a
name's entry, its link or its docstring can be shown to fail without a Sphinx build.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS))

import apigen  # noqa: E402
import check_coverage  # noqa: E402

import regjax  # noqa: E402


def _site(tmp_path: Path, entries: list[apigen.Entry], *, unlinked: str = "") -> set[str]:
  """Writes one page per public module linking its entries; returns the inventory."""
  (tmp_path / "api").mkdir()
  for module in apigen.public_modules():
    links = "".join(f'<a href="#{e.home}">{e.name}</a>' for e in entries
                    if e.module == module and e.home != unlinked)
    (tmp_path / "api" / f"{module}.html").write_text(f"<html>{links}</html>")
  return set(apigen.public_modules()) | {e.home for e in entries}


@pytest.fixture(scope="module")
def entries() -> list[apigen.Entry]:
  return apigen.entries()


def _check(tmp_path, monkeypatch, entries, inventory):
  monkeypatch.setattr(check_coverage, "_inventory", lambda html_dir: inventory)
  return check_coverage.check(tmp_path, entries, require_all=True)


def test_the_full_site_passes(tmp_path, monkeypatch, entries):
  assert len(entries) > 200
  assert _check(tmp_path, monkeypatch, entries, _site(tmp_path, entries)) == []


def test_a_name_missing_from_the_inventory_fails(tmp_path, monkeypatch, entries):
  inventory = _site(tmp_path, entries) - {"regjax.prox.l1"}
  problems = _check(tmp_path, monkeypatch, entries, inventory)
  assert problems == ["regjax.prox.l1: not described in the reference (regjax.prox.l1 is "
                      "not in objects.inv)"]


def test_a_module_page_that_does_not_link_a_name_fails(tmp_path, monkeypatch, entries):
  inventory = _site(tmp_path, entries, unlinked="regjax.penalties.l1")
  problems = _check(tmp_path, monkeypatch, entries, inventory)
  assert problems == ["regjax.penalties.l1: the page of regjax.penalties does not link to "
                      "regjax.penalties.l1"]


def test_a_removed_docstring_fails(tmp_path, monkeypatch, entries):
  inventory = _site(tmp_path, entries)
  monkeypatch.setattr(regjax.penalties.l1, "__doc__", None)
  problems = _check(tmp_path, monkeypatch, entries, inventory)
  assert problems == ["regjax.penalties.l1: no docstring"]
