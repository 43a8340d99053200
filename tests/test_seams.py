"""regjax inside a user's own Optax, Flax NNX and Equinox code, in the form users write it.

Per-layer strengths inside ``nnx.Optimizer``, ``optax.inject_hyperparams``, Optax's mask
convention everywhere, Optax's update contract (extra arguments, ``apply_if_finite``),
traced negative strengths flagged as NaN, and an Equinox model.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import regjax
from regjax import metrics, penalties, prox, pruning

LR = 0.1


class Net(nnx.Module):
  def __init__(self, rngs):
    self.layers = nnx.List([nnx.Linear(3, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])

  def __call__(self, x):
    return self.layers[1](jax.nn.relu(self.layers[0](x)))


def _pure(model):
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _zero_grads(model):
  return jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))


def _soft_orthogonality_step(kernel, lam):
  return kernel - LR * lam * jax.grad(penalties.soft_orthogonality)(kernel)


# name -> (optimizer from a strength tree, expected new (kernel, bias) from old ones
# after one step with zero gradient, at strength lam).
OPTIMIZERS = {
    "adamw": (lambda s: regjax.adamw(LR, weight_decay=s),
              lambda k, b, lam: (k - LR * lam * k, b)),
    "prox_sgd": (lambda s: regjax.prox_sgd(LR, s),
                 lambda k, b, lam: (prox.l1(k, LR * lam), prox.l1(b, LR * lam))),
    "proximal": (lambda s: optax.chain(optax.sgd(LR), regjax.proximal(prox.l1, s, LR)),
                 lambda k, b, lam: (prox.l1(k, LR * lam), prox.l1(b, LR * lam))),
    # Zero gradient: v̂ = 0, so ProxGen's threshold lr·λ/ε zeroes every selected weight
    # with λ > 0, and λ = 0 leaves it alone.
    "prox_adam": (lambda s: regjax.prox_adam(LR, s),
                  lambda k, b, lam: (k * (lam == 0), b * (lam == 0))),
    "orthogonality": (lambda s: optax.chain(regjax.orthogonality(s), optax.sgd(LR)),
                      lambda k, b, lam: (_soft_orthogonality_step(k, lam), b)),
}

STRENGTH_FORMS = {
    "nnx.State of Params": lambda m: regjax.per_layer(
        nnx.state(m, nnx.Param), {"layers/0": 0.5}, default=0.0),
    "nnx.to_pure_dict": lambda m: regjax.per_layer(_pure(m), {"layers/0": 0.5}, default=0.0),
    "plain dict, prefix per layer": lambda m: {"layers": {0: 0.5, 1: 0.0}},
    "plain dict, every leaf": lambda m: {
        "layers": {0: {"kernel": 0.5, "bias": 0.5}, 1: {"kernel": 0.0, "bias": 0.0}}},
}


@pytest.mark.parametrize("form", STRENGTH_FORMS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_per_layer_strengths_inside_nnx_optimizer(name, form):
  make, expected = OPTIMIZERS[name]
  model = Net(nnx.Rngs(0))
  before = _pure(model)
  optimizer = nnx.Optimizer(model, make(STRENGTH_FORMS[form](model)), wrt=nnx.Param)
  optimizer.update(model, _zero_grads(model))
  after = _pure(model)
  for index, lam in ((0, 0.5), (1, 0.0)):
    kernel, bias = expected(before["layers"][index]["kernel"],
                            before["layers"][index]["bias"], lam)
    chex.assert_trees_all_close(after["layers"][index]["kernel"], kernel, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(after["layers"][index]["bias"], bias, rtol=1e-6, atol=1e-7)
  # The layer with λ = 0.5 really moved (or was zeroed); the reference is not trivial.
  assert not np.allclose(after["layers"][0]["kernel"], before["layers"][0]["kernel"])


def test_per_layer_paths_agree_across_containers():
  model = Net(nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  table = {r"kernel$": 1.0, r"layers/1": 2.0}
  forms = [state, nnx.to_pure_dict(state), jax.tree.map(lambda x: x, nnx.to_pure_dict(state))]
  values = [jax.tree.leaves(regjax.per_layer(tree, table)) for tree in forms]
  # Leaves sort as bias before kernel: layer 0 bias unmatched (None dropped), kernel 1.0.
  for leaves in values:
    np.testing.assert_array_equal(leaves, [1.0, 2.0, 1.0])


def test_strength_tree_missing_a_parameter_names_the_path():
  params = {"a": jnp.ones(2), "b": jnp.ones(2)}
  tx = regjax.prox_sgd(LR, {"a": 0.1})
  with pytest.raises(ValueError, match=r"`strength` .*no entry for the parameter b"):
    tx.init(params)


def test_typo_in_a_mask_inside_nnx_optimizer_is_an_error():
  model = Net(nnx.Rngs(0))
  mask = {"layers": {0: {"kernel": True, "bias": False}, 1: {"kernel": True, "bais": False}}}
  with pytest.raises(ValueError, match=r"`mask` names layers/1/bais, which is not a parameter"):
    nnx.Optimizer(model, regjax.adamw(1e-3, 0.1, mask=mask), wrt=nnx.Param)
  with pytest.raises(ValueError, match=r"`mask` names layers/1/bais"):
    nnx.Optimizer(model, regjax.prox_adam(1e-3, 0.1, mask=mask), wrt=nnx.Param)
  # Optax itself refuses the same mask.
  with pytest.raises(ValueError):
    nnx.Optimizer(model, optax.adamw(1e-3, 0.1, mask=mask), wrt=nnx.Param)


class NormNet(nnx.Module):
  def __init__(self, rngs):
    self.dense = nnx.Linear(3, 4, rngs=rngs)
    self.norm = nnx.BatchNorm(4, rngs=rngs)

  def __call__(self, x):
    return self.norm(self.dense(x))


def test_per_layer_tree_from_the_whole_nnx_state_says_to_take_the_params():
  # nnx.state(model) also holds the BatchNorm's running statistics, which an optimizer with
  # wrt=nnx.Param never sees: the extra entries name nothing it updates.
  model = NormNet(nnx.Rngs(0))
  whole = regjax.per_layer(nnx.state(model), {"kernel": 0.1}, default=0.0)
  with pytest.raises(ValueError, match=r"`weight_decay` names norm/mean, norm/var.*"
                     r"nnx.state\(model, nnx.Param\), not nnx.state\(model\)"):
    nnx.Optimizer(model, regjax.adamw(LR, weight_decay=whole), wrt=nnx.Param)
  params_only = regjax.per_layer(nnx.state(model, nnx.Param), {"kernel": 0.1}, default=0.0)
  optimizer = nnx.Optimizer(model, regjax.adamw(LR, weight_decay=params_only), wrt=nnx.Param)
  before = model.dense.kernel[...]
  optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))
  np.testing.assert_allclose(model.dense.kernel[...], (1 - LR * 0.1) * before, rtol=1e-6)


# --------------------------------------------------------------- optax.inject_hyperparams

PARAMS = {"w": jnp.array([[0.9, -0.3], [0.05, 1.2]]), "b": jnp.array([0.4, -0.02])}


def _grads(params, t):
  return jax.tree.map(lambda v: jnp.cos(2.0 * v + t), params)


# name -> (factory, keyword arguments, static_args, the strength-like hyperparameter)
INJECTABLE = {
    "proximal": (regjax.proximal, dict(prox_fn=prox.l1, strength=0.05, learning_rate=LR),
                 ("prox_fn",), "strength"),
    "decoupled_weight_decay": (regjax.decoupled_weight_decay,
                               dict(rate=0.3, learning_rate=LR), (), "rate"),
    "add_penalty_gradient": (regjax.add_penalty_gradient,
                             dict(penalty=penalties.l2_squared, strength=0.2), ("penalty",),
                             "strength"),
    "orthogonality": (regjax.orthogonality, dict(strength=0.2), (), "strength"),
    "prox_sgd": (regjax.prox_sgd, dict(learning_rate=LR, strength=0.05), (), "strength"),
    "prox_adam": (regjax.prox_adam, dict(learning_rate=LR, strength=0.05), (), "strength"),
    "adamw": (regjax.adamw, dict(learning_rate=LR, weight_decay=0.3), (), "weight_decay"),
}


def _run(tx, steps, params=PARAMS, state=None, jit=True, start=0):
  state = tx.init(params) if state is None else state
  update = jax.jit(tx.update) if jit else tx.update
  for t in range(start, start + steps):
    updates, state = update(_grads(params, t), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize("name", INJECTABLE)
def test_inject_hyperparams_equals_plain_and_takes_changes(name):
  factory, kwargs, static, key = INJECTABLE[name]
  plain, _ = _run(factory(**kwargs), 6)
  injected_tx = optax.inject_hyperparams(factory, static_args=static)(**kwargs)
  injected, state = _run(injected_tx, 6)
  # Injected b1, b2, eps are float32 arrays rather than Python floats: a few ulps apart.
  chex.assert_trees_all_close(injected, plain, rtol=1e-5, atol=1e-6)
  assert float(state.hyperparams[key]) == pytest.approx(kwargs[key])

  # Changing the strength mid-training takes effect: 3 steps at λ then 3 at 4λ equal a
  # plain run with that step schedule (the transform's own counter runs on).
  schedule = lambda t: jnp.where(t < 3, kwargs[key], 4 * kwargs[key])  # noqa: E731
  expected, _ = _run(factory(**{**kwargs, key: schedule}), 6)
  params, state = _run(injected_tx, 3)
  state.hyperparams[key] = jnp.asarray(4 * kwargs[key])
  changed, _ = _run(injected_tx, 3, params=params, state=state, start=3)
  chex.assert_trees_all_close(changed, expected, rtol=1e-5, atol=1e-6)
  assert not np.allclose(changed["w"], plain["w"], rtol=0, atol=1e-6)


def test_injected_adamw_decays():
  # Old code: the callable default mask was taken for a schedule and no decay applied.
  grads = jax.tree.map(jnp.zeros_like, PARAMS)
  tx = optax.inject_hyperparams(regjax.adamw)(learning_rate=LR, weight_decay=0.5)
  updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
  np.testing.assert_allclose(updates["w"], -LR * 0.5 * PARAMS["w"], rtol=1e-6)
  np.testing.assert_array_equal(updates["b"], 0.0)


# ------------------------------------------------------------------- one mask convention

NESTED = {"enc": {"w": jnp.array([[1.0, -2.0]]), "b": jnp.array([3.0])},
          "head": {"w": jnp.array([[-4.0, 0.5]])}}
MASK_FORMS = {
    "tree": {"enc": {"w": True, "b": True}, "head": {"w": False}},
    "prefix": {"enc": True, "head": False},
    "callable": lambda p: {"enc": jax.tree.map(lambda _: True, p["enc"]),
                           "head": jax.tree.map(lambda _: False, p["head"])},
}


@pytest.mark.parametrize("form", MASK_FORMS)
def test_tree_penalty_and_metrics_accept_every_mask_form(form):
  mask = MASK_FORMS[form]
  assert float(penalties.tree_penalty(penalties.l1, NESTED, 2.0, mask=mask)) == 12.0
  zeroed = {**NESTED, "enc": {"w": jnp.array([[0.0, -2.0]]), "b": jnp.array([0.0])}}
  assert float(metrics.zero_fraction(zeroed, mask=mask)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("form", MASK_FORMS)
@pytest.mark.parametrize("make", [
    lambda m: regjax.prox_adam(LR, 1.0, mask=m),
    lambda m: regjax.prox_sgd(LR, 1.0, mask=m),
    lambda m: optax.chain(optax.sgd(LR), regjax.proximal(prox.l1, 1.0, LR, mask=m)),
    lambda m: regjax.adamw(LR, weight_decay=1.0, mask=m),
], ids=["prox_adam", "prox_sgd", "proximal", "adamw"])
def test_transforms_accept_every_mask_form(make, form):
  grads = jax.tree.map(jnp.zeros_like, NESTED)
  tx = make(MASK_FORMS[form])
  updates, _ = tx.update(grads, tx.init(NESTED), NESTED)
  # The unselected head never moves; the selected encoder does.
  np.testing.assert_array_equal(updates["head"]["w"], 0.0)
  assert float(jnp.abs(updates["enc"]["w"]).sum()) > 0.1


def test_prefix_mask_as_a_plain_dict_over_an_nnx_state():
  model = Net(nnx.Rngs(0))
  tx = regjax.prox_sgd(LR, 100.0, mask={"layers": {0: True, 1: False}})
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  before = _pure(model)
  optimizer.update(model, _zero_grads(model))
  after = _pure(model)
  np.testing.assert_array_equal(after["layers"][0]["kernel"], 0.0)
  np.testing.assert_array_equal(after["layers"][1]["kernel"], before["layers"][1]["kernel"])


@pytest.mark.parametrize("form", MASK_FORMS)
def test_pruning_accepts_every_mask_form(form):
  pruned, _ = pruning.magnitude_prune(NESTED, 0.5, mask=MASK_FORMS[form])
  # Half of the three selected weights, round(1.5) = 2, are pruned; the head is untouched.
  np.testing.assert_array_equal(pruned["head"]["w"], NESTED["head"]["w"])
  assert int(jnp.sum(pruned["enc"]["w"] == 0) + jnp.sum(pruned["enc"]["b"] == 0)) == 2


# ------------------------------------------------------------------ Optax's update contract

ALL_TRANSFORMS = {
    "proximal": lambda: regjax.proximal(prox.l1, 0.05, LR),
    "decoupled_weight_decay": lambda: regjax.decoupled_weight_decay(0.1, LR),
    "add_penalty_gradient": lambda: regjax.add_penalty_gradient(penalties.l1, 0.1),
    "orthogonality": lambda: regjax.orthogonality(0.1),
    "project": lambda: regjax.project(functools.partial(prox.max_norm, max_value=1.0)),
    "prox_sgd": lambda: regjax.prox_sgd(LR, 0.05),
    "prox_adam": lambda: regjax.prox_adam(LR, 0.05),
    "adamw": lambda: regjax.adamw(LR, 0.1),
}


class UpdateContractTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_update_accepts_extra_keyword_arguments(self):
    for name, make in ALL_TRANSFORMS.items():
      tx = make()
      state = tx.init(PARAMS)
      grads = _grads(PARAMS, 0)
      plain, _ = self.variant(tx.update)(grads, state, PARAMS)
      extra, _ = self.variant(
          lambda g, s, p, tx=tx: tx.update(g, s, p, value=jnp.ones(()), grad=g))(
              grads, state, PARAMS)
      chex.assert_trees_all_close(extra, plain, custom_message=name)

  def test_apply_if_finite_skips_a_nan_step_outside_jit(self):
    for name, make in ALL_TRANSFORMS.items():
      tx = optax.apply_if_finite(make(), max_consecutive_errors=3)
      state = tx.init(PARAMS)
      bad = jax.tree.map(lambda g: g.at[0].set(jnp.nan), _grads(PARAMS, 0))
      updates, state = tx.update(bad, state, PARAMS)  # raised FloatingPointError before
      chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, PARAMS),
                                  custom_message=name)
      assert int(state.notfinite_count) == 1, name
      updates, state = tx.update(_grads(PARAMS, 0), state, PARAMS)
      chex.assert_tree_all_finite(updates)
      assert int(state.notfinite_count) == 0, name


# --------------------------------------------------- traced negative or NaN strengths fail

# 0.1 trains; -0.1 and NaN fail loudly; -1.04e-8 (what a schedule that ends at 0 gives
# under jit) is a rounding residue and trains exactly like 0.
NEGATIVE_GRID = jnp.array([0.1, -0.1, jnp.nan, -1.04e-8, 0.0])

SWEPT = {
    "proximal": lambda lam: optax.chain(optax.sgd(LR), regjax.proximal(prox.l1, lam, LR)),
    "prox_adam": lambda lam: regjax.prox_adam(LR, lam),
    "adamw": lambda lam: regjax.adamw(LR, weight_decay=lam),
    "add_penalty_gradient": lambda lam: optax.chain(
        regjax.add_penalty_gradient(penalties.l1, lam), optax.sgd(LR)),
    "orthogonality": lambda lam: optax.chain(regjax.orthogonality(lam), optax.sgd(LR)),
    "per-layer tree": lambda lam: regjax.prox_sgd(LR, {"w": lam, "b": 0.0}),
}


@pytest.mark.parametrize("name", SWEPT)
def test_vmapped_negative_or_nan_strength_gives_nan(name):
  def train(lam):
    return _run(SWEPT[name](lam), 3, jit=False)[0]

  result = jax.vmap(train)(NEGATIVE_GRID)
  w = result["w"]
  assert bool(jnp.all(jnp.isfinite(w[0])))
  assert bool(jnp.all(jnp.isnan(w[1]))) and bool(jnp.all(jnp.isnan(w[2])))
  np.testing.assert_array_equal(w[3], w[4])
  assert not np.allclose(w[0], w[4])  # the strength matters, so "equal to λ = 0" says something


def _scan(tx, params, steps=20):
  """``steps`` updates in one jitted ``lax.scan``, the way a training loop runs."""

  def step(carry, t):
    params, state = carry
    updates, state = tx.update(_grads(params, t), state, params)
    return (optax.apply_updates(params, updates), state), None

  return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), jnp.arange(steps))[0][0])(params)


def test_adamw_with_a_schedule_that_ends_at_zero_trains_like_optax_in_a_jitted_scan():
  # The repro: under jit on CPU, linear_schedule(0.2, 0.0, 15) is -1.04e-8 from step
  # 15 on; regjax took that for a negative strength and turned every kernel into NaN. The
  # residue depends on XLA's code generation (at the suite's optimization level 0 it is
  # exactly 0), so the test also builds it by hand, to meet it whatever the backend does.
  linear = optax.linear_schedule(0.2, 0.0, 15)

  def with_residue(count):
    return jnp.where(count >= 15, jnp.float32(-1.04e-8), linear(count))

  assert float(jax.jit(with_residue)(jnp.int32(15))) < 0
  params = {"kernel": jax.random.normal(jax.random.key(0), (4, 3))}
  pairs = {}
  for label, schedule in (("linear_schedule", linear), ("residue", with_residue)):
    pairs[f"plain, {label}"] = (regjax.adamw(1e-2, weight_decay=schedule),
                                optax.adamw(1e-2, weight_decay=schedule))
    # inject_hyperparams evaluates the schedule itself: the residue arrives as a number.
    pairs[f"inject_hyperparams, {label}"] = (
        optax.inject_hyperparams(regjax.adamw)(learning_rate=1e-2, weight_decay=schedule),
        optax.inject_hyperparams(optax.adamw)(learning_rate=1e-2, weight_decay=schedule))
  for name, (ours, theirs) in pairs.items():
    chex.assert_trees_all_close(_scan(ours, params), _scan(theirs, params), rtol=1e-5,
                                atol=1e-6, custom_message=name)


def test_residue_tolerance_scales_with_the_schedule():
  # 16 float32 ulps of max(1, the schedule's largest value): -1e-5 is a residue of a
  # schedule that peaks at 100, but a clear negative for one that peaks at 0.1, and for a
  # traced number (no scale known, so 1).
  w = jnp.array([[0.5, -0.2], [0.3, 0.9]])
  big = regjax.proximal(prox.l1, lambda t: jnp.where(t < 1, 100.0, -1e-5), 1e-4)
  zero = regjax.proximal(prox.l1, lambda t: jnp.where(t < 1, 100.0, 0.0), 1e-4)
  chex.assert_trees_all_equal(_run(big, 3, params={"w": w})[0],
                              _run(zero, 3, params={"w": w})[0])
  with pytest.raises(ValueError, match=r"`strength` must be >= 0.0, got -1e-05 \(a schedule"):
    regjax.proximal(prox.l1, lambda t: jnp.where(t < 1, 0.1, -1e-5), 1e-4)
  traced = jax.jit(lambda lam: _run(regjax.proximal(prox.l1, lam, 1e-4), 1,
                                    params={"w": w}, jit=False)[0])(jnp.float32(-1e-5))
  assert bool(jnp.all(jnp.isnan(traced["w"])))


def test_tree_penalty_with_negative_traced_strength_is_nan():
  values = jax.vmap(lambda lam: penalties.tree_penalty(penalties.l1, NESTED, lam))(
      jnp.array([0.5, -0.5]))
  assert float(values[0]) == pytest.approx(0.5 * 10.5)
  assert bool(jnp.isnan(values[1]))


# --------------------------------------------------------------------- any JAX model: Equinox

def test_equinox_mlp_with_prox_adam_reaches_exact_zeros():
  eqx = pytest.importorskip("equinox")
  key_model, key_data = jax.random.split(jax.random.key(0))
  model = eqx.nn.MLP(8, 1, width_size=16, depth=1, key=key_model)
  x = jax.random.normal(key_data, (128, 8))
  y = x[:, :2] @ jnp.array([[1.0], [-2.0]])  # only two of eight inputs matter

  def loss(m):
    return jnp.mean((jax.vmap(m)(x) - y) ** 2)

  params, static = eqx.partition(model, eqx.is_array)
  # An Equinox module is callable, so a mask for it is a function (as in optax.masked).
  tx = regjax.prox_adam(1e-2, 1e-2, mask=lambda p: jax.tree.map(lambda w: w.ndim == 2, p))
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    grads = jax.grad(lambda p: loss(eqx.combine(p, static)))(params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  start = float(loss(model))
  for _ in range(300):
    params, state = step(params, state)
  trained = eqx.combine(params, static)
  first = trained.layers[0].weight  # (16, 8): inputs 2..7 do not enter the target
  # Measured: every weight from the six irrelevant inputs is exactly 0.0, 31% of those
  # from the two relevant ones, and the loss falls to 7e-4 of its start.
  assert float(jnp.mean(first[:, 2:] == 0.0)) == 1.0
  assert float(jnp.mean(first[:, :2] == 0.0)) < 0.5
  assert float(loss(trained)) < 0.01 * start
  # Biases are not in the mask: the prox leaves them dense.
  assert float(jnp.mean(trained.layers[0].bias == 0.0)) == 0.0
