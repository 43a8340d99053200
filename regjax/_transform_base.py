"""What every regjax gradient transformation shares: its state, its strengths, its mask.

The contract these helpers implement (strengths matched by path, schedules evaluated at
the transform's own counter, invalid traced strengths turned into NaN and schedule
rounding residues into 0 by :func:`regjax._checks.clean`, masks resolved once by
:func:`regjax._trees.resolve_mask`) is described in :mod:`regjax.transforms`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from regjax import _checks, _trees


class ScheduleState(NamedTuple):
  r"""State of a transform whose strengths may be schedules: the step count they are read at.

  :func:`regjax.proximal`, :func:`regjax.decoupled_weight_decay` and
  :func:`regjax.add_penalty_gradient` keep it (inside ``optax.masked``'s state when given a
  ``mask``).

  Examples:
    The strength ``1 - t/4`` is read at the state's count: the second update (``t = 1``)
    adds :math:`0.75 \cdot \nabla p^2 = 0.75 \cdot 2p`.

    >>> import jax.numpy as jnp, optax, regjax
    >>> schedule = optax.linear_schedule(1.0, 0.0, 4)
    >>> tx = regjax.add_penalty_gradient(regjax.penalties.l2_squared, schedule)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> state
    ScheduleState(count=Array(0, dtype=int32))
    >>> for _ in range(2):
    ...   updates, state = tx.update(jnp.zeros(1), state, params)
    >>> int(state.count), float(updates[0])
    (2, 1.5)
  """

  # shape=(), dtype=int32: steps taken so far. (The field shadows tuple.count, as in Optax.)
  count: jax.Array  # type: ignore[assignment]


def zero_count() -> jax.Array:
  return jnp.zeros([], jnp.int32)


def need_params(params: Any) -> None:
  if params is None:
    raise ValueError(
        "this transform needs the current parameters: call `update(updates, state, params)`."
    )


class Checked(NamedTuple):
  """A checked strength-like argument: its value, its residue tolerances, its name."""

  value: Any
  tolerances: Any
  name: str

  @classmethod
  def check(cls, name: str, value: Any) -> Checked:
    """Check ``value`` (see :func:`regjax._checks.check_number_tree`) and keep it."""
    return cls(value, _checks.check_number_tree(name, value), name)

  def at(self, count: jax.Array) -> Any:
    """The value at step ``count`` (schedules evaluated, traced values cleaned)."""
    return _checks.at_step(self.value, self.tolerances, count)

  def per_leaf(self, count: jax.Array, tree: Any) -> Any:
    """:meth:`at`, as one value per leaf of ``tree``, matched by path."""
    return _trees.broadcast_strength(self.at(count), tree, self.name)

  def match(self, tree: Any) -> Any:
    """The value laid out like ``tree`` (see :func:`regjax._trees.broadcast_strength`);
    raises unless it matches ``tree`` by path and each leaf's shape broadcasts to its
    parameter's (what ``init`` checks)."""
    matched = _trees.broadcast_strength(self.value, tree, self.name)

    def check(path, leaf, lam):
      if _trees.is_leaf(leaf) or lam is None:
        return
      if _checks.is_schedule(lam):
        shape = jax.eval_shape(lam, zero_count()).shape
      else:
        shape = jnp.shape(lam)
      target = jnp.shape(leaf)
      try:
        ok = jnp.broadcast_shapes(shape, target) == target
      except ValueError:
        ok = False
      if not ok:
        where = _trees.show_path(_trees.path_names(path))
        raise ValueError(
            f"`{self.name}` must be a scalar or broadcast to its parameter's shape; for "
            f"{where} of shape {target} it has shape {shape}.")

    jax.tree_util.tree_map_with_path(check, tree, matched, is_leaf=_trees.is_leaf)
    return matched


def schedule_init(strength: Checked) -> Callable[[Any], ScheduleState]:
  """``init`` of a transform whose only state is the step counter for its schedules."""

  def init_fn(params):
    _checks.check_float_params("params", params)
    strength.match(params)
    return ScheduleState(count=zero_count())

  return init_fn


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
