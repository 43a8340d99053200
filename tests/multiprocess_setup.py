"""The tiny Trainer sweep shared by test_multiprocess.py and its worker processes."""

import regjax
from regjax.experiment import data
from regjax.experiment.trainer import Trainer
from regjax.nn import models

GRID = regjax.grid(lam=[1e-4, 1e-3, 1e-2])  # x 2 seeds = 6 rows: 2 chunks of 4 on 4 devices
METRICS = ("test_accuracy", "test_loss", "train_loss", "zero_weights")


def trainer():
  return Trainer(
      model=lambda rngs: models.MLP(64, (8,), 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
      train=data.load_digits("train"), test=data.load_digits("test"), steps=4,
      batch_size=16)
