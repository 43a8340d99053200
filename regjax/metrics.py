"""Sparsity and structure measurements on parameter trees; all jit- and vmap-safe."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from regjax import _trees, masks, penalties
from regjax.prox import Axis, _group_axes
from regjax.typing import Mask, Params

__all__ = [
    "dead_unit_fraction",
    "layer_norms",
    "orthogonality_error",
    "zero_fraction",
    "zero_fraction_per_leaf",
    "zero_groups",
]


def zero_fraction(tree: Params, mask: Mask = None) -> jax.Array:
  """Fraction of entries that are exactly 0.0 over the selected leaves.

  Args:
    tree: a pytree of arrays.
    mask: Optax-style mask (tree of bools, prefix of one, or callable); None counts
      every leaf.

  Returns:
    A float32 scalar in [0, 1] (0 when nothing is selected).

  Examples:
    Two zeros in the kernel, four in the bias:

    >>> import jax.numpy as jnp
    >>> from regjax import masks
    >>> params = {"kernel": jnp.array([[0.0, 1.0], [0.0, 3.0]]), "bias": jnp.zeros(4)}
    >>> float(zero_fraction(params)), float(zero_fraction(params, mask=masks.matrices))
    (0.75, 0.5)
  """
  leaves = _trees.selected_leaves(mask, tree)
  zeros = sum((jnp.sum(leaf == 0) for leaf in leaves), jnp.zeros((), jnp.int32))
  total = sum(jnp.size(leaf) for leaf in leaves)
  return zeros.astype(jnp.float32) / max(total, 1)


def zero_fraction_per_leaf(tree: Params) -> Params:
  """A tree like ``tree`` holding each leaf's fraction of exact zeros.

  Examples:
    >>> import jax.numpy as jnp
    >>> params = {"kernel": jnp.array([[0.0, 1.0], [0.0, 3.0]]), "bias": jnp.zeros(4)}
    >>> {name: float(f) for name, f in zero_fraction_per_leaf(params).items()}
    {'bias': 1.0, 'kernel': 0.5}
  """
  return jax.tree.map(lambda leaf: jnp.mean((leaf == 0).astype(jnp.float32)), tree)


def zero_groups(x: ArrayLike, axis: Axis = None) -> jax.Array:
  """Number of groups (default: output units, see :mod:`regjax.prox`) that are all zero.

  Args:
    x: an array, e.g. a kernel ``(fan_in, fan_out)``.
    axis: the axes one group spans; ``None`` means all but the last (one group per output
      unit in Flax's layout).

  Returns:
    An int32 scalar.

  Examples:
    Columns 0 and 2 are zero; with ``axis=1`` the groups are rows, and none is zero:

    >>> import jax.numpy as jnp
    >>> kernel = jnp.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    >>> int(zero_groups(kernel)), int(zero_groups(kernel, axis=1))
    (2, 0)
  """
  x = jnp.asarray(x)
  return jnp.sum(jnp.all(x == 0, axis=_group_axes(x, axis)))


def dead_unit_fraction(tree: Params, mask: Mask = masks.matrices, axis: Axis = None
                       ) -> jax.Array:
  """Fraction of units whose incoming weights are all exactly zero, over selected kernels.

  Args:
    tree: a pytree of arrays.
    mask: Optax-style mask; default every leaf with ``ndim >= 2``.
    axis: the axes a unit spans (default all but the last: Flax output units).

  Returns:
    A float32 scalar in [0, 1].

  Examples:
    Two of the kernel's four output units (columns 0 and 2) are dead; the bias, a vector,
    is not a kernel and is not counted:

    >>> import jax.numpy as jnp
    >>> params = {"kernel": jnp.array([[0.0, 1.0, 0.0, 0.0], [0.0, 3.0, 0.0, 2.0]]),
    ...           "bias": jnp.zeros(4)}
    >>> float(dead_unit_fraction(params))
    0.5
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

  Args:
    x: a matrix or a conv kernel ``(..., fan_in, fan_out)``.
    mode: ``"columns"``, ``"rows"`` or ``"auto"`` (the smaller Gram).

  Returns:
    A float32 (or wider) scalar.

  Examples:
    ``2·I`` has Gram ``4·I``, so :math:`\|G - I\|_F = 3\sqrt{2}` and the error is 3:

    >>> import jax.numpy as jnp
    >>> float(orthogonality_error(jnp.eye(2))), float(orthogonality_error(2 * jnp.eye(2)))
    (0.0, 3.0)
  """
  soft = penalties.soft_orthogonality(x, mode)
  size = jax.eval_shape(lambda m: penalties.gram(m, mode), jnp.asarray(x)).shape[0]
  return jnp.sqrt(soft / size)


def layer_norms(tree: Params) -> dict[str, jax.Array]:
  """L2 (Frobenius) norm of every leaf, keyed by its ``/``-joined path.

  Examples:
    >>> import jax.numpy as jnp
    >>> params = {"dense": {"kernel": jnp.array([[3.0], [4.0]]), "bias": jnp.zeros(1)}}
    >>> {path: float(norm) for path, norm in layer_norms(params).items()}
    {'dense/bias': 0.0, 'dense/kernel': 5.0}
  """
  return {
      masks.path_of(path): jnp.linalg.norm(jnp.ravel(leaf))
      for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
  }
