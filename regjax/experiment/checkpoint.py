"""Checkpoints of a segmented sweep: ``regjax.sweep(..., checkpoint=DIR)`` saves and resumes.

The sweep loop (:mod:`regjax.experiment.loop`) saves each chunk's stacked rows after every
segment, through Orbax, as one checkpoint of two items: ``state``, the training state
(whatever pytree the run's ``init`` builds: parameters, optimizer states, step, data key,
...), and ``host``, JSON: the rows' hyperparameters (exact, in their own dtype, not the
float32 the program sees) and seeds, whether the loop's hook stopped the chunk, and the
hook's own state (``between.state_dict()``, e.g. an adaptive search's policy). A sweep
started again over the same directory goes on from the newest checkpoint of each chunk.
Because every segment runs the same compiled program and the minibatch of step ``t``
depends only on ``t``, a resumed sweep is bit-identical to an uninterrupted one, its
hyperparameter columns included. This module is imported (and Orbax with it) only when
``checkpoint=`` is given.

Layout of ``directory``::

  sweep.json                        the run's signature, written when a fresh run starts
  chunk_0000/segment_0001/state/    Orbax checkpoints, one per chunk and segment: arrays
  chunk_0000/segment_0001/host/     ... and the host's JSON, saved with them

Safety:

* Orbax writes a checkpoint (both items) into a temporary directory and renames it when
  it is complete, so a process killed during a save leaves the previous segment intact
  (the unfinished temporary directory is ignored and removed by the next run), and the
  host's JSON always belongs to the arrays beside it.
* ``sweep.json`` records every setting that changes the result: the grid, seeds, steps,
  segments, batch size, chunk size, a SHA-256 of the training and test arrays, the
  shapes and dtypes of one row's training state (so a different model shape is caught),
  the checkpoint format (:data:`FORMAT`), and the caller's ``settings`` (e.g. a
  learning rate or method the run's callables hide). A resume whose signature differs
  is refused with a :class:`CheckpointError` naming the setting.
* A damaged checkpoint or signature file raises :class:`CheckpointError` naming the file
  and how to recover, and nothing else: the "Event loop is closed" reports that Orbax's
  unfinished reads of a damaged checkpoint leave behind are dropped.

Orbax rather than one msgpack file per segment: each process writes only the shards of
its own devices (no gather of the whole state to one host) and restores straight into
the mesh's sharding, which a multi-process sweep needs; it also saves in the background
while the next segment trains.

Examples:
  >>> import pathlib, tempfile
  >>> import jax.numpy as jnp
  >>> from regjax.experiment import checkpoint
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "tree"
  >>> checkpoint.save(path, {"w": jnp.arange(3.0)})
  >>> checkpoint.load(path, {"w": jnp.zeros(3)})["w"].tolist()
  [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import re
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from regjax import _lazy
from regjax.experiment.grids import Grid, GridLike
from regjax.experiment.results import SweepResult
from regjax.typing import PyTree

if TYPE_CHECKING:
  # The deprecated name (see `_DEPRECATED`), as type checkers should see it.
  from regjax.experiment.checkpoint import _resumable_sweep as resumable_sweep  # noqa: F401
  from regjax.experiment.loop import SegmentedRun

__all__ = ["FORMAT", "SIGNATURE", "CheckpointError", "Store", "load", "save"]

SIGNATURE = "sweep.json"
"""The file, beside the checkpoints, that records every setting of the run (a resume must match)."""
FORMAT = 2
"""The layout of a segment's checkpoint, in the signature: 2 holds ``state`` and ``host``
items (1, before, held the arrays alone; a resume of such a directory is refused)."""
_SEGMENT = re.compile(r"segment_(\d{4})")


class CheckpointError(ValueError):
  """A checkpoint that cannot be resumed: another sweep's, or a damaged file.

  A ``ValueError``; the message names the setting that differs or the file that cannot
  be read, and how to go on (the ``regjax sweep`` command line prints it and exits with
  status 2).

  Examples:
    >>> import pathlib, tempfile
    >>> from regjax.experiment import checkpoint
    >>> directory = pathlib.Path(tempfile.mkdtemp())
    >>> (directory / "chunk_0000" / "segment_0001").mkdir(parents=True)  # no sweep.json
    >>> try:
    ...   checkpoint.Store(directory, resume=True)
    ... except checkpoint.CheckpointError as error:
    ...   print(str(error).split(";")[0].replace(str(directory), "DIR"))
    The sweep signature DIR/sweep.json is missing or damaged (FileNotFoundError)
  """


def save(path: str | os.PathLike, state: PyTree,
         checkpointer: ocp.StandardCheckpointer | None = None) -> None:
  """Writes a pytree of arrays to the directory ``path`` (atomically: a temporary
  directory renamed when complete).

  Args:
    path: the checkpoint directory; it must not exist.
    state: a pytree of ``jax.Array`` (sharded arrays write only local shards).
    checkpointer: an ``orbax.checkpoint.StandardCheckpointer`` whose save may still be
      running in the background when this returns; None saves synchronously.

  Examples:
    >>> import pathlib, tempfile
    >>> import jax.numpy as jnp
    >>> from regjax.experiment import checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "step_10"
    >>> checkpoint.save(path, {"w": jnp.ones(2), "step": jnp.array(10)})
    >>> path.is_dir()
    True
  """
  path = pathlib.Path(path).absolute()
  if checkpointer is None:
    with ocp.StandardCheckpointer() as synchronous:
      synchronous.save(path, state)
      synchronous.wait_until_finished()
  else:
    checkpointer.save(path, state)


def _is_closed_loop_report(report: Any) -> bool:
  value = getattr(report, "exc_value", None)
  return isinstance(value, RuntimeError) and str(value) == "Event loop is closed"


def _drop_closed_loop_reports() -> None:
  """After a failed restore, Orbax's other reads of the damaged checkpoint finish on
  TensorStore threads and report ``RuntimeError('Event loop is closed')`` through
  ``sys.unraisablehook`` (its loop is gone): noise after a clean :class:`CheckpointError`.
  Drops exactly those reports; every other one goes to the hook that was installed."""
  previous = sys.unraisablehook
  if getattr(previous, "_regjax_drops_closed_loop", False):
    return

  def hook(report: Any) -> None:
    if not _is_closed_loop_report(report):
      previous(report)

  hook._regjax_drops_closed_loop = True  # type: ignore[attr-defined]
  sys.unraisablehook = hook


def _abstract(like: PyTree) -> PyTree:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      like)


@contextlib.contextmanager
def _reading(path: pathlib.Path) -> Iterator[None]:
  """Turns whatever Orbax raises while reading ``path`` into a :class:`CheckpointError`."""
  try:
    yield
  except Exception as error:  # noqa: BLE001 - Orbax and TensorStore raise many kinds.
    _drop_closed_loop_reports()
    message = str(error).splitlines()[0][:300] if str(error) else ""
    raise CheckpointError(
        f"Checkpoint {path} cannot be read ({type(error).__name__}: {message}). Delete "
        f"{path} to resume from the segment before it, or run without `resume` (the "
        "CLI's --resume) to start over.") from error


def load(path: str | os.PathLike, like: PyTree) -> PyTree:
  """Reads a checkpoint written by :func:`save` into the structure, shapes, dtypes and
  shardings of ``like`` (arrays or ``jax.ShapeDtypeStruct``).

  Args:
    path: the checkpoint directory.
    like: a pytree of the structure saved, whose leaves give each array's shape, dtype
      and sharding (arrays, or ``jax.ShapeDtypeStruct`` to allocate nothing first).

  Returns:
    The saved pytree, as ``jax.Array`` leaves placed as ``like``'s.

  Raises:
    CheckpointError: the checkpoint is missing or damaged.

  Examples:
    >>> import pathlib, tempfile
    >>> import jax, jax.numpy as jnp
    >>> from regjax.experiment import checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "state"
    >>> checkpoint.save(path, {"w": jnp.arange(3.0)})
    >>> checkpoint.load(path, {"w": jax.ShapeDtypeStruct((3,), jnp.float32)})["w"].tolist()
    [0.0, 1.0, 2.0]
  """
  path = pathlib.Path(path).absolute()
  with _reading(path), ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(path, _abstract(like))


def _segment_args(state: Any, host: Any) -> Any:
  """Orbax's arguments for a segment: the arrays, and the host's JSON (None: restore)."""
  restoring = host is None
  return ocp.args.Composite(
      state=ocp.args.StandardRestore(_abstract(state)) if restoring
      else ocp.args.StandardSave(state),
      host=ocp.args.JsonRestore() if restoring else ocp.args.JsonSave(host))


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


class Store:
  """The checkpoints of one sweep in ``directory``: signature, saves and restores.

  The sweep loop makes one per ``sweep(..., checkpoint=directory)`` call: it reads the
  saved chunk size (:attr:`saved_chunk_size`), then :meth:`open` checks (on resume) or
  writes (fresh) the signature before anything trains, :meth:`restore` finds a chunk's
  newest segment, :meth:`save` writes one in the background, :meth:`close` waits.

  Args:
    directory: where checkpoints go (created if needed); every process of a
      multi-process run must see the same directory.
    resume: go on from the checkpoints found there, if any (else start fresh: old
      checkpoints in ``directory`` are removed).
    settings: JSON values of settings that change the result but that the run's
      callables hide; they enter the signature.

  Examples:
    >>> import pathlib, tempfile
    >>> import jax.numpy as jnp
    >>> from regjax.experiment import checkpoint
    >>> directory = pathlib.Path(tempfile.mkdtemp())
    >>> store = checkpoint.Store(directory, resume=False)  # a fresh run
    >>> store.open({"chunk_size": 2})  # (the loop passes the run's whole signature)
    >>> store.save(0, 1, {"w": jnp.ones(2)})  # chunk 0 after segment 1, in the background
    >>> store.close()
    >>> again = checkpoint.Store(directory, resume=True)  # the same directory, resumed
    >>> again.saved_chunk_size, again.restore(0, {"w": jnp.zeros(2)})[0]
    (2, 1)
  """

  def __init__(self, directory: str | os.PathLike, *, resume: bool,
               settings: Mapping[str, object] | None = None):
    self.directory = pathlib.Path(directory).absolute()
    self.settings = dict(settings or {})
    self.resuming = bool(resume) and any(_segments(c) for c in self.directory.glob("chunk_*"))
    self._saved = self._read_signature() if self.resuming else None
    self._checkpointer: Any = None

  @property
  def saved_chunk_size(self) -> int | None:
    """The chunk size of the run being resumed, or None."""
    return None if self._saved is None else int(self._saved["chunk_size"])

  def _read_signature(self) -> dict[str, Any]:
    path = self.directory / SIGNATURE
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

  def signature(self, fn: object, grid: Grid, seeds: Sequence[int], lengths: Sequence[int],
                chunk: int, row_state: PyTree) -> dict[str, Any]:
    """Every setting of a run that changes its result, as JSON values."""
    state = {jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)]
             for path, leaf in jax.tree_util.tree_leaves_with_path(row_state)}
    signature = {
        **{f"settings[{name!r}]": value for name, value in self.settings.items()},
        "grid": {name: values.tolist() for name, values in grid.points.items()},
        "seeds": list(seeds), "steps": int(sum(lengths)), "segments": len(lengths),
        "batch_size": getattr(fn, "batch_size", None),
        "training data": _fingerprint(getattr(fn, "train", None)),
        "test data": _fingerprint(getattr(fn, "test", None)),
        "chunk_size": chunk, "training state": state, "checkpoint format": FORMAT,
    }
    try:
      return json.loads(json.dumps(signature))
    except (TypeError, ValueError):
      raise TypeError(f"`settings` must map names to JSON values (numbers, strings, lists), "
                      f"got {self.settings!r}.") from None

  def check(self, signature: Mapping[str, Any]) -> None:
    """On resume, refuses another sweep's checkpoints, naming the first difference."""
    if self._saved is None:
      return
    difference = _first_difference(self._saved, signature)
    if difference is not None:
      raise CheckpointError(
          f"`resume`: {self.directory} holds checkpoints of a different sweep; {difference}. "
          "Resume with the same settings, or run without `resume` (the CLI's --resume) "
          "to start over there, or use another directory.")

  def open(self, signature: Mapping[str, Any]) -> None:
    """Starts saving: removes unfinished saves (resume) or old checkpoints (fresh run) and
    writes the signature; process 0 writes, every process waits."""
    if jax.process_index() == 0:
      if self.resuming:
        for unfinished in self.directory.glob("chunk_*/*.orbax-checkpoint-tmp*"):
          shutil.rmtree(unfinished, ignore_errors=True)
      else:
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in self.directory.glob("chunk_*"):
          shutil.rmtree(old)
        temporary = self.directory / (SIGNATURE + ".tmp")
        temporary.write_text(json.dumps(signature, indent=1))
        os.replace(temporary, self.directory / SIGNATURE)
    _sync("regjax sweep: checkpoint directory ready")
    self._checkpointer = ocp.AsyncCheckpointer(ocp.CompositeCheckpointHandler())

  def restore(self, chunk: int, like: PyTree) -> tuple[int, PyTree, Any] | None:
    """``(segments done, arrays, host JSON)`` of chunk ``chunk``'s newest checkpoint, or
    None; the arrays take the structure, dtypes and shardings of ``like``."""
    found = _segments(self.directory / f"chunk_{chunk:04d}") if self.resuming else []
    if not found:
      return None
    path = found[-1][1]
    with _reading(path), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
      tree = checkpointer.restore(path, args=_segment_args(like, None))
    return found[-1][0], tree["state"], tree["host"]

  def save(self, chunk: int, segment: int, tree: PyTree,
           host: Mapping[str, Any] | None = None) -> None:
    """Saves chunk ``chunk`` after segment ``segment`` (in the background): the arrays of
    ``tree`` and the JSON values of ``host`` (none: ``{}``), in one checkpoint."""
    path = self.directory / f"chunk_{chunk:04d}" / f"segment_{segment:04d}"
    self._checkpointer.save(path, args=_segment_args(tree, dict(host or {})))

  def close(self) -> None:
    """Waits for the last saves and releases Orbax's resources."""
    if self._checkpointer is not None:
      checkpointer, self._checkpointer = self._checkpointer, None
      try:
        checkpointer.wait_until_finished()
      finally:
        checkpointer.close()


def _resumable_sweep(trainer: SegmentedRun, grid: GridLike, *, directory: str | os.PathLike,
                     segments: int = 4, resume: bool = False,
                     **options: Any) -> SweepResult:
  """Deprecated: ``regjax.sweep(trainer, grid, checkpoint=directory, segments=segments,
  resume=resume, ...)``, which it calls with the same results, bit for bit.

  Reached as ``regjax.checkpoint.resumable_sweep``, which warns on every access (it is
  no longer in ``__all__``). Note the default ``resume=False`` here (start over,
  removing old checkpoints), where ``sweep(checkpoint=...)`` resumes by default.

  Args:
    trainer: a segmented run (a :class:`regjax.Trainer`).
    grid: the grid, as for :func:`regjax.sweep`.
    directory: where checkpoints go.
    segments: number of segments (the last ones may be one step shorter).
    resume: continue from the checkpoints in ``directory``.
    **options: every other argument of :func:`regjax.sweep` (``seeds``, ``settings``,
      ``chunk_size``, ``mesh``, ``progress``, ``desc``).

  Returns:
    The :class:`regjax.SweepResult`.
  """
  from regjax.experiment import sweeps

  return sweeps.sweep(trainer, grid, checkpoint=directory, segments=segments, resume=resume,
                      **options)


# Deprecated names, still reachable with a warning on every access (see regjax._lazy).
_DEPRECATED: dict[str, tuple[str, str, str]] = {
    "resumable_sweep": (
        "regjax.experiment.checkpoint", "_resumable_sweep",
        "regjax.sweep(fn, grid, checkpoint=directory, segments=..., resume=...)"),
}

if not TYPE_CHECKING:
  __getattr__, __dir__ = _lazy.attach(__name__, {}, globals(), _DEPRECATED)
