"""Lazy orthogonality (``every=k``) and ``None`` strengths in ``regjax.orthogonality``."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import regjax
from regjax import penalties

KINDS = ["soft", "decorrelation", "spectral"]


def kernel(seed, shape=(6, 4)):
  return jax.random.normal(jax.random.key(seed), shape) * 0.6


def params_at(t):
  """A parameter trajectory that moves every step, so each step's gradient differs."""
  return {"kernel": kernel(0) + 0.05 * jnp.cos(t + jnp.arange(24.0).reshape(6, 4)),
          "bias": jnp.ones(4)}


def grads_at(t):
  return jax.tree.map(lambda p: jnp.sin(3.0 * p + t), params_at(t))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("every", [2, 3])
def test_lazy_adds_k_times_the_full_gradient_on_due_steps_and_nothing_between(kind, every):
  lazy = regjax.orthogonality(0.3, kind=kind, every=every)
  full = regjax.orthogonality(0.3, kind=kind)  # the reference, stepped on due steps only
  lazy_state, full_state = lazy.init(params_at(0)), full.init(params_at(0))
  due_steps = []
  for t in range(10):
    params, grads = params_at(t), grads_at(t)
    updates, lazy_state = lazy.update(grads, lazy_state, params)
    added = updates["kernel"] - grads["kernel"]
    np.testing.assert_array_equal(updates["bias"], grads["bias"])
    if t % every == 0:
      zeros = jax.tree.map(jnp.zeros_like, grads)
      reference, full_state = full.update(zeros, full_state, params)
      np.testing.assert_allclose(added, every * reference["kernel"], rtol=2e-5, atol=1e-6)
      assert float(jnp.max(jnp.abs(added))) > 1e-3
      due_steps.append(t)
    else:
      np.testing.assert_array_equal(updates["kernel"], grads["kernel"])
    assert int(lazy_state.inner_state.count) == t + 1  # optax.masked's state
  assert due_steps == list(range(0, 10, every))  # ceil(10 / k) due steps, the first at 0
  if kind == "spectral":  # the vector advanced on due steps only, like the reference's
    np.testing.assert_allclose(lazy_state.inner_state.vectors["kernel"],
                               full_state.inner_state.vectors["kernel"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_every_one_is_the_eager_formula_bit_for_bit(kind):
  # every=1 takes no branch: the update is today's λ∇R(p) (spectral: vector advanced,
  # then the gradient at the new vector), the same bits step after step.
  tx = regjax.orthogonality(0.3, kind=kind, every=1)
  state = tx.init(params_at(0))
  vector = state.inner_state.vectors["kernel"] if kind == "spectral" else None
  for t in range(3):
    params, grads = params_at(t), grads_at(t)
    updates, state = tx.update(grads, state, params)
    w = params["kernel"]
    if kind == "spectral":
      vector = penalties.spectral_vector(w, vector, "auto", 1)
      grad = jax.grad(lambda x, v=vector: penalties.spectral_orthogonality(x, "auto", 0, v))(w)
    else:
      grad = jax.grad(penalties.ORTHOGONALITY[kind])(w)
    np.testing.assert_array_equal(updates["kernel"], grads["kernel"] + 0.3 * grad)
  lazy = regjax.orthogonality(0.3, kind=kind, every=2)
  conds = [names(jax.make_jaxpr(t.update)(grads, state, params).jaxpr).count("cond")
           for t in (tx, lazy)]
  assert conds[1] == conds[0] + 1  # every=1 adds no branch


@pytest.mark.parametrize("every", [0, -2])
def test_every_below_one_is_a_value_error(every):
  with pytest.raises(ValueError, match=r"`every` must be a positive int \(>= 1\)"):
    regjax.orthogonality(0.1, every=every)


@pytest.mark.parametrize("every", [2.0, True, "4", None, jnp.array([2]), jnp.array(2.0)])
def test_every_that_is_not_an_int_is_a_type_error(every):
  with pytest.raises(TypeError, match="`every` must be an int"):
    regjax.orthogonality(0.1, every=every)


def test_every_accepts_numpy_and_jax_integers():
  for every in (np.int64(3), jnp.array(3, jnp.int32)):
    tx = regjax.orthogonality(0.3, every=every)
    params = params_at(0)
    state = tx.init(params)
    for _ in range(3):
      updates, state = tx.update(grads_at(0), state, params)
    np.testing.assert_array_equal(updates["kernel"], grads_at(0)["kernel"])  # step 2 of 3


def train(regularizer, steps):
  """``steps`` SGD steps on a fixed loss with ``regularizer`` first; returns the kernel."""
  loss = lambda p: jnp.sum(jnp.square(p["kernel"] - 0.3)) + jnp.sum(p["bias"])  # noqa: E731
  tx = optax.chain(regularizer, optax.sgd(0.05))

  def step(carry, _):
    params, state = carry
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return (optax.apply_updates(params, updates), state), None

  params = params_at(0)
  return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[0][0]["kernel"]


@pytest.mark.parametrize("kind", ["soft", "spectral"])
def test_lazy_under_jit_and_vmap_over_strengths_equals_one_run_per_strength(kind):
  run = lambda lam: train(regjax.orthogonality(lam, kind=kind, every=3), 7)  # noqa: E731
  lams = jnp.array([0.0, 0.1, 0.4])
  batched = jax.jit(jax.vmap(run))(lams)
  single = jax.jit(run)
  for i, lam in enumerate(lams):
    np.testing.assert_allclose(batched[i], single(lam), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(batched[0], train(optax.identity(), 7), rtol=1e-6)
  assert not np.allclose(batched[1], batched[2])


def vmapped_update(every, kind="soft"):
  """The update of a 3-row sweep whose step counter is itself vmapped (the hard case)."""
  lams = jnp.array([0.1, 0.2, 0.3])
  params = {"kernel": jnp.stack([params_at(0)["kernel"]] * 3)}
  make = lambda lam: regjax.orthogonality(lam, kind=kind, mask=None, every=every)  # noqa: E731
  states = jax.vmap(lambda lam, p: make(lam).init(p))(lams, params)
  update = jax.vmap(lambda lam, g, s, p: make(lam).update(g, s, p))
  return update, (lams, params, states, params)


def equations(jaxpr, into_cond=True):
  """Every equation of ``jaxpr`` and of the jaxprs nested in it (``cond`` branches too)."""
  for eqn in jaxpr.eqns:
    yield eqn
    if eqn.primitive.name == "cond" and not into_cond:
      continue
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else [value]:
        if isinstance(sub, (jax.extend.core.ClosedJaxpr, jax.extend.core.Jaxpr)):
          yield from equations(getattr(sub, "jaxpr", sub), into_cond)


def names(jaxpr, into_cond=True):
  return [eqn.primitive.name for eqn in equations(jaxpr, into_cond)]


def dot_count(jaxpr, into_cond=True):
  return names(jaxpr, into_cond).count("dot_general")


def test_under_vmap_the_gram_sits_in_an_unbatched_branch_that_skipped_steps_do_not_take():
  update, args = vmapped_update(every=4)
  assert args[2].count.shape == (3,)  # the counter is batched: one per row
  jaxpr = jax.make_jaxpr(update)(*args).jaxpr
  conds = [eqn for eqn in equations(jaxpr, into_cond=False) if eqn.primitive.name == "cond"]
  assert len(conds) == 1 and conds[0].invars[0].aval.shape == ()  # a branch, not a select
  assert dot_count(jaxpr, into_cond=False) == 0  # no Gram work outside the branch
  skip, due = (branch.jaxpr for branch in conds[0].params["branches"])
  assert dot_count(skip) == 0 and dot_count(due) >= 2  # the Gram and its gradient
  hlo = jax.jit(update).lower(*args).compile().as_text()
  assert "conditional" in hlo  # XLA kept the branch
  # What this avoids: a plain cond on the batched counter turns into a select under vmap,
  # which runs the Gram on every step.
  lams, params, states, _ = args

  def naive(lam, g, state, p):
    grad = lambda: jax.tree.map(lambda a, b: a + lam * b, g, jax.grad(  # noqa: E731
        lambda q: penalties.soft_orthogonality(q["kernel"]))(p))
    return jax.lax.cond(state.count % 4 == 0, grad, lambda: g)

  naive_jaxpr = jax.make_jaxpr(jax.vmap(naive))(lams, params, states, params).jaxpr
  assert "cond" not in names(naive_jaxpr) and dot_count(naive_jaxpr) >= 2


@pytest.mark.parametrize("kind", ["soft", "spectral"])
def test_rows_with_different_counters_each_follow_their_own_schedule(kind):
  # Rows of a vmapped state that are out of step: only the due rows add their gradient.
  update, (lams, params, states, _) = vmapped_update(every=2, kind=kind)
  states = states._replace(count=jnp.array([0, 1, 2], jnp.int32))
  grads = jax.tree.map(jnp.zeros_like, params)
  batched, new_states = jax.jit(update)(lams, grads, states, params)
  for i in range(3):
    tx = regjax.orthogonality(float(lams[i]), kind=kind, mask=None, every=2)
    row = lambda tree, i=i: jax.tree.map(lambda v: v[i], tree)  # noqa: E731
    single, state = tx.update(row(grads), row(states), row(params))
    np.testing.assert_allclose(batched["kernel"][i], single["kernel"], rtol=1e-5, atol=1e-7)
    if kind == "spectral":
      np.testing.assert_allclose(new_states.vectors["kernel"][i], state.vectors["kernel"],
                                 rtol=1e-5, atol=1e-7)
  assert jnp.all(batched["kernel"][1] == 0) and jnp.any(batched["kernel"][0] != 0)


def test_lazy_in_a_chain_with_adam_inside_nnx_optimizer_matches_a_hand_loop():
  model = regjax.models.MLP(4, (6,), 3, rngs=nnx.Rngs(0))
  tx = optax.chain(regjax.orthogonality(0.05, every=2), optax.adam(1e-2))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  adam = optax.adam(1e-2)
  adam_state = adam.init(params)
  x = jax.random.normal(jax.random.key(1), (8, 4))

  def loss(model):
    return jnp.mean(jnp.square(model(x)))

  for t in range(5):
    grads = nnx.grad(loss)(model)
    # Hand loop: the soft-orthogonality gradient, doubled on even steps, on kernels only.
    raw = nnx.to_pure_dict(grads)
    if t % 2 == 0:
      raw = jax.tree.map(
          lambda g, p: g + 2 * 0.05 * jax.grad(penalties.soft_orthogonality)(p)
          if p.ndim == 2 else g, raw, params)
    updates, adam_state = adam.update(raw, adam_state, params)
    params = optax.apply_updates(params, updates)
    optimizer.update(model, grads)
  got = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, params)
  assert int(optimizer.opt_state[0].inner_state.count) == 5


@pytest.mark.parametrize("kind", ["soft", "spectral"])
@pytest.mark.parametrize("every", [1, 2])
def test_none_strengths_from_per_layer_are_skipped(kind, every):
  params = {"first": {"kernel": kernel(1), "bias": jnp.ones(4)},
            "second": {"kernel": kernel(2, (4, 3)), "bias": jnp.ones(3)}}
  strengths = regjax.per_layer(params, {"first/kernel": 0.3}, default=None)
  tx = regjax.orthogonality(strengths, kind=kind, mask=None, every=every)  # biases: None too
  reference = regjax.orthogonality(0.3, kind=kind, every=every)
  grads = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  if kind == "spectral":
    assert state.vectors["second"]["kernel"] is None and state.vectors["first"]["bias"] is None
  updates, _ = jax.jit(tx.update)(grads, state, params)
  expected, _ = reference.update(grads["first"]["kernel"], reference.init(params["first"][
      "kernel"]), params["first"]["kernel"])
  np.testing.assert_allclose(updates["first"]["kernel"], expected, rtol=1e-6)
  assert jnp.any(expected != 0)
  for path in (("second", "kernel"), ("first", "bias"), ("second", "bias")):
    np.testing.assert_array_equal(updates[path[0]][path[1]], 0.0)
