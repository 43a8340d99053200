"""Pytree plumbing shared by every transform, penalty, metric and pruning helper.

One resolver for masks and one for per-leaf strengths, both matching a user's tree to the
parameters **by path**, whatever the containers: an ``nnx.State`` of ``nnx.Param``
wrappers (what ``nnx.Optimizer`` passes to ``init``), the ``nnx.State`` of raw arrays it
passes to ``update``, ``nnx.to_pure_dict``'s nested dicts, Equinox modules or plain
dicts all name a leaf alike (``("layers", 0, "kernel")``). As in Optax, a mask or a
strength tree may also be a *prefix* of the parameter tree: one leaf for a whole subtree.
Optax's ``masked`` wrapper replaces unselected leaves by ``optax.MaskedNode``, so both
``None`` and ``MaskedNode`` count as leaves here.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def is_leaf(value: Any) -> bool:
  """Leaves for tree maps over possibly-masked trees: ``None`` and ``MaskedNode``."""
  return value is None or isinstance(value, optax.MaskedNode)


def _key_name(key: Any) -> Any:
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return getattr(key, attribute)
  return key


def path_names(key_path: tuple[Any, ...]) -> tuple[Any, ...]:
  """A leaf's path as plain names (dict keys, attribute names, indices).

  An ``nnx.Variable`` adds ``.value`` to its array's path; it is dropped, so an
  ``nnx.State`` of ``Param`` wrappers and the dict of its arrays name leaves alike.
  """
  names = tuple(_key_name(key) for key in key_path)
  if names and isinstance(key_path[-1], jax.tree_util.GetAttrKey) and names[-1] == "value":
    names = names[:-1]
  return names


def named_leaves(tree: Any) -> tuple[list[tuple[tuple[Any, ...], Any]], Any]:
  """``([(path names, leaf), ...], treedef)`` of ``tree``, ``None``/``MaskedNode`` leaves."""
  flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
  return [(path_names(path), leaf) for path, leaf in flat], treedef


def _show_path(names: tuple[Any, ...]) -> str:
  return "/".join(str(name) for name in names) or "<root>"


def match(name: str, value: Any, tree: Any) -> Any:
  """``value`` laid out like ``tree``: each leaf of ``tree`` gets the leaf of ``value`` at
  the longest prefix of its path.

  Args:
    name: the argument's name, used in the message.
    value: a tree whose paths are those of ``tree`` or prefixes of them; extra leaves (for
      variables ``tree`` does not hold) are ignored.
    tree: the parameters (or updates).

  Returns:
    A tree with the structure of ``tree``.

  Raises:
    ValueError: a leaf of ``tree`` has no counterpart in ``value``.
  """
  if jax.tree.structure(value, is_leaf=is_leaf) == jax.tree.structure(tree, is_leaf=is_leaf):
    return value
  entries = dict(named_leaves(value)[0])
  targets, treedef = named_leaves(tree)
  out = []
  for names, _ in targets:
    for length in range(len(names), -1, -1):
      if names[:length] in entries:
        out.append(entries[names[:length]])
        break
    else:
      known = ", ".join(_show_path(n) for n in entries) or "none"
      raise ValueError(
          f"`{name}` must have the structure of the parameters (or a prefix of it), "
          f"matched by path: it has no entry for the parameter {_show_path(names)}; its "
          f"paths are: {known}. Build it from the same parameters, e.g. with "
          "regjax.per_layer(params, {...})."
      )
  return treedef.unflatten(out)


def is_single(value: Any) -> bool:
  """Whether ``value`` is one strength (number, array, schedule) rather than a tree."""
  return jax.tree_util.treedef_is_leaf(jax.tree.structure(value))


def broadcast_strength(strength: Any, tree: Any, name: str = "strength") -> Any:
  """One strength per leaf of ``tree``: a single value is repeated, a tree matched by path."""
  if is_single(strength):
    return jax.tree.map(lambda _: strength, tree, is_leaf=is_leaf)
  return match(name, strength, tree)


def nan_if_negative(strength: Any) -> Any:
  """Negative or NaN (traced) strengths become NaN, so the step fails loudly.

  A negative strength would silently anti-regularize; NaN in the step makes the run's
  loss NaN, which a sweep reports as a failed row. ``None`` leaves pass through.
  """
  def leaf(value):
    if value is None:
      return None
    return jnp.where(value >= 0, value, jnp.nan)

  return jax.tree.map(leaf, strength, is_leaf=is_leaf)


def matrices(tree: Any) -> Any:
  """Mask selecting leaves with ``ndim >= 2`` (kernels), skipping biases and scales."""
  return jax.tree.map(lambda leaf: jnp.ndim(leaf) >= 2, tree, is_leaf=is_leaf)


class _Matrices:
  """The default mask of weight decay and orthogonality: leaves with ``ndim >= 2``.

  Not callable on purpose: ``optax.inject_hyperparams`` takes every callable argument for
  a schedule, so a callable default would be evaluated at the step count.
  """

  def __repr__(self) -> str:
    return "MATRICES"


MATRICES = _Matrices()


def _as_bool(value: Any) -> bool:
  if value is None:  # where the tree holds no array (e.g. an Equinox activation)
    return False
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if (isinstance(value, (jax.Array, np.ndarray)) and value.ndim == 0
      and value.dtype == np.bool_ and not isinstance(value, jax.core.Tracer)):
    return bool(value)
  raise TypeError(
      f"`mask` leaves must be bools (one per parameter or per subtree), got {value!r}."
  )


def resolve_mask(mask: Any, tree: Any) -> Any:
  """A tree of Python bools like ``tree`` from an Optax-style ``mask``.

  Args:
    mask: ``None`` (every leaf), :data:`MATRICES` (leaves with ``ndim >= 2``), a tree of
      bools with the paths of ``tree`` or a prefix of them, or a callable
      ``tree -> such a tree``.
    tree: the parameters (or updates).

  Returns:
    A tree with the structure of ``tree`` whose leaves are Python bools.
  """
  if mask is None:
    return jax.tree.map(lambda _: True, tree, is_leaf=is_leaf)
  if mask is MATRICES:
    mask = matrices(tree)
  elif callable(mask):
    mask = mask(tree)
  return jax.tree.map(_as_bool, match("mask", mask, tree), is_leaf=is_leaf)


def selected_leaves(mask: Any, tree: Any) -> list[Any]:
  """The leaves of ``tree`` that ``mask`` selects, in flattening order."""
  selected = resolve_mask(mask, tree)
  return [
      leaf
      for leaf, keep in zip(jax.tree.leaves(tree, is_leaf=is_leaf),
                            jax.tree.leaves(selected, is_leaf=is_leaf), strict=True)
      if keep
  ]
