r"""Learnable gates that switch units off: hard-concrete L0 gates and straight-through masks.

Hard-concrete gates (Louizos, Welling & Kingma, 2018) relax a binary gate
:math:`z \in \{0, 1\}` into a distribution on ``[0, 1]`` with point masses at exactly 0
and exactly 1, parameterized by a learnable location ``log_alpha``:

.. math::
  u \sim U(0, 1), \quad
  s = \sigma\!\left(\frac{\log u - \log(1 - u) + \log\alpha}{\beta}\right), \quad
  \bar s = s(\zeta - \gamma) + \gamma, \quad z = \min(1, \max(0, \bar s)).

``log u - log(1 - u)`` is a standard logistic variable :math:`L`, so
:math:`\bar s \le t \iff L \le \beta\,\mathrm{logit}\!\left(\frac{t - \gamma}{\zeta -
\gamma}\right) - \log\alpha`, which gives the closed forms

.. math::
  P(z = 0) = \sigma\!\left(\beta \log\frac{-\gamma}{\zeta} - \log\alpha\right), \qquad
  P(z = 1) = \sigma\!\left(\log\alpha - \beta \log\frac{1 - \gamma}{\zeta - 1}\right),

and the expected number of non-zero gates (the L0 penalty)
:math:`\sum 1 - P(z = 0) = \sum \sigma(\log\alpha - \beta\log(-\gamma/\zeta))`.

The stretch parameters need :math:`\beta > 0`, :math:`\gamma < 0` and :math:`\zeta > 1`
(otherwise there is no mass at 0 or 1). Concrete values are checked; traced values are
used as given.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from regjax import _checks
from regjax.nn._random import StochasticModule
from regjax.typing import PRNGKey

__all__ = [
    "BETA",
    "GAMMA",
    "L0Gate",
    "STEMask",
    "ZETA",
    "deterministic_gate",
    "expected_l0",
    "hard_concrete_point_masses",
    "hard_concrete_sample",
    "straight_through_mask",
]

BETA = 2.0 / 3.0
r"""The temperature :math:`\beta` of Louizos et al. (2018), the default of every gate here."""
GAMMA = -0.1
r"""The lower stretch :math:`\gamma` of Louizos et al. (2018): where the stretched gate starts."""
ZETA = 1.1
r"""The upper stretch :math:`\zeta` of Louizos et al. (2018): where the stretched gate ends."""


def _check_stretch(beta: Any = BETA, gamma: Any = GAMMA, zeta: Any = ZETA) -> None:
  for name, value, low, high in (("beta", beta, 0.0, None), ("gamma", gamma, None, 0.0),
                                 ("zeta", zeta, 1.0, None)):
    _checks.check_number_tree(name, value, low=-math.inf, allow_callable=False)
    if not _checks.is_concrete(value):
      continue
    array = np.asarray(value)
    if low is not None and np.any(array <= low):
      raise ValueError(f"`{name}` must be > {low}, got {array.tolist()!r}.")
    if high is not None and np.any(array >= high):
      raise ValueError(f"`{name}` must be < {high}, got {array.tolist()!r}.")


def _float_log_alpha(log_alpha: jax.typing.ArrayLike) -> jax.Array:
  log_alpha = jnp.asarray(log_alpha)
  if not jnp.issubdtype(log_alpha.dtype, jnp.floating):
    raise TypeError(f"`log_alpha` must be a floating-point array, got dtype {log_alpha.dtype}.")
  return log_alpha


def _open_logit(log_alpha: jax.Array, beta: Any, gamma: Any, zeta: Any) -> jax.Array:
  r"""The logit of :math:`P(z \ne 0)`: :math:`\log\alpha - \beta\log(-\gamma/\zeta)`."""
  return log_alpha - beta * jnp.log(-gamma / zeta)


def _stretch_and_clip(unit: jax.Array, gamma: Any, zeta: Any, dtype: Any) -> jax.Array:
  r""":math:`\min(1, \max(0, s(\zeta - \gamma) + \gamma))` of ``unit`` = :math:`s`, in ``dtype``."""
  return jnp.clip(unit * (zeta - gamma) + gamma, 0.0, 1.0).astype(dtype)


def hard_concrete_sample(
    key: PRNGKey,
    log_alpha: jax.typing.ArrayLike,
    beta: jax.typing.ArrayLike = BETA,
    gamma: jax.typing.ArrayLike = GAMMA,
    zeta: jax.typing.ArrayLike = ZETA,
    *,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
  r"""Draws hard-concrete gates :math:`z \in [0, 1]`, reparameterized in ``log_alpha``.

  :math:`z = \min(1, \max(0, \sigma((L + \log\alpha)/\beta)(\zeta - \gamma) + \gamma))`
  with :math:`L = \log u - \log(1 - u)`, :math:`u \sim U(0, 1)` (a standard logistic
  variable). ``z`` is exactly 0 or exactly 1 with the probabilities of
  :func:`hard_concrete_point_masses`; in between it is a
  differentiable function of ``log_alpha``.

  Args:
    key: PRNG key.
    log_alpha: floating-point gate locations.
    beta: temperature ``> 0`` (2/3 in the paper).
    gamma: lower stretch ``< 0`` (-0.1).
    zeta: upper stretch ``> 1`` (1.1).
    shape: output shape, broadcast from ``log_alpha.shape`` (e.g. ``(batch,) +
      log_alpha.shape`` for one draw per example); default ``log_alpha.shape``.

  Returns:
    Gates of shape ``shape`` and the dtype of ``log_alpha``. Computed in at least
    float32, so bfloat16 ``log_alpha`` still gets exact 0s and 1s.

  References:
    Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from regjax.nn import gates
    >>> z = gates.hard_concrete_sample(jax.random.key(0), jnp.array([-10.0, 0.0, 10.0]))
    >>> float(z[0]), float(z[2])  # closed (exactly 0) and open (exactly 1) gates
    (0.0, 1.0)
    >>> gates.hard_concrete_sample(jax.random.key(0), jnp.zeros(3), shape=(5, 3)).shape
    (5, 3)
  """
  _check_stretch(beta, gamma, zeta)
  log_alpha = _float_log_alpha(log_alpha)
  shape = log_alpha.shape if shape is None else tuple(shape)
  dtype = _checks.float_dtype(log_alpha.dtype)
  location = jnp.broadcast_to(log_alpha.astype(dtype), shape)
  noise = jax.random.logistic(key, shape, dtype=dtype)
  return _stretch_and_clip(jax.nn.sigmoid((noise + location) / beta), gamma, zeta,
                           log_alpha.dtype)


def hard_concrete_point_masses(
    log_alpha: jax.typing.ArrayLike,
    beta: jax.typing.ArrayLike = BETA,
    gamma: jax.typing.ArrayLike = GAMMA,
    zeta: jax.typing.ArrayLike = ZETA,
) -> tuple[jax.Array, jax.Array]:
  r"""Probabilities that a hard-concrete gate is exactly 0 and exactly 1, elementwise.

  .. math::
    P(z = 0) = P(\bar s \le 0) = \sigma\big(\beta \log(-\gamma/\zeta) - \log\alpha\big),
    \qquad P(z = 1) = P(\bar s \ge 1) = \sigma\big(\log\alpha - \beta \log((1 - \gamma)
    / (\zeta - 1))\big).

  The second is the first mirrored (:math:`z \mapsto 1 - z` maps the gate with
  :math:`(\log\alpha, \gamma, \zeta)` to the one with :math:`(-\log\alpha, 1 - \zeta,
  1 - \gamma)`), and is computed that way.

  Args:
    log_alpha: gate locations.
    beta: temperature ``> 0``.
    gamma: lower stretch ``< 0``.
    zeta: upper stretch ``> 1``.

  Returns:
    ``(p_zero, p_one)``, each with the shape of ``log_alpha``.

  References:
    Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018.

  Examples:
    >>> from regjax.nn import gates
    >>> p_zero, p_one = gates.hard_concrete_point_masses(0.0)
    >>> round(float(p_zero), 4), round(float(p_one), 4)  # symmetric at log_alpha = 0
    (0.1682, 0.1682)
  """
  _check_stretch(beta, gamma, zeta)
  log_alpha = _float_log_alpha(log_alpha)

  p_zero = jax.nn.sigmoid(-_open_logit(log_alpha, beta, gamma, zeta))
  p_one = jax.nn.sigmoid(-_open_logit(-log_alpha, beta, 1.0 - zeta, 1.0 - gamma))
  return p_zero, p_one


def expected_l0(
    log_alpha: jax.typing.ArrayLike,
    beta: jax.typing.ArrayLike = BETA,
    gamma: jax.typing.ArrayLike = GAMMA,
    zeta: jax.typing.ArrayLike = ZETA,
    axis: int | tuple[int, ...] | None = None,
) -> jax.Array:
  r"""Expected number of non-zero gates, the differentiable L0 penalty.

  .. math::
    E\|z\|_0 = \sum_j 1 - P(z_j = 0) = \sum_j \sigma(\log\alpha_j - \beta\log(-\gamma /
    \zeta)).

  Unscaled: multiply by the strength :math:`\lambda` (Louizos et al. divide it by the
  number of training examples) when adding it to the loss.

  Args:
    log_alpha: gate locations, any shape.
    beta: temperature ``> 0``.
    gamma: lower stretch ``< 0``.
    zeta: upper stretch ``> 1``.
    axis: the axes to count over, as in ``jnp.sum``; ``None`` (default) counts every
      gate. ``axis=-1`` on stacked ``(layers, units)`` locations counts per layer.

  Returns:
    The expected count (at least float32): a scalar, or ``log_alpha``'s shape without
    ``axis``.

  References:
    Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.nn import gates
    >>> round(float(gates.expected_l0(jnp.zeros(10))), 3)  # 10 * (1 - P(z = 0))
    8.318
    >>> per_layer = gates.expected_l0(jnp.zeros((2, 5)), axis=-1)  # one count per row
    >>> [round(count, 3) for count in per_layer.tolist()]
    [4.159, 4.159]
  """
  _check_stretch(beta, gamma, zeta)
  log_alpha = _float_log_alpha(log_alpha)
  log_alpha = log_alpha.astype(_checks.float_dtype(log_alpha.dtype))
  return jnp.sum(jax.nn.sigmoid(_open_logit(log_alpha, beta, gamma, zeta)), axis=axis)


def deterministic_gate(
    log_alpha: jax.typing.ArrayLike,
    gamma: jax.typing.ArrayLike = GAMMA,
    zeta: jax.typing.ArrayLike = ZETA,
) -> jax.Array:
  r"""Test-time gate of Louizos et al.: :math:`\hat z = \min(1, \max(0, \sigma(\log\alpha)
  (\zeta - \gamma) + \gamma))`.

  As in the paper it uses :math:`\sigma(\log\alpha)` with no noise and no temperature
  (the median of the training-time gate would be :math:`\sigma(\log\alpha/\beta)`
  stretched and clipped). Gates are exactly 0 where :math:`\log\alpha \le
  \log(-\gamma/\zeta)`, which is how the trained network is pruned.

  Args:
    log_alpha: gate locations.
    gamma: lower stretch ``< 0``.
    zeta: upper stretch ``> 1``.

  Returns:
    Gates in ``[0, 1]`` with the shape and dtype of ``log_alpha``.

  References:
    Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.nn import gates
    >>> gate = gates.deterministic_gate(jnp.array([-10.0, 0.0, 10.0]))
    >>> [round(g, 4) for g in gate.tolist()]  # pruned, half open, fully open
    [0.0, 0.5, 1.0]
  """
  _check_stretch(BETA, gamma, zeta)
  log_alpha = _float_log_alpha(log_alpha)
  dtype = _checks.float_dtype(log_alpha.dtype)
  return _stretch_and_clip(jax.nn.sigmoid(log_alpha.astype(dtype)), gamma, zeta,
                           log_alpha.dtype)


def _gate_last_axis(inputs: jax.Array, gates: jax.Array) -> jax.Array:
  """Multiplies the last axis of ``inputs`` by ``gates`` of shape ``(G,)`` or ``(B, G)``."""
  if gates.ndim == 1:
    gates = gates.reshape((1,) * (inputs.ndim - 1) + gates.shape)
  else:
    gates = gates.reshape(gates.shape[:1] + (1,) * (inputs.ndim - 2) + gates.shape[1:])
  return inputs * gates.astype(inputs.dtype)


class L0Gate(StochasticModule):
  """Hard-concrete gates on the last axis of its input, with an expected-L0 penalty.

  Training: ``inputs * z`` with ``z = hard_concrete_sample(key, log_alpha)``;
  evaluation: ``inputs * deterministic_gate(log_alpha)``. Add
  ``strength * gate.penalty()`` to the loss. Place it after a layer to prune its output
  units (neurons, channels of an NHWC map), or before one to prune its inputs.

  ``deterministic`` and ``rngs`` follow ``nnx.Dropout`` (``model.train()``,
  ``model.eval()``, ``nnx.view``, call-time overrides); gate noise comes from the
  ``rng_collection`` stream.

  Args:
    num_gates: size of the gated (last) axis.
    rngs: ``nnx.Rngs``; ``params`` initializes ``log_alpha``, the ``rng_collection``
      stream is forked for the gate noise.
    init_log_alpha: mean initial ``log_alpha``, a float or ``(num_gates,)`` array. The
      paper's code uses ``log(1 - d) - log(d)`` for an initial "drop rate" ``d``; the
      default 0.0 is ``d = 0.5`` and starts with ``P(z = 0) ~= 0.17``.
    init_std: standard deviation of the Gaussian noise added to ``init_log_alpha``
      (0.01 in the paper's code).
    beta: temperature ``> 0``.
    gamma: lower stretch ``< 0``.
    zeta: upper stretch ``> 1``.
    per_example: if True, draw an independent gate vector for each entry of the leading
      (batch) axis, shared over the middle axes; otherwise one vector per call.
    deterministic: if True, use the test-time gates; if None it must be given at call
      time.
    param_dtype: dtype of ``log_alpha``.
    rng_collection: the ``nnx.Rngs`` stream the gate noise comes from.

  References:
    Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax.nn import gates
    >>> gate = gates.L0Gate(3, rngs=nnx.Rngs(0))
    >>> gate(jnp.ones((2, 3))).shape  # training: one noisy gate vector per call
    (2, 3)
    >>> round(float(gate.penalty()), 1)  # add strength * penalty to the loss
    2.5
    >>> x = jnp.array([1.0, 2.0, 3.0])
    >>> bool(jnp.allclose(gate(x, deterministic=True), x * gate.test_gates()))  # evaluation
    True
  """

  def __init__(
      self,
      num_gates: int,
      *,
      rngs: nnx.Rngs,
      init_log_alpha: jax.typing.ArrayLike = 0.0,
      init_std: float = 0.01,
      beta: float = BETA,
      gamma: float = GAMMA,
      zeta: float = ZETA,
      per_example: bool = False,
      deterministic: bool | None = False,
      param_dtype: jax.typing.DTypeLike = jnp.float32,
      rng_collection: str = "dropout",
  ):
    num_gates = _checks.check_int("num_gates", num_gates)
    _checks.check_number_tree("init_log_alpha", init_log_alpha, low=-math.inf,
                              allow_callable=False)
    if np.shape(init_log_alpha) not in ((), (num_gates,)):
      raise ValueError(
          f"`init_log_alpha` must be a scalar or have shape ({num_gates},), got shape "
          f"{np.shape(init_log_alpha)}.")
    _checks.check_number_tree("init_std", init_std, allow_callable=False)
    _check_stretch(beta, gamma, zeta)
    mean = jnp.broadcast_to(jnp.asarray(init_log_alpha, param_dtype), (num_gates,))
    noise = jax.random.normal(rngs.params(), (num_gates,), param_dtype)
    self.log_alpha = nnx.Param(mean + jnp.asarray(init_std, param_dtype) * noise)
    self.num_gates = num_gates
    self.beta = float(beta)
    self.gamma = float(gamma)
    self.zeta = float(zeta)
    self.per_example = per_example
    self._init_stochastic(deterministic, rngs, rng_collection)

  def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None,
               rngs: nnx.Rngs | nnx.RngStream | PRNGKey | None = None) -> jax.Array:
    """Gates the last axis of ``inputs``; same shape and dtype out."""
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 1 or inputs.shape[-1] != self.num_gates:
      raise ValueError(
          f"`inputs` must have last axis {self.num_gates}, got shape {inputs.shape}.")
    if self.per_example and inputs.ndim < 2:
      raise ValueError(
          f"`inputs` needs a leading batch axis with per_example=True, got {inputs.shape}.")
    deterministic = self._is_deterministic(deterministic)
    log_alpha = self.log_alpha[...]
    if deterministic:
      return _gate_last_axis(inputs, deterministic_gate(log_alpha, self.gamma, self.zeta))
    key = self._draw(rngs)
    shape = (inputs.shape[0], self.num_gates) if self.per_example else (self.num_gates,)
    gates = hard_concrete_sample(key, log_alpha, self.beta, self.gamma, self.zeta,
                                 shape=shape)
    return _gate_last_axis(inputs, gates)

  def penalty(self) -> jax.Array:
    """Expected number of non-zero gates, :func:`expected_l0` of ``log_alpha``."""
    return expected_l0(self.log_alpha[...], self.beta, self.gamma, self.zeta)

  def test_gates(self) -> jax.Array:
    """The evaluation-time gates, :func:`deterministic_gate` of ``log_alpha``."""
    return deterministic_gate(self.log_alpha[...], self.gamma, self.zeta)


# ---------------------------------------------------------------------------------------
# Straight-through binary masks.


@jax.custom_jvp
def _hard_threshold(scores: jax.Array, threshold: jax.Array) -> jax.Array:
  return (scores > threshold).astype(scores.dtype)


@_hard_threshold.defjvp
def _hard_threshold_jvp(primals, tangents):
  scores, threshold = primals
  scores_dot, _ = tangents
  # Straight-through: the step's derivative is replaced by the identity's.
  return _hard_threshold(scores, threshold), scores_dot


def straight_through_mask(scores: jax.typing.ArrayLike,
                          threshold: jax.typing.ArrayLike = 0.0) -> jax.Array:
  r"""Binary mask ``scores > threshold`` whose gradient is the identity's.

  Forward: :math:`m = \mathbb{1}[s > t]`, exactly 0 or 1 in the dtype of ``scores``.
  Backward: :math:`\partial m / \partial s := 1` (straight-through estimator), so
  ``jax.grad(lambda s: f(straight_through_mask(s)))(s)`` equals ``jax.grad(f)`` at the
  mask. This is the ``s + stop_gradient(m - s)`` trick written as a ``custom_jvp``, which
  keeps the forward value exact for any ``s`` (the arithmetic form rounds ``s + (1 -
  s)`` for large ``|s|``). No gradient reaches ``threshold``.

  Args:
    scores: floating-point scores.
    threshold: a scalar (or an array broadcastable to ``scores`` with the same rank);
      may be traced, e.g. under ``vmap`` over thresholds. A concrete value must be
      finite.

  Returns:
    The mask, shape and dtype of ``scores``.

  References:
    Bengio, Léonard & Courville, "Estimating or Propagating Gradients Through Stochastic
    Neurons for Conditional Computation", arXiv:1308.3432, 2013.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from regjax.nn import gates
    >>> scores = jnp.array([-1.0, 0.5, 2.0])
    >>> gates.straight_through_mask(scores).tolist()
    [0.0, 1.0, 1.0]
    >>> weights = jnp.array([1.0, 2.0, 3.0])
    >>> grad = jax.grad(lambda s: jnp.sum(weights * gates.straight_through_mask(s)))(scores)
    >>> grad.tolist()  # the gradient of sum(weights * s): the identity's
    [1.0, 2.0, 3.0]
  """
  _checks.check_number_tree("threshold", threshold, low=-math.inf, allow_callable=False)
  scores = jnp.asarray(scores)
  if not jnp.issubdtype(scores.dtype, jnp.floating):
    raise TypeError(f"`scores` must be a floating-point array, got dtype {scores.dtype}.")
  return _hard_threshold(scores, jnp.asarray(threshold, scores.dtype))


class STEMask(nnx.Module):
  """Learnable binary mask on the last axis of its input, trained straight-through.

  Output ``inputs * straight_through_mask(scores, threshold)``: a unit is on while its
  score exceeds ``threshold``, and the scores receive the gradient the mask would get if
  it were continuous. The same in training and evaluation.

  Args:
    num_features: size of the masked (last) axis.
    threshold: scores above it are on.
    init_score: initial score of every unit (above ``threshold``: all on).
    param_dtype: dtype of the scores.

  References:
    Bengio, Léonard & Courville, "Estimating or Propagating Gradients Through Stochastic
    Neurons for Conditional Computation", arXiv:1308.3432, 2013.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.nn import gates
    >>> mask = gates.STEMask(3)
    >>> mask.scores[...] = jnp.array([1.0, -0.5, 0.2])  # unit 1 is switched off
    >>> mask(jnp.ones((2, 3))).tolist()
    [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
  """

  def __init__(self, num_features: int, *, threshold: float = 0.0, init_score: float = 1.0,
               param_dtype: jax.typing.DTypeLike = jnp.float32):
    num_features = _checks.check_int("num_features", num_features)
    _checks.check_number_tree("threshold", threshold, low=-math.inf, allow_callable=False)
    _checks.check_number_tree("init_score", init_score, low=-math.inf, allow_callable=False)
    self.scores = nnx.Param(jnp.full((num_features,), init_score, param_dtype))
    self.threshold = float(threshold)
    self.num_features = num_features

  def __call__(self, inputs: jax.Array) -> jax.Array:
    """Masks the last axis of ``inputs``; same shape and dtype out."""
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 1 or inputs.shape[-1] != self.num_features:
      raise ValueError(
          f"`inputs` must have last axis {self.num_features}, got shape {inputs.shape}.")
    return _gate_last_axis(inputs, self.binary_mask())

  def binary_mask(self) -> jax.Array:
    """The current 0/1 mask (differentiable straight-through in ``scores``)."""
    return straight_through_mask(self.scores[...], self.threshold)
