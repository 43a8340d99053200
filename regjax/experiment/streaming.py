"""Host-fed training data for a :class:`regjax.experiment.trainer.Trainer` under a sweep.

When ``Trainer(train=...)`` is a stream of batches (pytrees of NumPy arrays with a
leading batch axis, from any loader: a generator, grain, tf.data), :func:`regjax.sweep`
runs each chunk of rows in segments of ``segment_steps`` steps:

1. Python reads the segment's batches from the stream and stacks them into one block
   ``[segment_steps, batch, ...]``, placed on the mesh *replicated* (not split by row);
2. one compiled ``jit(vmap(advance, in_axes=(0, 0, None)))`` scans over the block. The
   batch is not vmapped, so every grid point sees the same data in the same order, and
   XLA computes a first layer for all grid points as one matrix product;
3. dispatch is asynchronous: while the device trains on one block, Python reads and
   stacks the next.

Each chunk reads the stream from the start, so a stream must be re-iterable: a
zero-argument callable returning an iterable (e.g. a generator function) or an iterable
whose ``iter()`` starts over (a list, most loaders). Exactly ``steps`` batches are read.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from regjax.experiment import rows as _rows
from regjax.experiment import sweeps as _sweep

# Compiled programs by (trainer identity, sharding, progress); each entry keeps its
# trainer alive so an id is never reused while cached.
_PROGRAMS: collections.OrderedDict[Any, tuple[Any, ...]] = collections.OrderedDict()
_PROGRAMS_MAX = 4


def is_stream(train: Any) -> bool:
  """Whether ``train`` is a stream of batches (not a tuple/mapping of in-memory arrays)."""
  if isinstance(train, (tuple, Mapping)):
    return False
  return callable(train) or isinstance(train, Iterable)


def _iterate(train: Any) -> Iterator[Any]:
  source = train() if callable(train) else train
  if isinstance(source, Iterator) and iter(source) is source and not callable(train):
    raise TypeError(
        "`train` is a one-shot iterator; pass a function returning it (e.g. "
        "`train=lambda: loader()`) so that every sweep chunk can read it from the start.")
  return iter(source)


def batch_spec(trainer: Any) -> Any:
  """Shapes and dtypes of one stacked segment (the first batch of the stream)."""
  first = next(_iterate(trainer.train), None)
  if first is None:
    raise ValueError("`train` yielded no batch.")
  return jax.tree.map(
      lambda a: jax.ShapeDtypeStruct((segment_steps(trainer), *np.shape(a)), np.asarray(a).dtype),
      first)


def segment_steps(trainer: Any) -> int:
  """Steps per segment: ``trainer.segment_steps``, else the largest count <= 100 (or
  ``eval_every``) that divides ``steps`` and is a multiple of ``eval_every``."""
  if trainer.segment_steps is not None:
    return trainer.segment_steps
  every = trainer.eval_every or 1
  limit = max(100, every)
  return max(m for m in range(every, min(limit, trainer.steps) + 1, every)
             if trainer.steps % m == 0)


def blocks(trainer: Any) -> Iterator[Any]:
  """The stream's first ``steps`` batches, stacked ``segment_steps`` at a time."""
  size = segment_steps(trainer)
  stream = _iterate(trainer.train)
  for start in range(0, trainer.steps, size):
    batches = list(itertools.islice(stream, size))
    if len(batches) < size:
      raise ValueError(f"`train` ran out after {start + len(batches)} batches; the Trainer "
                       f"needs steps={trainer.steps}.")
    try:
      yield jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *batches)
    except ValueError as error:
      raise ValueError(f"`train`: batches {start}..{start + size - 1} differ in structure or "
                       f"shape ({error}); every batch must have the same shapes.") from None


def _programs(trainer: Any, sharding: NamedSharding, progress: bool) -> tuple[Any, ...]:
  key = (id(trainer), sharding, progress)
  cached = _PROGRAMS.get(key)
  if cached is not None and cached[0] is trainer:
    _PROGRAMS.move_to_end(key)
    return cached[1:]
  size = segment_steps(trainer)
  order: list[str] = []

  def evaluate(hparams, state):
    out = trainer.evaluate(hparams, state)
    order[:] = list(out)
    return out

  init = jax.jit(jax.vmap(lambda h, s: trainer.init(h, jax.random.key(s))),
                 out_shardings=sharding)
  advance = jax.jit(jax.vmap(lambda h, state, block: trainer.advance(h, state, size, block),
                             in_axes=(0, 0, None)), out_shardings=sharding, donate_argnums=1)
  programs = (init, advance, jax.jit(jax.vmap(evaluate), out_shardings=sharding), order)
  _PROGRAMS[key] = (trainer, *programs)
  while len(_PROGRAMS) > _PROGRAMS_MAX:
    _PROGRAMS.popitem(last=False)
  return programs


def run_rows(trainer: Any, hparams: Mapping[str, jax.Array], seeds: jax.Array,
             sharding: NamedSharding) -> dict[str, jax.Array]:
  """Trains one chunk of rows on the stream; returns ``evaluate``'s metrics per row."""
  init, advance, evaluate, order = _programs(trainer, sharding, _sweep.step_progress_enabled())
  replicated = NamedSharding(sharding.mesh, PartitionSpec())
  state = init(hparams, seeds)
  for block in blocks(trainer):
    block = jax.tree.map(lambda a: _rows._put_on_mesh(a, replicated), block)
    state = advance(hparams, state, block)
  out = evaluate(hparams, state)
  return {name: out[name] for name in order}
