r"""Proximal operators and projections on arrays.

Every operator ``NAME(x, strength, ...)`` solves

.. math::

  \operatorname{prox}(x) = \arg\min_z \; \text{strength} \cdot R(z) + \tfrac12 \|z - x\|_2^2

for the penalty :math:`R` of the same name in :mod:`regjax.penalties` (same convention: no
½ in front of squared terms). ``strength`` broadcasts against ``x``, which is how a
per-coordinate (preconditioned) threshold is passed; it may be a traced value, so these
operators vmap over strengths. Projections take no strength: they solve
:math:`\arg\min_{z \in C} \|z - x\|_2` for a set :math:`C`.

Group operators take ``axis``, the axes that one group spans. In Flax's kernel layout
``(..., fan_in, fan_out)`` the default ``axis=None`` means every axis but the last, so a
group is one output unit (a neuron's incoming weights, or a conv filter).

References:
  Parikh & Boyd, "Proximal Algorithms", Foundations and Trends in Optimization, 2014.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from regjax import _checks

Axis = int | Sequence[int] | None


def _strength(x: jax.Array, strength: ArrayLike) -> jax.Array:
  return jnp.asarray(strength, dtype=x.dtype)


def l1(x: ArrayLike, strength: ArrayLike) -> jax.Array:
  r"""Soft thresholding, the prox of the L1 norm.

  .. math:: z = \operatorname{sign}(x) \max(|x| - \lambda, 0),
     \quad R(z) = \|z\|_1

  Coordinates with :math:`|x| \le \lambda` become exactly zero.

  Args:
    x: input array.
    strength: threshold :math:`\lambda \ge 0`, broadcastable against ``x``.

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
  x = jnp.asarray(x)
  strength = _strength(x, strength)
  return jnp.sign(x) * jnp.maximum(jnp.abs(x) - strength, 0)


def l2_squared(x: ArrayLike, strength: ArrayLike) -> jax.Array:
  r"""Ridge shrinkage, the prox of the squared L2 norm (no ½ in front).

  .. math:: z = \frac{x}{1 + 2\lambda}, \quad R(z) = \|z\|_2^2

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.

  Returns:
    An array like ``x``; never exactly zero unless ``x`` is.
  """
  x = jnp.asarray(x)
  return x / (1 + 2 * _strength(x, strength))


def elastic_net(x: ArrayLike, strength: ArrayLike, l2_weight: ArrayLike = 1.0) -> jax.Array:
  r"""Prox of the elastic net :math:`R(z) = \|z\|_1 + w \|z\|_2^2`.

  .. math:: z = \frac{\operatorname{sign}(x)\max(|x| - \lambda, 0)}{1 + 2 w \lambda}

  With ``strength=λ`` and ``l2_weight=w`` the penalty is :math:`\lambda_1\|z\|_1 +
  \lambda_2\|z\|_2^2` with :math:`\lambda_1 = \lambda`, :math:`\lambda_2 = w\lambda`.

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.
    l2_weight: :math:`w \ge 0`, the ratio of the L2 to the L1 strength.

  Returns:
    An array like ``x``.

  References:
    Zou & Hastie, "Regularization and variable selection via the elastic net", 2005.
  """
  x = jnp.asarray(x)
  strength = _strength(x, strength)
  return l1(x, strength) / (1 + 2 * jnp.asarray(l2_weight, x.dtype) * strength)


def _group_norm(x: jax.Array, axis: Axis) -> tuple[jax.Array, jax.Array]:
  """Group L2 norms (keepdims) and a copy that is 1 where the norm is 0.

  The second value keeps ``1/norm`` and ``sqrt`` away from zero so that gradients stay
  finite at ``x = 0`` (the double-``where`` pattern). The sum of squares is taken after
  dividing by the group's largest magnitude, so that tiny groups do not underflow to a
  zero norm and large ones do not overflow to infinity.
  """
  # The norm is 1-homogeneous, so its derivative along the scale is zero: stopping the
  # gradient there is exact and keeps 1/scale² out of the backward pass.
  scale = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=axis, keepdims=True))
  positive = scale > 0
  safe_scale = jnp.where(positive, scale, 1)
  squared = jnp.sum(jnp.square(x / safe_scale), axis=axis, keepdims=True)
  safe_norm = safe_scale * jnp.sqrt(jnp.where(positive, squared, 1))
  return jnp.where(positive, safe_norm, 0), safe_norm


def _group_axes(x: jax.Array, axis: Axis) -> tuple[int, ...]:
  if axis is None:
    if x.ndim < 2:
      return tuple(range(x.ndim))
    return tuple(range(x.ndim - 1))
  axes = (axis,) if isinstance(axis, int) else tuple(axis)
  for a in axes:
    if not -x.ndim <= a < x.ndim:
      raise ValueError(f"`axis` {axis!r} is out of range for an array of shape {x.shape}.")
  return tuple(a % x.ndim for a in axes)


def group_l2(x: ArrayLike, strength: ArrayLike, axis: Axis = None) -> jax.Array:
  r"""Block soft thresholding, the prox of the group lasso :math:`R(z) = \sum_g \|z_g\|_2`.

  .. math:: z_g = \max\!\left(1 - \frac{\lambda}{\|x_g\|_2}, 0\right) x_g

  A whole group becomes exactly zero when :math:`\|x_g\|_2 \le \lambda`. The gradient is
  finite everywhere, including at :math:`x_g = 0`.

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, a scalar or broadcastable against the group norms
      (shape of ``x`` with the ``axis`` dimensions set to 1).
    axis: the axes one group spans; ``None`` means all but the last (one group per output
      unit in Flax's ``(fan_in, fan_out)`` layout; the whole vector for 1-D ``x``).

  Returns:
    An array like ``x``.

  References:
    Yuan & Lin, "Model selection and estimation in regression with grouped variables",
    2006.
  """
  x = jnp.asarray(x)
  norm, safe_norm = _group_norm(x, _group_axes(x, axis))
  strength = _strength(x, strength)
  scale = jnp.where(norm > strength, 1 - strength / safe_norm, 0)
  return scale * x


def sparse_group(
    x: ArrayLike, strength: ArrayLike, l1_weight: ArrayLike = 1.0, axis: Axis = None
) -> jax.Array:
  r"""Prox of the sparse group lasso :math:`R(z) = \sum_g \|z_g\|_2 + w \|z\|_1`.

  .. math:: z = \operatorname{prox}_{\lambda \|\cdot\|_{2,1}}\big(
     \operatorname{prox}_{w\lambda\|\cdot\|_1}(x)\big)

  The composition is exact for this pair of penalties.

  Args:
    x: input array.
    strength: group strength :math:`\lambda \ge 0`.
    l1_weight: :math:`w \ge 0`, the ratio of the L1 strength to the group strength.
    axis: the axes one group spans, as in :func:`group_l2`.

  Returns:
    An array like ``x``, zero within groups and as whole groups.

  References:
    Simon, Friedman, Hastie & Tibshirani, "A sparse-group lasso", 2013.
  """
  x = jnp.asarray(x)
  strength = _strength(x, strength)
  shrunk = l1(x, jnp.asarray(l1_weight, x.dtype) * strength)
  return group_l2(shrunk, strength, axis)


def l0(x: ArrayLike, strength: ArrayLike) -> jax.Array:
  r"""Hard thresholding, a prox of the L0 count :math:`R(z) = \|z\|_0`.

  .. math:: z = x \cdot \mathbb{1}\big[|x| > \sqrt{2\lambda}\big]

  At :math:`|x| = \sqrt{2\lambda}` both 0 and ``x`` are minimizers; this returns 0.

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.

  Returns:
    An array like ``x``.

  References:
    Blumensath & Davies, "Iterative thresholding for sparse approximations", 2008.
  """
  x = jnp.asarray(x)
  threshold = jnp.sqrt(2 * _strength(x, strength))
  return jnp.where(jnp.abs(x) > threshold, x, jnp.zeros_like(x))


def nonneg_l1(x: ArrayLike, strength: ArrayLike) -> jax.Array:
  r"""Prox of :math:`R(z) = \|z\|_1` restricted to :math:`z \ge 0`.

  .. math:: z = \max(x - \lambda, 0)

  Args:
    x: input array.
    strength: :math:`\lambda \ge 0`, broadcastable against ``x``.

  Returns:
    A non-negative array like ``x``.
  """
  x = jnp.asarray(x)
  return jnp.maximum(x - _strength(x, strength), 0)


def max_norm(x: ArrayLike, max_value: ArrayLike, axis: Axis = None) -> jax.Array:
  r"""Projection of each group onto the L2 ball of radius ``max_value``.

  .. math:: z_g = x_g \min\!\left(1, \frac{c}{\|x_g\|_2}\right)

  Args:
    x: input array.
    max_value: radius :math:`c \ge 0`.
    axis: the axes one group spans, as in :func:`group_l2` (default: per output unit).

  Returns:
    An array like ``x`` whose groups have norm at most ``max_value``.

  References:
    Srebro & Shraibman, "Rank, trace-norm and max-norm", 2005; used per unit with dropout
    by Srivastava et al., 2014.
  """
  x = jnp.asarray(x)
  norm, safe_norm = _group_norm(x, _group_axes(x, axis))
  radius = jnp.asarray(max_value, x.dtype)
  return jnp.where(norm > radius, radius / safe_norm, 1) * x


def unit_norm(x: ArrayLike, axis: Axis = None) -> jax.Array:
  r"""Projection of each group onto the unit sphere, :math:`z_g = x_g / \|x_g\|_2`.

  A group that is exactly zero has no unique projection; it is returned as zero.

  Args:
    x: input array.
    axis: the axes one group spans, as in :func:`group_l2` (default: per output unit).

  Returns:
    An array like ``x`` whose nonzero groups have unit norm.
  """
  x = jnp.asarray(x)
  norm, safe_norm = _group_norm(x, _group_axes(x, axis))
  return jnp.where(norm > 0, x / safe_norm, 0)


def as_matrix(x: jax.Array) -> jax.Array:
  """View a kernel ``(..., fan_in, fan_out)`` as a ``(fan_in * ..., fan_out)`` matrix."""
  if x.ndim < 2:
    raise ValueError(
        f"orthogonality needs a matrix or a conv kernel, got an array of shape {x.shape}; "
        "exclude 1-D leaves (biases, scales) with a mask."
    )
  return x.reshape(-1, x.shape[-1])


def orthonormal(x: ArrayLike, method: str = "polar") -> jax.Array:
  r"""Retraction of a matrix (or conv kernel) onto matrices with orthonormal columns.

  For a kernel viewed as :math:`W \in \mathbb{R}^{n \times m}` (``n = prod(shape[:-1])``):
  if :math:`n \ge m` the result has :math:`Z^\top Z = I_m`, else :math:`Z Z^\top = I_n`.

  - ``"polar"``: :math:`Z = U V^\top` from :math:`W = U \Sigma V^\top`, the nearest such
    matrix in Frobenius norm (the Euclidean projection).
  - ``"qr"``: the Q factor of :math:`W = QR` with the signs fixed so that
    :math:`\operatorname{diag}(R) > 0`; cheaper, not the nearest point.

  Args:
    x: a matrix or a conv kernel.
    method: ``"polar"`` or ``"qr"``.

  Returns:
    An array of the shape and dtype of ``x``.

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
  if method == "polar":
    # QR-iteration SVD: LAPACK's divide-and-conquer routine (jnp.linalg.svd's default on
    # CPU) can fail to converge in float32 on nearly orthogonal matrices, the very input
    # a retraction sees every step, and then returns NaN.
    u, _, vt = jax.lax.linalg.svd(
        work, full_matrices=False, algorithm=jax.lax.linalg.SvdAlgorithm.QR)
    z = u @ vt
  else:
    q, r = jnp.linalg.qr(work)
    signs = jnp.where(jnp.diagonal(r) < 0, -1, 1).astype(q.dtype)
    z = q * signs[None, :]
  if not tall:
    z = z.T
  return z.reshape(x.shape).astype(x.dtype)
