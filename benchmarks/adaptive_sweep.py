"""Adaptive λ search against the full grid and against Optuna (TPE + successive halving).

Two problems, each an MLP trained by ``regjax.prox_adam`` (L1 on the kernels,
``regjax.masks.matrices``, learning rate 1e-2, batch 128) for ``--steps`` steps cut into
``--segments`` segments, with a validation split carved from the training data:

* digits: ``regjax.models.MLP(64, (64, 64), 10)`` on the embedded 8x8 digits (1,150
  train / 287 validation, stratified, seed 0; the fixed 360 test digits);
* MNIST-1D: ``regjax.models.MLP(40, (100, 100), 10)`` on ``regjax.data.load_mnist1d``
  (3,200 train / 800 validation / 1,000 test).

Two objectives, both read on the **validation** split as the mean over a point's seeds:
``Maximize("validation_accuracy")`` and ``MaximizeWithin("zero_weights",
"validation_accuracy", 0.01)`` (the sparsest model within 1 point of the best validation
accuracy). Every repetition ``r`` uses its own seeds ``[k·r, ..., k·r + k - 1]`` in every
arm, ``--reps`` repetitions in all.

Arms:

* **grid**: ``--grid-points`` log-spaced λ x the seeds, trained to the end by one
  ``regjax.sweep`` call per repetition (compiled once: later calls reuse the program).
* **optuna**: ``optuna.samplers.TPESampler(seed=r)`` with
  ``optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)``, one
  trial at a time; a trial is λ drawn log-uniformly over the grid's range and trained on
  the same seeds (vmapped over the seeds) segment by segment, reporting the objective
  after each segment so the pruner can stop it. Each segment is one call of a jitted
  ``(λ, state) -> (state, metrics)``, with λ an argument: the initialization and the
  segment programs compile once for the whole benchmark (checked by their jit cache
  sizes, printed) and their compile time is reported apart and left out of the times
  below. For the constrained objective a trial's value is ``MaximizeWithin.score`` against
  the trials seen so far (completed trials for final values, trials reported at the same
  segment for intermediate ones): the bar moves as better accuracies appear, as it would
  for a user. As in the adaptive policy (``MaximizeWithin.anchor``), a trial that leads
  the validation accuracy at its segment by a quarter of the margin is not pruned, so the
  bar comes from a full run; the arm ``optuna_plain`` prunes by the score alone, to show
  what that costs. The study runs until it has reached the target (below) and spent a quarter
  of the grid's model·steps, or until it has spent as many as the grid.
* **adaptive**: ``regjax.adaptive_sweep`` (the policy ``regjax.experiment.adaptive.Refill``
  driving the one sweep loop segment by segment) with a quarter of the grid's model·steps:
  ``grid points / 16`` slots x the seeds for ``4 x segments`` rounds (4 slots, 16 rounds
  by default; ``--slots`` changes the width, the rounds follow to keep the budget; the
  search stops sooner if every slot idles), ``keep=1/3``, ``explore=0.25``, policy seed
  ``r``. Its programs compile in
  a first call per problem, reported apart; model·steps to the target are counted at the
  end of the segment in which the first point meeting it completed, times from the
  call's own timeline (``result.timeline``).

Figures:

* **to reach the same validation objective**: the target of repetition ``r`` comes from
  its grid: a completed point whose validation accuracy is within 0.5 point of the grid's
  best (accuracy objective); or whose validation accuracy clears the grid's bar (its best
  minus 1 point) with a share of zero weights within 2 points of the grid's choice
  (constrained objective). Model·steps count every step of every seed of every trial,
  pruned ones included; times are wall and process CPU seconds of the arm (2 shared
  cores: read the CPU time, and the ratios).
* **held out**: the test accuracy and zero share of each arm's chosen point (Optuna's
  incumbent once it has spent a quarter of the grid's model·steps), 95% t intervals over
  the repetitions, and paired differences against the grid's choice.
* **fresh seeds** (``--truth-seeds``, 16 by default): every grid λ trained once more on
  seeds no arm sees (1000, 1001, ...); each arm's choice is read on these means
  (interpolated in ``log λ``): its zero share and validation accuracy there, and whether
  it meets the objective there (within the margin of their best validation accuracy for
  the constrained objective, within 0.5 point of it for accuracy). This checks whether a
  choice is an artifact of picking among noisy points (the winner's curse).
* **refill cost**: the host-side time between segments (the policy's decision and its
  bookkeeping, ``result.host_seconds``) as a share of a segment's wall time, per search;
  and the policy's decision alone for a synthetic table. The device-side
  re-initialization of refilled rows is one compiled ``where(mask, init, state)`` that
  the loop runs inside the next segment's time.

Run: ``python -m benchmarks.adaptive_sweep [--quick] [--problems digits,mnist1d]
[--slots N] [--figure PATH]``; ``--figure`` draws the frontier each method found in
repetition 0 of the constrained objective (``docs/_static/adaptive_frontier.png`` comes
from the full run); ``--slots`` changes the adaptive search's width at the same budget.
Needs the ``bench`` extra (``pip install -e '.[bench]'``, also in ``dev``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import regjax
from benchmarks import _common
from regjax.experiment import adaptive

LEARNING_RATE = 1e-2
BATCH = 128
MARGIN = 0.01  # the constrained objective: within 1 point of the best validation accuracy
ACCURACY_TOLERANCE = 0.005  # the accuracy objective's target: within 0.5 point of the grid
SPARSITY_TOLERANCE = 0.02  # the constrained target: within 2 points of the grid's zero share
OBJECTIVES = {
    "accuracy": adaptive.Maximize("validation_accuracy"),
    "sparsest": adaptive.MaximizeWithin("zero_weights", "validation_accuracy", MARGIN),
}
COLUMNS = ("validation_accuracy", "zero_weights", "test_accuracy")
FRESH_SEED = 1000  # the fresh-seed reference's first seed (the repetitions use 0, 1, ...)


@dataclasses.dataclass(frozen=True)
class Problem:
  """A model, its data, its λ range and how a run is cut into segments."""

  name: str
  trainer: Any
  low: float  # log10 of the smallest λ
  high: float
  segments: int

  @property
  def segment_steps(self) -> int:
    return self.trainer.steps // self.segments


def make_problem(name: str, steps: int, segments: int) -> Problem:
  if name == "digits":
    train, test = regjax.data.digits()
    train, validation = regjax.data.from_arrays(
        np.asarray(train.inputs), np.asarray(train.labels), test_fraction=0.2, seed=0)
    widths = (64, (64, 64), 10)
  elif name == "mnist1d":
    split = {"validation_fraction": 0.2}
    train = regjax.data.load_mnist1d("train", **split)
    validation = regjax.data.load_mnist1d("validation", **split)
    test = regjax.data.load_mnist1d("test")
    widths = (40, (100, 100), 10)
  else:
    raise ValueError(f"unknown problem {name!r}; choose digits or mnist1d")
  trainer = regjax.Trainer(
      model=lambda rngs: regjax.models.MLP(*widths, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(LEARNING_RATE, h["lam"], mask=regjax.masks.matrices),
      train=train, test=test, validation=validation, steps=steps, batch_size=BATCH)
  return Problem(name, trainer, -5.0, -1.0, segments)


# ----------------------------------------------------------------------------- bookkeeping


@dataclasses.dataclass
class Arm:
  """What one arm did in one repetition."""

  model_steps: float  # spent in all
  wall: float
  cpu: float
  chosen: dict[str, float]  # the chosen point: lam and COLUMNS (means over seeds)
  to_target: tuple[float, float, float] | None  # (model·steps, wall, cpu) when reached
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)
  trained: dict[str, np.ndarray] | None = None  # the points it trained (for --figure)


class Clock:
  """Wall and process CPU seconds since it was made."""

  def __init__(self):
    self.wall, self.cpu = time.perf_counter(), time.process_time()

  def read(self) -> tuple[float, float]:
    return time.perf_counter() - self.wall, time.process_time() - self.cpu


def choose(table: dict[str, np.ndarray], objective: Any) -> int:
  return int(objective.order(table)[0])


def target(grid: dict[str, np.ndarray], objective_name: str) -> Callable[[dict], bool]:
  """Whether a point's validation metrics reach what the grid reached (see the docstring)."""
  best = float(np.nanmax(grid["validation_accuracy"]))
  if objective_name == "accuracy":
    return lambda point: point["validation_accuracy"] >= best - ACCURACY_TOLERANCE - 1e-9
  chosen = choose(grid, OBJECTIVES["sparsest"])
  sparsity = float(grid["zero_weights"][chosen])
  return lambda point: (point["validation_accuracy"] >= best - MARGIN - 1e-9
                        and point["zero_weights"] >= sparsity - SPARSITY_TOLERANCE)


# ----------------------------------------------------------------------------- fresh seeds


@dataclasses.dataclass(frozen=True)
class Truth:
  """Every grid λ trained on fresh seeds that no arm sees (``FRESH_SEED`` on): the
  reference each arm's choice is checked against, read at any λ by interpolating the
  means in ``log λ`` between the grid's points."""

  lams: np.ndarray
  means: dict[str, np.ndarray]
  seeds: int

  @classmethod
  def measure(cls, problem: Problem, points: int, seeds: int) -> Truth:
    lambdas = np.logspace(problem.low, problem.high, points)
    result = regjax.sweep(problem.trainer, regjax.grid(lam=lambdas),
                          seeds=list(range(FRESH_SEED, FRESH_SEED + seeds)), progress=False)
    means = {name: np.asarray(result[name], np.float64).reshape(points, seeds).mean(1)
             for name in COLUMNS}
    return cls(lambdas, means, seeds)

  def at(self, lam: float, name: str) -> float:
    return float(np.interp(np.log(lam), np.log(self.lams), self.means[name]))

  @property
  def best(self) -> float:
    return float(self.means["validation_accuracy"].max())

  def meets(self, lam: float, objective_name: str) -> bool:
    """Whether λ meets the objective on the fresh seeds: within the margin of their best
    validation accuracy (sparsest), or within ``ACCURACY_TOLERANCE`` of it (accuracy)."""
    slack = MARGIN if objective_name == "sparsest" else ACCURACY_TOLERANCE
    return self.at(lam, "validation_accuracy") >= self.best - slack - 1e-9

  def sparsest(self) -> int:
    """The grid index of the sparsest λ within the margin of the best, on fresh seeds."""
    return choose(self.means, OBJECTIVES["sparsest"])

  def describe(self, name: str) -> str:
    i, means = self.sparsest(), self.means
    top = self.lams[np.argmax(means["validation_accuracy"])]
    return (f"-- {name}: fresh-seed reference, {len(self.lams)} λ x {self.seeds} seeds "
            f"({FRESH_SEED}..{FRESH_SEED + self.seeds - 1}): best validation accuracy "
            f"{self.best:.4f} at λ {top:.3g}; the sparsest λ within {MARGIN:.0%} of it: "
            f"{self.lams[i]:.3g} (zero weights {means['zero_weights'][i]:.3f}, validation "
            f"{means['validation_accuracy'][i]:.4f}, test {means['test_accuracy'][i]:.4f})")

  def check(self, runs: list[Arm], objective_name: str) -> str:
    """The line on an arm's choices: their zero share and validation accuracy on the fresh
    seeds, and in how many repetitions the choice meets the objective there."""
    lams = [r.chosen["lam"] for r in runs]
    zeros = [self.at(lam, "zero_weights") for lam in lams]
    accuracy = [self.at(lam, "validation_accuracy") for lam in lams]
    met = sum(self.meets(lam, objective_name) for lam in lams)
    return (f"           on {self.seeds} fresh seeds: zero weights {_common.t_interval(zeros, ' ')}"
            f", validation accuracy {_common.t_interval(accuracy, ' ')}; meets the objective "
            f"there in {met}/{len(runs)}")


# ----------------------------------------------------------------------------- grid arm


def grid_arm(problem: Problem, points: int, seeds: list[int]) -> tuple[dict, Arm]:
  """Every λ to the end with ``regjax.sweep``; the table holds means over the seeds."""
  lambdas = np.logspace(problem.low, problem.high, points)
  clock = Clock()
  result = regjax.sweep(problem.trainer, regjax.grid(lam=lambdas), seeds=seeds, progress=False)
  wall, cpu = clock.read()
  rows = {name: np.asarray(result[name], np.float64) for name in ("lam", *COLUMNS)}
  table = {"lam": lambdas}
  for name in COLUMNS:  # rows are point-major: (point, seed)
    table[name] = rows[name].reshape(points, len(seeds)).mean(1)
  steps = float(points * len(seeds) * problem.trainer.steps)
  return table, Arm(steps, wall, cpu, {}, (steps, wall, cpu), trained=table)


def with_choice(table: dict, arm: Arm, objective: Any) -> Arm:
  index = choose(table, objective)
  chosen = {name: float(values[index]) for name, values in table.items()}
  return dataclasses.replace(arm, chosen=chosen)


# ----------------------------------------------------------------------------- optuna arm


class Runner:
  """One λ on all the seeds of a repetition, segment by segment: two jitted programs,
  each compiled once (λ and the state are arguments)."""

  def __init__(self, problem: Problem):
    trainer, steps = problem.trainer, problem.segment_steps

    def init(lam, seeds):
      return jax.vmap(lambda seed: trainer.init({"lam": lam}, jax.random.key(seed)))(seeds)

    def segment(lam, state):
      def one(state):
        state = trainer.advance({"lam": lam}, state, steps)
        found = trainer.evaluate({"lam": lam}, state)
        return state, {name: found[name] for name in COLUMNS}

      return jax.vmap(one)(state)

    self.init, self.segment = jax.jit(init), jax.jit(segment)
    self.problem = problem

  def compile(self, seeds: list[int]) -> float:
    clock = Clock()
    lam = jnp.asarray(1e-4, jnp.float32)
    state = self.init(lam, jnp.asarray(seeds, jnp.uint32))
    jax.block_until_ready(self.segment(lam, state))
    return clock.read()[0]

  def compilations(self) -> int:
    return self.init._cache_size() + self.segment._cache_size()


class Study:
  """The Optuna arm of one repetition and objective."""

  def __init__(self, runner: Runner, seeds: list[int], objective_name: str,
               reached: Callable[[dict], bool], budget: float, cap: float, rep: int,
               anchored: bool):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    self.optuna, self.runner, self.seeds = optuna, runner, seeds
    self.objective = OBJECTIVES[objective_name]
    self.reached, self.budget, self.cap, self.anchored = reached, budget, cap, anchored
    self.reports: dict[int, list[dict[str, float]]] = {}
    self.completed: list[dict[str, float]] = []
    self.steps, self.to_target, self.incumbent = 0.0, None, None
    self.trials = self.pruned = 0
    self.study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=rep),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3))

  def value(self, table: list[dict[str, float]]) -> float:
    columns = {name: np.array([p[name] for p in table]) for name in self.objective.metrics}
    return float(self.objective.score(columns)[-1])

  def trial(self, trial: Any) -> float:
    problem = self.runner.problem
    lam = trial.suggest_float("lam", 10**problem.low, 10**problem.high, log=True)
    lam_arg = jnp.asarray(lam, jnp.float32)
    state = self.runner.init(lam_arg, jnp.asarray(self.seeds, jnp.uint32))
    for segment in range(1, problem.segments + 1):
      state, metrics = self.runner.segment(lam_arg, state)
      point = {name: float(np.mean(values)) for name, values in metrics.items()}
      point["lam"] = lam
      self.steps += len(self.seeds) * problem.segment_steps
      if segment == problem.segments:
        break
      self.reports.setdefault(segment, []).append(point)
      trial.report(self.value(self.reports[segment]), segment)
      if trial.should_prune() and not (self.anchored and self.leads(self.reports[segment])):
        self.pruned += 1
        raise self.optuna.TrialPruned()
    self.completed.append(point)
    return self.value(self.completed)

  def leads(self, table: list[dict[str, float]]) -> bool:
    """Whether the latest trial is the objective's anchor among the trials at this step."""
    columns = {name: np.array([p[name] for p in table]) for name in self.objective.metrics}
    return self.objective.anchor(columns) == len(table) - 1

  def run(self, clock: Clock) -> Arm:
    while self.steps < self.cap:
      self.study.optimize(self.trial, n_trials=1)
      self.trials += 1
      if self.to_target is None and self.completed and self.reached(self.completed[-1]):
        self.to_target = (self.steps, *clock.read())
      if self.incumbent is None and self.steps >= self.budget and self.completed:
        self.incumbent = self.choice()
      if self.to_target is not None and self.incumbent is not None:
        break
    wall, cpu = clock.read()
    return Arm(self.steps, wall, cpu, self.incumbent or self.choice(), self.to_target,
               {"trials": self.trials, "pruned": self.pruned})

  def choice(self) -> dict[str, float]:
    if not self.completed:
      return {name: float("nan") for name in ("lam", *COLUMNS)}
    columns = {name: np.array([p[name] for p in self.completed]) for name in
               self.completed[0]}
    return dict(self.completed[choose(columns, self.objective)])


def optuna_arm(runner: Runner, seeds: list[int], objective_name: str,
               reached: Callable[[dict], bool], grid_steps: float, rep: int,
               anchored: bool = True) -> Arm:
  study = Study(runner, seeds, objective_name, reached, grid_steps / 4, grid_steps, rep,
                anchored)
  return study.run(Clock())


# ----------------------------------------------------------------------------- adaptive arm


def adaptive_arm(problem: Problem, seeds: list[int], objective_name: str,
                 reached: Callable[[dict], bool], grid_steps: float, rep: int,
                 slots: int | None = None) -> Arm:
  """``regjax.adaptive_sweep`` with a quarter of the grid's model·steps: ``slots`` (by
  default ``grid points / 16``) for as many rounds as that budget buys (``4 x segments``
  by default). Its programs are compiled by a first call (see :func:`main`); later calls
  with the same Trainer reuse them."""
  runs = grid_steps / (len(seeds) * problem.trainer.steps)  # the grid's points
  default = max(1, round(runs / 16))
  slots = slots or default
  rounds = max(problem.segments, round(4 * problem.segments * default / slots))
  clock = Clock()
  result = regjax.adaptive_sweep(
      problem.trainer, adaptive.Space(lam=adaptive.LogUniform(10**problem.low, 10**problem.high)),
      objective=OBJECTIVES[objective_name], slots=slots, rounds=rounds,
      segments=problem.segments, seeds=seeds, seed=rep, progress=False)
  wall, cpu = clock.read()
  search = result.search
  table = search.table()
  done_at = table["round"] + problem.segments  # the segment at whose end each point completed
  to_target = None
  timeline = {done: (w, c) for done, w, c in result.timeline}
  for done in range(problem.segments, rounds + 1):
    complete = (table["status"] == "complete") & (done_at <= done)
    if any(reached({n: table[n][p] for n in COLUMNS}) for p in np.flatnonzero(complete)):
      to_target = (float(search.rows * done * problem.segment_steps), *timeline[done])
      break
  walls = np.diff([w for _, w, _ in result.timeline])
  best = search.best()
  host_share = result.host_seconds / len(result.timeline) / float(np.median(walls))
  return Arm(float(result.model_steps), wall, cpu,
             {n: float(best[n]) for n in ("lam", *COLUMNS)}, to_target,
             {"points": len(table["status"]),
              "complete": int(np.sum(table["status"] == "complete")),
              "host share": host_share}, trained=table)


def refill_cost(problem: Problem, slots: int, seeds: list[int], segment_seconds: float) -> None:
  """The policy's decision time per refill, against one segment of the adaptive program."""
  rounds = 4 * problem.segments
  search = adaptive.Refill(adaptive.Space(lam=adaptive.LogUniform(1e-5, 1e-1)),
                           OBJECTIVES["sparsest"], slots=slots, seeds=seeds,
                           segments=problem.segments, rounds=rounds)
  search.start()
  rng = np.random.default_rng(0)
  times = []
  while not search.done:
    metrics = {"validation_accuracy": rng.uniform(0.9, 1.0, search.rows),
               "zero_weights": rng.uniform(0, 1, search.rows)}
    start = time.perf_counter()
    search.observe(metrics)
    times.append(time.perf_counter() - start)
  times_ms = np.asarray(times) * 1e3
  print(f"  policy decision (Refill.observe, {slots} slots x {len(seeds)} seeds, {rounds} "
        f"rounds): {_common.spread(times_ms)} ms per refill")
  _common.ratio_line(f"policy time per refill / segment time {problem.name}",
                     np.asarray(times) / segment_seconds)


# ----------------------------------------------------------------------------- report


def report(problem: Problem, objective_name: str, arms: dict[str, list[Arm]],
           truth: Truth | None = None) -> None:
  grid = arms["grid"]
  print(f"\n-- {problem.name}, objective {objective_name}: {len(grid)} repetitions")
  for name, runs in arms.items():
    if not runs:
      print(f"  {name:8s} not run (needs the sweep loop's segment hook, issue 20)")
      continue
    reached = [run for run in runs if run.to_target is not None]
    line = (f"  {name:8s} spent {_common.spread([r.model_steps for r in runs])} model·steps, "
            f"wall {_common.spread([r.wall for r in runs])} s, "
            f"CPU {_common.spread([r.cpu for r in runs])} s; reached the target in "
            f"{len(reached)}/{len(runs)}")
    if reached:
      steps, wall, cpu = (np.array([r.to_target[i] for r in reached]) for i in range(3))
      line += (f": model·steps {_common.spread(steps)}, wall {_common.spread(wall)} s, "
               f"CPU {_common.spread(cpu)} s to reach it")
    counts = {k: int(np.sum([r.extra[k] for r in runs])) for k in runs[0].extra
              if k != "host share"}
    print(line + (f"; in all {counts}" if counts else ""))
    if "host share" in runs[0].extra:
      share = _common.ratio_line(
          f"refill host time / segment time {problem.name} {objective_name}",
          [r.extra["host share"] for r in runs])
      _common.target_line(f"refill cost <= 5% of a segment, {problem.name} {objective_name}",
                          share <= 0.05, f"host-side decision {share:.2%} of a segment's wall "
                          "time (the device re-initialization runs inside the segment)")
    print(f"           chosen λ {_common.spread([r.chosen['lam'] for r in runs])}; test accuracy "
          f"{_common.t_interval([r.chosen['test_accuracy'] for r in runs], ' ')}, zero weights "
          f"{_common.t_interval([r.chosen['zero_weights'] for r in runs], ' ')} (95% t)")
    if truth is not None:
      print(truth.check(runs, objective_name))
    if name != "grid":
      for column in ("test_accuracy", "zero_weights"):
        print(f"           paired {name} - grid {column}: " + _common.t_interval(
            [r.chosen[column] - g.chosen[column] for r, g in zip(runs, grid, strict=True)]))
      pairs = [(r, g) for r, g in zip(runs, grid, strict=True) if r.to_target is not None]
      if pairs:
        for i, what in enumerate(("model·steps", "wall time", "CPU time")):
          _common.ratio_line(f"{name}/grid {what} to target {problem.name} {objective_name}",
                             [r.to_target[i] / g.to_target[i] for r, g in pairs])
    if name == "adaptive":
      pairs = [(r, o) for r, o in zip(runs, arms["optuna"], strict=True)
               if r.to_target is not None and o.to_target is not None]
      print(f"           reached by both adaptive and optuna in {len(pairs)}/{len(runs)}")
      if pairs:
        for i, what in enumerate(("model·steps", "wall time", "CPU time")):
          _common.ratio_line(f"adaptive/optuna {what} to target {problem.name} "
                             f"{objective_name}", [r.to_target[i] / o.to_target[i]
                                                   for r, o in pairs])
      targets(problem, objective_name, runs, grid, arms["optuna"], pairs)


def bounds(values: list[float]) -> tuple[float, float]:
  """The 95% Student-t interval of the mean."""
  from scipy import stats

  values_ = np.asarray(values, np.float64)
  half = stats.t.ppf(0.975, values_.size - 1) * values_.std(ddof=1) / np.sqrt(values_.size)
  return float(values_.mean() - half), float(values_.mean() + half)


def targets(problem: Problem, objective_name: str, runs: list[Arm], grid: list[Arm],
            optuna: list[Arm], pairs: list[tuple[Arm, Arm]]) -> None:
  """The issue's goals for the adaptive arm, each MET or MISSED with its figures."""
  where = f"{problem.name} {objective_name}"
  budget = max(r.model_steps / g.model_steps for r, g in zip(runs, grid, strict=True))
  columns = ("test_accuracy",) + (("zero_weights",) if objective_name == "sparsest" else ())
  for column in columns:
    mean = float(np.mean([r.chosen[column] for r in runs]))
    low, high = bounds([g.chosen[column] for g in grid])
    _common.target_line(
        f"adaptive choice inside the grid's 95% interval, {column}, <= 1/4 model·steps, {where}",
        low <= mean <= high and budget <= 0.25 + 1e-9,
        f"adaptive mean {mean:.4f}, grid interval [{low:.4f}, {high:.4f}], "
        f"model·steps {budget:.3f}x the grid's")
  if pairs:
    wall = float(np.median([r.to_target[1] / o.to_target[1] for r, o in pairs]))
    steps = float(np.median([r.to_target[0] / o.to_target[0] for r, o in pairs]))
    _common.target_line(
        f"adaptive reaches the target in less wall time than Optuna, {where}", wall < 1,
        f"median wall-time ratio {wall:.3g}x over {len(pairs)} repetitions both reached")
    _common.target_line(
        f"adaptive model·steps to target <= 1.5x Optuna's, {where}", steps <= 1.5,
        f"median ratio {steps:.3g}x over {len(pairs)} repetitions")
  alone = [r for r in runs if r.to_target is not None]
  others = [o for o in optuna if o.to_target is not None]
  print(f"           reached the target: adaptive {len(alone)}/{len(runs)}, optuna "
        f"{len(others)}/{len(optuna)}")


# ----------------------------------------------------------------------------- figure


def draw_figure(path: str, panels: list[tuple[Problem, Arm, Arm, Truth | None]],
                seeds: int) -> None:
  """The sparsity–accuracy frontier each method found (one repetition, the constrained
  objective), one row per problem: validation accuracy against λ (left) and against the
  share of zero weights (right), every point each method trained, the choices, the bars."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(len(panels), 2, figsize=(12, 4.6 * len(panels)), squeeze=False)
  for (problem, grid, found, truth), (by_lam, frontier) in zip(panels, axes, strict=True):
    table, points = grid.trained, found.trained
    assert table is not None and points is not None
    complete = points["status"] == "complete"
    stopped = ~complete
    top = float(np.nanmax(table["validation_accuracy"]))
    styles = {
        "grid": dict(color="0.45", marker="o", s=16),
        "adaptive": dict(color="tab:blue", marker="o", s=30, edgecolor="k", linewidth=0.4)}
    labels = {"grid": f"grid: {len(table['lam'])} λ to the end, {grid.model_steps:,.0f} "
                      "model·steps",
              "adaptive": f"adaptive_sweep: {int(complete.sum())} completed, "
                          f"{found.model_steps:,.0f} model·steps"}
    for ax, x in ((by_lam, "lam"), (frontier, "zero_weights")):
      ax.scatter(table[x], table["validation_accuracy"], label=labels["grid"], **styles["grid"])
      ax.scatter(points[x][complete], points["validation_accuracy"][complete],
                 label=labels["adaptive"], zorder=3, **styles["adaptive"])
      for arm, color, who, size in ((grid, "k", "grid", 420), (found, "tab:blue",
                                                                "adaptive_sweep", 170)):
        ax.scatter(arm.chosen[x], arm.chosen["validation_accuracy"], marker="*", s=size,
                   color=color, edgecolor="w", zorder=4,
                   label=f"{who}'s choice: test accuracy {arm.chosen['test_accuracy']:.3f}")
      bars = ((table["validation_accuracy"], "0.3"),
              (points["validation_accuracy"][complete], "tab:blue"))
      for accuracy, color in bars:
        ax.axhline(np.nanmax(accuracy) - MARGIN, color=color, linestyle="--", linewidth=0.9)
      ax.set_ylim(top - 5 * MARGIN, top + MARGIN)  # the band around the bar
      ax.set_ylabel(f"validation accuracy (mean of {seeds} seeds)")
    if truth is not None:
      frontier.plot(truth.means["zero_weights"], truth.means["validation_accuracy"], color="k",
                    linewidth=0.8, alpha=0.6, label=f"the same grid on {truth.seeds} fresh seeds")
    rug = by_lam.get_ylim()[0]
    by_lam.scatter(points["lam"][stopped], np.full(stopped.sum(), rug), marker="|", s=120,
                   color="tab:blue", alpha=0.7, clip_on=False,
                   label=f"adaptive_sweep: {int(stopped.sum())} stopped early (λ only)")
    by_lam.set_xscale("log")
    by_lam.set_xlabel("λ (L1 strength)")
    frontier.set_xlabel("share of exactly-zero kernel weights")
    by_lam.set_title(f"{problem.name}: every point trained (stars: the choices; dashed: "
                     "each bar)", fontsize=10)
    frontier.set_title(f"{problem.name}: the sparsity–accuracy frontier", fontsize=10)
    for ax in (by_lam, frontier):
      ax.legend(fontsize=7.5, loc="lower left")
  fig.suptitle("The sparsest λ within 1 point of the best validation accuracy: the full grid "
               "against regjax.adaptive_sweep at a quarter of its model·steps")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  print(f"figure written to {path}")


# ----------------------------------------------------------------------------- main


def run_problem(name: str, args: Any, settings: tuple[int, int, int, int, int],
                ) -> tuple[Problem, dict[str, dict[str, list[Arm]]], Truth | None]:
  """Every arm on one problem, every repetition; prints the problem's figures."""
  reps, k, steps, segments, points = settings
  problem = make_problem(name, steps, segments)
  runner = Runner(problem)
  compile_seconds = runner.compile(list(range(k)))
  clock = Clock()
  grid_arm(problem, points, list(range(k)))  # compiles the grid's program: not timed below
  grid_compile = clock.read()
  clock = Clock()
  warm = target({"validation_accuracy": np.ones(1), "zero_weights": np.ones(1)}, "accuracy")
  adaptive_arm(problem, list(range(k)), "accuracy", warm, points * k * steps, 0,
               args.slots)  # compiles
  adaptive_compile = clock.read()
  grids: list[Arm] = []
  arms: dict[str, dict[str, list[Arm]]] = {o: {"grid": [], "optuna": []} for o in OBJECTIVES}
  arms["sparsest"]["optuna_plain"] = []  # pruned by the score alone, without the anchor
  for runs in arms.values():
    runs["adaptive"] = []
  for rep in range(reps):
    seeds = list(range(k * rep, k * rep + k))
    table, grid = grid_arm(problem, points, seeds)
    grids.append(grid)
    for objective_name, objective in OBJECTIVES.items():
      reached = target(table, objective_name)
      arms[objective_name]["grid"].append(with_choice(table, grid, objective))
      arms[objective_name]["optuna"].append(optuna_arm(
          runner, seeds, objective_name, reached, grid.model_steps, rep))
      if "optuna_plain" in arms[objective_name]:
        arms[objective_name]["optuna_plain"].append(optuna_arm(
            runner, seeds, objective_name, reached, grid.model_steps, rep, anchored=False))
      arms[objective_name]["adaptive"].append(adaptive_arm(
          problem, seeds, objective_name, reached, grid.model_steps, rep, args.slots))
    print(f"[{name} rep {rep}: grid wall {grid.wall:.1f} s CPU {grid.cpu:.1f} s; best "
          f"validation accuracy {np.nanmax(table['validation_accuracy']):.4f}]", flush=True)
  truth = Truth.measure(problem, points, args.truth_seeds) if args.truth_seeds else None
  print(f"\n== {name}: compilation, left out of every time below: Optuna's two programs "
        f"{compile_seconds:.2f} s wall, jit cache entries after all trials "
        f"{runner.compilations()} (2 = each compiled once); the grid's sweep program: a "
        f"first call (compile + run) took {grid_compile[0]:.2f} s wall, "
        f"{grid_compile[1]:.2f} s CPU, against {_common.spread([g.wall for g in grids])} s "
        "wall per warm call; the adaptive search's: a first call took "
        f"{adaptive_compile[0]:.2f} s wall, {adaptive_compile[1]:.2f} s CPU")
  if truth is not None:
    print(truth.describe(name))
  for objective_name in OBJECTIVES:
    report(problem, objective_name, arms[objective_name], truth)
  cpu_per_step = np.median([g.cpu / g.model_steps for g in grids])
  slots = args.slots or max(1, points // 16)
  segment = cpu_per_step * slots * k * problem.segment_steps
  print(f"\n-- refill cost, {name} (segment time estimated from the grid's CPU time per "
        f"model·step: {segment * 1e3:.1f} ms for {slots} slots x {k} seeds x "
        f"{problem.segment_steps} steps)")
  refill_cost(problem, slots, list(range(k)), segment)
  return problem, arms, truth


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--problems", default="digits,mnist1d")
  parser.add_argument("--reps", type=int, default=10, help="repetitions (seed sets)")
  parser.add_argument("--seeds", type=int, default=2, help="seeds per point")
  parser.add_argument("--steps", type=int, default=400, help="steps of a full run")
  parser.add_argument("--segments", type=int, default=4, help="segments of a full run")
  parser.add_argument("--grid-points", type=int, default=64)
  parser.add_argument("--slots", type=int, default=None,
                      help="the adaptive search's slots (default grid points / 16); its "
                           "rounds keep its budget at a quarter of the grid's")
  parser.add_argument("--truth-seeds", type=int, default=16,
                      help="fresh seeds for the reference every choice is checked against "
                           "(0: none)")
  parser.add_argument("--figure", default=None,
                      help="write the frontier figure (repetition 0, constrained objective) "
                           "to this PNG")
  args = parser.parse_args()
  problems = [name.strip() for name in args.problems.split(",") if name.strip()]
  settings = (args.reps, args.seeds, args.steps, args.segments, args.grid_points)
  if args.quick:
    problems, settings, args.truth_seeds = ["digits"], (2, 1, 8, 2, 4), 1
  reps, k, steps, segments, points = settings
  _common.print_header("adaptive λ search vs the full grid vs Optuna", args, [
      f"problems {problems}; prox_adam(lr={LEARNING_RATE}) L1 on kernels, batch {BATCH}, "
      f"{steps} steps in {segments} segments; λ log-uniform on [1e-5, 1e-1]",
      f"{reps} repetitions x {k} seeds per point; grid {points} log-spaced λ; objectives "
      f"{list(OBJECTIVES)} on validation (margin {MARGIN}); adaptive slots "
      f"{args.slots or max(1, round(points / 16))}; fresh-seed reference "
      f"{args.truth_seeds} seeds"])
  panels = []
  for name in problems:
    problem, arms, truth = run_problem(name, args, settings)
    sparsest = arms["sparsest"]
    panels.append((problem, sparsest["grid"][0], sparsest["adaptive"][0], truth))
  if args.figure:
    draw_figure(args.figure, panels, k)
  _common.print_footer()


if __name__ == "__main__":
  main()
