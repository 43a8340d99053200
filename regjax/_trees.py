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

from regjax.typing import Params, PyTree


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


def show_path(names: tuple[Any, ...]) -> str:
  return "/".join(str(name) for name in names) or "<root>"


def match(name: str, value: Any, tree: Any) -> Any:
  """``value`` laid out like ``tree``: each leaf of ``tree`` gets the leaf of ``value`` at
  the longest prefix of its path.

  Every path of ``value`` must name a leaf of ``tree`` or a prefix of one, as in
  ``optax.masked``: an entry that names nothing is a typo, or a tree built from other
  variables than the ones being updated (``nnx.state(model)``, which holds
  ``BatchStat``s and RNG state, given to ``nnx.Optimizer(model, tx, wrt=nnx.Param)``,
  which updates ``nnx.state(model, nnx.Param)``), and silently ignoring it would leave
  the parameter the user meant untouched.

  Args:
    name: the argument's name, used in the message.
    value: a tree whose paths are those of ``tree`` or prefixes of them.
    tree: the parameters (or updates).

  Returns:
    A tree with the structure of ``tree``.

  Raises:
    ValueError: a leaf of ``tree`` has no counterpart in ``value``, or a path of
      ``value`` names no leaf of ``tree``.

  Examples:
    >>> match("mask", {"a": True}, {"a": {"w": 1.0, "b": 2.0}})
    {'a': {'b': True, 'w': True}}
    >>> match("mask", {"a": True, "typo": False}, {"a": 1.0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `mask` names typo, which is not a parameter ...
  """
  try:
    flat, structure = named_leaves(value)
  except (TypeError, ValueError) as error:  # e.g. dict keys of mixed types cannot be sorted
    raise ValueError(f"`{name}` could not be flattened as a pytree: {error}") from None
  if structure == jax.tree.structure(tree, is_leaf=is_leaf):
    return value
  entries = dict(flat)
  targets, treedef = named_leaves(tree)
  out, used, missing = [], set(), []
  for names, _ in targets:
    for length in range(len(names), -1, -1):
      if names[:length] in entries:
        out.append(entries[names[:length]])
        used.add(names[:length])
        break
    else:
      missing.append(names)
  extra = [names for names in entries if names not in used]
  if missing or extra:
    raise ValueError(_mismatch(name, missing, extra, [names for names, _ in targets]))
  return treedef.unflatten(out)


def _mismatch(name: str, missing: list[tuple[Any, ...]], extra: list[tuple[Any, ...]],
              targets: list[tuple[Any, ...]]) -> str:
  """The message of :func:`match`: what is missing, what names nothing, and the fix."""
  parts = []
  if extra:
    shown = ", ".join(show_path(n) for n in extra)
    parts.append(f"`{name}` names {shown}, which is not a parameter (nor a prefix of a "
                 "parameter's path)")
  if missing:
    parts.append(f"`{name}` has no entry for the parameter {show_path(missing[0])}"
                 + (f" (nor for {len(missing) - 1} more)" if len(missing) > 1 else ""))
  message = "; ".join(parts) + (
      f". `{name}` must have the structure of the parameters or a prefix of it, matched "
      f"by path; the parameters' paths are: {', '.join(show_path(n) for n in targets)}.")
  prefixes = {show_path(n[:length]) for n in targets for length in range(1, len(n) + 1)}
  if any(show_path(n) in prefixes for n in extra):
    message += " Keys are compared with their type: the integer 0 and the string '0' differ."
  example = "" if name == "mask" else (
      f", e.g. {name}=regjax.per_layer(nnx.state(model, nnx.Param), {{...}})")
  return message + (
      " Build it from the same tree the optimizer updates: with "
      "nnx.Optimizer(model, tx, wrt=nnx.Param), from nnx.state(model, nnx.Param), not "
      f"nnx.state(model), which also holds batch statistics and RNG state{example}.")


def is_single(value: Any) -> bool:
  """Whether ``value`` is one strength (number, array, schedule) rather than a tree."""
  return jax.tree_util.treedef_is_leaf(jax.tree.structure(value))


def broadcast_strength(strength: Any, tree: Any, name: str = "strength") -> Any:
  """One strength per leaf of ``tree``: a single value is repeated, a tree matched by path."""
  if is_single(strength):
    return jax.tree.map(lambda _: strength, tree, is_leaf=is_leaf)
  return match(name, strength, tree)


def matrices(tree: Params) -> PyTree:
  """Mask selecting leaves with ``ndim >= 2`` (kernels), skipping biases and scales.

  Public as :func:`regjax.masks.matrices`: the leaves that the ``mask`` of
  :func:`regjax.decoupled_weight_decay`, :func:`regjax.adamw` and
  :func:`regjax.orthogonality` selects by default. (Their default is a non-callable
  stand-in for this function, because ``optax.inject_hyperparams`` takes a callable
  argument, defaults included, for a schedule; when you pass ``mask=masks.matrices`` to
  a factory wrapped in ``inject_hyperparams``, list ``"mask"`` in its ``static_args``.)

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax import masks
    >>> params = {"conv": jnp.ones((3, 3, 1, 4)), "kernel": jnp.ones((4, 2)),
    ...           "bias": jnp.zeros(2), "scale": jnp.ones(())}
    >>> masks.matrices(params)
    {'bias': False, 'conv': True, 'kernel': True, 'scale': False}
  """
  return jax.tree.map(lambda leaf: not is_leaf(leaf) and jnp.ndim(leaf) >= 2, tree,
                      is_leaf=is_leaf)


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
