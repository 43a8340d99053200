r"""Flax NNX glue: a pure, vmappable training run for a model and a regjax optimizer.

A :class:`Trainer` turns "build a model, build an optimizer from the hyperparameters,
train for ``steps`` minibatch steps, evaluate" into pure functions of ``(hparams, key)``,
so :func:`regjax.sweep` can run one model per grid point as one ``jit(vmap(...))``:

.. code-block:: python

  trainer = Trainer(
      model=lambda rngs: MLP(64, (64, 64), 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["l1"], mask=regjax.masks.matrices),
      train=train, test=test, steps=1000)
  result = regjax.sweep(trainer, regjax.grid(l1=jnp.logspace(-5, -2, 12)))

The model is built inside the traced function (``nnx.split`` into a static graph and a
pure dict of parameters, ``nnx.merge`` in every step), so the parameters of all grid
points form one leading-axis batch. Steps run in ``jax.lax.scan``; the minibatch of step
``t`` is drawn with ``fold_in(data_key, t)``, so a run cut into segments
(:meth:`Trainer.advance`) is bit-identical to an uninterrupted one.

Activation (embedding) regularization: models record activations with ``self.sow``
(see :mod:`regjax.models`); ``activation_penalties={"hidden_0": (penalties.l1, "act")}``
adds ``hparams["act"] · R(h) / batch`` for the sown activation ``h``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from regjax import _checks, masks, metrics
from regjax.experiment import sweeps as _sweep
from regjax.experiment.data import Dataset

Hparams = Mapping[str, jax.Array]


class TrainState(NamedTuple):
  """Everything a run needs to continue: pure arrays, so it saves and vmaps."""

  step: jax.Array  # shape=(), int32: steps taken.
  params: Any  # pure dict of the model's nnx.Param values.
  opt_state: Any  # the optimizer's state.
  data_key: jax.Array  # uint32 key data; minibatch t uses fold_in(data_key, t).
  loss: jax.Array  # shape=(): the last step's training loss (with penalties).
  failed_step: jax.Array  # shape=(), int32: first step with a non-finite loss, or -1.


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy against integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@dataclasses.dataclass(frozen=True)
class Trainer:
  """A pure training run ``(hparams, key) -> metrics`` for :func:`regjax.sweep`.

  Attributes:
    model: ``rngs -> nnx.Module`` returning logits.
    optimizer: ``hparams -> optax.GradientTransformation``; strengths come from
      ``hparams`` (traced scalars under a sweep).
    train: training data.
    test: held-out data for :meth:`evaluate`.
    steps: minibatch steps of a full run.
    batch_size: examples per step (drawn uniformly with replacement).
    loss_penalty: optional ``(params, hparams) -> scalar`` added to the loss, e.g. an L1
      term for the subgradient method.
    activation_penalties: ``{sown name: (penalty, hparam name)}``; each adds
      ``hparams[name] · penalty(h) / batch_size``.
    progress: report step progress through :func:`regjax.progress_callback`.
  """

  model: Callable[[nnx.Rngs], nnx.Module]
  optimizer: Callable[[Hparams], optax.GradientTransformation]
  train: Dataset
  test: Dataset
  steps: int = 1000
  batch_size: int = 128
  loss_penalty: Callable[[Any, Hparams], jax.Array] | None = None
  activation_penalties: Mapping[str, tuple[Callable[[jax.Array], jax.Array], str]] = (
      dataclasses.field(default_factory=dict))
  progress: bool = False

  def __post_init__(self):
    for name in ("steps", "batch_size"):
      value = getattr(self, name)
      _checks.check_int(name, value)
    if self.batch_size > len(self.train.labels):
      raise ValueError(
          f"`batch_size` {self.batch_size} exceeds the {len(self.train.labels)} training "
          "examples; pass a smaller batch.")
    for name, spec in self.activation_penalties.items():
      if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0])):
        raise TypeError(
            f"`activation_penalties[{name!r}]` must be (penalty_fn, hparam_name), got {spec!r}.")

  def _graph(self) -> Any:
    return nnx.split(nnx.eval_shape(lambda: self.model(nnx.Rngs(0))))[0]

  def _forward(self, params: Any, inputs: jax.Array) -> tuple[jax.Array, Any]:
    model = nnx.merge(self._graph(), params)
    if not self.activation_penalties:
      return model(inputs), {}
    logits, sown = nnx.capture(model, nnx.Intermediate)(inputs)
    return logits, {name: value[0] for name, value in nnx.to_pure_dict(sown).items()}

  def init(self, hparams: Hparams, key: jax.Array) -> TrainState:
    """A fresh run: the model initialised from ``key``, the optimizer's state, step 0."""
    init_key, data_key = jax.random.split(key)
    params = nnx.to_pure_dict(nnx.state(self.model(nnx.Rngs(params=init_key))))
    _checks.check_float_params("params", params)
    opt_state = self.optimizer(hparams).init(params)
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
        data_key=jax.random.key_data(data_key), loss=jnp.zeros((), jnp.float32),
        failed_step=jnp.full((), -1, jnp.int32))

  def loss(self, params: Any, hparams: Hparams, inputs: jax.Array, labels: jax.Array):
    """Training loss with every configured penalty."""
    logits, sown = self._forward(params, inputs)
    total = cross_entropy(logits, labels)
    if self.loss_penalty is not None:
      total = total + self.loss_penalty(params, hparams)
    for name, (penalty, hparam) in self.activation_penalties.items():
      if name not in sown:
        raise KeyError(f"`activation_penalties` names {name!r}, but the model sowed "
                       f"{sorted(sown)}.")
      total = total + hparams[hparam] * penalty(sown[name]) / inputs.shape[0]
    return total

  def advance(self, hparams: Hparams, state: TrainState, num_steps: int) -> TrainState:
    """``num_steps`` more training steps from ``state`` (pure; jit/vmap it)."""
    tx = self.optimizer(hparams)
    data_key = jax.random.wrap_key_data(state.data_key)
    n = self.train.labels.shape[0]

    def step(carry, offset):
      params, opt_state, _, failed = carry
      t = state.step + offset
      index = jax.random.randint(jax.random.fold_in(data_key, t), (self.batch_size,), 0, n)
      loss, grads = jax.value_and_grad(self.loss)(
          params, hparams, self.train.inputs[index], self.train.labels[index])
      updates, opt_state = tx.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      failed = jnp.where((failed < 0) & ~jnp.isfinite(loss), t, failed)
      if self.progress:
        _sweep.progress_callback(t, self.steps, desc="train steps")
      return (params, opt_state, loss, failed), None

    carry = (state.params, state.opt_state, state.loss, state.failed_step)
    (params, opt_state, loss, failed), _ = jax.lax.scan(
        step, carry, jnp.arange(num_steps, dtype=jnp.int32))
    return TrainState(state.step + num_steps, params, opt_state, state.data_key, loss, failed)

  def evaluate(self, hparams: Hparams, state: TrainState) -> dict[str, jax.Array]:
    """Held-out accuracy and loss, sparsity of kernels, dead units and activations."""
    del hparams
    logits, sown = self._forward_all(state.params, self.test.inputs)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == self.test.labels)
    result = {
        "test_accuracy": accuracy,
        "test_loss": cross_entropy(logits, self.test.labels),
        "train_loss": state.loss,
        "zero_weights": metrics.zero_fraction(state.params, masks.matrices),
        "dead_units": hidden_dead_fraction(state.params),
        "failed_step": state.failed_step,
    }
    for name, value in sown.items():
      result[f"{name}_zero"] = jnp.mean(value == 0)
    return result

  def _forward_all(self, params: Any, inputs: jax.Array) -> tuple[jax.Array, Any]:
    model = nnx.merge(self._graph(), params)
    logits, sown = nnx.capture(model, nnx.Intermediate)(inputs)
    return logits, {name: value[0] for name, value in nnx.to_pure_dict(sown).items()}

  def __call__(self, hparams: Hparams, key: jax.Array) -> dict[str, jax.Array]:
    """A whole run: :meth:`init`, :meth:`advance` by ``steps``, :meth:`evaluate`."""
    return self.evaluate(hparams, self.advance(hparams, self.init(hparams, key), self.steps))


def hidden_kernels(params: Any) -> Any:
  """Mask of the kernels of hidden layers: every ``ndim >= 2`` leaf but the last one.

  The last kernel in path order is the output layer, whose units are the classes.
  """
  kernels = [path for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if jnp.ndim(leaf) >= 2]
  last = kernels[-1] if kernels else None
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: jnp.ndim(leaf) >= 2 and path != last, params)


def hidden_dead_fraction(params: Any) -> jax.Array:
  """Fraction of hidden units whose incoming weights are all exactly zero."""
  return metrics.dead_unit_fraction(params, hidden_kernels)
