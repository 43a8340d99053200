"""λ-grid sweeps: many training runs as one ``jit(vmap(...))``, sharded over devices.

A sweep trains one configuration per grid point and seed with a user function

.. code-block:: python

  def train(hparams: dict[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
    ...  # hparams["l1"] is a traced float scalar; return scalar metrics

  result = regjax.sweep(train, regjax.grid(l1=jnp.logspace(-5, -2, 16)), seeds=3)
  print(result.mean_over_seeds())

How it runs:

* The grid is flattened to rows ``(point, seed)``, point-major. Every hyperparameter
  reaches ``fn`` as a scalar of JAX's default float dtype (float32 unless x64 is on).
* Row ``(point, seed)`` gets the key ``jax.random.key(seed)``, the same for every point:
  for a given seed, all grid points share their initialization and data order (common
  random numbers), so differences along the grid come from the hyperparameters alone.
  Fold the point into the key inside ``fn`` if independent streams are wanted.
* The rows run as one ``jax.jit(jax.vmap(run))``, compiled once. Like ``jax.jit``, the
  compiled program is kept (the last few, keyed by the ``fn`` object itself, the axis
  names, the chunk shape and the mesh), so calling ``sweep`` again with the same ``fn``
  and a grid of the same size neither traces nor compiles; ``fn``'s closed-over values
  are read once, when it is traced.
* The rows are laid out by :mod:`regjax.experiment.rows`: sharded over the devices of
  ``mesh`` (by default a 1-D mesh ``"grid"`` over ``jax.local_devices()``) with a
  ``NamedSharding``, and cut into equal chunks, a multiple of the device count, whose
  last one is padded by repeating the last row (padded rows are dropped). With
  ``chunk_size=None`` the whole grid is one chunk unless XLA's memory estimate for it
  exceeds 90% of the free device memory; backends that report neither (CPU) get one
  chunk. Rows are independent, so the compiled program has no cross-device
  communication; with one device it is the plain vmapped program.
* Multi-host: call ``jax.distributed.initialize()`` in every process, build a global
  mesh, e.g. ``Mesh(np.array(jax.devices()), ("grid",))``, and call ``sweep`` with the
  same arguments in every process. Each process feeds its own devices' rows, and every
  process receives the full result (gathered with
  ``jax.experimental.multihost_utils.process_allgather``). Pass ``chunk_size``
  explicitly there: free memory differs between hosts, and every process must compile
  the same chunk shape.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import numbers
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from regjax import _checks
from regjax.experiment import results as _results
from regjax.experiment import rows as _rows
from regjax.experiment.results import SweepResult

# Whether `progress_callback` stages its callback; `sweep(progress=False)` clears it
# while it traces the user's function. A ContextVar, so threads and nested sweeps each
# see their own setting.
_STEP_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "regjax_step_progress", default=True)


# ----------------------------------------------------------------------------- grids


class Grid:
  """A finite set of hyperparameter points, each a float per named axis.

  Build one with :func:`grid` (cartesian product) or :func:`zip_grid` (zipped lists)
  and combine them with ``*`` (cartesian product; the left grid varies slowest).

  Args:
    points: mapping name -> equal-length 1-D sequence of finite numbers.
  """

  def __init__(self, points: Mapping[str, Any]):
    if not points:
      raise ValueError("A grid needs at least one axis, e.g. `grid(l1=[1e-4, 1e-3])`.")
    columns = {name: _axis_values(name, values) for name, values in points.items()}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
      raise ValueError(f"Zipped axes must have equal lengths, got {lengths}.")
    self._points = columns

  @property
  def names(self) -> tuple[str, ...]:
    """The axis names, in order."""
    return tuple(self._points)

  @property
  def points(self) -> dict[str, np.ndarray]:
    """Mapping name -> float array of length ``len(self)``, one entry per point.

    float32 axes stay float32; every other axis is float64.
    """
    return {name: values.copy() for name, values in self._points.items()}

  def __len__(self) -> int:
    return len(next(iter(self._points.values())))

  def __iter__(self) -> Iterator[dict[str, float]]:
    for i in range(len(self)):
      yield {name: float(values[i]) for name, values in self._points.items()}

  def product(self, other: Grid) -> Grid:
    """Cartesian product: every point of ``self`` with every point of ``other``."""
    if not isinstance(other, Grid):
      raise TypeError(f"`other` must be a Grid, got {type(other).__name__}.")
    shared = sorted(set(self.names) & set(other.names))
    if shared:
      raise ValueError(f"Grid axes must have distinct names; both grids have {shared}.")
    n, m = len(self), len(other)
    points = {name: np.repeat(v, m) for name, v in self._points.items()}
    points.update({name: np.tile(v, n) for name, v in other._points.items()})
    return Grid(points)

  def __mul__(self, other: Any) -> Grid:
    if not isinstance(other, Grid):
      return NotImplemented
    return self.product(other)

  def __repr__(self) -> str:
    return f"Grid({len(self)} points; axes {', '.join(self.names)})"


def _axis_values(name: str, values: Any) -> np.ndarray:
  if name in _results.RESERVED:
    raise ValueError(f"Grid axis name `{name}` is reserved for a result column; rename it.")
  if isinstance(values, (str, bytes)):
    raise TypeError(f"Grid axis `{name}` must be a list or 1-D array of numbers, got {values!r}.")
  if not _checks.is_concrete(values):
    raise TypeError(f"Grid axis `{name}` must hold concrete numbers, not traced values.")
  try:
    array = np.asarray(values)
  except (TypeError, ValueError) as error:
    raise ValueError(f"Grid axis `{name}` must be a 1-D list of numbers: {error}") from None
  if array.ndim != 1:
    raise ValueError(f"Grid axis `{name}` must be 1-D, got shape {array.shape}.")
  if array.size == 0:
    raise ValueError(f"Grid axis `{name}` is empty; give it at least one value.")
  if np.issubdtype(array.dtype, np.bool_) or not np.issubdtype(array.dtype, np.number):
    raise TypeError(f"Grid axis `{name}` must hold numbers, got dtype {array.dtype}.")
  if np.issubdtype(array.dtype, np.complexfloating):
    raise TypeError(f"Grid axis `{name}` must hold real numbers, got dtype {array.dtype}.")
  _checks.check_number_tree(name, array, low=-np.inf, allow_callable=False)
  # float32 input stays float32 so that results print the values the user wrote.
  return array.astype(np.float32 if array.dtype == np.float32 else np.float64)


def grid(**axes: Any) -> Grid:
  """The cartesian product of named axes; the first axis varies slowest.

  Example: ``grid(l1=[1e-4, 1e-3], lr=[0.1, 0.01, 0.001])`` has 6 points.

  Args:
    **axes: name -> list or 1-D array of finite numbers.

  Returns:
    A :class:`Grid` with ``prod(len(axis))`` points.
  """
  return _cartesian(axes)


def _cartesian(axes: Mapping[str, Any]) -> Grid:
  if not axes:
    raise ValueError("`grid` needs at least one axis, e.g. `grid(l1=[1e-4, 1e-3])`.")
  grids = [Grid({name: values}) for name, values in axes.items()]
  result = grids[0]
  for other in grids[1:]:
    result = result * other
  return result


def zip_grid(**axes: Any) -> Grid:
  """Points made of zipped equal-length axes: point i takes the i-th value of each.

  Example: ``zip_grid(lr=[0.1, 0.01], steps=[100, 1000])`` has 2 points.

  Args:
    **axes: name -> list or 1-D array of finite numbers, all of one length.

  Returns:
    A :class:`Grid` with as many points as each axis has values.
  """
  if not axes:
    raise ValueError("`zip_grid` needs at least one axis, e.g. `zip_grid(lr=[0.1, 0.01])`.")
  return Grid(axes)


# ----------------------------------------------------------------------------- progress


def _load_tqdm() -> Any:
  try:
    from tqdm import tqdm
  except ImportError:  # tqdm is the optional `progress` extra.
    return None
  return tqdm


class _PlainBar:
  """Prints one line per update: the fallback when tqdm is not installed."""

  def __init__(self, total: int, desc: str, unit: str):
    self.n = 0
    self._total, self._desc, self._unit = total, desc, unit
    self._start = time.perf_counter()

  def update(self, n: int = 1) -> None:
    self.n += n
    elapsed = time.perf_counter() - self._start
    eta = elapsed / self.n * (self._total - self.n) if self.n else float("nan")
    print(
        f"{self._desc}: {self.n}/{self._total} {self._unit}s, "
        f"{elapsed:.1f} s elapsed, ETA {eta:.1f} s",
        file=sys.stderr,
        flush=True,
    )

  def close(self) -> None:
    pass


def _make_bar(total: int, desc: str, unit: str, leave: bool = True) -> Any:
  tqdm = _load_tqdm()
  if tqdm is None:
    return _PlainBar(total, desc, unit)
  return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)


class _StepReporter:
  """Host side of `progress_callback`: one bar per run, duplicate reports dropped."""

  def __init__(self, total_steps: int, desc: str):
    self._total, self._desc = total_steps, desc
    self._bar: Any = None
    self._last = -1
    self._lock = threading.Lock()

  def __call__(self, step: Any) -> None:
    step = int(step)
    with self._lock:
      # The same step arrives once per batch element when `step` is batched.
      if step == self._last:
        return
      if self._bar is None or step < self._last:  # a new run (e.g. the next chunk)
        if self._bar is not None:
          self._bar.close()
        self._bar = _make_bar(self._total, self._desc, unit="step", leave=False)
      self._bar.update(step + 1 - self._bar.n)
      self._last = step
      if step >= self._total - 1:
        self._bar.close()
        self._bar = None


def progress_callback(
    step: jax.typing.ArrayLike,
    total_steps: int,
    *,
    every: int | None = None,
    desc: str = "steps",
    enabled: bool = True,
) -> None:
  """Reports training progress from inside a jitted loop (``lax.scan``/``fori_loop``).

  Call it in the loop body with the loop counter. Every ``every`` steps and at the last
  step (``step == total_steps - 1``) a ``jax.debug.callback`` advances a tqdm bar (or
  prints a line when tqdm is absent). The report sits in a ``lax.cond``, so the other
  steps cost one integer comparison.

  Under ``vmap`` (a sweep), pass the unbatched loop counter (``jnp.arange`` scanned
  over, the ``fori_loop`` index, or a counter carried alone): the callback then runs once
  per step for the whole batch, and under a sharded ``jit`` on one device only. If
  ``step`` is batched anyway, repeated reports of one step are dropped on the host.

  Args:
    step: the current step, an integer scalar (traced or not).
    total_steps: the number of steps of the loop, a Python int.
    every: report every ``every`` steps; default ``max(1, total_steps // 20)``.
    desc: label of the bar.
    enabled: ``False`` stages nothing (no cost). ``sweep(..., progress=False)`` also
      switches it off while it traces ``fn``.
  """
  if not isinstance(total_steps, numbers.Integral) or isinstance(total_steps, bool):
    raise TypeError(f"`total_steps` must be a Python int, got {total_steps!r}.")
  if total_steps < 1:
    raise ValueError(f"`total_steps` must be >= 1, got {total_steps}.")
  if every is None:
    every = max(1, int(total_steps) // 20)
  _checks.check_int("every", every)
  if not enabled or not _STEP_PROGRESS.get():
    return
  reporter = _StepReporter(int(total_steps), desc)
  step = jnp.asarray(step)
  due = (step % every == 0) | (step == total_steps - 1)
  jax.lax.cond(due, lambda: jax.debug.callback(reporter, step), lambda: None)


@contextlib.contextmanager
def _step_progress(enabled: bool) -> Iterator[None]:
  token = _STEP_PROGRESS.set(bool(enabled))
  try:
    yield
  finally:
    _STEP_PROGRESS.reset(token)


def step_progress_enabled() -> bool:
  """Whether :func:`progress_callback` reports in the current context (see :func:`sweep`)."""
  return _STEP_PROGRESS.get()


# ----------------------------------------------------------------------------- the engine


def _check_metrics(out_info: Any, hparam_names: Sequence[str]) -> None:
  if not isinstance(out_info, Mapping) or not out_info:
    raise TypeError(
        "`fn` must return a non-empty dict of scalar metrics, e.g. {'loss': loss}; "
        f"got {type(out_info).__name__}."
    )
  for name, info in out_info.items():
    if not isinstance(name, str):
      raise TypeError(f"Metric names must be strings, got {name!r}.")
    if name in _results.RESERVED or name in hparam_names:
      raise ValueError(
          f"Metric `{name}` clashes with a result column "
          f"({list(_results.RESERVED)} or a grid axis);"
          " rename it (return `failed_step` to flag a failure)."
      )
    curve = name.startswith(_results.CURVE_PREFIX)
    if not isinstance(info, jax.ShapeDtypeStruct) or len(info.shape) != 1 + curve:
      shape = getattr(info, "shape", None)
      shape = shape[1:] if shape else shape
      kind = "a 1-D curve" if curve else "a scalar"
      raise ValueError(f"Metric `{name}` must be {kind} per run, got shape {shape}.")
    if not (jnp.issubdtype(info.dtype, jnp.number) or jnp.issubdtype(info.dtype, jnp.bool_)):
      raise TypeError(f"Metric `{name}` must be numeric, got dtype {info.dtype}.")


# Compiled sweep programs by (fn's identity, axis names, rows, dtype, sharding, progress),
# newest last: a repeated call (a notebook cell run again, the next checkpoint segment)
# skips tracing and compiling. Identity, not equality: a `Trainer` holds arrays and is
# unhashable, and an equal but distinct callable may close over different values. Each
# entry keeps its `fn` alive, so an id is never reused while it is cached.
_COMPILED: collections.OrderedDict[Any, tuple[Any, Any, tuple[str, ...]]] = (
    collections.OrderedDict())
_COMPILED_MAX = 8


def _compiled_program(
    fn: Callable[..., Any], names: tuple[str, ...], rows: int, float_dtype: Any,
    sharding: NamedSharding, progress: bool,
) -> tuple[Any, tuple[str, ...]]:
  key = (id(fn), names, rows, jnp.dtype(float_dtype), sharding, bool(progress))
  cached = _COMPILED.get(key)
  if cached is not None and cached[0] is fn:
    _COMPILED.move_to_end(key)
    return cached[1:]
  metric_order: list[str] = []

  def run(row_hparams: dict[str, jax.Array], seed: jax.Array) -> Any:
    metrics = fn(row_hparams, jax.random.key(seed))
    if isinstance(metrics, Mapping):
      metric_order[:] = list(metrics)  # pytrees sort dict keys; keep the user's order
    return metrics

  batched = jax.jit(jax.vmap(run), in_shardings=sharding, out_shardings=sharding)
  args = (
      {name: jax.ShapeDtypeStruct((rows,), float_dtype, sharding=sharding) for name in names},
      jax.ShapeDtypeStruct((rows,), jnp.uint32, sharding=sharding),
  )
  with _step_progress(progress):
    lowered = batched.lower(*args)
  _check_metrics(lowered.out_info, names)
  program = (lowered.compile(), tuple(metric_order))
  _COMPILED[key] = (fn, *program)
  while len(_COMPILED) > _COMPILED_MAX:
    _COMPILED.popitem(last=False)
  return program


def sweep(
    fn: Callable[[dict[str, jax.Array], jax.Array], Mapping[str, jax.Array]],
    grid: Grid | Mapping[str, Any],
    *,
    seeds: int | Sequence[int] = 1,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> SweepResult:
  """Runs ``fn`` on every grid point and seed as one vmapped, sharded computation.

  Row ``(point, seed)`` computes ``fn(hparams, jax.random.key(seed))``; see the module
  docstring for key choice, chunking, padding, sharding and multi-host use.

  A row fails when one of its floating metrics is NaN or ±Inf, or when ``fn`` returns a
  metric ``failed_step`` (an int, -1 meaning none) that is >= 0; the ``failed`` column
  says so and other rows are unaffected (rows never interact).

  A metric named ``"curves/<name>"`` is a curve: a 1-D array per row (the same length in
  every row), kept in :attr:`SweepResult.curves` as ``[rows, evaluations]`` under
  ``<name>``, not as a column; it chunks and shards like the rest of the row.

  An ``fn`` with a non-None attribute ``sweep_rows`` (a :class:`Trainer` on a stream of
  batches) runs its rows itself: ``fn.sweep_rows(hparams, seeds, sharding)`` gets each
  chunk's hyperparameters and seeds, placed on the mesh, and returns the metrics.

  Args:
    fn: ``fn(hparams, key) -> {metric: scalar}``; ``hparams`` maps each grid axis to a
      traced float scalar, ``key`` is a typed PRNG key. It is traced once per chunk
      shape, so it must be jittable and must not branch in Python on hyperparameters.
    grid: a :class:`Grid`, or a mapping name -> values taken as ``grid(**mapping)``.
    seeds: an int ``n`` for the seeds ``0..n-1``, or a sequence of distinct seeds in
      ``[0, 2**32)`` (``[3]`` is seed 3 alone); rows = points x seeds.
    chunk_size: rows per compiled call (rounded up to a multiple of the device count);
      None sizes chunks from the memory estimate (one chunk when it fits or is unknown).
    mesh: devices to shard the rows over (all its axes together); None uses a 1-D mesh
      ``"grid"`` over ``jax.local_devices()``.
    progress: show a bar over chunks with ETA (tqdm if installed, else printed lines),
      and enable :func:`progress_callback` reports inside ``fn``.
    desc: label of the progress bar.

  Returns:
    A :class:`SweepResult`: one row per point and seed, with the axes, ``seed``, every
    metric and ``failed``.
  """
  start = time.perf_counter()
  if not callable(fn):
    raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
  if isinstance(grid, Mapping):
    grid = _cartesian(grid)
  if not isinstance(grid, Grid):
    raise TypeError(f"`grid` must be a Grid or a mapping of axes, got {type(grid).__name__}.")
  plan = _rows.plan_rows(grid.names, grid.points, seeds, mesh)
  float_dtype = jnp.result_type(float)
  order: tuple[str, ...] = ()

  def compile_rows(rows: int) -> Any:
    nonlocal order
    compiled, order = _compiled_program(
        fn, grid.names, rows, float_dtype, plan.sharding, progress)
    return compiled

  host_fed = getattr(fn, "sweep_rows", None)
  if host_fed is None:
    plan, compiled = _rows.fit_chunks(plan, chunk_size, compile_rows)
  else:
    # fn feeds its rows from the host itself (a Trainer on a stream of batches).
    if chunk_size is not None:
      plan = plan.with_chunk(_checks.check_int("chunk_size", chunk_size))

    def compiled(chunk_hparams: Any, chunk_seeds: Any) -> Any:
      with _step_progress(progress):
        return host_fed(chunk_hparams, chunk_seeds, plan.sharding)
  bar = _make_bar(plan.n_chunks, desc or "sweep", unit="chunk") if progress else None
  pieces = []
  try:
    for i in range(plan.n_chunks):
      pieces.append(compiled(*plan.inputs(i)))
      if bar is not None:
        bar.update(1)
  finally:
    if bar is not None:
      bar.close()
  if progress:
    jax.effects_barrier()  # flush `progress_callback` reports before returning
  metrics = plan.gather(pieces)
  metrics = {name: metrics[name] for name in order or tuple(metrics)}
  return plan.result(metrics, time.perf_counter() - start)
