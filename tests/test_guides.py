"""The guides' code runs as printed, and says what it claims.

Every ```python block of every ``docs/guides/*.md`` (and ``docs/index.md``) runs, in
order, in one namespace per guide (a guide added later is picked up by the glob). Code a
guide shows without running it is code taken from a file that a test runs
(``docs/guides/examples/*.py`` or a test's worker, included with ``{literalinclude}``),
or a shell command in a ```bash block. After a guide has run, ``CLAIMS`` checks the
numbers its prose states.
"""

import pathlib
import re
import runpy

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The front page's example runs too.
GUIDES = [*sorted((ROOT / "docs" / "guides").glob("*.md")), ROOT / "docs" / "index.md"]
EXAMPLES = ROOT / "docs" / "guides" / "examples"
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def _claims_nnx_loop(ns):
  # "exact zeros": a large share of the kernels, with the accuracy of a working model.
  assert ns["zeros"] > 0.3 and ns["test_accuracy"] > 0.85


def _claims_linen(ns):
  assert ns["zeros"] > 0.3 and ns["test_accuracy"] > 0.85


def _claims_equinox(ns):
  # The six inputs that do not enter the target lose every weight; the others keep most.
  assert ns["irrelevant_zero"] == 1.0 and ns["relevant_zero"] < 0.5


def _claims_per_layer(ns):
  assert ns["decayed"] == {"layers/0/kernel": True, "layers/0/bias": False,
                           "layers/1/kernel": True, "layers/1/bias": False}


def _claims_exact_sparsity(ns):
  # ProxGen zeroes the row that never gets a gradient; decoupled=True leaves it (lr·λ·t).
  assert ns["proxgen_row"] == 0.0
  np.testing.assert_allclose(ns["decoupled_row"], 0.1 - 300 * 1e-3 * 1e-8, rtol=1e-6)
  assert ns["subgradient_zeros"] == 0.0 and ns["prox_zeros"] > 0.5


def _claims_adaptive_search(ns):
  # The boundary in closed form is λ = 10**-2.5: the choice is on its feasible side and
  # within 5 %, printed as 3.11e-3; 4 slots x 16 rounds x 10 steps.
  lam = ns["best"]["lam"]
  assert 0.95 * 10**-2.5 <= lam <= 10**-2.5 and f"λ = {lam:.3g}" == "λ = 0.00311"
  assert ns["result"].model_steps == 640 and ns["best"]["status"] == "complete"


CLAIMS = {"nnx_loop": _claims_nnx_loop, "linen": _claims_linen, "equinox": _claims_equinox,
          "per_layer": _claims_per_layer, "exact_sparsity": _claims_exact_sparsity,
          "adaptive_search": _claims_adaptive_search}


def test_every_guide_has_code_or_an_example():
  for guide in GUIDES:
    text = guide.read_text()
    assert BLOCK.search(text) or "literalinclude" in text, guide.name


@pytest.mark.slow
@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_guide_code_runs(guide, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a guide may write files (plots, checkpoints)
  namespace = {"__name__": f"guide_{guide.stem}"}
  for block in BLOCK.findall(guide.read_text()):
    exec(compile(block, str(guide), "exec"), namespace)  # noqa: S102
  name = re.sub(r"^\d+_", "", guide.stem)  # 01_nnx_loop.md: the number orders the index
  if name in CLAIMS:
    CLAIMS[name](namespace)


@pytest.mark.slow
def test_sweep_guide_example(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  example = runpy.run_path(str(EXAMPLES / "sweep_and_select.py"))
  result, means, chosen = example["main"](steps=100, num_lams=4, seeds=2)
  assert len(result) == 8 and not np.asarray(result["failed"]).any()
  accuracy = np.asarray(means["validation_accuracy_mean"])
  # The rule as stated: within a point of the best, and no eligible λ is sparser.
  assert accuracy[chosen] >= accuracy.max() - 0.01
  zeros = np.asarray(means["zero_weights_mean"])
  assert zeros[chosen] == zeros[accuracy >= accuracy.max() - 0.01].max()
  assert result.curves["validation_accuracy"].shape == (8, 5)
  assert (tmp_path / "accuracy_vs_zeros.png").stat().st_size > 0
  assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_resume_guide_example(tmp_path):
  example = runpy.run_path(str(EXAMPLES / "checkpointed_resume.py"))
  whole, resumed = example["main"](directory=str(tmp_path / "checkpoints"), steps=40)
  assert len(resumed) == 6  # 3 λ × 2 seeds; the example itself asserts bit-equality
  np.testing.assert_array_equal(resumed.curves["test_accuracy"], whole.curves["test_accuracy"])


@pytest.mark.slow
def test_batch_norm_guide_measurement():
  """The guide's claim at 50 steps: at momentum 0.99 eval mode trails, the two fixes don't."""
  example = runpy.run_path(str(EXAMPLES / "batch_norm_short_runs.py"))
  results = example["main"]("digits", steps=50, eval_every=50, seeds=1)
  _, train_mode, eval_mode = results["momentum 0.99 (default)"][0, -1]
  assert train_mode > 0.8 and eval_mode < train_mode - 0.05
  for arm in ("momentum 0.9", "momentum 0.99, recalibrated"):
    _, train_mode, eval_mode = results[arm][0, -1]
    assert eval_mode > train_mode - 0.03, arm
