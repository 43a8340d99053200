"""Sparsity and structure measurements on parameter trees; all jit- and vmap-safe."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from regjax import _trees, masks, penalties
from regjax.prox import Axis, _group_axes


def zero_fraction(tree: Any, mask: Any = None) -> jax.Array:
  """Fraction of entries that are exactly 0.0 over the selected leaves.

  Args:
    tree: a pytree of arrays.
    mask: Optax-style mask (tree of bools, prefix of one, or callable); None counts
      every leaf.

  Returns:
    A float32 scalar in [0, 1] (0 when nothing is selected).
  """
  leaves = _trees.selected_leaves(mask, tree)
  zeros = sum((jnp.sum(leaf == 0) for leaf in leaves), jnp.zeros((), jnp.int32))
  total = sum(jnp.size(leaf) for leaf in leaves)
  return zeros.astype(jnp.float32) / max(total, 1)


def zero_fraction_per_leaf(tree: Any) -> Any:
  """A tree like ``tree`` holding each leaf's fraction of exact zeros."""
  return jax.tree.map(lambda leaf: jnp.mean((leaf == 0).astype(jnp.float32)), tree)


def zero_groups(x: ArrayLike, axis: Axis = None) -> jax.Array:
  """Number of groups (default: output units, see :mod:`regjax.prox`) that are all zero."""
  x = jnp.asarray(x)
  return jnp.sum(jnp.all(x == 0, axis=_group_axes(x, axis)))


def dead_unit_fraction(tree: Any, mask: Any = masks.matrices, axis: Axis = None) -> jax.Array:
  """Fraction of units whose incoming weights are all exactly zero, over selected kernels.

  Args:
    tree: a pytree of arrays.
    mask: Optax-style mask; default every leaf with ``ndim >= 2``.
    axis: the axes a unit spans (default all but the last: Flax output units).

  Returns:
    A float32 scalar in [0, 1].
  """
  leaves = _trees.selected_leaves(mask, tree)
  dead = sum((zero_groups(leaf, axis) for leaf in leaves), jnp.zeros((), jnp.int32))
  total = sum(
      jnp.size(leaf) // max(1, _group_size(leaf, axis)) for leaf in leaves
  )
  return dead.astype(jnp.float32) / max(total, 1)


def _group_size(x: jax.Array, axis: Axis) -> int:
  size = 1
  for a in _group_axes(x, axis):
    size *= x.shape[a]
  return size


def orthogonality_error(x: ArrayLike, mode: str = "auto") -> jax.Array:
  r"""Root-mean-square deviation of the Gram from the identity, :math:`\|G - I\|_F/\sqrt{k}`.

  ``G`` is the ``k × k`` Gram chosen by ``mode`` (see :mod:`regjax.penalties`); 0 for a
  matrix with orthonormal columns (``mode="columns"``).
  """
  soft = penalties.soft_orthogonality(x, mode)
  size = jax.eval_shape(lambda m: penalties.gram(m, mode), jnp.asarray(x)).shape[0]
  return jnp.sqrt(soft / size)


def layer_norms(tree: Any) -> dict[str, jax.Array]:
  """L2 (Frobenius) norm of every leaf, keyed by its ``/``-joined path."""
  return {
      masks.path_of(path): jnp.linalg.norm(jnp.ravel(leaf))
      for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
  }
