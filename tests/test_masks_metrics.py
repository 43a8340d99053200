"""Masks from paths, per-layer strength tables, and metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regjax import masks, metrics

PARAMS = {
    "layers": [
        {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)},
        {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)},
    ],
    "norm": {"scale": jnp.ones(3)},
}


def test_paths_and_by_path():
  assert masks.paths(PARAMS)["layers"][1]["kernel"] == "layers/1/kernel"
  mask = masks.by_path(r"layers/0/")(PARAMS)
  assert mask["layers"][0] == {"kernel": True, "bias": True}
  assert mask["layers"][1] == {"kernel": False, "bias": False}
  kernels = masks.by_path("layers", matrices_only=True)(PARAMS)
  assert kernels["layers"][0]["bias"] is False and kernels["layers"][0]["kernel"] is True
  assert masks.matrices(PARAMS)["norm"]["scale"] is False


def test_per_layer_first_match_wins_and_default():
  table = {r"layers/0/kernel": 0.1, r"kernel": 0.2}
  tree = masks.per_layer(PARAMS, table)
  assert float(tree["layers"][0]["kernel"]) == pytest.approx(0.1)
  assert float(tree["layers"][1]["kernel"]) == pytest.approx(0.2)
  assert tree["layers"][0]["bias"] is None
  with_default = masks.per_layer(PARAMS, table, default=0.0)
  assert float(with_default["norm"]["scale"]) == 0.0


def test_per_layer_strengths_can_be_traced():
  def total(lam):
    tree = masks.per_layer(PARAMS, {"layers/0": lam, "layers/1": 2 * lam})
    return sum(x for x in jax.tree.leaves(tree))

  np.testing.assert_allclose(jax.vmap(total)(jnp.array([1.0, 2.0])), [6.0, 12.0])


def test_per_layer_errors_name_the_argument():
  with pytest.raises(ValueError, match="match no parameter"):
    masks.per_layer(PARAMS, {"layer/9": 0.1})
  with pytest.raises(ValueError, match="`table"):
    masks.per_layer(PARAMS, {"kernel": -1.0})
  with pytest.raises(ValueError, match="`pattern`"):
    masks.by_path("(")
  with pytest.raises(ValueError, match="`table`"):
    masks.per_layer(PARAMS, {})


def test_zero_fraction_and_dead_units():
  tree = {
      "kernel": jnp.array([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]]),  # unit 0 dead
      "bias": jnp.array([0.0, 1.0, 1.0]),
  }
  np.testing.assert_allclose(metrics.zero_fraction(tree), 4 / 9)
  np.testing.assert_allclose(metrics.zero_fraction(tree, masks.matrices), 3 / 6)
  np.testing.assert_allclose(metrics.dead_unit_fraction(tree), 1 / 3)
  np.testing.assert_allclose(metrics.dead_unit_fraction(tree, axis=1), 0 / 2)
  assert int(metrics.zero_groups(tree["kernel"])) == 1
  per_leaf = metrics.zero_fraction_per_leaf(tree)
  np.testing.assert_allclose(per_leaf["bias"], 1 / 3)


def test_metrics_vmap_over_models():
  stacked = {"kernel": jnp.stack([jnp.zeros((2, 2)), jnp.ones((2, 2))])}
  np.testing.assert_allclose(jax.jit(jax.vmap(metrics.zero_fraction))(stacked), [1.0, 0.0])
  np.testing.assert_allclose(jax.vmap(metrics.dead_unit_fraction)(stacked), [1.0, 0.0])


def test_orthogonality_error_and_layer_norms():
  q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (6, 3)))
  np.testing.assert_allclose(metrics.orthogonality_error(q), 0.0, atol=1e-6)
  np.testing.assert_allclose(metrics.orthogonality_error(2 * jnp.eye(3)), 3.0, rtol=1e-6)
  norms = metrics.layer_norms(PARAMS)
  np.testing.assert_allclose(norms["layers/0/kernel"], np.sqrt(12))
  np.testing.assert_allclose(norms["norm/scale"], np.sqrt(3))
