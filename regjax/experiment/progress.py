"""Progress of a sweep: one bar over chunks or segments, and step reports from compiled loops.

:func:`bar` is the only progress bar of the harness (tqdm when installed, else one printed
line per update); the sweep loop draws it over chunks (a whole-run program) or over
segments (a segmented run). :func:`progress_callback` reports steps from inside a jitted
``lax.scan`` through ``jax.debug.callback``; ``sweep(progress=False)`` switches it off
while it traces, through :func:`step_progress`.

Examples:
  >>> from regjax.experiment import progress
  >>> with progress.step_progress(False):
  ...   progress.step_progress_enabled()
  False
  >>> progress.step_progress_enabled()
  True
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp

from regjax import _checks

__all__ = ["bar", "progress_callback", "step_progress", "step_progress_enabled"]

# Whether `progress_callback` stages its callback; `sweep(progress=False)` clears it while
# it traces the user's function. A ContextVar, so threads and nested sweeps each see theirs.
_STEP_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "regjax_step_progress", default=True)


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
    print(f"{self._desc}: {self.n}/{self._total} {self._unit}s, {elapsed:.1f} s elapsed, "
          f"ETA {eta:.1f} s", file=sys.stderr, flush=True)

  def close(self) -> None:
    pass


def bar(total: int, desc: str, unit: str, leave: bool = True) -> Any:
  """A progress bar on stderr with ``update(n)`` and ``close()``: tqdm's, else printed lines.

  Args:
    total: the count at completion.
    desc: the label.
    unit: what is counted (``"chunk"``, ``"segment"``, ``"step"``).
    leave: keep tqdm's bar on screen when closed.

  Returns:
    The bar.

  Examples:
    >>> import contextlib, io
    >>> from regjax.experiment import progress
    >>> with contextlib.redirect_stderr(io.StringIO()):
    ...   shown = progress.bar(2, "demo", "chunk")
    ...   shown.update(2)
    ...   shown.close()
    >>> shown.n
    2
  """
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
        self._bar = bar(self._total, self._desc, unit="step", leave=False)
      self._bar.update(step + 1 - self._bar.n)
      self._last = step
      if step >= self._total - 1:
        self._bar.close()
        self._bar = None


def progress_callback(step: jax.typing.ArrayLike, total_steps: int, *, every: int | None = None,
                      desc: str = "steps", enabled: bool = True) -> None:
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

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> import regjax
    >>> def body(x, t):
    ...   regjax.progress_callback(t, 3, enabled=False)
    ...   return x + 1.0, None
    >>> float(jax.lax.scan(body, 0.0, jnp.arange(3))[0])
    3.0
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
def step_progress(enabled: bool) -> Iterator[None]:
  """Within the block, :func:`progress_callback` reports only if ``enabled`` (while tracing).

  ``sweep(progress=False)`` traces the user's function inside ``step_progress(False)``, so
  the ``progress_callback`` calls in it stage nothing. The setting is a context variable:
  other threads, and the code after the block, keep theirs.

  Examples:
    >>> from regjax.experiment import progress
    >>> with progress.step_progress(False):
    ...   with progress.step_progress(True):
    ...     inner = progress.step_progress_enabled()
    ...   outer = progress.step_progress_enabled()
    >>> inner, outer, progress.step_progress_enabled()
    (True, False, True)
  """
  token = _STEP_PROGRESS.set(bool(enabled))
  try:
    yield
  finally:
    _STEP_PROGRESS.reset(token)


def step_progress_enabled() -> bool:
  """Whether :func:`progress_callback` reports in the current context (see :func:`sweep`).

  Examples:
    >>> from regjax.experiment import progress
    >>> progress.step_progress_enabled()  # on, unless inside `step_progress(False)`
    True
  """
  return _STEP_PROGRESS.get()
