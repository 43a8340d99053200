"""Tests for regjax.gates: hard-concrete closed forms by Monte Carlo, L0 gates, STE masks."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from regjax import gates

LOG_ALPHAS = jnp.array([-3.0, -1.0, 0.0, 1.0, 3.0])
BETAS = jnp.array([2.0 / 3.0, 0.3])
NUM_SAMPLES = 20000


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _band(p, n=NUM_SAMPLES, sigmas=5.0):
  """``sigmas`` binomial standard deviations of a fraction estimated from ``n`` draws."""
  return sigmas * np.sqrt(p * (1 - p) / n) + 1e-6


@functools.lru_cache(maxsize=1)
def _samples():
  """(len(BETAS), NUM_SAMPLES, len(LOG_ALPHAS)) gates, traced beta, one compile."""
  sample = functools.partial(gates.hard_concrete_sample, shape=(NUM_SAMPLES, 5))
  run = jax.jit(jax.vmap(sample, in_axes=(None, None, 0)))
  return np.asarray(run(jax.random.key(0), LOG_ALPHAS, BETAS))


def test_hard_concrete_point_masses_hand_values():
  # log_alpha = 0: P0 = sigmoid((2/3) log(1/11)) = 1 / (1 + 11^(2/3)), and with
  # gamma = 1 - zeta the atom at 1 is the same by symmetry.
  p_zero, p_one = gates.hard_concrete_point_masses(0.0)
  assert float(p_zero) == pytest.approx(1 / (1 + 11 ** (2 / 3)))
  assert float(p_one) == pytest.approx(1 / (1 + 11 ** (2 / 3)))
  # gamma = 1 - zeta makes the two atoms mirror images: P1(a) = P0(-a).
  np.testing.assert_allclose(gates.hard_concrete_point_masses(LOG_ALPHAS)[1],
                             gates.hard_concrete_point_masses(-LOG_ALPHAS)[0], rtol=1e-6)


def test_closed_forms_match_the_logistic_cdf_route():
  # P(s_bar <= t) = P(L <= beta * logit((t - gamma) / (zeta - gamma)) - log_alpha), and L
  # is standard logistic: evaluate the CDF at t = 0 and 1 with another set of stretches.
  beta, gamma, zeta = 0.5, -0.2, 1.3
  la = np.asarray(LOG_ALPHAS, np.float64)

  def logit(q):
    return math.log(q / (1 - q))

  p0 = _sigmoid(beta * logit(-gamma / (zeta - gamma)) - la)
  p1 = 1 - _sigmoid(beta * logit((1 - gamma) / (zeta - gamma)) - la)
  p_zero, p_one = gates.hard_concrete_point_masses(LOG_ALPHAS, beta, gamma, zeta)
  np.testing.assert_allclose(p_zero, p0, rtol=1e-5)
  np.testing.assert_allclose(p_one, p1, rtol=1e-5)


def test_samples_lie_in_unit_interval_with_atoms_matching_closed_forms():
  samples = _samples()
  assert samples.min() >= 0.0 and samples.max() <= 1.0
  for b, beta in enumerate(np.asarray(BETAS)):
    p0, p1 = map(np.asarray, gates.hard_concrete_point_masses(LOG_ALPHAS, float(beta)))
    np.testing.assert_array_less(np.abs((samples[b] == 0.0).mean(0) - p0), _band(p0))
    np.testing.assert_array_less(np.abs((samples[b] == 1.0).mean(0) - p1), _band(p1))
    interior = (samples[b] > 0) & (samples[b] < 1)
    assert interior.mean() > 0.05  # the relaxation is not degenerate


def test_expected_l0_is_its_formula_and_the_mean_number_of_open_gates():
  la = np.asarray(LOG_ALPHAS, np.float64)
  formula = _sigmoid(la - (2 / 3) * math.log(0.1 / 1.1)).sum()
  assert float(gates.expected_l0(LOG_ALPHAS)) == pytest.approx(formula, rel=1e-6)
  p_open = 1 - np.asarray(gates.hard_concrete_point_masses(LOG_ALPHAS)[0])
  assert float(gates.expected_l0(LOG_ALPHAS)) == pytest.approx(p_open.sum(), rel=1e-6)
  open_count = (_samples()[0] > 0).sum(axis=1)
  tolerance = 5 * math.sqrt((p_open * (1 - p_open)).sum() / NUM_SAMPLES)
  assert abs(open_count.mean() - p_open.sum()) < tolerance


def test_gradients_flow_to_log_alpha_through_sample_and_penalty():
  key = jax.random.key(1)
  log_alpha = jnp.zeros((64,))
  grad = jax.grad(lambda la: gates.hard_concrete_sample(key, la).sum())(log_alpha)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)
  assert np.all(np.asarray(grad) >= 0)  # z is non-decreasing in log_alpha
  # The pathwise derivative agrees with a central difference where z is not clipped.
  z = gates.hard_concrete_sample(key, log_alpha)
  h = 1e-2
  diff = (gates.hard_concrete_sample(key, log_alpha + h)
          - gates.hard_concrete_sample(key, log_alpha - h)) / (2 * h)
  inside = np.asarray((z > 0.05) & (z < 0.95))
  assert inside.any()
  np.testing.assert_allclose(grad[inside], diff[inside], rtol=2e-2, atol=1e-4)
  penalty_grad = jax.grad(gates.expected_l0)(LOG_ALPHAS)
  s = _sigmoid(np.asarray(LOG_ALPHAS, np.float64) - (2 / 3) * math.log(0.1 / 1.1))
  np.testing.assert_allclose(penalty_grad, s * (1 - s), rtol=1e-5)


def test_deterministic_gate_values():
  out = gates.deterministic_gate(jnp.array([0.0, 10.0, -10.0, math.log(0.1 / 1.1)]))
  # sigmoid(0) * 1.2 - 0.1 = 0.5; saturates at 1 and 0; exactly 0 at log(-gamma/zeta).
  np.testing.assert_allclose(out, [0.5, 1.0, 0.0, 0.0], atol=1e-6)
  assert float(out[3]) == 0.0 and float(out[1]) == 1.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_sample_shapes_dtypes_jit_vmap_and_determinism(dtype):
  log_alpha = jnp.zeros((3, 4), dtype)
  sample = jax.jit(gates.hard_concrete_sample)
  a, b = sample(jax.random.key(2), log_alpha), sample(jax.random.key(2), log_alpha)
  assert a.shape == (3, 4) and a.dtype == dtype
  np.testing.assert_array_equal(a, b)
  keys = jax.random.split(jax.random.key(3), 7)
  many = jax.vmap(gates.hard_concrete_sample, in_axes=(0, None))(keys, log_alpha)
  assert many.shape == (7, 3, 4) and many.dtype == dtype
  assert len({np.asarray(m, np.float32).tobytes() for m in many}) == 7
  assert gates.deterministic_gate(log_alpha).dtype == dtype


def test_functions_vmap_over_log_alpha_and_beta():
  out = jax.vmap(gates.expected_l0)(LOG_ALPHAS[:, None])
  np.testing.assert_allclose(out, 1 - gates.hard_concrete_point_masses(LOG_ALPHAS)[0],
                             rtol=1e-6)
  by_beta = jax.jit(jax.vmap(gates.hard_concrete_point_masses, in_axes=(None, 0)))(0.0, BETAS)
  expected = [gates.hard_concrete_point_masses(0.0, float(b)) for b in BETAS]
  np.testing.assert_allclose(by_beta, np.asarray(expected).T, rtol=1e-6)


def test_expected_l0_counts_per_axis():
  stacked = jnp.stack([LOG_ALPHAS, -LOG_ALPHAS, LOG_ALPHAS + 1.0])
  per_layer = gates.expected_l0(stacked, axis=-1)
  assert per_layer.shape == (3,)
  np.testing.assert_allclose(per_layer, [float(gates.expected_l0(row)) for row in stacked],
                             rtol=1e-6)
  assert float(per_layer.sum()) == pytest.approx(float(gates.expected_l0(stacked)), rel=1e-6)
  per_unit = gates.expected_l0(stacked, axis=0)
  np.testing.assert_allclose(per_unit, 3 - gates.hard_concrete_point_masses(stacked)[0].sum(0),
                             rtol=1e-5)


@pytest.mark.parametrize("kwargs,name", [({"beta": 0.0}, "beta"), ({"beta": -1.0}, "beta"),
                                         ({"gamma": 0.1}, "gamma"), ({"gamma": 0.0}, "gamma"),
                                         ({"zeta": 0.9}, "zeta"), ({"zeta": 1.0}, "zeta"),
                                         ({"beta": float("nan")}, "beta")])
def test_bad_stretch_parameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"`{name}`"):
    gates.hard_concrete_sample(jax.random.key(0), jnp.zeros(2), **kwargs)
  with pytest.raises(ValueError, match=f"`{name}`"):
    gates.expected_l0(jnp.zeros(2), **kwargs)


def test_integer_log_alpha_is_rejected():
  with pytest.raises(TypeError, match="`log_alpha`"):
    gates.expected_l0(jnp.zeros(2, jnp.int32))


# ---------------------------------------------------------------------------- L0Gate


def test_l0_gate_train_eval_and_penalty():
  gate = gates.L0Gate(4, rngs=nnx.Rngs(0), init_log_alpha=jnp.array([-5.0, 0.0, 1.0, 5.0]),
                      init_std=0.0)
  x = jax.random.normal(jax.random.key(4), (3, 4))
  log_alpha = gate.log_alpha[...]
  key = jax.random.key(5)
  expected = x * gates.hard_concrete_sample(key, log_alpha)[None, :]
  np.testing.assert_allclose(gate(x, rngs=key), expected, rtol=1e-6)
  gate.eval()
  np.testing.assert_allclose(gate(x), x * gates.deterministic_gate(log_alpha)[None, :],
                             rtol=1e-6)
  assert float(gate.test_gates()[0]) == 0.0 and float(gate.test_gates()[3]) == 1.0
  assert float(gate.penalty()) == pytest.approx(float(gates.expected_l0(log_alpha)))


def test_l0_gate_gradient_reaches_log_alpha_and_stream_advances():
  gate = gates.L0Gate(8, rngs=nnx.Rngs(params=0, dropout=1))
  x = jnp.ones((2, 8))

  @nnx.jit
  def loss_and_grad(model):
    return nnx.value_and_grad(lambda m: (m(x) ** 2).sum() + 0.1 * m.penalty())(model)

  (loss1, grads), (loss2, _) = loss_and_grad(gate), loss_and_grad(gate)
  assert float(loss1) != float(loss2)  # new noise each step
  g = np.asarray(grads.log_alpha[...])
  assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_l0_gate_per_example_gates_share_middle_axes():
  gate = gates.L0Gate(3, rngs=nnx.Rngs(0), per_example=True)
  x = jnp.ones((16, 2, 2, 3))
  out = np.asarray(gate(x))
  assert out.shape == x.shape
  np.testing.assert_array_equal(out[:, 0, 0], out[:, 1, 1])  # one gate per example/unit
  assert len({row.tobytes() for row in out[:, 0, 0]}) > 1  # examples differ


def test_l0_gate_rejects_bad_arguments():
  with pytest.raises(ValueError, match="`num_gates`"):
    gates.L0Gate(0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="`gamma`"):
    gates.L0Gate(2, rngs=nnx.Rngs(0), gamma=0.5)
  with pytest.raises(ValueError, match="`init_log_alpha`"):
    gates.L0Gate(2, rngs=nnx.Rngs(0), init_log_alpha=jnp.zeros(3))
  with pytest.raises(ValueError, match="`inputs`"):
    gates.L0Gate(2, rngs=nnx.Rngs(0))(jnp.ones((3, 5)))


# ------------------------------------------------------------------ straight-through


def test_straight_through_forward_is_exactly_binary():
  scores = jnp.array([1e8, -1e8, 0.3, -0.2, 0.0, jnp.inf, -jnp.inf, 1e-30])
  out = gates.straight_through_mask(scores)
  np.testing.assert_array_equal(out, [1, 0, 1, 0, 0, 1, 0, 1])
  out = gates.straight_through_mask(scores, threshold=0.25)
  np.testing.assert_array_equal(out, [1, 0, 1, 0, 0, 1, 0, 0])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_straight_through_gradient_is_the_identity(dtype):
  scores = jnp.array([2.0, -1.0, 0.5, -3.0], dtype)
  weights = jnp.array([1.0, 2.0, -3.0, 4.0], dtype)
  grad = jax.grad(lambda s: jnp.sum(weights * gates.straight_through_mask(s)))(scores)
  assert grad.dtype == dtype
  np.testing.assert_array_equal(grad, weights)  # d/ds sum(w * s) = w
  _, tangent = jax.jvp(gates.straight_through_mask, (scores,), (jnp.ones_like(scores),))
  np.testing.assert_array_equal(tangent, 1)


def test_straight_through_jit_and_vmap_over_thresholds():
  scores = jnp.linspace(-2.0, 2.0, 9)
  thresholds = jnp.array([-1.0, 0.0, 1.0])
  out = jax.jit(jax.vmap(gates.straight_through_mask, in_axes=(None, 0)))(scores, thresholds)
  np.testing.assert_array_equal(out, np.asarray(scores)[None, :] > np.asarray(thresholds)[:, None])
  with pytest.raises(ValueError, match="`threshold`"):
    gates.straight_through_mask(scores, float("nan"))
  with pytest.raises(TypeError, match="`scores`"):
    gates.straight_through_mask(jnp.arange(3))


def test_ste_mask_module_masks_and_trains_scores():
  module = gates.STEMask(4)
  module.scores[...] = jnp.array([1.0, -1.0, 0.5, -0.5])
  x = jnp.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
  np.testing.assert_array_equal(module(x), x * jnp.array([1.0, 0.0, 1.0, 0.0])[None, :])
  grads = nnx.grad(lambda m: m(x).sum())(module)
  np.testing.assert_array_equal(grads.scores[...], x.sum(0))  # identity backward
  with pytest.raises(ValueError, match="`inputs`"):
    module(jnp.ones((2, 3)))


# --------------------------------------------------------- what the docstrings promise


def test_bfloat16_gates_are_drawn_in_float32_and_keep_their_atoms():
  # "Computed in at least float32, so bfloat16 log_alpha still gets exact 0s and 1s."
  log_alpha = jnp.array([-4.0, 0.0, 4.0], jnp.bfloat16)
  draw = functools.partial(gates.hard_concrete_sample, jax.random.key(0), shape=(512, 3))
  z = draw(log_alpha)
  assert z.dtype == jnp.bfloat16
  np.testing.assert_array_equal(z, draw(log_alpha.astype(jnp.float32)).astype(jnp.bfloat16))
  # The atoms have their closed-form weights: P(z = 0) at -4 and P(z = 1) at 4 are both
  # sigmoid(4 + beta log(0.1 / 1.1)) = 0.917.
  p_zero, p_one = map(np.asarray, gates.hard_concrete_point_masses(log_alpha.astype(float)))
  assert abs(float(jnp.mean(z[:, 0] == 0)) - p_zero[0]) < _band(p_zero[0], n=512)
  assert abs(float(jnp.mean(z[:, 2] == 1)) - p_one[2]) < _band(p_one[2], n=512)
  assert 0 < int(jnp.sum((z[:, 1] > 0) & (z[:, 1] < 1))) < 512


def test_l0_gate_default_start_closes_a_sixth_of_the_gates():
  # L0Gate: "the default 0.0 is d = 0.5 and starts with P(z = 0) ~= 0.17".
  gate = gates.L0Gate(64, rngs=nnx.Rngs(0))
  p_zero, _ = gates.hard_concrete_point_masses(gate.log_alpha[...])
  exact = _sigmoid((2 / 3) * math.log(0.1 / 1.1))
  assert exact == pytest.approx(0.168, abs=1e-3)
  np.testing.assert_allclose(p_zero, exact, atol=0.01)  # init_std = 0.01 moves it a little


def test_straight_through_threshold_gets_no_gradient_and_ste_mask_has_no_train_mode():
  scores = jnp.array([2.0, -1.0, 0.5])
  grad = jax.grad(lambda t: jnp.sum(gates.straight_through_mask(scores, t) * scores))(0.7)
  assert float(grad) == 0.0
  mask = gates.STEMask(3, init_score=0.0, threshold=-0.5)
  x = jnp.array([1.0, 2.0, 3.0])
  before = mask(x)
  mask.eval()
  np.testing.assert_array_equal(mask(x), before)
  np.testing.assert_array_equal(before, x)
