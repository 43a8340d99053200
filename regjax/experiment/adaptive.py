r"""The host side of an adaptive λ search: search spaces, objectives, and the refill policy.

A grid sweep trains every point to the end. An adaptive search runs a fixed number of
rows (``slots x seeds``) as one compiled program, a segment of steps at a time, and
between segments decides, from the rows' validation metrics so far, which rows stop and
which new points take their slots. This module is that decision, in NumPy only: it
never traces, compiles or touches a device, so it can be tested on hand-made tables and
driven by any loop that can run segments and swap rows.

* A :class:`Space` names the hyperparameters and their ranges: :class:`LogUniform`
  (strengths, learning rates), :class:`Uniform`, :class:`Choice` (a list, e.g. the
  method).
* An objective turns a table of per-point metrics (means over seeds) into a ranking:
  :class:`Maximize` / :class:`Minimize` one metric, or :class:`MaximizeWithin`: the most of
  one metric among the points whose other metric is within a margin of its best ("the
  sparsest model within 1 point of the best validation accuracy").
* :class:`Refill` is the policy: which points start, which stop, which replace them.

The policy: asynchronous successive halving whose refills are refinements
=========================================================================

Every point runs all its seeds in its own slot from step 0 with one fixed set of
hyperparameters, and either stops early or runs to the end, so every point the search
reports is an ordinary full run that :func:`regjax.sweep` would reproduce row for row
(same λ, same seed, same initialization and minibatches). A full run is ``segments``
segments; the search runs ``rounds`` segments in all. After each segment:

1. **Record.** Every running point has finished one more segment: its rung. Its
   metrics (mean over its seeds) join the table of that rung.
2. **Stop (successive halving, asynchronous).** A point at rung ``r`` continues only if
   it ranks in the top ``ceil(keep * n_r)`` of the ``n_r`` points ever recorded at rung
   ``r`` (ranked by the objective, which for :class:`MaximizeWithin` takes the margin
   from the best of that rung's table). That is ASHA's promotion rule (Li et al. 2020)
   with every segment a rung: rows are never held back waiting for a cohort, so no row
   waits. For :class:`MaximizeWithin`, the point with the best ``subject_to`` at the rung
   also continues when it beats the others by a quarter of the margin
   (:meth:`MaximizeWithin.anchor`), so that the bar is set by a full run.
   A point that reaches the last rung is complete.
3. **Refill.** A slot freed by a stop or a completion takes a new point, but only if a
   new point can still complete within ``rounds``; otherwise the slot idles (a stop
   that frees nothing useful is not made: the point runs on and completes for free).
   Every started point can therefore complete: no model·step goes into a run that the
   budget cuts off.
4. **Propose.** A new point is, with probability ``explore``, drawn uniformly from the
   space; otherwise it refines an elite point: the parent is drawn from the top
   ``ceil(keep * n)`` points of the deepest rung with at least ``max(3, ceil(1/keep))``
   records (weights ``1/(1 + rank)``), keeps the parent's categorical values, and in
   every continuous dimension (in log space for :class:`LogUniform`) is drawn uniformly
   between the parent's two nearest neighbours among all points started so far with
   the same categorical values (the range's ends when there is none on one side). The
   proposals of one refill join the neighbours as they are drawn, so one refill spreads
   its points instead of stacking them.

Why this rule, and not the alternatives:

* **Every row busy.** Synchronous successive halving or Hyperband brackets halve the
  number of live configurations at each rung; in a vmapped program of fixed width the
  halved-away rows would compute nothing useful until the bracket ends. Refilling freed
  slots at once (the asynchronous form) keeps them training, and the only idle rows are
  at the very end, where no new run could finish.
* **Ordinary full runs at one fixed λ.** Population-based training (Jaderberg et al.
  2017) also keeps rows busy, but copies weights between rows and changes λ mid-run, so
  its answer is a schedule no single run reproduces. Here a row's hyperparameters never
  change while it lives.
* **Reaching a constrained objective's boundary fast.** The sparsest model within a
  margin of the best accuracy sits where accuracy starts to fall as λ grows: the best
  feasible point and its nearest infeasible neighbour bracket it. Drawing between the
  best points and their neighbours halves that bracket in expectation each time a draw
  lands in it, like bisection, where random proposals (published ASHA, Hyperband) shrink
  it only as ``1/n``. The uniform draws (``explore``) keep a misleading early ranking
  from locking the search into one region, which is what Hyperband's extra brackets hedge
  against, at a cost of a fixed share of proposals instead of whole brackets.

References:
  Jamieson, Talwalkar, "Non-stochastic Best Arm Identification and Hyperparameter
  Optimization", AISTATS 2016.

  Li, Jamieson, Rostamizadeh, Gonina, Ben-tzur, Hardt, Recht, Talwalkar, "A System for
  Massively Parallel Hyperparameter Tuning", MLSys 2020 (ASHA).

  Jaderberg et al., "Population Based Training of Neural Networks", arXiv:1711.09846, 2017.

Examples:
  >>> import numpy as np
  >>> from regjax.experiment import adaptive
  >>> space = adaptive.Space(lam=adaptive.LogUniform(1e-5, 1e-1))
  >>> search = adaptive.Refill(space, adaptive.Maximize("validation_accuracy"),
  ...                          slots=4, seeds=[0], segments=2, rounds=4, keep=0.5, seed=0)
  >>> first = search.start()
  >>> lam = first.hparams["lam"]
  >>> first.rows.tolist(), bool(np.all((lam >= 1e-5) & (lam <= 1e-1)))
  ([0, 1, 2, 3], True)
  >>> refill = search.observe({"validation_accuracy": np.array([0.5, 0.9, 0.7, 0.2])})
  >>> refill.rows.tolist()  # rows 0 and 3 rank in the bottom half of rung 1: refilled
  [0, 3]
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "Assignment",
    "Choice",
    "Dimension",
    "LogUniform",
    "Maximize",
    "MaximizeWithin",
    "Minimize",
    "Objective",
    "Refill",
    "Space",
    "Uniform",
]


# ----------------------------------------------------------------------------- the space


def _finite(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
    raise ValueError(f"`{name}` must be a finite number, got {value!r}.")
  return float(value)


@dataclasses.dataclass(frozen=True)
class Uniform:
  """A real range ``[low, high]`` searched uniformly.

  Examples:
    >>> Uniform(0.0, 0.5).from_unit(0.5)
    0.25
  """

  low: float
  high: float

  def __post_init__(self):
    low, high = _finite("low", self.low), _finite("high", self.high)
    if not low < high:
      raise ValueError(f"`low` must be below `high`, got low={low!r}, high={high!r}.")

  def _ends(self) -> tuple[float, float]:
    return float(self.low), float(self.high)

  def to_unit(self, value: npt.ArrayLike) -> np.ndarray:
    """Maps values of the range onto ``[0, 1]`` (linearly here)."""
    low, high = self._ends()
    return (np.asarray(value, np.float64) - low) / (high - low)

  def from_unit(self, unit: npt.ArrayLike) -> float | np.ndarray:
    """Maps ``[0, 1]`` onto the range, inverse of :meth:`to_unit` (rounding kept inside)."""
    low, high = self._ends()
    value = np.clip(low + np.asarray(unit, np.float64) * (high - low), low, high)
    return float(value) if np.ndim(value) == 0 else value


@dataclasses.dataclass(frozen=True)
class LogUniform(Uniform):
  """A positive range ``[low, high]`` searched uniformly in ``log`` (strengths, rates).

  Examples:
    >>> round(LogUniform(1e-4, 1e-2).from_unit(0.5), 12)  # the geometric middle
    0.001
  """

  def __post_init__(self):
    super().__post_init__()
    if self.low <= 0:
      raise ValueError(f"`low` of a LogUniform must be > 0, got {self.low!r}; use Uniform "
                       "for a range that includes 0.")

  def _ends(self) -> tuple[float, float]:
    return math.log(self.low), math.log(self.high)

  def to_unit(self, value: npt.ArrayLike) -> np.ndarray:
    """Maps values onto ``[0, 1]`` linearly in ``log(value)``."""
    return super().to_unit(np.log(np.asarray(value, np.float64)))

  def from_unit(self, unit: npt.ArrayLike) -> float | np.ndarray:
    """Maps ``[0, 1]`` onto the range, geometrically; exact at the ends."""
    value = np.clip(np.exp(super().from_unit(unit)), self.low, self.high)
    return float(value) if np.ndim(value) == 0 else value


@dataclasses.dataclass(frozen=True)
class Choice:
  """A finite list of options, e.g. ``Choice(["prox_l1", "weight_decay"])``.

  The function being searched receives a number: the option itself when every option
  is a number, else the option's index ``0, 1, ...`` as a float (branch on it with
  ``jax.lax.switch``); tables show the option.

  Examples:
    >>> Choice(["prox", "decay"]).value(1), Choice([16, 64]).value(1)
    (1.0, 64.0)
  """

  options: Sequence[Any]

  def __post_init__(self):
    options = tuple(self.options) if not isinstance(self.options, (str, bytes)) else ()
    if not options:
      raise ValueError(f"`options` must be a non-empty list, got {self.options!r}.")
    if len(set(map(repr, options))) != len(options):
      raise ValueError(f"`options` must be distinct, got {list(options)!r}.")
    object.__setattr__(self, "options", options)

  @property
  def numeric(self) -> bool:
    """Whether every option is a real number (then the function receives it as is)."""
    return all(isinstance(o, numbers.Real) and not isinstance(o, bool) for o in self.options)

  def value(self, index: int) -> float:
    """What the searched function receives for option ``index``."""
    return float(self.options[index]) if self.numeric else float(index)


Dimension: TypeAlias = Uniform | LogUniform | Choice
"""One searched hyperparameter of a :class:`Space`: a range (linear or log) or a list."""


class Space:
  """Named search dimensions: :class:`LogUniform`, :class:`Uniform` or :class:`Choice`.

  A point is a dict name -> option index (:class:`Choice`) or position in ``[0, 1]``
  (ranges, in log space for :class:`LogUniform`); :meth:`values` turns points into the
  numbers the searched function receives.

  Args:
    **dimensions: name -> dimension.

  Examples:
    >>> space = Space(lam=LogUniform(1e-5, 1e-1), method=Choice(["prox", "decay"]))
    >>> space.names, space.continuous, space.categorical
    (('lam', 'method'), ('lam',), ('method',))
  """

  def __init__(self, **dimensions: Dimension):
    if not dimensions:
      raise ValueError("A Space needs at least one dimension, e.g. "
                       "`Space(lam=LogUniform(1e-5, 1e-1))`.")
    for name, dimension in dimensions.items():
      if not isinstance(dimension, (Uniform, Choice)):
        raise TypeError(f"Dimension `{name}` must be a LogUniform, Uniform or Choice, got "
                        f"{dimension!r}.")
    self.dimensions: dict[str, Dimension] = dict(dimensions)

  @property
  def names(self) -> tuple[str, ...]:
    """Every dimension's name, in order."""
    return tuple(self.dimensions)

  @property
  def continuous(self) -> tuple[str, ...]:
    """The names of the ranges."""
    return tuple(n for n, d in self.dimensions.items() if isinstance(d, Uniform))

  @property
  def categorical(self) -> tuple[str, ...]:
    """The names of the :class:`Choice` dimensions."""
    return tuple(n for n, d in self.dimensions.items() if isinstance(d, Choice))

  def values(self, points: Mapping[str, npt.ArrayLike]) -> dict[str, np.ndarray]:
    """The numbers the searched function receives, per dimension, for arrays of points."""
    found = {}
    for name, dimension in self.dimensions.items():
      coords = np.asarray(points[name])
      if isinstance(dimension, Choice):
        found[name] = np.array([dimension.value(int(i)) for i in coords.ravel()], np.float64)
      else:
        found[name] = np.atleast_1d(dimension.from_unit(coords)).astype(np.float64)
    return found

  def labels(self, points: Mapping[str, npt.ArrayLike]) -> dict[str, np.ndarray]:
    """Like :meth:`values`, with the options themselves for :class:`Choice` dimensions."""
    found = self.values(points)
    for name in self.categorical:
      options = self.dimensions[name].options  # type: ignore[union-attr]
      found[name] = np.array([options[int(i)] for i in np.asarray(points[name]).ravel()])
    return found

  def uniform(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` points drawn uniformly (ranges in their own scale, options equally likely)."""
    return {name: (rng.integers(len(d.options), size=n) if isinstance(d, Choice)
                   else rng.uniform(size=n)) for name, d in self.dimensions.items()}

  def stratified(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` points in a Latin hypercube: each range cut in ``n`` equal strata, one point in
    each, and each option taken ``n // k`` or ``n // k + 1`` times, all in random pairing."""
    points = {}
    for name, dimension in self.dimensions.items():
      if isinstance(dimension, Choice):
        k = len(dimension.options)
        points[name] = rng.permutation(np.arange(n) % k)
      else:
        points[name] = rng.permutation((np.arange(n) + rng.uniform(size=n)) / n)
    return points

  def __repr__(self) -> str:
    return f"Space({', '.join(f'{n}={d!r}' for n, d in self.dimensions.items())})"


# ----------------------------------------------------------------------------- objectives


def _column(table: Mapping[str, Any], name: str) -> np.ndarray:
  if name not in table:
    raise KeyError(f"The objective reads metric `{name}`, but the table has "
                   f"{sorted(table)}; name a metric the searched function returns.")
  return np.asarray(table[name], np.float64)


@dataclasses.dataclass(frozen=True)
class Maximize:
  """Rank points by one metric, largest first; NaN or infinite values rank last.

  Examples:
    >>> Maximize("validation_accuracy").score({"validation_accuracy": [0.9, np.nan, 0.95]})
    array([0.9 , -inf, 0.95])
  """

  metric: str

  def score(self, table: Mapping[str, npt.ArrayLike]) -> np.ndarray:
    """One float per point, higher is better, ``-inf`` for a non-finite metric."""
    values = _column(table, self.metric) * (1.0 if isinstance(self, Maximize) else -1.0)
    return np.where(np.isfinite(values), values, -np.inf)

  @property
  def metrics(self) -> tuple[str, ...]:
    """The metrics the objective reads."""
    return (self.metric,)

  def order(self, table: Mapping[str, npt.ArrayLike]) -> np.ndarray:
    """Point indices, best first; ties keep table order."""
    return np.argsort(-self.score(table), kind="stable")

  def anchor(self, table: Mapping[str, npt.ArrayLike]) -> int | None:
    """None: a single metric needs no reference point (see :meth:`MaximizeWithin.anchor`)."""
    del table
    return None


@dataclasses.dataclass(frozen=True)
class Minimize(Maximize):
  """Rank points by one metric, smallest first (a loss); NaN or infinite values rank last.

  Examples:
    >>> Minimize("validation_loss").order({"validation_loss": [0.3, 0.1, np.inf]})
    array([1, 0, 2])
  """

  def score(self, table: Mapping[str, npt.ArrayLike]) -> np.ndarray:
    """One float per point, higher is better: the negated metric, ``-inf`` if not finite."""
    values = -_column(table, self.metric)
    return np.where(np.isfinite(values), values, -np.inf)


_ROUNDING = 1e-9


@dataclasses.dataclass(frozen=True)
class MaximizeWithin:
  r"""The most of ``maximize`` among points whose ``subject_to`` is within ``margin`` of its best.

  With :math:`a_i` the ``subject_to`` metric (e.g. validation accuracy, mean over seeds)
  and :math:`s_i` the ``maximize`` metric (e.g. the share of exactly-zero weights), a
  point is *feasible* when

  .. math:: a_i \ge \max_j a_j - \text{margin},

  the maximum over the finite :math:`a_j` of the same table (a point exactly at the
  margin is feasible: the comparison allows a rounding error of ``1e-9``, so that 0.7
  counts as within 0.1 of 0.8 although ``0.8 - 0.1 > 0.7`` in floating point).
  Feasible points rank by
  :math:`s_i`, largest first; infeasible points rank below every feasible one, by
  :math:`a_i`; non-finite points rank last. :meth:`score` folds this order into one float:
  :math:`s_i` when feasible, else :math:`\min_{\text{feasible}} s - \text{shortfall}_i`,
  with the shortfall :math:`\max_j a_j - \text{margin} - a_i > 0`.

  ``MaximizeWithin("zero_weights", "validation_accuracy", 0.01)`` is the rule the
  notebooks select by: the sparsest model within 1 point of the best validation accuracy.

  Args:
    maximize: the metric to make large among feasible points.
    subject_to: the metric whose best sets the bar (larger is better).
    margin: how far below the best ``subject_to`` a point may be, ``>= 0``.

  Examples:
    >>> rule = MaximizeWithin("zero_weights", "validation_accuracy", margin=0.01)
    >>> table = {"validation_accuracy": [0.970, 0.965, 0.950, 0.975],
    ...          "zero_weights": [0.40, 0.80, 0.95, 0.10]}
    >>> rule.order(table).tolist()  # 0.965 is within 0.01 of 0.975 and sparsest
    [1, 0, 3, 2]
  """

  maximize: str
  subject_to: str
  margin: float

  def __post_init__(self):
    if _finite("margin", self.margin) < 0:
      raise ValueError(f"`margin` must be >= 0, got {self.margin!r}.")

  @property
  def metrics(self) -> tuple[str, ...]:
    """The metrics the objective reads."""
    return (self.maximize, self.subject_to)

  def feasible(self, table: Mapping[str, npt.ArrayLike]) -> np.ndarray:
    """Whether each point's ``subject_to`` is within ``margin`` of the table's best."""
    bar = _column(table, self.subject_to)
    ok = np.isfinite(bar) & np.isfinite(_column(table, self.maximize))
    if not ok.any():
      return ok
    return ok & (bar >= bar[ok].max() - self.margin - _ROUNDING)

  def score(self, table: Mapping[str, npt.ArrayLike]) -> np.ndarray:
    """One float per point, higher is better (see the class docstring)."""
    bar, value = _column(table, self.subject_to), _column(table, self.maximize)
    feasible = self.feasible(table)
    score = np.full(bar.shape, -np.inf)
    if not feasible.any():
      return score
    shortfall = bar[feasible].max() - self.margin - _ROUNDING - bar
    floor = value[feasible].min()
    ranked = np.isfinite(bar) & np.isfinite(value)
    score[ranked] = floor - np.maximum(shortfall[ranked], np.finfo(float).tiny)
    score[feasible] = value[feasible]
    return score

  def order(self, table: Mapping[str, npt.ArrayLike]) -> np.ndarray:
    """Point indices, best first; ties keep table order."""
    return np.argsort(-self.score(table), kind="stable")

  def anchor(self, table: Mapping[str, npt.ArrayLike]) -> int | None:
    """The point with the best ``subject_to``, if it beats all others by ``margin / 4``.

    It sets the bar, so :class:`Refill` does not stop it early and the bar of the final
    choice comes from a full run. Ranked by ``maximize`` alone, the accurate, dense
    points that set the bar rank low among the feasible ones and would be stopped; the
    bar would then come from the sparse points that were kept and drift down, run after
    run (the Optuna arm of ``benchmarks/adaptive_sweep.py`` shows it). A point that raises
    the best by less than a quarter of the margin moves the bar too little to be worth a
    slot for the whole run. None when there is no such point.

    Examples:
      >>> rule = MaximizeWithin("zero_weights", "validation_accuracy", margin=0.01)
      >>> table = {"validation_accuracy": [0.95, 0.97, 0.90], "zero_weights": [0.5, 0.1, 0.9]}
      >>> rule.anchor(table), rule.anchor({**table, "validation_accuracy": [0.968, 0.97, 0.9]})
      (1, None)
    """
    bar = _column(table, self.subject_to)
    bar = np.where(np.isfinite(bar), bar, -np.inf)
    if not np.isfinite(bar).any():
      return None
    best = int(np.argmax(bar))
    runner_up = np.delete(bar, best).max(initial=-np.inf)
    return best if bar[best] > runner_up + self.margin / 4 else None


Objective: TypeAlias = Maximize | MaximizeWithin
"""What a search ranks points by (:class:`Minimize` is a :class:`Maximize`)."""


# ----------------------------------------------------------------------------- the policy


class Assignment(NamedTuple):
  """Rows to (re)start before the next segment, each from a fresh initialization.

  Attributes:
    rows: the row indices, int64, ascending.
    hparams: name -> float64 array, one value per entry of ``rows`` (what ``fn`` gets).
    seeds: the seed of each row, int64.
    points: the point (index into :meth:`Refill.table`) each row now runs.
    idle: rows that run nothing useful from now on (their slot could not take a point
      that completes within the budget); the loop may skip or ignore them.

  Examples:
    >>> search = Refill(Space(lam=LogUniform(1e-4, 1e-1)), Maximize("acc"), slots=3,
    ...                 seeds=[5], segments=1, rounds=1)
    >>> first = search.start()
    >>> first.rows.tolist(), first.seeds.tolist(), first.points.tolist()
    ([0, 1, 2], [5, 5, 5], [0, 1, 2])
    >>> search.observe({"acc": np.array([0.5, 0.6, 0.7])}).idle.tolist()  # budget spent
    [0, 1, 2]
  """

  rows: np.ndarray
  hparams: dict[str, np.ndarray]
  seeds: np.ndarray
  points: np.ndarray
  idle: np.ndarray


def _check_count(name: str, value: Any, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
    raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
  return int(value)


def _check_seeds(seeds: Any) -> np.ndarray:
  if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
    seeds = range(_check_count("seeds", seeds, 1))
  values = list(seeds)
  valid = all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
              and 0 <= int(s) < 2**32 for s in values)
  if not values or not valid or len(set(values)) != len(values):
    raise ValueError(f"`seeds` must be an int n (seeds 0..n-1) or distinct ints in "
                     f"[0, 2**32), got {seeds!r}.")
  return np.asarray(values, np.int64)


class Refill:
  """The refill policy: which points start, stop and replace them, segment by segment.

  See the module docstring for the rule and why it was chosen. Drive it as a loop does:

  .. code-block:: python

    search = Refill(space, objective, slots=8, seeds=[0, 1], segments=4, rounds=8)
    assignment = search.start()              # every row: hparams and seed
    while not search.done:
      ...                                    # (re)initialize assignment.rows, run a segment
      assignment = search.observe(metrics)   # metric -> array over all rows, after it

  Rows are laid out point-major like :func:`regjax.sweep`'s: slot ``s`` holds rows
  ``s * len(seeds) ... (s + 1) * len(seeds) - 1``, one per seed, all running the same
  point. A point's metric is the mean over its seeds (NaN if any seed's is NaN, which
  ranks it last).

  Args:
    space: the :class:`Space` searched.
    objective: :class:`Maximize`, :class:`Minimize` or :class:`MaximizeWithin`, read on
      the metrics passed to :meth:`observe` (pass validation metrics, never test).
    slots: points running at once; the program has ``slots * len(seeds)`` rows.
    seeds: an int ``n`` (seeds ``0..n-1``) or a list of distinct seeds; every point runs
      all of them.
    segments: segments in one full run (its steps divided by the segment length).
    rounds: segments the whole search runs at most, ``>= segments``; the search costs
      at most ``rounds * slots * len(seeds)`` row-segments, the same as a grid of
      ``slots * rounds / segments`` points trained to the end (it ends sooner when every
      slot idles).
    keep: share of the points recorded at a rung that continue past it, in ``(0, 1]``
      (ASHA's ``1 / eta``); 1 stops nothing.
    explore: share of proposals drawn uniformly from the space, in ``[0, 1]``.
    seed: seed of the policy's own random draws; the same seed and the same observed
      metrics give the same proposals.

  Examples:
    >>> search = Refill(Space(lam=LogUniform(1e-4, 1e-1)), Maximize("acc"), slots=2,
    ...                 seeds=2, segments=1, rounds=2, seed=0)
    >>> search.start().seeds.tolist()  # slot 0: rows 0, 1; slot 1: rows 2, 3
    [0, 1, 0, 1]
    >>> search.observe({"acc": np.array([0.8, 0.9, 0.6, 0.5])}).rows.tolist()  # both completed
    [0, 1, 2, 3]
    >>> _ = search.observe({"acc": np.array([0.7, 0.7, 0.95, 0.93])})
    >>> search.done, search.best()["acc"]
    (True, 0.94)
  """

  def __init__(self, space: Space, objective: Objective, *, slots: int,
               seeds: int | Sequence[int] = 1, segments: int, rounds: int, keep: float = 1 / 3,
               explore: float = 0.25, seed: int = 0):
    if not isinstance(space, Space):
      raise TypeError(f"`space` must be a Space, got {type(space).__name__}.")
    if not isinstance(objective, (Maximize, MaximizeWithin)):
      raise TypeError("`objective` must be Maximize, Minimize or MaximizeWithin, got "
                      f"{objective!r}.")
    self.space, self.objective = space, objective
    self.slots = _check_count("slots", slots, 1)
    self.seeds = _check_seeds(seeds)
    self.segments = _check_count("segments", segments, 1)
    self.rounds = _check_count("rounds", rounds, 1)
    if self.rounds < self.segments:
      raise ValueError(f"`rounds` {rounds} must be >= `segments` {segments}: no run could "
                       "complete in fewer segments than one run has.")
    if not 0 < _finite("keep", keep) <= 1:
      raise ValueError(f"`keep` must be in (0, 1], got {keep!r}.")
    if not 0 <= _finite("explore", explore) <= 1:
      raise ValueError(f"`explore` must be in [0, 1], got {explore!r}.")
    self.keep, self.explore, self.seed = float(keep), float(explore), _check_count(
        "seed", seed, 0)
    self._rng = np.random.default_rng(self.seed)
    self._points: dict[str, list[float]] = {name: [] for name in space.names}
    self._started: list[int] = []  # the round (segments run before) each point started at
    self._records: list[dict[int, dict[str, float]]] = [{} for _ in range(self.segments)]
    self._slot_point = np.full(self.slots, -1, np.int64)
    self._slot_rung = np.zeros(self.slots, np.int64)
    self._stopped: set[int] = set()
    self._round = -1  # -1 before start(); then the segments run so far

  # ------------------------------------------------------------------------- reading

  @property
  def rows(self) -> int:
    """Rows of the program: ``slots * len(seeds)``."""
    return self.slots * len(self.seeds)

  @property
  def round(self) -> int:
    """Segments run so far (-1 before :meth:`start`)."""
    return self._round

  @property
  def done(self) -> bool:
    """Whether the search is over: ``rounds`` segments run, or no slot has a point."""
    return self._round >= self.rounds or (self._round >= 0 and bool(
        np.all(self._slot_point < 0)))

  def values(self, points: npt.ArrayLike) -> dict[str, np.ndarray]:
    """What the searched function receives at ``points`` (indices into :meth:`table`)."""
    index = np.atleast_1d(np.asarray(points, np.int64))
    return self.space.values({name: np.asarray(v, np.float64)[index]
                              for name, v in self._points.items()})

  @property
  def row_points(self) -> np.ndarray:
    """The point each row runs now (index into :meth:`table`), -1 for an idle row."""
    return np.repeat(self._slot_point, len(self.seeds))

  @property
  def row_segments(self) -> int:
    """Row-segments computed so far, idle rows included (``rows x round``)."""
    return self.rows * max(self._round, 0)

  @property
  def idle_row_segments(self) -> int:
    """Of :attr:`row_segments`, those spent by rows whose slot held no point."""
    return self._idle

  def table(self) -> dict[str, np.ndarray]:
    """One entry per point started: hparams, status, rounds, and its last metrics.

    Columns: every dimension (options for :class:`Choice`), ``round`` (segments run
    before it started), ``rung`` (segments it completed), ``status`` ("running",
    "stopped" or "complete"), then every metric observed, as recorded at its last rung
    (means over seeds; NaN where none).
    """
    n = len(self._started)
    table: dict[str, Any] = self.space.labels(self._coords()) if n else {
        name: np.array([]) for name in self.space.names}
    table["round"] = np.array(self._started, np.int64)
    rungs = np.zeros(n, np.int64)
    for rung, records in enumerate(self._records, start=1):
      rungs[list(records)] = rung
    table["rung"] = rungs
    table["status"] = np.array([self._status(p) for p in range(n)], dtype=object)
    for name in self._metric_names():
      column = np.full(n, np.nan)
      for p in range(n):
        if rungs[p]:
          column[p] = self._records[rungs[p] - 1][p].get(name, np.nan)
      table[name] = column
    return table

  def rung_table(self, rung: int) -> dict[str, np.ndarray]:
    """The points recorded at ``rung`` (1 = after their first segment) and their metrics.

    Columns: ``point`` (index into :meth:`table`) and every metric observed.
    """
    _check_count("rung", rung, 1)
    if rung > self.segments:
      raise ValueError(f"`rung` must be <= `segments` {self.segments}, got {rung}.")
    records = self._records[rung - 1]
    points = np.array(sorted(records), np.int64)
    table = {"point": points}
    for name in self._metric_names():
      table[name] = np.array([records[p].get(name, np.nan) for p in points], np.float64)
    return table

  def best(self) -> dict[str, Any]:
    """The complete point the objective ranks first, as a row of :meth:`table` plus
    ``point`` (its index).

    Raises:
      ValueError: if no point has completed yet.
    """
    final = self.rung_table(self.segments)
    if not len(final["point"]):
      raise ValueError("No point has completed a full run yet; call `best` after more "
                       "segments (at least `segments` of them).")
    point = int(final["point"][self.objective.order(final)[0]])
    table = self.table()
    record = {name: _scalar(values[point]) for name, values in table.items()}
    record["point"] = point
    return record

  def _coords(self) -> dict[str, np.ndarray]:
    return {name: np.asarray(values) for name, values in self._points.items()}

  def _status(self, point: int) -> str:
    if point in self._records[-1]:
      return "complete"
    return "stopped" if point in self._stopped else "running"

  def _metric_names(self) -> list[str]:
    names: dict[str, None] = {}
    for records in self._records:
      for metrics in records.values():
        names.update(dict.fromkeys(metrics))
    return list(names)

  # ------------------------------------------------------------------------- driving

  def start(self) -> Assignment:
    """The first points, one per slot, in a Latin hypercube over the space.

    Returns:
      An :class:`Assignment` of every row.
    """
    if self._round >= 0:
      raise RuntimeError("`start` was already called; continue with `observe`.")
    self._round, self._idle = 0, 0
    first = self.space.stratified(self._rng, self.slots)
    for slot in range(self.slots):
      self._place(slot, {name: values[slot] for name, values in first.items()})
    return self._assignment(np.arange(self.slots))

  def observe(self, metrics: Mapping[str, Any]) -> Assignment:
    """Records the metrics after one more segment and decides the refills.

    Args:
      metrics: metric -> array with one value per row (``rows`` of them), as every row
        stands after the segment just run; must hold the objective's metrics. Other 1-D
        metrics of that length are recorded too (see :meth:`table`).

    Returns:
      The rows to restart before the next segment (empty when none, or when
      :attr:`done`), and the rows that idle from now on.
    """
    if self._round < 0:
      raise RuntimeError("Call `start` before `observe`.")
    if self.done:
      raise RuntimeError(f"The search is over after {self._round} segments; read `best()`.")
    columns = self._point_metrics(metrics)
    self._idle += int(np.sum(self._slot_point < 0)) * len(self.seeds)
    self._round += 1
    active = np.flatnonzero(self._slot_point >= 0)
    self._slot_rung[active] += 1
    for index in active:
      point, rung = int(self._slot_point[index]), int(self._slot_rung[index])
      self._records[rung - 1][point] = {name: float(v[index]) for name, v in columns.items()}
    can_start = self.rounds - self._round >= self.segments
    freed = [int(s) for s in active if self._slot_rung[s] == self.segments
             or (can_start and not self._promoted(int(self._slot_point[s]),
                                                  int(self._slot_rung[s])))]
    for slot in freed:
      if self._slot_rung[slot] < self.segments:
        self._stopped.add(int(self._slot_point[slot]))
      self._slot_point[slot] = -1
    if can_start:
      for slot in freed:
        self._place(slot, self._propose())
      return self._assignment(np.array(freed, np.int64))
    return self._assignment(np.array([], np.int64))

  def _point_metrics(self, metrics: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(metrics, Mapping):
      raise TypeError(f"`metrics` must map metric names to arrays, got {type(metrics).__name__}.")
    columns = {}
    for name, values in metrics.items():
      array = np.asarray(values)
      if array.shape == (self.rows,) and (np.issubdtype(array.dtype, np.number)
                                          or array.dtype == np.bool_):
        columns[name] = array.astype(np.float64).reshape(self.slots, len(self.seeds)).mean(1)
    for name in self.objective.metrics:
      if name not in columns:
        raise KeyError(f"`metrics` must hold the objective's metric `{name}` as an array of "
                       f"{self.rows} values (one per row); got {sorted(metrics)}.")
    return columns

  def _promoted(self, point: int, rung: int) -> bool:
    """ASHA's rule: in the top ``ceil(keep * n)`` of the ``n`` points recorded at ``rung``;
    or the anchor of the rung (see :meth:`MaximizeWithin.anchor`)."""
    table = self.rung_table(rung)
    position = int(np.flatnonzero(table["point"][self.objective.order(table)] == point)[0])
    anchor = self.objective.anchor(table)
    return (position < math.ceil(self.keep * len(table["point"]))
            or (anchor is not None and int(table["point"][anchor]) == point))

  def _place(self, slot: int, point: Mapping[str, float]) -> None:
    for name in self.space.names:
      self._points[name].append(float(point[name]))
    self._started.append(self._round)
    self._slot_point[slot] = len(self._started) - 1
    self._slot_rung[slot] = 0

  def _assignment(self, slots: np.ndarray) -> Assignment:
    k = len(self.seeds)
    slots = np.sort(slots)
    rows = (slots[:, None] * k + np.arange(k)).ravel()
    points = np.repeat(self._slot_point[slots], k)
    coords = {name: np.asarray(values, np.float64)[points] for name, values in
              self._points.items()}
    idle_slots = np.flatnonzero(self._slot_point < 0)
    return Assignment(
        rows=rows.astype(np.int64), hparams=self.space.values(coords) if len(rows) else {
            name: np.array([], np.float64) for name in self.space.names},
        seeds=np.tile(self.seeds, len(slots)), points=points.astype(np.int64),
        idle=(idle_slots[:, None] * k + np.arange(k)).ravel().astype(np.int64))

  # ------------------------------------------------------------------------- proposing

  def _elite(self) -> np.ndarray:
    """The top ``ceil(keep * n)`` points of the deepest rung with enough records."""
    enough = max(3, math.ceil(1 / self.keep))
    for rung in range(self.segments, 0, -1):
      table = self.rung_table(rung)
      n = len(table["point"])
      if n >= min(enough, self.slots):
        return table["point"][self.objective.order(table)[:math.ceil(self.keep * n)]]
    return np.array([], np.int64)

  def _propose(self) -> dict[str, float]:
    elite = self._elite()
    if not len(elite) or self._rng.uniform() < self.explore:
      return {name: float(v[0]) for name, v in self.space.uniform(self._rng, 1).items()}
    weights = 1.0 / (1.0 + np.arange(len(elite)))
    parent = int(elite[self._rng.choice(len(elite), p=weights / weights.sum())])
    coords = self._coords()
    point = {name: coords[name][parent] for name in self.space.categorical}
    same = np.ones(len(self._started), bool)
    for name in self.space.categorical:
      same &= coords[name] == coords[name][parent]
    for name in self.space.continuous:
      x, others = coords[name][parent], coords[name][same]
      low = max(others[others < x], default=0.0)
      high = min(others[others > x], default=1.0)
      point[name] = float(self._rng.uniform(low, high))
    return point

  # ------------------------------------------------------------------------- saving

  def state_dict(self) -> dict[str, Any]:
    """Everything needed to continue: JSON-serializable (lists, numbers, strings).

    Restore with :meth:`load_state_dict` on a ``Refill`` built with the same arguments.
    """
    return {
        "round": self._round, "idle": getattr(self, "_idle", 0),
        "rng": self._rng.bit_generator.state,
        "points": {name: list(values) for name, values in self._points.items()},
        "started": list(self._started), "stopped": sorted(self._stopped),
        "records": [{str(p): m for p, m in records.items()} for records in self._records],
        "slot_point": self._slot_point.tolist(), "slot_rung": self._slot_rung.tolist(),
        "config": self._config(),
    }

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Continues from :meth:`state_dict`'s output; the next :meth:`observe` then proposes
    exactly what the saved search would have.

    Raises:
      ValueError: if the state was saved by a search with other arguments.
    """
    if state.get("config") != self._config():
      raise ValueError(f"This state was saved by a search configured as {state.get('config')}, "
                       f"not {self._config()}; build the Refill with the same arguments.")
    self._round, self._idle = int(state["round"]), int(state["idle"])
    self._rng.bit_generator.state = state["rng"]
    self._points = {name: [float(v) for v in values] for name, values in state["points"].items()}
    self._started = [int(r) for r in state["started"]]
    self._stopped = {int(p) for p in state["stopped"]}
    self._records = [{int(p): {k: float(v) for k, v in m.items()} for p, m in records.items()}
                     for records in state["records"]]
    self._slot_point = np.asarray(state["slot_point"], np.int64)
    self._slot_rung = np.asarray(state["slot_rung"], np.int64)

  def _config(self) -> dict[str, Any]:
    return {"space": repr(self.space), "objective": repr(self.objective), "slots": self.slots,
            "seeds": self.seeds.tolist(), "segments": self.segments, "rounds": self.rounds,
            "keep": self.keep, "explore": self.explore, "seed": self.seed}


def _scalar(value: Any) -> Any:
  return value.item() if isinstance(value, np.generic) else value
