"""regjax: regularizers for neural networks in JAX.

Pure functions (:mod:`regjax.prox`, :mod:`regjax.penalties`), Optax gradient
transformations built on them (:mod:`regjax.transforms`, :mod:`regjax.optimizers`), and
:func:`regjax.sweep`, which trains a whole grid of strengths as one vmapped computation.
"""

from regjax import (
    checkpoint,
    data,
    gates,
    masks,
    metrics,
    models,
    nnx,
    penalties,
    prox,
    pruning,
    stochastic,
    transforms,
)
from regjax._results import SweepResult
from regjax._results import concat as concat_results
from regjax._sweep import Grid, grid, progress_callback, sweep, zip_grid
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

__version__ = "0.1.0"

__all__ = [
    "Grid",
    "SweepResult",
    "add_penalty_gradient",
    "adamw",
    "by_path",
    "checkpoint",
    "concat_results",
    "data",
    "decoupled_weight_decay",
    "gates",
    "grid",
    "masks",
    "metrics",
    "models",
    "nnx",
    "orthogonality",
    "penalties",
    "per_layer",
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
