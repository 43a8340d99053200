"""The evidence rules of the research notebooks (``notebooks/evidence.py``): cheap, no training.

Pins (a) choices at the edge of their grid make a verdict inconclusive, and the flag
travels into the results file, the verdict line and the README; (b) the intervals that
include the test set's sampling noise cover the population value where a t interval over
seeds alone does not; (c) a value fixed by construction is refused as a finding, and one
constant over seeds is flagged; (d) a
figure is displayed as a PNG image whatever the matplotlib backend; and the wall time read
from a stored notebook's cell metadata.
"""

import json
import math
import pathlib
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent.parent / "notebooks"
sys.path.insert(0, str(HERE))
try:
  import evidence
finally:
  sys.path.remove(str(HERE))

LAMS = np.concatenate([[0.0], np.logspace(-4, -1, 7)])


# --- (b) test-set noise ----------------------------------------------------------------


def test_per_example_interval_matches_the_hand_worked_two_way_variance():
  # Seed means .75, .5 -> s² = 1/32, /S = 1/64; example means 1, .5, 0, 1 -> s² = .6875/3,
  # /n = .0572917; V = .0729167; Welch–Satterthwaite ν = V² / (a²/1 + b²/3) = 3.97297.
  interval = evidence.per_example_interval([[1, 1, 0, 1], [1, 0, 0, 1]], scale=100)
  a, b = 1 / 64, 0.6875 / 12
  nu = (a + b) ** 2 / (a ** 2 + b ** 2 / 3)
  assert nu == pytest.approx(3.97297, abs=1e-5)
  half = 2.7820 * math.sqrt(a + b)  # t quantile at 0.975 with ν = 3.973 (table, 4 dp)
  assert interval.mean == pytest.approx(62.5)
  assert interval.high - interval.mean == pytest.approx(100 * half, rel=1e-3)
  assert (interval.n, interval.n_test, interval.test_noise) == (2, 4, "per example")


def _population(rng, seeds, examples, shifts):
  # Trained models agree on which examples are hard: example i has difficulty d_i ~ U(0, 1)
  # and seed s gets it right when d_i + 0.02 z_si < t_s, t_s ~ 0.9 + 0.005 N(0, 1). Arm k
  # lowers every threshold by shifts[k] (same z: a paired design). Its population
  # accuracy is E[t] - shifts[k] = 0.9 - shifts[k].
  d = rng.random(examples)
  t = 0.9 + 0.005 * rng.standard_normal(seeds)
  z = 0.02 * rng.standard_normal((seeds, examples))
  return [(d[None] + z < t[:, None] - k).astype(float) for k in shifts]


def test_intervals_with_test_noise_cover_where_seed_only_intervals_do_not():
  rng = np.random.default_rng(0)
  target, gap = 0.9, 0.03
  covered = {name: 0 for name in ("seeds", "per example", "binomial", "paired seeds",
                                  "paired per example", "paired bound")}
  reps = 300
  for _ in range(reps):
    a, b = _population(rng, 10, 360, (0.0, gap))
    found = {"seeds": (evidence.t_interval(a.mean(1)), target),
             "per example": (evidence.per_example_interval(a), target),
             "binomial": (evidence.binomial_interval(a.mean(1), 360), target),
             "paired seeds": (evidence.paired_interval(a.mean(1), b.mean(1)), gap),
             "paired per example": (evidence.paired_per_example_interval(a, b), gap),
             "paired bound": (evidence.paired_binomial_interval(a.mean(1), b.mean(1), 360),
                              gap)}
    for name, (interval, truth) in found.items():
      covered[name] += interval.low <= truth <= interval.high
  coverage = {name: count / reps for name, count in covered.items()}
  # A t interval over seeds on one shared test set ignores the test set's noise.
  assert coverage["seeds"] < 0.5 and coverage["paired seeds"] < 0.8, coverage
  # The two-way intervals cover at least nominally (they are slightly conservative).
  for name in ("per example", "binomial", "paired per example", "paired bound"):
    assert coverage[name] >= 0.93, coverage


def test_binomial_bounds_are_never_narrower_than_the_per_example_intervals():
  rng = np.random.default_rng(1)
  for _ in range(20):
    a, b = _population(rng, 5, 50, (0.0, rng.uniform(0.0, 0.2)))
    exact = evidence.per_example_interval(a)
    bound = evidence.binomial_interval(a.mean(1), 50)
    assert bound.high - bound.low >= exact.high - exact.low - 1e-12
    exact = evidence.paired_per_example_interval(a, b)
    bound = evidence.paired_binomial_interval(a.mean(1), b.mean(1), 50)
    assert bound.high - bound.low >= exact.high - exact.low - 1e-12


def test_one_model_gets_the_binomial_interval_of_its_accuracy():
  correct = np.array([[1.0] * 90 + [0.0] * 10])
  interval = evidence.per_example_interval(correct)
  p, n = 0.9, 100
  half = evidence.stats.t.ppf(0.975, n - 1) * math.sqrt(p * (1 - p) * n / (n - 1) / n)
  assert (interval.low, interval.high) == pytest.approx((p - half, p + half))


def test_absolute_maps_a_signed_interval_to_the_interval_of_its_magnitude():
  straddles = evidence.absolute(evidence.Interval(-0.2, -0.9, 0.5, 10))
  assert (straddles.mean, straddles.low, straddles.high) == (0.2, 0.0, 0.9)
  negative = evidence.absolute(evidence.Interval(-2.0, -3.0, -1.0, 10, n_test=360))
  assert (negative.low, negative.high, negative.n_test) == (1.0, 3.0, 360)


def test_accuracies_must_be_fractions_not_points():
  with pytest.raises(ValueError, match="accuracies"):
    evidence.binomial_interval([97.0, 96.5], 360)


def test_per_example_correctness_survives_a_sweep_as_columns_and_curves():
  # What a Trainer's metrics_fn=evidence.per_example_correct does, without compiling a
  # training loop: the packed scalars of each row, and their curves over evaluations.
  # Unpacked, they must average to the accuracy computed beside them, row by row.
  regjax = pytest.importorskip("regjax")
  import jax.numpy as jnp

  rng = np.random.default_rng(3)
  inputs = jnp.asarray(rng.standard_normal((50, 4)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, 50))
  weights = jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)

  def run(hparams, key):
    def model(x, shift):
      return x @ weights + shift * jnp.arange(3.0)[None]
    early = evidence.per_example_correct(lambda x: model(x, 0.0), (inputs, labels))
    late = evidence.per_example_correct(lambda x: model(x, hparams["shift"]), (inputs, labels))
    accuracy = jnp.mean(jnp.argmax(model(inputs, hparams["shift"]), -1) == labels)
    return {**late, "accuracy": accuracy,
            **{f"curves/{k}": jnp.stack([early[k], late[k]]) for k in late}}

  result = regjax.sweep(run, regjax.grid(shift=[0.0, 1.5]), seeds=[4, 1], progress=False)
  for shift in (0.0, 1.5):
    correct = evidence.per_example(result, "correct", shift=shift)
    assert correct.shape == (2, 50) and set(np.unique(correct)) <= {0.0, 1.0}
    np.testing.assert_allclose(correct.mean(1), evidence.by_seed(result, "accuracy",
                                                                  shift=shift), atol=1e-6)
    curve = evidence.per_example(result, "correct", evaluation=slice(None), shift=shift)
    assert curve.shape == (2, 2, 50)
    np.testing.assert_array_equal(curve[:, -1], correct)
  assert not np.array_equal(evidence.per_example(result, "correct", evaluation=0, shift=1.5),
                            evidence.per_example(result, "correct", shift=1.5))
  with pytest.raises(TypeError, match="boolean"):
    evidence.pack_per_example(jnp.zeros(3), "loss")


def test_two_way_bootstrap_of_a_mean_agrees_with_the_two_way_interval():
  rng = np.random.default_rng(2)
  (a,) = _population(rng, 10, 360, (0.0,))
  boot = evidence.two_way_bootstrap(a, lambda means: means, resamples=4000)
  exact = evidence.per_example_interval(a)
  assert boot.mean == pytest.approx(exact.mean)
  assert boot.high - boot.low == pytest.approx(exact.high - exact.low, rel=0.15)
  assert (boot.n, boot.n_test, boot.test_noise) == (10, 360, "two-way bootstrap")


# --- (a) choices at the edge of the grid ---------------------------------------------------


@pytest.mark.parametrize("value, limits, edge", [
    (1e-4, (None, None), "lowest"),      # smallest positive of a log grid holding 0
    (0.1, (None, None), "highest"),
    (0.0, (None, None), "lowest"),
    (0.0, (0.0, None), None),            # "no penalty is best": a limit of the domain
    (LAMS[3], (None, None), None),
])
def test_a_choice_at_the_edge_of_its_grid_is_flagged(value, limits, edge):
  choice = evidence.choose("λ", LAMS, value, by="validation accuracy", limits=limits)
  assert choice.scale == "log"
  assert choice.edge == edge and choice.flagged == (edge is not None)
  assert ("the optimum may lie beyond it" in choice.reason) == (edge is not None)


def test_beyond_continues_the_grid_past_its_edge_up_to_the_domain_limit():
  high = evidence.choose("λ", LAMS, 0.1, by="validation")
  np.testing.assert_allclose(high.beyond(2), [10 ** -0.5, 1.0])
  low = evidence.choose("λ", LAMS, 1e-4, by="validation")
  np.testing.assert_allclose(low.beyond(2), [10 ** -4.5, 1e-5])
  level = evidence.choose("pruning level", [0.25, 0.5, 0.75, 0.9], 0.9, by="validation",
                          limits=(0.0, 1.0))
  assert level.scale == "linear"
  np.testing.assert_allclose(level.beyond(3), [1.0])
  assert evidence.choose("λ", LAMS, LAMS[3], by="validation").beyond().size == 0


def test_select_takes_the_best_eligible_value_and_ties_go_first():
  scores = [0.90, 0.91, 0.95, 0.95, 0.90, 0.5, 0.1, 0.1]
  assert evidence.select("λ", LAMS, scores, by="validation").value == LAMS[2]
  eligible = [True, True, False, False, True, True, True, True]
  assert evidence.select("λ", LAMS, scores, by="validation", eligible=eligible
                         ).value == LAMS[1]
  with pytest.raises(ValueError, match="eligible"):
    evidence.select("λ", LAMS, scores, by="validation", eligible=[False] * 8)
  with pytest.raises(ValueError, match="not in its grid"):
    evidence.choose("λ", LAMS, 0.5, by="validation")


def test_a_verdict_resting_on_an_edge_choice_reads_inconclusive_everywhere(tmp_path):
  findings = evidence.Findings("edge_case")
  edge = evidence.choose("λ", LAMS, 0.1, by="validation accuracy")
  inside = evidence.choose("λ", LAMS, LAMS[3], by="validation accuracy")
  interval = evidence.t_interval([3.0, 4.0, 5.0])
  row = findings.add("edge", "a claim", interval, 1.0, choices=[inside, edge])
  assert (row.measured, row.verdict) == ("holds", "inconclusive")
  assert findings.add("inside", "b claim", interval, 1.0, choices=[inside]).verdict == "holds"
  saved = evidence.load("edge_case", findings.save(tmp_path).parent)
  rows = {r["key"]: r for r in saved["findings"]}
  assert rows["edge"]["choices"][1]["edge"] == "highest"
  assert [evidence.verdict_of(r) for r in saved["findings"]] == ["inconclusive", "holds"]
  line = evidence.verdict_line(rows["edge"])
  assert line.startswith("  [INCONCLUSIVE] a claim") and "edge of grid: λ = 0.1" in line
  assert "the interval alone reads holds" in line
  table = evidence.readme_table(tmp_path, tmp_path)
  assert "| inconclusive (fragile) (edge of grid; the interval alone: holds) |" in table
  assert "**edge**: λ = 0.1 of 0 … 0.1" in table


def test_undeclared_choices_are_saved_as_none_and_shown_in_the_readme(tmp_path):
  findings = evidence.Findings("undeclared")
  findings.add("k", "a claim", evidence.t_interval([1.0, 2.0]), 0.0)
  findings.save(tmp_path)
  assert evidence.load("undeclared", tmp_path)["findings"][0]["choices"] is None
  assert "| undeclared |" in evidence.readme_table(tmp_path, tmp_path)


# --- (c) by construction -------------------------------------------------------------------


def test_a_value_fixed_by_construction_cannot_be_a_finding():
  findings = evidence.Findings("construction")
  constant = evidence.t_interval([0.75] * 10)
  with pytest.warns(UserWarning, match="does not vary with the seed"):
    findings.add("level", "prune units removes 25 %", constant, 0.25, choices=())
  assert evidence.constant_over_seeds(findings.saved_rows()[0]["interval"])
  with pytest.raises(ValueError, match="cannot be a finding"):
    findings.add("init", "ratio at init", evidence.t_interval([0.4, 0.6]), 0.6,
                 by_construction="set by LeCun initialisation", choices=())
  row = findings.check("level", "prune units removes 25 %", constant, 0.25,
                       by_construction="the share removed is the chosen level")
  assert row.kind == "implementation check"
  assert "(fixed by construction: the share removed is the chosen level)" in (
      evidence.verdict_line(findings.saved_rows()[0]))
  outcome = findings.add("zero", "no seed keeps a pixel", evidence.t_interval([0.0] * 10),
                         0.5, side="below", choices=(),
                         not_by_construction="the pixels are learned away, not masked")
  assert outcome.kind == "finding"
  # One exact computation (n = 1) is not a constant over seeds.
  assert not evidence.constant_over_seeds(evidence.exact(0.0))


# --- (d) figures, and the README's wall times ----------------------------------------------


def test_show_displays_a_png_image_under_a_non_interactive_backend(monkeypatch):
  matplotlib = pytest.importorskip("matplotlib")
  matplotlib.use("Agg")
  display = pytest.importorskip("IPython.display")
  shown = []
  monkeypatch.setattr(display, "display", shown.append)
  findings = evidence.Findings("figure")
  findings.add("k", "a claim", evidence.t_interval([1.0, 2.0, 3.0]), 0.5, choices=())
  evidence.show(findings.plot())
  evidence.show(evidence.plot_intervals({"arm": evidence.t_interval([1.0, 2.0])},
                                        tolerance=0.0, unit=" pt"))
  assert [image.format for image in shown] == ["png", "png"]
  assert all(image.data.startswith(b"\x89PNG") for image in shown)


def test_wall_time_spans_the_first_cell_start_to_the_last_cell_end(tmp_path):
  def cell(start, end):
    return {"cell_type": "code", "metadata": {"execution": {
        "iopub.execute_input": start, "shell.execute_reply": end}}}

  notebook = {"cells": [{"cell_type": "markdown", "metadata": {}},
                        cell("2026-12-01T22:37:43.187Z", "2026-12-01T22:37:56.184Z"),
                        cell("2026-12-01T22:37:56.194Z", "2026-12-01T23:04:11.361Z")]}
  path = tmp_path / "n.ipynb"
  path.write_text(json.dumps(notebook))
  seconds, start = evidence.wall_time(path)
  assert seconds == pytest.approx(26 * 60 + 28.174)
  assert f"{start:%H:%M:%S}" == "22:37:43"
  path.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}}]}))
  assert evidence.wall_time(path) is None


def test_extend_until_interior_sweeps_past_the_edge_until_the_choice_is_inside():
  # Validation score peaks at λ = 1e-5, below the grid: two rounds of two values reach
  # 1e-5 and 10**-5.5, so the choice is interior; with rounds=0 it stays flagged.
  def score(lam):
    return -abs(math.log10(lam) + 5)

  def choose_from(result):
    grid = sorted(result)
    return evidence.select("λ", grid, [result[g] for g in grid], by="validation")

  def run(values):
    ran.append(list(values))
    return {float(v): score(v) for v in values}

  def concat(parts):
    return {k: v for part in parts for k, v in part.items()}

  ran = []
  start = {lam: score(lam) for lam in LAMS[1:]}
  result, choice = evidence.extend_until_interior(start, choose_from, run, concat=concat)
  np.testing.assert_allclose(np.concatenate(ran), [10 ** -4.5, 1e-5, 10 ** -5.5, 1e-6])
  assert choice.value == pytest.approx(1e-5) and not choice.flagged
  assert len(result) == len(LAMS) - 1 + 4
  _, stuck = evidence.extend_until_interior(start, choose_from, run, rounds=0,
                                            concat=concat)
  assert stuck.edge == "lowest"
