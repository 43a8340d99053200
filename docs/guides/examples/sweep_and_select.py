"""The λ sweep of docs/guides/sweeps.md: train a grid of strengths at once, pick λ on validation.

Proximal L1 under Adam (``prox_adam``) on an MLP over the embedded digits, with 20 % of
the training split held out for validation. Every (λ, seed) row trains in one
``jit(vmap(...))``; curves record the held-out metrics every ``steps // 5`` steps.

``python docs/guides/examples/sweep_and_select.py`` runs it at the guide's size and writes
its plots to the current folder; ``tests/test_guides.py`` runs a smaller one.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import regjax
from regjax import data, models
from regjax.experiment import Trainer


def run_sweep(steps: int = 500, num_lams: int = 8, seeds: int = 3):
  # Validation is carved from the training split; the test split is read only at the end.
  digits = data.load_digits("train")
  train, validation = data.from_arrays(np.asarray(digits.inputs), np.asarray(digits.labels),
                                       test_fraction=0.2, seed=0)
  trainer = Trainer(
      model=lambda rngs: models.MLP(64, (64,), 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
      train=train, validation=validation, test=data.load_digits("test"),
      steps=steps, eval_every=steps // 5)
  grid = regjax.grid(lam=jnp.logspace(-5, -2, num_lams))
  return regjax.sweep(trainer, grid, seeds=seeds)  # num_lams × seeds rows, one compiled call


def pick_lambda(result, tolerance: float = 0.01):
  """The sparsest λ whose mean validation accuracy is within ``tolerance`` of the best."""
  means = result.mean_over_seeds()
  accuracy = np.asarray(means["validation_accuracy_mean"])
  zeros = np.asarray(means["zero_weights_mean"])
  eligible = accuracy >= accuracy.max() - tolerance
  chosen = int(np.argmax(np.where(eligible, zeros, -np.inf)))
  return means, chosen


def main(steps: int = 500, num_lams: int = 8, seeds: int = 3, plots: bool = True):
  result = run_sweep(steps, num_lams, seeds)
  means, chosen = pick_lambda(result)
  print(means)  # one row per λ: mean and std over seeds of every metric
  lam = float(means["lam"][chosen])
  print(f"chosen on validation: λ = {lam:.2g}: "
        f"validation accuracy {means['validation_accuracy_mean'][chosen]:.3f}, "
        f"test accuracy {means['test_accuracy_mean'][chosen]:.3f}, "
        f"exact zeros {means['zero_weights_mean'][chosen]:.1%}")
  # Early stopping on validation instead: the best (row, evaluation step).
  best = result.best("accuracy", split="validation")
  print(f"best single run on validation: λ = {best['lam']:.2g}, seed {best['seed']}, "
        f"step {best['step']}, test accuracy {best['test_accuracy']:.3f}")
  if plots:
    means.plot(x="zero_weights_mean", y="test_accuracy_mean", path="accuracy_vs_zeros.png")
    result.filter(lam=result["lam"][::2 * seeds]).plot_curves(
        "validation_accuracy", by="lam", path="curves.png")
  return result, means, chosen


if __name__ == "__main__":
  main()
