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
``import regjax`` imports neither flax nor the sweep engine.
"""

from __future__ import annotations

from regjax import _lazy, masks, metrics, optimizers, penalties, prox, transforms
from regjax.masks import by_path, per_layer
from regjax.optimizers import adamw, prox_adam, prox_sgd
from regjax.transforms import (
    add_penalty_gradient,
    decoupled_weight_decay,
    orthogonality,
    preconditioned_proximal,
    project,
    proximal,
)

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
    "progress_callback": ("regjax.experiment.progress", "progress_callback"),
    "SweepResult": ("regjax.experiment.results", "SweepResult"),
    "concat_results": ("regjax.experiment.results", "concat"),
    "Trainer": ("regjax.experiment.trainer", "Trainer"),
}


__getattr__, __dir__ = _lazy.attach("regjax", _LAZY, globals())


__all__ = [
    "Grid",
    "SweepResult",
    "Trainer",
    "add_penalty_gradient",
    "adamw",
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
    "preconditioned_proximal",
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
    "zip_grid",
]
