"""Every public constructor rejects bad input with an error that names the argument."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import regjax
from regjax import metrics, penalties, prox, pruning

PARAMS = {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}


def init(tx, params=PARAMS):
  return tx.init(params)


CASES = [
    # (id, callable, exception, text the message must contain)
    ("negative strength", lambda: regjax.proximal(prox.l1, -0.1, 0.1), ValueError, "`strength`"),
    ("nan strength", lambda: regjax.prox_adam(0.1, float("nan")), ValueError, "`strength`"),
    ("inf rate", lambda: regjax.decoupled_weight_decay(np.inf), ValueError, "`rate`"),
    ("negative lr", lambda: regjax.prox_sgd(-1.0, 0.1), ValueError, "`learning_rate`"),
    ("bool strength", lambda: regjax.proximal(prox.l1, True, 0.1), TypeError, "`strength`"),
    ("string strength", lambda: regjax.proximal(prox.l1, "big", 0.1), TypeError, "`strength`"),
    ("b2 of one", lambda: regjax.prox_adam(0.1, 0.1, b2=1.0), ValueError, "`b2`"),
    ("unknown kind", lambda: regjax.orthogonality(0.1, kind="hard"), ValueError, "`kind`"),
    ("unknown mode", lambda: regjax.orthogonality(0.1, mode="both"), ValueError, "`mode`"),
    ("double soft mode", lambda: regjax.orthogonality(0.1, kind="double_soft", mode="rows"),
     ValueError, "`mode`"),
    ("zero iterations", lambda: regjax.orthogonality(0.1, kind="spectral", num_iterations=0),
     ValueError, "`num_iterations`"),
    ("orthogonality on 1-D", lambda: init(regjax.orthogonality(0.1, mask=None)), ValueError,
     "`mask`"),
    ("tree mismatch", lambda: init(regjax.decoupled_weight_decay({"kernel": 0.1})), ValueError,
     "`rate`"),
    ("per-leaf negative", lambda: regjax.proximal(prox.l1, {"kernel": -1.0, "bias": 0.0}, 0.1),
     ValueError, "`strength`"),
    ("target mismatch", lambda: init(regjax.decoupled_weight_decay(0.1, target={"k": 1.0})),
     ValueError, "`target`"),
    ("mask mismatch", lambda: init(regjax.prox_adam(0.1, 0.1, mask={"kernel": True})),
     ValueError, "`mask`"),
    ("integer params", lambda: init(regjax.prox_sgd(0.1, 0.1), {"w": jnp.ones(3, jnp.int32)}),
     TypeError, "`params`"),
    ("integer params adam", lambda: init(regjax.prox_adam(0.1, 0.1), {"w": jnp.arange(3)}),
     TypeError, "`params`"),
    ("projection not callable", lambda: regjax.project(3.0), TypeError, "`projection`"),
    ("orthonormal method", lambda: prox.orthonormal(jnp.eye(2), "lu"), ValueError, "`method`"),
    ("penalty mode", lambda: penalties.soft_orthogonality(jnp.eye(2), "x"), ValueError, "`mode`"),
    ("per_layer typo", lambda: regjax.per_layer(PARAMS, {"kernal": 0.1}), ValueError, "`table`"),
    ("per_layer negative", lambda: regjax.per_layer(PARAMS, {"kernel": -0.1}), ValueError,
     "`table"),
    ("by_path regex", lambda: regjax.by_path("[unclosed"), ValueError, "`pattern`"),
    ("group axis", lambda: prox.group_l2(jnp.ones((2, 2)), 0.1, axis=(0, 5)), ValueError,
     "`axis`"),
    # The user wrote `weight_decay`; the message must not name adamw's internal `rate`.
    ("adamw negative weight decay", lambda: regjax.adamw(0.1, -1e-3), ValueError,
     "`weight_decay` must be >= 0"),
    ("adamw nan weight decay", lambda: regjax.adamw(0.1, float("nan")), ValueError,
     "`weight_decay` must be finite"),
    ("adamw b2", lambda: regjax.adamw(0.1, b2=1.0), ValueError, "`b2`"),
    ("adamw eps", lambda: regjax.adamw(0.1, eps=-1e-8), ValueError, "`eps`"),
    ("prox_sgd momentum", lambda: regjax.prox_sgd(0.1, 0.1, momentum=-0.5), ValueError,
     "`momentum`"),
    ("prox_fn not callable", lambda: regjax.proximal(0.1, 0.1, 0.1), TypeError, "`prox_fn`"),
    ("penalty not callable", lambda: regjax.add_penalty_gradient("l1", 0.1), TypeError,
     "`penalty`"),
    # A schedule is probed on the host at steps 0, 1, 10, ..., 1e6 when the transform is built.
    ("schedule turns negative", lambda: regjax.proximal(prox.l1, lambda t: 0.1 - 0.01 * t, 0.1),
     ValueError, r"`strength` must be >= 0.0, got -0.9.* \(a schedule, at step 100\)"),
    ("schedule gives nan", lambda: regjax.adamw(lambda t: jnp.sqrt(0.5 - t), 0.1), ValueError,
     r"`learning_rate` must be finite.*at step 1\)"),
    ("schedule of strings", lambda: regjax.prox_adam(0.1, lambda t: "0.1"), TypeError,
     "`strength`"),
    ("strength tree names nothing",
     lambda: init(regjax.proximal(prox.l1, {"kernel": 0.1, "bias": 0.0, "scale": 0.1}, 0.1)),
     ValueError, "`strength` names scale, which is not a parameter"),
    ("strength shape", lambda: init(regjax.prox_sgd(0.1, jnp.ones(5))), ValueError,
     r"`strength` must be a scalar or broadcast .* for bias of shape \(2,\) it has shape \(5,\)"),
    ("schedule shape", lambda: init(regjax.decoupled_weight_decay(lambda t: jnp.ones(4) * 0.1)),
     ValueError, "`rate` must be a scalar or broadcast"),
]


@pytest.mark.parametrize(("make", "error", "text"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_a_named_error(make, error, text):
  with pytest.raises(error, match=text):
    make()


def test_update_without_params_is_an_error():
  tx = regjax.proximal(prox.l1, 0.1, 0.1)
  with pytest.raises(ValueError, match="params"):
    tx.update(PARAMS, tx.init(PARAMS))


def test_good_input_builds():
  for tx in (
      regjax.prox_adam(optax.constant_schedule(0.1), lambda count: 0.1 / (1 + count)),
      regjax.adamw(0.1, regjax.per_layer(PARAMS, {"kernel": 0.1})),
      regjax.proximal(functools.partial(prox.group_l2, axis=0), jnp.float32(0.1), 0.1),
  ):
    init(tx)
  # Every leaf None: nothing is regularized (found by the conformance fuzzer; it raised).
  tx = regjax.prox_sgd(0.1, {"kernel": None, "bias": None})
  updates, _ = tx.update(PARAMS, init(tx), PARAMS)
  for got, params in zip(jax.tree.leaves(updates), jax.tree.leaves(PARAMS), strict=True):
    np.testing.assert_allclose(got, -0.1 * params)


# --------------------------------------------- bare prox operators and penalties check too

X = jnp.array([[1.0, -2.0], [0.5, 3.0], [0.0, -0.25]])

# Every strength-like argument of a bare function, as `value -> call`.
BARE = {
    "prox.l1": ("strength", lambda v: prox.l1(X, v)),
    "prox.l2_squared": ("strength", lambda v: prox.l2_squared(X, v)),
    "prox.elastic_net": ("strength", lambda v: prox.elastic_net(X, v)),
    "prox.elastic_net l2_weight": ("l2_weight", lambda v: prox.elastic_net(X, 0.1, v)),
    "prox.group_l2": ("strength", lambda v: prox.group_l2(X, v)),
    "prox.group_l2 metric": ("metric", lambda v: prox.group_l2(X, 0.1, metric=v)),
    "prox.sparse_group": ("strength", lambda v: prox.sparse_group(X, v)),
    "prox.sparse_group l1_weight": ("l1_weight", lambda v: prox.sparse_group(X, 0.1, v)),
    "prox.l0": ("strength", lambda v: prox.l0(X, v)),
    "prox.nonneg_l1": ("strength", lambda v: prox.nonneg_l1(X, v)),
    "prox.nonneg_l1 metric": ("metric", lambda v: prox.nonneg_l1(X, 0.1, metric=v)),
    "prox.max_norm": ("max_value", lambda v: prox.max_norm(X, v)),
    "penalties.elastic_net": ("l2_weight", lambda v: penalties.elastic_net(X, v)),
    "penalties.tree_penalty": ("strength", lambda v: penalties.tree_penalty(
        penalties.l1, {"w": X}, {"w": v})),
}
BAD_VALUES = {
    "negative": (-1.0, ValueError),
    "nan": (float("nan"), ValueError),
    "inf": (float("inf"), ValueError),
    "string": ("0.1", TypeError),
    "bool": (True, TypeError),
    "numpy negative": (np.array([-1.0, 0.5]), ValueError),
}


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("name", BARE)
def test_bare_functions_reject_a_bad_concrete_strength_like_the_transforms(name, bad):
  argument, call = BARE[name]
  value, error = BAD_VALUES[bad]
  if bad == "numpy negative":
    value = value[:1]  # broadcasts to every shape used here
  with pytest.raises(error, match=f"`{argument}`"):
    call(value)


def test_bare_functions_and_transforms_give_the_same_message():
  messages = set()
  for make in (lambda: prox.l1(X, -1.0), lambda: regjax.prox_adam(1e-2, -1.0),
               lambda: regjax.proximal(prox.l1, -1.0, 0.1),
               lambda: penalties.tree_penalty(penalties.l1, X, -1.0)):
    with pytest.raises(ValueError) as info:
      make()
    messages.add(str(info.value))
  assert messages == {"`strength` must be >= 0.0, got -1.0."}


def test_bare_functions_apply_the_traced_rule_to_jax_arrays():
  # Negative or NaN -> NaN (a loud failure); a float32 rounding residue -> 0. One jit for
  # every function; the same rule holds for concrete JAX arrays, which are never read.
  values = jnp.array([-1.0, jnp.nan, -1.04e-8, 0.0])

  @jax.jit
  def everything(values):
    return {name: jax.vmap(call)(values) for name, (argument, call) in BARE.items()
            if argument != "metric"}

  for name, out in everything(values).items():
    assert bool(jnp.all(jnp.isnan(out[0]))), name
    assert bool(jnp.all(jnp.isnan(out[1]))), name
    np.testing.assert_array_equal(out[2], out[3], err_msg=name)
  np.testing.assert_array_equal(prox.l1(X, jnp.asarray(-1.04e-8)), X)  # eager, concrete
  assert bool(jnp.all(jnp.isnan(prox.l1(X, jnp.asarray(-0.5)))))


@pytest.mark.parametrize(("make", "error", "text"), [
    (lambda: prox.l1(X, jnp.ones(4)), ValueError, r"`strength` must be a scalar or broadcast"),
    (lambda: prox.l1(jnp.ones(3), jnp.ones((2, 3))), ValueError, "`strength`"),
    (lambda: prox.group_l2(X, jnp.ones((3, 2)), axis=0), ValueError,
     r"`strength` .* group norms' shape \(1, 2\)"),
    (lambda: prox.max_norm(X, jnp.ones(3)), ValueError, "`max_value`"),
    (lambda: prox.l1(X, 0.1, metric=jnp.ones(5)), ValueError, "`metric`"),
    (lambda: prox.l1(X, 0.1, metric=0.0), ValueError, r"`metric` must be > 0.0, got 0.0"),
    (lambda: prox.group_l2(X, 0.1, axis=1.5), TypeError, "`axis`"),
    (lambda: prox.group_l2(X, 0.1, axis=True), TypeError, "`axis`"),
    (lambda: prox.group_l2(X, 0.1, axis="0"), TypeError, "`axis`"),
    (lambda: prox.unit_norm(X, axis=(0, -2)), ValueError, "`axis` .* repeats"),
    (lambda: penalties.group_l2(X, axis=2), ValueError, "`axis`"),
    (lambda: prox.orthonormal(jnp.ones(3)), ValueError, "`x`"),
    (lambda: penalties.soft_orthogonality(jnp.ones(3)), ValueError, "`x`"),
    (lambda: penalties.decorrelation(X, mode=None), ValueError, "`mode`"),
    (lambda: penalties.spectral_orthogonality(X, num_iterations=-1), ValueError,
     "`num_iterations`"),
    (lambda: penalties.spectral_orthogonality(X, vector=jnp.ones(3)), ValueError, "`vector`"),
    (lambda: penalties.power_iteration(X, jnp.ones(3)), ValueError, "`matrix`"),
    (lambda: penalties.tree_penalty("l1", X), TypeError, "`penalty`"),
    (lambda: penalties.tree_penalty(penalties.l1, X, lambda t: 0.1), TypeError, "`strength`"),
    (lambda: penalties.tree_penalty(penalties.l1, {"w": X}, {"w": 0.1, "v": 0.1}), ValueError,
     "`strength` names v"),
], ids=lambda v: "" if callable(v) or isinstance(v, type) else v)
def test_bare_functions_check_shapes_axes_and_modes(make, error, text):
  with pytest.raises(error, match=text):
    make()


# ------------------------------------------------------------- masks that name nothing

NESTED = {"a": jnp.ones((2, 2)), "c": {"d": jnp.ones((2, 3)), "e": (jnp.ones(2), jnp.ones((2, 2)))}}
TYPO = {"a": True, "c": {"d": True, "e": (False, True), "extra": True}}

MASK_USERS = {
    "proximal": lambda m: init(regjax.proximal(prox.l1, 0.1, 0.1, mask=m), NESTED),
    "decoupled_weight_decay": lambda m: init(regjax.decoupled_weight_decay(0.1, mask=m), NESTED),
    "add_penalty_gradient": lambda m: init(regjax.add_penalty_gradient(penalties.l1, 0.1, m),
                                           NESTED),
    "orthogonality": lambda m: init(regjax.orthogonality(0.1, mask=m), NESTED),
    "project": lambda m: init(regjax.project(prox.unit_norm, mask=m), NESTED),
    "prox_sgd": lambda m: init(regjax.prox_sgd(0.1, 0.1, mask=m), NESTED),
    "prox_adam": lambda m: init(regjax.prox_adam(0.1, 0.1, mask=m), NESTED),
    "adamw": lambda m: init(regjax.adamw(0.1, 0.1, mask=m), NESTED),
    "tree_penalty": lambda m: penalties.tree_penalty(penalties.l1, NESTED, mask=m),
    "zero_fraction": lambda m: metrics.zero_fraction(NESTED, mask=m),
    "dead_unit_fraction": lambda m: metrics.dead_unit_fraction(NESTED, mask=m),
    "magnitude_prune": lambda m: pruning.magnitude_prune(NESTED, 0.5, mask=m),
    "optax.masked (the reference)": lambda m: init(optax.masked(optax.sgd(0.1), m), NESTED),
}


@pytest.mark.parametrize("form", ["tree", "callable"])
@pytest.mark.parametrize("user", MASK_USERS)
def test_a_mask_that_names_no_parameter_is_an_error_everywhere(user, form):
  mask = TYPO if form == "tree" else (lambda params: TYPO)
  text = "extra" if user.startswith("optax") else (
      r"`mask` names c/extra, which is not a parameter.*paths are: a, c/d, c/e/0, c/e/1")
  with pytest.raises(ValueError, match=text):
    MASK_USERS[user](mask)
  MASK_USERS[user]({"a": True, "c": {"d": True, "e": (False, True)}})  # without the typo


def test_a_key_of_the_wrong_type_is_named_as_such():
  params = {"layers": [{"w": jnp.ones(2)}, {"w": jnp.ones(2)}]}
  with pytest.raises(ValueError, match="the integer 0 and the string '0' differ"):
    init(regjax.prox_sgd(0.1, 0.1, mask={"layers": {"0": True, "1": False}}), params)
  with pytest.raises(ValueError, match="`mask` could not be flattened"):
    init(regjax.prox_sgd(0.1, 0.1, mask={"layers": {"0": True, 1: False}}), params)
