"""Argument checks and NNX random-stream helpers shared by the stochastic modules."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from regjax import _checks
from regjax.typing import PRNGKey

# What a stochastic layer's constructor forks, and what its call may override it with.
_RngSource = nnx.Rngs | nnx.RngStream | None
_CallRngs = nnx.Rngs | nnx.RngStream | PRNGKey | None

# ---------------------------------------------------------------------------------------
# Argument checks.


def _check_scalar(name: str, value: Any) -> None:
  if jnp.ndim(value) != 0:
    raise ValueError(f"`{name}` must be a scalar, got an array of shape {jnp.shape(value)}.")


def _check_scalar_in_range(name: str, value: Any, *, low_inclusive: bool,
                           high: float | None, high_inclusive: bool) -> None:
  """Range check with a choice of open or closed lower bound at 0."""
  _checks.check_number_tree(name, value, low=0.0, high=high, high_inclusive=high_inclusive,
                            allow_callable=False)
  _check_scalar(name, value)
  if not low_inclusive and _checks.is_concrete(value) and np.asarray(value) <= 0:
    raise ValueError(f"`{name}` must be > 0, got {np.asarray(value).item()!r}.")


def _check_floating(name: str, array: jax.Array) -> None:
  if not jnp.issubdtype(array.dtype, jnp.floating):
    raise TypeError(f"`{name}` must be a floating-point array, got dtype {array.dtype}.")


def _check_images(images: jax.Array) -> None:
  if images.ndim != 4:
    raise ValueError(
        f"`images` must be a 4-D NHWC batch (batch, height, width, channels), "
        f"got shape {images.shape}.")


# ---------------------------------------------------------------------------------------
# NNX plumbing shared by the modules here and in ``regjax.gates``: the same conventions
# as ``nnx.Dropout`` (a forked ``RngStream``, a ``deterministic`` attribute that
# ``model.train()``/``model.eval()``/``nnx.view`` set, call-time overrides).


def _fork_rng_stream(rngs: _RngSource, collection: str) -> nnx.RngStream | None:
  if isinstance(rngs, nnx.Rngs):
    return rngs[collection].fork()
  if isinstance(rngs, nnx.RngStream):
    return rngs.fork()
  if rngs is None:
    return nnx.data(None)
  raise TypeError(f"`rngs` must be an nnx.Rngs, nnx.RngStream or None, got {type(rngs)}.")


def _resolve_deterministic(call_value: bool | None, stored: bool | None, owner: str) -> bool:
  if call_value is not None:
    return call_value
  if stored is not None:
    return stored
  raise ValueError(
      f"{owner} needs `deterministic`: pass it to the constructor or the call, or use "
      "model.train() / model.eval().")


def _draw_key(call_rngs: _CallRngs, stored: nnx.RngStream | None, collection: str,
              owner: str) -> PRNGKey:
  rngs = call_rngs if call_rngs is not None else stored
  if rngs is None:
    raise ValueError(
        f"{owner} is in training mode but has no `rngs`: pass `rngs` to the constructor "
        "or the call.")
  if isinstance(rngs, nnx.Rngs):
    return rngs[collection]()
  if isinstance(rngs, nnx.RngStream):
    return rngs()
  if isinstance(rngs, jax.Array):
    return rngs
  raise TypeError(
      f"`rngs` must be an nnx.Rngs, nnx.RngStream or a PRNG key, got {type(rngs)}.")


class StochasticModule(nnx.Module):
  """Base of the stochastic NNX layers: ``nnx.Dropout``'s conventions, written once.

  A subclass calls :meth:`_init_stochastic` in its constructor, then in ``__call__``
  :meth:`_is_deterministic` (the call's flag, else the stored one) and :meth:`_draw`
  (a key from the call's ``rngs``, else the forked stream). ``model.train()``,
  ``model.eval()`` and ``nnx.view(model, deterministic=...)`` reach :meth:`set_view`.
  """

  def _init_stochastic(self, deterministic: bool | None, rngs: _RngSource,
                       rng_collection: str) -> None:
    self.deterministic = deterministic
    self.rng_collection = rng_collection
    self.rngs = _fork_rng_stream(rngs, rng_collection)

  def _is_deterministic(self, deterministic: bool | None) -> bool:
    return _resolve_deterministic(deterministic, self.deterministic, type(self).__name__)

  def _draw(self, rngs: _CallRngs) -> PRNGKey:
    return _draw_key(rngs, self.rngs, self.rng_collection, type(self).__name__)

  def set_view(self, deterministic: bool | None = None) -> None:
    """Used by ``nnx.view``, ``model.train()`` and ``model.eval()``.

    Args:
      deterministic: if True, the layer is in evaluation mode (no randomness).
    """
    if deterministic is not None:
      self.deterministic = deterministic
