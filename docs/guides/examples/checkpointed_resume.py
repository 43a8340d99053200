"""Checkpointed resume of docs/guides/resume.md: a sweep saved after every segment, resumed.

The sweep trains in ``segments`` stretches of steps and saves every row's training state
(parameters, optimizer and batch statistics, data and random keys, curves so far) with
Orbax after each (``regjax.sweep(..., checkpoint=DIR)``). Run again over the same
directory, it loads the newest checkpoint of each chunk and trains only what is left; the
result is bit-identical to an uninterrupted run. ``tests/test_guides.py`` runs this file.
"""

from __future__ import annotations

import pathlib
import shutil

import jax.numpy as jnp
import numpy as np

import regjax
from regjax import data, models
from regjax.experiment import Trainer


def make_trainer(steps: int) -> Trainer:
  return Trainer(
      model=lambda rngs: models.MLP(64, (32,), 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
      train=data.load_digits("train"), test=data.load_digits("test"),
      steps=steps, eval_every=steps // 4)


def main(directory: str = "checkpoints", steps: int = 400):
  grid = regjax.grid(lam=jnp.logspace(-4, -2, 3))
  options = dict(seeds=2, checkpoint=directory, segments=2, progress=False)

  # A run that saves after each of its 2 segments: checkpoints/chunk_0000/segment_000{1,2}.
  whole = regjax.sweep(make_trainer(steps), grid, resume=False, **options)

  # As if the job had been killed during its second segment: only segment 1 is on disk.
  for segment in pathlib.Path(directory).glob("chunk_*/segment_0002"):
    shutil.rmtree(segment)

  # The same call (resume=True is the default with checkpoint=) trains segment 2 only.
  resumed = regjax.sweep(make_trainer(steps), grid, **options)
  for name in ("test_accuracy", "zero_weights"):
    assert np.array_equal(resumed[name], whole[name]), name  # bit for bit
  print(resumed.mean_over_seeds())
  return whole, resumed


if __name__ == "__main__":
  main()
