"""Pytree plumbing shared by penalties, transforms and masks: masks and per-leaf strengths.

Strength trees follow the parameters' structure; Optax's ``masked`` wrapper replaces the
unselected leaves of updates and params by ``optax.MaskedNode``, so both ``None`` and
``MaskedNode`` count as leaves when structures are compared.
"""

from __future__ import annotations

from typing import Any

import jax
import optax


def is_leaf(value: Any) -> bool:
  """Leaves for tree maps over possibly-masked trees: ``None`` and ``MaskedNode``."""
  return value is None or isinstance(value, optax.MaskedNode)


def structure(tree: Any) -> jax.tree_util.PyTreeDef:
  return jax.tree.structure(tree, is_leaf=is_leaf)


def is_single(value: Any) -> bool:
  """Whether ``value`` is one strength (number, array, schedule) rather than a tree."""
  return jax.tree_util.treedef_is_leaf(jax.tree.structure(value))


def check_matches(name: str, value: Any, tree: Any) -> None:
  """Raise ``ValueError`` unless ``value`` has the structure of ``tree``."""
  expected, got = structure(tree), structure(value)
  if expected != got:
    raise ValueError(
        f"`{name}` is a tree that does not match the parameters: expected the structure\n"
        f"  {expected}\ngot\n  {got}\n"
        "Pass one value for every leaf, or build it with regjax.masks.per_layer."
    )


def resolve_mask(mask: Any, tree: Any) -> Any:
  """A tree of Python bools for ``tree`` from an Optax-style ``mask`` (or None = all)."""
  if mask is None:
    return jax.tree.map(lambda _: True, tree, is_leaf=is_leaf)
  if callable(mask):
    mask = mask(tree)
  check_matches("mask", mask, tree)
  return mask


def broadcast_strength(strength: Any, tree: Any, name: str = "strength") -> Any:
  """One strength per leaf of ``tree``: a single value is repeated, a tree is checked."""
  if is_single(strength):
    return jax.tree.map(lambda _: strength, tree, is_leaf=is_leaf)
  check_matches(name, strength, tree)
  return strength


def matrices(tree: Any) -> Any:
  """Mask selecting leaves with ``ndim >= 2`` (kernels), skipping biases and scales."""
  return jax.tree.map(lambda leaf: jax.numpy.ndim(leaf) >= 2, tree, is_leaf=is_leaf)
