"""Ready optimizers, one line for a user: proximal SGD and Adam, and AdamW with masks."""

from __future__ import annotations

from typing import Any

import optax

from regjax import prox, transforms


def prox_sgd(
    learning_rate: optax.ScalarOrSchedule,
    strength: Any,
    prox_fn: transforms.ProxFn = prox.l1,
    momentum: float | None = None,
    nesterov: bool = False,
    mask: Any = None,
) -> optax.GradientTransformation:
  r"""(Momentum) SGD followed by a proximal step: ISTA when ``momentum`` is None.

  .. math:: p_{t+1} = \operatorname{prox}_{\eta_t\lambda R}(p_t - \eta_t g_t)

  Args:
    learning_rate: :math:`\eta_t`.
    strength: :math:`\lambda`; float, JAX scalar, schedule or per-leaf tree.
    prox_fn: the prox of :math:`R`; default soft thresholding (L1).
    momentum: heavy-ball momentum, or None.
    nesterov: Nesterov momentum.
    mask: Optax mask of the leaves that get the prox.

  Returns:
    ``optax.chain(optax.sgd(...), transforms.proximal(...))``.

  References:
    Beck & Teboulle, "A fast iterative shrinkage-thresholding algorithm", 2009.
  """
  return optax.chain(
      optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov),
      transforms.proximal(prox_fn, strength, learning_rate, mask=mask),
  )


def prox_adam(
    learning_rate: optax.ScalarOrSchedule,
    strength: Any,
    prox_fn: transforms.ProxFn = prox.l1,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mask: Any = None,
    decoupled: bool = False,
) -> optax.GradientTransformation:
  r"""Adam with a proximal step in Adam's own metric (ProxGen), reaching exact zeros.

  The prox is taken in the diagonal metric :math:`D_t = (\sqrt{\hat v_t}+\epsilon)/\eta_t`:
  for L1 the threshold per coordinate is :math:`\eta_t\lambda/(\sqrt{\hat v_t}+\epsilon)`;
  with ``prox_fn=functools.partial(prox.group_l2, axis=0)`` whole units are zeroed in
  Adam's metric. ``decoupled=True`` takes the Euclidean prox with threshold
  :math:`\eta_t\lambda` instead (the L1 counterpart of AdamW), which leaves weights that
  get no gradient alone; see :func:`regjax.transforms.preconditioned_proximal`.

  Args:
    learning_rate: :math:`\eta_t`.
    strength: :math:`\lambda`; float, JAX scalar, schedule or per-leaf tree.
    prox_fn: a :mod:`regjax.prox` operator (it receives ``metric=``); default soft
      thresholding (L1).
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    eps: Adam's :math:`\epsilon`.
    mask: Optax mask of the leaves that get the prox (the others take plain Adam steps).
    decoupled: Euclidean prox with threshold :math:`\eta_t\lambda` instead of ProxGen.

  Returns:
    An ``optax.GradientTransformation``.

  References:
    Yun, Lozano & Yang, NeurIPS 2021.
  """
  return transforms.preconditioned_proximal(
      prox_fn, strength, learning_rate, b1=b1, b2=b2, eps=eps, mask=mask, decoupled=decoupled
  )


def adamw(
    learning_rate: optax.ScalarOrSchedule,
    weight_decay: Any = 1e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    coupled: bool = True,
    target: Any = None,
    mask: Any = transforms.DEFAULT_MASK,
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
    mask: Optax mask of decayed leaves; default ``ndim >= 2``; None decays all.

  Returns:
    An ``optax.GradientTransformation``.

  References:
    Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019.
  """
  return optax.chain(
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
      optax.scale_by_learning_rate(learning_rate),
      transforms.decoupled_weight_decay(
          weight_decay, learning_rate if coupled else None, target=target, mask=mask
      ),
  )
