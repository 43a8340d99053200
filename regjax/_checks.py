"""Argument checks shared by every public constructor.

Concrete values are checked eagerly and raise a ``ValueError``/``TypeError`` naming the
argument. Traced values (inside ``jit``/``vmap``) cannot be inspected, so they pass
through unchecked; each public docstring says what happens to them.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(value: Any) -> bool:
  """Whether ``value`` holds a number that can be read now (not a tracer)."""
  return not isinstance(value, jax.core.Tracer)


def _concrete_array(value: Any) -> np.ndarray | None:
  if not is_concrete(value):
    return None
  try:
    return np.asarray(value)
  except (TypeError, ValueError):
    return None


def check_number_tree(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float | None = None,
    high_inclusive: bool = True,
    allow_callable: bool = True,
) -> None:
  """Raise if any concrete leaf of ``value`` is non-numeric, non-finite or out of range.

  Args:
    name: the argument's name, used in the message.
    value: a number, array, schedule (callable) or a pytree of those.
    low: smallest allowed value (inclusive).
    high: largest allowed value, or None for no upper bound.
    high_inclusive: whether ``high`` itself is allowed.
    allow_callable: whether a schedule ``step -> value`` is accepted.
  """
  if value is None:
    raise ValueError(f"`{name}` must be a number, an array or a schedule, got None.")
  leaves = jax.tree.leaves(value)
  if not leaves:
    raise ValueError(f"`{name}` is an empty tree; pass a number or a tree of numbers.")
  for leaf in leaves:
    if callable(leaf) and not isinstance(leaf, (jax.Array, np.ndarray)):
      if not allow_callable:
        raise TypeError(f"`{name}` must be a number or an array, not a callable ({leaf!r}).")
      continue
    if isinstance(leaf, (bool, np.bool_)):
      raise TypeError(f"`{name}` must be a number, got the bool {leaf!r}.")
    array = _concrete_array(leaf)
    if array is None:
      if not is_concrete(leaf):
        continue
      raise TypeError(f"`{name}` must be a number or an array, got {type(leaf).__name__}.")
    if not (np.issubdtype(array.dtype, np.number)):
      raise TypeError(f"`{name}` must be numeric, got dtype {array.dtype}.")
    if not np.all(np.isfinite(array)):
      raise ValueError(f"`{name}` must be finite, got {_show(array)}.")
    if np.any(array < low):
      raise ValueError(f"`{name}` must be >= {low}, got {_show(array)}.")
    if high is not None:
      bad = array > high if high_inclusive else array >= high
      if np.any(bad):
        bound = f"<= {high}" if high_inclusive else f"< {high}"
        raise ValueError(f"`{name}` must be {bound}, got {_show(array)}.")


def _show(array: np.ndarray) -> str:
  if array.ndim == 0:
    return repr(array.item())
  return f"an array of shape {array.shape} (min {array.min()!r}, max {array.max()!r})"


def float_dtype(dtype: Any) -> Any:
  """Float type to compute in: at least float32, float64 when the data is (x64 on)."""
  return jnp.promote_types(dtype, jnp.float32)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> None:
  """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
  allowed = tuple(allowed)
  if value not in allowed:
    raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


def check_float_params(name: str, tree: Any) -> None:
  """Raise ``TypeError`` if a leaf of ``tree`` is not a floating-point array."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
      dtype = jnp.asarray(leaf).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
      where = jax.tree_util.keystr(path) or "the array"
      raise TypeError(
          f"`{name}` must hold floating-point arrays; {where} has dtype {dtype}. "
          "Cast integer parameters to float before regularizing them."
      )


def resolve_schedule(value: Any, count: jax.Array) -> Any:
  """Evaluate every schedule leaf of ``value`` at step ``count``; numbers pass through."""
  return jax.tree.map(lambda v: v(count) if _is_schedule(v) else v, value)


def _is_schedule(value: Any) -> bool:
  return callable(value) and not isinstance(value, (jax.Array, np.ndarray))


def check_int(name: str, value: Any, *, low: int = 1, allow_traced: bool = False) -> Any:
  """Raise unless ``value`` is an integer ``>= low``; return it as a Python int.

  Accepted: a Python or NumPy integer, or an integer scalar array (not a bool). A traced
  integer scalar is returned unchecked when ``allow_traced``, and rejected otherwise
  (the value fixes a shape or a loop count, so it must be static).

  Args:
    name: the argument's name, used in the message.
    value: the candidate.
    low: the smallest allowed value.
    allow_traced: accept a traced integer scalar (returned as is).

  Returns:
    ``int(value)``, or ``value`` itself when it is traced.
  """
  if isinstance(value, (bool, np.bool_)):
    raise TypeError(f"`{name}` must be an int, got the bool {value!r}.")
  dtype = getattr(value, "dtype", None)
  if dtype is None and not isinstance(value, numbers.Integral):
    raise TypeError(f"`{name}` must be an int, got {value!r}.")
  if dtype is not None and (not np.issubdtype(dtype, np.integer) or np.ndim(value) != 0):
    raise TypeError(f"`{name}` must be an int (an integer scalar), got {value!r}.")
  if not is_concrete(value):
    if allow_traced:
      return value
    raise TypeError(
        f"`{name}` must be a static Python int, got a traced value; keep it out of "
        "jit/vmap arguments (e.g. static_argnames, or static_args of inject_hyperparams)."
    )
  if int(value) < low:
    bound = "a positive int (>= 1)" if low == 1 else f"an int >= {low}"
    raise ValueError(f"`{name}` must be {bound}, got {int(value)!r}.")
  return int(value)
