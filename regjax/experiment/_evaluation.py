"""The evaluation side of a :class:`regjax.Trainer`: held-out metrics, sparsity, dead
units, sown activations, and the curve buffers they fill."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from regjax import masks, metrics
from regjax.experiment import _model, _training

__all__ = ["curve_buffers", "held_out", "measure", "record"]

Hparams = Mapping[str, jax.Array]


def held_out(trainer: Any, prefix: str, data: Any, hparams: Hparams,
             state: Any) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """``{prefix_loss, prefix_accuracy, prefix_<metrics_fn>}`` on ``data`` in eval mode, and
  the activations the model sowed. With a ``loss_fn`` whose aux reports ``penalty``, the
  loss is the data term alone (``loss - penalty``)."""
  model = _model.merge(trainer.structure, state.params, state.model_state, state.rng_key,
                       state.step)
  model.eval()

  def measure_on(model: Any) -> dict[str, jax.Array]:
    if trainer.loss_fn is None:  # one forward pass for the loss and the accuracy
      inputs, labels = data
      outputs = model(inputs)
      if jnp.issubdtype(labels.dtype, jnp.integer):
        found = {"loss": _training.cross_entropy(outputs, labels),
                 "accuracy": jnp.mean(jnp.argmax(outputs, -1) == labels)}
      else:
        found = {"loss": _training.squared_error(outputs, labels)}
    else:
      loss, aux = _training.split_loss(trainer.loss_fn(model, data, hparams))
      found = {"loss": loss - aux[_training.PENALTY] if _training.PENALTY in aux else loss}
    if trainer.metrics_fn is not None:
      found.update(trainer.metrics_fn(model, data, hparams))
    return found

  found, captured = nnx.capture(measure_on, nnx.Intermediate)(model)
  return {f"{prefix}_{name}": value for name, value in found.items()}, _model.sown(captured)


def measure(trainer: Any, hparams: Hparams, state: Any) -> dict[str, jax.Array]:
  """Every metric of :meth:`regjax.Trainer.evaluate` but ``failed_step`` and the curves."""
  result = {"train_loss": state.loss}
  result.update({f"train_{name}": value for name, value in state.aux.items()})
  found, sown = held_out(trainer, "test", trainer.test, hparams, state)
  result.update(found)
  if trainer.validation is not None:
    result.update(held_out(trainer, "validation", trainer.validation, hparams, state)[0])
  result["zero_weights"] = metrics.zero_fraction(state.params, masks.matrices)
  result["dead_units"] = metrics.dead_unit_fraction(state.params, trainer.hidden_mask)
  for name, value in sown.items():
    result[f"{name}_zero"] = jnp.mean(value == 0)
  return result


def curve_buffers(trainer: Any, hparams: Hparams, state: Any) -> dict[str, jax.Array]:
  """One buffer of ``steps // eval_every`` entries per metric: NaN (or -1) until recorded."""
  shapes = jax.eval_shape(lambda: measure(trainer, hparams, state))
  n = trainer.steps // trainer.eval_every
  return {name: jnp.full((n,), jnp.nan if jnp.issubdtype(v.dtype, jnp.inexact) else -1,
                         v.dtype) for name, v in shapes.items()}


def record(trainer: Any, hparams: Hparams, state: Any, steps_done: jax.Array) -> Any:
  """Writes the metrics after ``steps_done`` steps at evaluation ``steps_done // N - 1``."""
  measured = measure(trainer, hparams, state)
  index = steps_done // trainer.eval_every - 1
  return state._replace(curves={name: curve.at[index].set(measured[name])
                                for name, curve in state.curves.items()})
