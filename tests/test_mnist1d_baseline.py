"""The MNIST-1D baseline in the paper's setting (``notebooks/mnist1d_baseline.py``).

Cheap checks of what notebook 22 relies on: the model is the paper's residual MLP, the
sphere projection puts the final embedding on the sphere, configurations and seeds train
as a paired design, and the "matches the paper" reading is the prediction interval's.
"""

import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
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


def test_the_sphere_puts_the_final_embedding_at_its_radius():
  params = baseline.init(jax.random.PRNGKey(0))
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 40))
  _, embedding = baseline.forward(params, x, sphere=3.0)
  np.testing.assert_allclose(jnp.linalg.norm(embedding, axis=-1), 3.0, rtol=1e-5)


def test_configurations_train_as_a_paired_design():
  data = baseline.dataset(num_samples=300)
  correct = baseline.train(seeds=[0, 1], steps=30, data=data, l1=(0.0, 0.0, 1e-2))
  assert correct.shape == (3, 2, len(data["y_test"]))
  assert set(np.unique(correct)) <= {0.0, 1.0}
  # The same configuration on the same seed is the same run (same init, same batches).
  np.testing.assert_array_equal(correct[0], correct[1])
  held_out = baseline.train(seeds=[0], steps=30, data=data, validation=40)
  assert held_out.shape == (1, 1, 40)


def test_the_paper_is_matched_when_68_percent_is_inside_one_runs_spread():
  rng = np.random.default_rng(0)
  near = (rng.random((10, 1000)) < rng.uniform(0.65, 0.69, (10, 1))).astype(float)
  far = (rng.random((10, 1000)) < 0.55).astype(float)
  assert baseline.summary(near)["matches"]
  result = baseline.summary(far)
  assert not result["matches"] and result["prediction"][1] < baseline.PAPER
  assert "OUTSIDE" in baseline.line(result)
