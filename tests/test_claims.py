"""The claim map (notebooks/claims.json): every seed claim maps to a verdict that exists.

Each claim names verdict keys of ``notebooks/results/*.json``; a key renamed or dropped by a
notebook fails here, as does a claim with no verdict and a README block that is not the
rendering of the map. Where the seed notes are on disk (the project's ``shared/seeds``, or
``$REGJAX_SEEDS``), every quoted phrase must be in the note it cites.
"""

import importlib.util
import pathlib

import pytest

HERE = pathlib.Path(__file__).parent.parent / "notebooks"


def _claims():
  """notebooks/claims.py, loaded from its file (the notebooks folder is not a package)."""
  spec = importlib.util.spec_from_file_location("claims", HERE / "claims.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_claim_maps_to_an_existing_verdict():
  claims = _claims()
  data = claims.load()
  ids = [c["id"] for c in data["claims"]]
  assert len(ids) == len(set(ids)), "claim ids repeat"
  assert claims.unresolved(data["claims"], claims.verdict_index()) == []


def test_a_missing_key_an_empty_claim_or_checks_alone_are_reported():
  claims = _claims()
  index = {("01_x", "a"): {"verdict": "holds", "kind": "finding"},
           ("01_x", "c"): {"verdict": "holds", "kind": "implementation check"}}
  listed = [{"id": "c1", "verdicts": [{"notebook": "01_x", "key": "a"},
                                      {"notebook": "01_x", "key": "c"}]},
            {"id": "c2", "verdicts": [{"notebook": "01_x", "key": "b"}]},
            {"id": "c3", "verdicts": []},
            {"id": "c4", "verdicts": [{"notebook": "01_x", "key": "c"}]}]
  assert claims.unresolved(listed, index) == [
      "c2: 01_x has no verdict 'b'", "c3: no verdict", "c4: only implementation checks, no finding"]


def test_readme_claim_map_is_generated_from_the_map_and_the_results():
  claims = _claims()
  readme = (HERE / "README.md").read_text()
  begin = readme.index(claims.BEGIN)
  end = readme.index(claims.END) + len(claims.END)
  assert readme[begin:end] == claims.claims_table(), (
      "notebooks/README.md's claim map is stale: run `python notebooks/claims.py`")


def test_every_quote_is_in_its_seed_note():
  claims = _claims()
  seeds = claims.seeds_directory()
  if seeds is None:
    pytest.skip("the seed notes (shared/seeds) are not on disk here")
  data = claims.load()
  texts = {path.name: claims.normalise(path.read_text()) for path in seeds.glob("*.txt")}
  missing = [(item["seed"], item["quote"]) for item in data["claims"] + data["not_tested"]
             if claims.normalise(item["quote"]) not in texts.get(item["seed"], "")]
  assert not missing, f"quoted phrases not found in their seed note: {missing}"
