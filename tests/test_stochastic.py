"""Tests for regjax.stochastic: expectations by Monte Carlo over keys, exact invariants."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from regjax import pooling, stochastic

NUM_KEYS = 4000
KEYS = jax.random.split(jax.random.key(0), NUM_KEYS)


def _mc_tolerance(std, n=NUM_KEYS, sigmas=5.0):
  """Half-width of a ``sigmas``-sigma band for a mean of ``n`` draws with this std."""
  return sigmas * np.asarray(std) / math.sqrt(n) + 1e-6


# ------------------------------------------------------------------------- dropconnect


def test_dropconnect_mean_over_keys_is_the_kernel():
  rate = 0.3
  kernel = jax.random.normal(jax.random.key(1), (4, 3))
  samples = jax.vmap(stochastic.dropconnect, in_axes=(0, None, None))(KEYS, kernel, rate)
  # Each entry is k/(1-r) w.p. 1-r, else 0: std = |k| sqrt(r/(1-r)).
  std = np.abs(kernel) * math.sqrt(rate / (1 - rate))
  np.testing.assert_array_less(np.abs(samples.mean(0) - kernel), _mc_tolerance(std))


def test_dropconnect_kept_entries_are_rescaled_and_drop_fraction_is_rate():
  rate = 0.25
  kernel = jax.random.normal(jax.random.key(2), (64, 64))
  out = stochastic.dropconnect(jax.random.key(3), kernel, rate)
  kept = out != 0
  np.testing.assert_allclose(out[kept], kernel[kept] / (1 - rate), rtol=1e-6)
  n = kernel.size
  assert abs(1 - kept.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)


def test_dropconnect_is_deterministic_for_a_key_and_varies_across_keys():
  kernel = jnp.ones((8, 8))
  a = stochastic.dropconnect(jax.random.key(4), kernel, 0.5)
  b = stochastic.dropconnect(jax.random.key(4), kernel, 0.5)
  c = stochastic.dropconnect(jax.random.key(5), kernel, 0.5)
  np.testing.assert_array_equal(a, b)
  assert np.any(a != c)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dropconnect_preserves_shape_and_dtype(dtype):
  kernel = jnp.ones((3, 5, 2), dtype)
  out = jax.jit(stochastic.dropconnect)(jax.random.key(0), kernel, 0.5)
  assert out.shape == kernel.shape and out.dtype == dtype
  assert set(np.unique(np.asarray(out, np.float32))) <= {0.0, 2.0}


def test_dropconnect_vmaps_over_traced_rates():
  rates = jnp.array([0.0, 0.25, 0.5, 0.75])
  kernel = jnp.ones((64, 64))
  out = jax.jit(jax.vmap(stochastic.dropconnect, in_axes=(None, None, 0)))(
      jax.random.key(6), kernel, rates)
  np.testing.assert_array_equal(out[0], kernel)  # rate 0: identity
  dropped = np.asarray((out == 0).mean(axis=(1, 2)))
  band = 5 * np.sqrt(rates * (1 - rates) / kernel.size) + 1e-9
  np.testing.assert_array_less(np.abs(dropped - rates), band)
  kept_values = np.asarray(out.max(axis=(1, 2)))
  np.testing.assert_allclose(kept_values, 1 / (1 - rates), rtol=1e-6)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_dropconnect_rejects_bad_rate(rate):
  with pytest.raises(ValueError, match="`rate`"):
    stochastic.dropconnect(jax.random.key(0), jnp.ones((2, 2)), rate)


def test_dropconnect_rejects_non_scalar_rate_and_integer_kernel():
  with pytest.raises(ValueError, match="`rate`"):
    stochastic.dropconnect(jax.random.key(0), jnp.ones((2, 2)), jnp.array([0.1, 0.2]))
  with pytest.raises(TypeError, match="`kernel`"):
    stochastic.dropconnect(jax.random.key(0), jnp.ones((2, 2), jnp.int32), 0.1)


def test_dropconnect_linear_eval_uses_all_weights_and_train_mean_matches():
  layer = stochastic.DropConnectLinear(3, 2, rate=0.4, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(7), (5, 3))
  expected = x @ layer.kernel[...] + layer.bias[...][None, :]
  np.testing.assert_allclose(layer(x, deterministic=True), expected, rtol=1e-6)
  layer.eval()
  np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
  layer.train()
  keys = KEYS[:2000]
  samples = jax.vmap(lambda key: layer(x, rngs=key))(keys)
  # Output std per entry: sqrt(r/(1-r) * sum_i x_i^2 W_ij^2).
  var = 0.4 / 0.6 * (x**2) @ (layer.kernel[...] ** 2)
  np.testing.assert_array_less(np.abs(samples.mean(0) - expected),
                               _mc_tolerance(np.sqrt(var), n=2000))


def test_dropconnect_linear_rng_stream_advances_and_per_example_masks_differ():
  layer = stochastic.DropConnectLinear(4, 3, rate=0.5, rngs=nnx.Rngs(params=0, dropout=1),
                                       per_example=True)
  x = jnp.ones((6, 4))

  @nnx.jit
  def forward(model, inputs):
    return model(inputs)

  first, second = forward(layer, x), forward(layer, x)
  assert first.shape == (6, 3)
  assert np.any(first != second)  # the forked stream advanced inside nnx.jit
  assert len({tuple(np.asarray(row)) for row in first}) > 1  # identical rows, own masks
  view = nnx.view(layer, deterministic=True)
  np.testing.assert_allclose(view(x), x @ layer.kernel[...] + layer.bias[...][None, :],
                             rtol=1e-6)
  assert layer.deterministic is False  # the view did not change the original


def test_dropconnect_linear_gradient_is_masked():
  layer = stochastic.DropConnectLinear(5, 4, rate=0.5, rngs=nnx.Rngs(0), use_bias=False)
  x = jnp.ones((2, 5))
  key = jax.random.key(8)
  grads = nnx.grad(lambda m: m(x, rngs=key).sum())(layer)
  mask = stochastic.dropconnect(key, jnp.ones((5, 4)), 0.5)
  # d sum(x @ (M*W)/(1-r)) / dW = sum_n x_n * M/(1-r) = 2 * mask.
  np.testing.assert_allclose(grads.kernel[...], 2 * mask, rtol=1e-6)


def test_dropconnect_linear_rejects_bad_arguments():
  with pytest.raises(ValueError, match="`rate`"):
    stochastic.DropConnectLinear(2, 2, rate=1.0, rngs=nnx.Rngs(0))
  layer = stochastic.DropConnectLinear(2, 2, rate=0.1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="`inputs`"):
    layer(jnp.ones((3, 4)))


# ---------------------------------------------------------------------- stochastic depth


def test_drop_path_mean_over_keys_is_the_branch():
  p = 0.7
  branch = jax.random.normal(jax.random.key(9), (6, 3))
  samples = jax.vmap(stochastic.drop_path, in_axes=(0, None, None))(KEYS, branch, p)
  std = np.abs(branch) * math.sqrt((1 - p) / p)
  np.testing.assert_array_less(np.abs(samples.mean(0) - branch), _mc_tolerance(std))


def test_drop_path_drops_whole_examples():
  branch = jax.random.normal(jax.random.key(10), (32, 4, 4, 2)) + 5.0
  out = np.asarray(stochastic.drop_path(jax.random.key(11), branch, 0.5))
  branch = np.asarray(branch)
  for n in range(32):
    if np.all(out[n] == 0):
      continue
    np.testing.assert_allclose(out[n], branch[n] / 0.5, rtol=1e-6)
  dropped = np.all(out == 0, axis=(1, 2, 3))
  assert 0 < dropped.sum() < 32


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_drop_path_preserves_dtype_and_vmaps_over_survival(dtype):
  probs = jnp.array([1.0, 0.8, 0.5])
  branch = jnp.ones((2000, 3), dtype)
  out = jax.jit(jax.vmap(stochastic.drop_path, in_axes=(None, None, 0)))(
      jax.random.key(12), branch, probs)
  assert out.dtype == dtype and out.shape == (3, 2000, 3)
  np.testing.assert_array_equal(out[0], branch)  # survival 1: identity
  kept = np.asarray((out[:, :, 0] != 0).mean(axis=1), np.float64)
  band = 5 * np.sqrt(probs * (1 - probs) / 2000) + 1e-9
  np.testing.assert_array_less(np.abs(kept - probs), band)


@pytest.mark.parametrize("p", [0.0, -0.1, 1.1, float("nan")])
def test_drop_path_rejects_bad_survival(p):
  with pytest.raises(ValueError, match="`survival_prob`"):
    stochastic.drop_path(jax.random.key(0), jnp.ones((2, 2)), p)


def test_linear_survival_schedule_values():
  np.testing.assert_allclose(stochastic.linear_survival_schedule(4, 0.5),
                             [0.875, 0.75, 0.625, 0.5])
  np.testing.assert_allclose(stochastic.linear_survival_schedule(1, 0.3), [0.3])
  np.testing.assert_allclose(stochastic.linear_survival_schedule(3, 1.0), [1.0, 1.0, 1.0])
  # Huang et al.: 54 blocks (ResNet-110), p_L = 0.5 -> expected depth (3L - 1) / 4.
  assert float(stochastic.linear_survival_schedule(54).sum()) == pytest.approx(40.25)
  finals = jnp.array([0.5, 1.0])
  out = jax.vmap(functools.partial(stochastic.linear_survival_schedule, 2))(finals)
  np.testing.assert_allclose(out, [[0.75, 0.5], [1.0, 1.0]])


def test_linear_survival_schedule_rejects_bad_arguments():
  with pytest.raises(ValueError, match="`num_blocks`"):
    stochastic.linear_survival_schedule(0)
  with pytest.raises(TypeError, match="`num_blocks`"):
    stochastic.linear_survival_schedule(2.5)
  with pytest.raises(ValueError, match="`final_survival`"):
    stochastic.linear_survival_schedule(3, 0.0)


def test_drop_path_module_train_and_eval():
  module = stochastic.DropPath(0.5, rngs=nnx.Rngs(dropout=3))
  branch = jnp.ones((64, 2))
  train = module(branch)
  assert set(np.unique(np.asarray(train))) == {0.0, 2.0}
  assert np.any(module(branch) != train)  # the stream advanced
  module.eval()
  np.testing.assert_array_equal(module(branch), branch)
  keyed = stochastic.DropPath(0.5)(branch, rngs=jax.random.key(5))
  np.testing.assert_array_equal(keyed, stochastic.drop_path(jax.random.key(5), branch, 0.5))
  with pytest.raises(ValueError, match="rngs"):
    stochastic.DropPath(0.5)(branch)


# ------------------------------------------------------------------------------- cutout


def _zero_box(image):
  """Bounding rows/cols of the zeros of a (H, W) image, asserting they form a box."""
  zero = np.asarray(image) == 0
  rows, cols = np.where(zero.any(1))[0], np.where(zero.any(0))[0]
  box = np.zeros_like(zero)
  box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
  np.testing.assert_array_equal(zero, box)
  return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def test_cutout_zeroes_a_size_square_inside_and_a_clipped_square_at_borders():
  size, height, width = 4, 12, 10
  images = jnp.ones((300, height, width, 3))
  out = np.asarray(stochastic.cutout(jax.random.key(13), images, size))
  np.testing.assert_array_equal(out[..., 0], out[..., 2])  # all channels at once
  interior = clipped = 0
  for image in out[..., 0]:
    r0, r1, c0, c1 = _zero_box(image)
    touches = r0 == 0 or c0 == 0 or r1 == height or c1 == width
    if not touches:
      assert (image == 0).sum() == size * size
      interior += 1
    else:
      assert r1 - r0 <= size and c1 - c0 <= size
      # A box clipped on one side keeps its full extent on the other axis' free sides.
      if 0 < r0 and r1 < height:
        assert r1 - r0 == size
      if 0 < c0 and c1 < width:
        assert c1 - c0 == size
      clipped += 1
  assert interior > 0 and clipped > 0


def test_cutout_size_one_zeroes_one_pixel_and_twice_the_image_zeroes_all():
  images = jnp.ones((50, 7, 5, 1))
  one = stochastic.cutout(jax.random.key(14), images, 1)
  np.testing.assert_array_equal((np.asarray(one) == 0).sum(axis=(1, 2, 3)), 1)
  everything = stochastic.cutout(jax.random.key(14), images, 14)
  np.testing.assert_array_equal(everything, 0)


def test_cutout_pixel_probabilities_match_uniform_centers():
  size, n = 3, 6
  images = jnp.ones((1, n, n, 1))
  out = jax.jit(jax.vmap(stochastic.cutout, in_axes=(0, None, None)), static_argnums=2)(
      KEYS, images, size)
  freq = np.asarray((out[:, 0, :, :, 0] == 0).mean(0))
  # Pixel i is cut when i - size//2 + ... covers it: centers c with
  # c - size//2 <= i < c - size//2 + size, c uniform in {0..n-1}.
  centers = np.arange(n)
  start = centers - size // 2
  p_axis = np.array([((start <= i) & (i < start + size)).mean() for i in range(n)])
  expected = np.outer(p_axis, p_axis)
  np.testing.assert_array_less(np.abs(freq - expected),
                               _mc_tolerance(np.sqrt(expected * (1 - expected))))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.uint8])
def test_cutout_preserves_dtype_and_is_deterministic(dtype):
  images = jnp.full((2, 5, 5, 3), 7, dtype)
  a = jax.jit(stochastic.cutout, static_argnums=2)(jax.random.key(1), images, 2)
  b = stochastic.cutout(jax.random.key(1), images, 2)
  assert a.dtype == dtype and a.shape == images.shape
  np.testing.assert_array_equal(a, b)


def test_cutout_vmaps_over_traced_sizes():
  images = jnp.ones((4, 9, 9, 1))
  sizes = jnp.array([1, 2, 3, 5])
  batched = jax.jit(jax.vmap(stochastic.cutout, in_axes=(None, None, 0)))(
      jax.random.key(2), images, sizes)
  for i, size in enumerate([1, 2, 3, 5]):
    np.testing.assert_array_equal(batched[i],
                                  stochastic.cutout(jax.random.key(2), images, size))


@pytest.mark.parametrize("size,error", [(0, ValueError), (-2, ValueError), (2.5, TypeError),
                                        (True, TypeError), ("3", TypeError)])
def test_cutout_rejects_bad_size(size, error):
  with pytest.raises(error, match="`size`"):
    stochastic.cutout(jax.random.key(0), jnp.ones((1, 4, 4, 1)), size)


def test_cutout_rejects_non_nhwc():
  with pytest.raises(ValueError, match="`images`"):
    stochastic.cutout(jax.random.key(0), jnp.ones((4, 4, 1)), 2)


# ------------------------------------------------------------------------ mixup, cutmix


def _recover_permutation(targets, lam):
  """With labels eye(B), row i of the targets is lam*e_i + (1-lam)*e_perm(i)."""
  targets = np.asarray(targets, np.float64).copy()
  batch = targets.shape[0]
  targets[np.arange(batch), np.arange(batch)] -= lam
  perm = np.argmax(targets, axis=1)
  fixed = targets.max(axis=1) < 1e-3  # perm(i) = i leaves 1 - lam on the diagonal
  perm[fixed] = np.arange(batch)[fixed]
  return perm


ALPHAS = (0.2, 1.0, 2.0)


@functools.lru_cache(maxsize=1)
def _mixup_over_keys_and_alphas():
  """mixup of a fixed batch of 8 for every (alpha, key), compiled once, as NumPy."""
  inputs = jax.random.normal(jax.random.key(15), (8, 3, 2))
  run = jax.vmap(jax.vmap(stochastic.mixup, (0, None, None, None)), (None, None, None, 0))
  outputs = jax.jit(run)(KEYS, inputs, jnp.eye(8), jnp.asarray(ALPHAS))
  return np.asarray(inputs), jax.tree.map(np.asarray, outputs)


def test_mixup_blends_inputs_and_targets_with_the_same_lambda_and_permutation():
  inputs, (mixed, targets, lams) = _mixup_over_keys_and_alphas()
  labels = np.eye(8)
  for a in range(len(ALPHAS)):
    for k in range(3):
      lam = float(lams[a, k])
      assert 0.0 <= lam <= 1.0
      np.testing.assert_allclose(targets[a, k].sum(1), 1.0, atol=1e-6)
      perm = _recover_permutation(targets[a, k], lam)
      assert sorted(perm) == list(range(8))
      np.testing.assert_allclose(mixed[a, k], lam * inputs + (1 - lam) * inputs[perm],
                                 atol=1e-6)
      np.testing.assert_allclose(targets[a, k], lam * labels + (1 - lam) * labels[perm],
                                 atol=1e-6)


def test_mixup_lambda_has_mean_half_and_beta_variance():
  _, (_, _, lams) = _mixup_over_keys_and_alphas()
  for alpha, lam in zip(ALPHAS, np.asarray(lams, np.float64), strict=True):
    var = 1.0 / (4 * (2 * alpha + 1))  # Var Beta(a, a)
    assert abs(lam.mean() - 0.5) < _mc_tolerance(math.sqrt(var))
    assert lam.var() == pytest.approx(var, rel=0.15)


def test_mixup_is_eager_and_keeps_dtypes():
  inputs = jnp.ones((4, 3), jnp.bfloat16)
  mixed, targets, lam = stochastic.mixup(jax.random.key(0), inputs, jnp.eye(4), 0.5)
  assert mixed.dtype == jnp.bfloat16 and mixed.shape == (4, 3)
  assert targets.dtype == jnp.float32 and lam.shape == ()
  np.testing.assert_allclose(np.asarray(mixed, np.float32), 1.0)  # blending ones
  np.testing.assert_allclose(targets.sum(-1), 1.0, atol=1e-6)
  _, int_targets, _ = stochastic.mixup(jax.random.key(0), inputs, jnp.eye(4, dtype=int), 0.5)
  assert int_targets.dtype == jnp.float32


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_mixup_and_cutmix_reject_bad_alpha(alpha):
  with pytest.raises(ValueError, match="`alpha`"):
    stochastic.mixup(jax.random.key(0), jnp.ones((2, 2)), jnp.eye(2), alpha)
  with pytest.raises(ValueError, match="`alpha`"):
    stochastic.cutmix(jax.random.key(0), jnp.ones((2, 4, 4, 1)), jnp.eye(2), alpha)


def test_mixup_rejects_mismatched_batch():
  with pytest.raises(ValueError, match="`labels_onehot`"):
    stochastic.mixup(jax.random.key(0), jnp.ones((3, 2)), jnp.eye(2), 1.0)


def test_cutmix_targets_follow_the_pasted_area_under_jit_and_vmap():
  batch, height, width = 6, 8, 10
  # Image n is constant n + 1 (exact in bfloat16), so pasted pixels are recognizable.
  images = (jnp.arange(batch, dtype=jnp.bfloat16) + 1)[:, None, None, None] * jnp.ones(
      (batch, height, width, 2), jnp.bfloat16)
  labels = jnp.eye(batch)
  run = jax.jit(jax.vmap(stochastic.cutmix, in_axes=(0, None, None, None)))
  all_mixed, all_targets, all_lams = run(KEYS[:8], images, labels, 1.0)
  assert all_mixed.shape == (8,) + images.shape and all_mixed.dtype == jnp.bfloat16
  own = np.asarray(images[..., 0], np.float32)
  for mixed, targets, lam in zip(all_mixed, all_targets, all_lams, strict=True):
    lam = float(lam)
    assert 0.0 <= lam <= 1.0
    perm = _recover_permutation(targets, lam)
    mixed = np.asarray(mixed[..., 0], np.float32)
    pasted = mixed != own
    for n in range(batch):
      if perm[n] == n:
        continue
      # Pixels are the image's own value or its partner's; the partner's fill a box
      # whose area fraction is 1 - lam.
      assert set(np.unique(mixed[n])) <= {n + 1.0, perm[n] + 1.0}
      assert pasted[n].mean() == pytest.approx(1 - lam, abs=1e-6)
      if pasted[n].any():
        _zero_box(~pasted[n])
    np.testing.assert_allclose(targets, lam * labels + (1 - lam) * labels[perm], atol=1e-6)


def test_soft_target_cross_entropy_is_linear_in_targets():
  logits = jax.random.normal(jax.random.key(17), (5, 4))
  first = jax.nn.one_hot(jnp.array([0, 1, 2, 3, 0]), 4)
  second = jax.nn.one_hot(jnp.array([3, 2, 1, 0, 0]), 4)
  reference = -(first * jax.nn.log_softmax(logits)).sum(-1)
  np.testing.assert_allclose(stochastic.soft_target_cross_entropy(logits, first), reference,
                             rtol=1e-6)
  np.testing.assert_allclose(
      stochastic.soft_target_cross_entropy(logits, first),
      optax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1, 2, 3, 0])),
      rtol=1e-6)
  lam = 0.3
  np.testing.assert_allclose(
      stochastic.soft_target_cross_entropy(logits, lam * first + (1 - lam) * second),
      lam * stochastic.soft_target_cross_entropy(logits, first)
      + (1 - lam) * stochastic.soft_target_cross_entropy(logits, second), rtol=1e-5)


# ----------------------------------------------------------------- fractional max-pool


@pytest.mark.parametrize("pseudo_random", [True, False])
@pytest.mark.parametrize("n_in,n_out", [(10, 6), (25, 17), (5, 2)])
def test_fractional_pooling_sequence_properties(pseudo_random, n_in, n_out):
  sample = functools.partial(pooling.fractional_pooling_sequence, input_size=n_in,
                             output_size=n_out, pseudo_random=pseudo_random)
  for seq in np.asarray(jax.jit(jax.vmap(sample))(KEYS[:20])):
    assert seq[0] == 0 and seq[-1] == n_in and len(seq) == n_out + 1
    steps = np.diff(seq)
    small = n_in // n_out
    assert set(steps) <= {small, small + 1}
    assert (steps == small + 1).sum() == n_in % n_out
    if pseudo_random:
      # The sequence is ceil(alpha (i + u)) - ceil(alpha u) for some u in (0, 1).
      alpha = n_in / n_out
      i = np.arange(n_out + 1)
      us = (np.arange(4 * n_in) + 0.5) / (4 * n_in)
      assert any(np.array_equal(
          np.ceil(alpha * (i + u) - 1e-9) - np.ceil(alpha * u - 1e-9), seq) for u in us)


def _numpy_fractional_max_pool(images, rows, cols, overlapping):
  images = np.asarray(images)
  batch, height, width, channels = images.shape
  out = np.zeros((batch, len(rows) - 1, len(cols) - 1, channels), images.dtype)
  extra = 1 if overlapping else 0
  for i in range(len(rows) - 1):
    for j in range(len(cols) - 1):
      r1 = min(rows[i + 1] + extra, height)
      c1 = min(cols[j + 1] + extra, width)
      out[:, i, j] = images[:, rows[i]:r1, cols[j]:c1].max(axis=(1, 2))
  return out


@pytest.mark.parametrize("overlapping", [False, True])
@pytest.mark.parametrize("pseudo_random", [True, False])
def test_fractional_max_pool_matches_numpy_on_the_same_regions(overlapping, pseudo_random):
  images = jax.random.normal(jax.random.key(18), (2, 11, 13, 3))
  ratio = (1.4, 1.7)
  for seed in range(3):
    key = jax.random.key(seed)
    out = pooling.fractional_max_pool(key, images, ratio, pseudo_random=pseudo_random,
                                         overlapping=overlapping)
    assert out.shape == (2, math.floor(11 / 1.4), math.floor(13 / 1.7), 3)
    key_rows, key_cols = jax.random.split(key)
    rows = np.asarray(pooling.fractional_pooling_sequence(
        key_rows, 11, out.shape[1], pseudo_random=pseudo_random))
    cols = np.asarray(pooling.fractional_pooling_sequence(
        key_cols, 13, out.shape[2], pseudo_random=pseudo_random))
    np.testing.assert_array_equal(out, _numpy_fractional_max_pool(images, rows, cols,
                                                                  overlapping))


def test_fractional_max_pool_output_shape_and_dtypes():
  for dtype in (jnp.float32, jnp.bfloat16, jnp.int32):
    images = jnp.arange(2 * 32 * 20 * 3).reshape(2, 32, 20, 3).astype(dtype)
    out = pooling.fractional_max_pool(jax.random.key(0), images, 1.414)
    assert out.shape == (2, 22, 14, 3) and out.dtype == dtype
  # 14 / 1.4 is 10 despite 1.4 not being exact in binary.
  assert pooling.fractional_max_pool(jax.random.key(0), jnp.ones((1, 14, 14, 1)),
                                        1.4).shape == (1, 10, 10, 1)


def test_fractional_max_pool_jit_vmap_and_gradient():
  images = jax.random.normal(jax.random.key(19), (2, 9, 9, 2))
  pool = jax.jit(pooling.fractional_max_pool, static_argnames=("ratio", "overlapping"))
  key = jax.random.key(3)
  np.testing.assert_array_equal(pool(key, images, ratio=1.5),
                                pooling.fractional_max_pool(key, images, 1.5))
  batched = jax.vmap(functools.partial(pooling.fractional_max_pool, ratio=1.5),
                     in_axes=(0, None))(KEYS[:5], images)
  assert batched.shape == (5, 2, 6, 6, 2)
  # Disjoint regions tile the input: each output routes gradient 1 to one input.
  grad = jax.grad(lambda x: pooling.fractional_max_pool(key, x, 1.5).sum())(images)
  assert float(grad.sum()) == 2 * 6 * 6 * 2
  assert set(np.unique(np.asarray(grad))) == {0.0, 1.0}


@pytest.mark.parametrize("ratio,error", [(1.0, ValueError), (2.0, ValueError),
                                         (0.5, ValueError), (float("nan"), ValueError),
                                         (2.5, ValueError), ((1.5, 1.5, 1.5), ValueError),
                                         ("1.5", TypeError)])
def test_fractional_max_pool_rejects_bad_ratio(ratio, error):
  with pytest.raises(error, match="`ratio`"):
    pooling.fractional_max_pool(jax.random.key(0), jnp.ones((1, 8, 8, 1)), ratio)


def test_fractional_max_pool_rejects_traced_ratio_and_tiny_images():
  with pytest.raises(TypeError, match="`ratio`"):
    jax.jit(pooling.fractional_max_pool)(jax.random.key(0), jnp.ones((1, 8, 8, 1)), 1.5)
  with pytest.raises(ValueError, match="`images`"):
    pooling.fractional_max_pool(jax.random.key(0), jnp.ones((1, 1, 8, 1)), 1.5)


def test_dropconnect_linear_never_drops_the_bias():
  # With a zero kernel the training-time output is the bias, exactly, whatever the mask.
  layer = stochastic.DropConnectLinear(3, 4, rate=0.9, rngs=nnx.Rngs(0), per_example=True,
                                       kernel_init=nnx.initializers.zeros_init(),
                                       bias_init=nnx.initializers.ones_init())
  out = layer(jnp.ones((5, 3)))
  np.testing.assert_array_equal(out, np.ones((5, 4)))
