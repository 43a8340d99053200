r"""Evidence for the research notebooks: intervals, verdicts, choices, figures, one source.

A notebook measures a quantity per seed (or per fold), turns the samples into a 95 %
interval, and reads a verdict from where the interval lies against a tolerance:

- ``"holds"``: the whole interval is on the claim's side of the tolerance;
- ``"fails"``: the whole interval is on the other side;
- ``"inconclusive"``: the interval straddles it, or the verdict rests on a
  hyperparameter chosen at the edge of its grid (rule a below).

Every verdict is also recomputed over a range of tolerances; a verdict that changes
inside that range is flagged ``fragile``. :class:`Findings` collects the verdicts of
one notebook and writes them to ``notebooks/results/<notebook>.json``: the README's
verdict table, its wall times and the numbers quoted in conclusions are generated from
those files and the stored notebooks (``python notebooks/evidence.py`` rewrites the
README), and ``tests/test_notebooks.py`` checks that nothing drifted. Quick runs
(``REGJAX_QUICK=1``) write beside the notebook's working directory instead, so a test
never overwrites the stored full-size results.

The rules every notebook obeys
------------------------------

**(a) Edge of the grid.** Every hyperparameter a finding rests on (a strength, a rate, a
pruning level, a learning rate) is recorded as a :class:`Choice`: the grid it was chosen
from, the value, and what it was chosen by. A value at the first or last point of its
grid is *flagged*: the optimum may lie beyond the grid. On a log-spaced grid that also
holds a 0 (the "off" reference), the smallest positive value counts as the lower edge:
between 0 and it lie infinitely many decades. A value equal to a limit of the domain
(``limits``: λ = 0, a dropout rate of 0, a pruning level of 1) is not flagged: nothing
lies beyond it. ``Findings.add(..., choices=[...])`` takes the choices of a finding, and
a finding that rests on a flagged choice reads *inconclusive*, with the reason in the
results file, the printed verdict line and the README; the interval's own verdict is
kept as ``measured``. The remedy is to extend the grid (``Choice.beyond`` gives the next
values past the edge) until the choice is interior. A finding that rests on no choice
says so with ``choices=()``; ``tests/test_notebooks.py`` fails for a results file whose
findings do not declare their choices.

**(b) Test-set noise.** The digits test split is 360 images, so one image is 0.28 points
of accuracy; seeds that share one test set vary only in training, and a t interval over
them leaves out how much the accuracy would move on another 360 images. Every accuracy
interval (or paired difference of accuracies) therefore includes the test set's sampling
noise, in one of three ways, best first:

1. *per example* (:func:`per_example_interval`, :func:`paired_per_example_interval`): the
   notebook keeps each seed's per-example correctness (a sweep curve ``curves/<name>``,
   or :func:`pack_per_example`'s columns, e.g. a Trainer's
   ``metrics_fn=per_example_correct``; read with :func:`per_example`). The
   ``seeds × examples`` matrix is a crossed design; the variance of its grand mean is
   estimated by

   .. math::

      \hat V = \frac{s^2_{\text{seed means}}}{S} + \frac{s^2_{\text{example means}}}{n},

   which overestimates the variance over new seeds and a new test set by one
   interaction term :math:`\sigma^2_{s\times i}/(Sn)`, so it is slightly conservative.
   The interval is :math:`\bar v \pm t_{\nu}\sqrt{\hat V}` with Welch–Satterthwaite
   degrees of freedom. For a paired difference of two arms on one test set the matrix
   is the per-example difference of their correctness, and the example term is the
   per-example (McNemar-style) variance of the disagreements;
2. *binomial bound* (:func:`binomial_interval`, :func:`paired_binomial_interval`), when
   only per-seed accuracies exist: the example term is replaced by its upper bound
   :math:`\bar p(1-\bar p)/n` (one accuracy) or :math:`(e_A + e_B - \bar d^2)/n` (a
   paired difference, :math:`e` the error rates: the disagreements can be no more than
   the errors of both arms together); honest, but for a paired difference several times
   wider than the per-example term, so per-example correctness is preferred;
3. *a split per seed*: each seed draws its own validation and test split; then the
   spread over seeds already holds the test noise (``t_interval(..., n_test=n)``
   records that it does).

A statistic of a test curve that is not a mean over examples (the first step at which
test accuracy reaches a target) gets :func:`two_way_bootstrap`, which resamples examples
and seeds. The interval records ``n_test`` and ``test_noise`` ("per example", "binomial
bound", "split per seed", "two-way bootstrap"); the verdict line prints them.

**(c) By construction.** A row whose value is fixed by the construction of the
experiment (a ratio set by the initialisation, a share removed that equals the chosen
pruning level, a count that the algorithm guarantees, zero by floating-point arithmetic)
is an ``"implementation check"``, never a finding: ``Findings.check(...,
by_construction="why")`` records it, and ``Findings.add(kind="finding",
by_construction=...)`` raises. A *checkable* guard catches the common case: a finding
whose interval has zero width over two or more seeds (every seed measured exactly the
same value, so the value does not depend on the randomness the experiment varies,
:func:`constant_over_seeds`) warns when added and is refused in a full-size results file
by ``tests/test_notebooks.py`` unless ``not_by_construction="why the value is
nonetheless an outcome"`` says otherwise. Grep ``by_construction=`` to see every such
decision.

**(d) Figures.** Every notebook stores at least one figure as a PNG image with its main
comparison and the intervals drawn: :func:`show` embeds a figure as PNG whatever the
matplotlib backend, :func:`plot_intervals` draws a forest plot of intervals of one
quantity against a tolerance, and :meth:`Findings.plot` draws every verdict of the
notebook against its tolerance.

API
---

Intervals (``level`` 0.95 by default): :func:`t_interval` ``(samples, *, n_test=0)``,
:func:`paired_interval` ``(a, b, *, n_test=0)``, :func:`bootstrap_interval`,
:func:`exact` ``(value)``, :func:`per_example_interval` ``(per_example, *, scale=1.0)``,
:func:`paired_per_example_interval` ``(a, b, *, scale=1.0)``, :func:`binomial_interval`
``(accuracies, n_test, *, scale=1.0)``, :func:`paired_binomial_interval` ``(accuracies_a,
accuracies_b, n_test, *, scale=1.0)``, :func:`two_way_bootstrap` ``(per_example,
statistic, *, resamples=2000, scale=1.0)`` (for statistics of curves such as steps to a
target), :func:`absolute` ``(interval)`` (the interval of ``|d|``, for "within" claims);
from a sweep: :func:`by_seed` ``(result, metric, **conditions)`` and
:func:`per_example` ``(result, name, *, evaluation=None, **conditions)`` (seeds ×
examples, from the curve ``curves/<name>`` or from the scalar columns of
:func:`pack_per_example` ``(booleans, name)``; a Trainer gets them with
``metrics_fn=evidence.per_example_correct``, read as ``per_example(result,
"test_correct")``).

Choices: :func:`choose` ``(name, grid, value, *, by, limits=(None, None), scale="auto")``
and :func:`select` ``(name, grid, scores, *, by, eligible=None, best="max", ...)`` return
a :class:`Choice` (``.edge``, ``.flagged``, ``.reason``, ``.beyond(count)``);
:func:`extend_until_interior` ``(result, choose_from, run, *, rounds=3, count=2)`` sweeps
past the edge until the choice is interior.

Verdicts: :func:`verdict`, :func:`verdicts_over`; :class:`Findings` with
``add(key, claim, interval, tolerance, *, side="above", tolerances=None,
kind="finding", unit="", note="", choices=None, by_construction="",
not_by_construction="")``, ``check(key, claim, interval, tolerance, *,
by_construction, ...)``, ``value(key, value)``, ``paper(...)``, ``table()``,
``save()``, ``plot()``; :func:`verdict_of` ``(row)`` recomputes a saved row's verdict;
:func:`constant_over_seeds` ``(interval)``.

Figures: :func:`show` ``(figure)``, :func:`plot_intervals` ``(intervals, *,
tolerance=None, side="above", unit="", title="", ax=None)``, :func:`plot_findings`
``(rows, *, ax=None)``.

README: :func:`readme_table`, :func:`update_readme`, :func:`wall_time` ``(notebook)``.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import math
import os
import pathlib
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

HERE = pathlib.Path(__file__).resolve().parent
# Full-size results go here; REGJAX_RESULTS points a scratch re-run elsewhere.
RESULTS = pathlib.Path(os.environ.get("REGJAX_RESULTS", HERE / "results"))
QUICK = os.environ.get("REGJAX_QUICK") == "1"
SIDES = ("above", "below")
KINDS = ("finding", "implementation check")
# Bits per packed float32 column: integers up to 2**24 are exact in float32.
_BITS = 24


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean with a two-sided confidence interval from ``n`` samples (seeds).

  ``n_test`` > 0 says the interval includes the sampling noise of a test set of that many
  examples, and ``test_noise`` how (see rule b of the module docstring).
  """

  mean: float
  low: float
  high: float
  n: int
  level: float = 0.95
  n_test: int = 0
  test_noise: str = ""

  def __str__(self) -> str:
    return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _t_half(values: np.ndarray, level: float) -> float:
  return float(stats.t.ppf(0.5 + level / 2, values.size - 1)
               * values.std(ddof=1) / math.sqrt(values.size))


def _with_test(n_test: int) -> dict[str, Any]:
  if n_test < 0:
    raise ValueError(f"`n_test` must be >= 0, got {n_test}.")
  return dict(n_test=int(n_test), test_noise="split per seed" if n_test else "")


def t_interval(samples: Iterable[float], level: float = 0.95, *, n_test: int = 0
               ) -> Interval:
  """Student-t interval for the mean of independent samples (seeds or folds).

  Args:
    samples: one value per seed.
    level: confidence level.
    n_test: pass the test-split size when each seed drew its own validation and test
      split: the spread over seeds then includes the test set's sampling noise (rule b),
      and the interval records it. 0 (default) claims nothing about test noise.
  """
  values = np.asarray(list(samples), dtype=np.float64)
  if values.ndim != 1 or values.size < 2:
    raise ValueError(f"`samples` needs at least 2 values, got shape {values.shape}.")
  if not np.all(np.isfinite(values)):
    raise ValueError("`samples` holds NaN or Inf; drop failed runs explicitly first.")
  mean = float(values.mean())
  half = _t_half(values, level)
  return Interval(mean, mean - half, mean + half, int(values.size), level, **_with_test(n_test))


def exact(value: float) -> Interval:
  """A computed quantity with no sampling noise (a worked example, a count): n = 1."""
  value = float(value)
  return Interval(value, value, value, 1)


def paired_interval(a: Iterable[float], b: Iterable[float], level: float = 0.95, *,
                    n_test: int = 0) -> Interval:
  """t interval for the mean of ``a - b`` over the same seeds/splits (a paired design)."""
  a, b = np.asarray(list(a), np.float64), np.asarray(list(b), np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}.")
  return t_interval(a - b, level, n_test=n_test)


def bootstrap_interval(samples: Iterable[float], statistic=np.mean, level: float = 0.95,
                       resamples: int = 10_000, seed: int = 0) -> Interval:
  """Percentile bootstrap interval of ``statistic`` (for medians, ratios, shares)."""
  values = np.asarray(list(samples), dtype=np.float64)
  if values.size < 2:
    raise ValueError("`samples` needs at least 2 values.")
  rng = np.random.default_rng(seed)
  draws = statistic(values[rng.integers(0, values.size, (resamples, values.size))], axis=1)
  low, high = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
  return Interval(float(statistic(values)), float(low), float(high), int(values.size), level)


def _two_way(mean: float, seed_term: float, example_term: float, seeds: int, examples: int,
             level: float, scale: float, noise: str) -> Interval:
  """``mean ± t_ν √(seed_term + example_term)``, ν by Welch–Satterthwaite, times ``scale``."""
  variance = seed_term + example_term
  if not math.isfinite(variance):
    raise ValueError("the per-example values hold NaN or Inf; drop failed runs first.")
  if variance == 0.0:
    half = 0.0
  else:
    denominator = example_term ** 2 / (examples - 1)
    if seeds > 1:
      denominator += seed_term ** 2 / (seeds - 1)
    half = float(stats.t.ppf(0.5 + level / 2, variance ** 2 / denominator)) * math.sqrt(
        variance)
  return Interval(scale * mean, scale * (mean - half), scale * (mean + half), int(seeds),
                  level, int(examples), noise)


def per_example_interval(per_example: Any, level: float = 0.95, *, scale: float = 1.0
                         ) -> Interval:
  r"""Interval of a test-set mean over seeds *and* test examples (rule b, per example).

  .. math::

     \hat V = s^2(\text{seed means}) / S + s^2(\text{example means}) / n

  Args:
    per_example: ``[seeds, examples]`` values, e.g. 1.0 where a seed's model classifies
      a test example correctly (one row per seed: a single row gives the binomial
      interval of one model).
    level: confidence level.
    scale: multiplies the interval (100 for points of accuracy).

  Returns:
    An :class:`Interval` with ``n`` = seeds and ``n_test`` = examples.
  """
  values = np.asarray(per_example, dtype=np.float64)
  if values.ndim != 2 or values.shape[1] < 2:
    raise ValueError(f"`per_example` must be [seeds, examples >= 2], got {values.shape}.")
  seeds, examples = values.shape
  seed_term = values.mean(axis=1).var(ddof=1) / seeds if seeds > 1 else 0.0
  example_term = values.mean(axis=0).var(ddof=1) / examples
  return _two_way(float(values.mean()), seed_term, example_term, seeds, examples, level,
                  scale, "per example")


def paired_per_example_interval(a: Any, b: Any, level: float = 0.95, *,
                                scale: float = 1.0) -> Interval:
  """:func:`per_example_interval` of ``a - b``: two arms on the same seeds and test examples."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired per-example values need equal shapes, got {a.shape} and "
                     f"{b.shape}.")
  return per_example_interval(a - b, level, scale=scale)


def _accuracies(values: Any, name: str) -> np.ndarray:
  array = np.asarray(list(values), np.float64)
  if array.ndim != 1 or array.size < 2 or np.any((array < 0) | (array > 1)):
    raise ValueError(f"`{name}` must be >= 2 accuracies in [0, 1] (not points), got "
                     f"{array}.")
  return array


def binomial_interval(accuracies: Iterable[float], n_test: int, level: float = 0.95, *,
                      scale: float = 1.0) -> Interval:
  r"""Interval of a mean accuracy with the test set's binomial noise bounded (rule b).

  Per-seed accuracies on one test set of ``n_test`` examples. The example term of
  :func:`per_example_interval` is bounded by :math:`\bar p(1-\bar p)/n`, its value when the
  seeds agree on every example, so the interval is conservative.
  """
  values = _accuracies(accuracies, "accuracies")
  mean = float(values.mean())
  return _two_way(mean, values.var(ddof=1) / values.size, mean * (1 - mean) / n_test,
                  values.size, int(n_test), level, scale, "binomial bound")


def paired_binomial_interval(accuracies_a: Iterable[float], accuracies_b: Iterable[float],
                             n_test: int, level: float = 0.95, *, scale: float = 1.0
                             ) -> Interval:
  r"""Interval of a paired accuracy difference with a bound on the test set's noise.

  Without per-example predictions, the per-example variance of the disagreements is
  bounded by :math:`(e_A + e_B - \bar d^2)/n` (the two arms disagree on at most the
  examples one of them gets wrong). Conservative: prefer :func:`paired_per_example_interval`.
  """
  a = _accuracies(accuracies_a, "accuracies_a")
  b = _accuracies(accuracies_b, "accuracies_b")
  if a.shape != b.shape:
    raise ValueError(f"paired accuracies need equal shapes, got {a.shape} and {b.shape}.")
  d = a - b
  mean = float(d.mean())
  bound = max((1 - a.mean()) + (1 - b.mean()) - mean ** 2, 0.0)
  return _two_way(mean, d.var(ddof=1) / d.size, bound / n_test, d.size, int(n_test), level,
                  scale, "binomial bound")


def absolute(interval: Interval) -> Interval:
  """The interval of ``|d|`` implied by an interval ``[low, high]`` of a signed ``d``.

  For claims such as "within 1 point": if ``d`` lies in ``[low, high]`` with 95 %
  confidence, ``|d|`` lies in ``[0, max(|low|, |high|)]`` when the interval straddles 0,
  else between ``min`` and ``max`` of ``|low|``, ``|high|``, with at least that
  confidence. (A bootstrap of ``|d|`` itself is biased away from 0.)
  """
  ends = sorted((abs(interval.low), abs(interval.high)))
  low = 0.0 if interval.low <= 0 <= interval.high else ends[0]
  return dataclasses.replace(interval, mean=abs(interval.mean), low=low, high=ends[1])


def verdict(interval: Interval, tolerance: float, side: str = "above") -> str:
  """``holds``/``fails``/``inconclusive`` from where ``interval`` lies against ``tolerance``.

  Args:
    interval: the measured quantity's interval.
    tolerance: the threshold the claim is read against.
    side: ``"above"`` when the claim says the quantity exceeds ``tolerance``,
      ``"below"`` when it says it stays under it.
  """
  if side not in SIDES:
    raise ValueError(f"`side` must be one of {SIDES}, got {side!r}.")
  low, high = interval.low, interval.high
  if side == "below":
    low, high, tolerance = -high, -low, -tolerance
  if low > tolerance:
    return "holds"
  if high < tolerance:
    return "fails"
  return "inconclusive"


def verdicts_over(interval: Interval, tolerances: Sequence[float], side: str = "above"
                  ) -> dict[float, str]:
  """The verdict at each tolerance of a range, to see whether it depends on the cut."""
  return {float(t): verdict(interval, t, side) for t in tolerances}


# --- Rule (a): choices and the edge of the grid ------------------------------------------


def _log_scaled(grid: np.ndarray) -> bool:
  positive = grid[grid > 0]
  return positive.size >= 2 and positive[-1] / positive[0] >= 20


@dataclasses.dataclass(frozen=True)
class Choice:
  """A hyperparameter value chosen from a grid, and what it was chosen by (rule a).

  Attributes:
    name: what was chosen, e.g. ``"λ (L1, SGD)"``.
    value: the chosen value (one of ``grid``).
    grid: the values it was chosen from, ascending.
    by: the selection rule, e.g. ``"most zeros within 1 pt of λ = 0, validation"``.
    limits: the domain's own bounds (``(0.0, None)`` for a strength whose "off" value is
      in the grid): a choice equal to one is not at an edge, nothing lies beyond it.
    scale: ``"log"`` or ``"linear"``: how the grid is spaced (``"auto"`` in
      :func:`choose`: log when its positive values span a factor of 20 or more).
  """

  name: str
  value: float
  grid: tuple[float, ...]
  by: str
  limits: tuple[float | None, float | None] = (None, None)
  scale: str = "linear"

  @property
  def edge(self) -> str | None:
    """``"lowest"``/``"highest"`` when the value sits at that edge of the grid, else None."""
    grid = np.asarray(self.grid)
    low, high = self.limits
    if (low is not None and np.isclose(self.value, low, rtol=1e-9, atol=0)) or (
        high is not None and np.isclose(self.value, high, rtol=1e-9, atol=0)):
      return None
    # On a log grid a 0 is the "off" reference, infinitely many decades below the rest.
    inner = grid[grid > 0] if self.scale == "log" and self.value > 0 else grid
    if np.isclose(self.value, inner[-1], rtol=1e-9, atol=0):
      return "highest"
    if np.isclose(self.value, inner[0], rtol=1e-9, atol=0):
      return "lowest"
    return None

  @property
  def flagged(self) -> bool:
    """Whether the choice sits at an edge of its grid (the optimum may lie beyond it)."""
    return self.edge is not None

  @property
  def reason(self) -> str:
    """One sentence for the verdict line: where the choice sits, or ``""``."""
    if self.edge is None:
      return ""
    grid = self.grid if self.scale != "log" or self.value <= 0 else tuple(
        g for g in self.grid if g > 0)
    return (f"{self.name} = {self.value:.3g} is the {self.edge} value of its grid "
            f"({grid[0]:.3g} … {grid[-1]:.3g}, chosen by {self.by}): the optimum may lie "
            "beyond it")

  def beyond(self, count: int = 1) -> np.ndarray:
    """The next ``count`` grid values past the flagged edge, continuing the grid's step.

    A log grid continues by the ratio of its two outermost values on that side, a linear
    one by their difference; values past a ``limits`` bound are replaced by the bound.
    Empty when the choice is not flagged.
    """
    if self.edge is None:
      return np.zeros(0)
    grid = np.asarray(self.grid, np.float64)
    if self.scale == "log":
      grid = grid[grid > 0]
    if self.edge == "highest":
      outer, inner, bound = grid[-1], grid[-2] if grid.size > 1 else None, self.limits[1]
    else:
      outer, inner, bound = grid[0], grid[1] if grid.size > 1 else None, self.limits[0]
    steps = np.arange(1, count + 1)
    if self.scale == "log":
      ratio = outer / inner if inner is not None else (
          math.sqrt(10) if self.edge == "highest" else 1 / math.sqrt(10))
      values = outer * ratio ** steps
    else:
      step = outer - inner if inner is not None else (abs(outer) or 1.0) * (
          1 if self.edge == "highest" else -1)
      values = outer + step * steps
    if bound is not None:
      past = values > bound if self.edge == "highest" else values < bound
      values = np.unique(np.where(past, bound, values))
      values = values[::-1] if self.edge == "lowest" else values
    return values

  def as_dict(self) -> dict[str, Any]:
    """The saved form: the fields plus ``edge`` and ``reason``."""
    return dict(name=self.name, value=float(self.value), grid=[float(g) for g in self.grid],
                by=self.by, limits=list(self.limits), scale=self.scale, edge=self.edge,
                reason=self.reason)


def choose(name: str, grid: Iterable[float], value: float, *, by: str,
           limits: tuple[float | None, float | None] = (None, None),
           scale: str = "auto") -> Choice:
  """Record a value chosen from ``grid`` (rule a): flagged when at an edge of the grid.

  Args:
    name: what was chosen (appears in verdict lines).
    grid: every value the choice was made among (not the whole sweep if part of it was
      excluded: e.g. the positive strengths when λ = 0 is only the reference).
    value: the chosen value; must be in ``grid``.
    by: the selection rule, in words.
    limits: the domain's bounds; a choice equal to one is not flagged.
    scale: ``"log"``, ``"linear"`` or ``"auto"`` (log when the positive values span a
      factor of 20 or more).

  Raises:
    ValueError: if ``grid`` is empty or not finite, or ``value`` is not in it.
  """
  array = np.unique(np.asarray(list(grid), np.float64))
  if array.size == 0 or not np.all(np.isfinite(array)):
    raise ValueError(f"`grid` of {name!r} must hold finite values, got {array}.")
  if not np.any(np.isclose(array, value, rtol=1e-9, atol=0)):
    raise ValueError(f"the chosen value {value!r} of {name!r} is not in its grid {array}.")
  if scale == "auto":
    scale = "log" if _log_scaled(array) else "linear"
  if scale not in ("log", "linear"):
    raise ValueError(f"`scale` must be 'log', 'linear' or 'auto', got {scale!r}.")
  return Choice(name, float(value), tuple(float(g) for g in array), by,
                (limits[0], limits[1]), scale)


def select(name: str, grid: Iterable[float], scores: Iterable[float], *, by: str,
           eligible: Iterable[bool] | None = None, best: str = "max",
           limits: tuple[float | None, float | None] = (None, None),
           scale: str = "auto") -> Choice:
  """Choose the grid value with the best score among the eligible ones (rule a).

  Ties go to the first value in ``grid``'s order. The returned :class:`Choice` keeps the
  whole ``grid`` (eligible or not): an edge is an edge of what was searched.

  Args:
    name: what is chosen.
    grid: candidate values, aligned with ``scores``.
    scores: e.g. mean validation accuracy per value.
    by: the rule in words.
    eligible: which values may be chosen (e.g. within 1 point of the reference).
    best: ``"max"`` or ``"min"``.
    limits: see :func:`choose`.
    scale: see :func:`choose`.

  Raises:
    ValueError: if no value is eligible, or the shapes disagree.
  """
  values = np.asarray(list(grid), np.float64)
  score = np.asarray(list(scores), np.float64)
  ok = np.ones(values.shape, bool) if eligible is None else np.asarray(list(eligible), bool)
  if not values.shape == score.shape == ok.shape:
    raise ValueError(f"`grid`, `scores` and `eligible` of {name!r} need one shape, got "
                     f"{values.shape}, {score.shape}, {ok.shape}.")
  if best not in ("max", "min"):
    raise ValueError(f"`best` must be 'max' or 'min', got {best!r}.")
  ok &= np.isfinite(score)
  if not ok.any():
    raise ValueError(f"no value of {name!r} is eligible ({by}); widen the grid or the rule.")
  ranked = np.where(ok, score if best == "max" else -score, -np.inf)
  return choose(name, values, float(values[int(np.argmax(ranked))]), by=by, limits=limits,
                scale=scale)


def extend_until_interior(result: Any, choose_from: Any, run: Any, *, rounds: int = 3,
                          count: int = 2, concat: Any = None) -> tuple[Any, Choice]:
  """Extend a sweep past the edge of its grid until the choice is interior (rule a).

  Args:
    result: the sweep so far.
    choose_from: ``result -> Choice``: the selection rule, applied to the whole sweep.
    run: ``values -> result``: sweeps the new grid values (the same seeds and settings).
    rounds: extensions at most (0 in a quick run keeps it cheap); the choice returned may
      still be flagged, and a verdict resting on it then reads inconclusive.
    count: grid values added per round (:meth:`Choice.beyond`).
    concat: joins results; ``regjax.concat_results`` by default.

  Returns:
    ``(result, choice)``: the extended sweep and the choice made on it.
  """
  if concat is None:
    from regjax import concat_results as concat
  choice = choose_from(result)
  for _ in range(rounds):
    values = choice.beyond(count)
    if not choice.flagged or values.size == 0:
      break
    result = concat([result, run(values)])
    choice = choose_from(result)
  return result, choice


# --- Rows ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Finding:
  """One row: a claim, its interval, the tolerance, the verdict and what it rests on.

  ``verdict`` is ``measured`` (the interval's own verdict) unless a choice in ``choices``
  sits at the edge of its grid, in which case it is ``"inconclusive"``. ``choices`` is
  None when the notebook did not declare them.
  """

  key: str
  claim: str
  interval: Interval
  tolerance: float
  side: str
  verdict: str
  tolerances: dict[float, str]
  fragile: bool
  kind: str
  unit: str = ""
  note: str = ""
  measured: str = ""
  choices: list[dict[str, Any]] | None = None
  by_construction: str = ""
  not_by_construction: str = ""


class Findings:
  """The verdicts of one notebook, printed as a table and saved as its results file."""

  def __init__(self, notebook: str):
    self.notebook = notebook
    self.rows: list[Finding] = []
    self.values: dict[str, object] = {}
    self.papers: list[dict[str, str]] = []

  def add(self, key: str, claim: str, interval: Interval, tolerance: float, *,
          side: str = "above", tolerances: Sequence[float] | None = None,
          kind: str = "finding", unit: str = "", note: str = "",
          choices: Sequence[Choice] | None = None, by_construction: str = "",
          not_by_construction: str = "") -> Finding:
    """Record one verdict; ``tolerances`` defaults to ``tolerance`` × {0.5, 1, 2}.

    Args:
      key: unique within the notebook (a second ``add`` with it replaces the row).
      claim: the claim in words, with what is measured.
      interval: the measured quantity.
      tolerance: the cut the claim is read against.
      side: ``"above"`` or ``"below"`` (see :func:`verdict`).
      tolerances: the range over which the verdict is recomputed (``fragile``).
      kind: ``"finding"`` or ``"implementation check"``.
      unit: printed after the interval.
      note: free text saved with the row.
      choices: the :class:`Choice` objects the value rests on (rule a); ``()`` when it
        rests on none. A flagged one makes the verdict inconclusive.
      by_construction: why the value is fixed by construction (rule c): only for an
        implementation check.
      not_by_construction: why a finding whose every seed gave the same value is
        nonetheless an outcome (rule c).

    Raises:
      ValueError: for an unknown kind, or a finding with ``by_construction``. A finding
        whose interval has zero width over two or more seeds without
        ``not_by_construction`` warns here, and ``tests/test_notebooks.py`` refuses it in
        a full-size results file.
    """
    if kind not in KINDS:
      raise ValueError(f"`kind` must be 'finding' or 'implementation check', got {kind!r}.")
    if kind == "finding" and by_construction:
      raise ValueError(f"{key!r}: a value fixed by construction ({by_construction}) cannot "
                       "be a finding; record it with Findings.check(...).")
    if kind == "finding" and constant_over_seeds(interval) and not not_by_construction:
      # Quick runs (2 seeds) often tie by chance; tests/test_notebooks.py refuses such a
      # row in a full-size results file.
      warnings.warn(
          f"{key!r}: every one of the {interval.n} seeds gives {interval.mean:g}: a value "
          "that does not vary with the seed is usually fixed by the design (a chosen "
          "level, a count the algorithm guarantees, zero by float arithmetic). Record it "
          "with Findings.check(..., by_construction=...), or pass not_by_construction="
          "'why it is an outcome'.", stacklevel=2)
    if choices is not None and not all(isinstance(c, Choice) for c in choices):
      raise TypeError(f"{key!r}: `choices` must be evidence.Choice objects (from "
                      "evidence.choose or evidence.select).")
    if tolerances is None:
      tolerances = sorted({tolerance * 0.5, tolerance, tolerance * 2}) if tolerance else [0.0]
    over = verdicts_over(interval, tolerances, side)
    measured = verdict(interval, tolerance, side)
    saved = None if choices is None else [c.as_dict() for c in choices]
    row = Finding(key, claim, interval, float(tolerance), side,
                  _rested_verdict(measured, saved), over, len(set(over.values())) > 1,
                  kind, unit, note, measured, saved, by_construction, not_by_construction)
    self.rows = [r for r in self.rows if r.key != key] + [row]
    return row

  def check(self, key: str, claim: str, interval: Interval, tolerance: float, *,
            by_construction: str, **options: Any) -> Finding:
    """Record an implementation check: a value fixed by construction, and why (rule c)."""
    if not by_construction:
      raise ValueError(f"{key!r}: say why the value is fixed by construction.")
    return self.add(key, claim, interval, tolerance, kind="implementation check",
                    by_construction=by_construction, choices=options.pop("choices", ()),
                    **options)

  def value(self, key: str, value: object) -> object:
    """Record a number that prose quotes, so the prose is generated from it."""
    self.values[key] = _plain(value)
    return value

  def paper(self, what: str, paper: str, theirs: str, ours: str, setting: str) -> None:
    """One row of the 'papers side by side' table."""
    self.papers.append(dict(what=what, paper=paper, theirs=theirs, ours=ours,
                            setting=setting))

  def __getitem__(self, key: str) -> Finding:
    return next(r for r in self.rows if r.key == key)

  def saved_rows(self) -> list[dict[str, Any]]:
    """The rows in their saved (JSON) form."""
    return [_plain(dataclasses.asdict(r)) for r in self.rows]

  def table(self) -> str:
    """The verdict lines, findings first, then implementation checks."""
    return "\n".join(verdict_lines(self.saved_rows()))

  def plot(self, ax: Any = None, title: str = "") -> Any:
    """Every verdict of the notebook against its tolerance (see :func:`plot_findings`)."""
    return plot_findings(self.saved_rows(), ax=ax, title=title or self.notebook)

  def save(self, directory: str | os.PathLike | None = None) -> pathlib.Path:
    """Write ``<notebook>.json``: to ``notebooks/results`` at full size, else ``directory``."""
    if directory is None:
      directory = pathlib.Path.cwd() / "quick-results" if QUICK else RESULTS
    path = pathlib.Path(directory) / f"{self.notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(notebook=self.notebook, quick=QUICK, findings=self.saved_rows(),
                   values=self.values, papers=self.papers)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def constant_over_seeds(interval: Interval | Mapping[str, Any]) -> bool:
  """Whether two or more seeds all gave exactly the same value (rule c's checkable sign)."""
  i = dataclasses.asdict(interval) if isinstance(interval, Interval) else interval
  return int(i["n"]) >= 2 and float(i["low"]) == float(i["high"])


def _rested_verdict(measured: str, choices: Sequence[Mapping[str, Any]] | None) -> str:
  return "inconclusive" if any(c["edge"] for c in choices or ()) else measured


def verdict_of(row: Mapping[str, Any]) -> str:
  """A saved row's verdict, recomputed from its interval, tolerance and choices."""
  interval = Interval(**{k: (float(v) if k in ("mean", "low", "high") else v)
                         for k, v in row["interval"].items()})
  return _rested_verdict(verdict(interval, float(row["tolerance"]), row["side"]),
                         row.get("choices"))


def _plain(value):
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return _plain(value.as_dict() if isinstance(value, Choice) else dataclasses.asdict(value))
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, (np.generic, np.ndarray)):
    return _plain(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # "inf", "-inf" or "nan": JSON has no such numbers
  return value


def _interval_text(i: Mapping[str, Any]) -> str:
  return f"{float(i['mean']):.4g} [{float(i['low']):.4g}, {float(i['high']):.4g}]"


def _n_text(i: Mapping[str, Any]) -> str:
  if i.get("n_test"):
    return f"n={i['n']}, {i['n_test']} test: {i['test_noise']}"
  return f"n={i['n']}"


def flags(row: Mapping[str, Any]) -> list[str]:
  """The reasons a saved row carries: choices at an edge, fixed by construction."""
  out = [f"edge of grid: {c['reason']}; the interval alone reads {row['measured']}"
         for c in row.get("choices") or () if c["edge"]]
  if row.get("by_construction"):
    out.append(f"fixed by construction: {row['by_construction']}")
  return out


def verdict_line(row: dict) -> str:
  """One printed verdict line of a finding, from its saved (JSON) form.

  Numbers go through ``float``: a non-finite one is saved as the string "nan"/"inf".
  """
  i = row["interval"]
  flag = "  (fragile: changes within tolerances " + ", ".join(
      f"{float(t):g}→{v}" for t, v in sorted(row["tolerances"].items(),
                                             key=lambda item: float(item[0]))) + ")" \
      if row["fragile"] else ""
  flag += "".join(f"  ({text})" for text in flags(row))
  cmp = ">" if row["side"] == "above" else "<"
  return (f"  [{row['verdict'].upper():>12}] {row['claim']}: {_interval_text(i)}{row['unit']} "
          f"({_n_text(i)}), claim {cmp} {float(row['tolerance']):g}{flag}")


def verdict_lines(rows: Sequence[dict]) -> list[str]:
  """Headed verdict lines (findings, then implementation checks) of saved findings."""
  lines = []
  for kind in KINDS:
    chosen = [r for r in rows if r["kind"] == kind]
    if chosen:
      lines.append(f"{kind.capitalize()}s:")
      lines += [verdict_line(r) for r in chosen]
  return lines


# --- Sweeps --------------------------------------------------------------------------------


def by_seed(result, metric: str, **conditions) -> np.ndarray:
  """``metric`` of the rows of a sweep result meeting ``conditions``, ordered by seed.

  Two calls with the same seeds give arrays that pair run by run (a paired design).
  """
  rows = result.filter(**conditions) if conditions else result
  order = np.argsort(np.asarray(rows["seed"]), kind="stable")
  return np.asarray(rows[metric], dtype=np.float64)[order]


def pack_per_example(values: Any, name: str) -> dict[str, Any]:
  """Per-example booleans (correct or not) as scalar metrics of a swept function (rule b).

  Packed 24 to a float32 column ``<name>#<k>``, with ``<name>#n`` holding the count:
  scalars pass through everything a sweep does with metrics (a Trainer's ``metrics_fn``,
  its ``eval_every`` curves, curves of another length); :func:`per_example` unpacks them.
  Call it inside the swept function. (Per-example floats would take a column each, which
  compiles slowly: return them as a curve ``curves/<name>`` instead.)
  """
  import jax.numpy as jnp  # the swept function is traced by JAX

  array = jnp.asarray(values)
  if array.dtype != jnp.bool_ or array.ndim != 1:
    raise TypeError(f"`values` of {name!r} must be a 1-D boolean array, got {array.dtype}"
                    f"{list(array.shape)}.")
  out = {f"{name}#n": jnp.float32(array.shape[0])}
  columns = -(-array.shape[0] // _BITS)
  padded = jnp.zeros(columns * _BITS, jnp.float32).at[:array.shape[0]].set(array)
  # An elementwise product and a float32 sum: integers below 2**24 stay exact (a matmul
  # could run in reduced precision on an accelerator).
  packed = (padded.reshape(columns, _BITS) * 2.0 ** jnp.arange(_BITS)[None]).sum(axis=1)
  out.update({f"{name}#{k}": packed[k] for k in range(columns)})
  return out


def per_example_correct(model: Any, batch: Any, hparams: Any = None) -> dict[str, Any]:
  """A Trainer ``metrics_fn``: which held-out examples the model classifies correctly.

  Packed with :func:`pack_per_example` as ``correct``; the Trainer prefixes the split, so
  ``per_example(result, "test_correct")`` reads the test split's ``[seeds, examples]``.
  """
  import jax.numpy as jnp

  inputs, labels = batch
  return pack_per_example(jnp.argmax(model(inputs), -1) == labels, "correct")


def per_example(result, name: str, *, evaluation: int | slice | None = None,
                **conditions) -> np.ndarray:
  """``[seeds, examples]`` per-example values of the rows meeting ``conditions``, by seed.

  Read from the curve ``curves/<name>`` of a sweep, or from the columns written by
  :func:`pack_per_example`. ``evaluation`` reads those columns' curves instead (a Trainer
  with ``eval_every``): an index gives ``[seeds, examples]`` at that evaluation, a slice
  ``[seeds, evaluations, examples]``.
  """
  rows = result.filter(**conditions) if conditions else result
  order = np.argsort(np.asarray(rows["seed"]), kind="stable")
  curves = rows.curves
  if name in curves and evaluation is None:
    return np.asarray(curves[name], np.float64)[order]
  if f"{name}#n" not in rows.columns:
    raise KeyError(f"the result has no curve {name!r} and no packed columns {name}#k: "
                   f"return `curves/{name}` or evidence.pack_per_example(...) from the "
                   "swept function.")
  n = int(np.asarray(rows[f"{name}#n"])[0])
  names = [f"{name}#{k}" for k in range(-(-n // _BITS))]
  if evaluation is None:
    columns = np.stack([np.asarray(rows[c], np.float64) for c in names], -1)
  else:
    columns = np.stack([np.asarray(curves[c], np.float64)[:, evaluation] for c in names], -1)
  codes = columns.astype(np.int64)
  bits = (codes[..., None] >> np.arange(_BITS)) & 1
  return bits.reshape(*codes.shape[:-1], -1)[..., :n].astype(np.float64)[order]


def two_way_bootstrap(per_example: Any, statistic: Any, level: float = 0.95, *,
                      resamples: int = 2000, seed: int = 0, scale: float = 1.0) -> Interval:
  """Percentile bootstrap over seeds *and* test examples, for a statistic of curves (rule b).

  For quantities that are not a mean over examples (the first step at which a test
  accuracy curve reaches a target): each resample draws the test examples with
  replacement (their mean per seed is what ``statistic`` sees) and then the seeds.
  Resampling both counts the seed × example interaction twice, as
  :func:`per_example_interval` does: slightly conservative.

  Args:
    per_example: ``[seeds, ..., examples]`` values (e.g. correctness per evaluation).
    statistic: maps the example means ``[seeds, ...]`` to one value per seed ``[seeds]``
      (e.g. a paired difference of two arms stacked on the second axis).
    level: confidence level.
    resamples: bootstrap draws.
    seed: of the resampling.
    scale: multiplies the interval.
  """
  values = np.asarray(per_example, np.float64)
  seeds, examples = values.shape[0], values.shape[-1]
  rng = np.random.default_rng(seed)
  weights = rng.multinomial(examples, np.full(examples, 1 / examples), resamples) / examples
  means = values @ weights.T  # [seeds, ..., resamples]
  draws = np.empty(resamples)
  for b in range(resamples):
    per_seed = np.asarray(statistic(means[..., b]), np.float64)
    draws[b] = per_seed[rng.integers(0, seeds, seeds)].mean()
  point = float(np.mean(statistic(values.mean(-1))))
  low, high = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
  return Interval(scale * point, scale * float(low), scale * float(high), seeds, level,
                  examples, "two-way bootstrap")


# --- Figures -------------------------------------------------------------------------------

_COLORS = {"holds": "tab:green", "fails": "tab:red", "inconclusive": "tab:gray"}


def show(figure: Any, dpi: int = 90) -> None:
  """Display ``figure`` as a PNG image in the notebook, whatever the matplotlib backend.

  (With a non-interactive backend such as Agg, displaying a figure object stores only
  the text ``<Figure size ...>``.) The figure is closed afterwards.
  """
  from IPython.display import Image, display

  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
  display(Image(data=buffer.getvalue(), format="png"))
  try:
    import matplotlib.pyplot as plt
    plt.close(figure)
  except ImportError:  # pragma: no cover - matplotlib is what made the figure
    pass


def _axes(ax: Any, rows: int) -> tuple[Any, Any]:
  if ax is not None:
    return ax.figure, ax
  from matplotlib.figure import Figure

  figure = Figure(figsize=(8.0, 0.9 + 0.38 * rows), layout="constrained")
  return figure, figure.add_subplot()


def plot_intervals(intervals: Mapping[str, Interval] | Sequence[tuple[str, Interval]], *,
                   tolerance: float | None = None, side: str = "above", unit: str = "",
                   title: str = "", xlabel: str = "", ax: Any = None) -> Any:
  """A forest plot: one quantity's interval per arm, against a tolerance (rule d).

  Args:
    intervals: ``{label: Interval}`` (or pairs), drawn top to bottom.
    tolerance: drawn as a dashed line; the claim's side is shaded.
    side: ``"above"`` or ``"below"``: the claim's side of the tolerance.
    unit: appended to the printed intervals.
    title: the axes title.
    xlabel: the x-axis label.
    ax: draw into these axes; by default a new figure.

  Returns:
    The matplotlib Figure (pass it to :func:`show`).
  """
  items = list(intervals.items() if isinstance(intervals, Mapping) else intervals)
  figure, ax = _axes(ax, len(items))
  ys = np.arange(len(items))[::-1]
  for y, (_, interval) in zip(ys, items, strict=True):
    color = ("tab:blue" if tolerance is None
             else _COLORS[verdict(interval, tolerance, side)])
    ax.errorbar(interval.mean, y, xerr=[[interval.mean - interval.low],
                                        [interval.high - interval.mean]],
                fmt="o", color=color, capsize=3)
    ax.annotate(f"{interval}{unit}", (interval.high, y), xytext=(4, 0),
                textcoords="offset points", va="center", fontsize=8)
  ax.margins(x=0.25)
  if tolerance is not None:
    ax.axvline(tolerance, color="k", ls="--", lw=1)
    low, high = ax.get_xlim()
    ax.axvspan(tolerance, high if side == "above" else low, color="tab:green", alpha=0.07,
               lw=0)
    ax.set_xlim(low, high)
  ax.set_yticks(ys, [label for label, _ in items], fontsize=8)
  ax.set_ylim(-0.7, len(items) - 0.3)
  ax.set_xlabel(xlabel or (f"95 % interval{f' ({unit.strip()})' if unit.strip() else ''}"
                           + ("; dashed: tolerance, shaded: the claim's side"
                              if tolerance is not None else "")), fontsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  return figure


def _short(text: str, width: int = 70) -> str:
  return text if len(text) <= width else text[:width - 1] + "…"


def plot_findings(rows: Sequence[Mapping[str, Any]], *, ax: Any = None, title: str = ""
                  ) -> Any:
  """Every saved row against its own tolerance, on one axis (rule d).

  Each row is shifted so its tolerance sits at 0 and mirrored so the claim's side is to
  the right, then scaled by the largest distance among its interval ends and tolerance
  range; so rows of different units share the axis, and position reads as "how far on
  which side". The grey band is the range over which the verdict is recomputed;
  hollow markers are implementation checks, an ``×`` marks a choice at the edge of its
  grid.
  """
  figure, ax = _axes(ax, len(rows))
  ys = np.arange(len(rows))[::-1]
  labels = []
  for y, row in zip(ys, rows, strict=True):
    i = {k: float(row["interval"][k]) for k in ("mean", "low", "high")}
    tol, sign = float(row["tolerance"]), 1.0 if row["side"] == "above" else -1.0
    cuts = [float(t) for t in row["tolerances"]]
    scale = max([abs(v - tol) for v in (*i.values(), *cuts) if math.isfinite(v)] + [1e-300])
    x = {k: sign * (v - tol) / scale for k, v in i.items()}
    band = [sign * (c - tol) / scale for c in cuts]
    ax.plot([min(band), max(band)], [y, y], color="0.85", lw=7, solid_capstyle="butt", zorder=0)
    lo, hi = sorted((x["low"], x["high"]))
    color = _COLORS[row["verdict"]]
    check = row["kind"] != "finding"
    ax.errorbar(x["mean"], y, xerr=[[x["mean"] - lo], [hi - x["mean"]]], fmt="o",
                color=color, capsize=3, mfc="white" if check else color)
    if any(c["edge"] for c in row.get("choices") or ()):
      ax.plot(hi + 0.08, y, "x", color="tab:orange", ms=8, mew=2)
    labels.append(_short(("[check] " if check else "") + row["claim"]))
  ax.axvline(0, color="k", lw=1)
  ax.set_yticks(ys, labels, fontsize=7)
  ax.set_ylim(-0.7, len(rows) - 0.3)
  ax.set_xlim(-1.25, 1.25)
  ax.set_xlabel("interval relative to the tolerance (0), claim's side to the right, each "
                "row scaled to fit; green holds, red fails, grey inconclusive", fontsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  return figure


# --- README --------------------------------------------------------------------------------


def load(notebook: str, directory: str | os.PathLike = RESULTS) -> dict:
  return json.loads((pathlib.Path(directory) / f"{notebook}.json").read_text())


def _cell(text: str) -> str:
  """Text for one Markdown table cell: a literal ``|`` (as in ``|w|``) is escaped."""
  return text.replace("|", "\\|").replace("\n", " ")


def _stamp(text: str) -> datetime.datetime:
  return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def wall_time(notebook: str | os.PathLike) -> tuple[float, datetime.datetime] | None:
  """Seconds from the first cell's start to the last cell's end of a stored notebook.

  Read from the execution timestamps nbclient records in each code cell's metadata
  (``metadata.execution``); returns ``(seconds, start)`` or None without timestamps.
  """
  cells = json.loads(pathlib.Path(notebook).read_text())["cells"]
  stamps = [_stamp(value) for cell in cells if cell["cell_type"] == "code"
            for key, value in cell.get("metadata", {}).get("execution", {}).items()
            if key.startswith(("iopub.", "shell."))]
  if not stamps:
    return None
  return (max(stamps) - min(stamps)).total_seconds(), min(stamps)


def _rests_on(row: Mapping[str, Any]) -> str:
  if row.get("by_construction"):
    return "by construction: " + row["by_construction"]
  choices = row.get("choices")
  if choices is None:
    return "undeclared" if row["kind"] == "finding" else ""
  return "; ".join(("**edge**: " if c["edge"] else "") + f"{c['name']} = {c['value']:.3g} "
                   f"of {c['grid'][0]:.3g} … {c['grid'][-1]:.3g}" for c in choices) or "—"


def _n_cell(i: Mapping[str, Any]) -> str:
  return f"({i['n']} × {i['n_test']} test)" if i.get("n_test") else f"({i['n']})"


def readme_table(directory: str | os.PathLike = RESULTS,
                 notebooks: str | os.PathLike = HERE) -> str:
  """The generated block of ``notebooks/README.md``: verdicts, papers and wall times."""
  lines = ["| notebook | kind | claim | 95 % interval (n) | tolerance | verdict | rests on |",
           "|---|---|---|---|---|---|---|"]
  papers = ["| notebook | what | paper | theirs | ours | setting |", "|---|---|---|---|---|---|"]
  for path in sorted(pathlib.Path(directory).glob("*.json")):
    data = json.loads(path.read_text())
    for r in data["findings"]:
      i = r["interval"]
      cmp = ">" if r["side"] == "above" else "<"
      flag = " (fragile)" if r["fragile"] else ""
      if any(c["edge"] for c in r.get("choices") or ()):
        flag += f" (edge of grid; the interval alone: {r['measured']})"
      lines.append(f"| {data['notebook']} | {r['kind']} | {_cell(r['claim'])} | "
                   f"{_interval_text(i)}{r['unit']} {_n_cell(i)} | "
                   f"{cmp} {float(r['tolerance']):g} | {r['verdict']}{flag} | "
                   f"{_cell(_rests_on(r))} |")
    for p in data.get("papers", []):
      papers.append("| " + " | ".join(_cell(str(v)) for v in (
          data["notebook"], p["what"], p["paper"], p["theirs"], p["ours"], p["setting"])) + " |")
  times = ["| notebook | executed (UTC) | wall time of the stored run |", "|---|---|---|"]
  for path in sorted(pathlib.Path(notebooks).glob("*.ipynb")):
    timing = wall_time(path)
    if timing is not None:
      times.append(f"| {path.stem} | {timing[1]:%Y-%m-%d %H:%M} | {timing[0]:,.0f} s |")
  return ("<!-- verdicts:begin (generated by `python notebooks/evidence.py`) -->\n"
          + "\n".join(lines) + "\n\n### Papers side by side\n\n" + "\n".join(papers)
          + "\n\n### Wall times of the stored runs\n\nFrom the first cell's start to the "
          "last cell's end, as recorded in each stored notebook's cell metadata.\n\n"
          + "\n".join(times) + "\n<!-- verdicts:end -->")


def update_readme(readme: pathlib.Path = HERE / "README.md") -> bool:
  """Replace the generated block of the README; returns whether it changed."""
  text = readme.read_text()
  begin, end = "<!-- verdicts:begin", "<!-- verdicts:end -->"
  if begin not in text or end not in text:
    raise ValueError(f"{readme} has no generated block ({begin} ... {end}).")
  head, rest = text.split(begin, 1)
  tail = rest.split(end, 1)[1]
  new = head + readme_table() + tail
  if new != text:
    readme.write_text(new)
  return new != text


if __name__ == "__main__":
  changed = update_readme()
  print("notebooks/README.md", "updated" if changed else "already up to date", file=sys.stderr)
