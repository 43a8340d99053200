"""An adaptive λ search on the one sweep loop: :func:`adaptive_sweep`.

:func:`adaptive_sweep` runs ``slots x seeds`` rows as one compiled program through
:func:`regjax.sweep`, segment by segment, and between segments lets the policy of
:mod:`regjax.experiment.adaptive` (:class:`~regjax.experiment.adaptive.Refill`) stop the
worst points and refill their rows with new ones, through the loop's hook
(:class:`regjax.experiment.loop.Refill`): a refilled row restarts from a fresh ``init``
with its new hyperparameters and seed, inside the same compiled programs.

How a search maps onto the loop. The user's run (a
:class:`~regjax.experiment.loop.SegmentedRun`, e.g. a :class:`regjax.Trainer`) is cut into
``segments`` equal segments; the loop runs ``rounds`` such segments. Each row carries a
step counter beside its training state: once the row has trained one full run it holds
its state (the program still computes the row, masked: the loop's width is fixed), until
the policy gives it a new point. So every point the search reports is the user's run,
whole, at one fixed set of hyperparameters and one seed: the rows that :func:`regjax.sweep`
would compute for that point and seed, up to float rounding of a different batch width.

The hook that drives the policy (``_Driver``) is called after every segment, the last
included: it records the points that completed, and returns the refill, or a
:class:`~regjax.experiment.loop.Stop` once every slot idles (the budget left could not
complete a new point and every point has completed), so no segment runs for nothing.
With ``checkpoint=DIR`` the loop saves, after every segment and in one atomic
checkpoint, the rows (states, exact hyperparameters, seeds) and the hook's state (the
policy and the completed rows, its ``state_dict()``), so a search resumed from ``DIR``
continues where it stopped and returns the same result.
"""

from __future__ import annotations

import pathlib
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from regjax.experiment import adaptive as _adaptive
from regjax.experiment import grids as _grids
from regjax.experiment import loop as _loop
from regjax.experiment import results as _results
from regjax.experiment import sweeps as _sweeps
from regjax.experiment.adaptive import Objective
from regjax.experiment.rows import Seeds

__all__ = ["adaptive_sweep"]


# Adapters by (id(fn), segments, rounds), so that a repeated search with the same ``fn``
# reuses the loop's compiled programs (cached per adapter object). An adapter holds ``fn``
# weakly and its entry goes when ``fn`` is collected: nothing here keeps ``fn`` alive.
_ADAPTERS: dict[int, dict[tuple[int, int], _Slots]] = {}


def _adapter(fn: Any, segments: int, rounds: int) -> _Slots:
  entries = _ADAPTERS.get(id(fn))
  if entries is None:
    try:
      weakref.finalize(fn, _ADAPTERS.pop, id(fn), None)
    except TypeError:  # not weakly referenceable: no reuse
      return _Slots(fn, segments, rounds)
    entries = _ADAPTERS[id(fn)] = {}
  if (segments, rounds) not in entries:
    entries[(segments, rounds)] = _Slots(fn, segments, rounds)
  return entries[(segments, rounds)]


class _Slots:
  """``fn`` as a segmented run of ``rounds`` segments whose rows each train one full run
  of ``fn`` and then hold their state (see the module docstring)."""

  def __init__(self, fn: Any, segments: int, rounds: int):
    lengths = tuple(int(n) for n in fn.plan_segments(segments))
    if len(set(lengths)) != 1 or len(lengths) != segments:
      raise ValueError(f"`segments` {segments} must cut the run into equal segments; its "
                       f"plan is {lengths}. Pick a count that divides its steps (in "
                       "evaluation periods).")
    if fn.host_batches() is not None:
      raise TypeError("`adaptive_sweep` needs a run that draws its own data (in-memory "
                      "`train`): rows restart at different times, so they cannot share one "
                      "host stream.")
    try:
      self._fn: Callable[[], Any] = weakref.ref(fn)
    except TypeError:
      self._fn = lambda: fn
    self.length, self.total, self.rounds = lengths[0], sum(lengths), rounds
    # What the checkpoint signature reads from a run (regjax.experiment.checkpoint).
    self.batch_size = getattr(fn, "batch_size", None)
    self.train, self.test = getattr(fn, "train", None), getattr(fn, "test", None)

  @property
  def fn(self) -> Any:
    return self._fn()

  def check_hparams(self, point: Mapping[str, float]) -> None:
    self.fn.check_hparams(point)

  def plan_segments(self, count: int | None) -> tuple[int, ...]:
    del count
    return (self.length,) * self.rounds

  def host_batches(self) -> None:
    return None

  def init(self, hparams: Any, key: jax.Array) -> dict[str, Any]:
    return {"run": self.fn.init(hparams, key), "steps": jnp.zeros((), jnp.int32)}

  def advance(self, hparams: Any, state: dict[str, Any], num_steps: int,
              batches: Any = None) -> dict[str, Any]:
    moved = self.fn.advance(hparams, state["run"], num_steps, batches)
    live = state["steps"] < self.total
    run = jax.tree.map(lambda new, old: jnp.where(live, new, old), moved, state["run"])
    return {"run": run, "steps": state["steps"] + jnp.where(live, num_steps, 0)}

  def evaluate(self, hparams: Any, state: dict[str, Any]) -> Any:
    return self.fn.evaluate(hparams, state["run"])


class _Driver:
  """The hook after each segment: feeds the policy, collects the completed rows.

  Its state (the policy's and the collected rows) is saved with the loop's checkpoints
  through :meth:`state_dict` and given back on resume through :meth:`load_state_dict`.
  """

  def __init__(self, search: _adaptive.Refill):
    self.search = search
    self.collected: list[dict[str, Any]] = []  # one entry per row of a completed point
    self.start = (time.perf_counter(), time.process_time())
    self.timeline: list[tuple[int, float, float]] = []  # (segments done, wall, cpu)
    self.host_seconds = 0.0  # spent in the hook

  def __call__(self, event: _loop.SegmentEnd) -> _loop.Refill | _loop.Stop | None:
    self.timeline.append((event.segment, time.perf_counter() - self.start[0],
                          time.process_time() - self.start[1]))
    try:
      return self.decide(event)
    finally:
      self.host_seconds += time.perf_counter() - self.start[0] - self.timeline[-1][1]

  def decide(self, event: _loop.SegmentEnd) -> _loop.Refill | _loop.Stop | None:
    if not self.search.done:
      assignment = self.observe(event)
      if len(assignment.rows):
        return _loop.Refill(positions=assignment.rows.tolist(),
                            hparams={n: v.tolist() for n, v in assignment.hparams.items()},
                            seeds=assignment.seeds.tolist())
    return _loop.Stop() if self.search.done and not event.last else None

  def observe(self, event: _loop.SegmentEnd) -> _adaptive.Assignment:
    """Feeds the policy; collects the rows of every point that completed."""
    points = self.search.row_points
    assignment = self.search.observe(event.metrics)
    table = self.search.table()
    for row in np.flatnonzero(points >= 0).tolist():
      point = int(points[row])
      # A point completes once, and its slot is freed (refilled or idle) when it does.
      if table["status"][point] == "complete" and self.search.row_points[row] != point:
        self.collected.append({
            "point": point, "round": int(table["round"][point]),
            "seed": int(event.seeds[row]),
            "hparams": {n: float(v[row]) for n, v in event.hparams.items()},
            "metrics": {n: np.asarray(v[row]).tolist() for n, v in event.metrics.items()}})
    return assignment

  def state_dict(self) -> dict[str, Any]:
    """The policy's state and the completed rows, as JSON values."""
    return {"search": self.search.state_dict(), "collected": self.collected}

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Continues from :meth:`state_dict`'s output (a resumed search)."""
    self.search.load_state_dict(state["search"])
    self.collected = list(state["collected"])


def adaptive_sweep(
    fn: _loop.SegmentedRun,
    space: _adaptive.Space,
    *,
    objective: Objective,
    slots: int,
    rounds: int,
    segments: int = 4,
    seeds: Seeds = 1,
    keep: float = 1 / 3,
    explore: float = 0.25,
    seed: int = 0,
    checkpoint: str | pathlib.Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> _results.SweepResult:
  """Searches ``space`` for the best point by ``objective``, refilling the rows of one sweep.

  ``slots`` points (each on every seed) train at once as one compiled program; after each
  of the ``rounds`` segments the policy :class:`regjax.experiment.adaptive.Refill` stops
  the points that rank low at their stage (asynchronous successive halving) and gives
  their rows new points refined around the best ones; see
  :mod:`regjax.experiment.adaptive` for the rule and why, and the module docstring here
  for how it runs on the loop. Nothing recompiles between segments.

  Args:
    fn: a segmented run (:class:`regjax.experiment.loop.SegmentedRun`, e.g. a
      :class:`regjax.Trainer` with in-memory data); every dimension of ``space`` reaches
      it as a hyperparameter.
    space: the :class:`regjax.experiment.adaptive.Space` searched.
    objective: read on the metrics ``fn`` returns, mean over seeds: pass validation
      metrics (a Trainer's ``validation_accuracy`` needs ``validation=``).
    slots: points trained at once (the program has ``slots x len(seeds)`` rows).
    rounds: segments the search runs at most; it costs ``rounds x slots x len(seeds)``
      row segments, as many model·steps as ``slots x rounds / segments`` points of a grid
      (fewer when every slot idles before the end: the search then stops).
    segments: equal segments of one run of ``fn`` (a full run is ``segments`` rounds).
    seeds: an int ``n`` (seeds ``0..n-1``) or distinct seeds; every point runs all.
    keep: share of the points at a stage that go on (ASHA's ``1 / eta``).
    explore: share of new points drawn uniformly from ``space``.
    seed: seed of the policy's draws.
    checkpoint: a directory to save the search after every segment and resume from.
    resume: with ``checkpoint``, go on from what is saved there (False starts over).
    progress: show a progress bar over segments.

  Returns:
    A :class:`regjax.SweepResult` with one row per seed of every point that completed its
    run (stopped points are not full runs and are left out): the hparams, ``seed``, every
    metric, ``failed``, and ``round`` (segments run before the point started), with the
    curves of ``fn``. Attributes more: ``model_steps``, the model·steps the program
    computed (segments run ``x rows x`` segment steps; idle and stopped rows included),
    ``search``, the policy (``search.table()`` lists every point tried, stopped ones
    too, and ``search.best()`` is the objective's choice among the completed points);
    ``timeline``, ``(segments done, wall seconds, process CPU seconds)`` from the call's
    start at each segment's end (the first includes compiling; a resumed search's only
    the segments it ran), and ``host_seconds``, the time spent in the hook after the
    segments (the policy's decisions and the bookkeeping of completed rows).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import regjax
    >>> from regjax.experiment import adaptive, loop
    >>> class Peak:  # a 4-step "run" whose score, growing with steps, peaks at λ = 1e-3
    ...   def check_hparams(self, point): pass
    ...   def plan_segments(self, count): return loop.split_steps(4, count or 1)
    ...   def host_batches(self): return None
    ...   def init(self, hparams, key): return jnp.zeros(())
    ...   def advance(self, hparams, state, num_steps, batches=None): return state + num_steps
    ...   def evaluate(self, hparams, state):
    ...     return {"score": state - (jnp.log10(hparams["lam"]) + 3.0) ** 2}
    >>> result = regjax.adaptive_sweep(
    ...     Peak(), adaptive.Space(lam=adaptive.LogUniform(1e-5, 1e-1)),
    ...     objective=adaptive.Maximize("score"), slots=4, rounds=8, segments=2,
    ...     progress=False)
    >>> bool(abs(np.log10(result.search.best()["lam"]) + 3.0) < 0.3), result.model_steps
    (True, 64)
  """
  start = time.perf_counter()
  if not isinstance(fn, _loop.SegmentedRun):
    raise TypeError("`fn` must be a segmented run (init, advance, evaluate: see "
                    "regjax.experiment.loop.SegmentedRun, e.g. a regjax.Trainer), got "
                    f"{type(fn).__name__}.")
  search = _adaptive.Refill(space, objective, slots=slots, seeds=seeds, segments=segments,
                            rounds=rounds, keep=keep, explore=explore, seed=seed)
  run = _adapter(fn, segments, rounds)
  first = search.start()
  stride = len(search.seeds)
  grid = _grids.zip_grid(**{n: v[::stride] for n, v in first.hparams.items()})
  driver = _Driver(search)
  _sweeps.sweep(run, grid, seeds=search.seeds.tolist(), chunk_size=search.rows,
                progress=progress, desc="adaptive search", checkpoint=checkpoint, resume=resume,
                between=driver, settings={"adaptive search": search.state_dict()["config"]})
  found = _collected_result(driver.collected, space.names, time.perf_counter() - start)
  found.model_steps = search.row_segments * run.length  # type: ignore[attr-defined]
  found.search = search  # type: ignore[attr-defined]
  found.timeline = driver.timeline  # type: ignore[attr-defined]
  found.host_seconds = driver.host_seconds  # type: ignore[attr-defined]
  return found


def _collected_result(rows: Sequence[dict[str, Any]], names: Sequence[str],
                      wall_time: float) -> _results.SweepResult:
  """The completed rows, ordered by point and seed, as a :class:`SweepResult`."""
  rows = sorted(rows, key=lambda r: (r["point"], r["seed"]))
  metric_names = list(rows[0]["metrics"]) if rows else []
  curves = {name[len(_results.CURVE_PREFIX):]: np.array([r["metrics"][name] for r in rows])
            for name in metric_names if name.startswith(_results.CURVE_PREFIX)}
  scalars = [name for name in metric_names if not name.startswith(_results.CURVE_PREFIX)]
  columns: dict[str, Any] = {name: np.array([r["hparams"][name] for r in rows])
                             for name in names}
  columns["seed"] = np.array([r["seed"] for r in rows], np.int64)
  columns.update({name: np.array([r["metrics"][name] for r in rows]) for name in scalars})
  columns["round"] = np.array([r["round"] for r in rows], np.int64)
  failed = np.zeros(len(rows), bool)
  for name in scalars:
    if np.issubdtype(columns[name].dtype, np.inexact):
      failed |= ~np.isfinite(columns[name])
  if "failed_step" in columns:
    failed |= columns["failed_step"] >= 0
  columns["failed"] = failed
  return _results.SweepResult(columns, hparams=tuple(names), metrics=scalars,
                              wall_time=wall_time, curves=curves or None)
