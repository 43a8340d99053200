"""Type aliases for the values users pass to regjax.

These name what an argument accepts, for readers, IDEs and type checkers. A pytree
cannot be described precisely by Python's type system, so the aliases that admit one
(:data:`Strength`, :data:`Mask`, :data:`Params`) are as permissive as ``Any`` to a
checker; their names and this page are the documentation.

- :data:`ArrayLike`: an array, or a value JAX turns into one (a NumPy array, a Python or
  NumPy scalar): ``jax.typing.ArrayLike`` under a short name.
- :data:`Scalar`: a number: ``float``, ``int``, a NumPy or JAX scalar (possibly traced).
- :data:`Schedule`: an Optax schedule ``step -> value``, e.g.
  ``optax.linear_schedule(1e-3, 0.0, 1000)``.
- :data:`ScalarOrSchedule`: either; what Optax calls ``ScalarOrSchedule``.
- :data:`Strength`: a :data:`ScalarOrSchedule`, an array that broadcasts against a
  parameter (a per-coordinate strength), or a pytree of those matching the parameters
  by path (per-layer strengths, see :func:`regjax.per_layer`).
- :data:`Mask`: Optax's mask convention: ``None`` (every leaf), a pytree of bools with
  the parameters' paths or a prefix of them, or a callable ``params -> such a tree``.
- :data:`Params`: a pytree of arrays (a dict, an ``nnx.State``, an Equinox module, ...).
- :data:`PyTree`: any pytree (nested tuples, lists, dicts, NamedTuples, ... of arrays): a
  training state, a batch, a checkpoint's contents.
- :data:`PRNGKey`: a JAX PRNG key, ``jax.random.key(0)`` (or the legacy
  ``jax.random.PRNGKey(0)``), as the stochastic functions of :mod:`regjax.nn` take first.
- :data:`Activation`: an elementwise nonlinearity ``array -> array``, e.g. ``jax.nn.relu``.

Examples:
  >>> import optax
  >>> from regjax.typing import Strength
  >>> strength: Strength = optax.linear_schedule(1e-3, 0.0, 100)
  >>> callable(strength)
  True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import jax

__all__ = [
    "Activation",
    "ArrayLike",
    "Mask",
    "PRNGKey",
    "Params",
    "PyTree",
    "Scalar",
    "ScalarOrSchedule",
    "Schedule",
    "Strength",
]

ArrayLike: TypeAlias = jax.typing.ArrayLike
"""An array or a value JAX turns into one: ``jax.Array``, NumPy array, Python or NumPy scalar."""

Scalar: TypeAlias = ArrayLike
"""A number: ``float``, ``int``, or a NumPy/JAX scalar (traced values included)."""

Schedule: TypeAlias = Callable[[ArrayLike], ArrayLike]
"""An Optax schedule: a function of the step count returning the value at that step."""

ScalarOrSchedule: TypeAlias = Scalar | Schedule
"""A number or a schedule, as Optax's ``ScalarOrSchedule``."""

Params: TypeAlias = Any
"""A pytree of arrays: the parameters (or updates) a transform sees."""

PyTree: TypeAlias = Any
"""Any pytree: nested tuples, lists, dicts, NamedTuples (or other registered nodes) of leaves."""

Strength: TypeAlias = ScalarOrSchedule | jax.Array | Params
"""A number, schedule, broadcastable array, or a pytree of those matching the parameters."""

Mask: TypeAlias = None | Params | Callable[[Params], Params]
"""Optax's mask convention: None, a bool tree (or prefix of one), or a callable."""

PRNGKey: TypeAlias = jax.Array
"""A JAX PRNG key: ``jax.random.key(seed)`` (or the legacy ``jax.random.PRNGKey(seed)``)."""

Activation: TypeAlias = Callable[[jax.Array], jax.Array]
"""An elementwise nonlinearity, ``array -> array`` of the same shape (``jax.nn.relu``, ...)."""
