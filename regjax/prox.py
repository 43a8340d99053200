r"""Proximal operators and projections on arrays.

Every operator ``NAME(x, strength, ..., metric=None)`` solves

.. math::

  \operatorname{prox}(x) = \arg\min_z \; \text{strength} \cdot R(z) + \tfrac12 \|z - x\|_2^2

for the penalty :math:`R` of the same name in :mod:`regjax.penalties` (same convention: no
½ in front of squared terms). ``strength`` broadcasts against ``x``, which is how a
per-coordinate (preconditioned) threshold is passed; it may be a traced value, so these
operators vmap over strengths.

With ``metric=d``, a positive array broadcastable to ``x`` (the diagonal of
:math:`D`), they solve the prox in that diagonal metric, the one Adam's step lives in:

.. math::

  \arg\min_z \; \text{strength} \cdot R(z) + \tfrac12 (z - x)^\top \operatorname{diag}(d)
  (z - x)

For the separable penalties this is the plain prox with ``strength / d``. For the group
penalties it has no closed form: each group's secular equation is solved by a safeguarded
Newton iteration (:mod:`regjax._secular`), and a group is exactly zero when
:math:`\|d_g \odot x_g\|_2 \le \lambda`. A ``metric`` given as a number or NumPy array
must be positive; a JAX array (usually computed inside ``jit``) is not read, and a
negative or NaN entry makes the result NaN (see *Bad arguments* below).

Projections take neither a strength nor a metric: they return the nearest point of a set
:math:`C` in the Euclidean norm, :math:`\arg\min_{z \in C} \|z - x\|_2`, which is what
:func:`regjax.transforms.project` applies after any optimizer's step. (The nearest point
in a diagonal metric is a different point, and regjax does not offer it.)

Integer and boolean inputs are promoted to the default floating-point dtype, as jaxopt
does, so a strength is never truncated to an integer.

**Bad arguments.** These functions run inside every training step, so they check what
costs nothing to check: shapes, ``axis`` and ``method`` when traced, and strengths
(``strength``, ``l2_weight``, ``l1_weight``, ``max_value``, ``metric``) given as Python
numbers or NumPy arrays, which raise the same ``ValueError``/``TypeError`` as the
transforms' constructors (a negative, NaN, infinite, boolean or string strength; a
``metric`` that is not positive). A JAX array, concrete or traced, is not read (that
would copy it from the device every step); it follows the transforms' rule for traced
values (see :mod:`regjax.transforms`): negative beyond a float32 rounding residue
(:math:`-1.9\times10^{-6}`), NaN or infinite gives NaN, so the failure is loud, and a
residue counts as 0.

Group operators take ``axis``, the axes that one group spans. In Flax's kernel layout
``(..., fan_in, fan_out)`` the default ``axis=None`` means every axis but the last, so a
group is one output unit (a neuron's incoming weights, or a conv filter).

References:
  Parikh & Boyd, "Proximal Algorithms", Foundations and Trends in Optimization, 2014.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.typing import ArrayLike

from regjax import _checks, _secular

__all__ = [
    "Axis",
    "as_matrix",
    "elastic_net",
    "group_l2",
    "l0",
    "l1",
    "l2_squared",
    "max_norm",
    "nonneg_l1",
    "orthonormal",
    "sparse_group",
    "unit_norm",
]

Axis = int | Sequence[int] | None
"""The axes one group spans: an int, a sequence of ints, or None (every axis but the last)."""


def _as_float(x: ArrayLike) -> jax.Array:
  """``x`` as an array, integers and bools promoted to the default float dtype."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.inexact):
    x = x.astype(jnp.result_type(float))
  return x


def _metric(x: jax.Array, metric: ArrayLike | None) -> jax.Array | None:
  """``metric`` as an array of ``x``'s shape and dtype (None stays None), checked."""
  if metric is None:
    return None
  metric = _checks.nonnegative("metric", metric, positive=True)
  _check_shape("metric", np.shape(metric), x.shape, "x's shape")
  return jnp.broadcast_to(jnp.asarray(metric).astype(x.dtype), x.shape)


def _check_shape(name: str, shape: tuple[int, ...], target: tuple[int, ...], what: str) -> None:
  """Raise unless an array of ``shape`` broadcasts to ``target`` (without growing it)."""
  if not shape:  # a scalar: the common case
    return
  try:
    ok = jnp.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
  except ValueError:
    ok = False
  if not ok:
    raise ValueError(
        f"`{name}` must be a scalar or broadcast to {what} {tuple(target)}, got shape "
        f"{tuple(shape)}.")


def _nonnegative(name: str, value: ArrayLike, x: jax.Array,
                 shape: tuple[int, ...] | None = None, what: str = "x's shape") -> jax.Array:
  """A checked non-negative argument (see :func:`regjax._checks.nonnegative`) in
  ``x``'s dtype, which broadcasts to ``shape`` (default ``x.shape``)."""
  value = _checks.nonnegative(name, value)
  _check_shape(name, np.shape(value), x.shape if shape is None else shape, what)
  return jnp.asarray(value, dtype=x.dtype)


def _threshold(x: jax.Array, strength: ArrayLike, metric: ArrayLike | None) -> jax.Array:
  """The checked strength of a separable prox, divided by the (checked) metric."""
  strength = _nonnegative("strength", strength, x)
  metric = _metric(x, metric)
  return strength if metric is None else strength / metric


def _soft(x: jax.Array, threshold: jax.Array) -> jax.Array:
  return jnp.sign(x) * jnp.maximum(jnp.abs(x) - threshold, 0)


def _within(norm: jax.Array, bound: jax.Array) -> jax.Array:
  """``norm <= bound`` up to rounding: 4 ulps, the accuracy of the computed group norm.

  Within 4 ulps the exact group prox ``(1 - λ/‖x‖) x`` is smaller than the rounding error
  of ``1 - λ/‖x‖`` itself, so ``group_l2(x, ‖x‖)`` returns exact zeros and ``max_norm``
  leaves a point on the ball unchanged, whichever way the caller computed ``‖x‖``. False
  for a NaN bound, so that a NaN strength reaches the result instead of zeroing it.
  """
  return norm <= bound * (1 + 4 * jnp.finfo(norm.dtype).eps)


def l1(x: ArrayLike, strength: ArrayLike, metric: ArrayLike | None = None) -> jax.Array:
  r"""Soft thresholding, the prox of the L1 norm.

  .. math:: z = \operatorname{sign}(x) \max(|x| - \lambda / d, 0),
     \quad R(z) = \|z\|_1

  Coordinates with :math:`|x| \le \lambda / d` become exactly zero (:math:`d = 1` without
  a metric).

  Args:
    x: input array.
    strength: threshold :math:`\lambda \ge 0`, broadcastable against ``x``.
    metric: the diagonal :math:`d > 0` of the metric, broadcastable to ``x``, or None.

  Returns:
    An array like ``x``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax import prox
    >>> prox.l1(jnp.array([3.0, -0.5, 1.0]), 1.0)
    Array([ 2., -0.,  0.], dtype=float32)

  References:
    Donoho, "De-noising by soft-thresholding", IEEE Trans. Inf. Theory, 1995.
  """
  x = _as_float(x)
  return _soft(x, _threshold(x, strength, metric))


def l2_squared(x: ArrayLike, strength: ArrayLike, metric: ArrayLike | None = None) -> jax.Array:
  r"""Ridge shrinkage, the prox of the squared L2 norm (no ½ in front).

  .. math:: z = \frac{x}{1 + 2\lambda / d}, \quad R(z) = \|z\|_2^2

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.
    metric: the diagonal :math:`d > 0` of the metric, broadcastable to ``x``, or None.

  Returns:
    An array like ``x``; never exactly zero unless ``x`` is.

  References:
    Hoerl & Kennard, "Ridge regression: biased estimation for nonorthogonal
    problems", Technometrics, 1970; Parikh & Boyd, "Proximal Algorithms", 2014.

  Examples:
    >>> import jax.numpy as jnp
    >>> l2_squared(jnp.array([3.0, -1.5]), 0.25)  # divided by 1 + 2 · 0.25
    Array([ 2., -1.], dtype=float32)
  """
  x = _as_float(x)
  return x / (1 + 2 * _threshold(x, strength, metric))


def elastic_net(
    x: ArrayLike, strength: ArrayLike, l2_weight: ArrayLike = 1.0,
    metric: ArrayLike | None = None,
) -> jax.Array:
  r"""Prox of the elastic net :math:`R(z) = \|z\|_1 + w \|z\|_2^2`.

  .. math:: z = \frac{\operatorname{sign}(x)\max(|x| - \lambda/d, 0)}{1 + 2 w \lambda/d}

  With ``strength=λ`` and ``l2_weight=w`` the penalty is :math:`\lambda_1\|z\|_1 +
  \lambda_2\|z\|_2^2` with :math:`\lambda_1 = \lambda`, :math:`\lambda_2 = w\lambda`.

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.
    l2_weight: :math:`w \ge 0`, the ratio of the L2 to the L1 strength.
    metric: the diagonal :math:`d > 0` of the metric, broadcastable to ``x``, or None.

  Returns:
    An array like ``x``, exactly zero where :math:`|x| \le \lambda/d` and shrunk toward
    zero elsewhere.

  Examples:
    >>> import jax.numpy as jnp
    >>> elastic_net(jnp.array([3.0, 0.5]), 1.0, l2_weight=0.5)  # soft threshold, then / 2
    Array([1., 0.], dtype=float32)

  References:
    Zou & Hastie, "Regularization and variable selection via the elastic net", 2005.
  """
  x = _as_float(x)
  threshold = _threshold(x, strength, metric)
  weight = _nonnegative("l2_weight", l2_weight, x)
  return _soft(x, threshold) / (1 + 2 * weight * threshold)


def _group_norm(x: jax.Array, axis: Axis) -> tuple[jax.Array, jax.Array]:
  """Group L2 norms (keepdims) and a copy that is 1 where the norm is 0.

  The second value keeps ``1/norm`` and ``sqrt`` away from zero so that gradients stay
  finite at ``x = 0`` (the double-``where`` pattern). The sum of squares is taken after
  dividing by the group's largest magnitude, so that tiny groups do not underflow to a
  zero norm and large ones do not overflow to infinity.
  """
  # The norm is 1-homogeneous, so its derivative along the scale is zero: stopping the
  # gradient there is exact and keeps 1/scale² out of the backward pass.
  scale, safe_scale = _group_scale(x, axis)
  positive = scale > 0
  squared = jnp.sum(jnp.square(x / safe_scale), axis=axis, keepdims=True)
  safe_norm = safe_scale * jnp.sqrt(jnp.where(positive, squared, 1))
  return jnp.where(positive, safe_norm, 0), safe_norm


def _group_scale(x: jax.Array, axis: Axis) -> tuple[jax.Array, jax.Array]:
  """The group's largest magnitude (no gradient), and a copy that is 1 where it is 0."""
  scale = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=axis, keepdims=True))
  return scale, jnp.where(scale > 0, scale, 1)


def _group_axes(x: jax.Array, axis: Axis) -> tuple[int, ...]:
  """The axes a group spans, checked: ints (not bools), distinct, in range for ``x``."""
  if axis is None:
    if x.ndim < 2:
      return tuple(range(x.ndim))
    return tuple(range(x.ndim - 1))
  axes = (axis,) if not isinstance(axis, Sequence) else tuple(axis)
  for a in axes:
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
      raise TypeError(f"`axis` must be None, an int or a sequence of ints, got {axis!r}.")
    if not -x.ndim <= a < x.ndim:
      raise ValueError(f"`axis` {axis!r} is out of range for an array of shape {x.shape}.")
  normalized = tuple(int(a) % x.ndim for a in axes)
  if len(set(normalized)) != len(normalized):
    raise ValueError(f"`axis` {axis!r} repeats an axis of an array of shape {x.shape}.")
  return normalized


def _group_shape(x: jax.Array, axes: tuple[int, ...]) -> tuple[int, ...]:
  """The shape of the group norms: ``x``'s with the ``axes`` set to 1."""
  return tuple(1 if i in axes else n for i, n in enumerate(x.shape))


def _group_l2_in_metric(
    x: jax.Array, strength: jax.Array, metric: jax.Array, axes: tuple[int, ...]
) -> jax.Array:
  """:func:`group_l2` in the metric ``diag(metric)``, by :func:`regjax._secular.radius`.

  The prox is unchanged when ``x`` and ``strength`` are scaled together, or ``metric`` and
  ``strength``; each group is normalised so that its largest ``|x|`` and largest
  ``metric`` are 1 (scales without gradient, which is exact for that reason), so that no
  square under- or overflows.
  """
  _, x_scale = _group_scale(x, axes)
  _, d_scale = _group_scale(metric, axes)
  # Reciprocals of the per-group scales: one division per group, not per element.
  unit_x, unit_d = x * (1 / x_scale), metric * (1 / d_scale)
  unit_strength = strength / (x_scale * d_scale)
  weighted = unit_d * unit_x
  norm, _ = _group_norm(weighted, axes)
  active = ~_within(norm, unit_strength)
  radius = _secular.radius(weighted, unit_d, unit_strength, norm, active, axes)
  shrink = unit_d * radius / (unit_d * radius + unit_strength)
  return jnp.where(active, shrink * x, 0)


def group_l2(
    x: ArrayLike, strength: ArrayLike, axis: Axis = None, metric: ArrayLike | None = None
) -> jax.Array:
  r"""Block soft thresholding, the prox of the group lasso :math:`R(z) = \sum_g \|z_g\|_2`.

  .. math:: z_g = \max\!\left(1 - \frac{\lambda}{\|x_g\|_2}, 0\right) x_g

  A whole group becomes exactly zero when :math:`\|x_g\|_2 \le \lambda` (to within 4
  ulps, the accuracy of the computed norm, so ``group_l2(x, ‖x‖)`` is exactly zero).
  With ``metric=d`` a group is exactly zero when :math:`\|d_g \odot x_g\|_2 \le \lambda`,
  and otherwise :math:`z_i = x_i d_i r / (d_i r + \lambda)` with :math:`r = \|z_g\|_2`
  the root of :math:`\sum_i (d_i x_i)^2 / (d_i r + \lambda)^2 = 1`, found by a
  safeguarded Newton iteration (a few steps; more for ill-conditioned metrics). The
  gradient is finite everywhere, including at :math:`x_g = 0`, with or without a metric.

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, a scalar or broadcastable against the group norms
      (shape of ``x`` with the ``axis`` dimensions set to 1).
    axis: the axes one group spans; ``None`` means all but the last (one group per output
      unit in Flax's ``(fan_in, fan_out)`` layout; the whole vector for 1-D ``x``).
    metric: the diagonal :math:`d > 0` of the metric, broadcastable to ``x``, or None.

  Returns:
    An array like ``x``.

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[3.0], [4.0]])  # one group (a unit) with norm 5
    >>> group_l2(x, 4.0).ravel()  # shrunk by 1 - 4/5
    Array([0.59999996, 0.79999995], dtype=float32)
    >>> group_l2(x, 4.0, metric=jnp.array([[0.5], [0.5]])).ravel()  # ‖Dx‖ = 2.5 ≤ 4
    Array([0., 0.], dtype=float32)
    >>> group_l2(x, 1.0, metric=jnp.array([[4.0], [0.25]])).ravel()  # moves the cheap side
    Array([2.790505, 1.8172  ], dtype=float32)

  References:
    Yuan & Lin, "Model selection and estimation in regression with grouped variables",
    2006; Yun, Lozano & Yang, "Adaptive proximal gradient methods for structured neural
    networks" (ProxGen), NeurIPS 2021, for the metric.
  """
  x = _as_float(x)
  axes = _group_axes(x, axis)
  strength = _nonnegative("strength", strength, x, _group_shape(x, axes), "the group norms' shape")
  return _group_l2(x, strength, axes, _metric(x, metric))


def _group_l2(x: jax.Array, strength: jax.Array, axes: tuple[int, ...],
              metric: jax.Array | None) -> jax.Array:
  """:func:`group_l2` on checked arguments."""
  if metric is not None:
    return _group_l2_in_metric(x, strength, metric, axes)
  norm, safe_norm = _group_norm(x, axes)
  scale = jnp.where(_within(norm, strength), 0, 1 - strength / safe_norm)
  return scale * x


def sparse_group(
    x: ArrayLike, strength: ArrayLike, l1_weight: ArrayLike = 1.0, axis: Axis = None,
    metric: ArrayLike | None = None,
) -> jax.Array:
  r"""Prox of the sparse group lasso :math:`R(z) = \sum_g \|z_g\|_2 + w \|z\|_1`.

  .. math:: z = \operatorname{prox}_{\lambda \|\cdot\|_{2,1}}\big(
     \operatorname{prox}_{w\lambda\|\cdot\|_1}(x)\big)

  The composition is exact for this pair of penalties, also in a diagonal metric (both
  proxes taken in it): the group prox keeps the signs and zeros of its input.

  Args:
    x: input array.
    strength: group strength :math:`\lambda \ge 0`.
    l1_weight: :math:`w \ge 0`, the ratio of the L1 strength to the group strength.
    axis: the axes one group spans, as in :func:`group_l2`.
    metric: the diagonal :math:`d > 0` of the metric, broadcastable to ``x``, or None.

  Returns:
    An array like ``x``, zero within groups and as whole groups.

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[5.5], [0.5]])  # one unit: soft threshold 0.5, then the group prox
    >>> sparse_group(x, 2.5, l1_weight=0.2).ravel()  # [5, 0] shrunk by 1 - 2.5/5
    Array([2.5, 0. ], dtype=float32)

  References:
    Simon, Friedman, Hastie & Tibshirani, "A sparse-group lasso", 2013.
  """
  x = _as_float(x)
  axes = _group_axes(x, axis)
  strength = _nonnegative("strength", strength, x, _group_shape(x, axes), "the group norms' shape")
  weight = _nonnegative("l1_weight", l1_weight, x)
  metric = _metric(x, metric)
  threshold = weight * strength if metric is None else weight * strength / metric
  return _group_l2(_soft(x, threshold), strength, axes, metric)


def l0(x: ArrayLike, strength: ArrayLike, metric: ArrayLike | None = None) -> jax.Array:
  r"""Hard thresholding, a prox of the L0 count :math:`R(z) = \|z\|_0`.

  .. math:: z = x \cdot \mathbb{1}\big[|x| > \sqrt{2\lambda / d}\big]

  At :math:`|x| = \sqrt{2\lambda/d}` both 0 and ``x`` are minimizers; this returns 0.

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.
    metric: the diagonal :math:`d > 0` of the metric, broadcastable to ``x``, or None.

  Returns:
    An array like ``x`` whose every entry is either that of ``x``, unshrunk, or exactly 0.

  Examples:
    >>> import jax.numpy as jnp
    >>> l0(jnp.array([1.5, -0.9, 0.2]), 0.5)  # kept where |x| > sqrt(2 · 0.5) = 1
    Array([1.5, 0. , 0. ], dtype=float32)

  References:
    Blumensath & Davies, "Iterative thresholding for sparse approximations", 2008.
  """
  x = _as_float(x)
  threshold = jnp.sqrt(2 * _threshold(x, strength, metric))
  kept = jnp.where(jnp.abs(x) > threshold, x, jnp.zeros_like(x))
  if not any(isinstance(v, (jax.Array, jax.core.Tracer)) for v in (strength, metric)):
    return kept  # checked on the host: the threshold cannot be NaN
  return jnp.where(jnp.isnan(threshold), jnp.nan, kept)  # a NaN strength must show


def nonneg_l1(x: ArrayLike, strength: ArrayLike, metric: ArrayLike | None = None) -> jax.Array:
  r"""Prox of :math:`R(z) = \|z\|_1` restricted to :math:`z \ge 0`.

  .. math:: z = \max(x - \lambda / d, 0)

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.
    metric: the diagonal :math:`d > 0` of the metric, broadcastable to ``x``, or None.

  Returns:
    A non-negative array like ``x``.

  References:
    Parikh & Boyd, "Proximal Algorithms", Foundations and Trends in Optimization,
    2014 (the prox of a sum with the indicator of the nonnegative orthant).

  Examples:
    >>> import jax.numpy as jnp
    >>> nonneg_l1(jnp.array([2.0, -1.0, 0.5]), 0.5)
    Array([1.5, 0. , 0. ], dtype=float32)
  """
  x = _as_float(x)
  return jnp.maximum(x - _threshold(x, strength, metric), 0)


def max_norm(x: ArrayLike, max_value: ArrayLike, axis: Axis = None) -> jax.Array:
  r"""Projection of each group onto the L2 ball of radius ``max_value``.

  .. math:: z_g = x_g \min\!\left(1, \frac{c}{\|x_g\|_2}\right)

  A group already on the ball (its norm within 4 ulps of ``max_value``) is returned
  unchanged.

  Args:
    x: input array.
    max_value: radius :math:`c \ge 0`.
    axis: the axes one group spans, as in :func:`group_l2` (default: per output unit).

  Returns:
    An array like ``x`` whose groups have norm at most ``max_value``.

  Examples:
    >>> import jax.numpy as jnp
    >>> max_norm(jnp.array([[3.0], [4.0]]), 2.5).ravel()  # norm 5 scaled to 2.5
    Array([1.5, 2. ], dtype=float32)

  References:
    Srebro & Shraibman, "Rank, trace-norm and max-norm", 2005; used per unit with dropout
    by Srivastava et al., 2014.
  """
  x = _as_float(x)
  axes = _group_axes(x, axis)
  radius = _nonnegative("max_value", max_value, x, _group_shape(x, axes),
                        "the group norms' shape")
  norm, safe_norm = _group_norm(x, axes)
  return jnp.where(_within(norm, radius), 1, radius / safe_norm) * x


def unit_norm(x: ArrayLike, axis: Axis = None) -> jax.Array:
  r"""Projection of each group onto the unit sphere, :math:`z_g = x_g / \|x_g\|_2`.

  A group that is exactly zero has no unique projection; it is returned as zero.

  Args:
    x: input array.
    axis: the axes one group spans, as in :func:`group_l2` (default: per output unit).

  Returns:
    An array like ``x`` whose nonzero groups have unit norm.

  References:
    Salimans & Kingma, "Weight normalization: a simple reparameterization to
    accelerate training of deep neural networks", NeurIPS 2016.

  Examples:
    >>> import jax.numpy as jnp
    >>> unit_norm(jnp.array([[3.0, 0.0], [4.0, 0.0]]))  # a zero unit stays zero
    Array([[0.6, 0. ],
           [0.8, 0. ]], dtype=float32)
  """
  x = _as_float(x)
  norm, safe_norm = _group_norm(x, _group_axes(x, axis))
  return jnp.where(norm > 0, x / safe_norm, 0)


def as_matrix(x: ArrayLike) -> jax.Array:
  """View a kernel ``(..., fan_in, fan_out)`` as a ``(fan_in * ..., fan_out)`` matrix.

  Args:
    x: an array with ``ndim >= 2``.

  Returns:
    ``x`` reshaped to two dimensions, the last one kept.

  Raises:
    ValueError: ``x`` has fewer than two dimensions.

  Examples:
    >>> import jax.numpy as jnp
    >>> as_matrix(jnp.ones((3, 3, 2, 8))).shape  # a 3x3 conv from 2 to 8 channels
    (18, 8)
  """
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(
        f"`x`: orthogonality needs a matrix or a conv kernel, got an array of shape "
        f"{x.shape}; exclude 1-D leaves (biases, scales) with a mask."
    )
  return x.reshape(-1, x.shape[-1])


def _polar_factor(matrix: jax.Array) -> jax.Array:
  r""":math:`U V^\top` of one tall matrix (its polar factor)."""
  # QR-iteration SVD: LAPACK's divide-and-conquer routine (jnp.linalg.svd's default on
  # CPU) can fail to converge in float32 on nearly orthogonal matrices, the very input
  # a retraction sees every step, and then returns NaN.
  u, _, vt = jax.lax.linalg.svd(
      matrix, full_matrices=False, algorithm=jax.lax.linalg.SvdAlgorithm.QR)
  return u @ vt


def _q_factor(matrix: jax.Array) -> jax.Array:
  """The Q factor of one tall matrix, signs fixed so that ``diag(R) > 0``."""
  q, r = jnp.linalg.qr(matrix)
  signs = jnp.where(jnp.diagonal(r) < 0, -1, 1).astype(q.dtype)
  return q * signs[None, :]


def _one_matrix_per_lapack_call(factor):
  """``factor`` on one matrix; under ``vmap`` on CPU, one LAPACK call per matrix.

  jaxlib's CPU LAPACK kernels (0.10.2 at least) split a batched call into chunks that they
  schedule on XLA's intra-op thread pool, and then block that pool thread until the chunks
  are done. When as many batched calls run at once as the pool has threads (independent
  kernels retracted in one step of a vmapped sweep, on a 2-core machine), every thread
  waits for work queued behind it and the program hangs with all threads idle. A call on
  a single matrix runs inline, so on CPU the batch is mapped sequentially
  (``lax.map``); other platforms keep the batched call. Derivatives are JAX's own rules
  for ``factor``, so a differentiated (batched) retraction is not covered by this.
  """
  sequential = custom_batching.custom_vmap(factor)

  @sequential.def_vmap
  def _rule(axis_size: int, in_batched: list[bool], matrices: jax.Array):
    del axis_size
    if not in_batched[0]:
      return sequential(matrices), False
    return jax.lax.platform_dependent(
        matrices, cpu=lambda m: jax.lax.map(sequential, m), default=jax.vmap(factor)), True

  # custom_vmap has no reverse-mode rule; this keeps jax.grad working through the vmap.
  @jax.custom_jvp
  def one(matrix: jax.Array) -> jax.Array:
    return sequential(matrix)

  @one.defjvp
  def _jvp(primals, tangents):
    (matrix,), (tangent,) = primals, tangents
    # The tangent needs the factorization anyway: take the primal from it, not a second one.
    return jax.jvp(factor, (matrix,), (tangent,))

  return one


_FACTORS = {"polar": _one_matrix_per_lapack_call(_polar_factor),
            "qr": _one_matrix_per_lapack_call(_q_factor)}


def orthonormal(x: ArrayLike, method: str = "polar") -> jax.Array:
  r"""Retraction of a matrix (or conv kernel) onto matrices with orthonormal columns.

  For a kernel viewed as :math:`W \in \mathbb{R}^{n \times m}` (``n = prod(shape[:-1])``):
  if :math:`n \ge m` the result has :math:`Z^\top Z = I_m`, else :math:`Z Z^\top = I_n`.

  - ``"polar"``: :math:`Z = U V^\top` from :math:`W = U \Sigma V^\top`, the nearest such
    matrix in Frobenius norm (the Euclidean projection).
  - ``"qr"``: the Q factor of :math:`W = QR` with the signs fixed so that
    :math:`\operatorname{diag}(R) > 0`; cheaper, not the nearest point.

  Under ``jax.vmap`` on CPU the factorizations run one matrix at a time (a ``lax.map``
  over the batch): jaxlib's batched LAPACK calls can deadlock XLA's thread pool when
  several run at once (see ``_one_matrix_per_lapack_call``). Other platforms factor the
  batch in one call.

  Args:
    x: a matrix or a conv kernel.
    method: ``"polar"`` or ``"qr"``.

  Returns:
    An array of the shape and dtype of ``x``.

  Examples:
    >>> import jax.numpy as jnp
    >>> orthonormal(jnp.array([[2.0, 0.0], [0.0, 3.0]]))  # the polar factor
    Array([[1., 0.],
           [0., 1.]], dtype=float32)

  References:
    Absil, Mahony & Sepulchre, "Optimization Algorithms on Matrix Manifolds", 2008, §4.1.
  """
  _checks.check_choice("method", method, ("polar", "qr"))
  x = jnp.asarray(x)
  matrix = as_matrix(x)
  work = matrix.astype(jnp.promote_types(matrix.dtype, jnp.float32))
  tall = work.shape[0] >= work.shape[1]
  if not tall:
    work = work.T
  z = _FACTORS[method](work)
  if not tall:
    z = z.T
  return z.reshape(x.shape).astype(x.dtype)
