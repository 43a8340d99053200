"""Penalties: the seed's worked numbers, the orthogonality family, tree sums."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regjax import penalties

# Seed 002's anchor: w = [2.5, -0.8, 0.1], base loss 1.2, λ = 0.01.
ANCHOR = jnp.array([2.5, -0.8, 0.1])
WORKED = jnp.array([[1.0, 2.0], [0.0, 1.0]])  # WᵀW − I = [[0, 2], [2, 4]]


def test_seed_regularized_losses():
  np.testing.assert_allclose(1.2 + 0.01 * penalties.l2_squared(ANCHOR), 1.269, rtol=1e-6)
  np.testing.assert_allclose(1.2 + 0.01 * penalties.l1(ANCHOR), 1.234, rtol=1e-6)
  np.testing.assert_allclose(0.01 * penalties.elastic_net(ANCHOR, l2_weight=1.0), 0.103,
                             rtol=1e-6)


def test_group_l2_sums_unit_norms():
  kernel = jnp.array([[3.0, 1.0], [4.0, 0.0]])
  np.testing.assert_allclose(penalties.group_l2(kernel), 5.0 + 1.0, rtol=1e-6)
  np.testing.assert_allclose(penalties.group_l2(kernel, axis=1), np.sqrt(10) + 4.0, rtol=1e-6)
  assert jnp.all(jnp.isfinite(jax.grad(penalties.group_l2)(jnp.zeros((3, 2)))))


def test_worked_two_by_two_values():
  np.testing.assert_allclose(penalties.soft_orthogonality(WORKED, "columns"), 24.0)
  np.testing.assert_allclose(penalties.soft_orthogonality(WORKED, "rows"), 24.0)
  np.testing.assert_allclose(penalties.double_soft_orthogonality(WORKED), 48.0)
  np.testing.assert_allclose(penalties.mutual_coherence(WORKED, "columns"), 4.0)
  # columns (1, 0) and (2, 1)/√5: cosine 2/√5, two off-diagonal entries.
  np.testing.assert_allclose(penalties.decorrelation(WORKED, "columns"), 2 * 0.8, rtol=1e-6)
  # eigenvalues of [[0, 2], [2, 4]] are 2 ± 2√2.
  np.testing.assert_allclose(
      penalties.spectral_orthogonality(WORKED, "columns", num_iterations=60),
      2 + 2 * np.sqrt(2), rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(penalties.ORTHOGONALITY))
def test_orthogonality_family_is_zero_on_orthogonal_matrices(kind):
  q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (5, 5)))
  np.testing.assert_allclose(penalties.ORTHOGONALITY[kind](q), 0.0, atol=1e-5)


def test_auto_mode_builds_the_smaller_gram_with_the_same_gradient():
  tall = jax.random.normal(jax.random.key(2), (12, 4))
  assert penalties.gram(tall).shape == (4, 4)
  assert penalties.gram(tall.T).shape == (4, 4)
  assert penalties.gram(tall, "rows").shape == (12, 12)
  columns = penalties.soft_orthogonality(tall, "columns")
  rows = penalties.soft_orthogonality(tall, "rows")
  np.testing.assert_allclose(rows - columns, 12 - 4, rtol=1e-4)  # the zero eigenvalues
  for mode in ("columns", "rows"):
    np.testing.assert_allclose(
        jax.grad(penalties.soft_orthogonality)(tall, "auto"),
        jax.grad(penalties.soft_orthogonality)(tall, mode), rtol=1e-4, atol=1e-4)


def test_soft_orthogonality_gradient_matches_closed_form():
  w = jax.random.normal(jax.random.key(3), (6, 3))
  expected = 4 * w @ (w.T @ w - jnp.eye(3))
  np.testing.assert_allclose(jax.grad(penalties.soft_orthogonality)(w, "columns"), expected,
                             rtol=1e-4, atol=1e-4)


def test_spectral_matches_eigen_decomposition_value_and_gradient():
  w = jax.random.normal(jax.random.key(4), (7, 4)) * 0.6

  def reference(m):
    a = m.T @ m - jnp.eye(4)
    return jnp.max(jnp.abs(jnp.linalg.eigvalsh(a)))

  value = penalties.spectral_orthogonality(w, "columns", num_iterations=300)
  np.testing.assert_allclose(value, reference(w), rtol=1e-4)
  np.testing.assert_allclose(
      jax.grad(penalties.spectral_orthogonality)(w, "columns", 300), jax.grad(reference)(w),
      rtol=1e-3, atol=1e-4)
  top_singular = np.linalg.svd(np.asarray(w.T @ w - jnp.eye(4)), compute_uv=False)[0]
  np.testing.assert_allclose(value, top_singular, rtol=1e-4)


def test_conv_kernels_are_viewed_as_fan_in_by_fan_out():
  kernel = jax.random.normal(jax.random.key(5), (3, 3, 4, 8))
  matrix = kernel.reshape(36, 8)
  for kind, fn in penalties.ORTHOGONALITY.items():
    np.testing.assert_allclose(fn(kernel), fn(matrix), rtol=1e-5, err_msg=kind)


def test_low_precision_gram_is_accumulated_in_float32():
  w = jax.random.normal(jax.random.key(6), (64, 16)) / 8
  low = w.astype(jnp.bfloat16)
  assert penalties.gram(low).dtype == jnp.float32
  reference = penalties.soft_orthogonality(low.astype(jnp.float32))
  np.testing.assert_allclose(penalties.soft_orthogonality(low), reference, rtol=1e-5)


def test_orthogonality_rejects_vectors_and_bad_modes():
  with pytest.raises(ValueError, match="1-D|matrix"):
    penalties.soft_orthogonality(jnp.ones(3))
  with pytest.raises(ValueError, match="`mode`"):
    penalties.soft_orthogonality(jnp.eye(3), mode="diagonal")


def test_tree_penalty_masks_and_per_leaf_strengths():
  tree = {"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}, "out": jnp.ones((3, 1))}
  total = penalties.tree_penalty(penalties.l1, tree)
  np.testing.assert_allclose(total, 6 + 3 + 3)
  only_kernels = penalties.tree_penalty(
      penalties.l1, tree, mask=lambda t: jax.tree.map(lambda x: x.ndim == 2, t))
  np.testing.assert_allclose(only_kernels, 9.0)
  per_leaf = {"dense": {"kernel": 0.5, "bias": None}, "out": 2.0}
  np.testing.assert_allclose(penalties.tree_penalty(penalties.l1, tree, per_leaf), 3 + 6)
  with pytest.raises(ValueError, match="`strength`"):
    penalties.tree_penalty(penalties.l1, tree, {"dense": 1.0})


def test_penalties_jit_vmap_grad_on_activations():
  activations = jax.random.normal(jax.random.key(7), (5, 16, 8))  # (batch of runs, n, d)
  per_run = jax.jit(jax.vmap(functools.partial(penalties.decorrelation, mode="columns")))(
      activations)
  for i in range(5):
    np.testing.assert_allclose(per_run[i], penalties.decorrelation(activations[i], "columns"),
                               rtol=1e-5)
  strengths = jnp.array([0.0, 0.5, 1.0])
  grads = jax.vmap(lambda s: jax.grad(lambda a: s * penalties.l1(a))(activations[0]))(strengths)
  np.testing.assert_allclose(grads[2], jnp.sign(activations[0]))
  np.testing.assert_allclose(grads[0], 0.0)


def test_l1_gradient_is_the_sign_with_zero_at_zero():
  # jax.grad(jnp.abs)(0.0) is 1; the penalty promises the minimum-norm subgradient, 0.
  x = jnp.array([-2.0, -0.0, 0.0, 1e-30, 3.0])
  np.testing.assert_array_equal(jax.grad(penalties.l1)(x), [-1.0, 0.0, 0.0, 1.0, 1.0])
  np.testing.assert_array_equal(
      jax.grad(penalties.elastic_net)(x, 0.5), np.sign(x) + 2 * 0.5 * np.asarray(x))
  per_row = jax.vmap(jax.grad(penalties.l1))(jnp.array([[0.0, 2.0], [-1.0, 0.0]]))
  np.testing.assert_array_equal(per_row, [[0.0, 1.0], [-1.0, 0.0]])


def _dot_output_shapes(jaxpr):
  shapes = []
  for equation in jaxpr.eqns:
    if equation.primitive.name == "dot_general":
      shapes.append(tuple(equation.outvars[0].aval.shape))
    for param in equation.params.values():
      inner = getattr(param, "jaxpr", param)
      if hasattr(inner, "eqns"):
        shapes += _dot_output_shapes(inner)
  return shapes


def test_soft_gradient_takes_two_products_and_its_hessian_matches_differences():
  w = jax.random.normal(jax.random.key(7), (9, 5), jnp.float32)
  shapes = _dot_output_shapes(jax.make_jaxpr(jax.grad(penalties.soft_orthogonality))(w).jaxpr)
  assert len(shapes) == 2, shapes
  with jax.enable_x64(True):
    w64 = np.asarray(w, np.float64)
    direction = np.asarray(jax.random.normal(jax.random.key(8), (9, 5)), np.float64)
    gradient = jax.grad(penalties.soft_orthogonality)
    hessian_vector = jax.jvp(gradient, (w64,), (direction,))[1]
    step = 1e-6
    difference = (gradient(w64 + step * direction) - gradient(w64 - step * direction)) / (
        2 * step)
    np.testing.assert_allclose(hessian_vector, difference, rtol=1e-6, atol=1e-6)
    rows = 4 * (w64 @ w64.T - np.eye(9)) @ w64
    np.testing.assert_allclose(gradient(w64, "rows"), rows, rtol=1e-10)


@pytest.mark.parametrize("mode, size", [("columns", 6), ("rows", 20)])
def test_spectral_never_forms_a_gram_and_its_vector_finds_the_top_eigenvector(mode, size):
  w = jax.random.normal(jax.random.key(9), (20, 6)) * 0.4
  grad = jax.grad(penalties.spectral_orthogonality)
  shapes = _dot_output_shapes(jax.make_jaxpr(lambda m: grad(m, mode, 3))(w).jaxpr)
  assert not [shape for shape in shapes if len(shape) == 2 and shape[0] == shape[1]], shapes
  a = np.asarray(w.T @ w if mode == "columns" else w @ w.T, np.float64) - np.eye(size)
  eigenvalues, eigenvectors = np.linalg.eigh(a)
  top = np.argmax(np.abs(eigenvalues))
  v = penalties.spectral_vector(w, jnp.ones(size), mode, num_iterations=400)
  np.testing.assert_allclose(abs(float(v @ eigenvectors[:, top])), 1.0, atol=1e-4)
  # The gradient with v fixed: sign(λ) · 2 (W v) vᵀ (columns) or 2 v (Wᵀ v)ᵀ (rows).
  u = eigenvectors[:, top]
  w64 = np.asarray(w, np.float64)
  outer = np.outer(w64 @ u, u) if mode == "columns" else np.outer(u, w64.T @ u)
  np.testing.assert_allclose(grad(w, mode, 400), np.sign(eigenvalues[top]) * 2 * outer,
                             rtol=1e-3, atol=1e-4)
