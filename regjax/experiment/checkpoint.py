"""Checkpoint and resume for long sweeps of a :class:`regjax.nnx.Trainer`.

:func:`resumable_sweep` trains every (grid point, seed) row like :func:`regjax.sweep`,
but in ``segments`` equal stretches of steps and saves the stacked training states
(parameters, optimizer states, step, data key) after each one with
``flax.serialization.to_bytes`` (msgpack; one file per segment, written atomically). A
run started again with ``resume=True`` loads the newest checkpoint and goes on. Because
the minibatch of step ``t`` is drawn from ``fold_in(data_key, t)`` and every segment runs
the same compiled program, a resumed sweep is bit-identical to an uninterrupted one.

Rows are sharded over the local devices as in :func:`regjax.sweep` (one chunk: the
states of all rows must fit in memory together).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from jax.sharding import NamedSharding, PartitionSpec

from regjax import _checks
from regjax.experiment import results as _results
from regjax.experiment import sweeps as _sweep
from regjax.experiment.trainer import Trainer, TrainState


def _path(directory: pathlib.Path, segment: int) -> pathlib.Path:
  return directory / f"segment_{segment:04d}.msgpack"


def save(path: str | os.PathLike, state: Any) -> None:
  """Writes a pytree of arrays to ``path`` atomically (temporary file, then rename)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_suffix(".tmp")
  temporary.write_bytes(serialization.to_bytes(jax.device_get(state)))
  os.replace(temporary, path)


def load(path: str | os.PathLike, like: Any) -> Any:
  """Reads a pytree saved by :func:`save` into the structure and dtypes of ``like``."""
  return serialization.from_bytes(like, pathlib.Path(path).read_bytes())


def _signature(trainer: Trainer, grid: _sweep.Grid, seeds: tuple[int, ...],
               segments: int) -> dict[str, Any]:
  return {"points": {k: v.tolist() for k, v in grid.points.items()}, "seeds": list(seeds),
          "steps": trainer.steps, "segments": segments, "batch_size": trainer.batch_size}


def resumable_sweep(
    trainer: Trainer,
    grid: _sweep.Grid,
    *,
    seeds: tuple[int, ...] = (0,),
    directory: str | os.PathLike,
    segments: int = 4,
    resume: bool = False,
    progress: bool = True,
    desc: str | None = None,
) -> _results.SweepResult:
  """Trains ``trainer`` over ``grid × seeds`` in segments, saving after each segment.

  Args:
    trainer: the training run; ``trainer.steps`` must divide by ``segments``.
    grid: the strengths, as for :func:`regjax.sweep`.
    seeds: seeds per point (row key ``jax.random.key(seed)``, as in :func:`regjax.sweep`).
    directory: where checkpoints go (created if needed).
    segments: number of equal stretches of steps; a checkpoint follows each.
    resume: continue from the newest checkpoint in ``directory``; its sweep must have
      the same grid, seeds, steps, segments and batch size, else ``ValueError``.
    progress: show a bar over segments.
    desc: label of the bar.

  Returns:
    A :class:`regjax.SweepResult`, as :func:`regjax.sweep` returns for ``trainer``.
  """
  start = time.perf_counter()
  seeds = _sweep._check_seeds(seeds)
  _checks.check_int("segments", segments)
  if trainer.steps % segments:
    raise ValueError(f"`segments` must be a positive int dividing steps={trainer.steps}, "
                     f"got {segments!r}.")
  directory = pathlib.Path(directory)
  hparams, seed_column = _sweep.flat_rows(grid, seeds)
  mesh = _sweep._resolve_mesh(None)
  sharding = NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))
  n_rows = len(seed_column)
  padded = math.ceil(n_rows / mesh.devices.size) * mesh.devices.size
  index = np.minimum(np.arange(padded), n_rows - 1)
  dtype = jnp.result_type(float)
  row_hparams = {k: _sweep._put_on_mesh(v[index].astype(dtype), sharding)
                 for k, v in hparams.items()}
  row_seeds = _sweep._put_on_mesh(seed_column[index].astype(np.uint32), sharding)
  per_segment = trainer.steps // segments

  init = jax.jit(jax.vmap(lambda h, s: trainer.init(h, jax.random.key(s))),
                 out_shardings=sharding)
  advance = jax.jit(jax.vmap(lambda h, state: trainer.advance(h, state, per_segment)),
                    out_shardings=sharding, donate_argnums=1)
  evaluate = jax.jit(jax.vmap(trainer.evaluate), out_shardings=sharding)

  state: TrainState = init(row_hparams, row_seeds)
  done = 0
  signature = _signature(trainer, grid, seeds, segments)
  signature_path = directory / "sweep.json"
  if resume:
    saved = sorted(directory.glob("segment_*.msgpack"))
    if saved:
      if json.loads(signature_path.read_text()) != signature:
        raise ValueError(f"`resume`: the checkpoints in {directory} belong to a different "
                         "sweep (grid, seeds, steps, segments or batch size differ).")
      done = int(saved[-1].stem.split("_")[1])
      state = jax.device_put(load(saved[-1], jax.device_get(state)), sharding)
  else:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("segment_*.msgpack"):
      old.unlink()
    signature_path.write_text(json.dumps(signature))

  bar = _sweep._make_bar(segments, desc or "segments", unit="segment") if progress else None
  try:
    if bar is not None:
      bar.update(done)
    for segment in range(done + 1, segments + 1):
      state = advance(row_hparams, state)
      save(_path(directory, segment), state)
      if bar is not None:
        bar.update(1)
  finally:
    if bar is not None:
      bar.close()
  out = evaluate(row_hparams, state)
  metrics = {name: _sweep._to_host(values)[:n_rows] for name, values in out.items()}
  return _sweep.build_result(grid, hparams, seed_column, metrics,
                             time.perf_counter() - start, padded)
