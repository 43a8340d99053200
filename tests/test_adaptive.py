"""The adaptive search's host-side policy (regjax.experiment.adaptive), on hand-made tables.

No training here: the policy is NumPy only, so it is driven by synthetic metrics — a
table written by hand, or a landscape whose optimum is known in closed form.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from regjax.experiment import adaptive

SPACE = adaptive.Space(lam=adaptive.LogUniform(1e-5, 1e-1))
SPARSEST = adaptive.MaximizeWithin("zero_weights", "validation_accuracy", margin=0.01)


# ----------------------------------------------------------------------------- objectives


def test_within_margin_picks_the_sparsest_point_within_one_point_of_the_best():
  table = {
      "validation_accuracy": [0.972, 0.968, 0.962, 0.980, 0.970, np.nan, 0.40],
      "zero_weights": [0.50, 0.70, 0.99, 0.05, 0.75, 1.00, 1.00],
  }
  # Best accuracy 0.980: the bar is 0.970, met exactly by point 4 (0.970 counts, despite
  # 0.98 - 0.01 rounding above 0.97). Feasible: 0 (0.50), 3 (0.05), 4 (0.75).
  assert SPARSEST.feasible(table).tolist() == [True, False, False, True, True, False, False]
  order = SPARSEST.order(table)
  assert order[0] == 4
  # Feasible by sparsity, then infeasible by accuracy, NaN last.
  assert order.tolist() == [4, 0, 3, 1, 2, 6, 5]
  score = SPARSEST.score(table)
  assert score[4] == 0.75 and score[5] == -np.inf
  assert score[1] < score[3]  # every infeasible point below the least sparse feasible one


def test_within_margin_is_the_notebook_rule_on_a_mean_over_seeds_table():
  # Two seeds per point; the rule reads the means, as the notebooks do.
  accuracy = np.array([[0.97, 0.96], [0.965, 0.955], [0.94, 0.95]]).mean(1)  # .965 .96 .945
  sparsity = np.array([[0.2, 0.3], [0.6, 0.5], [0.9, 0.9]]).mean(1)
  table = {"validation_accuracy": accuracy, "zero_weights": sparsity}
  assert SPARSEST.order(table)[0] == 1
  assert adaptive.Maximize("validation_accuracy").order(table)[0] == 0
  assert adaptive.Minimize("zero_weights").order(table)[0] == 0


def test_objective_names_a_missing_metric():
  with pytest.raises(KeyError, match="validation_accuracy"):
    SPARSEST.order({"zero_weights": [0.1]})
  with pytest.raises(ValueError, match="margin"):
    adaptive.MaximizeWithin("a", "b", margin=-0.1)


# ----------------------------------------------------------------------------- the policy


def accuracy_and_sparsity(lam: np.ndarray, rung: int, segments: int):
  """A landscape: accuracy falls past log10 λ = -2.5, sparsity rises with λ; both grow
  with training. The sparsest λ within 0.01 of the best final accuracy is known."""
  x = np.log10(lam)
  fraction = rung / segments
  accuracy = (0.97 - 0.6 / (1 + np.exp(-(x + 2.5) / 0.15))) * (0.6 + 0.4 * fraction)
  sparsity = fraction / (1 + np.exp(-(x + 3.5) / 0.4))
  return accuracy, sparsity


class Loop:
  """Stands in for the training loop: each row's λ and segments done, metrics from a
  landscape."""

  def __init__(self, search: adaptive.Refill, landscape=accuracy_and_sparsity):
    self.search, self.landscape = search, landscape
    self.lam = np.zeros(search.rows)
    self.rung = np.zeros(search.rows, np.int64)
    self.assignments: list[adaptive.Assignment] = []

  def take(self, assignment: adaptive.Assignment) -> None:
    self.assignments.append(assignment)
    self.lam[assignment.rows], self.rung[assignment.rows] = assignment.hparams["lam"], 0

  def run(self, until: int | None = None) -> list[adaptive.Assignment]:
    if self.search.round < 0:
      self.take(self.search.start())
    while not self.search.done and (until is None or self.search.round < until):
      self.rung += 1
      segments = self.search.segments
      accuracy, sparsity = self.landscape(self.lam, np.minimum(self.rung, segments), segments)
      self.take(self.search.observe({"validation_accuracy": accuracy, "zero_weights": sparsity}))
    return self.assignments


def drive(search: adaptive.Refill, until: int | None = None) -> list[adaptive.Assignment]:
  """Runs the search on the landscape as a loop would; returns every assignment."""
  return Loop(search).run(until)


def boundary() -> float:
  """log10 λ where the final accuracy drops 0.01 below its plateau (0.97): the answer."""
  return -2.5 + 0.15 * math.log(0.01 / 0.59)


def test_refill_reaches_the_constrained_boundary_with_a_quarter_of_a_64_point_grid():
  grid = np.log10(np.logspace(-5, -1, 64))
  grid_error = boundary() - grid[grid <= boundary()].max()  # the 64-point grid's choice
  errors = []
  for seed in range(10):
    search = adaptive.Refill(SPACE, SPARSEST, slots=4, seeds=1, segments=4, rounds=16,
                             seed=seed)
    drive(search)
    assert search.row_segments <= 4 * 16  # <= 16 full runs, a quarter of 64 points
    table = search.table()
    assert len(table["status"]) > 16  # more points tried than full runs paid for
    errors.append(boundary() - np.log10(search.best()["lam"]))
  errors = np.array(errors)
  # Over 10 searches: as close as the grid's choice in the median, never far off. A point
  # slightly past the boundary can be chosen when no completed run sits on the plateau
  # (the bar is then the best completed accuracy, a little below 0.97).
  assert np.median(errors) <= grid_error
  assert np.all((errors > -0.03) & (errors < 0.15)), errors


def test_stops_follow_asha_and_every_started_point_completes():
  search = adaptive.Refill(SPACE, SPARSEST, slots=6, seeds=2, segments=3, rounds=7,
                           keep=1 / 3, seed=1)
  loop = Loop(search)
  first = search.start()
  assert first.rows.tolist() == list(range(12)) and first.seeds.tolist() == [0, 1] * 6
  loop.take(first)
  loop.rung += 1
  accuracy = np.repeat([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 2)
  refill = search.observe({"validation_accuracy": accuracy, "zero_weights": accuracy * 0})
  # Rung 1 holds 6 points; the top ceil(6/3) = 2 go on, slots 2..5 are refilled.
  assert refill.rows.tolist() == list(range(4, 12))
  assert refill.idle.size == 0
  loop.take(refill)
  assignments = loop.run()
  table = search.table()
  started_late = table["round"] > search.rounds - search.segments
  assert not started_late.any()  # no point starts unless it can complete
  assert set(table["status"]) <= {"complete", "stopped"}
  assert np.all(table["rung"][table["status"] == "complete"] == 3)
  # Idle rows appear only once no new point can complete (rounds - round < segments).
  for done, assignment in enumerate(assignments):
    if assignment.idle.size:
      assert search.rounds - done < search.segments
  assert search.idle_row_segments < search.row_segments / 4


def test_the_most_accurate_point_is_kept_for_the_constrained_bar():
  search = adaptive.Refill(SPACE, SPARSEST, slots=6, segments=3, rounds=6, keep=1 / 3)
  search.start()
  accuracy = np.array([0.97, 0.965, 0.962, 0.50, 0.10, 0.10])
  sparsity = np.array([0.10, 0.50, 0.60, 0.99, 1.00, 1.00])
  refill = search.observe({"validation_accuracy": accuracy, "zero_weights": sparsity})
  # By the objective the top ceil(6/3) = 2 are points 2 and 1; point 0 sets the bar.
  assert refill.rows.tolist() == [3, 4, 5]
  accuracy_only = adaptive.Refill(SPACE, adaptive.Maximize("zero_weights"), slots=6,
                                  segments=3, rounds=6, keep=1 / 3)
  accuracy_only.start()
  assert accuracy_only.observe({"zero_weights": sparsity}).rows.tolist() == [0, 1, 2, 3]


def test_proposals_stay_inside_the_space_and_respect_categories():
  space = adaptive.Space(lam=adaptive.LogUniform(1e-4, 1e-2), rate=adaptive.Uniform(0.1, 0.3),
                         method=adaptive.Choice(["prox", "decay", "group"]),
                         width=adaptive.Choice([16, 64]))
  search = adaptive.Refill(space, adaptive.Maximize("score"), slots=9, segments=2, rounds=12,
                           keep=0.5, explore=0.1, seed=3)
  assignment = search.start()
  method = np.zeros(search.rows)
  seen = []
  while not search.done:
    method[assignment.rows] = assignment.hparams["method"]
    seen.append(assignment)
    # "decay" (index 1) always wins by far: refinements must keep it.
    search_score = np.where(method == 1, 1.0, 0.0) + 0.01 * np.arange(search.rows)
    assignment = search.observe({"score": search_score})
  hparams = {name: np.concatenate([a.hparams[name] for a in seen]) for name in space.names}
  assert np.all((hparams["lam"] >= 1e-4) & (hparams["lam"] <= 1e-2))
  assert np.all((hparams["rate"] >= 0.1) & (hparams["rate"] <= 0.3))
  assert set(hparams["method"]) <= {0.0, 1.0, 2.0}  # option indices for named options
  assert set(hparams["width"]) <= {16.0, 64.0}  # numeric options passed as themselves
  later = np.concatenate([a.hparams["method"] for a in seen[3:]])
  assert np.mean(later == 1) > 0.7  # refinements keep the elite's category
  table = search.table()
  assert set(table["method"]) <= {"prox", "decay", "group"} and search.best()["method"] == "decay"


def test_first_points_stratify_every_dimension():
  space = adaptive.Space(lam=adaptive.LogUniform(1e-5, 1e-1), method=adaptive.Choice(["a", "b"]))
  search = adaptive.Refill(space, adaptive.Maximize("m"), slots=8, segments=1, rounds=1)
  first = search.start()
  strata = np.floor(space.dimensions["lam"].to_unit(first.hparams["lam"]) * 8)
  assert sorted(strata.tolist()) == list(range(8))
  assert np.bincount(first.hparams["method"].astype(int)).tolist() == [4, 4]


def test_same_seed_same_search_and_a_saved_state_resumes_it_exactly():
  def make(seed):
    return adaptive.Refill(SPACE, SPARSEST, slots=5, seeds=2, segments=3, rounds=9, seed=seed)

  def flat(assignments):
    return [(a.rows.tolist(), a.hparams["lam"].tolist(), a.idle.tolist()) for a in assignments]

  whole = flat(drive(make(7)))
  assert whole == flat(drive(make(7)))
  assert whole != flat(drive(make(8)))
  loop = Loop(make(7))
  head = flat(loop.run(until=4))
  saved = json.loads(json.dumps(loop.search.state_dict()))  # it survives JSON
  resumed = Loop(make(7))
  resumed.search.load_state_dict(saved)
  resumed.lam, resumed.rung = loop.lam.copy(), loop.rung.copy()  # the loop's own checkpoint
  assert head + flat(resumed.run()) == whole
  with pytest.raises(ValueError, match="configured"):
    make(8).load_state_dict(saved)


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="rounds"):
    adaptive.Refill(SPACE, SPARSEST, slots=2, segments=4, rounds=3)
  with pytest.raises(ValueError, match="keep"):
    adaptive.Refill(SPACE, SPARSEST, slots=2, segments=1, rounds=3, keep=0)
  with pytest.raises(ValueError, match="seeds"):
    adaptive.Refill(SPACE, SPARSEST, slots=2, seeds=[1, 1], segments=1, rounds=3)
  with pytest.raises(ValueError, match="low"):
    adaptive.LogUniform(0.0, 1.0)
  with pytest.raises(TypeError, match="Dimension `lam`"):
    adaptive.Space(lam=(1e-5, 1e-1))
  search = adaptive.Refill(SPACE, SPARSEST, slots=2, segments=1, rounds=2)
  search.start()
  with pytest.raises(KeyError, match="zero_weights"):
    search.observe({"validation_accuracy": np.ones(2)})
  with pytest.raises(ValueError, match="completed"):
    search.best()
