"""A small CNN with dropout and batch norm on the 8x8 digits, swept with a custom loss.

Every (weight decay, label smoothing) point of the grid and every seed trains one CNN,
all of them as one vmapped computation through ``regjax.sweep``. The loss is a custom
``loss_fn``: cross-entropy against labels smoothed by the grid's ``smooth`` value.
Dropout masks are drawn afresh in every step and row; batch statistics update in
training and the held-out metrics use the running statistics. Curves are recorded every
``--eval-every`` steps, and the best step is chosen on a validation split (early
stopping), with the test accuracy reported at that step.

Run: ``python examples/cnn_dropout_batchnorm.py [--steps 600] [--tiny]``.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import regjax
from regjax.experiment import data
from regjax.experiment.data import Dataset
from regjax.experiment.trainer import Trainer


class CNN(nnx.Module):
  """conv 3x3 → batch norm → relu → 2x2 mean pool, twice; dropout; linear classifier."""

  def __init__(self, *, rngs: nnx.Rngs, width: int = 16, dropout: float = 0.3):
    self.conv1 = nnx.Conv(1, width, (3, 3), rngs=rngs)
    self.norm1 = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
    self.conv2 = nnx.Conv(width, 2 * width, (3, 3), rngs=rngs)
    self.norm2 = nnx.BatchNorm(2 * width, momentum=0.9, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.classifier = nnx.Linear(2 * width * 4, 10, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2)):
      x = nnx.avg_pool(nnx.relu(norm(conv(x))), (2, 2), strides=(2, 2))
    return self.classifier(self.dropout(x.reshape(x.shape[0], -1)))


def smoothed_cross_entropy(model: nnx.Module, batch: Dataset, hparams) -> tuple:
  """Cross-entropy against labels smoothed by ``hparams["smooth"]``; aux: plain CE."""
  logits = model(batch.inputs)
  one_hot = jax.nn.one_hot(batch.labels, 10)
  loss = optax.softmax_cross_entropy(logits, optax.smooth_labels(one_hot, hparams["smooth"]))
  return loss.mean(), {"cross_entropy": optax.softmax_cross_entropy(logits, one_hot).mean()}


def accuracy(model: nnx.Module, batch: Dataset, hparams) -> dict[str, jax.Array]:
  """Held-out metrics beside the loss (computed in eval mode)."""
  del hparams
  return {"accuracy": jnp.mean(jnp.argmax(model(batch.inputs), -1) == batch.labels)}


def main(argv: Sequence[str] | None = None) -> regjax.SweepResult:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--eval-every", type=int, default=50)
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--tiny", action="store_true", help="a few steps, for a smoke test")
  parser.add_argument("--plot", type=pathlib.Path, default=None, help="write curves here")
  args = parser.parse_args(argv)
  steps, every = (40, 20) if args.tiny else (args.steps, args.eval_every)
  seeds = 1 if args.tiny else args.seeds
  train = data.load_digits("train", flatten=False)
  fit, validation = (Dataset(train.inputs[:1150], train.labels[:1150]),
                     Dataset(train.inputs[1150:], train.labels[1150:]))
  trainer = Trainer(
      model=lambda rngs: CNN(rngs=rngs),
      optimizer=lambda h: regjax.adamw(3e-3, h["decay"]),
      train=fit, validation=validation, test=data.load_digits("test", flatten=False),
      steps=steps, batch_size=64, loss_fn=smoothed_cross_entropy, metrics_fn=accuracy,
      eval_every=every)
  grid = regjax.grid(decay=[1e-4, 1e-2] if args.tiny else jnp.logspace(-4, -1, 4),
                     smooth=[0.0, 0.1])
  result = regjax.sweep(trainer, grid, seeds=range(seeds), progress=not args.tiny)
  print(result.mean_over_seeds())
  best = result.best("accuracy", split="validation")
  print(f"best on validation: decay={best['decay']:.3g}, smooth={best['smooth']}, seed "
        f"{best['seed']}, step {best['step']}: validation accuracy "
        f"{best['validation_accuracy']:.3f}, test accuracy {best['test_accuracy']:.3f}")
  if args.plot is not None:
    result.filter(smooth=0.0).plot_curves("test_accuracy", by="decay", path=args.plot)
  return result


if __name__ == "__main__":
  main()
