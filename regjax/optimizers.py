"""Ready optimizers, one line for a user: proximal SGD and Adam, and AdamW with masks.

Every alias works with ``optax.inject_hyperparams``: no default is callable, so
``optax.inject_hyperparams(regjax.prox_adam)(learning_rate=1e-3, strength=1e-4)`` exposes
``learning_rate``, ``strength``, ``b1``, ... in ``state.hyperparams``. A ``prox_fn`` or a
callable ``mask`` that you pass goes in ``static_args``.
"""

from __future__ import annotations

import optax

from regjax import _checks, prox, transforms
from regjax._proxgen import check_adam_options, prox_adam
from regjax._trees import MATRICES
from regjax.typing import Mask, Params, ScalarOrSchedule, Strength

__all__ = ["adamw", "prox_adam", "prox_sgd"]


def _or_l1(prox_fn: transforms.ProxFn | None) -> transforms.ProxFn:
  return prox.l1 if prox_fn is None else prox_fn


def prox_sgd(
    learning_rate: ScalarOrSchedule,
    strength: Strength,
    prox_fn: transforms.ProxFn | None = None,
    momentum: float | None = None,
    nesterov: bool = False,
    mask: Mask = None,
) -> optax.GradientTransformation:
  r"""(Momentum) SGD followed by a proximal step: ISTA when ``momentum`` is None.

  .. math:: p_{t+1} = \operatorname{prox}_{\eta_t\lambda R}(p_t - \eta_t g_t)

  Args:
    learning_rate: :math:`\eta_t`.
    strength: :math:`\lambda`; float, JAX scalar, schedule or per-leaf tree.
    prox_fn: the prox of :math:`R`; ``None`` (default) is soft thresholding,
      :func:`regjax.prox.l1`.
    momentum: heavy-ball momentum in ``[0, 1)``, or None.
    nesterov: Nesterov momentum.
    mask: Optax mask of the leaves that get the prox.

  Returns:
    ``optax.chain(optax.sgd(...), transforms.proximal(...))``.

  Examples:
    One step: SGD moves ``2.0`` to ``2.5``, then soft thresholding at ``0.5 · 1.0``
    takes ``0.5`` off every weight and zeroes the small one.

    >>> import jax.numpy as jnp, optax, regjax
    >>> tx = regjax.prox_sgd(learning_rate=0.5, strength=1.0)
    >>> params = jnp.array([0.25, 2.0])
    >>> updates, _ = tx.update(jnp.array([0.0, -1.0]), tx.init(params), params)
    >>> optax.apply_updates(params, updates)
    Array([0., 2.], dtype=float32)

  References:
    Beck & Teboulle, "A fast iterative shrinkage-thresholding algorithm", 2009.
  """
  if momentum is not None:
    _checks.check_number_tree("momentum", momentum, high=1.0, high_inclusive=False,
                              allow_callable=False)
  return optax.chain(
      optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov),
      transforms.proximal(_or_l1(prox_fn), strength, learning_rate, mask=mask),
  )


def adamw(
    learning_rate: ScalarOrSchedule,
    weight_decay: Strength = 1e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    coupled: bool = True,
    target: Params = None,
    mask: Mask = MATRICES,
) -> optax.GradientTransformation:
  r"""Adam with decoupled weight decay that skips biases and norm scales by default.

  .. math:: p_{t+1} = p_t - \eta_t\big(d_t + \lambda (p_t - p_0)\big) \text{ (coupled)},
     \quad p_{t+1} = p_t - \eta_t d_t - \lambda (p_t - p_0) \text{ (not coupled)}

  Args:
    learning_rate: :math:`\eta_t`.
    weight_decay: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree
      (per-layer rates, e.g. from :func:`regjax.masks.per_layer`).
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    eps: Adam's :math:`\epsilon`.
    coupled: multiply the decay by the learning rate (Optax/PyTorch AdamW) or not.
    target: :math:`p_0`, e.g. pretrained weights (L2-SP); None for zero.
    mask: Optax mask of decayed leaves; the default selects the leaves
      :func:`regjax.masks.matrices` selects, ``ndim >= 2``; None decays all.

  Returns:
    An ``optax.GradientTransformation``.

  Examples:
    Per-layer weight decay, and ``optax.inject_hyperparams`` to change it mid-training.

    >>> import jax, jax.numpy as jnp, optax, regjax
    >>> params = {"encoder": {"kernel": jnp.ones((2, 2))}, "head": {"kernel": jnp.ones((2, 1))}}
    >>> decay = regjax.per_layer(params, {"encoder": 0.5, "head": 0.0})
    >>> tx = regjax.adamw(learning_rate=0.1, weight_decay=decay)
    >>> zero = jax.tree.map(jnp.zeros_like, params)
    >>> updates, _ = tx.update(zero, tx.init(params), params)
    >>> float(updates["encoder"]["kernel"][0, 0]), bool(updates["head"]["kernel"][0, 0] == 0)
    (-0.05000000074505806, True)
    >>> tx = optax.inject_hyperparams(regjax.adamw)(learning_rate=0.1, weight_decay=0.5)
    >>> state = tx.init(params)
    >>> state.hyperparams["weight_decay"] = jnp.asarray(0.0)  # switch decay off
    >>> updates, state = tx.update(zero, state, params)
    >>> bool(updates["encoder"]["kernel"][0, 0] == 0)
    True

  References:
    Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019.
  """
  check_adam_options(b1, b2, eps)
  return optax.chain(
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
      optax.scale_by_learning_rate(learning_rate),
      transforms._decoupled_weight_decay(
          "weight_decay", weight_decay, learning_rate if coupled else None, target, mask
      ),
  )
