"""Every public constructor rejects bad input with an error that names the argument."""

import functools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import regjax
from regjax import penalties, prox

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
