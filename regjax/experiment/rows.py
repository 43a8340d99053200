"""The row plan of a sweep: grid × seeds flattened, padded, sharded and chunked.

The sweep loop (:mod:`regjax.experiment.loop`) runs its rows through a :class:`RowPlan`:

* The grid is flattened to rows ``(point, seed)``, point-major.
* The rows are cut into equal chunks of ``chunk`` rows, a multiple of the mesh's device
  count; the last chunk is padded by repeating the last row (real hyperparameters, so no
  spurious failures), so every chunk has one shape and one compilation.
* A chunk's columns are placed on the mesh with a ``NamedSharding`` over all its axes,
  each process filling its own devices, and results come back to every process
  (``process_allgather`` when the mesh spans several), concatenated and trimmed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from regjax import _checks
from regjax.experiment.results import CURVE_PREFIX, SweepResult

__all__ = ["RowPlan", "Seeds", "check_seeds", "fit_chunks", "plan_rows", "resolve_mesh"]

# Share of the free device memory a chunk may use; XLA's estimate is not exact.
_MEMORY_HEADROOM = 0.9

Seeds: TypeAlias = int | Sequence[int]
"""The seeds of a sweep: an int ``n`` for the seeds ``0..n-1``, or a sequence of distinct
seeds in ``[0, 2**32)`` (``[3]`` is seed 3 alone)."""

_Program = TypeVar("_Program")


def check_seeds(seeds: Seeds) -> tuple[int, ...]:
  """``seeds`` as a tuple: an int ``n`` means seeds ``0..n-1``, a sequence those seeds.

  Raises:
    TypeError: ``seeds`` is neither an int nor a sequence of ints.
    ValueError: a count outside ``[1, 2**32]``, an empty sequence, a seed outside
      ``[0, 2**32)`` or a repeated seed.

  Examples:
    >>> from regjax.experiment.rows import check_seeds
    >>> check_seeds(3), check_seeds([7])
    ((0, 1, 2), (7,))
  """
  if isinstance(seeds, numbers.Integral) and not isinstance(seeds, (bool, np.bool_)):
    seeds = int(seeds)
    if not 1 <= seeds <= 2**32:
      # Suggest the one-seed list only where it is itself valid (`seeds=[-1]` is not).
      hint = (f"; pass a list such as `seeds=[{seeds}]` for that one seed" if seeds == 0
              else "; seeds themselves are ints in [0, 2**32)")
      raise ValueError(f"`seeds` as an int is a count of seeds 0..n-1 and must be in "
                       f"[1, 2**32], got {seeds}{hint}.")
    return tuple(range(int(seeds)))
  if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
    raise TypeError(f"`seeds` must be an int (a count) or a sequence of ints, got {seeds!r}.")
  seeds = tuple(seeds)
  if not seeds:
    raise ValueError("`seeds` is empty; pass at least one seed, e.g. `seeds=[0]`.")
  for seed in seeds:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, (bool, np.bool_)):
      raise TypeError(f"`seeds` must hold ints, got {seed!r}.")
    if not 0 <= int(seed) < 2**32:
      raise ValueError(f"`seeds` must hold ints in [0, 2**32), got {seed}.")
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"`seeds` must be distinct, got {seeds}.")
  return tuple(int(s) for s in seeds)


def resolve_mesh(mesh: Mesh | None) -> Mesh:
  """``mesh``, or a 1-D mesh ``"grid"`` over ``jax.local_devices()`` when None.

  Examples:
    >>> import jax
    >>> from regjax.experiment.rows import resolve_mesh
    >>> mesh = resolve_mesh(None)
    >>> mesh.axis_names, mesh.devices.size == jax.local_device_count()
    (('grid',), True)
  """
  if mesh is None:
    return Mesh(np.array(jax.local_devices()), ("grid",))
  if not isinstance(mesh, Mesh):
    raise TypeError(f"`mesh` must be a jax.sharding.Mesh or None, got {type(mesh).__name__}.")
  return mesh


def _put_on_mesh(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """Places a host array, each process filling its own devices (works multi-host)."""
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _to_host(array: jax.Array) -> np.ndarray:
  if array.is_fully_addressable:
    return np.asarray(array)
  from jax.experimental import multihost_utils

  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def _estimated_bytes(compiled: Any) -> int | None:
  """XLA's per-device memory estimate for one execution, or None if not reported."""
  try:
    stats = compiled.memory_analysis()
  except Exception:  # noqa: BLE001 - backends differ in what they raise when unsupported.
    return None
  if stats is None:
    return None
  return int(
      stats.temp_size_in_bytes
      + stats.argument_size_in_bytes
      + stats.output_size_in_bytes
      - stats.alias_size_in_bytes
  )


def _free_bytes(devices: Sequence[Any]) -> int | None:
  """The smallest free memory among ``devices``, or None if one does not report it."""
  free = []
  for device in devices:
    try:
      stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - e.g. NotImplementedError or a runtime error.
      return None
    if not stats or "bytes_limit" not in stats:
      return None
    free.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
  return min(free) if free else None


def _rows_that_fit(estimate: int, free: int, rows_per_device: int) -> int:
  """Rows per device per chunk so that a chunk fits ``_MEMORY_HEADROOM * free`` bytes.

  Memory is taken to grow linearly with rows; the rows are then spread evenly over the
  fewest chunks, so padding stays small.
  """
  budget = _MEMORY_HEADROOM * free
  if estimate <= budget:
    return rows_per_device
  fit = max(1, int(budget // (estimate / rows_per_device)))
  n_chunks = math.ceil(rows_per_device / fit)
  return math.ceil(rows_per_device / n_chunks)


@dataclasses.dataclass(frozen=True)
class RowPlan:
  """The rows ``(point, seed)`` of a sweep and how they are chunked over a mesh.

  Build one with :func:`plan_rows`.

  Attributes:
    names: the grid's axis names.
    hparams: axis name -> float64/float32 column, one entry per row.
    seed_column: the seed of each row.
    sharding: a ``NamedSharding`` of the row axis over every axis of the mesh.
    chunk: rows per chunk, a multiple of the device count.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment import rows
    >>> plan = rows.plan_rows(["lam"], {"lam": np.array([0.1, 1.0, 10.0])}, seeds=1)
    >>> plan = plan.with_chunk(2)  # (on one device) two chunks of two rows
    >>> plan.n_rows, plan.n_chunks, plan.rows(1).tolist()  # the last row padded by itself
    (3, 2, [2, 2])
    >>> hparams, seeds = plan.inputs(1)  # chunk 1's columns, on the mesh
    >>> hparams["lam"].tolist(), seeds.dtype
    ([10.0, 10.0], dtype('uint32'))
  """

  names: tuple[str, ...]
  hparams: Mapping[str, np.ndarray]
  seed_column: np.ndarray
  sharding: NamedSharding
  chunk: int

  @property
  def n_rows(self) -> int:
    return len(self.seed_column)

  @property
  def n_shards(self) -> int:
    return self.sharding.mesh.devices.size

  @property
  def n_chunks(self) -> int:
    return math.ceil(self.n_rows / self.chunk)

  def rows(self, i: int) -> np.ndarray:
    """The plan's row of each position of chunk ``i`` (padding repeats the last row)."""
    return np.minimum(np.arange(i * self.chunk, (i + 1) * self.chunk), self.n_rows - 1)

  def with_chunk(self, rows: int) -> RowPlan:
    """This plan with chunks of ``rows`` rows, rounded up to the device count and
    capped at the (padded) number of rows."""
    per_device = math.ceil(min(rows, self.n_rows) / self.n_shards)
    return dataclasses.replace(self, chunk=per_device * self.n_shards)

  def inputs(self, i: int) -> tuple[dict[str, jax.Array], jax.Array]:
    """Chunk ``i``'s hparam columns (JAX's default float dtype) and uint32 seeds, on the
    mesh; padding repeats the last row."""
    return self.place({n: v[self.rows(i)] for n, v in self.hparams.items()},
                      self.seed_column[self.rows(i)])

  def place(self, hparams: Mapping[str, np.ndarray],
            seeds: np.ndarray) -> tuple[dict[str, jax.Array], jax.Array]:
    """Host columns of one chunk on the mesh: hparams in JAX's default float dtype, seeds
    as uint32."""
    dtype = jnp.result_type(float)
    placed = {name: _put_on_mesh(np.asarray(values).astype(dtype), self.sharding)
              for name, values in hparams.items()}
    return placed, _put_on_mesh(np.asarray(seeds).astype(np.uint32), self.sharding)

  def abstract_inputs(self) -> tuple[dict[str, jax.ShapeDtypeStruct], jax.ShapeDtypeStruct]:
    """Shapes, dtypes and shardings of :meth:`inputs`, for ``jit(...).lower``."""
    dtype = jnp.result_type(float)
    hparams = {name: jax.ShapeDtypeStruct((self.chunk,), dtype, sharding=self.sharding)
               for name in self.names}
    return hparams, jax.ShapeDtypeStruct((self.chunk,), jnp.uint32, sharding=self.sharding)

  def gather(self, pieces: Sequence[Mapping[str, jax.Array]]) -> dict[str, np.ndarray]:
    """Every chunk's outputs on the host of every process, concatenated, padding dropped."""
    hosted = [{name: _to_host(values) for name, values in piece.items()} for piece in pieces]
    return {name: np.concatenate([p[name] for p in hosted])[:self.n_rows] for name in hosted[0]}

  def result(self, metrics: Mapping[str, np.ndarray], wall_time: float,
             hparams: Mapping[str, np.ndarray] | None = None,
             seed_column: np.ndarray | None = None) -> SweepResult:
    """A :class:`SweepResult`; ``failed`` marks non-finite metrics or a ``failed_step``.

    Metrics named ``CURVE_PREFIX + name`` (``[rows, evaluations]``) become the result's
    curves. ``hparams`` and ``seed_column`` replace the plan's columns where the loop
    refilled rows between segments."""
    prefix = CURVE_PREFIX
    curves = {name[len(prefix):]: v for name, v in metrics.items() if name.startswith(prefix)}
    metrics = {name: v for name, v in metrics.items() if not name.startswith(prefix)}
    failed = np.zeros(self.n_rows, dtype=bool)
    for values in metrics.values():
      if np.issubdtype(values.dtype, np.inexact):
        failed |= ~np.isfinite(values.reshape(self.n_rows, -1)).all(axis=1)
    if "failed_step" in metrics:
      failed |= metrics["failed_step"] >= 0
    hparams = dict(self.hparams if hparams is None else hparams)
    seed_column = self.seed_column if seed_column is None else seed_column
    columns = {**hparams, "seed": seed_column, **metrics, "failed": failed}
    return SweepResult(columns, hparams=self.names, metrics=list(metrics),
                       wall_time=wall_time, chunk_size=self.chunk, curves=curves)


def plan_rows(names: Sequence[str], points: Mapping[str, np.ndarray], seeds: Seeds,
              mesh: Mesh | None = None) -> RowPlan:
  """The rows of ``points`` × ``seeds``, point-major, as one chunk over ``mesh``.

  Args:
    names: the grid's axis names, in order.
    points: axis name -> values, one per grid point.
    seeds: an int ``n`` (seeds ``0..n-1``) or a sequence of distinct seeds.
    mesh: devices to shard the rows over; None uses ``jax.local_devices()``.

  Returns:
    A :class:`RowPlan` with every row in one chunk; :meth:`RowPlan.with_chunk` or
    :func:`fit_chunks` cut it.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment import rows
    >>> plan = rows.plan_rows(["l1"], {"l1": np.array([0.1, 0.2, 0.3])}, seeds=2)
    >>> plan.hparams["l1"].tolist(), plan.seed_column.tolist()
    ([0.1, 0.1, 0.2, 0.2, 0.3, 0.3], [0, 1, 0, 1, 0, 1])
    >>> plan.with_chunk(4).n_chunks  # on one device: rows 0-3, then 4, 5 and two pads
    2
  """
  seeds = check_seeds(seeds)
  mesh = resolve_mesh(mesh)
  hparams = {name: np.repeat(points[name], len(seeds)) for name in names}
  seed_column = np.tile(np.asarray(seeds, dtype=np.int64), len(points[names[0]]))
  sharding = NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))
  plan = RowPlan(tuple(names), hparams, seed_column, sharding, chunk=len(seed_column))
  return plan.with_chunk(len(seed_column))


def fit_chunks(plan: RowPlan, chunk_size: int | None,
               compile_rows: Callable[[int], _Program]) -> tuple[RowPlan, _Program]:
  """Chunks ``plan`` and compiles the program for one chunk with ``compile_rows(chunk)``.

  With ``chunk_size`` given, chunks have that many rows (rounded up to the device
  count). With None the whole plan is one chunk unless XLA's memory estimate for it
  (``compiled.memory_analysis()``) exceeds 90% of the free memory of the mesh's local
  devices (``device.memory_stats()``); then the rows are split into the fewest equal
  chunks that fit, taking memory to grow linearly with rows. Backends that report
  neither (CPU) get one chunk.

  Args:
    plan: the rows, as :func:`plan_rows` makes them (one chunk).
    chunk_size: rows per chunk, or None to size chunks from the memory estimate.
    compile_rows: ``rows -> compiled program`` for a chunk of ``rows`` rows (a
      ``jax.stages.Compiled``, whose ``memory_analysis()`` is read; anything else is
      taken to report no estimate).

  Returns:
    The chunked plan and ``compile_rows``'s program for its chunk.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment import rows
    >>> plan = rows.plan_rows(["lam"], {"lam": np.arange(5.0)}, seeds=2)
    >>> asked = []
    >>> plan, program = rows.fit_chunks(plan, 4, lambda n: asked.append(n) or f"{n} rows")
    >>> plan.n_chunks, program, asked
    (3, '4 rows', [4])
  """
  if chunk_size is not None:
    _checks.check_int("chunk_size", chunk_size)
    plan = plan.with_chunk(chunk_size)
    return plan, compile_rows(plan.chunk)
  compiled = compile_rows(plan.chunk)
  estimate = _estimated_bytes(compiled)
  mesh_devices = plan.sharding.mesh.devices.flat
  free = _free_bytes([d for d in mesh_devices if d.process_index == jax.process_index()])
  if estimate is not None and free is not None:
    per_device = plan.chunk // plan.n_shards
    fit = _rows_that_fit(estimate, free, per_device)
    if fit < per_device:
      plan = plan.with_chunk(fit * plan.n_shards)
      compiled = compile_rows(plan.chunk)
  return plan, compiled

