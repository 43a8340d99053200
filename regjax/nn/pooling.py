"""Fractional max-pooling (Graham 2014): pseudo-random pooling regions for a non-integer ratio."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from regjax import _checks
from regjax.nn._random import _check_images

# ---------------------------------------------------------------------------------------
# Fractional max-pooling.


def fractional_pooling_sequence(key: jax.Array, input_size: int, output_size: int, *,
                                pseudo_random: bool = True) -> jax.Array:
  r"""Boundaries ``0 = a_0 < a_1 < … < a_{N_out} = N_in`` of fractional pooling.

  With :math:`\alpha = N_{in}/N_{out}` every increment :math:`a_{i+1} - a_i` is
  :math:`\lfloor\alpha\rfloor` or :math:`\lceil\alpha\rceil` (1 or 2 when
  :math:`\alpha < 2`).

  * ``pseudo_random=True``: :math:`a_i = \lceil\alpha(i+u)\rceil - \lceil\alpha u\rceil`,
    :math:`u \sim U(0, 1)` (Graham's formula; subtracting the first term starts the
    sequence at 0, and using the effective ratio :math:`\alpha = N_{in}/N_{out}` makes it
    end exactly at :math:`N_{in}`). Only :math:`\lceil N_{in} u\rceil` affects the
    result, so it is drawn as a uniform integer in ``1..N_in`` and the sequence is
    computed in exact integer arithmetic.
  * ``pseudo_random=False``: the increments are a random permutation of the right
    numbers of :math:`\lfloor\alpha\rfloor` and :math:`\lceil\alpha\rceil`.

  Args:
    key: PRNG key.
    input_size: ``N_in``, a Python int.
    output_size: ``N_out``, a Python int with ``1 <= N_out <= N_in``.
    pseudo_random: pseudo-random (True) or random (False) sequence.

  Returns:
    ``int32`` array of shape ``(output_size + 1,)``.

  References:
    Graham, "Fractional Max-Pooling", arXiv:1412.6071, 2014.
  """
  _checks.check_int("input_size", input_size)
  _checks.check_int("output_size", output_size)
  if output_size > input_size:
    raise ValueError(
        f"`output_size` must be <= input_size={input_size}, got {output_size!r}.")
  return _pooling_sequence(key, int(input_size), int(output_size), bool(pseudo_random))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _pooling_sequence(key: jax.Array, input_size: int, output_size: int,
                      pseudo_random: bool) -> jax.Array:
  if pseudo_random:
    ceil_nu = jax.random.randint(key, (), 1, input_size + 1)
    index = jnp.arange(output_size + 1, dtype=jnp.int32)

    def ceil_div(numerator):
      return -((-numerator) // output_size)

    return ceil_div(input_size * index + ceil_nu) - ceil_div(ceil_nu)
  small, num_large = divmod(input_size, output_size)
  increments = np.full((output_size,), small, dtype=np.int32)
  increments[:num_large] += 1
  increments = jax.random.permutation(key, jnp.asarray(increments))
  return jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(increments)])


def _region_indices(boundaries: jax.Array, input_size: int, overlapping: bool) -> jax.Array:
  """``(N_out, max_len)`` row indices of each region, padded by repeating its last row."""
  output_size = boundaries.shape[0] - 1
  max_len = -(-input_size // output_size) + int(overlapping)
  starts = boundaries[:-1]
  last = boundaries[1:] if overlapping else boundaries[1:] - 1
  last = jnp.minimum(last, input_size - 1)
  # Repeating an element of the region does not change its maximum.
  return jnp.minimum(starts[:, None] + jnp.arange(max_len)[None, :], last[:, None])


def _check_ratio(ratio: Any) -> tuple[float, float]:
  pair = tuple(ratio) if isinstance(ratio, (tuple, list)) else (ratio, ratio)
  if len(pair) != 2:
    raise ValueError(f"`ratio` must be a float or a (height, width) pair, got {ratio!r}.")
  for value in pair:
    if not _checks.is_concrete(value):
      raise TypeError(
          "`ratio` must be a static Python float (it fixes the output shape); mark it "
          "static under jit, e.g. jax.jit(f, static_argnames='ratio').")
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)):
      raise TypeError(f"`ratio` must be a float, got {value!r}.")
    if not (math.isfinite(value) and 1.0 < value < 2.0):
      raise ValueError(f"`ratio` must be in the open interval (1, 2), got {value!r}.")
  return float(pair[0]), float(pair[1])


def fractional_max_pool(
    key: jax.Array,
    images: jax.typing.ArrayLike,
    ratio: float | Sequence[float],
    *,
    pseudo_random: bool = True,
    overlapping: bool = False,
) -> jax.Array:
  r"""Max-pooling by a non-integer factor with random pooling regions (Graham, 2014).

  Output size :math:`N_{out} = \lfloor N_{in}/\text{ratio}\rfloor` per spatial axis.
  Row boundaries ``a`` and column boundaries ``b`` come from
  :func:`fractional_pooling_sequence` with keys ``key_rows, key_cols =
  jax.random.split(key)``; output ``(i, j)`` is the maximum over

  * disjoint regions (default): rows ``a_i .. a_{i+1} - 1`` x columns
    ``b_j .. b_{j+1} - 1``, which tile the image;
  * overlapping regions: rows ``a_i .. a_{i+1}`` x columns ``b_j .. b_{j+1}``
    (neighbours share their boundary row/column; the last region is clipped to the
    image).

  One set of regions is drawn per call and shared by the batch and the channels; for
  independent regions per image ``vmap`` over per-image keys. There is no deterministic
  test mode: Graham (2014) averages the predictions of several draws at test time (or
  use a fixed key).

  The output shape is static (it depends only on ``images.shape`` and ``ratio``), so the
  function jit-compiles with ``ratio``, ``pseudo_random`` and ``overlapping`` static.

  Args:
    key: PRNG key.
    images: NHWC batch of any numeric dtype.
    ratio: the reduction factor in the open interval ``(1, 2)``, or a pair
      ``(ratio_height, ratio_width)``; static Python floats.
    pseudo_random: pseudo-random (True) or random (False) boundaries.
    overlapping: overlapping (True) or disjoint (False) regions.

  Returns:
    Array of shape ``(batch, floor(H/ratio_h), floor(W/ratio_w), channels)`` and the dtype
    of ``images``.

  References:
    Graham, "Fractional Max-Pooling", arXiv:1412.6071, 2014.
  """
  ratio_rows, ratio_cols = _check_ratio(ratio)
  images = jnp.asarray(images)
  _check_images(images)
  _, height, width, _ = images.shape
  # The tiny relative slack keeps e.g. 14 / 1.4 at 10 despite 1.4's binary rounding.
  out_height = math.floor(height / ratio_rows * (1 + 1e-12))
  out_width = math.floor(width / ratio_cols * (1 + 1e-12))
  if out_height < 1 or out_width < 1:
    raise ValueError(
        f"`images` of spatial size {(height, width)} is too small for `ratio` {ratio!r}: "
        "the output would be empty.")
  return _fractional_max_pool(key, images, out_height, out_width, pseudo_random, overlapping)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _fractional_max_pool(key: jax.Array, images: jax.Array, out_height: int, out_width: int,
                         pseudo_random: bool, overlapping: bool) -> jax.Array:
  _, height, width, _ = images.shape
  key_rows, key_cols = jax.random.split(key)
  row_bounds = _pooling_sequence(key_rows, height, out_height, pseudo_random)
  col_bounds = _pooling_sequence(key_cols, width, out_width, pseudo_random)
  row_index = _region_indices(row_bounds, height, overlapping)
  col_index = _region_indices(col_bounds, width, overlapping)
  pooled = jnp.max(images[:, row_index], axis=2)  # (B, H_out, W, C)
  return jnp.max(pooled[:, :, col_index], axis=3)  # (B, H_out, W_out, C)

