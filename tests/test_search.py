"""regjax.adaptive_sweep on the sweep loop: refilled rows are ordinary runs, one compile for
the whole search, and a resumed search returns the same result.

One small search (digits, a 16-unit MLP, 40 steps in 2 segments, 8 rounds of 3 slots x 2
seeds) serves every test: compilation dominates on CPU.
"""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest

import regjax
from regjax.experiment import adaptive, data, search
from regjax.nn import models

SPACE = adaptive.Space(lam=adaptive.LogUniform(1e-5, 1e-1))
OBJECTIVE = adaptive.MaximizeWithin("zero_weights", "validation_accuracy", margin=0.01)
SCALARS = ("test_accuracy", "test_loss", "validation_accuracy", "zero_weights", "train_loss")


def _trainer():
  train, test = data.digits()
  train, validation = data.from_arrays(np.asarray(train.inputs), np.asarray(train.labels),
                                       test_fraction=0.2, seed=0)
  return regjax.Trainer(
      model=lambda rngs: models.MLP(64, (16,), 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
      train=train, test=test, validation=validation, steps=40, batch_size=32, eval_every=10)


def _search(trainer, directory):
  return regjax.adaptive_sweep(trainer, SPACE, objective=OBJECTIVE, slots=3, rounds=8,
                               segments=2, seeds=2, checkpoint=directory, progress=False)


def _counted_search(trainer, directory):
  """The search, with the number of XLA compilations before each hook call and in all."""
  compiles: list[str] = []
  at_hook: list[int] = []

  def listen(name, seconds, **kwargs):
    if name == "/jax/core/compile/backend_compile_duration":
      compiles.append(name)

  jax.monitoring.register_event_duration_secs_listener(listen)
  call = search._Driver.__call__

  def counted(self, event):
    at_hook.append(len(compiles))
    return call(self, event)

  search._Driver.__call__ = counted
  try:
    result = _search(trainer, directory)
  finally:
    search._Driver.__call__ = call
    jax.monitoring.clear_event_listeners()
  return result, len(compiles), at_hook


def test_a_search_compiles_once_reports_ordinary_runs_and_resumes_to_the_same_result(tmp_path):
  # One search serves three checks: compiling dominates on CPU.
  trainer, directory = _trainer(), tmp_path / "search"
  result, compiles, at_hook = _counted_search(trainer, directory)

  # 1. One compile for the whole search: nothing compiles after the first segment.
  assert len(at_hook) == 8  # the hook runs after each of the 8 rounds
  assert at_hook[0] > 0 and at_hook == [compiles] * 8
  table = result.search.table()
  assert (table["round"] > 0).any() and (table["status"] == "stopped").any()
  assert len(result) == 2 * (table["status"] == "complete").sum()  # both seeds of each
  assert result.model_steps == 8 * 6 * 20  # rounds x rows x segment steps
  assert result.curves["validation_accuracy"].shape == (len(result), 4)
  assert result.search.best()["status"] == "complete"

  # 2. A refilled row is the same λ and seed run alone by `sweep`.
  late = result.table[result.table["round"] > 0]
  lams = np.unique(late["lam"].to_numpy())[:2]
  alone = regjax.sweep(trainer, regjax.zip_grid(lam=lams), seeds=[0, 1], progress=False)
  for lam in lams:
    ours = late[late["lam"] == lam].sort_values("seed")
    theirs = alone.table[alone.table["lam"] == lam].sort_values("seed")
    assert len(ours) == len(theirs) == 2
    for name in SCALARS:
      np.testing.assert_allclose(ours[name].to_numpy(), theirs[name].to_numpy(), rtol=1e-6,
                                 atol=1e-7, err_msg=name)

  # 3. Resumed after round 4 (later saves removed), it returns the same result, bit for
  # bit: the policy's state is saved in the loop's checkpoints, and the refilled rows'
  # hyperparameters come back exact.
  for segment in range(5, 9):
    shutil.rmtree(directory / "chunk_0000" / f"segment_{segment:04d}")
  resumed = _search(trainer, directory)
  assert [t[0] for t in resumed.timeline] == [5, 6, 7, 8]
  assert resumed.table.equals(result.table)
  complete = np.flatnonzero(table["status"] == "complete")  # rows ordered by point, seed
  expected = np.repeat(result.search.values(complete)["lam"], 2).tolist()
  assert resumed["lam"].tolist() == result["lam"].tolist() == expected
  for name in result.curves.data_vars:
    np.testing.assert_array_equal(resumed.curves[name].values, result.curves[name].values)
  assert resumed.search.state_dict() == result.search.state_dict()


def test_adaptive_sweep_refuses_a_plain_function_and_unequal_segments():
  with pytest.raises(TypeError, match="segmented run"):
    regjax.adaptive_sweep(lambda h, k: {"v": h["lam"]}, SPACE, objective=OBJECTIVE, slots=2,
                          rounds=2, segments=1)
  with pytest.raises(ValueError, match="equal segments"):
    regjax.adaptive_sweep(_trainer(), SPACE, objective=OBJECTIVE, slots=2, rounds=6,
                          segments=3)
