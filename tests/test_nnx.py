"""The NNX training glue: it trains, it vmaps, and prox-L1 gives exact sparsity."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import regjax
from regjax import data, masks, metrics, models, penalties
from regjax.experiment.trainer import Trainer, hidden_kernels

TRAIN, TEST = data.load_digits("train"), data.load_digits("test")


def trainer(optimizer, steps=300, **kwargs):
  return Trainer(model=lambda rngs: models.MLP(64, (32, 32), 10, rngs=rngs),
                 optimizer=optimizer, train=TRAIN, test=TEST, steps=steps, batch_size=64,
                 **kwargs)


def l1_in_loss(params, hparams):
  return hparams["lam"] * penalties.tree_penalty(penalties.l1, params, mask=masks.matrices)


def test_loss_falls_and_segments_equal_one_run():
  run = trainer(lambda h: optax.adam(1e-2))
  hparams = {"lam": jnp.float32(0.0)}
  start = run.init(hparams, jax.random.key(0))
  first = jax.jit(lambda s: run.loss(s.params, hparams, TEST.inputs, TEST.labels))(start)
  whole = jax.jit(lambda s: run.advance(hparams, s, 300))(start)
  halves = jax.jit(lambda s: run.advance(hparams, s, 150))
  split = halves(halves(start))
  jax.tree.map(np.testing.assert_array_equal, whole.params, split.params)
  assert int(whole.step) == 300
  metrics = jax.jit(run.evaluate)(hparams, whole)
  assert metrics["test_loss"] < 0.5 * first
  assert metrics["test_accuracy"] > 0.9


def test_prox_l1_is_sparse_and_accurate_where_the_subgradient_is_dense():
  lam = 1e-3
  grid = regjax.grid(lam=[lam])
  prox_run = trainer(lambda h: regjax.prox_adam(1e-2, h["lam"], mask=masks.matrices), 600)
  sub_run = trainer(lambda h: optax.adam(1e-2), 600, loss_penalty=l1_in_loss)
  prox_result = regjax.sweep(prox_run, grid, progress=False)
  sub_result = regjax.sweep(sub_run, grid, progress=False)
  assert prox_result["zero_weights"][0] > 0.5
  assert prox_result["test_accuracy"][0] > 0.85
  assert sub_result["zero_weights"][0] < 0.01


def test_sweep_of_trainer_equals_separate_runs():
  run = trainer(lambda h: regjax.adamw(1e-2, h["lam"]), steps=50)
  lams = [0.0, 0.1, 1.0]
  result = regjax.sweep(run, regjax.grid(lam=lams), progress=False)
  single = jax.jit(lambda h, k: run(h, k))
  for i, lam in enumerate(lams):
    expected = single({"lam": jnp.float32(lam)}, jax.random.key(0))
    np.testing.assert_allclose(result["test_loss"][i], expected["test_loss"], rtol=1e-5)


def test_activation_penalty_sparsifies_the_named_embedding():
  def run(lam):
    return trainer(lambda h: optax.adam(1e-2), 300,
                   activation_penalties={"hidden_1": (penalties.l1, "act")})(
                       {"act": jnp.float32(lam)}, jax.random.key(0))

  results = jax.jit(jax.vmap(run))(jnp.array([0.0, 0.05]))
  assert results["hidden_1_zero"][1] > results["hidden_1_zero"][0] + 0.2


def test_hidden_kernel_mask_and_dead_fraction():
  params = {"layers": {0: {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)},
                       1: {"kernel": jnp.zeros((4, 2)), "bias": jnp.zeros(2)}}}
  mask = hidden_kernels(params)
  assert mask["layers"][0]["kernel"] and not mask["layers"][1]["kernel"]
  params["layers"][0]["kernel"] = params["layers"][0]["kernel"].at[0, 1].set(1.0)
  np.testing.assert_allclose(metrics.dead_unit_fraction(params, hidden_kernels), 3 / 4)
  # For an MLP the output layer found from the model is the last kernel in path order.
  run = Trainer(model=lambda rngs: models.MLP(64, (8, 8), 10, rngs=rngs),
                optimizer=lambda h: optax.adam(1e-2), train=TRAIN, test=TEST, steps=1)
  state = run.init({}, jax.random.key(0))
  assert run.hidden_mask(state.params) == hidden_kernels(state.params)
  assert jax.tree.leaves(run.hidden_mask(state.params)) == [False, True, False, True, False,
                                                           False]


def test_trainer_rejects_bad_settings():
  with pytest.raises(ValueError, match="`steps`"):
    trainer(lambda h: optax.adam(1e-2), steps=0)
  with pytest.raises(ValueError, match="`batch_size`"):
    Trainer(model=lambda rngs: models.MLP(64, (8,), 10, rngs=rngs),
            optimizer=lambda h: optax.adam(1e-2), train=TRAIN, test=TEST, batch_size=10**6)
