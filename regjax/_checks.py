r"""Argument checks shared by every public constructor and every bare function.

Two tiers, one rule (stated for users in :mod:`regjax.transforms` and
``docs/guides/bad_input.md``):

- **Values that can be read now** are checked eagerly and raise a ``ValueError`` or
  ``TypeError`` naming the argument: by a constructor (:func:`check_number_tree`,
  once, when the transform is built) for Python numbers, NumPy arrays, concrete JAX
  arrays and schedules (probed on the host at a few steps); by a bare function
  (:func:`nonnegative`, which runs inside every training step) for Python numbers and
  NumPy arrays only, since reading a JAX array would copy it from the device each step.
- **Everything else** (traced values, JAX arrays given to a bare function, a schedule
  evaluated at the step count) goes through :func:`clean` on the device: a value below
  :math:`-\tau` or not finite becomes NaN, so the step fails loudly; a value in
  :math:`[-\tau, 0)` is a rounding residue and becomes 0.

Why a residue tolerance: a schedule that anneals to 0 is computed in float32, and under
``jit`` XLA rewrites ``count / steps`` as ``count * (1 / steps)``, so
``optax.linear_schedule(0.2, 0.0, 15)`` evaluates to ``-1.04e-8`` from step 15 on. Such
a value is a few float32 ulps of the schedule's largest value, so

.. math:: \tau = 16\,\varepsilon_{32} \max(1, S), \qquad \varepsilon_{32} = 2^{-23},

where :math:`S` is the largest magnitude the schedule takes at the probe steps, or 1
for a value with no schedule to probe (a traced number, e.g. what
``optax.inject_hyperparams`` passes after evaluating a schedule itself). 16 ulps covers
the two or three roundings of Optax's schedule formulas with room to spare, and is
far below any strength a user would mean: :math:`\tau = 1.9 \times 10^{-6}` for
strengths up to 1. A negative value a user *writes* (concrete) is always an error, however
small.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

RESIDUE_ULPS = 16
RESIDUE = RESIDUE_ULPS * float(np.finfo(np.float32).eps)
"""The residue tolerance of a value with no known scale (16 float32 ulps of 1)."""

PROBE_STEPS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
"""Steps at which a schedule is evaluated on the host when a transform is built."""


def is_concrete(value: Any) -> bool:
  """Whether ``value`` holds a number that can be read now (not a tracer)."""
  return not isinstance(value, jax.core.Tracer)


def is_schedule(value: Any) -> bool:
  """Whether ``value`` is a schedule ``step -> value`` (a callable that is not an array)."""
  return callable(value) and not isinstance(value, (jax.Array, np.ndarray))


def _is_host(value: Any) -> bool:
  """A Python number or a NumPy value: readable with no device transfer."""
  return isinstance(value, (numbers.Number, np.ndarray, np.generic))


def _where(path: Any) -> str:
  shown = jax.tree_util.keystr(tuple(path)) if path else ""
  return f" at {shown}" if shown else ""


def _host_array(name: str, leaf: Any, where: str = "") -> np.ndarray:
  """``leaf`` as a NumPy array, or a ``TypeError`` naming ``name`` if it is not numeric."""
  if isinstance(leaf, (bool, np.bool_)):
    raise TypeError(f"`{name}` must be a number, got the bool {leaf!r}{where}.")
  if isinstance(leaf, (str, bytes)):
    raise TypeError(f"`{name}` must be a number, got the string {leaf!r}{where}.")
  try:
    array = np.asarray(leaf)
  except (TypeError, ValueError):
    array = None
  if array is None or array.dtype == object:
    raise TypeError(f"`{name}` must be a number or an array, got {type(leaf).__name__}{where}.")
  if not np.issubdtype(array.dtype, np.number):
    raise TypeError(f"`{name}` must be numeric, got dtype {array.dtype}{where}.")
  return array


def _check_range(name: str, array: np.ndarray, low: float, high: float | None,
                 high_inclusive: bool, where: str = "", slack: float = 0.0,
                 fix: str = "", low_inclusive: bool = True) -> None:
  """Raise if ``array`` is not finite or leaves ``[low - slack, high]``."""
  if not np.all(np.isfinite(array)):
    raise ValueError(f"`{name}` must be finite, got {_show(array)}{where}.{fix}")
  if np.any(array < low - slack) or (not low_inclusive and np.any(array <= low)):
    bound = f">= {low}" if low_inclusive else f"> {low}"
    raise ValueError(f"`{name}` must be {bound}, got {_show(array)}{where}.{fix}")
  if high is not None:
    bad = array > high if high_inclusive else array >= high
    if np.any(bad):
      bound = f"<= {high}" if high_inclusive else f"< {high}"
      raise ValueError(f"`{name}` must be {bound}, got {_show(array)}{where}.{fix}")


def check_number_tree(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float | None = None,
    high_inclusive: bool = True,
    allow_callable: bool = True,
) -> Any:
  """Raise if a readable leaf of ``value`` is non-numeric, non-finite or out of range.

  What a constructor calls, once. Python numbers, NumPy arrays and concrete JAX arrays
  are read; a schedule is evaluated at :data:`PROBE_STEPS` on the host, and rejected if
  it is clearly out of range there (below ``low`` by more than its residue tolerance,
  or not finite). Traced leaves are left to :func:`clean`.

  Args:
    name: the argument's name, used in the message.
    value: a number, array, schedule (callable) or a pytree of those.
    low: smallest allowed value (inclusive).
    high: largest allowed value, or None for no upper bound.
    high_inclusive: whether ``high`` itself is allowed.
    allow_callable: whether a schedule ``step -> value`` is accepted.

  Returns:
    The residue tolerance of each leaf, a tree like ``value`` (``None`` leaves stay
    ``None``): :data:`RESIDUE` times the largest magnitude a schedule takes at the probe
    steps (at least 1); :data:`RESIDUE` for every other leaf. See :func:`clean`.
  """
  if value is None:
    raise ValueError(f"`{name}` must be a number, an array or a schedule, got None.")
  flat, treedef = jax.tree_util.tree_flatten_with_path(value, is_leaf=lambda v: v is None)
  if not flat:  # a tree whose leaves are all None is fine: it regularizes nothing
    raise ValueError(f"`{name}` is an empty tree; pass a number or a tree of numbers.")
  tolerances: list[float | None] = []
  for path, leaf in flat:
    where = _where(path)
    if leaf is None:
      tolerances.append(None)
    elif is_schedule(leaf):
      if not allow_callable:
        raise TypeError(
            f"`{name}` must be a number or an array, not a callable ({leaf!r}){where}.")
      tolerances.append(_probe(name, leaf, low, high, high_inclusive, where))
    else:
      if is_concrete(leaf):
        _check_range(name, _host_array(name, leaf, where), low, high, high_inclusive, where)
      elif not jnp.issubdtype(leaf.dtype, jnp.number) or leaf.dtype == jnp.bool_:
        raise TypeError(f"`{name}` must be numeric, got a traced {leaf.dtype} value{where}.")
      tolerances.append(RESIDUE)
  return jax.tree_util.tree_unflatten(treedef, tolerances)


def _probe(name: str, schedule: Callable[[Any], Any], low: float, high: float | None,
           high_inclusive: bool, where: str) -> float:
  """The residue tolerance of ``schedule``, after checking it at :data:`PROBE_STEPS`.

  One vectorized call when the schedule maps a vector of steps to one value per step
  (Optax's do), one call per step otherwise, on the CPU. Evaluated eagerly even inside a
  ``jit`` trace (``ensure_compile_time_eval``); a schedule that closes over a traced value
  cannot be read and gets the default tolerance. Cost: the eager operations compile once
  per process (about 0.3 s for ``warmup_cosine_decay_schedule`` on a loaded 2-core CPU),
  then well under a millisecond per transform built.
  """
  steps = np.asarray(PROBE_STEPS, np.int32)
  with jax.ensure_compile_time_eval(), _on_host():
    try:
      batch = schedule(jnp.asarray(steps))
      values = None if np.shape(batch) not in ((), steps.shape) else [batch]
    except Exception:  # e.g. Python control flow on the step
      values = None
    if values is None:
      values = [schedule(jnp.asarray(step)) for step in steps]
  if not all(is_concrete(v) for v in values):
    return RESIDUE
  arrays = [_host_array(name, v, f"{where} (the value of a schedule)") for v in values]
  if len(arrays) == 1:
    arrays = list(np.broadcast_to(arrays[0], steps.shape))
  finite = [np.abs(a) for a in arrays if np.all(np.isfinite(a))]
  tolerance = RESIDUE * max([1.0] + [float(np.max(a, initial=0.0)) for a in finite])
  fix = (" A schedule must give a valid value at every step: clip it (e.g. "
         "jnp.maximum(value, 0.0)) or use an Optax schedule that holds its end value.")
  for step, array in zip(PROBE_STEPS, arrays, strict=True):
    _check_range(name, array, low, high, high_inclusive,
                 where=f"{where} (a schedule, at step {step})", slack=tolerance, fix=fix)
  return tolerance


def _on_host() -> contextlib.AbstractContextManager[Any]:
  """Computations on the CPU (a probe is a few scalars: no accelerator kernels for it)."""
  try:
    return jax.default_device(jax.devices("cpu")[0])
  except RuntimeError:  # no CPU backend (JAX_PLATFORMS names only an accelerator)
    return contextlib.nullcontext()


def clean(value: Any, tolerance: float = RESIDUE) -> jax.Array:
  r"""The device-side rule for a non-negative quantity that could not be checked.

  .. math:: v \mapsto \begin{cases} \max(v, 0) & -\tau \le v < \infty \\
     \text{NaN} & \text{otherwise (clearly negative, NaN or infinite)} \end{cases}

  A negative value within the tolerance :math:`\tau` is a rounding residue (see the
  module docstring) and counts as 0; anything else invalid becomes NaN, so the step,
  and a sweep's row, fails loudly instead of silently anti-regularizing. A few scalar
  operations for a scalar strength, fused elementwise ones for an array.

  Args:
    value: a number or an array (typically traced).
    tolerance: :math:`\tau`.

  Returns:
    A floating-point JAX array of ``value``'s shape.
  """
  value = jnp.asarray(value)
  if not jnp.issubdtype(value.dtype, jnp.floating):
    value = value.astype(jnp.result_type(float))
  valid = jnp.isfinite(value) & (value >= -tolerance)
  return jnp.where(valid, jnp.maximum(value, 0), jnp.nan)


def nonnegative(name: str, value: Any, *, positive: bool = False) -> Any:
  """A non-negative argument of a bare function (a prox operator, a penalty).

  Python numbers and NumPy arrays are checked on the host and returned unchanged (no
  device operation); a JAX array, concrete or traced, is not read (that would copy it
  from the device in every training step) and goes through :func:`clean` instead.

  Args:
    name: the argument's name, used in the message.
    value: the argument.
    positive: require a host value to be ``> 0`` (a JAX array of zeros still passes).

  Returns:
    ``value`` (host values) or ``clean(value)`` (JAX arrays).
  """
  if type(value) in (float, int) and (value > 0 or (value == 0 and not positive)) and (
      value < math.inf):
    return value  # the common case, decided without NumPy (NaN fails both comparisons)
  if isinstance(value, (jax.Array, jax.core.Tracer)):
    if not jnp.issubdtype(value.dtype, jnp.number) or value.dtype == jnp.bool_:
      raise TypeError(f"`{name}` must be numeric, got a {value.dtype} array.")
    return clean(value)
  _check_range(name, _host_array(name, value), 0.0, None, True, low_inclusive=not positive)
  return value


def _show(array: np.ndarray) -> str:
  if array.ndim == 0:
    return str(array[()])  # shortest repr in the array's own precision
  return f"an array of shape {array.shape} (min {array.min()}, max {array.max()})"


def float_dtype(dtype: Any) -> Any:
  """Float type to compute in: at least float32, float64 when the data is (x64 on)."""
  return jnp.promote_types(dtype, jnp.float32)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> None:
  """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
  allowed = tuple(allowed)
  if not isinstance(value, str) or value not in allowed:
    raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


def check_callable(name: str, value: Any, what: str) -> None:
  """Raise ``TypeError`` unless ``value`` is callable (``what`` says what it maps)."""
  if not callable(value):
    raise TypeError(f"`{name}` must be a function {what}, got {value!r}.")


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


def at_step(value: Any, tolerances: Any, count: jax.Array) -> Any:
  """``value`` at step ``count``, each leaf ready for use in a step.

  A schedule is evaluated and passed through :func:`clean` with its own tolerance (its
  value was never seen); a traced leaf goes through :func:`clean`; a concrete leaf was
  checked when the transform was built and is returned as is (no device operation).

  Args:
    value: a number, array, schedule or a pytree of those (``None`` leaves kept).
    tolerances: what :func:`check_number_tree` returned for ``value``.
    count: the step.

  Returns:
    A tree like ``value``.
  """

  def leaf(v, tolerance):
    if v is None:
      return None
    if is_schedule(v):
      return clean(v(count), tolerance)
    return v if is_concrete(v) else clean(v, tolerance)

  return jax.tree.map(leaf, value, tolerances, is_leaf=lambda v: v is None)


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
