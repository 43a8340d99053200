"""λ-grid sweeps: many training runs as one ``jit(vmap(...))``, sharded over devices.

A sweep trains one configuration per grid point and seed with a user function

.. code-block:: python

  def train(hparams: dict[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
    ...  # hparams["l1"] is a traced float scalar; return scalar metrics

  result = regjax.sweep(train, regjax.grid(l1=jnp.logspace(-5, -2, 16)), seeds=3)
  print(result.mean_over_seeds())

How it runs (the loop itself is :mod:`regjax.experiment.loop`):

* The grid is flattened to rows ``(point, seed)``, point-major. Every hyperparameter
  reaches ``fn`` as a scalar of JAX's default float dtype (float32 unless x64 is on).
* Row ``(point, seed)`` gets the key ``jax.random.key(seed)``, the same for every point:
  for a given seed, all grid points share their initialization and data order (common
  random numbers), so differences along the grid come from the hyperparameters alone.
  Fold the point into the key inside ``fn`` if independent streams are wanted.
* The rows run as one ``jax.jit(jax.vmap(run))``, compiled once. The compiled program is
  kept for the ``fn`` object (weakly: dropped with ``fn``), so calling ``sweep`` again
  with the same ``fn`` and a grid of the same size neither traces nor compiles; ``fn``'s
  closed-over values are read once, when it is traced.
* The rows are laid out by :mod:`regjax.experiment.rows`: sharded over the devices of
  ``mesh`` (by default a 1-D mesh ``"grid"`` over ``jax.local_devices()``) with a
  ``NamedSharding``, and cut into equal chunks, a multiple of the device count, whose
  last one is padded by repeating the last row (padded rows are dropped). With
  ``chunk_size=None`` the whole grid is one chunk unless XLA's memory estimate for it
  exceeds 90% of the free device memory; backends that report neither (CPU) get one
  chunk. Rows are independent, so the compiled program has no cross-device
  communication; with one device it is the plain vmapped program.
* A segmented run (:class:`regjax.experiment.loop.SegmentedRun`, e.g. a
  :class:`regjax.Trainer`) can be cut into ``segments``, saved after each to
  ``checkpoint=DIR`` and resumed from there, and fed batches streamed from the host.
* Multi-host: call ``jax.distributed.initialize()`` in every process, build a global
  mesh, e.g. ``Mesh(np.array(jax.devices()), ("grid",))``, and call ``sweep`` with the
  same arguments in every process. Each process feeds its own devices' rows, and every
  process receives the full result (gathered with
  ``jax.experimental.multihost_utils.process_allgather``). Pass ``chunk_size``
  explicitly there: free memory differs between hosts, and every process must compile
  the same chunk shape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from jax.sharding import Mesh

from regjax.experiment import loop as _loop
from regjax.experiment import rows as _rows
from regjax.experiment.grids import Grid, GridLike, as_grid, grid, zip_grid
from regjax.experiment.loop import WholeRun
from regjax.experiment.progress import progress_callback
from regjax.experiment.results import SweepResult
from regjax.experiment.rows import Seeds

__all__ = ["Grid", "SweepResult", "grid", "progress_callback", "sweep", "zip_grid"]


def _check_points(fn: _loop.SegmentedRun, points: Grid) -> None:
  """Every concrete grid point through ``fn.check_hparams``, naming the point it refuses."""
  for point in dict.fromkeys(tuple(p.items()) for p in points):
    try:
      fn.check_hparams(dict(point))
    except ValueError as error:
      raise ValueError(f"grid point {dict(point)}: {error}") from error


def _segment_lengths(fn: Any, segmented: bool, checkpoint: Any, segments: int | None,
                     streams: bool, refill: bool) -> tuple[int, ...] | None:
  """The segment plan; None runs ``fn`` whole (one fused program per chunk)."""
  wanted = segments is not None or checkpoint is not None or refill
  if not segmented:
    if wanted:
      raise TypeError("`checkpoint`, `segments` and refills need a segmented run (init, "
                      "advance, evaluate: see regjax.experiment.loop.SegmentedRun, e.g. a "
                      f"regjax.Trainer); got a plain {type(fn).__name__}, which runs whole.")
    return None
  count = segments if segments is not None else (4 if checkpoint is not None else None)
  lengths = tuple(int(n) for n in fn.plan_segments(count))
  if not lengths or min(lengths) < 1:
    raise ValueError(f"`plan_segments` must return positive step counts, got {lengths}.")
  if callable(fn) and not wanted and not streams and len(lengths) == 1:
    return None
  return lengths


def sweep(
    fn: WholeRun | _loop.SegmentedRun,
    grid: GridLike,
    *,
    seeds: Seeds = 1,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    desc: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    segments: int | None = None,
    resume: bool = True,
    settings: Mapping[str, object] | None = None,
    between: Callable[[_loop.SegmentEnd], _loop.Refill | _loop.Stop | None] | None = None,
) -> SweepResult:
  """Runs ``fn`` on every grid point and seed as one vmapped, sharded computation.

  Row ``(point, seed)`` computes ``fn(hparams, jax.random.key(seed))``; see the module
  docstring for key choice, chunking, padding, sharding and multi-host use.

  A row fails when one of its floating metrics is NaN or ±Inf, or when ``fn`` returns a
  metric ``failed_step`` (an int, -1 meaning none) that is >= 0; the ``failed`` column
  says so and other rows are unaffected (rows never interact). A value the grid cannot
  judge (a negative strength reaching a traced optimizer) trains and is flagged this way;
  a segmented run refuses it before compiling (``check_hparams``).

  A metric named ``"curves/<name>"`` is a curve: a 1-D array per row (the same length in
  every row), kept in :attr:`SweepResult.curves` as ``[rows, evaluations]`` under
  ``<name>``, not as a column; it chunks and shards like the rest of the row.

  Args:
    fn: ``fn(hparams, key) -> {metric: scalar}`` (``hparams`` maps each grid axis to a
      traced float scalar, ``key`` is a typed PRNG key; traced once per chunk shape, so
      it must be jittable and must not branch in Python on hyperparameters), or a
      segmented run (:class:`regjax.experiment.loop.SegmentedRun`, e.g. a
      :class:`regjax.Trainer`).
    grid: a :class:`Grid`, or a mapping name -> values taken as ``grid(**mapping)``.
    seeds: an int ``n`` for the seeds ``0..n-1``, or a sequence of distinct seeds in
      ``[0, 2**32)`` (``[3]`` is seed 3 alone); rows = points x seeds.
    chunk_size: rows per compiled call (rounded up to a multiple of the device count);
      None sizes chunks from the memory estimate (one chunk when it fits or is unknown;
      on resume, the saved run's).
    mesh: devices to shard the rows over (all its axes together); None uses a 1-D mesh
      ``"grid"`` over ``jax.local_devices()``.
    progress: show a bar over chunks (or segments) with ETA (tqdm if installed, else
      printed lines), and enable :func:`progress_callback` reports inside ``fn``.
    desc: label of the progress bar.
    checkpoint: a directory: the rows' states are saved there after every segment
      (Orbax; see :mod:`regjax.experiment.checkpoint`) and a later call resumes from
      them, bit-identical to an uninterrupted run. Segmented runs only.
    segments: the number of segments of a segmented run (default 4 with
      ``checkpoint``, else the run's own: one for in-memory data); lengths differ by at
      most one evaluation period, so any count up to the steps works.
    resume: with ``checkpoint``, go on from the checkpoints found there (their signature
      must match: else :class:`regjax.checkpoint.CheckpointError` names the setting);
      False starts over, removing them.
    settings: with ``checkpoint``, JSON values of settings that change the result but
      that ``fn`` hides (a learning rate, a method name); they enter the signature.
    between: a hook called after every segment of a segmented run with a
      :class:`regjax.experiment.loop.SegmentEnd`; it may return a
      :class:`regjax.experiment.loop.Refill` (not after the last segment) or a
      :class:`regjax.experiment.loop.Stop`, and with ``checkpoint`` its
      ``state_dict()``, if it has one, is saved with the rows and given back to its
      ``load_state_dict`` on resume (see :mod:`regjax.experiment.loop`).

  Returns:
    A :class:`SweepResult`: one row per point and seed, with the axes, ``seed``, every
    metric and ``failed``.

  Examples:
    >>> import regjax
    >>> result = regjax.sweep(lambda h, k: {"y": h["x"] ** 2}, regjax.grid(x=[1.0, 2.0]),
    ...                       seeds=2, progress=False)
    >>> result.columns, result["y"].tolist()
    (('x', 'seed', 'y', 'failed'), [1.0, 1.0, 4.0, 4.0])
  """
  start = time.perf_counter()
  segmented = isinstance(fn, _loop.SegmentedRun)
  if not callable(fn) and not segmented:
    raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
  points = as_grid(grid)
  plan = _rows.plan_rows(points.names, points.points, seeds, mesh)
  if segmented:
    _check_points(cast(_loop.SegmentedRun, fn), points)
  first = cast(_loop.SegmentedRun, fn).host_batches() if segmented else None
  lengths = _segment_lengths(fn, segmented, checkpoint, segments, first is not None,
                             between is not None)
  store, signature = None, None
  if checkpoint is not None:
    from regjax.experiment import checkpoint as _checkpoint  # imports orbax

    store = _checkpoint.Store(checkpoint, resume=resume, settings=settings)
    seed_list = _rows.check_seeds(seeds)

    def signature(chunk: int, row_state: Any) -> dict[str, Any]:
      return store.signature(fn, points, seed_list, lengths or (), chunk, row_state)

  metrics, plan, hparams, seed_column = _loop.run(
      fn, plan, lengths=lengths, chunk_size=chunk_size, store=store, between=between,
      signature=signature, first_batches=first, progress=progress, desc=desc)
  return plan.result(metrics, time.perf_counter() - start, hparams, seed_column)

