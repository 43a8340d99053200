"""Batch norm in short runs: eval-mode accuracy at Flax's default momentum and with fixes.

An MLP 64 -> 64 -> 64 -> 10 with batch norm after each hidden layer, trained with Adam
(1e-3, batch 128) on the embedded digits (or MNIST-1D, the ``mnist1d`` extra). Every
``eval_every`` steps it measures test accuracy twice: in training mode (normalizing with
the test batch's own statistics) and in eval mode (with the running averages that
``nnx.BatchNorm`` keeps, as a deployed model does). Three arms:

- ``momentum=0.99``: Flax's default. The running averages forget their initial values
  (mean 0, variance 1) at rate 0.99 per step: after 100 steps 0.99**100 = 37 % of them
  is left, so eval mode normalizes with the wrong statistics.
- ``momentum=0.9``: forgets in tens of steps.
- ``momentum=0.99`` + recalibration: after training, one forward pass over the whole
  training set in training mode with ``momentum=0`` replaces the running averages by the
  training set's own statistics.

Run ``python docs/guides/examples/batch_norm_short_runs.py [STEPS SEEDS]`` (300 steps,
3 seeds, both data sets) for the tables in ``docs/guides/batch_norm.md``;
``tests/test_guides.py`` runs a 50-step one on the digits.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import regjax


class BatchNormMLP(nnx.Module):
  def __init__(self, in_features: int, momentum: float, *, rngs: nnx.Rngs):
    self.linear1 = nnx.Linear(in_features, 64, rngs=rngs)
    self.norm1 = nnx.BatchNorm(64, momentum=momentum, rngs=rngs)
    self.linear2 = nnx.Linear(64, 64, rngs=rngs)
    self.norm2 = nnx.BatchNorm(64, momentum=momentum, rngs=rngs)
    self.out = nnx.Linear(64, 10, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.norm1(self.linear1(x)))
    x = nnx.relu(self.norm2(self.linear2(x)))
    return self.out(x)


@nnx.jit
def train_step(model, optimizer, x, y):
  def loss_fn(model):
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  grads = nnx.grad(loss_fn)(model)
  optimizer.update(model, grads)


@nnx.jit
def accuracy(model, x, y):
  return jnp.mean(jnp.argmax(model(x), axis=-1) == y)


def recalibrate(model, inputs):
  """Running statistics := the statistics of ``inputs`` (one pass, training mode)."""
  norms = [model.norm1, model.norm2]
  momenta = [norm.momentum for norm in norms]
  for norm in norms:
    norm.momentum = 0.0
  model.train()
  model(inputs)
  for norm, momentum in zip(norms, momenta, strict=True):
    norm.momentum = momentum


def load(dataset: str):
  if dataset == "digits":
    return regjax.data.load_digits("train"), regjax.data.load_digits("test")
  return regjax.data.load_mnist1d("train"), regjax.data.load_mnist1d("test")


def run(dataset: str, momentum: float, seed: int, steps: int, eval_every: int,
        recalibrated: bool = False):
  train, test = load(dataset)
  model = BatchNormMLP(train.inputs.shape[1], momentum, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  order = np.random.default_rng(seed)
  rows = []
  for step in range(1, steps + 1):
    batch = order.integers(0, len(train.labels), 128)
    model.train()
    train_step(model, optimizer, train.inputs[batch], train.labels[batch])
    if step % eval_every == 0:
      model.train()  # normalize with the test batch's own statistics
      batch_stats = float(accuracy(model, test.inputs, test.labels))
      if recalibrated:
        saved = nnx.state(model, nnx.BatchStat)
        recalibrate(model, train.inputs)
      model.eval()  # normalize with the running averages
      running = float(accuracy(model, test.inputs, test.labels))
      if recalibrated:
        nnx.update(model, saved)  # training goes on with its own running averages
      rows.append((step, batch_stats, running))
  return rows


ARMS = {"momentum 0.99 (default)": (0.99, False), "momentum 0.9": (0.9, False),
        "momentum 0.99, recalibrated": (0.99, True)}


def main(dataset: str = "digits", steps: int = 300, eval_every: int = 50,
         seeds: int = 3) -> dict[str, np.ndarray]:
  """{arm: array (seeds, evaluations, 3) of (step, train-mode acc, eval-mode acc)}."""
  return {arm: np.array([run(dataset, m, s, steps, eval_every, r) for s in range(seeds)])
          for arm, (m, r) in ARMS.items()}


if __name__ == "__main__":
  steps, seeds = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (300, 3)
  for dataset in ("digits", "mnist1d"):
    results = main(dataset, steps=steps, seeds=seeds)
    print(f"{dataset}: test accuracy (%), mean over {seeds} seeds [min, max]")
    print(f"{'arm':30s} {'step':>5s} {'train mode':>20s} {'eval mode':>20s}")
    for arm, values in results.items():
      for i, step in enumerate(values[0, :, 0]):
        cells = [values[:, i, j] * 100 for j in (1, 2)]
        text = [f"{c.mean():5.1f} [{c.min():5.1f}, {c.max():5.1f}]" for c in cells]
        print(f"{arm:30s} {int(step):5d} {text[0]:>20s} {text[1]:>20s}", flush=True)
