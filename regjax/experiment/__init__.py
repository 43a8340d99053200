"""The experiment harness: the outer layer of regjax (core ← nn ← experiment).

:func:`sweep` trains every point of a :func:`grid` (and every seed) as one
``jit(vmap(...))`` through the one sweep loop (:mod:`loop`: rows laid out by :mod:`rows`,
segments, streaming, checkpoints, the hook between segments); :class:`Trainer` turns a
Flax NNX model and an optimizer built from the hyperparameters into a segmented run;
:class:`SweepResult` holds the rows as a pandas table and the curves as an xarray
Dataset (:mod:`results`, :mod:`curves`); :mod:`streaming` reads host batches;
:mod:`checkpoint` saves and resumes with Orbax; :mod:`data` holds the embedded digits;
:mod:`cli` is ``regjax sweep``; :mod:`adaptive` is the host-side policy of an adaptive
λ search (spaces, objectives, refills) and :func:`adaptive_sweep` runs it on the loop.

Names load on first use: a sweep of a plain JAX function imports neither flax (the
Trainer's) nor orbax (the checkpoints').

Examples:
  >>> import sys
  >>> from regjax import experiment
  >>> experiment.sweep.__module__
  'regjax.experiment.sweeps'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regjax import _lazy

if TYPE_CHECKING:
  # What `__getattr__` loads on first use, spelled out for type checkers and IDEs; a test
  # (tests/test_api_standard.py) keeps these imports and `_LAZY` in step.
  from regjax.experiment import (
    adaptive,
    checkpoint,
    curves,
    data,
    grids,
    loop,
    progress,
    results,
    rows,
    search,
    streaming,
    sweeps,
    trainer,
  )
  from regjax.experiment.grids import Grid, grid, zip_grid
  from regjax.experiment.loop import Refill, SegmentedRun, SegmentEnd, Stop
  from regjax.experiment.progress import progress_callback
  from regjax.experiment.results import SweepResult
  from regjax.experiment.results import concat as concat_results
  from regjax.experiment.results import load as load_result
  from regjax.experiment.search import adaptive_sweep
  from regjax.experiment.sweeps import sweep
  from regjax.experiment.trainer import Trainer, TrainState

__all__ = [
    "Grid",
    "Refill",
    "SegmentEnd",
    "SegmentedRun",
    "Stop",
    "SweepResult",
    "TrainState",
    "Trainer",
    "adaptive",
    "adaptive_sweep",
    "checkpoint",
    "concat_results",
    "curves",
    "data",
    "grid",
    "grids",
    "load_result",
    "loop",
    "progress",
    "progress_callback",
    "results",
    "rows",
    "search",
    "streaming",
    "sweep",
    "sweeps",
    "trainer",
    "zip_grid",
]

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "Grid": ("regjax.experiment.grids", "Grid"),
    "Refill": ("regjax.experiment.loop", "Refill"),
    "SegmentEnd": ("regjax.experiment.loop", "SegmentEnd"),
    "SegmentedRun": ("regjax.experiment.loop", "SegmentedRun"),
    "Stop": ("regjax.experiment.loop", "Stop"),
    "SweepResult": ("regjax.experiment.results", "SweepResult"),
    "TrainState": ("regjax.experiment.trainer", "TrainState"),
    "Trainer": ("regjax.experiment.trainer", "Trainer"),
    "adaptive_sweep": ("regjax.experiment.search", "adaptive_sweep"),
    "concat_results": ("regjax.experiment.results", "concat"),
    "grid": ("regjax.experiment.grids", "grid"),
    "load_result": ("regjax.experiment.results", "load"),
    "progress_callback": ("regjax.experiment.progress", "progress_callback"),
    "sweep": ("regjax.experiment.sweeps", "sweep"),
    "zip_grid": ("regjax.experiment.grids", "zip_grid"),
    **{name: (f"regjax.experiment.{name}", None) for name in (
        "adaptive", "checkpoint", "curves", "data", "grids", "loop", "progress", "results",
        "rows", "search", "streaming", "sweeps", "trainer")},
}


__getattr__, __dir__ = _lazy.attach("regjax.experiment", _LAZY, globals())
