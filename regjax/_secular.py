r"""The secular equation of the group prox in a diagonal metric, solved per group.

For one group, :math:`\min_z \lambda\|z\|_2 + \tfrac12 (z - x)^\top D (z - x)` with
:math:`D = \operatorname{diag}(d)`, :math:`d > 0`, has :math:`z = 0` when
:math:`\|D x\|_2 \le \lambda`; otherwise :math:`z_i = x_i d_i r / (d_i r + \lambda)` where
:math:`r = \|z\|_2 > 0` is the root of

.. math:: \phi(r) = \sum_i \frac{(d_i x_i)^2}{(d_i r + \lambda)^2} = 1 .

:math:`\phi` decreases from :math:`\|Dx\|^2/\lambda^2 > 1` to 0, so the root is unique, and
it lies in :math:`[(\|Dx\| - \lambda)/\max d, (\|Dx\| - \lambda)/\min d]`. Newton's method
runs on :math:`F(r) = \phi(r)^{-1/2} - 1`, which is concave and increasing (the
trust-region secular function of Moré & Sorensen), so from the lower end of the bracket
its iterates increase monotonically to the root; it is exact in one step when :math:`d`
is constant on the group. A bracket is kept anyway, and a step that leaves it (rounding,
or a non-finite value) is replaced by bisection.

The iteration runs on values with stopped gradients; one more Newton step on the
differentiable inputs then carries the exact derivative of the root (implicit function
theorem: at a root, :math:`\partial r = -\partial F / F'`), so ``jax.grad`` never
differentiates through the loop.

References:
  Moré & Sorensen, "Computing a trust region step", SIAM J. Sci. Stat. Comput., 1983;
  Yun, Lozano & Yang, "Adaptive proximal gradient methods for structured neural
  networks" (ProxGen), NeurIPS 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MAX_STEPS = 40  # the loop stops earlier, once every group has converged


def _terms(radius, weighted, metric, strength, axes):
  """:math:`\\phi(r)` and :math:`-\\phi'(r)/2` per group (keepdims)."""
  inverse = 1 / (metric * radius + strength)  # one division per element, not two
  squares = jnp.square(weighted * inverse)
  phi = jnp.sum(squares, axis=axes, keepdims=True)
  slope = jnp.sum(metric * squares * inverse, axis=axes, keepdims=True)
  return phi, slope


def _newton(radius, phi, slope):
  # r - F/F' with F = phi^(-1/2) - 1 and F' = phi^(-3/2) * slope.
  return radius + phi * (jnp.sqrt(phi) - 1) / slope


def radius(
    weighted: jax.Array,
    metric: jax.Array,
    strength: jax.Array,
    weighted_norm: jax.Array,
    active: jax.Array,
    axes: tuple[int, ...],
) -> jax.Array:
  r"""The root :math:`r` of :math:`\phi(r) = 1` for each active group (keepdims shape).

  Args:
    weighted: :math:`d \odot x`, normalised so that the group's largest :math:`|x_i|` and
      largest :math:`d_i` are 1.
    metric: :math:`d > 0`, normalised likewise (largest value 1 per group).
    strength: :math:`\lambda \ge 0` in the same units, broadcastable to the group norms.
    weighted_norm: :math:`\|d \odot x\|_2` per group.
    active: groups with :math:`\|d \odot x\|_2 > \lambda`; the others get ``r = 1``, a
      placeholder whose gradient is finite.
    axes: the axes one group spans.

  Returns:
    ``r`` per group, differentiable in every input.
  """
  stop = jax.lax.stop_gradient
  w0, d0, s0 = stop(weighted), stop(metric), stop(strength)
  excess = stop(weighted_norm) - s0
  lower = jnp.where(active, excess, 1)
  upper = jnp.where(active, excess / jnp.min(d0, axis=axes, keepdims=True), 1)
  tolerance = 4 * jnp.finfo(weighted.dtype).eps

  def step(state):
    count, r, lo, hi, _ = state
    phi, slope = _terms(r, w0, d0, s0, axes)
    lo = jnp.where(phi >= 1, r, lo)
    hi = jnp.where(phi <= 1, r, hi)
    candidate = _newton(r, phi, slope)
    inside = (candidate >= lo) & (candidate <= hi)  # False for NaN
    candidate = jnp.where(inside, candidate, (lo + hi) / 2)
    moved = jnp.abs(candidate - r) > tolerance * r
    return count + 1, candidate, lo, hi, jnp.any(moved & active)

  def unfinished(state):
    count, *_, moved = state
    return moved & (count < MAX_STEPS)

  start = (jnp.zeros([], jnp.int32), lower, lower, upper, jnp.array(True))
  root = jnp.where(active, jax.lax.while_loop(unfinished, step, start)[1], 1)
  phi, slope = _terms(root, weighted, metric, strength, axes)
  return _newton(root, jnp.where(active, phi, 1), jnp.where(active, slope, 1))
