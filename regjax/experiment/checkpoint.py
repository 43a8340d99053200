"""Checkpoint and resume for long sweeps of a :class:`regjax.Trainer`.

:func:`resumable_sweep` trains every (grid point, seed) row like :func:`regjax.sweep`,
with the same row plan (:mod:`regjax.experiment.rows`: rows sharded over the mesh and
cut into chunks), but in ``segments`` equal stretches of steps, and saves each chunk's
stacked training state (whatever pytree ``trainer.init`` builds: parameters, optimizer
states, step, data key, ...) after every segment with Orbax
(``orbax.checkpoint.StandardCheckpointer``). A run started again with ``resume=True``
goes on from the newest checkpoint of each chunk. Because the minibatch of step ``t`` is
drawn from ``fold_in(data_key, t)`` and every segment runs the same compiled program, a
resumed sweep is bit-identical to an uninterrupted one.

Layout of ``directory``::

  sweep.json                        the run's signature, written when a fresh run starts
  chunk_0000/segment_0001/ ...      Orbax checkpoints, one per chunk and segment

Safety:

* Orbax writes a checkpoint into a temporary directory and renames it when it is
  complete, so a process killed during a save leaves the previous segment intact (the
  unfinished temporary directory is ignored and removed by the next run).
* ``sweep.json`` records every setting that changes the result: the grid, seeds, steps,
  segments, batch size, chunk size, a SHA-256 of the training and test arrays, the
  shapes and dtypes of one row's training state (so a different model shape is caught),
  and the caller's ``settings`` (e.g. a learning rate or method the trainer's callables
  hide). A resume whose signature differs is refused with a :class:`CheckpointError`
  naming the setting.
* A damaged checkpoint or signature file raises :class:`CheckpointError` naming the file
  and how to recover.

Orbax rather than one msgpack file per segment: each process writes only the shards of
its own devices (no gather of the whole state to one host) and restores straight into
the mesh's sharding, which a multi-process sweep needs; it also saves in the background
while the next segment trains.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from regjax import _checks
from regjax.experiment import rows as _rows
from regjax.experiment import sweeps as _sweep
from regjax.experiment.results import SweepResult

SIGNATURE = "sweep.json"
_SEGMENT = re.compile(r"segment_(\d{4})")


class CheckpointError(ValueError):
  """A checkpoint that cannot be resumed: another sweep's, or a damaged file."""


def save(path: str | os.PathLike, state: Any, checkpointer: Any = None) -> None:
  """Writes a pytree of arrays to the directory ``path`` (atomically: a temporary
  directory renamed when complete).

  Args:
    path: the checkpoint directory; it must not exist.
    state: a pytree of ``jax.Array`` (sharded arrays write only local shards).
    checkpointer: an ``ocp.StandardCheckpointer`` whose save may still be running in
      the background when this returns; None saves synchronously.
  """
  path = pathlib.Path(path).absolute()
  if checkpointer is None:
    with ocp.StandardCheckpointer() as synchronous:
      synchronous.save(path, state)
      synchronous.wait_until_finished()
  else:
    checkpointer.save(path, state)


def load(path: str | os.PathLike, like: Any) -> Any:
  """Reads a checkpoint written by :func:`save` into the structure, shapes, dtypes and
  shardings of ``like`` (arrays or ``jax.ShapeDtypeStruct``).

  Raises:
    CheckpointError: the checkpoint is missing or damaged.
  """
  path = pathlib.Path(path).absolute()
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      like)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      return checkpointer.restore(path, abstract)
  except Exception as error:  # noqa: BLE001 - Orbax and TensorStore raise many kinds.
    message = str(error).splitlines()[0][:300] if str(error) else ""
    raise CheckpointError(
        f"Checkpoint {path} cannot be read ({type(error).__name__}: {message}). Delete "
        f"{path} to resume from the segment before it, or run without `resume` (the "
        "CLI's --resume) to start over.") from error


def _fingerprint(data: Any) -> str | None:
  """SHA-256 of the arrays of a data set (None if it holds anything but arrays)."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(data):
    if not isinstance(leaf, (np.ndarray, jax.Array)):
      return None
    array = np.asarray(leaf)
    digest.update(f"{array.dtype}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _signature(trainer: Any, grid: _sweep.Grid, seeds: tuple[int, ...], chunk: int,
               segments: int, settings: Mapping[str, Any], row: Any) -> dict[str, Any]:
  """Every setting of a run that changes its result, as JSON values; ``row`` is the
  abstract training state of one row."""
  state = {jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)]
           for path, leaf in jax.tree_util.tree_leaves_with_path(row)}
  signature = {
      **{f"settings[{name!r}]": value for name, value in settings.items()},
      "grid": {name: values.tolist() for name, values in grid.points.items()},
      "seeds": list(seeds),
      "steps": trainer.steps,
      "segments": segments,
      "batch_size": getattr(trainer, "batch_size", None),
      "training data": _fingerprint(getattr(trainer, "train", None)),
      "test data": _fingerprint(getattr(trainer, "test", None)),
      "chunk_size": chunk,
      "training state": state,
  }
  try:
    return json.loads(json.dumps(signature))
  except (TypeError, ValueError):
    raise TypeError(f"`settings` must map names to JSON values (numbers, strings, lists), "
                    f"got {dict(settings)!r}.") from None


def _first_difference(saved: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
  for name in dict.fromkeys([*now, *saved]):
    old, new = saved.get(name), now.get(name)
    if old == new:
      continue
    if name == "training state" and isinstance(old, dict) and isinstance(new, dict):
      leaf = next(k for k in dict.fromkeys([*new, *old]) if old.get(k) != new.get(k))
      return (f"training state (model or optimizer shape): leaf {leaf} was "
              f"{old.get(leaf)}, now {new.get(leaf)}")
    return f"{name}: was {old!r}, now {new!r}"
  return None


def _read_signature(directory: pathlib.Path) -> dict[str, Any]:
  path = directory / SIGNATURE
  try:
    signature = json.loads(path.read_text())
    chunk = signature["chunk_size"]
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
      raise ValueError(f"chunk_size {chunk!r}")
    return signature
  except (OSError, ValueError, TypeError, KeyError) as error:
    raise CheckpointError(
        f"The sweep signature {path} is missing or damaged ({type(error).__name__}); the "
        f"checkpoints beside it cannot be checked. Run without `resume` (the CLI's "
        "--resume) to start over.") from None


def _segments(folder: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
  """The complete checkpoints in ``folder``, oldest first."""
  if not folder.is_dir():
    return []
  found = [(int(m.group(1)), p) for p in folder.iterdir()
           if (m := _SEGMENT.fullmatch(p.name)) and p.is_dir()]
  return sorted(found)


def _sync(name: str) -> None:
  """Waits for every process (a no-op with one)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _remove_unfinished(directory: pathlib.Path) -> None:
  """Removes the temporary directories of saves that a killed run left (process 0)."""
  if jax.process_index() == 0:
    for unfinished in directory.glob("chunk_*/*.orbax-checkpoint-tmp*"):
      shutil.rmtree(unfinished, ignore_errors=True)
  _sync("regjax resumable_sweep: unfinished saves removed")


def _start_fresh(directory: pathlib.Path, signature: Mapping[str, Any]) -> None:
  """Removes old checkpoints and writes the new signature (process 0; all wait)."""
  if jax.process_index() == 0:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("chunk_*"):
      shutil.rmtree(old)
    temporary = directory / (SIGNATURE + ".tmp")
    temporary.write_text(json.dumps(signature, indent=1))
    os.replace(temporary, directory / SIGNATURE)
  _sync("regjax resumable_sweep: fresh start")


def resumable_sweep(
    trainer: Any,
    grid: _sweep.Grid | Mapping[str, Any],
    *,
    seeds: int | Any = 1,
    directory: str | os.PathLike,
    segments: int = 4,
    resume: bool = False,
    settings: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> SweepResult:
  """Trains ``trainer`` over ``grid × seeds`` in segments, saving after each segment.

  Args:
    trainer: a :class:`regjax.Trainer` (or any object with its ``init``,
      ``advance``, ``evaluate`` and ``steps``); ``steps`` must divide by ``segments``.
    grid: the strengths, as for :func:`regjax.sweep`.
    seeds: an int ``n`` (seeds ``0..n-1``) or a list of seeds, as for
      :func:`regjax.sweep` (row key ``jax.random.key(seed)``).
    directory: where checkpoints go (created if needed); every process of a
      multi-process run must see the same directory.
    segments: number of equal stretches of steps; a checkpoint follows each.
    resume: continue from the newest checkpoints in ``directory`` if there are any
      (else start fresh, as without it); their signature must equal this run's.
    settings: JSON values of settings that change the result but that the trainer's
      callables hide, e.g. ``{"learning_rate": 1e-2, "method": "prox_l1"}``; they enter
      the signature.
    chunk_size: rows per compiled call, as for :func:`regjax.sweep`; None sizes chunks
      from the memory estimate of a segment, or on resume takes the saved run's.
    mesh: devices to shard the rows over, as for :func:`regjax.sweep`.
    progress: show a bar over segments.
    desc: label of the bar.

  Returns:
    A :class:`regjax.SweepResult`, as :func:`regjax.sweep` returns for ``trainer``.

  Raises:
    CheckpointError: ``resume`` found checkpoints of a different sweep (the message
      names the setting) or a damaged file.
  """
  start = time.perf_counter()
  if isinstance(grid, Mapping):
    grid = _sweep.grid(**grid)
  _checks.check_int("segments", segments)
  if trainer.steps % segments:
    raise ValueError(f"`segments` must be a positive int dividing steps={trainer.steps}, "
                     f"got {segments!r}.")
  directory = pathlib.Path(directory).absolute()
  seeds = _rows.check_seeds(seeds)
  plan = _rows.plan_rows(grid.names, grid.points, seeds, mesh)
  resuming = resume and any(_segments(c) for c in directory.glob("chunk_*"))
  saved = _read_signature(directory) if resuming else None
  if saved is not None and chunk_size is None:
    chunk_size = saved["chunk_size"]

  per_segment = trainer.steps // segments
  row_state = jax.eval_shape(
      trainer.init, {name: jax.ShapeDtypeStruct((), float) for name in plan.names},
      jax.random.key(0))

  def chunk_state(rows: int) -> Any:
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(
        (rows, *leaf.shape), leaf.dtype, sharding=plan.sharding), row_state)

  def compile_advance(rows: int) -> Any:
    advance = jax.jit(jax.vmap(lambda h, state: trainer.advance(h, state, per_segment)),
                      out_shardings=plan.sharding, donate_argnums=1)
    hparams = plan.with_chunk(rows).abstract_inputs()[0]
    return advance.lower(hparams, chunk_state(rows)).compile()

  if saved is not None:  # refuse another sweep's checkpoints before compiling anything
    now = _signature(trainer, grid, seeds, plan.with_chunk(chunk_size).chunk, segments,
                     dict(settings or {}), row_state)
    difference = _first_difference(saved, now)
    if difference is not None:
      raise CheckpointError(
          f"`resume`: {directory} holds checkpoints of a different sweep; {difference}. "
          "Resume with the same settings, or run without `resume` (the CLI's --resume) "
          "to start over there, or use another directory.")
  plan, advance = _rows.fit_chunks(plan, chunk_size, compile_advance)
  if saved is not None:
    _remove_unfinished(directory)
  else:
    _start_fresh(directory, _signature(trainer, grid, seeds, plan.chunk, segments,
                                       dict(settings or {}), row_state))

  order: list[str] = []

  def evaluate_row(hparams: Any, state: Any) -> Any:
    metrics = trainer.evaluate(hparams, state)
    order[:] = list(metrics)  # pytrees sort dict keys; keep the trainer's order
    return metrics

  init = jax.jit(jax.vmap(lambda h, s: trainer.init(h, jax.random.key(s))),
                 out_shardings=plan.sharding)
  evaluate = jax.jit(jax.vmap(evaluate_row), out_shardings=plan.sharding)
  bar = (_sweep._make_bar(plan.n_chunks * segments, desc or "segments", unit="segment")
         if progress else None)
  pieces = []
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      for i in range(plan.n_chunks):
        hparams, seed_keys = plan.inputs(i)
        folder = directory / f"chunk_{i:04d}"
        found = _segments(folder) if resuming else []
        done = found[-1][0] if found else 0
        state = load(found[-1][1], chunk_state(plan.chunk)) if found else init(
            hparams, seed_keys)
        if bar is not None:
          bar.update(done)
        for segment in range(done + 1, segments + 1):
          state = advance(hparams, state)
          save(folder / f"segment_{segment:04d}", state, checkpointer)
          if bar is not None:
            bar.update(1)
        pieces.append(evaluate(hparams, state))
      checkpointer.wait_until_finished()
  finally:
    if bar is not None:
      bar.close()
  metrics = plan.gather(pieces)
  metrics = {name: metrics[name] for name in order or sorted(metrics)}
  return plan.result(metrics, time.perf_counter() - start)
