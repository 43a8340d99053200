"""The experiment harness: the outer layer of regjax (core ← nn ← experiment).

:func:`sweep` trains every point of a :func:`grid` (and every seed) as one
``jit(vmap(...))``, its rows laid out by :mod:`rows`; :class:`Trainer` turns a Flax NNX
model and an optimizer built from the hyperparameters into the function a sweep runs;
:class:`SweepResult` prints, saves and plots the rows and their curves (:mod:`curves`);
:mod:`streaming` feeds a Trainer batches from the host; :mod:`checkpoint` resumes a
sweep; :mod:`data` holds the embedded digits; :mod:`cli` is ``regjax sweep``;
:mod:`adaptive` is the host-side policy of an adaptive λ search (spaces, objectives,
refills).
"""

from regjax.experiment import (
    adaptive,
    checkpoint,
    curves,
    data,
    results,
    rows,
    streaming,
    sweeps,
    trainer,
)
from regjax.experiment.results import SweepResult
from regjax.experiment.results import concat as concat_results
from regjax.experiment.sweeps import Grid, grid, progress_callback, sweep, zip_grid
from regjax.experiment.trainer import Trainer, TrainState

__all__ = [
    "Grid",
    "SweepResult",
    "TrainState",
    "Trainer",
    "adaptive",
    "checkpoint",
    "concat_results",
    "curves",
    "data",
    "grid",
    "progress_callback",
    "results",
    "rows",
    "streaming",
    "sweep",
    "sweeps",
    "trainer",
    "zip_grid",
]
