"""Every research notebook re-executes in quick mode (REGJAX_QUICK=1) without error."""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, monkeypatch, tmp_path):
  monkeypatch.setenv("REGJAX_QUICK", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
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


def test_there_are_notebooks():
  assert len(NOTEBOOKS) >= 1 or not os.environ.get("CI")
