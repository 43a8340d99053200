"""What every regjax gradient transformation shares: its state, its strengths, its mask.

The contract these helpers implement (strengths matched by path, schedules evaluated at
the transform's own counter, negative or NaN traced strengths turned into NaN, masks
resolved once by :func:`regjax._trees.resolve_mask`) is described in
:mod:`regjax.transforms`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from regjax import _checks, _trees

ProxFn = Callable[[jax.Array, jax.Array], jax.Array]
DEFAULT_MASK = _trees.MATRICES  # leaves with ndim >= 2; not callable (inject_hyperparams)


class ScheduleState(NamedTuple):
  """State of a transform whose strengths may be schedules."""

  count: jax.Array  # shape=(), dtype=int32: steps taken so far.


def zero_count() -> jax.Array:
  return jnp.zeros([], jnp.int32)


def need_params(params: Any) -> None:
  if params is None:
    raise ValueError(
        "this transform needs the current parameters: call `update(updates, state, params)`."
    )


def schedule_init(strength: Any, name: str = "strength") -> Callable[[Any], ScheduleState]:
  """``init`` of a transform whose only state is the step counter for its schedules."""

  def init_fn(params):
    _checks.check_float_params("params", params)
    _trees.broadcast_strength(strength, params, name)
    return ScheduleState(count=zero_count())

  return init_fn


def strengths_at(strength: Any, count: jax.Array, tree: Any, name: str = "strength") -> Any:
  """The strength (schedules evaluated at ``count``) as one value per leaf of ``tree``,
  matched by path; negative or NaN values become NaN (see :mod:`regjax.transforms`)."""
  resolved = _trees.broadcast_strength(_checks.resolve_schedule(strength, count), tree, name)
  return _trees.nan_if_negative(resolved)


def masked_transform(init_fn: Callable[..., Any], update_fn: Callable[..., Any],
                     mask: Any = None) -> optax.GradientTransformationExtraArgs:
  """The transform, wrapped in ``optax.masked`` with regjax's one mask resolver."""
  transform = optax.GradientTransformationExtraArgs(init_fn, update_fn)
  if mask is None:
    return transform
  return optax.masked(transform, functools.partial(_trees.resolve_mask, mask))


def leafwise(fn: Callable[..., Any], updates: Any, *trees: Any) -> Any:
  """Map ``fn`` over leaves, passing masked-out (``MaskedNode``/``None``) leaves through."""

  def leaf(u, *rest):
    return u if _trees.is_leaf(u) else fn(u, *rest)

  return jax.tree.map(leaf, updates, *trees, is_leaf=_trees.is_leaf)
