"""Which leaves a transform touches, and per-layer strengths, from parameter paths.

Masks follow Optax's convention: a pytree of bools with the parameters' structure (or a
prefix of it: one bool for a whole subtree), or a callable ``params -> that tree``.
A leaf's *path* is its keys joined by ``/``, e.g. ``layers/0/kernel`` for a Flax NNX
MLP (the same for an ``nnx.State`` of ``Param`` wrappers, its arrays, or
``nnx.to_pure_dict``) or ``Dense_0/kernel`` for Linen. Masks and strength trees are
matched to the parameters by these paths, whatever the containers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from regjax import _checks, _trees
from regjax.typing import Params, PyTree, Scalar

__all__ = ["by_path", "matrices", "path_of", "paths", "per_layer"]

matrices = _trees.matrices


def path_of(key_path: jax.tree_util.KeyPath) -> str:
  """The ``/``-joined path of a leaf, from ``jax.tree_util`` key entries.

  Examples:
    >>> import jax
    >>> [path_of(p) for p, _ in jax.tree_util.tree_leaves_with_path({"a": [1, 2]})]
    ['a/0', 'a/1']
  """
  return "/".join(str(name) for name in _trees.path_names(tuple(key_path)))


def paths(tree: PyTree) -> PyTree:
  """A tree like ``tree`` whose leaves are their own paths (strings).

  Shows the names that :func:`by_path` patterns and :func:`per_layer` tables are matched
  against.

  Examples:
    >>> paths({"layers": [{"kernel": 1.0}, {"kernel": 2.0}], "head": 3.0})
    {'head': 'head', 'layers': [{'kernel': 'layers/0/kernel'}, {'kernel': 'layers/1/kernel'}]}
  """
  return jax.tree_util.tree_map_with_path(
      lambda key_path, _: path_of(key_path), tree, is_leaf=_trees.is_leaf
  )


def by_path(pattern: str, *, matrices_only: bool = False) -> Callable[[Params], PyTree]:
  """A callable mask selecting the leaves whose path matches the regex ``pattern``.

  Args:
    pattern: a regular expression searched (``re.search``) in each leaf's path.
    matrices_only: also require ``ndim >= 2``.

  Returns:
    ``params -> tree of bools``, usable as any transform's ``mask``.

  Examples:
    >>> import jax.numpy as jnp, regjax
    >>> mask = regjax.by_path("kernel$")
    >>> mask({"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)}})
    {'dense': {'bias': False, 'kernel': True}}
  """
  regex = _compile("pattern", pattern)

  def mask(params):
    def leaf(key_path, value):
      keep = regex.search(path_of(key_path)) is not None
      return keep and (not matrices_only or jnp.ndim(value) >= 2)

    return jax.tree_util.tree_map_with_path(leaf, params, is_leaf=_trees.is_leaf)

  return mask


def _compile(name: str, pattern: str) -> re.Pattern[str]:
  if not isinstance(pattern, str):
    raise TypeError(f"`{name}` must be a regular expression string, got {pattern!r}.")
  try:
    return re.compile(pattern)
  except re.error as error:
    raise ValueError(f"`{name}` {pattern!r} is not a valid regular expression: {error}") from None


def per_layer(
    params: Params, table: Mapping[str, Scalar], default: Scalar | None = None
) -> Params:
  r"""A per-leaf strength tree from a table ``{regex: strength}`` over parameter paths.

  The first pattern (in the table's order) that matches a leaf's path gives its strength;
  leaves that no pattern matches get ``default`` (``None`` means "not regularized", which
  every regjax transform skips). Strengths may be traced scalars, so a sweep can vmap a
  per-layer grid.

  Args:
    params: the parameter tree (only its structure and paths are used).
    table: ordered mapping from regex to strength.
    default: strength for unmatched leaves, or None.

  Returns:
    A tree like ``params`` of float32 scalars (or None).

  Raises:
    ValueError: a pattern matches no leaf (likely a typo), or a strength is negative
      or not finite.

  Examples:
    >>> import jax.numpy as jnp, regjax
    >>> params = {"encoder": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)},
    ...           "head": {"kernel": jnp.ones((2, 1))}}
    >>> strengths = regjax.per_layer(params, {"encoder/kernel": 1e-3, "head": 1e-2})
    >>> strengths["encoder"]["bias"] is None, float(strengths["head"]["kernel"])
    (True, 0.009999999776482582)

    With Flax NNX, build it from ``nnx.state(model, nnx.Param)`` (or
    ``nnx.to_pure_dict`` of it) and pass it to the optimizer given to
    ``nnx.Optimizer(model, tx, wrt=nnx.Param)``: strengths are matched by path.
  """
  if not isinstance(table, Mapping) or not table:
    raise ValueError(f"`table` must be a non-empty mapping regex -> strength, got {table!r}.")
  compiled = [(_compile("table", pattern), pattern) for pattern in table]
  for pattern, value in table.items():
    _checks.check_number_tree(f"table[{pattern!r}]", value, allow_callable=False)
  if default is not None:
    _checks.check_number_tree("default", default, allow_callable=False)
  used = set()

  def leaf(key_path, _):
    path = path_of(key_path)
    for regex, pattern in compiled:
      if regex.search(path):
        used.add(pattern)
        return jnp.asarray(table[pattern], jnp.float32)
    return None if default is None else jnp.asarray(default, jnp.float32)

  result = jax.tree_util.tree_map_with_path(leaf, params, is_leaf=_trees.is_leaf)
  unused = [pattern for pattern in table if pattern not in used]
  if unused:
    known = ", ".join(path_of(k) for k, _ in jax.tree_util.tree_leaves_with_path(params))
    raise ValueError(f"`table` patterns {unused} match no parameter; paths are: {known}.")
  return result
