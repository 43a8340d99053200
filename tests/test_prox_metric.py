"""Proxes in a diagonal metric: optimality, a generic solver, metric=ones, jit/vmap/grad."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from test_prox import GROUPED, SEPARABLE  # (prox, penalty) pairs
from test_transforms import train_scan

import regjax
from regjax import penalties, prox

RNG = np.random.default_rng(0)
SHAPE = (5, 3)  # three groups (columns) of five

ALL = {**SEPARABLE, **GROUPED}


def metric_objective(penalty, z, x, strength, metric):
  return strength * penalty(z) + 0.5 * jnp.sum(metric * jnp.square(z - x))


def log_uniform(low, high, shape):
  return 10.0 ** RNG.uniform(np.log10(low), np.log10(high), size=shape)


@functools.partial(jax.jit, static_argnames="l1_weight")
def _group_prox(x, strength, metric, l1_weight=0.0):
  return prox.sparse_group(x, strength, l1_weight=l1_weight, metric=metric, axis=0)


def _optimality_gaps(x, z, strength, metric, l1_weight):
  """Per group: the residual of 0 ∈ D(z − x) + λ∂‖z‖₂ + wλ∂‖z‖₁, relative to ‖Dx‖ + λ."""
  gaps = []
  for g in range(x.shape[1]):
    xg, zg, dg = x[:, g], z[:, g], metric[:, g]
    scale = np.linalg.norm(dg * xg) + strength + np.finfo(np.float64).tiny
    if not np.any(zg):
      # z = 0 is optimal iff some s₁ ∈ [−1, 1]ⁿ has ‖Dx − wλ s₁‖ ≤ λ, i.e. iff
      # ‖soft(Dx, wλ)‖ ≤ λ.
      excess = np.linalg.norm(np.maximum(np.abs(dg * xg) - l1_weight * strength, 0))
      gaps.append(max(excess - strength, 0) / scale)
      continue
    nonzero = zg != 0
    residual = dg * (zg - xg) + strength * zg / np.linalg.norm(zg)
    residual = residual + l1_weight * strength * np.sign(zg)
    # Zero coordinates of a nonzero group need |d x| ≤ wλ (the L1 subgradient absorbs it).
    off = np.maximum(np.abs(dg * xg) - l1_weight * strength, 0)
    gaps.append(np.linalg.norm(np.where(nonzero, residual, off)) / scale)
  return np.asarray(gaps)


def _draw(data, condition):
  # Normal float32 numbers only: XLA on CPU flushes subnormals to zero.
  values = st.floats(-3, 3, width=32, allow_subnormal=False)
  x = np.asarray(data.draw(st.lists(values, min_size=15, max_size=15))).reshape(SHAPE)
  logs = np.asarray(data.draw(st.lists(st.floats(-np.log10(condition), 0), min_size=15,
                                       max_size=15)))
  metric = (10.0 ** logs).reshape(SHAPE)
  fraction = data.draw(st.floats(0, 1.5))
  strength = fraction * np.max(np.linalg.norm(metric * x, axis=0))
  return x, metric, strength


@settings(max_examples=60)
@given(data=st.data(), l1_weight=st.sampled_from([0.0, 0.5]))
def test_group_prox_in_metric_satisfies_its_optimality_condition(data, l1_weight):
  # Metrics within a group spread over up to six orders of magnitude.
  x, metric, strength = _draw(data, 1e6)
  with jax.enable_x64(True):
    z = np.asarray(_group_prox(x, strength, metric, l1_weight=l1_weight))
  assert np.all(_optimality_gaps(x, z, strength, metric, l1_weight) < 1e-9)


@settings(max_examples=30)
@given(data=st.data())
def test_group_prox_in_metric_float32_ill_conditioned(data):
  x, metric, strength = _draw(data, 1e6)
  z = _group_prox(jnp.asarray(x, jnp.float32), jnp.float32(strength),
                  jnp.asarray(metric, jnp.float32))
  assert z.dtype == jnp.float32 and np.all(np.isfinite(z))
  x32, d32 = np.float64(np.float32(x)), np.float64(np.float32(metric))
  assert np.all(_optimality_gaps(x32, np.float64(z), float(np.float32(strength)), d32, 0.0)
                < 1e-4)


def test_a_group_is_zero_exactly_when_the_weighted_norm_is_below_strength():
  x = np.array([[3.0], [4.0]])
  metric = np.array([[2.0], [0.5]])  # ‖Dx‖ = ‖(6, 2)‖ = √40 ≈ 6.32, while ‖x‖ = 5
  with jax.enable_x64(True):
    weighted = np.sqrt(40.0)
    assert np.all(prox.group_l2(x, weighted, metric=metric) == 0)
    assert np.all(prox.group_l2(x, 6.0, metric=metric) != 0)  # zero in the plain metric
    assert np.all(prox.group_l2(x, 6.0) == 0)


def _scipy_sparse_group(x, metric, strength, l1_weight):
  """The group prox by SLSQP in epigraph form: min λt + wλΣu + ½Σd(z−x)², t ≥ ‖z‖, u ≥ |z|.

  The cone constraint is smooth away from z = 0, where the tests' solutions lie.
  """
  n = x.size

  def objective(v):
    z, t, u = v[:n], v[n], v[n + 1:]
    return strength * t + l1_weight * strength * u.sum() + 0.5 * np.sum(metric * (z - x) ** 2)

  def gradient(v):
    z = v[:n]
    return np.concatenate([metric * (z - x), [strength], l1_weight * strength * np.ones(n)])

  eye, zero = np.eye(n), np.zeros((n, 1))
  constraints = [
      {"type": "ineq", "fun": lambda v: v[n] - np.linalg.norm(v[:n]),
       "jac": lambda v: np.concatenate([-v[:n] / np.linalg.norm(v[:n]), [1], np.zeros(n)])},
      {"type": "ineq", "fun": lambda v: v[n + 1:] - v[:n], "jac": lambda v: np.hstack(
          [-eye, zero, eye])},
      {"type": "ineq", "fun": lambda v: v[n + 1:] + v[:n], "jac": lambda v: np.hstack(
          [eye, zero, eye])},
  ]
  start = np.concatenate([x, [np.linalg.norm(x)], np.abs(x)])
  result = minimize(objective, start, jac=gradient, constraints=constraints, method="SLSQP",
                    bounds=[(None, None)] * n + [(0, None)] * (n + 1),
                    options={"ftol": 1e-15, "maxiter": 1000})
  return result.x[:n]


@pytest.mark.parametrize("l1_weight", [0.0, 0.5])
def test_group_prox_in_metric_agrees_with_scipy(l1_weight):
  objective = functools.partial(metric_objective, lambda z: penalties.group_l2(
      z, axis=0) + l1_weight * penalties.l1(z))
  with jax.enable_x64(True):
    for trial in range(6):
      x = RNG.normal(size=(4, 1))
      # SLSQP is reliable on well-conditioned metrics: compare points there.
      metric = log_uniform(0.1, 1.0, (4, 1))
      strength = RNG.uniform(0.05, 0.8) * np.linalg.norm(metric * x)
      z = _group_prox(x, strength, metric, l1_weight=l1_weight)
      expected = _scipy_sparse_group(x[:, 0], metric[:, 0], strength, l1_weight)
      np.testing.assert_allclose(z[:, 0], expected, atol=1e-6, err_msg=str(trial))
      # Ill-conditioned (1e6): SLSQP stalls, but its point can never be better than ours.
      metric = log_uniform(1e-6, 1.0, (4, 1))
      strength = RNG.uniform(0.05, 0.8) * np.linalg.norm(metric * x)
      z = _group_prox(x, strength, metric, l1_weight=l1_weight)
      expected = _scipy_sparse_group(x[:, 0], metric[:, 0], strength, l1_weight)[:, None]
      assert objective(z, x, strength, metric) <= objective(expected, x, strength, metric) + 1e-12


@pytest.mark.parametrize("name", list(ALL))
def test_prox_in_metric_minimizes_its_objective_against_perturbations(name):
  prox_fn, penalty = ALL[name]
  for trial in range(3):
    x = jnp.asarray(RNG.normal(size=(6, 4)), jnp.float32)
    metric = jnp.asarray(log_uniform(1e-2, 1e2, (6, 4)), jnp.float32)
    strength = float(RNG.uniform(0.05, 1.5))
    z = prox_fn(x, strength, metric=metric)
    best = metric_objective(penalty, z, x, strength, metric)
    for scale in (1e-3, 1e-2, 0.3):
      candidates = z[None] + jnp.asarray(RNG.normal(size=(64, 6, 4)) * scale, jnp.float32)
      if name == "nonneg_l1":
        candidates = jnp.maximum(candidates, 0)
      values = jax.vmap(metric_objective, (None, 0, None, None, None))(
          penalty, candidates, x, strength, metric)
      assert jnp.all(values >= best - 1e-4 * (1 + jnp.abs(best))), (name, trial, scale)


def test_separable_proxes_in_metric_closed_forms():
  x = jnp.array([2.0, -2.0, 0.5, 3.0])
  metric = jnp.array([1.0, 4.0, 0.25, 2.0])
  # Soft threshold at λ/d = (1, 0.25, 4, 0.5).
  np.testing.assert_allclose(prox.l1(x, 1.0, metric=metric), [1.0, -1.75, 0.0, 2.5])
  np.testing.assert_allclose(prox.nonneg_l1(x, 1.0, metric=metric), [1.0, 0.0, 0.0, 2.5])
  np.testing.assert_allclose(prox.l2_squared(x, 1.0, metric=metric),
                             x / (1 + 2 / metric), rtol=1e-6)
  np.testing.assert_allclose(prox.elastic_net(x, 1.0, 0.5, metric=metric),
                             jnp.array([1.0, -1.75, 0.0, 2.5]) / (1 + 1 / metric), rtol=1e-6)
  # Hard threshold at √(2λ/d) = (1.41, 0.71, 2.83, 1).
  np.testing.assert_allclose(prox.l0(x, 1.0, metric=metric), [2.0, -2.0, 0.0, 3.0])


@pytest.mark.parametrize("name", list(ALL))
def test_metric_of_ones_is_the_plain_prox_and_a_constant_metric_rescales_strength(name):
  prox_fn, _ = ALL[name]
  x = jnp.asarray(RNG.normal(size=(6, 4)), jnp.float32)
  plain = prox_fn(x, 0.4)
  np.testing.assert_allclose(prox_fn(x, 0.4, metric=jnp.ones_like(x)), plain,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(prox_fn(x, 0.4, metric=jnp.ones_like(x)) == 0, plain == 0)
  # argmin λR(z) + ½c‖z − x‖² = prox at λ/c; the metric may be a scalar.
  np.testing.assert_allclose(prox_fn(x, 0.4, metric=2.5), prox_fn(x, 0.4 / 2.5),
                             rtol=1e-5, atol=1e-6)


def test_group_prox_in_metric_jits_and_vmaps_over_strengths_groups_and_metrics():
  x = jnp.asarray(RNG.normal(size=SHAPE), jnp.float32)
  metric = jnp.asarray(log_uniform(1e-3, 1.0, SHAPE), jnp.float32)
  strengths = jnp.linspace(0.0, 1.0, 5)
  fn = jax.jit(functools.partial(prox.group_l2, axis=0))
  batched = jax.jit(jax.vmap(lambda s: fn(x, s, metric=metric)))(strengths)
  for i, s in enumerate(strengths):
    np.testing.assert_allclose(batched[i], fn(x, s, metric=metric), rtol=1e-6, atol=1e-7)
  # vmap over groups (one column at a time) equals the grouped call.
  columns = jax.vmap(lambda c, d: prox.group_l2(c, 0.3, metric=d), in_axes=1, out_axes=1)(
      x, metric)
  np.testing.assert_allclose(columns, fn(x, 0.3, metric=metric), rtol=1e-6, atol=1e-7)
  # vmap over a stack of metrics.
  metrics = jnp.stack([metric, 2 * metric, jnp.ones_like(metric)])
  stacked = jax.vmap(lambda d: fn(x, 0.3, metric=d))(metrics)
  np.testing.assert_allclose(stacked[2], fn(x, 0.3), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stacked[1], fn(x, 0.15, metric=metric), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prox_fn", [prox.group_l2, prox.sparse_group])
def test_group_prox_in_metric_gradients_are_finite_including_zero_groups(prox_fn):
  metric = jnp.asarray(log_uniform(1e-6, 1.0, (4, 3)), jnp.float32)

  @jax.jit
  def total(x, strength, metric):
    return jnp.sum(jnp.sin(prox_fn(x, strength, metric=metric)))

  x = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
  for point in (jnp.zeros((4, 3)), x, x.at[:, 1].set(0), x.at[:, 2].multiply(1e-3)):
    grads = jax.grad(total, argnums=(0, 1, 2))(point, 0.3, metric)
    assert all(jnp.all(jnp.isfinite(g)) for g in grads)


def test_group_prox_in_metric_gradient_matches_finite_differences():
  with jax.enable_x64(True):
    x = RNG.normal(size=(4, 3))
    metric = log_uniform(1e-3, 1.0, (4, 3))
    strength = 0.3 * np.min(np.linalg.norm(metric * x, axis=0))  # no group at its kink

    @jax.jit
    def total(x, strength, metric):
      return jnp.sum(jnp.sin(prox.group_l2(x, strength, metric=metric)))

    grads = jax.grad(total, argnums=(0, 1, 2))(x, strength, metric)
    eps = 1e-6
    for argnum, point in enumerate((x, strength, metric)):
      direction = RNG.normal(size=np.shape(point))
      args = [x, strength, metric]
      args[argnum] = point + eps * direction
      plus = total(*args)
      args[argnum] = point - eps * direction
      numeric = (plus - total(*args)) / (2 * eps)
      np.testing.assert_allclose(jnp.vdot(grads[argnum], direction), numeric, rtol=1e-5)


def test_group_prox_in_metric_is_safe_from_under_and_overflow():
  unit = jnp.array([[3.0], [4.0]])
  metric = jnp.array([[1.0], [1e-6]])
  reference = prox.group_l2(unit, 1.0, metric=metric)
  assert jnp.all(reference != 0)
  for scale in (1e-30, 1e20):
    x = (unit * scale).astype(jnp.float32)
    np.testing.assert_allclose(prox.group_l2(x, scale, metric=metric), reference * scale,
                               rtol=1e-5)
    np.testing.assert_allclose(prox.group_l2(unit, 1.0 / scale, metric=metric / scale),
                               reference, rtol=1e-5)


def test_metric_arguments_are_checked():
  with pytest.raises(ValueError, match="`metric` must be a scalar or broadcast"):
    prox.l1(jnp.ones((2, 3)), 0.1, metric=jnp.ones(2))
  with pytest.raises(ValueError, match="`metric` must be a scalar or broadcast"):
    prox.group_l2(jnp.ones((2, 3)), 0.1, metric=jnp.ones((4, 2, 3)))
  # Projections are Euclidean and take no metric.
  with pytest.raises(TypeError, match="metric"):
    prox.max_norm(jnp.ones((2, 3)), 1.0, metric=jnp.ones((2, 3)))


# --- prox_adam / preconditioned_proximal: the prox in Adam's metric -----------------------


def _train(tx, loss, params, steps):
  return jax.jit(lambda p: train_scan(tx, loss, p, steps))(params)


def _regression(seed=0, n=64, fan_in=6, units=5):
  rng = np.random.default_rng(seed)
  inputs = jnp.asarray(rng.normal(size=(n, fan_in)), jnp.float32)
  # Only units 0 and 1 carry signal; the per-input scales make Adam's v̂ differ within a unit.
  truth = jnp.zeros((fan_in, units)).at[:, :2].set(jnp.asarray(rng.normal(size=(fan_in, 2))))
  scales = jnp.asarray(10.0 ** rng.uniform(-1, 1, (1, fan_in)), jnp.float32)
  targets = (inputs * scales) @ truth

  def loss(w):
    return jnp.mean(jnp.square((inputs * scales) @ w - targets))

  start = jnp.asarray(rng.normal(size=(fan_in, units)) * 0.3, jnp.float32)
  return loss, start


def test_prox_adam_with_group_l2_takes_the_group_prox_in_adams_metric():
  loss, start = _regression()
  lr, lam = 0.05, 0.3
  unit_prox = functools.partial(prox.group_l2, axis=0)
  tx = regjax.prox_adam(lr, lam, prox_fn=unit_prox)
  adam = optax.scale_by_adam()
  params, state, adam_state = start, tx.init(start), adam.init(start)
  for _ in range(5):
    grads = jax.grad(loss)(params)
    updates, state = tx.update(grads, state, params)
    # Reference: Optax's Adam direction, then argmin λ‖z‖_{2,1} + ½(z − x)ᵀD(z − x) with
    # D = (√v̂ + ε)/η, checked through its optimality condition.
    directions, adam_state = adam.update(grads, adam_state, params)
    nu_hat = optax.tree.bias_correction(adam_state.nu, 0.999, adam_state.count)
    moved = np.float64(params - lr * directions)
    metric = np.float64((jnp.sqrt(nu_hat) + 1e-8) / lr)
    new = np.float64(params + updates)
    assert np.all(_optimality_gaps(moved, new, lam, metric, 0.0) < 1e-4)
    params = params + updates
  # The chain thresholds in the Euclidean metric: a different point.
  euclidean = optax.chain(optax.adam(lr), regjax.proximal(unit_prox, lam, lr))
  assert not np.allclose(_train(euclidean, loss, start, 5), params, atol=1e-4)


def test_prox_adam_with_group_l2_zeroes_whole_units_and_keeps_the_useful_ones():
  loss, start = _regression()
  tx = regjax.prox_adam(0.05, 0.05, prox_fn=functools.partial(prox.group_l2, axis=0))
  final = _train(tx, loss, start, 400)
  zero_units = np.all(np.asarray(final) == 0, axis=0)
  np.testing.assert_array_equal(zero_units, [False, False, True, True, True])


def test_prox_adam_rejects_a_prox_without_metric_unless_decoupled():
  def euclidean_only(x, threshold):
    return prox.l1(x, threshold)

  with pytest.raises(TypeError, match="`prox_fn`.*metric.*decoupled=True"):
    regjax.prox_adam(0.1, 0.1, prox_fn=euclidean_only)
  tx = regjax.prox_adam(0.1, 0.1, prox_fn=euclidean_only, decoupled=True)
  params = jnp.ones(3)
  assert jnp.all(jnp.isfinite(tx.update(params, tx.init(params), params)[0]))


def test_preconditioned_proximal_is_a_deprecated_name_for_prox_adam():
  params = jnp.array([1.0, 0.01, -0.3])
  grads = jnp.array([0.2, 0.2, -0.1])
  with pytest.warns(DeprecationWarning, match="prox_adam"):
    old = regjax.preconditioned_proximal(prox.l1, 0.5, 0.1, b1=0.8)
  new = regjax.prox_adam(0.1, 0.5, prox.l1, b1=0.8)
  state_old, state_new = old.init(params), new.init(params)
  for _ in range(3):
    u_old, state_old = old.update(grads, state_old, params)
    u_new, state_new = new.update(grads, state_new, params)
    np.testing.assert_array_equal(u_old, u_new)
    params = optax.apply_updates(params, u_new)
  assert float(params[1]) == 0.0


@pytest.mark.parametrize("prox_fn", [prox.l1, functools.partial(prox.group_l2, axis=0)])
def test_decoupled_prox_adam_equals_adam_then_proximal(prox_fn):
  loss, start = _regression(seed=1)
  lr, lam = 0.05, 0.2
  ours = _train(regjax.prox_adam(lr, lam, prox_fn=prox_fn, decoupled=True), loss, start, 60)
  chain = optax.chain(optax.adam(lr), regjax.proximal(prox_fn, lam, lr))
  reference = _train(chain, loss, start, 60)
  np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(ours == 0, reference == 0)
  assert np.any(np.asarray(ours) == 0)


def _embedding_run(decoupled, steps=300, lr=1e-3, lam=1e-8):
  """An embedding table trained on batches that never contain token 0."""
  vocabulary, width = 8, 4
  table = jax.random.normal(jax.random.key(0), (vocabulary, width)) * 0.1
  tokens = jax.random.randint(jax.random.key(1), (steps, 16), 1, vocabulary)
  targets = jax.random.normal(jax.random.key(2), (vocabulary,))

  def loss(table, batch):
    return jnp.mean(jnp.square(table[batch].sum(-1) - targets[batch]))

  tx = regjax.prox_adam(lr, lam, decoupled=decoupled)

  def body(carry, batch):
    table, state = carry
    updates, state = tx.update(jax.grad(loss)(table, batch), state, table)
    return (optax.apply_updates(table, updates), state), jnp.all(table[0] == 0)

  (final, _), row_zero = jax.jit(lambda t: jax.lax.scan(body, (t, tx.init(t)), tokens))(table)
  return table, final, row_zero


def test_prox_adam_zeroes_untouched_rows_at_tiny_strength_and_decoupled_does_not():
  # ProxGen's threshold is lr·λ/(√v̂ + ε) = lr·λ/ε where v̂ = 0: at λ = ε = 1e-8 the row of a
  # token absent from every batch shrinks by lr = 1e-3 per step.
  start, proxgen, row_zero = _embedding_run(decoupled=False)
  first = int(np.argmax(np.asarray(row_zero)))
  assert jnp.all(proxgen[0] == 0) and first == int(np.ceil(jnp.max(jnp.abs(start[0])) / 1e-3))
  assert 100 < first <= 300
  assert jnp.all(proxgen[1:] != 0)  # the rows the batches reach keep every weight
  # Decoupled: the threshold is lr·λ = 1e-11 per step; the untouched row stays put.
  start, decoupled, _ = _embedding_run(decoupled=True)
  np.testing.assert_allclose(decoupled[0], start[0], rtol=1e-6)
  assert jnp.all(decoupled != 0)
