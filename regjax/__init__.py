"""regjax: regularizers for neural networks in JAX.

Pure functions (:mod:`regjax.prox`, :mod:`regjax.penalties`), Optax gradient
transformations built on them (:mod:`regjax.transforms`, :mod:`regjax.optimizers`), and
the tools to sweep their strengths as one vmapped computation.
"""

from regjax import masks, metrics, penalties, prox, transforms
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
    "add_penalty_gradient",
    "adamw",
    "by_path",
    "decoupled_weight_decay",
    "masks",
    "metrics",
    "orthogonality",
    "penalties",
    "per_layer",
    "preconditioned_proximal",
    "project",
    "prox",
    "prox_adam",
    "prox_sgd",
    "proximal",
    "transforms",
]
