"""Prox operators: closed forms, optimality, jaxopt agreement, jit/vmap/grad."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxopt import prox as jaxopt_prox

from regjax import penalties, prox

RNG = np.random.default_rng(0)


def random_array(shape, scale=1.0):
  return jnp.asarray(RNG.normal(size=shape) * scale, jnp.float32)


# (prox, matching penalty R with the same strength convention)
SEPARABLE = {
    "l1": (prox.l1, penalties.l1),
    "l2_squared": (prox.l2_squared, penalties.l2_squared),
    "elastic_net": (
        functools.partial(prox.elastic_net, l2_weight=0.7),
        functools.partial(penalties.elastic_net, l2_weight=0.7),
    ),
    "nonneg_l1": (
        prox.nonneg_l1,
        lambda z: jnp.where(jnp.all(z >= 0), penalties.l1(z), jnp.inf),
    ),
    "l0": (prox.l0, lambda z: jnp.sum(z != 0).astype(jnp.float32)),
}
GROUPED = {
    "group_l2_cols": (prox.group_l2, penalties.group_l2),
    "group_l2_rows": (
        functools.partial(prox.group_l2, axis=1),
        functools.partial(penalties.group_l2, axis=1),
    ),
    "sparse_group": (
        functools.partial(prox.sparse_group, l1_weight=0.5),
        lambda z: penalties.group_l2(z) + 0.5 * penalties.l1(z),
    ),
}


def objective(penalty, z, x, strength):
  return strength * penalty(z) + 0.5 * jnp.sum(jnp.square(z - x))


@pytest.mark.parametrize("name", [*SEPARABLE, *GROUPED])
def test_prox_minimizes_its_objective_against_perturbations(name):
  prox_fn, penalty = {**SEPARABLE, **GROUPED}[name]
  for trial in range(5):
    x = random_array((6, 4))
    strength = float(RNG.uniform(0.05, 1.5))
    z = prox_fn(x, strength)
    best = objective(penalty, z, x, strength)
    # Small and large perturbations, and perturbations that move zeros off zero.
    for scale in (1e-3, 1e-2, 0.3):
      deltas = jnp.asarray(RNG.normal(size=(64, 6, 4)) * scale, jnp.float32)
      if name == "nonneg_l1":
        candidates = jnp.maximum(z[None] + deltas, 0)
      else:
        candidates = z[None] + deltas
      values = jax.vmap(objective, (None, 0, None, None))(penalty, candidates, x, strength)
      assert jnp.all(values >= best - 1e-5), (name, trial, scale, float(values.min()), best)


def test_l1_closed_form_and_exact_zeros():
  x = jnp.array([2.5, -0.8, 0.1, -0.05, 0.0, 0.3])
  z = prox.l1(x, 0.2)
  np.testing.assert_allclose(z, [2.3, -0.6, 0.0, 0.0, 0.0, 0.1], rtol=1e-6, atol=1e-7)
  assert jnp.sum(z == 0.0) == 3


def test_l0_threshold_is_sqrt_two_strength():
  x = jnp.array([0.99, 1.01, -1.01, -0.5])
  np.testing.assert_array_equal(prox.l0(x, 0.5), jnp.array([0.0, 1.01, -1.01, 0.0]))


def test_l2_squared_and_elastic_net_closed_forms():
  x = random_array((10,))
  np.testing.assert_allclose(prox.l2_squared(x, 0.25), x / 1.5, rtol=1e-6)
  soft = np.sign(x) * np.maximum(np.abs(x) - 0.3, 0)
  np.testing.assert_allclose(prox.elastic_net(x, 0.3, 2.0), soft / (1 + 2 * 2.0 * 0.3), rtol=1e-6)


def test_group_l2_zeroes_whole_units_and_shrinks_the_rest():
  kernel = jnp.array([[3.0, 0.1, 0.0], [4.0, 0.1, 0.0]])  # unit norms 5, 0.1414, 0
  z = prox.group_l2(kernel, 1.0)
  np.testing.assert_allclose(z[:, 0], jnp.array([3.0, 4.0]) * (1 - 1 / 5), rtol=1e-6)
  assert jnp.all(z[:, 1:] == 0.0)


@pytest.mark.parametrize("scale", [1e-30, 2e-38, 1e20, 1e36])
def test_group_norms_neither_underflow_nor_overflow(scale):
  # float32: (1e-30)² underflows to 0 and (1e20)² overflows to inf, yet the norms are
  # representable. Found by hypothesis: sparse_group(1.2e-38, 0.0) returned 0.
  unit = jnp.array([[3.0], [4.0]])
  x = (unit * scale).astype(jnp.float32)
  np.testing.assert_allclose(penalties.group_l2(x), 5 * np.float32(scale), rtol=1e-5)
  np.testing.assert_array_equal(prox.group_l2(x, 0.0), x)
  np.testing.assert_array_equal(prox.sparse_group(x, 0.0), x)
  np.testing.assert_allclose(prox.group_l2(x, scale), x * np.float32(0.8), rtol=1e-5)
  assert jnp.all(jnp.isfinite(jax.grad(penalties.group_l2)(x)))


def test_sparse_group_is_group_prox_of_soft_threshold():
  x = random_array((5, 3))
  expected = prox.group_l2(prox.l1(x, 0.2 * 0.5), 0.2)
  np.testing.assert_allclose(prox.sparse_group(x, 0.2, l1_weight=0.5), expected, rtol=1e-6)


@pytest.mark.parametrize("strength", [0.0, 0.05, 0.4, 2.0])
def test_agrees_with_jaxopt(strength):
  x = random_array((7, 5))
  np.testing.assert_allclose(prox.l1(x, strength), jaxopt_prox.prox_lasso(x, strength), atol=1e-6)
  np.testing.assert_allclose(
      prox.nonneg_l1(x, strength), jaxopt_prox.prox_non_negative_lasso(x, strength), atol=1e-6
  )
  # jaxopt's ridge and elastic net put ½ before the squared norm; regjax does not.
  np.testing.assert_allclose(
      prox.l2_squared(x, strength), jaxopt_prox.prox_ridge(x, 2 * strength), atol=1e-6
  )
  np.testing.assert_allclose(
      prox.elastic_net(x, strength, 0.7),
      jaxopt_prox.prox_elastic_net(x, (strength, 2 * 0.7)),
      atol=1e-6,
  )
  # jaxopt treats the whole array as one group: compare unit by unit.
  expected = jax.vmap(lambda col: jaxopt_prox.prox_group_lasso(col, strength), 1, 1)(x)
  np.testing.assert_allclose(prox.group_l2(x, strength), expected, atol=1e-6)


@pytest.mark.parametrize(
    "prox_fn",
    [
        prox.l1, prox.l2_squared, prox.elastic_net, prox.nonneg_l1, prox.l0, prox.group_l2,
        prox.sparse_group,
    ],
)
def test_grad_is_finite_everywhere_including_zero(prox_fn):
  def total(x, strength):
    return jnp.sum(prox_fn(x, strength) ** 2)

  for x in (jnp.zeros((4, 3)), random_array((4, 3)), random_array((4, 3)).at[:, 1].set(0)):
    gx, gs = jax.grad(total, argnums=(0, 1))(x, 0.3)
    assert jnp.all(jnp.isfinite(gx)) and jnp.isfinite(gs)


def test_group_l2_gradient_matches_finite_differences_off_the_kink():
  x = random_array((4, 3))
  f = lambda v: jnp.sum(jnp.sin(prox.group_l2(v, 0.5)))  # noqa: E731
  grad = jax.grad(f)(x)
  eps = 1e-3
  direction = random_array((4, 3))
  numeric = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(jnp.vdot(grad, direction), numeric, rtol=2e-2, atol=1e-3)


def test_strength_broadcasts_per_coordinate():
  x = jnp.array([[1.0, 1.0], [1.0, 1.0]])
  threshold = jnp.array([[0.5, 2.0], [0.0, 1.0]])
  np.testing.assert_allclose(prox.l1(x, threshold), jnp.array([[0.5, 0.0], [1.0, 0.0]]))


def test_jit_and_vmap_over_strengths_and_data():
  x = random_array((8, 4))
  strengths = jnp.linspace(0.0, 1.0, 5)
  batched = jax.jit(jax.vmap(prox.group_l2, in_axes=(None, 0)))(x, strengths)
  for i, s in enumerate(strengths):
    np.testing.assert_allclose(batched[i], prox.group_l2(x, s), rtol=1e-6)
  data = random_array((3, 8, 4))
  per_example = jax.vmap(prox.l1, in_axes=(0, None))(data, 0.3)
  np.testing.assert_allclose(per_example, prox.l1(data, 0.3), rtol=1e-6)


def test_max_norm_and_unit_norm_projections():
  kernel = random_array((5, 6), scale=2.0)
  projected = prox.max_norm(kernel, 1.5)
  norms = jnp.linalg.norm(projected, axis=0)
  original = jnp.linalg.norm(kernel, axis=0)
  np.testing.assert_allclose(norms, jnp.minimum(original, 1.5), rtol=1e-5)
  np.testing.assert_allclose(prox.max_norm(projected, 1.5), projected, rtol=1e-6)  # idempotent
  unit = prox.unit_norm(kernel.at[:, 2].set(0))
  np.testing.assert_allclose(jnp.linalg.norm(unit, axis=0)[jnp.array([0, 1, 3, 4, 5])], 1.0,
                             rtol=1e-5)
  assert jnp.all(unit[:, 2] == 0)


@pytest.mark.parametrize("shape", [(8, 3), (3, 8), (3, 3, 2, 4)])
@pytest.mark.parametrize("method", ["polar", "qr"])
def test_orthonormal_retraction(shape, method):
  w = random_array(shape)
  z = prox.orthonormal(w, method)
  assert z.shape == w.shape and z.dtype == w.dtype
  matrix = z.reshape(-1, shape[-1])
  small = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
  np.testing.assert_allclose(small, jnp.eye(small.shape[0]), atol=1e-5)
  np.testing.assert_allclose(prox.orthonormal(z, method), z, atol=1e-5)  # idempotent


def test_polar_is_the_nearest_orthonormal_matrix():
  w = random_array((6, 3))
  z = prox.orthonormal(w, "polar")
  best = jnp.linalg.norm(z - w)
  for _ in range(50):
    q, _ = jnp.linalg.qr(random_array((6, 3)))
    assert jnp.linalg.norm(q - w) >= best - 1e-5


def lapack_operand_shapes(compiled_text):
  """The result shapes of every LAPACK custom call in a compiled XLA:CPU program."""
  calls = re.findall(r"= \(?(\w+\[[0-9,]*\])[^\n]*custom_call_target=\"lapack_", compiled_text)
  return [tuple(int(d) for d in shape.split("[")[1].rstrip("]").split(",")) for shape in calls]


@pytest.mark.parametrize("method", ["polar", "qr"])
def test_orthonormal_under_vmap_calls_lapack_one_matrix_at_a_time_on_cpu(method):
  # jaxlib's batched CPU LAPACK kernels split the batch over XLA's intra-op pool and block
  # a pool thread until it is done; two such calls at once on a 2-thread pool deadlocked
  # notebook 23 (every thread idle). One matrix per call runs inline.
  if jax.default_backend() != "cpu":
    pytest.skip("the deadlock and the sequential map are CPU-only")
  kernels = random_array((2, 3, 6, 4))  # (rates, seeds, fan_in, fan_out)
  retract = jax.jit(jax.vmap(jax.vmap(functools.partial(prox.orthonormal, method=method))))
  shapes = lapack_operand_shapes(retract.lower(kernels).compile().as_text())
  assert shapes and all(len(shape) == 2 for shape in shapes), shapes
  one_by_one = jnp.stack([jnp.stack([prox.orthonormal(k, method) for k in row])
                          for row in kernels])
  np.testing.assert_allclose(retract(kernels), one_by_one, atol=1e-6)


@pytest.mark.parametrize("method", ["polar", "qr"])
def test_vmapped_orthonormal_differentiates_like_one_matrix_at_a_time(method):
  kernels = random_array((3, 6, 4))
  loss = lambda w: jnp.sum(prox.orthonormal(w, method) ** 3)  # noqa: E731
  one_by_one = jnp.stack([jax.grad(loss)(k) for k in kernels])
  batched = jax.grad(lambda ks: jnp.sum(jax.vmap(loss)(ks)))(kernels)
  np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
  np.testing.assert_allclose(jax.vmap(jax.grad(loss))(kernels), one_by_one, atol=1e-5)
  jacobian = jax.vmap(jax.jacfwd(functools.partial(prox.orthonormal, method=method)))(kernels)
  assert jacobian.shape == (3, 6, 4, 6, 4)


def test_bad_arguments_name_themselves():
  with pytest.raises(ValueError, match="`method`"):
    prox.orthonormal(jnp.eye(3), "svd")
  with pytest.raises(ValueError, match="orthogonality needs a matrix"):
    prox.orthonormal(jnp.ones(3))
  with pytest.raises(ValueError, match="`axis`"):
    prox.group_l2(jnp.ones((2, 2)), 0.1, axis=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_group_boundary_is_exact_whichever_way_the_norm_was_computed(dtype):
  with jax.enable_x64(dtype == "float64"):
    for size in (2, 37, 300):  # 64 groups of each size
      x = jnp.asarray(RNG.normal(size=(size, 64)) * 10.0 ** RNG.uniform(-3, 3, 64), dtype)
      for norm in (jnp.linalg.norm(x, axis=0), np.linalg.norm(np.float64(x), axis=0)):
        norm = jnp.asarray(norm, dtype)[None, :]
        # The docstring's promise: a group with ‖x_g‖ ≤ λ is exactly zero.
        assert jnp.all(prox.group_l2(x, norm) == 0), size
        assert jnp.all(prox.sparse_group(x, norm, l1_weight=0.0) == 0), size
        # A point on the ball is left exactly as it is; one outside it is moved.
        np.testing.assert_array_equal(prox.max_norm(x, norm), x)
        assert jnp.all(prox.max_norm(x, 0.999 * norm) != x)


def test_integer_inputs_are_promoted_not_truncated():
  ints = jnp.array([1, -2, 3])
  np.testing.assert_allclose(prox.l1(ints, 0.5), [0.5, -1.5, 2.5])
  assert prox.l1(ints, 0.5).dtype == jnp.float32
  np.testing.assert_allclose(prox.nonneg_l1(ints, 0.5), [0.5, 0.0, 2.5])
  np.testing.assert_allclose(prox.l2_squared(ints, 0.25), [2 / 3, -4 / 3, 2.0], rtol=1e-6)
  np.testing.assert_allclose(prox.group_l2(jnp.array([3, 4]), 2.5), [1.5, 2.0], rtol=1e-6)
  np.testing.assert_allclose(prox.max_norm(jnp.array([3, 4]), 2.5), [1.5, 2.0], rtol=1e-6)
  np.testing.assert_allclose(prox.l0(ints, 1.0), [0.0, -2.0, 3.0])
