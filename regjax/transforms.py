r"""Optax gradient transformations built on :mod:`regjax.prox` and :mod:`regjax.penalties`.

Where a transform sits in an ``optax.chain`` decides what it means, so each docstring
says where it goes:

- *before* the optimizer's scaling (like ``optax.add_decayed_weights``):
  :func:`add_penalty_gradient`, :func:`orthogonality` — they add :math:`\lambda\nabla R(p)`
  to the gradient, so the optimizer rescales it (Adam preconditions it).
- *last*, after ``scale_by_learning_rate`` (the updates are already the step
  :math:`-\eta g`): :func:`proximal`, :func:`decoupled_weight_decay`, :func:`project`.
- :func:`regjax.prox_adam` (ProxGen, the prox in Adam's metric) is a whole optimizer and
  takes raw gradients; it lives with the optimizers.

Strengths and learning rates are ``float``, JAX scalars (traced values are fine, which is
what lets ``jax.vmap`` train a grid of strengths), Optax schedules ``step -> value``, or,
for strengths, a pytree with one value per parameter leaf (per-layer λ, see
:func:`regjax.masks.per_layer`). Schedules are evaluated at the transform's own step
counter, starting at 0, like Optax's.

Strength trees and masks are matched to the parameters by path (``layers/0/kernel``),
whatever the containers: an ``nnx.State`` of ``nnx.Param`` wrappers, its raw arrays,
``nnx.to_pure_dict`` or a plain dict; masks follow Optax (a tree of bools, a prefix of
the parameter tree, or a callable). As in ``optax.masked``, every path of a mask, a
strength tree or a ``target`` must name a parameter or a prefix of one: an entry that
names nothing (a typo, or a tree built from ``nnx.state(model)`` for an optimizer that
updates ``nnx.state(model, nnx.Param)``) raises a ``ValueError`` at ``init``.

**Bad values.** What can be read when the transform is built is checked then, and a
bad value raises a ``ValueError``/``TypeError`` naming the argument: a negative, NaN,
infinite or non-numeric strength, rate or learning rate (Python number, NumPy or
concrete JAX array), and a schedule that is clearly negative or not finite at one of
the probe steps 0, 1, 10, ..., 10⁶ (it is evaluated there on the host, once). A traced
value cannot be read; in the step,

- a value :math:`v < -\tau`, NaN or infinite becomes NaN, so the step fails loudly and a
  sweep reports the row as failed instead of silently anti-regularizing;
- a value in :math:`[-\tau, 0)` is a float rounding residue and counts as 0.

The same holds for a schedule's value at each step. :math:`\tau = 16\,\varepsilon_{32}
\max(1, S) \approx 1.9\times10^{-6}\max(1, S)`, 16 float32 ulps of the schedule's largest
value :math:`S` at the probe steps (:math:`S = 1` for a traced number). Why: under
``jit`` XLA computes ``count / steps`` as ``count * (1 / steps)``, so a schedule that ends
at 0 evaluates to a few ulps below it (``optax.linear_schedule(0.2, 0.0, 15)`` gives
``-1.04e-8`` from step 15 on), and ``optax.inject_hyperparams`` passes that number in as
a traced value; Optax's own transforms use it as is, a negligible ``-1e-8``, and so must
these. A negative value you write is never a residue: it raises, however small.

``update`` never reads values on the host: NaN updates are not checked here (use the
sweep's failed-row flags, ``optax.apply_if_finite`` or
``jax.config.update("jax_debug_nans", True)``), and it accepts extra keyword arguments,
like ``optax.GradientTransformationExtraArgs``. ``docs/guides/bad_input.md`` tabulates
what every public entry point does with each kind of bad input.

Every factory works with ``optax.inject_hyperparams``; no default argument is callable
(``inject_hyperparams`` takes callables for schedules), so a callable you pass that is
not a schedule (``prox_fn``, a callable ``mask``) goes in ``static_args``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import jax
import optax

from regjax import _checks, _lazy, _trees
from regjax._orthogonality import OrthogonalityState, orthogonality
from regjax._proxgen import ProxAdamState
from regjax._transform_base import (
  Checked,
  ScheduleState,
  leafwise,
  masked_transform,
  need_params,
  schedule_init,
  zero_count,
)
from regjax._trees import MATRICES
from regjax.typing import Mask, Params, ScalarOrSchedule, Strength

if TYPE_CHECKING:
  # The deprecated names (see `_DEPRECATED`), as type checkers should see them.
  from regjax._proxgen import preconditioned_proximal  # noqa: F401
  from regjax._trees import MATRICES as DEFAULT_MASK  # noqa: F401

__all__ = [
    "OrthogonalityState",
    "ProxAdamState",
    "ProxFn",
    "ScheduleState",
    "add_penalty_gradient",
    "decoupled_weight_decay",
    "orthogonality",
    "project",
    "proximal",
]

ProxFn: TypeAlias = Callable[..., jax.Array]
"""A proximal operator ``prox_fn(x, threshold) -> array``, as :mod:`regjax.prox` defines them.

:func:`proximal` calls it as ``prox_fn(p + u, η λ)``; :func:`regjax.prox_adam` adds
``metric=`` (every operator of :mod:`regjax.prox` takes it). Bind other arguments first:
``functools.partial(regjax.prox.group_l2, axis=0)``.
"""

# Deprecated names, still reachable with a warning on every access (see regjax._lazy).
# `DEFAULT_MASK` is the non-callable stand-in for `regjax.masks.matrices` that the
# factories take as their default `mask` (a callable default would be taken for a
# schedule by `optax.inject_hyperparams`); it stays the object it was, so code that
# passes it keeps its meaning, but the concept has one public name, `masks.matrices`.
_DEPRECATED: dict[str, tuple[str, str, str]] = {
    "DEFAULT_MASK": (
        "regjax._trees", "MATRICES",
        "regjax.masks.matrices (or leave `mask` at its default, which selects the same leaves)"),
    "preconditioned_proximal": (
        "regjax._proxgen", "preconditioned_proximal",
        "regjax.prox_adam(learning_rate, strength, prox_fn, ...)"),
}

if not TYPE_CHECKING:
  __getattr__, __dir__ = _lazy.attach(__name__, {}, globals(), _DEPRECATED)


def proximal(
    prox_fn: ProxFn,
    strength: Strength,
    learning_rate: ScalarOrSchedule,
    mask: Mask = None,
) -> optax.GradientTransformation:
  r"""Proximal step: maps an update ``u`` to ``prox(p + u, η_t λ) − p``.

  .. math:: p_{t+1} = \operatorname{prox}_{\eta_t \lambda R}(p_t + u_t)

  Goes **last** in a chain, after ``scale_by_learning_rate`` (``u = −η g``), and
  ``learning_rate`` must be the one that chain used, so the threshold is
  :math:`\eta_t\lambda`. With SGD this is proximal gradient descent (ISTA) on
  :math:`L(p) + \lambda R(p)`. Parameters that the prox sets to zero are exactly 0.0
  after ``optax.apply_updates``.

  Args:
    prox_fn: ``prox_fn(x, threshold) -> array``, e.g. :func:`regjax.prox.l1` or
      ``functools.partial(regjax.prox.group_l2, axis=0)``.
    strength: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree.
    learning_rate: :math:`\eta_t`, the chain's learning rate (float or schedule).
    mask: Optax mask (tree of bools or callable); unselected leaves pass through.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScheduleState`.

  Examples:
    Proximal gradient descent (ISTA): the L1 prox after an SGD step.

    >>> import jax.numpy as jnp, optax, regjax
    >>> tx = optax.chain(optax.sgd(0.1), regjax.proximal(regjax.prox.l1, 1.0, 0.1))
    >>> params = jnp.array([0.05, -2.0])
    >>> updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
    >>> optax.apply_updates(params, updates)  # threshold 0.1 * 1.0
    Array([ 0. , -1.9], dtype=float32)

  References:
    Parikh & Boyd, "Proximal Algorithms", 2014, §4.2.
  """
  _checks.check_callable("prox_fn", prox_fn, "(x, threshold) -> array")
  checked = Checked.check("strength", strength)
  lr = Checked.check("learning_rate", learning_rate)
  init_fn = schedule_init(checked)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    need_params(params)
    rate = lr.at(state.count)
    strengths = checked.per_leaf(state.count, updates)

    def leaf(u, p, lam):
      if lam is None:
        return u
      z = prox_fn(p + u, rate * lam)
      return (z - p).astype(u.dtype)

    new = leafwise(leaf, updates, params, strengths)
    return new, ScheduleState(count=optax.safe_increment(state.count))

  return masked_transform(init_fn, update_fn, mask)


def decoupled_weight_decay(
    rate: Strength,
    learning_rate: ScalarOrSchedule | None = None,
    target: Params = None,
    mask: Mask = MATRICES,
) -> optax.GradientTransformation:
  r"""Weight decay applied to the step itself, independent of the gradient's scaling.

  .. math:: u \leftarrow u - s_t\,\lambda\,(p - p_0), \qquad
     s_t = \eta_t \text{ (lr-coupled)} \text{ or } 1 \text{ (independent)}

  Goes **last** in a chain, after ``scale_by_learning_rate``. With ``learning_rate``
  given it is lr-coupled, the AdamW of Optax and PyTorch: ``chain(scale_by_adam(),
  scale_by_learning_rate(η), decoupled_weight_decay(λ, η))`` equals
  ``optax.adamw(η, weight_decay=λ)``. With ``learning_rate=None`` the decay does not
  depend on the learning rate at all (a schedule on ``rate`` plays the role of
  Loshchilov & Hutter's multiplier :math:`\eta_t`): with a zero gradient each step
  multiplies :math:`p - p_0` by exactly :math:`1 - \lambda`. ``target`` :math:`p_0`
  decays toward pretrained weights (L2-SP).

  Args:
    rate: :math:`\lambda \ge 0`; float, JAX scalar, schedule, or a per-leaf tree.
    learning_rate: the chain's learning rate for lr-coupled decay, or None.
    target: a tree like the params (e.g. pretrained weights), or None for zero.
    mask: Optax mask; the default selects the leaves :func:`regjax.masks.matrices`
      selects, ``ndim >= 2``, so biases and normalization scales are not decayed.
      ``None`` decays every leaf.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScheduleState`.

  Examples:
    Independent of the learning rate: with a zero step, kernels shrink by ``1 - rate``
    and biases (1-D) are left alone by the default mask.

    >>> import jax, jax.numpy as jnp, optax, regjax
    >>> tx = regjax.decoupled_weight_decay(0.1)
    >>> params = {"kernel": jnp.full((1, 2), 2.0), "bias": jnp.ones(2)}
    >>> zero = jax.tree.map(jnp.zeros_like, params)
    >>> updates, _ = tx.update(zero, tx.init(params), params)
    >>> optax.apply_updates(params, updates)
    {'bias': Array([1., 1.], dtype=float32), 'kernel': Array([[1.8, 1.8]], dtype=float32)}

  References:
    Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019;
    Li, Grandvalet & Davoine, "Explicit inductive bias for transfer learning with
    convolutional networks" (L2-SP), ICML 2018.
  """
  return _decoupled_weight_decay("rate", rate, learning_rate, target, mask)


def _decoupled_weight_decay(
    name: str,
    rate: Strength,
    learning_rate: ScalarOrSchedule | None,
    target: Params,
    mask: Mask,
) -> optax.GradientTransformation:
  """:func:`decoupled_weight_decay`, whose messages call ``rate`` ``name`` (``adamw``'s
  ``weight_decay``)."""
  checked = Checked.check(name, rate)
  lr = None if learning_rate is None else Checked.check("learning_rate", learning_rate)

  def init_fn(params):
    _checks.check_float_params("params", params)
    checked.match(params)
    if target is not None:
      _trees.match("target", target, params)
    return ScheduleState(count=zero_count())

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    need_params(params)
    scale = 1.0 if lr is None else lr.at(state.count)
    rates = checked.per_leaf(state.count, updates)
    anchors = jax.tree.map(lambda _: None, updates, is_leaf=_trees.is_leaf) if (
        target is None) else _trees.match("target", target, updates)

    def leaf(u, p, lam, p0):
      if lam is None:
        return u
      offset = p if p0 is None else p - p0
      return (u - scale * lam * offset).astype(u.dtype)

    new = leafwise(leaf, updates, params, rates, anchors)
    return new, ScheduleState(count=optax.safe_increment(state.count))

  return masked_transform(init_fn, update_fn, mask)


def add_penalty_gradient(
    penalty: Callable[[jax.Array], jax.Array],
    strength: Strength,
    mask: Mask = None,
) -> optax.GradientTransformation:
  r"""Adds :math:`\lambda \nabla R(p)` to the gradient, as if ``λ·R(p)`` were in the loss.

  .. math:: g \leftarrow g + \lambda \nabla R(p)

  Goes **first**, before the optimizer's scaling. With ``penalties.l1`` this is the
  subgradient method (``sign(p)``, 0 at 0), which rarely lands on exact zeros; prefer
  :func:`proximal` for sparsity.

  Args:
    penalty: ``array -> scalar``, differentiable almost everywhere.
    strength: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree.
    mask: Optax mask; ``None`` selects every leaf.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScheduleState`.

  References:
    Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019
    (the coupled form, the penalty's gradient added to the loss's, that
    it contrasts with decoupled decay).

  Examples:
    The gradient of ``0.5 · l2_squared(p)`` is ``p``, added to a zero gradient:

    >>> import jax.numpy as jnp, regjax
    >>> tx = regjax.add_penalty_gradient(regjax.penalties.l2_squared, 0.5)
    >>> params = jnp.array([1.0, -2.0])
    >>> tx.update(jnp.zeros(2), tx.init(params), params)[0]
    Array([ 1., -2.], dtype=float32)
  """
  _checks.check_callable("penalty", penalty, "array -> scalar")
  checked = Checked.check("strength", strength)
  gradient = jax.grad(penalty)
  init_fn = schedule_init(checked)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    need_params(params)
    strengths = checked.per_leaf(state.count, updates)

    def leaf(g, p, lam):
      if lam is None:
        return g
      return (g + lam * gradient(p).astype(g.dtype)).astype(g.dtype)

    new = leafwise(leaf, updates, params, strengths)
    return new, ScheduleState(count=optax.safe_increment(state.count))

  return masked_transform(init_fn, update_fn, mask)


def project(
    projection: Callable[[jax.Array], jax.Array], mask: Mask = None
) -> optax.GradientTransformation:
  r"""Constraint after the step: maps an update ``u`` to ``projection(p + u) − p``.

  .. math:: p_{t+1} = \Pi_C(p_t + u_t)

  Goes **last** in a chain. Examples: ``project(functools.partial(prox.max_norm,
  max_value=3.0))`` (max-norm per unit), ``project(optax.projections.projection_non_negative)``,
  ``project(prox.orthonormal, mask=masks.matrices)`` (hard orthogonality by polar
  retraction, kernels only; pass ``functools.partial(prox.orthonormal, method="qr")`` for
  the cheaper QR retraction). The orthonormal projection needs matrices, so give it a
  mask that leaves biases out.

  Args:
    projection: ``array -> array`` onto the constraint set.
    mask: Optax mask; ``None`` selects every leaf.

  Returns:
    An ``optax.GradientTransformation`` with ``optax.EmptyState``.

  Examples:
    >>> import jax.numpy as jnp, optax, regjax
    >>> tx = regjax.project(optax.projections.projection_non_negative)
    >>> params = jnp.array([0.5, 0.25])
    >>> updates, _ = tx.update(jnp.array([-1.0, 0.5]), tx.init(params), params)
    >>> optax.apply_updates(params, updates)
    Array([0.  , 0.75], dtype=float32)

  References:
    Projected gradient descent; Absil, Mahony & Sepulchre, 2008, for retractions.
  """
  _checks.check_callable("projection", projection, "array -> array")

  def init_fn(params):
    _checks.check_float_params("params", params)
    return optax.EmptyState()

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    need_params(params)
    new = leafwise(lambda u, p: (projection(p + u) - p).astype(u.dtype), updates, params)
    return new, state

  return masked_transform(init_fn, update_fn, mask)
