"""The one sweep loop: every (grid point, seed) row trained as one ``jit(vmap(...))``.

:func:`regjax.sweep` is the only training loop of regjax, and this module is it. It owns,
each in one place: the row plan (grid × seeds, sharded over a mesh, cut into chunks that
fit memory: :mod:`regjax.experiment.rows`), the compiled programs (and their cache), the
segments, curves (metrics ``"curves/<name>"``), host-streamed batches, checkpointed
resume (:mod:`regjax.experiment.checkpoint`) and the progress bar.

Two kinds of ``fn``:

* **A whole run**, any callable ``fn(hparams, key) -> {metric: scalar}``. Each chunk of
  rows is one compiled ``jit(vmap(run))`` call; it cannot be cut, saved or streamed.
* **A segmented run**, an object with the methods of :class:`SegmentedRun` (a
  :class:`regjax.Trainer` is one): ``init(hparams, key) -> state``,
  ``advance(hparams, state, num_steps, batches) -> state``,
  ``evaluate(hparams, state) -> metrics``, ``plan_segments(count)``,
  ``host_batches()`` and ``check_hparams(point)``. The loop calls ``check_hparams`` with
  every concrete grid point before compiling. If the run is also callable and the sweep
  needs no segments (no ``checkpoint=``, ``segments=``, stream or refill), it runs whole,
  as one fused program; otherwise each chunk runs ``init``, then ``advance`` once per
  segment, then ``evaluate``, each a compiled program (one per distinct segment length,
  at most two), the state staying on the devices between segments.

After every segment of a chunk, in order: the rows advance; a hook ``between`` (if given)
sees a :class:`SegmentEnd` (the rows' hyperparameters, seeds and metrics so far) and may
return

* a :class:`Refill` that gives some rows new hyperparameters and seeds, with a fresh
  ``init`` state (compiled once, values only: nothing recompiles); not after the last
  segment (``SegmentEnd.last``), where nothing would train them;
* a :class:`Stop`, which ends the chunk now: its rows are reported as they stand (the
  remaining segments are skipped, and a resume does not run them either);
* or None;

then the chunk's state, hyperparameters and seeds are saved (``checkpoint=``), so a
resumed run restores refilled rows as they were and is bit-identical to an uninterrupted
one, hyperparameter columns included (they are saved as JSON, exact in their own dtype).
A hook with state of its own on the host (an adaptive search's policy) may define
``state_dict()``, returning JSON values, and ``load_state_dict(state)``: the loop then
saves ``between.state_dict()`` in each segment's checkpoint, atomically with the rows, and
calls ``between.load_state_dict`` with it when it restores the chunk, before any segment
runs. The result's hparam and seed columns are the rows' last values. This hook is how an
adaptive search (successive halving, population-based training) drives the same loop; with
several chunks it sees one chunk at a time, so such a search should keep its rows in one
chunk.

Compiled programs are cached per ``fn`` object (a repeated ``sweep`` with the same ``fn``
and chunk shape neither traces nor compiles), weakly: the cache holds compiled
executables only, never ``fn``, and drops them when ``fn`` is garbage collected, so the
cache keeps no user function or data alive.

Examples:
  >>> import regjax
  >>> from regjax.experiment import loop
  >>> loop.split_steps(50, 4)  # a default never rejects a step count: lengths differ by 1
  (13, 13, 12, 12)
  >>> result = regjax.sweep(lambda h, k: {"y": h["x"] ** 2}, regjax.grid(x=[1.0, 2.0]),
  ...                       progress=False)
  >>> result["y"].tolist()
  [1.0, 4.0]
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from regjax.experiment import progress as _progress
from regjax.experiment import rows as _rows
from regjax.experiment.grids import RESERVED
from regjax.experiment.results import CURVE_PREFIX
from regjax.typing import PRNGKey, PyTree

if TYPE_CHECKING:
  from regjax.experiment.checkpoint import Store

__all__ = ["Hparams", "Refill", "SegmentEnd", "SegmentedRun", "Stop", "WholeRun", "row_state",
           "run", "split_steps", "stack_segments"]

Hparams: TypeAlias = dict[str, jax.Array]
"""The hyperparameters of one row as a run sees them: a dict grid axis -> traced float scalar."""

WholeRun: TypeAlias = Callable[[Hparams, PRNGKey], Mapping[str, jax.Array]]
"""A whole run, ``fn(hparams, key) -> {metric: scalar}``: one compiled program per chunk."""


@runtime_checkable
class SegmentedRun(Protocol):
  """A training run the sweep loop can cut into segments, save, stream and refill.

  Every method sees one row (the loop vmaps it); ``hparams`` maps each grid axis to a
  traced float scalar. A :class:`regjax.Trainer` implements it. The loop calls:

  * ``check_hparams(point)`` once per grid point, with concrete floats, before
    compiling: raise ``ValueError`` to refuse a point (e.g. a negative strength).
  * ``plan_segments(count)``: the step counts of consecutive segments of a full run,
    ``count`` of them (None: the run's own default, e.g. one); :func:`split_steps`.
  * ``host_batches()``: None when ``advance`` draws its own data, else a new iterator of
    host batches (pytrees of NumPy arrays), read once per chunk; the loop stacks one
    segment's batches on a leading axis and passes them, replicated, to ``advance``.
  * ``init(hparams, key) -> state``: a fresh run from a typed PRNG key.
  * ``advance(hparams, state, num_steps, batches) -> state``: ``num_steps`` more steps
    (pure; ``batches`` None or the stacked segment).
  * ``evaluate(hparams, state) -> {metric: scalar or "curves/<name>": 1-D}``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import regjax
    >>> from regjax.experiment import loop
    >>> class Count:  # x_{t+1} = x_t + a, as a segmented run of 4 steps
    ...   def check_hparams(self, point): pass
    ...   def plan_segments(self, count): return loop.split_steps(4, count or 1)
    ...   def host_batches(self): return None
    ...   def init(self, hparams, key): return jnp.zeros(())
    ...   def advance(self, hparams, state, num_steps, batches=None):
    ...     return state + num_steps * hparams["a"]
    ...   def evaluate(self, hparams, state): return {"x": state}
    >>> isinstance(Count(), loop.SegmentedRun)
    True
    >>> regjax.sweep(Count(), regjax.grid(a=[1.0, 2.0]), segments=2,
    ...              progress=False)["x"].tolist()
    [4.0, 8.0]
    >>> def between(end):  # a hook: after 2 of 4 steps, row 0 starts over with a = 10
    ...   print(end.segment, end.steps, end.metrics["x"].tolist(), end.last)
    ...   if not end.last:  # after the last segment nothing would train a new row
    ...     return loop.Refill(positions=[0], hparams={"a": [10.0]}, seeds=[0])
    >>> result = regjax.sweep(Count(), regjax.grid(a=[1.0, 2.0]), segments=2,
    ...                       between=between, progress=False)
    1 2 [2.0, 4.0] False
    2 4 [20.0, 8.0] True
    >>> result["a"].tolist(), result["x"].tolist()  # row 0 ran 2 steps at a = 10
    ([10.0, 2.0], [20.0, 8.0])
  """

  def check_hparams(self, point: Mapping[str, float]) -> None: ...

  def plan_segments(self, count: int | None) -> Sequence[int]: ...

  def host_batches(self) -> Iterator[PyTree] | None: ...

  def init(self, hparams: Hparams, key: PRNGKey) -> PyTree: ...

  def advance(self, hparams: Hparams, state: PyTree, num_steps: int,
              batches: PyTree = None) -> PyTree: ...

  def evaluate(self, hparams: Hparams, state: PyTree) -> Mapping[str, jax.Array]: ...


@dataclasses.dataclass(frozen=True)
class SegmentEnd:
  """What the hook ``between`` sees after a segment of one chunk (real rows only).

  Attributes:
    chunk: the chunk's index.
    segment: segments done so far (1 after the first).
    steps: steps the segment plan has taken so far (a refilled row has taken fewer).
    rows: the plan row (result row) of each position of the chunk.
    hparams: axis -> the rows' current values (NumPy, one per position).
    seeds: the rows' current seeds.
    metrics: ``evaluate`` of every row now: metric -> values; curves ``[rows, evals]``
      under ``"curves/<name>"``, NaN where not yet recorded.
    last: whether ``segment`` is the chunk's last (the hook may not refill then; False
      by default, for events made by hand).

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment.loop import Refill, SegmentEnd
    >>> def restart_the_worst(end):  # a hook `between`: the worst row restarts, λ / 10
    ...   worst = int(np.argmin(end.metrics["validation_accuracy"]))
    ...   return Refill(positions=[worst], hparams={"lam": [end.hparams["lam"][worst] / 10]},
    ...                 seeds=[end.seeds[worst] + 1])
    >>> end = SegmentEnd(chunk=0, segment=1, steps=50, rows=np.array([0, 1]),
    ...                  hparams={"lam": np.array([1e-3, 1e-1])}, seeds=np.array([0, 0]),
    ...                  metrics={"validation_accuracy": np.array([0.9, 0.4])})
    >>> refill = restart_the_worst(end)
    >>> refill.positions, [float(v) for v in refill.hparams["lam"]], int(refill.seeds[0])
    ([1], [0.01], 1)
  """

  chunk: int
  segment: int
  steps: int
  rows: np.ndarray
  hparams: dict[str, np.ndarray]
  seeds: np.ndarray
  metrics: dict[str, np.ndarray]
  last: bool = False


@dataclasses.dataclass(frozen=True)
class Refill:
  """Rows to restart from a fresh ``init`` with new hyperparameters and seeds.

  Attributes:
    positions: positions in the chunk (indices into ``SegmentEnd.rows``).
    hparams: axis -> one new value per position (every grid axis).
    seeds: one new seed per position, in ``[0, 2**32)``.

  Examples:
    >>> from regjax.experiment.loop import Refill
    >>> Refill(positions=[0], hparams={"lam": [1e-4]}, seeds=[7])  # row 0 restarts, λ = 1e-4
    Refill(positions=[0], hparams={'lam': [0.0001]}, seeds=[7])

    :class:`SegmentedRun`'s example runs a hook that returns one.
  """

  positions: Sequence[int]
  hparams: Mapping[str, Sequence[float]]
  seeds: Sequence[int]


@dataclasses.dataclass(frozen=True)
class Stop:
  """Ends the chunk after this segment: the hook's answer when its rows have nothing left
  to do (e.g. an adaptive search whose every slot idles).

  The chunk's rows are evaluated as they stand and reported; its remaining segments are
  skipped, and a checkpointed run records the stop, so a resume skips them too.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment import loop
    >>> def stop_once_all_diverged(end):  # a hook: nothing left to learn from these rows
    ...   return loop.Stop() if not np.isfinite(end.metrics["loss"]).any() else None
    >>> end = loop.SegmentEnd(chunk=0, segment=2, steps=20, rows=np.arange(2),
    ...                       hparams={"lam": np.array([1.0, 2.0])}, seeds=np.zeros(2),
    ...                       metrics={"loss": np.array([np.nan, np.inf])})
    >>> stop_once_all_diverged(end)
    Stop()
  """


def split_steps(steps: int, count: int, multiple: int = 1) -> tuple[int, ...]:
  """``count`` segment lengths summing to ``steps``, multiples of ``multiple``, longest first.

  The lengths differ by at most ``multiple`` (so at most two compiled programs), which
  lets any step count be cut into any number of segments up to ``steps // multiple``.

  Args:
    steps: the steps of a full run, a multiple of ``multiple``.
    count: the number of segments, >= 1.
    multiple: the granularity (e.g. the evaluation period of curves).

  Returns:
    The lengths.

  Examples:
    >>> from regjax.experiment.loop import split_steps
    >>> split_steps(1000, 4), split_steps(50, 4, multiple=2)
    ((250, 250, 250, 250), (14, 12, 12, 12))
  """
  units, rest = divmod(steps, multiple)
  if rest:
    raise ValueError(f"`steps` {steps} must be a multiple of {multiple}.")
  if not 1 <= count <= units:
    raise ValueError(f"`segments` must be between 1 and {units} (steps {steps} in periods of "
                     f"{multiple}), got {count}.")
  base, extra = divmod(units, count)
  return tuple(multiple * (base + (i < extra)) for i in range(count))


# ----------------------------------------------------------------------------- programs


class _ProgramCache:
  """Compiled programs per ``fn`` object, dropped when ``fn`` is garbage collected.

  Entries hold executables (``jax.stages.Compiled``) and metric orders, never ``fn``: an
  entry that referenced ``fn`` would keep it (and the data it closes over) alive forever.
  A callable that cannot be weakly referenced is compiled anew on every call.
  """

  def __init__(self, per_fn: int = 8):
    self._per_fn = per_fn
    self._entries: dict[int, collections.OrderedDict[Any, Any]] = {}

  def get(self, fn: Any, key: Any, build: Callable[[], Any]) -> Any:
    entries = self._entries.get(id(fn))
    if entries is None:
      try:
        weakref.finalize(fn, self._entries.pop, id(fn), None)
      except TypeError:
        return build()
      entries = self._entries[id(fn)] = collections.OrderedDict()
    if key in entries:
      entries.move_to_end(key)
      return entries[key]
    value = entries[key] = build()
    while len(entries) > self._per_fn:
      entries.popitem(last=False)
    return value

  def __len__(self) -> int:
    return len(self._entries)


_CACHE = _ProgramCache()


def _ordered(function: Callable[..., Any]) -> tuple[Callable[..., Any], list[str]]:
  """``function`` wrapped to record the order of its dict's keys while it is traced
  (pytrees sort dict keys; a result keeps the user's order)."""
  order: list[str] = []

  def wrapped(*args: Any) -> Any:
    out = function(*args)
    if isinstance(out, Mapping):
      order[:] = list(out)
    return out

  return wrapped, order


def _check_metrics(out_info: Any, hparam_names: Sequence[str]) -> None:
  if not isinstance(out_info, Mapping) or not out_info:
    raise TypeError("`fn` must return a non-empty dict of scalar metrics, e.g. {'loss': loss}; "
                    f"got {type(out_info).__name__}.")
  for name, info in out_info.items():
    if not isinstance(name, str):
      raise TypeError(f"Metric names must be strings, got {name!r}.")
    if name in RESERVED or name in hparam_names:
      raise ValueError(f"Metric `{name}` clashes with a result column ({list(RESERVED)} or a "
                       "grid axis); rename it (return `failed_step` to flag a failure).")
    curve = name.startswith(CURVE_PREFIX)
    if not isinstance(info, jax.ShapeDtypeStruct) or len(info.shape) != 1 + curve:
      shape = getattr(info, "shape", None)
      shape = shape[1:] if shape else shape
      kind = "a 1-D curve" if curve else "a scalar"
      raise ValueError(f"Metric `{name}` must be {kind} per run, got shape {shape}.")
    if not (jnp.issubdtype(info.dtype, jnp.number) or jnp.issubdtype(info.dtype, jnp.bool_)):
      raise TypeError(f"Metric `{name}` must be numeric, got dtype {info.dtype}.")


def _compile(function: Callable[..., Any], args: Sequence[Any], progress: bool,
             **jit_options: Any) -> Any:
  with _progress.step_progress(progress):
    return jax.jit(function, **jit_options).lower(*args).compile()


def _whole_program(fn: Callable[..., Any], plan: _rows.RowPlan, progress: bool) -> Any:
  """The fused program of a whole run for one chunk, and its metric order."""
  run, order = _ordered(lambda h, seed: fn(h, jax.random.key(seed)))
  batched = jax.jit(jax.vmap(run), in_shardings=plan.sharding, out_shardings=plan.sharding)
  with _progress.step_progress(progress):
    lowered = batched.lower(*plan.abstract_inputs())
  _check_metrics(lowered.out_info, plan.names)
  return lowered.compile(), tuple(order)


@dataclasses.dataclass(frozen=True)
class _Segmented:
  """The compiled programs of a segmented run for one chunk shape."""

  init: Any
  advance: dict[int, Any]
  evaluate: Any
  refill: Any
  order: tuple[str, ...]
  state: Any  # abstract chunk state (ShapeDtypeStructs with the rows' sharding)


def _abstract_chunk(tree: Any, rows: int, sharding: NamedSharding) -> Any:
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct((rows, *leaf.shape), leaf.dtype,
                                                        sharding=sharding), tree)


def _segment_programs(fn: SegmentedRun, plan: _rows.RowPlan, lengths: Sequence[int],
                      block: Any, refill: bool, progress: bool) -> _Segmented:
  hparams, seeds = plan.abstract_inputs()
  state = _abstract_chunk(row_state(fn, plan.names), plan.chunk, plan.sharding)
  replicated = NamedSharding(plan.sharding.mesh, PartitionSpec())
  sharded: dict[str, Any] = dict(out_shardings=plan.sharding)
  init = _compile(jax.vmap(lambda h, s: fn.init(h, jax.random.key(s))), (hparams, seeds),
                  progress, **sharded)
  advance = {}
  for length in dict.fromkeys(lengths):
    blocks = None if block is None else jax.tree.map(
        lambda b, n=length: jax.ShapeDtypeStruct((n, *b.shape), b.dtype, sharding=replicated),
        block)
    step = jax.vmap(lambda h, st, b, n=length: fn.advance(h, st, n, b), in_axes=(0, 0, None))
    advance[length] = _compile(step, (hparams, state, blocks), progress, donate_argnums=1,
                               **sharded)
  evaluate_row, order = _ordered(fn.evaluate)
  with _progress.step_progress(progress):
    lowered = jax.jit(jax.vmap(evaluate_row), **sharded).lower(hparams, state)
  _check_metrics(lowered.out_info, plan.names)
  mask = jax.ShapeDtypeStruct((plan.chunk,), jnp.bool_, sharding=plan.sharding)
  fresh = None if not refill else _compile(
      jax.vmap(lambda h, s, st, m: jax.tree.map(
          lambda new, old: jnp.where(m, new, old), fn.init(h, jax.random.key(s)), st)),
      (hparams, seeds, state, mask), progress, donate_argnums=2, **sharded)
  return _Segmented(init, advance, lowered.compile(), fresh, tuple(order), state)


def row_state(fn: SegmentedRun, names: Sequence[str]) -> PyTree:
  """The abstract state of one row (``jax.eval_shape`` of ``fn.init``).

  The checkpoints' signature records its shapes and dtypes; nothing is computed.

  Args:
    fn: the segmented run.
    names: the grid's axis names (each reaches ``fn.init`` as a float scalar).

  Returns:
    ``fn.init``'s pytree with ``jax.ShapeDtypeStruct`` leaves.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.experiment import loop
    >>> class Run:
    ...   def init(self, hparams, key): return {"w": jnp.zeros((3, 2)), "lam": hparams["lam"]}
    >>> loop.row_state(Run(), ["lam"])["w"]
    ShapeDtypeStruct(shape=(3, 2), dtype=float32)
  """
  hparams = {name: jax.ShapeDtypeStruct((), jnp.result_type(float)) for name in names}
  return jax.eval_shape(fn.init, hparams, jax.random.key(0))


# ----------------------------------------------------------------------------- batches


def stack_segments(batches: Iterator[PyTree], lengths: Sequence[int],
                   skip: int = 0) -> Iterator[PyTree]:
  """The stream's batches stacked one segment at a time, after skipping ``skip`` segments.

  Args:
    batches: an iterator of batches (pytrees of arrays of one structure and shape).
    lengths: the segments' step counts.
    skip: segments already done (their batches are read and dropped).

  Yields:
    One pytree per segment, each leaf ``[length, *batch_shape]``.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment.loop import stack_segments
    >>> stream = iter([np.full(2, i) for i in range(5)])
    >>> [b.shape for b in stack_segments(stream, (3, 2))]
    [(3, 2), (2, 2)]
  """
  starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
  for index, size in enumerate(lengths):
    chunk = list(itertools.islice(batches, size))
    if len(chunk) < size:
      raise ValueError(f"`train` ran out after {starts[index] + len(chunk)} batches; the run "
                       f"needs {starts[-1]}.")
    if index < skip:
      continue
    try:
      yield jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *chunk)
    except ValueError as error:
      raise ValueError(f"`train`: batches {starts[index]}..{starts[index + 1] - 1} differ in "
                       f"structure or shape ({error}); every batch must have the same shapes.")\
          from None


def _peek(batches: Iterator[Any]) -> tuple[Any, Iterator[Any]]:
  first = next(batches, None)
  if first is None:
    raise ValueError("`train` yielded no batch.")
  spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), first)
  return spec, itertools.chain([first], batches)


# ----------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class _Rows:
  """One chunk's current rows on the host and on the devices."""

  plan: _rows.RowPlan
  index: int
  hparams: dict[str, np.ndarray]
  seeds: np.ndarray

  @classmethod
  def of(cls, plan: _rows.RowPlan, index: int) -> _Rows:
    rows = plan.rows(index)
    return cls(plan, index, {n: v[rows] for n, v in plan.hparams.items()},
               plan.seed_column[rows])

  def placed(self) -> tuple[dict[str, jax.Array], jax.Array]:
    return self.plan.place(self.hparams, self.seeds)

  @property
  def real(self) -> int:
    """Positions that are real rows (the last chunk's padding excluded)."""
    return int(min(self.plan.chunk, self.plan.n_rows - self.index * self.plan.chunk))


def run(fn: WholeRun | SegmentedRun, plan: _rows.RowPlan, *, lengths: Sequence[int] | None,
        chunk_size: int | None, store: Store | None = None,
        between: Callable[[SegmentEnd], Refill | Stop | None] | None = None,
        signature: Callable[[int, PyTree], dict[str, object]] | None = None,
        first_batches: Iterator[PyTree] | None = None, progress: bool = True,
        desc: str | None = None) -> tuple[dict[str, np.ndarray], _rows.RowPlan,
                                          dict[str, np.ndarray], np.ndarray]:
  """Runs every row of ``plan``; returns the metrics, the chunked plan and the rows' final
  hyperparameters and seeds.

  Args:
    fn: a whole run ``(hparams, key) -> metrics``, or a :class:`SegmentedRun`.
    plan: the rows (one chunk; chunked here).
    lengths: segment lengths of a segmented run; None runs ``fn`` whole.
    chunk_size: rows per chunk, or None to size chunks from memory.
    store: a :class:`regjax.experiment.checkpoint.Store`, or None.
    between: the hook between segments (see the module docstring), or None.
    signature: ``(chunk, row_state) -> signature`` for the store's check.
    first_batches: ``fn.host_batches()`` as the caller read it (the first chunk's), or
      None for in-memory data.
    progress: draw a bar and enable :func:`regjax.progress_callback`.
    desc: the bar's label.

  Returns:
    ``(metrics, plan, hparams, seeds)``: metric -> one value per row (curves
    ``[rows, evaluations]``), the plan as chunked, and every row's final hyperparameters
    and seed (a refilled row's last ones). :func:`regjax.sweep` makes its result of them.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment import loop, rows
    >>> plan = rows.plan_rows(["x"], {"x": np.array([1.0, 2.0, 3.0])}, seeds=1)
    >>> metrics, plan, hparams, seeds = loop.run(
    ...     lambda h, k: {"y": h["x"] ** 2}, plan, lengths=None, chunk_size=2, progress=False)
    >>> metrics["y"].tolist(), plan.n_chunks
    ([1.0, 4.0, 9.0], 2)
  """
  if lengths is None:
    return _run_whole(fn, plan, chunk_size, progress, desc)
  return _run_segmented(cast(SegmentedRun, fn), plan, tuple(lengths), chunk_size, store,
                        between, signature, first_batches, progress, desc)


def _run_whole(fn: Any, plan: _rows.RowPlan, chunk_size: int | None, progress: bool,
               desc: str | None) -> Any:
  order: tuple[str, ...] = ()

  def compile_rows(rows: int) -> Any:
    nonlocal order
    chunked = plan.with_chunk(rows)
    key = ("whole", chunked.names, rows, jnp.result_type(float), chunked.sharding, progress)
    compiled, order = _CACHE.get(fn, key, lambda: _whole_program(fn, chunked, progress))
    return compiled

  plan, compiled = _rows.fit_chunks(plan, chunk_size, compile_rows)
  bar = _progress.bar(plan.n_chunks, desc or "sweep", unit="chunk") if progress else None
  pieces = []
  try:
    for i in range(plan.n_chunks):
      pieces.append(compiled(*plan.inputs(i)))
      if bar is not None:
        bar.update(1)
  finally:
    if bar is not None:
      bar.close()
  metrics = _finish(plan, pieces, order, progress)
  return metrics, plan, plan.hparams, plan.seed_column


def _finish(plan: _rows.RowPlan, pieces: Sequence[Any], order: Sequence[str],
            progress: bool) -> dict[str, np.ndarray]:
  if progress:
    jax.effects_barrier()  # flush `progress_callback` reports before returning
  metrics = plan.gather(pieces)
  return {name: metrics[name] for name in order or tuple(metrics)}


def _run_segmented(fn: SegmentedRun, plan: _rows.RowPlan, lengths: tuple[int, ...],
                   chunk_size: int | None, store: Any, between: Any, signature: Any,
                   first: Iterator[Any] | None, progress: bool, desc: str | None) -> Any:
  block, first = (None, None) if first is None else _peek(first)
  if store is not None and chunk_size is None:
    chunk_size = store.saved_chunk_size
  if store is not None:  # refuse another sweep's checkpoints before compiling anything
    store.check(signature(plan.with_chunk(chunk_size or plan.n_rows).chunk,
                          row_state(fn, plan.names)))
  programs: dict[str, _Segmented] = {}

  def compile_rows(rows: int) -> Any:
    chunked = plan.with_chunk(rows)
    key = ("segmented", chunked.names, rows, jnp.result_type(float), chunked.sharding,
           progress, lengths, block, between is not None)
    programs["p"] = _CACHE.get(fn, key, lambda: _segment_programs(
        fn, chunked, lengths, block, between is not None, progress))
    return programs["p"].advance[lengths[0]]

  # Every chunk's pass over a stream, opened before compiling where the chunks are known,
  # so that a one-shot iterator asked for a second pass fails at once.
  known = plan.with_chunk(chunk_size).n_chunks if chunk_size else 1
  streams = None if first is None else [first, *(fn.host_batches() for _ in range(known - 1))]
  plan, _ = _rows.fit_chunks(plan, chunk_size, compile_rows)
  if streams is not None:
    streams += [fn.host_batches() for _ in range(plan.n_chunks - len(streams))]
  if store is not None:
    store.open(signature(plan.chunk, row_state(fn, plan.names)))
  bar = (_progress.bar(plan.n_chunks * len(lengths), desc or "segments", unit="segment")
         if progress else None)
  chunks = []
  try:
    for i in range(plan.n_chunks):
      stream = None if streams is None else streams[i]
      chunks.append(_run_chunk(programs["p"], _Rows.of(plan, i), lengths, stream, store,
                               between, bar))
  finally:
    if bar is not None:
      bar.close()
    if store is not None:
      store.close()
  metrics = _finish(plan, [out for out, _ in chunks], programs["p"].order, progress)
  finals = [rows for _, rows in chunks]
  hparams = {n: np.concatenate([r.hparams[n][:r.real] for r in finals]) for n in plan.names}
  return metrics, plan, hparams, np.concatenate([r.seeds[:r.real] for r in finals])


def _run_chunk(programs: _Segmented, rows: _Rows, lengths: tuple[int, ...], stream: Any,
               store: Any, between: Any, bar: Any) -> tuple[Any, _Rows]:
  """One chunk: restore or init, then advance segment by segment; returns its metrics."""
  state, done, stopped = _start_chunk(programs, rows, store, between)
  placed = rows.placed()
  if bar is not None:
    bar.update(len(lengths) if stopped else done)
  replicated = NamedSharding(rows.plan.sharding.mesh, PartitionSpec())
  blocks = None if stream is None else stack_segments(stream, lengths, skip=done)
  metrics = None  # the hook's evaluation of the rows as they stand, when still valid
  for segment in range(done, done if stopped else len(lengths)):
    block = None if blocks is None else jax.tree.map(
        lambda a: _rows._put_on_mesh(a, replicated), next(blocks))
    state = programs.advance[lengths[segment]](placed[0], state, block)
    if between is not None:
      state, placed, metrics, stopped = _between(programs, rows, placed, state, between,
                                                 segment + 1, lengths)
    if store is not None:
      store.save(rows.index, segment + 1, {"state": state}, _host(rows, between, stopped))
    if bar is not None:
      bar.update(len(lengths) - segment if stopped else 1)
    if stopped:
      break
  return (metrics if metrics is not None else programs.evaluate(placed[0], state)), rows


def _start_chunk(programs: _Segmented, rows: _Rows, store: Any,
                 between: Any) -> tuple[Any, int, bool]:
  """A chunk's first state: its newest checkpoint (rows, hook state) or a fresh ``init``.

  Returns:
    The state, the segments done and whether the hook stopped the chunk.
  """
  restored = None if store is None else store.restore(rows.index, {"state": programs.state})
  if restored is None:
    return programs.init(*rows.placed()), 0, False
  done, tree, host = restored
  rows.hparams = {n: np.asarray(host["hparams"][n], dtype=v.dtype)
                  for n, v in rows.hparams.items()}
  rows.seeds = np.asarray(host["seeds"], dtype=np.int64)
  if ("hook" in host) != _stateful(between):
    saved, now = ("with", "has none") if "hook" in host else ("without", "has one")
    raise ValueError(f"`between`: the checkpoint was saved {saved} a hook state "
                     f"(`state_dict()`), but this hook {now}; resume with the same hook, or "
                     "run without `resume` to start over.")
  if "hook" in host:
    between.load_state_dict(host["hook"])
  return tree["state"], done, bool(host["stopped"])


def _stateful(between: Any) -> bool:
  return callable(getattr(between, "state_dict", None)) and callable(
      getattr(between, "load_state_dict", None))


def _host(rows: _Rows, between: Any, stopped: bool) -> dict[str, Any]:
  """What a checkpoint keeps on the host: exact hyperparameters, seeds, stop, hook state."""
  host = {"hparams": {n: v.tolist() for n, v in rows.hparams.items()},
          "seeds": rows.seeds.tolist(), "stopped": stopped}
  if _stateful(between):
    host["hook"] = between.state_dict()
    try:
      json.dumps(host["hook"])
    except (TypeError, ValueError) as error:
      raise TypeError(f"`between.state_dict()` must return JSON values (dicts, lists, "
                      f"numbers, strings), got {type(host['hook']).__name__} ({error}).") \
          from None
  return host


def _between(programs: _Segmented, rows: _Rows, placed: Any, state: Any, between: Any,
             segment: int, lengths: Sequence[int]) -> tuple[Any, Any, Any, bool]:
  """Calls the hook with the chunk's metrics so far and applies what it returns.

  Returns:
    The state and placed inputs (refilled rows replaced), the rows' metrics as they stand
    (None after a refill: they are stale), and whether the hook stopped the chunk.
  """
  real = rows.real
  metrics = programs.evaluate(placed[0], state)
  hosted = {n: np.asarray(_rows._to_host(v))[:real] for n, v in metrics.items()}
  last = segment == len(lengths)
  event = SegmentEnd(
      chunk=rows.index, segment=segment, steps=int(sum(lengths[:segment])),
      rows=rows.plan.rows(rows.index)[:real],
      hparams={n: v[:real].copy() for n, v in rows.hparams.items()},
      seeds=rows.seeds[:real].copy(), metrics={n: hosted[n] for n in programs.order},
      last=last)
  action = between(event)
  if action is None or isinstance(action, Stop):
    return state, placed, metrics, action is not None
  if not isinstance(action, Refill):
    raise TypeError(f"`between` must return a Refill, a Stop or None, got {action!r}.")
  if not len(action.positions):
    return state, placed, metrics, False
  if last:
    raise ValueError(f"`between` returned a Refill after the last segment ({segment} of "
                     f"{len(lengths)}), where nothing would train the new rows; return None "
                     "or Stop there (`SegmentEnd.last`).")
  return (*_refill(programs, rows, state, action, real), None, False)


def _refill(programs: _Segmented, rows: _Rows, state: Any, refill: Refill,
            real: int) -> tuple[Any, Any]:
  """Gives ``refill.positions`` their new hyperparameters, seeds and a fresh ``init``."""
  positions = np.asarray(refill.positions, dtype=np.int64)
  if positions.min() < 0 or positions.max() >= real:
    raise ValueError(f"`Refill.positions` must be in [0, {real}), got {positions.tolist()}.")
  for name in rows.hparams:
    rows.hparams[name][positions] = np.asarray(refill.hparams[name], dtype=np.float64)
  seeds = np.asarray(refill.seeds, dtype=np.int64)
  if seeds.shape != positions.shape or seeds.min() < 0 or seeds.max() >= 2**32:
    raise ValueError(f"`Refill.seeds` must be one int in [0, 2**32) per position, got "
                     f"{seeds.tolist()}.")
  rows.seeds[positions] = seeds
  placed = rows.placed()
  mask = np.zeros(rows.plan.chunk, dtype=bool)
  mask[positions] = True
  state = programs.refill(*placed, state, _rows._put_on_mesh(mask, rows.plan.sharding))
  return state, placed
