"""The training side of a :class:`regjax.Trainer`: losses, the objective with its penalties,
the scanned steps and the curve points they record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from regjax.experiment import _model
from regjax.experiment.loop import Hparams
from regjax.experiment.progress import progress_callback

__all__ = ["PENALTY", "advance", "cross_entropy", "default_loss", "objective", "split_loss",
           "squared_error"]

# The `aux` entry of a loss_fn that names the regularization part of its loss.
PENALTY = "penalty"
# Every variable that is neither optimized nor a random stream nor a sown activation.
_OTHER = nnx.All(nnx.Not(nnx.Param), nnx.Not(nnx.RngState), nnx.Not(nnx.Intermediate))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Mean softmax cross-entropy against integer labels,
  :math:`-\frac{1}{n}\sum_i \log \mathrm{softmax}(z_i)_{y_i}`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.experiment.trainer import cross_entropy
    >>> round(float(cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))), 4)  # log 4
    1.3863
  """
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def squared_error(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  r"""Mean squared error :math:`\frac{1}{n}\sum_i (y_i - t_i)^2`, targets reshaped to outputs.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.experiment.trainer import squared_error
    >>> float(squared_error(jnp.array([[1.0], [3.0]]), jnp.array([0.0, 1.0])))
    2.5
  """
  return jnp.mean((outputs - jnp.reshape(targets, outputs.shape)) ** 2)


def default_loss(model: nnx.Module, batch: tuple[jax.Array, jax.Array],
                 hparams: Hparams) -> jax.Array:
  """Cross-entropy for integer labels, mean squared error for float targets.

  ``batch`` is ``(inputs, labels)`` (a :class:`regjax.data.Dataset` slice or a tuple).

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.experiment.trainer import default_loss
    >>> float(default_loss(lambda x: 2 * x, (jnp.ones((2, 1)), jnp.ones(2)), {}))
    1.0
  """
  del hparams
  inputs, labels = batch
  outputs = model(inputs)
  if jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
    return cross_entropy(outputs, labels)
  return squared_error(outputs, labels)


def split_loss(value: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
  """A ``loss_fn`` value as ``(loss, aux)``: a bare loss gets an empty ``aux``.

  Examples:
    >>> from regjax.experiment._training import split_loss
    >>> split_loss(1.0), split_loss((1.0, {"penalty": 0.5}))
    ((1.0, {}), (1.0, {'penalty': 0.5}))
  """
  if isinstance(value, tuple):
    if len(value) != 2 or not isinstance(value[1], Mapping):
      raise TypeError("`loss_fn` must return a loss or (loss, aux) with aux a dict of scalars.")
    return value[0], dict(value[1])
  return value, {}


def _activation_penalty(trainer: Any, sown: Mapping[str, jax.Array], hparams: Hparams) -> Any:
  total = 0.0
  for name, (penalty, hparam) in trainer.activation_penalties.items():
    if name not in sown:
      raise KeyError(f"`activation_penalties` names {name!r}, but the model sowed "
                     f"{sorted(sown)}.")
    total = total + hparams[hparam] * penalty(sown[name]) / sown[name].shape[0]
  return total


def objective(trainer: Any, params: Any, model_state: Any, rng_key: jax.Array, step: Any,
              hparams: Hparams, batch: Any) -> tuple[jax.Array, tuple[dict, Any]]:
  """The training loss of one batch: ``loss_fn`` plus ``loss_penalty`` plus the activation
  penalties, in training mode; its aux holds ``loss_fn``'s entries and, when any penalty
  is on, ``penalty``: their sum (the regularization part of the loss)."""
  model = _model.merge(trainer.structure, params, model_state, rng_key, step)
  model.train()
  loss_fn = trainer.loss_fn or default_loss
  if trainer.activation_penalties:
    value, captured = nnx.capture(lambda m: loss_fn(m, batch, hparams), nnx.Intermediate)(model)
    sown = _model.sown(captured)
  else:
    value, sown = loss_fn(model, batch, hparams), {}
  total, aux = split_loss(value)
  penalized = PENALTY in aux or trainer.loss_penalty is not None or trainer.activation_penalties
  penalty = aux.pop(PENALTY, 0.0)
  if trainer.loss_penalty is not None:
    extra = trainer.loss_penalty(params, hparams)
    total, penalty = total + extra, penalty + extra
  if trainer.activation_penalties:
    extra = _activation_penalty(trainer, sown, hparams)
    total, penalty = total + extra, penalty + extra
  if penalized:
    aux[PENALTY] = jnp.asarray(penalty, jnp.result_type(total))
  return total, (aux, nnx.to_pure_dict(nnx.state(model, _OTHER)))


def _batch(trainer: Any, data_key: jax.Array, t: jax.Array) -> Any:
  n = jax.tree.leaves(trainer.train)[0].shape[0]
  index = jax.random.randint(jax.random.fold_in(data_key, t), (trainer.batch_size,), 0, n)
  return jax.tree.map(lambda a: jnp.asarray(a)[index], trainer.train)


def advance(trainer: Any, hparams: Hparams, state: Any, num_steps: int, batches: Any) -> Any:
  """``num_steps`` scanned steps from ``state``; see :meth:`regjax.Trainer.advance`."""
  tx = trainer.optimizer(hparams)
  data_key = jax.random.wrap_key_data(state.data_key)
  grad_fn = jax.value_and_grad(lambda *args: objective(trainer, *args), has_aux=True)

  def step(state: Any, inputs: Any) -> tuple[Any, None]:
    offset, batch = inputs
    t = state.step + offset
    if batches is None:
      batch = _batch(trainer, data_key, t)
    (loss, (aux, model_state)), grads = grad_fn(
        state.params, state.model_state, state.rng_key, t, hparams, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    failed = jnp.where((state.failed_step < 0) & ~jnp.isfinite(loss), t, state.failed_step)
    if trainer.progress:
      progress_callback(t, trainer.steps, desc="train steps")
    state = state._replace(params=params, model_state=model_state, opt_state=opt_state,
                           loss=loss, aux=aux, failed_step=failed)
    if trainer.eval_every is not None:
      # `offset` is not batched under vmap, so this stays a branch taken every N steps.
      due = (offset + 1) % trainer.eval_every == 0
      state = jax.lax.cond(due, lambda s: trainer.record(hparams, s, t + 1), lambda s: s,
                           state)
    return state, None

  offsets = jnp.arange(num_steps, dtype=jnp.int32)
  state, _ = jax.lax.scan(step, state, (offsets, batches))
  return state._replace(step=state.step + num_steps)
