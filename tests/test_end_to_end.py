"""End to end: a tiny digits model trains with each stochastic or structural regularizer on.

Each case builds a small Flax NNX model, trains it for ``STEPS`` Adam steps on minibatches
of the embedded digits inside one jitted ``lax.scan`` (one compile per model), and checks
that the training loss fell, that the held-out accuracy clears a bar far above chance
(0.1), that the regularizer was really active during training (two training-mode losses
on the same batch differ), and that evaluation (``deterministic=True``) is deterministic.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

from regjax import data, gates, models, pooling, stochastic

pytestmark = pytest.mark.slow

STEPS = 150
BATCH = 64
LEARNING_RATE = 1e-2
NUM_CLASSES = 10


@functools.cache
def _digits(flatten: bool) -> tuple[data.Dataset, data.Dataset]:
  return (data.load_digits("train", flatten=flatten),
          data.load_digits("test", flatten=flatten))


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _rngs(seed: int) -> nnx.Rngs:
  return nnx.Rngs(params=seed, dropout=seed + 1)


# ---------------------------------------------------------------------------------------
# The models.


class DropConnectMLP(nnx.Module):
  """64 -> 64 (DropConnect, ReLU) -> 10."""

  def __init__(self, rngs: nnx.Rngs):
    self.hidden = stochastic.DropConnectLinear(64, 64, rate=0.3, rngs=rngs)
    self.out = nnx.Linear(64, NUM_CLASSES, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(nnx.relu(self.hidden(x)))


class ResidualMLP(nnx.Module):
  """An embedding, three residual ReLU blocks with linearly decaying survival, a read-out."""

  def __init__(self, rngs: nnx.Rngs, width: int = 32, blocks: int = 3):
    self.embed = nnx.Linear(64, width, rngs=rngs)
    self.branches = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(blocks)])
    # DropPath takes Python floats; the schedule stays concrete when built under a trace.
    with jax.ensure_compile_time_eval():
      survival = [float(p) for p in stochastic.linear_survival_schedule(blocks, 0.5)]
    self.drops = nnx.List([stochastic.DropPath(p, rngs=rngs) for p in survival])
    self.out = nnx.Linear(width, NUM_CLASSES, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = nnx.relu(self.embed(x))
    for branch, drop in zip(self.branches, self.drops, strict=True):
      h = h + drop(nnx.relu(branch(h)))
    return self.out(h)


class FractionalPool(nnx.Module):
  """``pooling.fractional_max_pool`` with fresh regions per call while training.

  Evaluation uses one fixed draw of the regions, so it is deterministic.
  """

  def __init__(self, ratio: float, rngs: nnx.Rngs, deterministic: bool = False):
    self.ratio = ratio
    self.deterministic = deterministic
    self.rngs = rngs.dropout.fork()

  def __call__(self, x: jax.Array) -> jax.Array:
    key = jax.random.key(0) if self.deterministic else self.rngs()
    return pooling.fractional_max_pool(key, x, self.ratio)

  def set_view(self, deterministic: bool | None = None):
    if deterministic is not None:
      self.deterministic = deterministic


class FractionalPoolNet(nnx.Module):
  """conv 3x3 (8 channels, ReLU) -> fractional max-pool 8x8 -> 5x5 -> linear."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 8, (3, 3), padding="SAME", rngs=rngs)
    self.pool = FractionalPool(1.5, rngs)
    self.out = nnx.Linear(5 * 5 * 8, NUM_CLASSES, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = self.pool(nnx.relu(self.conv(x)))
    return self.out(h.reshape(h.shape[0], -1))


class L0GatedMLP(nnx.Module):
  """64 -> 64 (ReLU, hard-concrete L0 gates on the hidden units) -> 10."""

  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(64, 64, rngs=rngs)
    self.gate = gates.L0Gate(64, rngs=rngs)
    self.out = nnx.Linear(64, NUM_CLASSES, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(self.gate(nnx.relu(self.hidden(x))))


class STEMaskedMLP(nnx.Module):
  """64 -> 64 (ReLU, a learned straight-through 0/1 mask on the hidden units) -> 10."""

  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(64, 64, rngs=rngs)
    self.mask = gates.STEMask(64, init_score=0.5)
    self.out = nnx.Linear(64, NUM_CLASSES, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(self.mask(nnx.relu(self.hidden(x))))


# ---------------------------------------------------------------------------------------
# The training losses: ``loss(model, x, y, key) -> scalar``; ``key`` feeds the input-space
# regularizers, the module ones draw from their own ``dropout`` stream.

L0_STRENGTH = 0.05
STE_STRENGTH = 0.02


def _plain_loss(model, x, y, key):
  del key
  return _cross_entropy(model(x), y)


def _cutout_loss(model, x, y, key):
  return _cross_entropy(model(stochastic.cutout(key, x, 4)), y)


def _mixup_loss(model, x, y, key):
  mixed, targets, _ = stochastic.mixup(key, x, jax.nn.one_hot(y, NUM_CLASSES), 0.4)
  return stochastic.soft_target_cross_entropy(model(mixed), targets).mean()


def _cutmix_loss(model, x, y, key):
  mixed, targets, _ = stochastic.cutmix(key, x, jax.nn.one_hot(y, NUM_CLASSES), 1.0)
  return stochastic.soft_target_cross_entropy(model(mixed), targets).mean()


def _l0_loss(model, x, y, key):
  del key
  return _cross_entropy(model(x), y) + L0_STRENGTH * model.gate.penalty()


def _ste_loss(model, x, y, key):
  # Penalizing the number of units on: its straight-through gradient lowers every score
  # at the same rate, so the units the task does not defend switch off.
  del key
  return _cross_entropy(model(x), y) + STE_STRENGTH * jnp.sum(model.mask.binary_mask())


def _conv_net(rngs: nnx.Rngs) -> nnx.Module:
  return models.ConvNet(1, (8,), NUM_CLASSES, rngs=rngs)


class ImageMLP(nnx.Module):
  """The digits MLP on NHWC images, flattened (cheaper to compile than a conv net)."""

  def __init__(self, rngs: nnx.Rngs):
    self.mlp = models.MLP(64, (64,), NUM_CLASSES, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.mlp(x.reshape(x.shape[0], -1))


def _mlp(rngs: nnx.Rngs) -> nnx.Module:
  return models.MLP(64, (64,), NUM_CLASSES, rngs=rngs)


def _l0_penalty_pruned(model: L0GatedMLP) -> None:
  # At init E||z||_0 = 64 * sigmoid(0 - beta * log(-gamma / zeta)) ~= 53.0; the penalty
  # in the loss must pull it down (to ~44 here), while the task keeps the accuracy.
  initial = 64 * jax.nn.sigmoid(-gates.BETA * jnp.log(-gates.GAMMA / gates.ZETA))
  assert float(model.gate.penalty()) < 0.9 * float(initial), model.gate.penalty()


def _ste_units_switched_off(model: STEMaskedMLP) -> None:
  # The count penalty switches most hidden units off (14 of 64 stay on here).
  units_on = int(jnp.sum(model.mask.binary_mask()))
  assert 0 < units_on < 32, units_on


@dataclasses.dataclass(frozen=True)
class Case:
  build: Callable[[nnx.Rngs], nnx.Module]
  loss: Callable[..., jax.Array]
  flatten: bool
  # Bars set from the measured runs (0.92-0.96 test accuracy) with a margin of 7+ points;
  # chance is 0.1.
  min_accuracy: float = 0.85
  # Mean loss of the last 30 steps / first 10. Mixed soft targets keep the loss of
  # mixup-style training above their entropy, and the L0 penalty stays in the loss.
  max_loss_ratio: float = 0.5
  stochastic_training: bool = True
  check: Callable[[Any], None] | None = None


CASES = {
    "dropconnect": Case(DropConnectMLP, _plain_loss, flatten=True),
    "drop_path": Case(ResidualMLP, _plain_loss, flatten=True),
    "cutout": Case(_conv_net, _cutout_loss, flatten=False),
    "mixup": Case(_mlp, _mixup_loss, flatten=True),
    "cutmix": Case(ImageMLP, _cutmix_loss, flatten=False, max_loss_ratio=0.75),
    "fractional_max_pool": Case(FractionalPoolNet, _plain_loss, flatten=False),
    "l0_gate": Case(L0GatedMLP, _l0_loss, flatten=True, max_loss_ratio=0.7,
                    check=_l0_penalty_pruned),
    "ste_mask": Case(STEMaskedMLP, _ste_loss, flatten=True, stochastic_training=False,
                     check=_ste_units_switched_off),
}


# ---------------------------------------------------------------------------------------
# Training and evaluation.


def _evaluate(model: nnx.Module, inputs: jax.Array) -> jax.Array:
  return nnx.view(model, deterministic=True, raise_if_not_found=False)(inputs)


class Run(NamedTuple):
  model: nnx.Module  # the trained model
  losses: jax.Array  # (STEPS,) training losses
  test_logits: jax.Array  # evaluation-mode logits on the test set
  test_logits_again: jax.Array  # the same after two more training-mode passes
  train_mode_losses: jax.Array  # (2,) training-mode losses of one batch, twice


def _train_and_evaluate(case: Case, train: data.Dataset, test: data.Dataset,
                        seed: int) -> Run:
  """Builds, trains and evaluates a model in one compiled program (one compile per model)."""
  graphdef = nnx.split(nnx.eval_shape(lambda: case.build(_rngs(seed))))[0]
  optimizer = optax.adam(LEARNING_RATE)
  num_train = train.labels.shape[0]
  key = jax.random.key(seed)

  def step(carry, index):
    state, opt_state = carry
    batch_key, regularizer_key = jax.random.split(jax.random.fold_in(key, index))
    rows = jax.random.randint(batch_key, (BATCH,), 0, num_train)
    x, y = train.inputs[rows], train.labels[rows]
    model = nnx.merge(graphdef, state)
    # nnx.value_and_grad differentiates the Params and lets the RNG counters advance.
    value, grads = nnx.value_and_grad(lambda m: case.loss(m, x, y, regularizer_key))(model)
    params, rest = nnx.state(model, nnx.Param, ...)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (nnx.merge_state(params, rest), opt_state), value

  @jax.jit
  def run():
    # Initialising inside the jitted run avoids compiling every initializer op by op.
    state = nnx.state(case.build(_rngs(seed)))
    opt_state = optimizer.init(nnx.state(nnx.merge(graphdef, state), nnx.Param))
    (state, _), losses = jax.lax.scan(step, (state, opt_state), jnp.arange(STEPS))
    test_logits = _evaluate(nnx.merge(graphdef, state), test.inputs)
    # Two training-mode passes on one batch (a scan, so the loss is traced once) advance
    # the RNG streams; an evaluation that drew randomness would then change its logits.
    x, y = train.inputs[:BATCH], train.labels[:BATCH]

    def train_mode_loss(state, key):
      model = nnx.merge(graphdef, state)
      value = case.loss(model, x, y, key)
      return nnx.state(model), value

    keys = jax.random.split(jax.random.key(seed + 1), 2)
    state, train_mode_losses = jax.lax.scan(train_mode_loss, state, keys)
    model = nnx.merge(graphdef, state)
    test_logits_again = _evaluate(model, test.inputs)
    return nnx.state(model), losses, test_logits, test_logits_again, train_mode_losses

  state, *outputs = run()
  return Run(nnx.merge(graphdef, state), *outputs)


@pytest.mark.parametrize("name", list(CASES))
def test_regularized_digits_model_trains(name):
  case = CASES[name]
  train, test = _digits(case.flatten)
  run = _train_and_evaluate(case, train, test, seed=0)

  assert jnp.all(jnp.isfinite(run.losses))
  first, last = float(jnp.mean(run.losses[:10])), float(jnp.mean(run.losses[-30:]))
  assert last < case.max_loss_ratio * first, (first, last)

  accuracy = float(jnp.mean(jnp.argmax(run.test_logits, -1) == test.labels))
  assert accuracy > case.min_accuracy, accuracy
  # Evaluation mode (deterministic=True) is deterministic, bit for bit.
  assert jnp.array_equal(run.test_logits, run.test_logits_again)

  # The regularizer was on during training: the training-mode loss is random.
  loss_a, loss_b = run.train_mode_losses
  assert bool(loss_a != loss_b) == case.stochastic_training, (loss_a, loss_b)
  if case.check is not None:
    case.check(run.model)
  print(f"{name}: loss {first:.3f} -> {last:.3f}, test accuracy {accuracy:.3f}")
