r"""Adam with a proximal step in Adam's own metric (ProxGen): exact zeros under Adam.

Public as :func:`regjax.prox_adam` (and :func:`regjax.optimizers.prox_adam`). It is a
whole optimizer, not a transform for the end of a chain: the prox needs Adam's second
moments, so it runs Optax's ``scale_by_adam`` itself and takes raw gradients.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from regjax import _checks, _trees, prox
from regjax._transform_base import Checked, masked_transform, need_params, zero_count
from regjax.typing import Mask, ScalarOrSchedule, Strength

if TYPE_CHECKING:  # defined (and documented) in the public module, which imports this one
  from regjax.transforms import ProxFn


class ProxAdamState(NamedTuple):
  """State of :func:`prox_adam`: its step count and Optax's Adam moments.

  Examples:
    After one gradient ``g = 0.2``, the first moment is :math:`(1 - b_1) g = 0.02`:

    >>> import jax.numpy as jnp, regjax
    >>> tx = regjax.prox_adam(learning_rate=0.1, strength=0.5)
    >>> params = jnp.array([1.0])
    >>> _, state = tx.update(jnp.array([0.2]), tx.init(params), params)
    >>> int(state.count), state.adam.mu
    (1, Array([0.02], dtype=float32))
  """

  # shape=(), dtype=int32: steps taken so far. (The field shadows tuple.count, as in Optax.)
  count: jax.Array  # type: ignore[assignment]
  adam: optax.ScaleByAdamState  # Optax's own first and second moments.


def _accepts_metric(prox_fn: Callable[..., Any]) -> bool:
  """Whether ``prox_fn`` takes a ``metric=`` keyword (True when it has no signature)."""
  try:
    parameters = inspect.signature(prox_fn).parameters.values()
  except (TypeError, ValueError):  # a builtin or C function: leave it to the call
    return True
  return any(p.name == "metric" or p.kind is p.VAR_KEYWORD for p in parameters)


def check_adam_options(b1: float, b2: float, eps: float) -> None:
  """Raise unless Adam's ``b1``, ``b2`` are in ``[0, 1)`` and ``eps >= 0`` (when concrete)."""
  _checks.check_number_tree("b1", b1, high=1.0, high_inclusive=False, allow_callable=False)
  _checks.check_number_tree("b2", b2, high=1.0, high_inclusive=False, allow_callable=False)
  _checks.check_number_tree("eps", eps, allow_callable=False)


def prox_adam(
    learning_rate: ScalarOrSchedule,
    strength: Strength,
    prox_fn: ProxFn | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mask: Mask = None,
    decoupled: bool = False,
) -> optax.GradientTransformation:
  r"""Adam step followed by a prox in Adam's own diagonal metric (ProxGen).

  .. math::
     d_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}, \qquad
     p_{t+1} = \arg\min_z \; \lambda R(z) + \tfrac12 (z - p_t + \eta_t d_t)^\top D_t
     (z - p_t + \eta_t d_t), \qquad D_t = \operatorname{diag}\Big(
     \frac{\sqrt{\hat v_t} + \epsilon}{\eta_t}\Big)

  The prox is taken in the metric of Adam's step, so coordinates and groups reach exactly
  zero without giving up the adaptive step. ``prox_fn`` receives ``metric=`` (it is
  called as ``prox_fn(x, η_t λ, metric=√v̂_t + ε)``, the same problem scaled by
  :math:`\eta_t`): every :mod:`regjax.prox` operator takes it. For a separable penalty
  (``prox.l1``, ``prox.l0``, ``prox.nonneg_l1``, ``prox.elastic_net``) this is the plain
  prox with the per-coordinate threshold :math:`\eta_t\lambda/(\sqrt{\hat v_t}+\epsilon)`;
  for ``prox.group_l2`` and ``prox.sparse_group`` (e.g. ``functools.partial(prox.group_l2,
  axis=0)``) whole units are zeroed in Adam's metric, a group being zero when
  :math:`\|D_g x_g\|_2 \le \lambda`. A ``prox_fn`` without a ``metric`` keyword raises a
  ``TypeError`` here.

  **Coordinates without gradient.** Where :math:`\hat v_t = 0` (the embedding row of a
  token absent from every batch, the weights of a dead unit) the threshold is
  :math:`\eta_t\lambda/\epsilon`: with the default :math:`\epsilon = 10^{-8}` and
  :math:`\lambda = 10^{-8}` such weights shrink by :math:`\eta_t` per step. Measured
  (``tests/test_prox_metric.py``): at ``learning_rate=1e-3``, ``strength=1e-8``, the row
  of an 8×4 embedding table (drawn with scale 0.1, largest entry 0.203) whose token never
  appears in the batches is exactly zero from step 203 on, while the rows of the tokens
  seen keep every weight; with ``decoupled=True`` that row has not moved after 300 steps.
  That is the paper's method and the default.
  ``decoupled=True`` instead takes the Euclidean prox with threshold
  :math:`\eta_t\lambda`, the L1 counterpart of AdamW's decoupled decay: it equals
  ``optax.chain(optax.adam(η, b1, b2, eps), proximal(prox_fn, λ, η))``, leaves untouched
  weights alone at small λ, and accepts any ``prox_fn(x, threshold)``.

  It takes **raw gradients**: it is a whole optimizer (Optax's ``scale_by_adam`` plus the
  prox), so only gradient-processing transforms (clipping) may precede it. With
  ``strength=0`` and an identity-at-zero prox it equals ``optax.adam``. Unselected leaves
  (``mask``) take the plain Adam step.

  Args:
    learning_rate: :math:`\eta_t` (float or schedule).
    strength: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree.
    prox_fn: ``prox_fn(x, threshold, metric=None) -> array``, e.g.
      ``functools.partial(regjax.prox.group_l2, axis=0)``; ``None`` (default) is soft
      thresholding, :func:`regjax.prox.l1`. With ``decoupled=True`` any
      ``prox_fn(x, threshold)``.
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    eps: Adam's :math:`\epsilon`, also in the metric.
    mask: Optax mask of the leaves that get the prox (the others take plain Adam steps).
    decoupled: take the Euclidean prox with threshold :math:`\eta_t\lambda` instead of
      the prox in Adam's metric.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ProxAdamState`.

  Examples:
    One step from ``w`` with gradient 0.2: Adam moves each weight by ``lr = 0.1``, then
    the threshold ``lr * strength / sqrt(v) = 0.1 * 0.5 / 0.2 = 0.25`` sets the small
    weight to exactly zero.

    >>> import jax.numpy as jnp, optax, regjax
    >>> tx = regjax.prox_adam(learning_rate=0.1, strength=0.5)
    >>> params = {"w": jnp.array([1.0, 0.01])}
    >>> grads = {"w": jnp.array([0.2, 0.2])}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["w"].round(4)  # 0.65 up to Adam's eps
    Array([0.65, 0.  ], dtype=float32)

  References:
    Yun, Lozano & Yang, "Adaptive proximal gradient methods for structured neural
    networks" (ProxGen), NeurIPS 2021; Loshchilov & Hutter, "Decoupled weight decay
    regularization", ICLR 2019, for the decoupled variant.
  """
  prox_fn = prox.l1 if prox_fn is None else prox_fn
  _checks.check_callable("prox_fn", prox_fn, "(x, threshold, metric=None) -> array")
  checked = Checked.check("strength", strength)
  lr = Checked.check("learning_rate", learning_rate)
  check_adam_options(b1, b2, eps)
  if not decoupled and not _accepts_metric(prox_fn):
    raise TypeError(
        f"`prox_fn` {prox_fn!r} takes no `metric=` keyword, so it cannot be taken in Adam's "
        "metric (ProxGen). Use a regjax.prox operator, give yours a `metric=None` keyword "
        "(the diagonal d of argmin_z λR(z) + ½(z − x)ᵀdiag(d)(z − x)), or pass "
        "decoupled=True for the Euclidean prox with threshold learning_rate·strength."
    )
  adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

  def init_fn(params):
    _checks.check_float_params("params", params)
    checked.match(params)
    _trees.resolve_mask(mask, params)
    return ProxAdamState(count=zero_count(), adam=adam.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    need_params(params)
    directions, adam_state = adam.update(updates, state.adam, params)
    nu_hat = optax.tree.bias_correction(adam_state.nu, b2, adam_state.count)
    rate = lr.at(state.count)
    strengths = checked.per_leaf(state.count, params)
    selected = _trees.resolve_mask(mask, params)

    def leaf(d, p, v, lam, keep):
      if d is None:  # no array here (e.g. an Equinox module's non-array field)
        return None
      moved = p - rate * d
      if keep and lam is not None:
        if decoupled:
          moved = prox_fn(moved, rate * lam)
        else:
          moved = prox_fn(moved, rate * lam, metric=jnp.sqrt(v) + eps)
      return (moved - p).astype(p.dtype)

    new = jax.tree.map(leaf, directions, params, nu_hat, strengths, selected,
                       is_leaf=_trees.is_leaf)
    return new, ProxAdamState(
        count=optax.safe_increment(state.count), adam=adam_state
    )

  return masked_transform(init_fn, update_fn)


def preconditioned_proximal(prox_fn: ProxFn, strength: Strength,
                            learning_rate: ScalarOrSchedule,
                            **adam_options: Any) -> optax.GradientTransformation:
  """Deprecated: :func:`prox_adam` with ``prox_fn`` first; call ``prox_adam`` instead.

  ``preconditioned_proximal(prox_fn, strength, learning_rate, **options)`` is
  ``prox_adam(learning_rate, strength, prox_fn, **options)``.
  """
  warnings.warn(
      "regjax.preconditioned_proximal is deprecated: call "
      "regjax.prox_adam(learning_rate, strength, prox_fn, ...) instead.",
      DeprecationWarning, stacklevel=2)
  return prox_adam(learning_rate, strength, prox_fn, **adam_options)
