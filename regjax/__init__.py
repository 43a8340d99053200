"""regjax: regularizers for neural networks in JAX.

Three layers, imported one way only (core ← nn ← experiment, checked by import-linter):

- the core, imported here: pure functions (:mod:`regjax.prox`, :mod:`regjax.penalties`),
  Optax gradient transformations built on them (:mod:`regjax.transforms`,
  :mod:`regjax.optimizers`), masks and metrics. It needs jax and optax, not flax.
- :mod:`regjax.nn`: Flax NNX layers (stochastic regularizers, L0 gates, pooling,
  pruning and example models).
- :mod:`regjax.experiment`: the harness (sweeps, results, the NNX ``Trainer``,
  checkpoints, data and the ``regjax sweep`` command line).

The names of the two outer layers that users reach from here (``regjax.sweep``,
``regjax.Trainer``, ``regjax.stochastic``, ...) are imported lazily, on first use, so
``import regjax`` imports neither flax nor the sweep engine; type checkers and IDEs see
them through the ``TYPE_CHECKING`` imports below. :mod:`regjax.typing` names what the
arguments accept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regjax import _lazy, masks, metrics, optimizers, penalties, prox, transforms, typing
from regjax.masks import by_path, per_layer
from regjax.optimizers import adamw, prox_adam, prox_sgd
from regjax.transforms import (
    add_penalty_gradient,
    decoupled_weight_decay,
    orthogonality,
    project,
    proximal,
)

if TYPE_CHECKING:
  # What `__getattr__` loads on first use, spelled out for type checkers and IDEs; a test
  # (tests/test_api_standard.py) keeps these imports and `_LAZY`/`_DEPRECATED` in step.
  from regjax import experiment, nn
  from regjax._proxgen import preconditioned_proximal as preconditioned_proximal
  from regjax.experiment import checkpoint, data
  from regjax.experiment.grids import Grid, grid, zip_grid
  from regjax.experiment.progress import progress_callback
  from regjax.experiment.results import SweepResult
  from regjax.experiment.results import concat as concat_results
  from regjax.experiment.search import adaptive_sweep
  from regjax.experiment.sweeps import sweep
  from regjax.experiment.trainer import Trainer
  from regjax.nn import gates, models, pooling, pruning, stochastic

# The one place the version is written: pyproject.toml reads it (`dynamic = ["version"]`).
__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "nn": ("regjax.nn", None),
    "experiment": ("regjax.experiment", None),
    "stochastic": ("regjax.nn.stochastic", None),
    "gates": ("regjax.nn.gates", None),
    "pooling": ("regjax.nn.pooling", None),
    "pruning": ("regjax.nn.pruning", None),
    "models": ("regjax.nn.models", None),
    "checkpoint": ("regjax.experiment.checkpoint", None),
    "data": ("regjax.experiment.data", None),
    "Grid": ("regjax.experiment.grids", "Grid"),
    "grid": ("regjax.experiment.grids", "grid"),
    "zip_grid": ("regjax.experiment.grids", "zip_grid"),
    "sweep": ("regjax.experiment.sweeps", "sweep"),
    "adaptive_sweep": ("regjax.experiment.search", "adaptive_sweep"),
    "progress_callback": ("regjax.experiment.progress", "progress_callback"),
    "SweepResult": ("regjax.experiment.results", "SweepResult"),
    "concat_results": ("regjax.experiment.results", "concat"),
    "Trainer": ("regjax.experiment.trainer", "Trainer"),
}


# Deprecated names, still reachable: name -> (module, attribute, what to use instead).
# They are not in `__all__` (nor `dir(regjax)`, which drives tab completion, so new code
# is not offered them), and every access warns; they are never cached in the module.
_DEPRECATED: dict[str, tuple[str, str, str]] = {
    "preconditioned_proximal": (
        "regjax._proxgen", "preconditioned_proximal",
        "regjax.prox_adam(learning_rate, strength, prox_fn, ...)"),
}

__getattr__, __dir__ = _lazy.attach("regjax", _LAZY, globals(), _DEPRECATED)


__all__ = [
    "Grid",
    "SweepResult",
    "Trainer",
    "add_penalty_gradient",
    "adamw",
    "adaptive_sweep",
    "by_path",
    "checkpoint",
    "concat_results",
    "data",
    "decoupled_weight_decay",
    "experiment",
    "gates",
    "grid",
    "masks",
    "metrics",
    "models",
    "nn",
    "optimizers",
    "orthogonality",
    "penalties",
    "per_layer",
    "pooling",
    "progress_callback",
    "project",
    "prox",
    "pruning",
    "prox_adam",
    "prox_sgd",
    "proximal",
    "stochastic",
    "sweep",
    "transforms",
    "typing",
    "zip_grid",
]
