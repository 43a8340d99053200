r"""The orthogonality family as a gradient transformation, with lazy (every-k) steps.

Public through :func:`regjax.transforms.orthogonality` (and ``regjax.orthogonality``);
the penalties themselves are pure functions in :mod:`regjax.penalties`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import custom_batching

from regjax import _checks, _trees, penalties
from regjax._transform_base import (
  Checked,
  leafwise,
  masked_transform,
  need_params,
  zero_count,
)
from regjax._trees import MATRICES
from regjax.penalties import MODES, ORTHOGONALITY
from regjax.typing import Mask, Strength


class OrthogonalityState(NamedTuple):
  r"""State of :func:`orthogonality`: the step count and the spectral kind's vectors.

  Examples:
    For :math:`W = \operatorname{diag}(2, 1)`, :math:`W^\top W - I = \operatorname{diag}(3, 0)`:
    one power-iteration step reaches its top eigenvector :math:`v = (1, 0)`, and the
    update adds :math:`\lambda \cdot 2 (W v) v^\top`, 0.4 in the corner.

    >>> import jax.numpy as jnp, regjax
    >>> tx = regjax.orthogonality(0.1, kind="spectral", mask=None)
    >>> w = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    >>> updates, state = tx.update(jnp.zeros_like(w), tx.init(w), w)
    >>> int(state.count), state.vectors
    (1, Array([1., 0.], dtype=float32))
    >>> updates
    Array([[0.4, 0. ],
           [0. , 0. ]], dtype=float32)
  """

  # shape=(), dtype=int32: steps taken so far; due when count % every == 0.
  # (The field shadows tuple.count, as in Optax.)
  count: jax.Array  # type: ignore[assignment]
  vectors: Any  # spectral kind: one power-iteration vector per leaf (None where λ is None).


def _check_matrices(params: Any, strengths: Any) -> None:
  def check(path, leaf, lam):
    if _trees.is_leaf(leaf) or lam is None:
      return
    if jnp.ndim(leaf) < 2:
      raise ValueError(
          f"orthogonality needs matrices or conv kernels, but the `mask` selects "
          f"{jax.tree_util.keystr(path) or 'a leaf'} of shape {jnp.shape(leaf)}; "
          "leave 1-D leaves out of the mask."
      )

  jax.tree_util.tree_map_with_path(check, params, strengths, is_leaf=_trees.is_leaf)


@custom_batching.custom_vmap
def _due_in_any_row(due: jax.Array) -> jax.Array:
  """``due`` itself; under ``vmap``, whether any row is due, as an unbatched bool.

  An unbatched predicate keeps ``lax.cond`` a real branch under ``vmap`` (a batched one
  turns it into a select that computes both branches), so the skipped steps of a sweep,
  whose rows share the step counter, stay cheap.
  """
  return due


@_due_in_any_row.def_vmap
def _due_in_any_row_vmap(axis_size: int, in_batched: list[bool], due: jax.Array):
  del axis_size
  return (jnp.any(due) if in_batched[0] else due), False


def orthogonality(
    strength: Strength,
    kind: str = "soft",
    mode: str = "auto",
    mask: Mask = MATRICES,
    num_iterations: int = 1,
    every: int = 1,
) -> optax.GradientTransformation:
  r"""Adds :math:`\lambda \nabla R(W)` for a penalty of the orthogonality family.

  ``kind`` is one of ``"soft"`` (:math:`\|W^\top W - I\|_F^2`), ``"double_soft"``,
  ``"decorrelation"``, ``"mutual_coherence"`` or ``"spectral"`` (SRIP,
  :math:`\sigma_{\max}(W^\top W - I)`); see :mod:`regjax.penalties`. Goes **first**,
  before the optimizer's scaling, like a loss term. The spectral kind keeps one
  power-iteration vector per leaf in its state and advances it ``num_iterations`` times
  per step with matrix-vector products only (no Gram, no SVD), so its cost is
  :math:`O(nm)` per kernel; the other kinds form a Gram, :math:`O(nm\min(n, m))`.
  Leaves whose strength is ``None`` (``masks.per_layer(..., default=None)``) are skipped.

  *Lazy regularization* (``every=k``, as StyleGAN2 does for its R1 penalty): on step
  :math:`t` (the transform's own counter, from 0)

  .. math:: g_t \leftarrow g_t + [t \bmod k = 0]\; k \lambda \nabla R(W_t),

  the same penalty gradient on average at about :math:`1/k` of its cost: the other
  steps take the untouched branch of a ``lax.cond`` and compute no Gram. The spectral
  kind advances its vector on the due steps only and keeps it across the others. Under
  ``jax.vmap`` (a sweep over strengths) the branch stays a branch: the due test is made
  unbatched (any row due; rows that are not due add zero), so skipped steps stay cheap
  there too, also when the step counter itself is vmapped. ``every=1`` is the plain
  transform, bit for bit.

  Args:
    strength: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree (``None``
      leaves are skipped).
    kind: which penalty.
    mode: ``"columns"``, ``"rows"`` or ``"auto"``; ``"double_soft"`` uses both sides and
      accepts only ``"auto"``.
    mask: Optax mask; the default selects the leaves :func:`regjax.masks.matrices`
      selects, ``ndim >= 2``. Selecting a 1-D leaf raises a ``ValueError`` at ``init``.
    num_iterations: power-iteration steps per update (spectral kind only).
    every: apply the penalty, scaled by ``every``, on one step in ``every`` (a positive
      int; a traced integer scalar is taken as is).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`OrthogonalityState`.

  Examples:
    >>> import jax.numpy as jnp, regjax
    >>> w = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # ∇‖WᵀW − I‖² = 4W(WᵀW − I) = [[24, 0], [0, 0]]
    >>> tx = regjax.orthogonality(0.5, every=4)
    >>> state, added = tx.init(w), []
    >>> for _ in range(5):
    ...   updates, state = tx.update(jnp.zeros_like(w), state, w)
    ...   added.append(float(updates[0, 0]))
    >>> added  # 4 · 0.5 · 24 on steps 0 and 4, nothing between
    [48.0, 0.0, 0.0, 0.0, 48.0]

  References:
    Bansal, Chen & Wang, "Can we gain more from orthogonality regularizations in training
    deep CNNs?", NeurIPS 2018. Karras et al., "Analyzing and improving the image quality
    of StyleGAN" (lazy regularization), CVPR 2020.
  """
  _checks.check_choice("kind", kind, tuple(ORTHOGONALITY))
  _checks.check_choice("mode", mode, MODES)
  if kind == "double_soft" and mode != "auto":
    raise ValueError(f"`mode` must be 'auto' for kind='double_soft' (both sides), got {mode!r}.")
  _checks.check_int("num_iterations", num_iterations, allow_traced=True)
  checked = Checked.check("strength", strength)
  every = _checks.check_int("every", every, allow_traced=True)
  if kind == "double_soft":
    penalty = ORTHOGONALITY[kind]
  else:
    penalty = functools.partial(ORTHOGONALITY[kind], mode=mode)
  spectral = kind == "spectral"

  def start_vector(p, lam):
    if lam is None:
      return None
    # The vector lives in the Gram's dtype: float32, or float64 for float64 params.
    shape = jax.eval_shape(functools.partial(penalties.gram, mode=mode), p)
    return jax.random.normal(jax.random.key(0), shape.shape[:1], shape.dtype)

  def init_fn(params):
    _checks.check_float_params("params", params)
    strengths = checked.match(params)
    _check_matrices(params, strengths)
    vectors = leafwise(start_vector, params, strengths) if spectral else None
    return OrthogonalityState(count=zero_count(), vectors=vectors)

  def penalized(updates, params, strengths, vectors):
    """``(g + λ∇R(p), vectors)``; the spectral vectors advanced one update."""
    if not spectral:
      new = leafwise(
          lambda g, p, lam: g if lam is None else (g + lam * jax.grad(penalty)(p)).astype(
              g.dtype),
          updates, params, strengths,
      )
      return new, None

    vectors = leafwise(
        lambda p, v: None if v is None else penalties.spectral_vector(
            p, v, mode, num_iterations),
        params, vectors,
    )

    def leaf(g, p, lam, v):
      if lam is None:
        return g
      grad = jax.grad(lambda w: penalties.spectral_orthogonality(w, mode, 0, v))(p)
      return (g + lam * grad).astype(g.dtype)

    return leafwise(leaf, updates, params, strengths, vectors), vectors

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    need_params(params)
    strengths = checked.per_leaf(state.count, updates)
    if isinstance(every, int) and every == 1:
      new, vectors = penalized(updates, params, strengths, state.vectors)
      return new, OrthogonalityState(count=optax.safe_increment(state.count), vectors=vectors)

    due = state.count % every == 0  # batched only where the counter is vmapped
    weight = jnp.where(due, every, 0)

    def due_step():
      scaled = jax.tree.map(lambda lam: lam * weight, strengths)
      new, vectors = penalized(updates, params, scaled, state.vectors)
      # Rows not due (only when rows' counters differ) keep their vector.
      return new, jax.tree.map(lambda a, b: jnp.where(due, a, b), vectors, state.vectors)

    new, vectors = jax.lax.cond(
        _due_in_any_row(due), due_step, lambda: (updates, state.vectors))
    return new, OrthogonalityState(count=optax.safe_increment(state.count), vectors=vectors)

  return masked_transform(init_fn, update_fn, mask)

