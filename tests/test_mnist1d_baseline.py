"""The MNIST-1D baseline in the paper's setting (``notebooks/mnist1d_baseline.py``).

Cheap checks of what notebooks 12, 13, 22 and 23 rely on: the model is the paper's
residual MLP, the training loop is the paper's (batches in order, wrapping round), the
sphere projection puts the final embedding on the sphere, configurations and seeds train
as a paired design, and the "matches the paper" reading is the prediction interval's.
"""

import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("mnist1d")
HERE = pathlib.Path(__file__).parent.parent / "notebooks"
sys.path.insert(0, str(HERE))
try:
  import mnist1d_baseline as baseline
finally:
  sys.path.remove(str(HERE))


@pytest.fixture(autouse=True)
def _implicit_broadcasting():
  # The script adds biases by NumPy broadcasting, as notebooks do; the suite's conftest
  # holds the library itself to jax_numpy_rank_promotion="raise".
  with jax.numpy_rank_promotion("allow"):
    yield


def test_the_model_is_the_papers_residual_mlp():
  params = baseline.init(jax.random.PRNGKey(0))
  assert [p["w"].shape for p in params] == [(40, 256), (256, 256), (256, 10)]
  # torch.nn.Linear's default: uniform in ±1/sqrt(fan_in).
  assert float(jnp.abs(params[1]["w"]).max()) <= 1 / math.sqrt(256)
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 40))
  h = jax.nn.relu(x @ params[0]["w"] + params[0]["b"])
  h = h + jax.nn.relu(h @ params[1]["w"] + params[1]["b"])
  logits, embedding = baseline.forward(params, x)
  np.testing.assert_allclose(embedding, h, rtol=1e-6)
  np.testing.assert_allclose(logits, h @ params[2]["w"] + params[2]["b"], rtol=1e-5)


def _hand_loop(params, tx, loss, x, y, steps):
  # The paper's loop written out step by step (train.py's bix = step · 100 mod len(x)).
  state = tx.init(params)
  for t in range(steps):
    start = (t * baseline.BATCH) % len(y)
    xb, yb = x[start:start + baseline.BATCH], y[start:start + baseline.BATCH]
    updates, state = tx.update(jax.grad(loss)(params, xb, yb), state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_fit_is_the_papers_loop_batches_in_order_wrapping_round():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(300, 40)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, 300), jnp.int32)
  params = baseline.init(jax.random.PRNGKey(0), hidden=8)
  tx = optax.adam(1e-2)

  def loss(p, xb, yb):
    logits = baseline.forward(p, xb)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  steps = 7  # 3 batches per pass over 300 signals: passes 1 and 2, then a third begins
  fitted = jax.jit(lambda p: baseline.fit(p, tx, loss, x, y, steps))(params)
  expected = _hand_loop(params, tx, loss, x, y, steps)
  for a, b in zip(jax.tree.leaves(fitted), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
  # A loop whose batches were not in order (here: reversed) ends elsewhere.
  shuffled = _hand_loop(params, tx, loss, x[::-1], y[::-1], steps)
  assert not np.allclose(jax.tree.leaves(fitted)[0], jax.tree.leaves(shuffled)[0])


def test_fit_refuses_a_training_set_that_is_not_whole_batches():
  x, y = jnp.zeros((240, 40)), jnp.zeros(240, jnp.int32)
  params = baseline.init(jax.random.PRNGKey(0), hidden=4)
  with pytest.raises(ValueError, match="240 training signals.*drop 40"):
    baseline.fit(params, optax.sgd(0.1), lambda p, xb, yb: 0.0, x, y, steps=1)


def test_fit_threads_carried_state_through_every_step():
  # The carried state counts the steps and sums the batch means of x[:, 0]; the
  # parameters follow -0.1 · gradient of mean((w - x[:, 0])²), as plain SGD.
  x = jnp.arange(400.0, dtype=jnp.float32).reshape(200, 2)
  y = jnp.zeros(200, jnp.int32)

  def loss(w, state, xb, yb):
    del yb
    new = {"count": state["count"] + 1, "total": state["total"] + xb[:, 0].mean()}
    return jnp.mean((w - xb[:, 0]) ** 2), new

  w, state = baseline.fit(jnp.float32(0.0), optax.sgd(0.1), loss, x, y, steps=3,
                          carried={"count": 0, "total": jnp.float32(0.0)})
  means = [float(x[s:s + 100, 0].mean()) for s in (0, 100, 0)]
  assert int(state["count"]) == 3
  np.testing.assert_allclose(state["total"], sum(means), rtol=1e-6)
  expected = 0.0
  for m in means:  # d/dw mean((w - x)²) = 2 (w - mean(x))
    expected -= 0.1 * 2 * (expected - m)
  np.testing.assert_allclose(w, expected, rtol=1e-5)


def test_the_sphere_puts_the_final_embedding_at_its_radius():
  params = baseline.init(jax.random.PRNGKey(0))
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 40))
  _, embedding = baseline.forward(params, x, sphere=3.0)
  np.testing.assert_allclose(jnp.linalg.norm(embedding, axis=-1), 3.0, rtol=1e-5)


def test_configurations_train_as_a_paired_design():
  data = baseline.dataset(num_samples=250)  # 200 training and 50 test signals
  correct = baseline.train(seeds=[0, 1], steps=30, data=data, l1=(0.0, 0.0, 1e-2))
  assert correct.shape == (3, 2, len(data["y_test"]))
  assert set(np.unique(correct)) <= {0.0, 1.0}
  # The same configuration on the same seed is the same run (same init, same batches).
  np.testing.assert_array_equal(correct[0], correct[1])
  held_out = baseline.train(seeds=[0], steps=30, data=data, validation=100)
  assert held_out.shape == (1, 1, 100)


def test_the_paper_is_matched_when_68_percent_is_inside_one_runs_spread():
  rng = np.random.default_rng(0)
  near = (rng.random((10, 1000)) < rng.uniform(0.65, 0.69, (10, 1))).astype(float)
  far = (rng.random((10, 1000)) < 0.55).astype(float)
  assert baseline.summary(near)["matches"]
  result = baseline.summary(far)
  assert not result["matches"] and result["prediction"][1] < baseline.PAPER
  assert "OUTSIDE" in baseline.line(result)
