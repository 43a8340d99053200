"""Small Flax NNX models for the embedded digits: an MLP and a two-layer ConvNet.

Both record their hidden activations (after the nonlinearity) with
``self.sow(nnx.Intermediate, "hidden_{i}", h)`` so a loss can regularize embeddings::

    logits, acts = nnx.capture(model, nnx.Intermediate)(x)
    h_last = acts[f"hidden_{len(model.hidden_features) - 1}"][0]

Activations are sown only while ``nnx.capture`` is active. Called plainly, ``model(x)``
returns logits and leaves the model's state untouched; this matters because a sow
outside a capture (deprecated since Flax 0.12) attaches a new ``Intermediate``
attribute that grows on every call, which would change the model's graph inside a
training loop. On a Flax without ``nnx.capture`` the old behaviour applies and
``nnx.pop(model, nnx.Intermediate)`` collects the activations.

The models hold no Python state besides their configuration, so
``nnx.split``/``nnx.merge`` and ``jax.vmap`` over a leading axis of their state (one
model per strength or seed) work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from flax import nnx

from regjax import _checks
from regjax.typing import Activation

__all__ = ["ConvNet", "MLP"]

_HAS_CAPTURE = hasattr(nnx, "capture")


def _sow_hidden(module: nnx.Module, index: int, value: jax.Array) -> None:
  # nnx.capture marks every module it runs with a `__captures__` store for the duration
  # of the call; outside of it a sow would mutate the model (see the module docstring).
  if not _HAS_CAPTURE or hasattr(module, "__captures__"):
    module.sow(nnx.Intermediate, f"hidden_{index}", value)


def _check_widths(name: str, values: Any) -> tuple[int, ...]:
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
    raise TypeError(f"`{name}` must be a sequence of ints, got {values!r}.")
  return tuple(_checks.check_int(f"{name}[{i}]", v) for i, v in enumerate(values))


class MLP(nnx.Module):
  r"""A multilayer perceptron returning logits.

  .. math:: h_0 = x, \quad h_{i+1} = \sigma(h_i W_i + b_i), \quad
            \text{logits} = h_L W_L + b_L

  Kernels use Flax's layout ``(in, out)``: hidden unit ``j`` of layer ``i`` is column
  ``layers[i].kernel[:, j]`` plus ``layers[i].bias[j]``, and its outgoing weights are row
  ``layers[i + 1].kernel[j, :]``.

  Attributes:
    layers: ``nnx.List`` of ``nnx.Linear``, ``len(hidden_features) + 1`` of them.
    hidden_features: widths of the hidden layers.
    activation: the elementwise nonlinearity ``sigma``.

  Args:
    in_features: input dimension (64 for the flattened digits).
    hidden_features: widths of the hidden layers; empty gives a linear model.
    out_features: number of logits.
    rngs: ``nnx.Rngs`` used to initialise the kernels.
    activation: elementwise nonlinearity applied after every hidden layer.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax.nn import models
    >>> model = models.MLP(4, [8, 8], 3, rngs=nnx.Rngs(0))
    >>> x = jnp.ones((5, 4))
    >>> model(x).shape
    (5, 3)
    >>> logits, hidden = nnx.capture(model, nnx.Intermediate)(x)  # the embeddings too
    >>> sorted(hidden), hidden["hidden_1"][0].shape
    (['hidden_0', 'hidden_1'], (5, 8))
  """

  def __init__(
      self,
      in_features: int,
      hidden_features: Sequence[int],
      out_features: int,
      *,
      rngs: nnx.Rngs,
      activation: Activation = nnx.relu,
  ):
    in_features = _checks.check_int("in_features", in_features)
    self.hidden_features = _check_widths("hidden_features", hidden_features)
    out_features = _checks.check_int("out_features", out_features)
    if not callable(activation):
      raise TypeError(f"`activation` must be callable, got {activation!r}.")
    self.activation = activation
    widths = (in_features, *self.hidden_features, out_features)
    self.layers = nnx.List(
        [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
    )

  @property
  def in_features(self) -> int:
    return self.layers[0].in_features

  @property
  def out_features(self) -> int:
    return self.layers[-1].out_features

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits of shape ``(*batch, out_features)`` for inputs ``(*batch, in_features)``.

    Sows ``hidden_{i}`` (post-activation, shape ``(*batch, hidden_features[i])``) for
    every hidden layer when run under ``nnx.capture(..., nnx.Intermediate)``.
    """
    h = x
    for i, layer in enumerate(self.layers[:-1]):
      h = self.activation(layer(h))
      _sow_hidden(self, i, h)
    return self.layers[-1](h)


class ConvNet(nnx.Module):
  r"""Convolutions with SAME padding, then a linear read-out of the flattened maps.

  .. math:: h_0 = x, \quad h_{i+1} = \sigma(\mathrm{conv}(h_i, K_i) + b_i), \quad
            \text{logits} = \mathrm{flatten}(h_L) W + b

  Inputs are NHWC, ``(*batch, height, width, in_features)``. There is no pooling, so
  every feature map keeps the image size and the read-out has
  ``height * width * hidden_features[-1]`` inputs, in row-major NHWC order (channel
  fastest). Kernels use Flax's layout ``(kh, kw, in, out)``: filter ``c`` of conv ``i``
  is ``convs[i].kernel[..., c]``.

  Attributes:
    convs: ``nnx.List`` of ``nnx.Conv``.
    head: the final ``nnx.Linear``.
    hidden_features: number of channels of each conv.
    image_shape: ``(height, width)``.
    activation: the elementwise nonlinearity ``sigma``.

  Args:
    in_features: input channels (1 for the digits).
    hidden_features: channels of each conv layer (at least one).
    out_features: number of logits.
    image_shape: ``(height, width)`` of the inputs.
    kernel_size: spatial size of every filter.
    rngs: ``nnx.Rngs`` used to initialise the kernels.
    activation: elementwise nonlinearity applied after every conv.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax.nn import models
    >>> model = models.ConvNet(1, [4], 10, image_shape=(8, 8), rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 8, 8, 1))).shape
    (2, 10)
    >>> model.head.in_features  # 8 * 8 pixels * 4 channels, flattened NHWC
    256
  """

  def __init__(
      self,
      in_features: int = 1,
      hidden_features: Sequence[int] = (8, 16),
      out_features: int = 10,
      *,
      image_shape: Sequence[int] = (8, 8),
      kernel_size: Sequence[int] = (3, 3),
      rngs: nnx.Rngs,
      activation: Activation = nnx.relu,
  ):
    in_features = _checks.check_int("in_features", in_features)
    self.hidden_features = _check_widths("hidden_features", hidden_features)
    if not self.hidden_features:
      raise ValueError("`hidden_features` must name at least one conv layer, got ().")
    out_features = _checks.check_int("out_features", out_features)
    self.image_shape = _check_widths("image_shape", image_shape)
    self.kernel_size = _check_widths("kernel_size", kernel_size)
    if len(self.image_shape) != 2 or len(self.kernel_size) != 2:
      raise ValueError(
          f"`image_shape` and `kernel_size` must have 2 entries, got {self.image_shape} "
          f"and {self.kernel_size}."
      )
    if not callable(activation):
      raise TypeError(f"`activation` must be callable, got {activation!r}.")
    self.activation = activation
    channels = (in_features, *self.hidden_features)
    self.convs = nnx.List(
        [
            nnx.Conv(a, b, self.kernel_size, padding="SAME", rngs=rngs)
            for a, b in zip(channels[:-1], channels[1:], strict=True)
        ]
    )
    height, width = self.image_shape
    self.head = nnx.Linear(height * width * channels[-1], out_features, rngs=rngs)

  @property
  def in_features(self) -> int:
    return self.convs[0].in_features

  @property
  def out_features(self) -> int:
    return self.head.out_features

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``(*batch, out_features)`` for NHWC inputs ``(*batch, h, w, in_features)``.

    Sows ``hidden_{i}`` (post-activation feature maps ``(*batch, h, w, channels_i)``)
    for every conv when run under ``nnx.capture(..., nnx.Intermediate)``.
    """
    if x.ndim < 3 or x.shape[-3:] != (*self.image_shape, self.in_features):
      raise ValueError(
          f"`x` must have shape (*batch, {self.image_shape[0]}, {self.image_shape[1]}, "
          f"{self.in_features}), got {x.shape}."
      )
    batch = x.shape[:-3]
    # nnx.Conv wants exactly one batch axis; fold any number of them into it.
    h = x.reshape((-1, *x.shape[-3:]))
    for i, conv in enumerate(self.convs):
      h = self.activation(conv(h))
      _sow_hidden(self, i, h.reshape((*batch, *h.shape[1:])))
    return self.head(h.reshape((*batch, -1)))
