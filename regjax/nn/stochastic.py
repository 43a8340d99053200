"""Stochastic regularizers: pure functions of a PRNG key, and the NNX modules Flax lacks.

Every function takes the PRNG key first, preserves the shape and dtype of its array
argument, and works under ``jit`` and ``vmap`` over keys and over rates: a rate may be a
traced scalar. Concrete rates are checked eagerly and raise a ``ValueError`` naming the
argument; traced rates cannot be inspected and are used as given (an out-of-range traced
rate gives meaningless output, not an error).

Dropout itself is ``flax.nnx.Dropout`` and is not repeated here; fractional
max-pooling is in :mod:`regjax.nn.pooling`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax.typing import Initializer

from regjax import _checks
from regjax.nn._random import (
  StochasticModule,
  _check_floating,
  _check_images,
  _check_scalar_in_range,
)
from regjax.typing import PRNGKey

__all__ = [
    "DropConnectLinear",
    "DropPath",
    "cutmix",
    "cutout",
    "drop_path",
    "dropconnect",
    "linear_survival_schedule",
    "mixup",
    "soft_target_cross_entropy",
]

# ---------------------------------------------------------------------------------------
# DropConnect.


def dropconnect(key: PRNGKey, kernel: jax.typing.ArrayLike,
                rate: jax.typing.ArrayLike) -> jax.Array:
  r"""Zeroes each weight independently with probability ``rate`` (DropConnect).

  .. math::
    \tilde W = \frac{M \odot W}{1 - \text{rate}}, \qquad M_{ij} \sim
    \text{Bernoulli}(1 - \text{rate}),

  so :math:`E[\tilde W] = W` and the test-time layer uses all weights unchanged.

  Args:
    key: PRNG key.
    kernel: floating-point weights of any shape.
    rate: probability of dropping a weight, a scalar in ``[0, 1)``. A traced rate is
      not checked.

  Returns:
    The masked, rescaled kernel with the shape and dtype of ``kernel``.

  References:
    Wan, Zeiler, Zhang, LeCun & Fergus, "Regularization of Neural Networks using
    DropConnect", ICML 2013.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from regjax.nn import stochastic
    >>> kernel = jnp.ones((3, 4))
    >>> dropped = stochastic.dropconnect(jax.random.key(0), kernel, rate=0.5)
    >>> dropped.shape, dropped.dtype
    ((3, 4), dtype('float32'))
    >>> set(dropped.ravel().tolist()) <= {0.0, 2.0}  # dropped, or kept and scaled by 2
    True
  """
  _check_scalar_in_range("rate", rate, low_inclusive=True, high=1.0, high_inclusive=False)
  kernel = jnp.asarray(kernel)
  _check_floating("kernel", kernel)
  return _dropconnect(key, kernel, rate)


@jax.jit
def _dropconnect(key: jax.Array, kernel: jax.Array, rate: jax.Array) -> jax.Array:
  keep_prob = 1.0 - jnp.asarray(rate, dtype=_checks.float_dtype(kernel.dtype))
  keep = jax.random.bernoulli(key, keep_prob, kernel.shape)
  scale = (1.0 / keep_prob).astype(kernel.dtype)
  return jnp.where(keep, kernel * scale, jnp.zeros((), kernel.dtype))


class DropConnectLinear(StochasticModule):
  """A dense layer whose weights are dropped by DropConnect during training.

  Training: ``y = x @ dropconnect(key, W, rate) + b``; evaluation: ``y = x @ W + b``
  (all weights, no rescaling), which is the mean of the training-time layer. The bias is
  never dropped. Wan et al. (2013) also describe a Gaussian moment-matching sampler for
  inference; this module uses the simpler mean network.

  ``deterministic`` and ``rngs`` follow ``nnx.Dropout``: the constructor's
  ``deterministic`` is overridden by the call's, and ``model.train()``, ``model.eval()``
  and ``nnx.view(model, deterministic=...)`` set it. Masks are drawn from the
  ``rng_collection`` stream (default ``"dropout"``, falling back to ``default``).

  Args:
    in_features: size of the input's last axis.
    out_features: number of outputs.
    rate: probability of dropping each weight, a Python float in ``[0, 1)``.
    rngs: ``nnx.Rngs`` used for the parameters (``params`` stream) and forked for masks.
    use_bias: whether to add a bias.
    per_example: if True, every example (all leading axes flattened) gets its own mask,
      as in the paper; memory grows as ``batch * in_features * out_features``. If False,
      one mask is shared by the whole batch.
    deterministic: if True, use all weights; if None it must be given at call time.
    kernel_init: initializer of the ``(in_features, out_features)`` kernel (default
      LeCun normal, as ``nnx.Linear``).
    bias_init: initializer of the bias (default zeros).
    param_dtype: dtype of the parameters.
    rng_collection: the ``nnx.Rngs`` stream the masks come from.

  References:
    Wan, Zeiler, Zhang, LeCun & Fergus, "Regularization of Neural Networks using
    DropConnect", ICML 2013.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax.nn import stochastic
    >>> layer = stochastic.DropConnectLinear(4, 2, rate=0.5, rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((8, 4))).shape  # training: a fresh mask on the kernel at every call
    (8, 2)
    >>> x = jnp.array([1.0, 2.0, 3.0, 4.0])
    >>> mean_layer = x @ layer.kernel[...] + layer.bias[...]
    >>> bool(jnp.allclose(layer(x, deterministic=True), mean_layer))  # evaluation
    True
  """

  def __init__(
      self,
      in_features: int,
      out_features: int,
      *,
      rate: float,
      rngs: nnx.Rngs,
      use_bias: bool = True,
      per_example: bool = False,
      deterministic: bool | None = False,
      kernel_init: Initializer | None = None,
      bias_init: Initializer | None = None,
      param_dtype: jax.typing.DTypeLike = jnp.float32,
      rng_collection: str = "dropout",
  ):
    _check_scalar_in_range("rate", rate, low_inclusive=True, high=1.0, high_inclusive=False)
    _checks.check_int("in_features", in_features)
    _checks.check_int("out_features", out_features)
    kernel_init = kernel_init or nnx.initializers.lecun_normal()
    bias_init = bias_init or nnx.initializers.zeros_init()
    self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features),
                                        param_dtype))
    self.bias: nnx.Param[jax.Array] | None
    if use_bias:
      self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype))
    else:
      self.bias = nnx.data(None)
    self.in_features = in_features
    self.out_features = out_features
    self.rate = float(rate)
    self.per_example = per_example
    self._init_stochastic(deterministic, rngs, rng_collection)

  def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None,
               rngs: nnx.Rngs | nnx.RngStream | PRNGKey | None = None) -> jax.Array:
    """Applies the layer to the last axis of ``inputs``.

    Args:
      inputs: array of shape ``(..., in_features)``.
      deterministic: overrides the constructor's flag when not None.
      rngs: an ``nnx.Rngs``, ``nnx.RngStream`` or PRNG key overriding the stored stream.

    Returns:
      Array of shape ``(..., out_features)``.
    """
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 1 or inputs.shape[-1] != self.in_features:
      raise ValueError(
          f"`inputs` must have last axis {self.in_features}, got shape {inputs.shape}.")
    deterministic = self._is_deterministic(deterministic)
    kernel = self.kernel[...]
    if deterministic or self.rate == 0.0:
      outputs = jnp.tensordot(inputs, kernel, axes=1)
    else:
      key = self._draw(rngs)
      if self.per_example:
        rows = inputs.reshape(-1, self.in_features)
        keys = jax.random.split(key, rows.shape[0])
        outputs = jax.vmap(lambda k, row: row @ dropconnect(k, kernel, self.rate))(keys, rows)
        outputs = outputs.reshape(inputs.shape[:-1] + (self.out_features,))
      else:
        outputs = jnp.tensordot(inputs, dropconnect(key, kernel, self.rate), axes=1)
    if self.bias is not None:
      outputs = outputs + self.bias[...].reshape((1,) * (outputs.ndim - 1) + (-1,))
    return outputs


# ---------------------------------------------------------------------------------------
# Stochastic depth.


def drop_path(key: PRNGKey, branch: jax.typing.ArrayLike,
              survival_prob: jax.typing.ArrayLike) -> jax.Array:
  r"""Keeps each example's residual branch with probability ``survival_prob`` (drop path).

  .. math::
    \tilde f(x)_n = \frac{b_n}{p} f(x)_n, \qquad b_n \sim \text{Bernoulli}(p),

  one draw per example along the leading axis, so :math:`E[\tilde f] = f` and at test
  time the branch is used unchanged (the residual block is ``x + drop_path(key, f(x),
  p)``). Huang et al. (2016) drop without rescaling and multiply by ``p`` at test time;
  the inverted form here is equivalent in expectation.

  Args:
    key: PRNG key.
    branch: floating-point output of the residual branch, leading axis = batch.
    survival_prob: probability ``p`` of keeping the branch, a scalar in ``(0, 1]``. A
      traced value is not checked.

  Returns:
    The masked, rescaled branch with the shape and dtype of ``branch``.

  References:
    Huang, Sun, Liu, Sedra & Weinberger, "Deep Networks with Stochastic Depth",
    ECCV 2016.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from regjax.nn import stochastic
    >>> branch = jnp.ones((6, 3))
    >>> out = stochastic.drop_path(jax.random.key(0), branch, survival_prob=0.5)
    >>> bool(jnp.all((out == 0.0) | (out == 2.0)))  # dropped, or kept and scaled by 1/p
    True
    >>> bool(jnp.all(out == out[:, :1]))  # one draw per example: whole rows
    True
  """
  _check_scalar_in_range("survival_prob", survival_prob, low_inclusive=False, high=1.0,
                         high_inclusive=True)
  branch = jnp.asarray(branch)
  _check_floating("branch", branch)
  if branch.ndim < 1:
    raise ValueError("`branch` needs a leading batch axis, got a scalar.")
  return _drop_path(key, branch, survival_prob)


@jax.jit
def _drop_path(key: jax.Array, branch: jax.Array, survival_prob: jax.Array) -> jax.Array:
  keep_prob = jnp.asarray(survival_prob, dtype=_checks.float_dtype(branch.dtype))
  keep = jax.random.bernoulli(key, keep_prob, (branch.shape[0],) + (1,) * (branch.ndim - 1))
  scale = (1.0 / keep_prob).astype(branch.dtype)
  return jnp.where(keep, branch * scale, jnp.zeros((), branch.dtype))


def linear_survival_schedule(num_blocks: int,
                             final_survival: jax.typing.ArrayLike = 0.5) -> jax.Array:
  r"""Survival probabilities that decay linearly with depth (Huang et al., 2016).

  .. math::
    p_l = 1 - \frac{l}{L} (1 - p_L), \qquad l = 1, \dots, L,

  so the first block almost always survives and the last survives with ``p_L``. With
  ``p_L = 0.5`` the expected number of active blocks is ``(3L - 1) / 4``.

  Args:
    num_blocks: the number ``L`` of residual blocks, a positive Python int.
    final_survival: ``p_L`` in ``(0, 1]`` (0.5 in the paper). A traced value is not
      checked.

  Returns:
    Float array of shape ``(num_blocks,)``: ``p_1, ..., p_L``.

  References:
    Huang, Sun, Liu, Sedra & Weinberger, "Deep Networks with Stochastic Depth",
    ECCV 2016.

  Examples:
    >>> from regjax.nn import stochastic
    >>> survival = stochastic.linear_survival_schedule(4)
    >>> survival.tolist()
    [0.875, 0.75, 0.625, 0.5]
    >>> float(survival.sum())  # (3L - 1) / 4 blocks active on average
    2.75
  """
  num_blocks = _checks.check_int("num_blocks", num_blocks)
  _check_scalar_in_range("final_survival", final_survival, low_inclusive=False, high=1.0,
                         high_inclusive=True)
  dtype = _checks.float_dtype(jnp.result_type(final_survival))
  depth = jnp.arange(1, num_blocks + 1, dtype=dtype) / num_blocks
  return 1.0 - depth * (1.0 - jnp.asarray(final_survival, dtype))


class DropPath(StochasticModule):
  """Stochastic depth for one residual branch: ``x + DropPath(p)(f(x))``.

  Training applies :func:`drop_path`; evaluation returns the branch unchanged. The
  ``deterministic``/``rngs`` conventions are those of ``nnx.Dropout``. Build a network
  with ``[DropPath(float(p), rngs=rngs) for p in linear_survival_schedule(L)]``.

  Args:
    survival_prob: probability of keeping the branch, a Python float in ``(0, 1]``.
    deterministic: if True, identity; if None it must be given at call time.
    rng_collection: the ``nnx.Rngs`` stream the masks come from.
    rngs: ``nnx.Rngs`` or ``nnx.RngStream`` to fork, or None to pass keys at call time.

  References:
    Huang, Sun, Liu, Sedra & Weinberger, "Deep Networks with Stochastic Depth",
    ECCV 2016.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax.nn import stochastic
    >>> rngs = nnx.Rngs(0)
    >>> blocks = [stochastic.DropPath(float(p), rngs=rngs)
    ...           for p in stochastic.linear_survival_schedule(3)]
    >>> x = jnp.ones((2, 5))
    >>> for block in blocks:
    ...   x = x + block(jnp.tanh(x))  # residual block with a stochastic branch
    >>> x.shape
    (2, 5)
    >>> branch = jnp.ones((2, 5))
    >>> blocks[0](branch, deterministic=True) is branch  # evaluation: the identity
    True
  """

  def __init__(self, survival_prob: float, *, deterministic: bool | None = False,
               rng_collection: str = "dropout",
               rngs: nnx.Rngs | nnx.RngStream | None = None):
    _check_scalar_in_range("survival_prob", survival_prob, low_inclusive=False, high=1.0,
                           high_inclusive=True)
    self.survival_prob = float(survival_prob)
    self._init_stochastic(deterministic, rngs, rng_collection)

  def __call__(self, branch: jax.Array, *, deterministic: bool | None = None,
               rngs: nnx.Rngs | nnx.RngStream | PRNGKey | None = None) -> jax.Array:
    """Drops the whole branch per example during training; identity at test time."""
    deterministic = self._is_deterministic(deterministic)
    if deterministic or self.survival_prob == 1.0:
      return branch
    key = self._draw(rngs)
    return drop_path(key, branch, self.survival_prob)


# ---------------------------------------------------------------------------------------
# Input-space regularizers: cutout, mixup, cutmix.


def _box_mask(start: jax.Array, size: jax.Array, length: int) -> jax.Array:
  """``[..., length]`` booleans for ``start <= i < start + size`` (clipped implicitly)."""
  start = jnp.expand_dims(start, -1)
  positions = jnp.arange(length).reshape((1,) * (start.ndim - 1) + (length,))
  return (positions >= start) & (positions < start + size)


def cutout(key: PRNGKey, images: jax.typing.ArrayLike,
           size: int | jax.typing.ArrayLike) -> jax.Array:
  r"""Sets one random ``size x size`` square of each image to zero (Cutout).

  For each image the square's center ``(r, c)`` is drawn uniformly over the pixel grid
  and the rows ``r - size // 2, ..., r - size // 2 + size - 1`` (columns likewise) are
  zeroed in every channel. The square may extend past the border and is clipped there,
  as in the paper, so near a border fewer than ``size**2`` pixels are zeroed. Cutout is
  a training-time augmentation; at test time images are used unchanged.

  Args:
    key: PRNG key.
    images: NHWC batch of any numeric dtype.
    size: side of the square in pixels, a positive integer. A traced integer is allowed
      (e.g. under ``vmap`` over sizes) and is not checked.

  Returns:
    The images with the squares zeroed, same shape and dtype.

  References:
    DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with
    Cutout", arXiv:1708.04552, 2017.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from regjax.nn import stochastic
    >>> images = jnp.ones((3, 6, 6, 2))
    >>> out = stochastic.cutout(jax.random.key(0), images, size=2)
    >>> zeroed = (out == 0).all(axis=-1).sum(axis=(1, 2))  # every channel of a pixel
    >>> bool(jnp.all((zeroed >= 1) & (zeroed <= 4)))  # at most 2 x 2, fewer at a border
    True
  """
  _checks.check_int("size", size, allow_traced=True)
  images = jnp.asarray(images)
  _check_images(images)
  return _cutout(key, images, size)


@jax.jit
def _cutout(key: jax.Array, images: jax.Array, size: jax.Array) -> jax.Array:
  batch, height, width, _ = images.shape
  key_row, key_col = jax.random.split(key)
  center_row = jax.random.randint(key_row, (batch,), 0, height)
  center_col = jax.random.randint(key_col, (batch,), 0, width)
  rows = _box_mask(center_row - size // 2, size, height)
  cols = _box_mask(center_col - size // 2, size, width)
  inside = rows[:, :, None, None] & cols[:, None, :, None]
  return jnp.where(inside, jnp.zeros((), images.dtype), images)


def _check_batch(images: jax.Array, labels: jax.Array) -> jax.Array:
  if labels.ndim < 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(
        f"`labels_onehot` must have the batch size {images.shape[0]} of the inputs as "
        f"its leading axis, got shape {labels.shape}.")
  if not jnp.issubdtype(labels.dtype, jnp.floating):
    labels = labels.astype(_checks.float_dtype(labels.dtype))
  return labels


def _mix(lam: jax.Array, first: jax.Array, second: jax.Array) -> jax.Array:
  lam = lam.astype(first.dtype)
  return lam * first + (1 - lam) * second


def mixup(
    key: PRNGKey,
    inputs: jax.typing.ArrayLike,
    labels_onehot: jax.typing.ArrayLike,
    alpha: jax.typing.ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""Blends each example with another example of the batch (mixup).

  .. math::
    \tilde x = \lambda x + (1 - \lambda) x_{\pi}, \quad
    \tilde y = \lambda y + (1 - \lambda) y_{\pi}, \quad
    \lambda \sim \text{Beta}(\alpha, \alpha),

  with one :math:`\lambda` per call (per batch, as in the paper's code) and
  :math:`\pi` a random permutation of the batch. Train with
  :func:`soft_target_cross_entropy` on the mixed targets; test on clean inputs.

  Args:
    key: PRNG key.
    inputs: floating-point batch, leading axis = batch.
    labels_onehot: one-hot (or soft) targets with the same leading axis; integer labels
      are cast to float.
    alpha: Beta concentration ``> 0``. A traced value is not checked.

  Returns:
    ``(mixed_inputs, mixed_targets, lam)``; the first two keep the shape and dtype of
    ``inputs`` and (float) ``labels_onehot``, ``lam`` is a float scalar.

  References:
    Zhang, Cisse, Dauphin & Lopez-Paz, "mixup: Beyond Empirical Risk Minimization",
    ICLR 2018.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from regjax.nn import stochastic
    >>> inputs, labels = jnp.ones((4, 3)), jnp.eye(4)
    >>> x, y, lam = stochastic.mixup(jax.random.key(0), inputs, labels, alpha=0.2)
    >>> x.shape, y.shape, lam.shape
    ((4, 3), (4, 4), ())
    >>> bool(jnp.allclose(y.sum(axis=-1), 1.0))  # mixed targets are still distributions
    True
  """
  _check_scalar_in_range("alpha", alpha, low_inclusive=False, high=None, high_inclusive=True)
  inputs = jnp.asarray(inputs)
  _check_floating("inputs", inputs)
  if inputs.ndim < 1:
    raise ValueError("`inputs` needs a leading batch axis, got a scalar.")
  labels = _check_batch(inputs, jnp.asarray(labels_onehot))
  return _mixup(key, inputs, labels, alpha)


@jax.jit
def _mixup(key: jax.Array, inputs: jax.Array, labels: jax.Array,
           alpha: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  key_lam, key_perm = jax.random.split(key)
  lam = jax.random.beta(key_lam, alpha, alpha, dtype=_checks.float_dtype(inputs.dtype))
  perm = jax.random.permutation(key_perm, inputs.shape[0])
  return _mix(lam, inputs, inputs[perm]), _mix(lam, labels, labels[perm]), lam


def cutmix(
    key: PRNGKey,
    images: jax.typing.ArrayLike,
    labels_onehot: jax.typing.ArrayLike,
    alpha: jax.typing.ArrayLike = 1.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""Pastes a random box from another image of the batch into each image (CutMix).

  Draw :math:`\lambda \sim \text{Beta}(\alpha, \alpha)` and a box of height
  :math:`\lfloor H\sqrt{1-\lambda}\rfloor` and width :math:`\lfloor W\sqrt{1-\lambda}
  \rfloor` centered at a uniform pixel (one box per call, shared by the batch), clipped
  to the image. Inside the box image ``n`` takes the pixels of image ``pi(n)``. The
  targets are mixed by the area actually pasted,

  .. math::
    \lambda' = 1 - \frac{\text{box area after clipping}}{HW}, \qquad
    \tilde y = \lambda' y + (1 - \lambda') y_{\pi}.

  Args:
    key: PRNG key.
    images: NHWC batch of any numeric dtype.
    labels_onehot: one-hot (or soft) targets, leading axis = batch; integer labels are
      cast to float.
    alpha: Beta concentration ``> 0`` (1.0, a uniform ``lambda``, in the paper). A traced
      value is not checked.

  Returns:
    ``(mixed_images, mixed_targets, lam)`` where ``lam`` is the area-corrected
    :math:`\lambda'`, the weight of each image's own label.

  References:
    Yun, Han, Oh, Chun, Choe & Yoo, "CutMix: Regularization Strategy to Train Strong
    Classifiers with Localizable Features", ICCV 2019.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from regjax.nn import stochastic
    >>> images, labels = jnp.ones((4, 8, 8, 3)), jnp.eye(4)
    >>> x, y, lam = stochastic.cutmix(jax.random.key(0), images, labels)
    >>> x.shape, y.shape
    ((4, 8, 8, 3), (4, 4))
    >>> bool(jnp.allclose(y.sum(axis=-1), 1.0)), 0.0 <= float(lam) <= 1.0
    (True, True)
  """
  _check_scalar_in_range("alpha", alpha, low_inclusive=False, high=None, high_inclusive=True)
  images = jnp.asarray(images)
  _check_images(images)
  labels = _check_batch(images, jnp.asarray(labels_onehot))
  return _cutmix(key, images, labels, alpha)


@jax.jit
def _cutmix(key: jax.Array, images: jax.Array, labels: jax.Array,
            alpha: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  batch, height, width, _ = images.shape
  key_lam, key_perm, key_row, key_col = jax.random.split(key, 4)
  lam = jax.random.beta(key_lam, alpha, alpha)
  perm = jax.random.permutation(key_perm, batch)
  cut_ratio = jnp.sqrt(1.0 - lam)
  cut_height = jnp.floor(height * cut_ratio).astype(jnp.int32)
  cut_width = jnp.floor(width * cut_ratio).astype(jnp.int32)
  center_row = jax.random.randint(key_row, (), 0, height)
  center_col = jax.random.randint(key_col, (), 0, width)
  row0 = center_row - cut_height // 2
  col0 = center_col - cut_width // 2
  rows = _box_mask(row0, cut_height, height)
  cols = _box_mask(col0, cut_width, width)
  inside = (rows[:, None] & cols[None, :])[None, :, :, None]
  mixed = jnp.where(inside, images[perm], images)
  pasted = (jnp.clip(row0 + cut_height, 0, height) - jnp.clip(row0, 0, height)) * (
      jnp.clip(col0 + cut_width, 0, width) - jnp.clip(col0, 0, width))
  lam_area = 1.0 - pasted.astype(lam.dtype) / (height * width)
  return mixed, _mix(lam_area, labels, labels[perm]), lam_area


def soft_target_cross_entropy(logits: jax.typing.ArrayLike,
                              targets: jax.typing.ArrayLike) -> jax.Array:
  r"""Cross-entropy against soft targets, per example: :math:`-\sum_k y_k \log
  \text{softmax}(z)_k`.

  A thin alias of ``optax.softmax_cross_entropy``, named for its use with
  :func:`mixup`/:func:`cutmix`: the loss is linear in the targets, so the loss of a
  mixed target is the same mix of the two losses.

  Args:
    logits: ``(..., num_classes)`` unnormalized scores.
    targets: ``(..., num_classes)`` probabilities (rows summing to 1).

  Returns:
    Losses of shape ``(...)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.nn import stochastic
    >>> loss = stochastic.soft_target_cross_entropy(jnp.zeros((2, 4)), jnp.eye(4)[:2])
    >>> [round(value, 4) for value in loss.tolist()]  # log 4: uniform scores
    [1.3863, 1.3863]
  """
  return optax.softmax_cross_entropy(logits, targets)

