"""Reliability: prox invariants on random inputs, dtypes, determinism, non-finite values,
and the pinned public API."""

import functools

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import regjax
from regjax import data, models, penalties, prox
from regjax.experiment.trainer import Trainer

# ---------------------------------------------------------------- property tests
# Each operator with its penalty (None for projections, whose "penalty" is the
# indicator of the set) and whether it is the prox of a convex function (firmly
# non-expansive) or a projection onto a convex set.
SEPARABLE_OPS = {
    "l1": (prox.l1, penalties.l1),
    "l2_squared": (prox.l2_squared, penalties.l2_squared),
    "elastic_net": (functools.partial(prox.elastic_net, l2_weight=0.5),
                    functools.partial(penalties.elastic_net, l2_weight=0.5)),
    "group_l2": (prox.group_l2, penalties.group_l2),
    "sparse_group": (functools.partial(prox.sparse_group, l1_weight=0.5),
                     lambda z: penalties.group_l2(z) + 0.5 * penalties.l1(z)),
    "nonneg_l1": (prox.nonneg_l1, None),
    "l0": (prox.l0, lambda z: jnp.sum(z != 0).astype(z.dtype)),
}
CONVEX = ("l1", "l2_squared", "elastic_net", "group_l2", "sparse_group", "nonneg_l1")
IDENTITY_AT_ZERO = ("l1", "l2_squared", "elastic_net", "group_l2", "sparse_group", "l0")
PROJECTIONS = {
    "max_norm": functools.partial(prox.max_norm, max_value=1.3),
    "unit_norm": prox.unit_norm,
    "orthonormal": prox.orthonormal,
    "nonneg_l1_at_zero": lambda x: prox.nonneg_l1(x, 0.0),
}

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
elements = st.floats(-4, 4, allow_nan=False, allow_subnormal=False, width=32)
strengths = st.floats(0.0, 3.0, allow_subnormal=False, width=32)


@st.composite
def pairs(draw):
  shape = draw(shapes)
  x = draw(hnp.arrays(np.float32, shape, elements=elements))
  y = draw(hnp.arrays(np.float32, shape, elements=elements))
  return jnp.asarray(x), jnp.asarray(y)


def objective(penalty, z, x, strength):
  return strength * penalty(z) + 0.5 * jnp.sum(jnp.square(z - x))


@pytest.mark.parametrize("name", sorted(SEPARABLE_OPS))
@settings(max_examples=60)
@given(xy=pairs(), strength=strengths, seed=st.integers(0, 2**16))
def test_prox_optimality_against_perturbations(name, xy, strength, seed):
  prox_fn, penalty = SEPARABLE_OPS[name]
  x, _ = xy
  z = prox_fn(x, strength)
  assert z.shape == x.shape and z.dtype == x.dtype
  if penalty is None:  # nonneg_l1: R = ‖z‖₁ on z ≥ 0
    penalty = penalties.l1
    assert jnp.all(z >= 0)
  deltas = np.random.default_rng(seed).normal(size=(8, *x.shape)).astype(np.float32)
  best = float(objective(penalty, z, x, strength))
  for scale in (1e-2, 0.5):
    for delta in deltas:
      candidate = z + scale * delta
      if name == "nonneg_l1":
        candidate = jnp.maximum(candidate, 0)
      assert float(objective(penalty, candidate, x, strength)) >= best - 1e-4 * (1 + abs(best))


@pytest.mark.parametrize("name", CONVEX)
@settings(max_examples=50)
@given(xy=pairs(), strength=strengths)
def test_convex_prox_is_firmly_nonexpansive(name, xy, strength):
  prox_fn, _ = SEPARABLE_OPS[name]
  x, y = xy
  difference = prox_fn(x, strength) - prox_fn(y, strength)
  lhs = jnp.sum(jnp.square(difference))
  rhs = jnp.vdot(difference, x - y)
  assert lhs <= rhs + 1e-4 * (1 + abs(rhs))


@pytest.mark.parametrize("name", IDENTITY_AT_ZERO)
@settings(max_examples=25)
@given(xy=pairs())
def test_zero_strength_is_the_identity(name, xy):
  prox_fn, _ = SEPARABLE_OPS[name]
  x, _ = xy
  np.testing.assert_array_equal(prox_fn(x, 0.0), x)


@settings(max_examples=100)
@given(xy=pairs(), strength=strengths)
def test_moreau_decomposition_for_l1(xy, strength):
  # prox of λ‖·‖₁ plus the projection onto the ∞-ball of radius λ gives back x.
  x, _ = xy
  recomposed = prox.l1(x, strength) + optax.projections.projection_box(x, -strength, strength)
  np.testing.assert_allclose(recomposed, x, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
@settings(max_examples=40)
@given(xy=pairs())
def test_projections_are_idempotent(name, xy):
  x, _ = xy
  project = PROJECTIONS[name]
  if name == "orthonormal":
    x = jnp.reshape(x, (x.shape[0], -1)) if x.ndim > 1 else x[:, None]
    x = x + 3 * jnp.eye(*x.shape)  # keep it well conditioned: the retraction is then unique
  once = project(x)
  np.testing.assert_allclose(project(once), once, atol=2e-5)


# ---------------------------------------------------------------- dtypes
LOW = (jnp.bfloat16, jnp.float16)
TOLERANCE = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2, jnp.float16: 2e-3}


def sample_kernel():
  return np.random.default_rng(0).normal(size=(12, 5)) / 3


@pytest.mark.parametrize("dtype", [jnp.float32, *LOW])
@pytest.mark.parametrize("name", sorted(SEPARABLE_OPS))
def test_prox_keeps_dtype_and_matches_float64(name, dtype):
  prox_fn, _ = SEPARABLE_OPS[name]
  x = sample_kernel()
  with jax.enable_x64(True):
    reference = np.asarray(prox_fn(jnp.asarray(x, jnp.float64), 0.2))
    assert prox_fn(jnp.asarray(x, jnp.float64), 0.2).dtype == jnp.float64
  low = jnp.asarray(x, dtype)
  out = prox_fn(low, 0.2)
  assert out.dtype == dtype
  # Compare with the float64 prox of the *rounded* input, so only the op's error counts.
  with jax.enable_x64(True):
    reference = np.asarray(prox_fn(jnp.asarray(np.asarray(low, np.float64)), 0.2))
  tol = TOLERANCE[dtype]
  np.testing.assert_allclose(np.asarray(out, np.float64), reference, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", [jnp.float32, *LOW])
@pytest.mark.parametrize("kind", sorted(penalties.ORTHOGONALITY))
def test_orthogonality_penalties_accumulate_in_float32(kind, dtype):
  x = jnp.asarray(sample_kernel(), dtype)
  value = penalties.ORTHOGONALITY[kind](x)
  assert value.dtype == jnp.float32
  with jax.enable_x64(True):
    reference = float(penalties.ORTHOGONALITY[kind](jnp.asarray(np.asarray(x, np.float64))))
  np.testing.assert_allclose(float(value), reference, rtol=1e-4, atol=1e-5)


TRANSFORMS = {
    "prox_sgd": lambda: regjax.prox_sgd(0.1, 0.05),
    "prox_adam": lambda: regjax.prox_adam(0.1, 0.05),
    "adamw": lambda: regjax.adamw(0.1, 0.05),
    "decay": lambda: regjax.decoupled_weight_decay(0.05),
    "orthogonality": lambda: optax.chain(regjax.orthogonality(0.05), optax.sgd(0.1)),
    "spectral": lambda: optax.chain(regjax.orthogonality(0.05, kind="spectral"),
                                    optax.sgd(0.1)),
    "project": lambda: optax.chain(
        optax.sgd(0.1), regjax.project(prox.orthonormal, mask=regjax.masks.matrices)),
}


@pytest.mark.parametrize("dtype", [jnp.float32, *LOW, "float64"])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_keep_the_params_dtype(name, dtype):
  with jax.enable_x64(dtype == "float64"):
    dtype = jnp.float64 if dtype == "float64" else dtype
    params = {"kernel": jnp.asarray(sample_kernel(), dtype), "bias": jnp.ones(5, dtype)}
    grads = jax.tree.map(lambda p: (0.1 * jnp.cos(p)).astype(p.dtype), params)
    tx = TRANSFORMS[name]()
    updates, _ = tx.update(grads, tx.init(params), params)
    for leaf, update in zip(jax.tree.leaves(params), jax.tree.leaves(updates), strict=True):
      assert update.dtype == leaf.dtype
      assert jnp.all(jnp.isfinite(update.astype(jnp.float32)))


# ---------------------------------------------------------------- determinism, failures
TRAIN, TEST = data.load_digits("train"), data.load_digits("test")


def small_trainer(optimizer, steps=60):
  return Trainer(model=lambda rngs: models.MLP(64, (16,), 10, rngs=rngs), optimizer=optimizer,
                 train=TRAIN, test=TEST, steps=steps, batch_size=32)


def test_same_seed_gives_bit_identical_sweeps():
  run = small_trainer(lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices))
  grid = regjax.grid(lam=[1e-4, 1e-3, 1e-2])
  first = regjax.sweep(run, grid, seeds=(0, 1), progress=False)
  second = regjax.sweep(run, grid, seeds=(0, 1), progress=False)
  for column in first.metrics:
    np.testing.assert_array_equal(first[column], second[column])
  assert not np.array_equal(first["test_loss"][0::2], first["test_loss"][1::2])  # seeds differ


def test_a_diverging_grid_point_is_marked_failed_with_its_step():
  # A learning rate of 1e30 overflows at once; the other points must finish unaffected.
  run = small_trainer(lambda h: optax.sgd(h["lr"]))
  result = regjax.sweep(run, regjax.grid(lr=[0.05, 1e30, 0.1]), progress=False)
  np.testing.assert_array_equal(result["failed"], [False, True, False])
  assert 0 <= result["failed_step"][1] < 60 and result["failed_step"][0] == -1
  clean = regjax.sweep(run, regjax.grid(lr=[0.05, 0.1]), progress=False)
  # A batch of another size may round differently in the last bit, nothing more.
  np.testing.assert_allclose(result["test_loss"][[0, 2]], clean["test_loss"], rtol=1e-6)
  summary = result.mean_over_seeds()
  assert summary["n_failed"].tolist() == [0, 1, 0]


def test_non_finite_gradients_flow_through_update_without_a_host_check():
  # `update` never reads values on the host (it would break optax.apply_if_finite and
  # sync every step): a NaN gradient gives a NaN update, which the sweep flags as a
  # failed row (above) and `optax.apply_if_finite` skips (tests/test_seams.py).
  params = {"kernel": jnp.ones((2, 2))}
  bad = {"kernel": jnp.array([[1.0, jnp.nan], [0.0, 1.0]])}
  for tx in (regjax.prox_adam(0.1, 0.1), regjax.decoupled_weight_decay(0.1),
             regjax.orthogonality(0.1)):
    updates, _ = tx.update(bad, tx.init(params), params)
    assert bool(jnp.isnan(updates["kernel"][0, 1]))
    assert bool(jnp.isfinite(updates["kernel"][1, 0]))


# ---------------------------------------------------------------- API stability
PUBLIC_API = [
    "Grid", "SweepResult", "Trainer", "adaptive_sweep", "add_penalty_gradient", "adamw", "by_path",
    "checkpoint", "concat_results", "data", "decoupled_weight_decay", "experiment", "gates",
    "grid", "masks", "metrics", "models", "nn", "optimizers", "orthogonality", "penalties",
    "per_layer", "pooling", "progress_callback", "project", "prox", "prox_adam", "prox_sgd",
    "proximal", "pruning", "stochastic", "sweep", "transforms", "typing", "zip_grid",
]


def test_public_api_is_pinned():
  assert sorted(regjax.__all__) == sorted(PUBLIC_API)
  for name in PUBLIC_API:
    assert getattr(regjax, name) is not None
