"""Research notebooks: each re-executes in quick mode, and its stored results are the source.

Quick mode (REGJAX_QUICK=1) runs every notebook without error. The stored (full-size)
notebooks and ``notebooks/results/*.json`` must agree: the README's generated verdict block
is exactly ``evidence.readme_table()`` of the results, and every verdict line of a results
file appears in the stored outputs of its notebook, so neither the README nor the printed
verdicts can drift from the computed results. Every stored notebook shows a figure as a PNG
image (never the text ``<Figure size ...>``), and every finding of a results file declares
the hyperparameter choices it rests on and is not equal on every seed without a reason
(``notebooks/evidence.py``, rules a, c and d).
"""

import json
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

HERE = pathlib.Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))
# Notebooks that must ship a full-size results file (the others add theirs when ready).
WITH_RESULTS = ("01_l1_l2_elastic_net", "02_adam_l2_vs_adamw", "03_first_vs_final_layer_l1",
                "04_proximal_vs_lasso", "05_orthogonality", "06_stochastic_regularizers",
                "07_per_layer_lambda")


def _evidence():
  sys.path.insert(0, str(HERE))
  try:
    import evidence
  finally:
    sys.path.remove(str(HERE))
  return evidence


def _outputs(notebook):
  return [output for cell in notebook.cells if cell.cell_type == "code"
          for output in cell.get("outputs", [])]


def _figure_problems(notebook) -> list[str]:
  """Why a notebook's outputs do not show a figure as an image ([] when they do)."""
  outputs = _outputs(notebook)
  problems = [f"a figure stored as text: {o['data']['text/plain'][:40]!r}" for o in outputs
              if "image/png" not in o.get("data", {})
              and str(o.get("data", {}).get("text/plain", "")).startswith("<Figure size")]
  if not any("image/png" in o.get("data", {}) for o in outputs):
    problems.append("no image/png output")
  return problems


def _stream_text(notebook) -> str:
  parts = []
  for cell in notebook.cells:
    if cell.cell_type != "code":
      continue
    for output in cell.get("outputs", []):
      if output.get("output_type") == "stream":
        parts.append(output.get("text", ""))
      elif "text/plain" in output.get("data", {}):
        parts.append(output["data"]["text/plain"])
  return "".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, monkeypatch, tmp_path):
  monkeypatch.setenv("REGJAX_QUICK", "1")
  # As notebooks/execute.py does: figures are stored as PNG images.
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
  # The kernel runs in tmp_path (quick results land there); `import evidence` needs the
  # notebooks folder on its path.
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]))
  notebook = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(
      notebook, timeout=600, kernel_name="python3",
      resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  errors = [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]
  assert not errors
  # Every notebook ends its argument with a computed verdict table.
  text = "".join(str(output) for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.get("outputs", []))
  assert "Verdict" in text or "verdict" in text, f"{path.name} printed no verdict"
  # The notebook shows a figure as an image (evidence.show embeds one whatever the backend).
  assert not _figure_problems(notebook), _figure_problems(notebook)
  # A quick run writes its results beside itself, never over the stored full-size ones.
  if path.stem in WITH_RESULTS:
    quick = json.loads((tmp_path / "quick-results" / f"{path.stem}.json").read_text())
    assert quick["quick"] is True and quick["findings"]


def test_readme_block_is_generated_from_the_results():
  evidence = _evidence()
  readme = (HERE / "README.md").read_text()
  begin = readme.index("<!-- verdicts:begin")
  end = readme.index("<!-- verdicts:end -->") + len("<!-- verdicts:end -->")
  assert readme[begin:end] == evidence.readme_table(), (
      "notebooks/README.md is stale: run `python notebooks/evidence.py`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_outputs_quote_the_results_file(path):
  evidence = _evidence()
  results = HERE / "results" / f"{path.stem}.json"
  if not results.exists():
    assert path.stem not in WITH_RESULTS, f"{results.name} is missing: execute the notebook"
    pytest.skip(f"{path.stem} has no results file yet")
  data = json.loads(results.read_text())
  assert data["quick"] is False, f"{results.name} holds a quick run"
  assert data["findings"], f"{results.name} has no verdicts"
  for row in data["findings"]:
    assert row["verdict"] == evidence.verdict_of(row)
  text = _stream_text(nbformat.read(path, as_version=4))
  for line in evidence.verdict_lines(data["findings"]):
    assert line in text, f"{path.name}'s stored outputs do not show: {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_notebook_shows_a_figure_as_an_image(path):
  problems = _figure_problems(nbformat.read(path, as_version=4))
  assert not problems, f"{path.name}: {problems}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_findings_declare_their_choices_and_are_not_fixed_by_construction(path):
  evidence = _evidence()
  results = HERE / "results" / f"{path.stem}.json"
  if not results.exists():
    pytest.skip(f"{path.stem} has no results file yet")
  findings = [row for row in json.loads(results.read_text())["findings"]
              if row["kind"] == "finding"]
  undeclared = [row["claim"] for row in findings if row.get("choices") is None]
  assert not undeclared, (f"{results.name}: findings without `choices=` (pass the "
                          f"evidence.Choice objects, or () for none): {undeclared}")
  constant = [row["claim"] for row in findings if evidence.constant_over_seeds(
      row["interval"]) and not row.get("not_by_construction")]
  assert not constant, (f"{results.name}: findings equal on every seed (fixed by "
                        "construction? Findings.check(..., by_construction=...), or say "
                        f"why not with not_by_construction=): {constant}")


def test_there_are_notebooks():
  assert len(NOTEBOOKS) >= 1 or not os.environ.get("CI")


def test_a_failed_measurement_reads_inconclusive_and_survives_saving(tmp_path):
  # A quick run can produce NaN (e.g. a slope through too few points); it is saved as the
  # string "nan" (JSON has no NaN) and must still print and read as inconclusive.
  evidence = _evidence()
  findings = evidence.Findings("nan_case")
  nan = evidence.Interval(float("nan"), float("nan"), float("nan"), 2)
  assert findings.add("k", "a claim", nan, 0.0).verdict == "inconclusive"
  saved = evidence.load("nan_case", findings.save(tmp_path).parent)
  assert saved["findings"][0]["interval"]["mean"] == "nan"
  assert evidence.verdict_lines(saved["findings"])[1].startswith(
      "  [INCONCLUSIVE] a claim: nan [nan, nan] (n=2)")
