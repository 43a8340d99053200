r"""Optax gradient transformations built on :mod:`regjax.prox` and :mod:`regjax.penalties`.

Where a transform sits in an ``optax.chain`` decides what it means, so each docstring
says where it goes:

- *before* the optimizer's scaling (like ``optax.add_decayed_weights``):
  :func:`add_penalty_gradient`, :func:`orthogonality` — they add :math:`\lambda\nabla R(p)`
  to the gradient, so the optimizer rescales it (Adam preconditions it).
- *last*, after ``scale_by_learning_rate`` (the updates are already the step
  :math:`-\eta g`): :func:`proximal`, :func:`decoupled_weight_decay`, :func:`project`.
- :func:`preconditioned_proximal` takes raw gradients: it is a whole Adam step.

Strengths and learning rates are ``float``, JAX scalars (traced values are fine, which is
what lets ``jax.vmap`` train a grid of strengths), Optax schedules ``step -> value``, or,
for strengths, a pytree with one value per parameter leaf (per-layer λ, see
:func:`regjax.masks.per_layer`). Schedules are evaluated at the transform's own step
counter, starting at 0, like Optax's.

Strength trees and masks are matched to the parameters by path (``layers/0/kernel``),
whatever the containers: an ``nnx.State`` of ``nnx.Param`` wrappers, its raw arrays,
``nnx.to_pure_dict`` or a plain dict; masks follow Optax (a tree of bools, a prefix of
the parameter tree, or a callable). Concrete values are checked when the transform is
built; a traced strength that is negative or NaN turns the step into NaN, so a sweep
reports the row as failed instead of silently anti-regularizing. ``update`` never reads
values on the host: NaN updates are not checked here (use the sweep's failed-row flags,
``optax.apply_if_finite`` or ``jax.config.update("jax_debug_nans", True)``), and it
accepts extra keyword arguments, like ``optax.GradientTransformationExtraArgs``.

Every factory works with ``optax.inject_hyperparams``; no default argument is callable
(``inject_hyperparams`` takes callables for schedules), so a callable you pass that is
not a schedule (``prox_fn``, a callable ``mask``) goes in ``static_args``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import custom_batching

from regjax import _checks, _trees, penalties
from regjax.penalties import MODES, ORTHOGONALITY

ProxFn = Callable[[jax.Array, jax.Array], jax.Array]
DEFAULT_MASK = _trees.MATRICES  # leaves with ndim >= 2; not callable (inject_hyperparams)


class ScheduleState(NamedTuple):
  """State of a transform whose strengths may be schedules."""

  count: jax.Array  # shape=(), dtype=int32: steps taken so far.


class PreconditionedProximalState(NamedTuple):
  """State of :func:`preconditioned_proximal`."""

  count: jax.Array  # shape=(), dtype=int32: steps taken so far.
  adam: optax.ScaleByAdamState  # Optax's own first and second moments.


class OrthogonalityState(NamedTuple):
  """State of :func:`orthogonality`."""

  count: jax.Array  # shape=(), dtype=int32: steps taken so far; due when count % every == 0.
  vectors: Any  # spectral kind: one power-iteration vector per leaf (None where λ is None).


def _zero_count() -> jax.Array:
  return jnp.zeros([], jnp.int32)


def _need_params(params: Any) -> None:
  if params is None:
    raise ValueError(
        "this transform needs the current parameters: call `update(updates, state, params)`."
    )


def _schedule_init(strength: Any, name: str = "strength") -> Callable[[Any], ScheduleState]:
  """``init`` of a transform whose only state is the step counter for its schedules."""

  def init_fn(params):
    _checks.check_float_params("params", params)
    _trees.broadcast_strength(strength, params, name)
    return ScheduleState(count=_zero_count())

  return init_fn


def _strengths_at(strength: Any, count: jax.Array, tree: Any, name: str = "strength") -> Any:
  """The strength (schedules evaluated at ``count``) as one value per leaf of ``tree``,
  matched by path; negative or NaN values become NaN (see the module docstring)."""
  resolved = _trees.broadcast_strength(_checks.resolve_schedule(strength, count), tree, name)
  return _trees.nan_if_negative(resolved)


def _transform(init_fn: Callable[..., Any], update_fn: Callable[..., Any],
               mask: Any = None) -> optax.GradientTransformationExtraArgs:
  """The transform, wrapped in ``optax.masked`` with regjax's one mask resolver."""
  transform = optax.GradientTransformationExtraArgs(init_fn, update_fn)
  if mask is None:
    return transform
  return optax.masked(transform, functools.partial(_trees.resolve_mask, mask))


def _leafwise(fn: Callable[..., Any], updates: Any, *trees: Any) -> Any:
  """Map ``fn`` over leaves, passing masked-out (``MaskedNode``/``None``) leaves through."""

  def leaf(u, *rest):
    return u if _trees.is_leaf(u) else fn(u, *rest)

  return jax.tree.map(leaf, updates, *trees, is_leaf=_trees.is_leaf)


def proximal(
    prox_fn: ProxFn,
    strength: Any,
    learning_rate: optax.ScalarOrSchedule,
    mask: Any = None,
) -> optax.GradientTransformation:
  r"""Proximal step: maps an update ``u`` to ``prox(p + u, η_t λ) − p``.

  .. math:: p_{t+1} = \operatorname{prox}_{\eta_t \lambda R}(p_t + u_t)

  Goes **last** in a chain, after ``scale_by_learning_rate`` (``u = −η g``), and
  ``learning_rate`` must be the one that chain used, so the threshold is
  :math:`\eta_t\lambda`. With SGD this is proximal gradient descent (ISTA) on
  :math:`L(p) + \lambda R(p)`. Parameters that the prox sets to zero are exactly 0.0
  after ``optax.apply_updates``.

  Args:
    prox_fn: ``prox_fn(x, threshold) -> array``, e.g. :func:`regjax.prox.l1` or
      ``functools.partial(regjax.prox.group_l2, axis=0)``.
    strength: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree.
    learning_rate: :math:`\eta_t`, the chain's learning rate (float or schedule).
    mask: Optax mask (tree of bools or callable); unselected leaves pass through.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScheduleState`.

  Examples:
    Proximal gradient descent (ISTA): the L1 prox after an SGD step.

    >>> import jax.numpy as jnp, optax, regjax
    >>> tx = optax.chain(optax.sgd(0.1), regjax.proximal(regjax.prox.l1, 1.0, 0.1))
    >>> params = jnp.array([0.05, -2.0])
    >>> updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
    >>> optax.apply_updates(params, updates)  # threshold 0.1 * 1.0
    Array([ 0. , -1.9], dtype=float32)

  References:
    Parikh & Boyd, "Proximal Algorithms", 2014, §4.2.
  """
  _checks.check_number_tree("strength", strength)
  _checks.check_number_tree("learning_rate", learning_rate)

  init_fn = _schedule_init(strength)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    _need_params(params)
    rate = _checks.resolve_schedule(learning_rate, state.count)
    strengths = _strengths_at(strength, state.count, updates)

    def leaf(u, p, lam):
      if lam is None:
        return u
      z = prox_fn(p + u, rate * lam)
      return (z - p).astype(u.dtype)

    new = _leafwise(leaf, updates, params, strengths)
    return new, ScheduleState(count=optax.safe_increment(state.count))

  return _transform(init_fn, update_fn, mask)


def _accepts_metric(prox_fn: Callable[..., Any]) -> bool:
  """Whether ``prox_fn`` takes a ``metric=`` keyword (True when it has no signature)."""
  try:
    parameters = inspect.signature(prox_fn).parameters.values()
  except (TypeError, ValueError):  # a builtin or C function: leave it to the call
    return True
  return any(p.name == "metric" or p.kind is p.VAR_KEYWORD for p in parameters)


def preconditioned_proximal(
    prox_fn: ProxFn,
    strength: Any,
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mask: Any = None,
    decoupled: bool = False,
) -> optax.GradientTransformation:
  r"""Adam step followed by a prox in Adam's own diagonal metric (ProxGen).

  .. math::
     d_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}, \qquad
     p_{t+1} = \arg\min_z \; \lambda R(z) + \tfrac12 (z - p_t + \eta_t d_t)^\top D_t
     (z - p_t + \eta_t d_t), \qquad D_t = \operatorname{diag}\Big(
     \frac{\sqrt{\hat v_t} + \epsilon}{\eta_t}\Big)

  The prox is taken in the metric of Adam's step, so coordinates and groups reach exactly
  zero without giving up the adaptive step. ``prox_fn`` receives ``metric=`` (it is
  called as ``prox_fn(x, η_t λ, metric=√v̂_t + ε)``, the same problem scaled by
  :math:`\eta_t`): every :mod:`regjax.prox` operator takes it. For a separable penalty
  (``prox.l1``, ``prox.l0``, ``prox.nonneg_l1``, ``prox.elastic_net``) this is the plain
  prox with the per-coordinate threshold :math:`\eta_t\lambda/(\sqrt{\hat v_t}+\epsilon)`;
  for ``prox.group_l2`` and ``prox.sparse_group`` (e.g. ``functools.partial(prox.group_l2,
  axis=0)``) whole units are zeroed in Adam's metric, a group being zero when
  :math:`\|D_g x_g\|_2 \le \lambda`. A ``prox_fn`` without a ``metric`` keyword raises a
  ``TypeError`` here.

  **Coordinates without gradient.** Where :math:`\hat v_t = 0` (the embedding row of a
  token absent from every batch, the weights of a dead unit) the threshold is
  :math:`\eta_t\lambda/\epsilon`: with the default :math:`\epsilon = 10^{-8}` and
  :math:`\lambda = 10^{-8}` such weights shrink by :math:`\eta_t` per step. Measured
  (``tests/test_prox_metric.py``): at ``learning_rate=1e-3``, ``strength=1e-8``, the row
  of an 8×4 embedding table (drawn with scale 0.1, largest entry 0.203) whose token never
  appears in the batches is exactly zero from step 203 on, while the rows of the tokens
  seen keep every weight; with ``decoupled=True`` that row has not moved after 300 steps.
  That is the paper's method and the default.
  ``decoupled=True`` instead takes the Euclidean prox with threshold
  :math:`\eta_t\lambda`, the L1 counterpart of AdamW's decoupled decay: it equals
  ``optax.chain(optax.adam(η, b1, b2, eps), proximal(prox_fn, λ, η))``, leaves untouched
  weights alone at small λ, and accepts any ``prox_fn(x, threshold)``.

  It takes **raw gradients**: it is a whole optimizer (Optax's ``scale_by_adam`` plus the
  prox), so only gradient-processing transforms (clipping) may precede it. With
  ``strength=0`` and an identity-at-zero prox it equals ``optax.adam``. Unselected leaves
  (``mask``) take the plain Adam step.

  Args:
    prox_fn: ``prox_fn(x, threshold, metric=None) -> array``, e.g. :func:`regjax.prox.l1`
      or ``functools.partial(regjax.prox.group_l2, axis=0)``; with ``decoupled=True``
      any ``prox_fn(x, threshold)``.
    strength: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree.
    learning_rate: :math:`\eta_t` (float or schedule).
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    eps: Adam's :math:`\epsilon`, also in the metric.
    mask: Optax mask of the leaves that get the prox.
    decoupled: take the Euclidean prox with threshold :math:`\eta_t\lambda` instead of
      the prox in Adam's metric.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`PreconditionedProximalState`.

  References:
    Yun, Lozano & Yang, "Adaptive proximal gradient methods for structured neural
    networks" (ProxGen), NeurIPS 2021; Loshchilov & Hutter, "Decoupled weight decay
    regularization", ICLR 2019, for the decoupled variant.
  """
  _checks.check_number_tree("strength", strength)
  _checks.check_number_tree("learning_rate", learning_rate)
  _checks.check_number_tree("b1", b1, high=1.0, high_inclusive=False, allow_callable=False)
  _checks.check_number_tree("b2", b2, high=1.0, high_inclusive=False, allow_callable=False)
  _checks.check_number_tree("eps", eps)
  if not decoupled and not _accepts_metric(prox_fn):
    raise TypeError(
        f"`prox_fn` {prox_fn!r} takes no `metric=` keyword, so it cannot be taken in Adam's "
        "metric (ProxGen). Use a regjax.prox operator, give yours a `metric=None` keyword "
        "(the diagonal d of argmin_z λR(z) + ½(z − x)ᵀdiag(d)(z − x)), or pass "
        "decoupled=True for the Euclidean prox with threshold learning_rate·strength."
    )
  adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

  def init_fn(params):
    _checks.check_float_params("params", params)
    _trees.broadcast_strength(strength, params)
    _trees.resolve_mask(mask, params)
    return PreconditionedProximalState(count=_zero_count(), adam=adam.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    _need_params(params)
    directions, adam_state = adam.update(updates, state.adam, params)
    nu_hat = optax.tree.bias_correction(adam_state.nu, b2, adam_state.count)
    rate = _checks.resolve_schedule(learning_rate, state.count)
    strengths = _strengths_at(strength, state.count, params)
    selected = _trees.resolve_mask(mask, params)

    def leaf(d, p, v, lam, keep):
      if d is None:  # no array here (e.g. an Equinox module's non-array field)
        return None
      moved = p - rate * d
      if keep and lam is not None:
        if decoupled:
          moved = prox_fn(moved, rate * lam)
        else:
          moved = prox_fn(moved, rate * lam, metric=jnp.sqrt(v) + eps)
      return (moved - p).astype(p.dtype)

    new = jax.tree.map(leaf, directions, params, nu_hat, strengths, selected,
                       is_leaf=_trees.is_leaf)
    return new, PreconditionedProximalState(
        count=optax.safe_increment(state.count), adam=adam_state
    )

  return _transform(init_fn, update_fn)


def decoupled_weight_decay(
    rate: Any,
    learning_rate: optax.ScalarOrSchedule | None = None,
    target: Any = None,
    mask: Any = DEFAULT_MASK,
) -> optax.GradientTransformation:
  r"""Weight decay applied to the step itself, independent of the gradient's scaling.

  .. math:: u \leftarrow u - s_t\,\lambda\,(p - p_0), \qquad
     s_t = \eta_t \text{ (lr-coupled)} \text{ or } 1 \text{ (independent)}

  Goes **last** in a chain, after ``scale_by_learning_rate``. With ``learning_rate``
  given it is lr-coupled, the AdamW of Optax and PyTorch: ``chain(scale_by_adam(),
  scale_by_learning_rate(η), decoupled_weight_decay(λ, η))`` equals
  ``optax.adamw(η, weight_decay=λ)``. With ``learning_rate=None`` the decay does not
  depend on the learning rate at all (a schedule on ``rate`` plays the role of
  Loshchilov & Hutter's multiplier :math:`\eta_t`): with a zero gradient each step
  multiplies :math:`p - p_0` by exactly :math:`1 - \lambda`. ``target`` :math:`p_0`
  decays toward pretrained weights (L2-SP).

  Args:
    rate: :math:`\lambda \ge 0`; float, JAX scalar, schedule, or a per-leaf tree.
    learning_rate: the chain's learning rate for lr-coupled decay, or None.
    target: a tree like the params (e.g. pretrained weights), or None for zero.
    mask: Optax mask; the default selects leaves with ``ndim >= 2`` so biases and
      normalization scales are not decayed. ``None`` decays every leaf.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScheduleState`.

  Examples:
    Independent of the learning rate: with a zero step, kernels shrink by ``1 - rate``
    and biases (1-D) are left alone by the default mask.

    >>> import jax, jax.numpy as jnp, optax, regjax
    >>> tx = regjax.decoupled_weight_decay(0.1)
    >>> params = {"kernel": jnp.full((1, 2), 2.0), "bias": jnp.ones(2)}
    >>> zero = jax.tree.map(jnp.zeros_like, params)
    >>> updates, _ = tx.update(zero, tx.init(params), params)
    >>> optax.apply_updates(params, updates)
    {'bias': Array([1., 1.], dtype=float32), 'kernel': Array([[1.8, 1.8]], dtype=float32)}

  References:
    Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019;
    Li, Grandvalet & Davoine, "Explicit inductive bias for transfer learning with
    convolutional networks" (L2-SP), ICML 2018.
  """
  _checks.check_number_tree("rate", rate)
  if learning_rate is not None:
    _checks.check_number_tree("learning_rate", learning_rate)

  def init_fn(params):
    _checks.check_float_params("params", params)
    _trees.broadcast_strength(rate, params, "rate")
    if target is not None:
      _trees.match("target", target, params)
    return ScheduleState(count=_zero_count())

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    _need_params(params)
    scale = 1.0 if learning_rate is None else _checks.resolve_schedule(
        learning_rate, state.count
    )
    rates = _strengths_at(rate, state.count, updates, "rate")
    anchors = jax.tree.map(lambda _: None, updates, is_leaf=_trees.is_leaf) if (
        target is None) else _trees.match("target", target, updates)

    def leaf(u, p, lam, p0):
      if lam is None:
        return u
      offset = p if p0 is None else p - p0
      return (u - scale * lam * offset).astype(u.dtype)

    new = _leafwise(leaf, updates, params, rates, anchors)
    return new, ScheduleState(count=optax.safe_increment(state.count))

  return _transform(init_fn, update_fn, mask)


def add_penalty_gradient(
    penalty: Callable[[jax.Array], jax.Array],
    strength: Any,
    mask: Any = None,
) -> optax.GradientTransformation:
  r"""Adds :math:`\lambda \nabla R(p)` to the gradient, as if ``λ·R(p)`` were in the loss.

  .. math:: g \leftarrow g + \lambda \nabla R(p)

  Goes **first**, before the optimizer's scaling. With ``penalties.l1`` this is the
  subgradient method (``sign(p)``, 0 at 0), which rarely lands on exact zeros; prefer
  :func:`proximal` for sparsity.

  Args:
    penalty: ``array -> scalar``, differentiable almost everywhere.
    strength: :math:`\lambda`; float, JAX scalar, schedule, or a per-leaf tree.
    mask: Optax mask; ``None`` selects every leaf.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScheduleState`.
  """
  _checks.check_number_tree("strength", strength)
  gradient = jax.grad(penalty)

  init_fn = _schedule_init(strength)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    _need_params(params)
    strengths = _strengths_at(strength, state.count, updates)

    def leaf(g, p, lam):
      if lam is None:
        return g
      return (g + lam * gradient(p).astype(g.dtype)).astype(g.dtype)

    new = _leafwise(leaf, updates, params, strengths)
    return new, ScheduleState(count=optax.safe_increment(state.count))

  return _transform(init_fn, update_fn, mask)


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
    strength: Any,
    kind: str = "soft",
    mode: str = "auto",
    mask: Any = DEFAULT_MASK,
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
    mask: Optax mask; the default selects leaves with ``ndim >= 2``. Selecting a 1-D leaf
      raises a ``ValueError`` at ``init``.
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
  _checks.check_number_tree("strength", strength)
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
    strengths = _trees.broadcast_strength(strength, params)
    _check_matrices(params, strengths)
    vectors = _leafwise(start_vector, params, strengths) if spectral else None
    return OrthogonalityState(count=_zero_count(), vectors=vectors)

  def penalized(updates, params, strengths, vectors):
    """``(g + λ∇R(p), vectors)``; the spectral vectors advanced one update."""
    if not spectral:
      new = _leafwise(
          lambda g, p, lam: g if lam is None else (g + lam * jax.grad(penalty)(p)).astype(
              g.dtype),
          updates, params, strengths,
      )
      return new, None

    vectors = _leafwise(
        lambda p, v: None if v is None else penalties.spectral_vector(
            p, v, mode, num_iterations),
        params, vectors,
    )

    def leaf(g, p, lam, v):
      if lam is None:
        return g
      grad = jax.grad(lambda w: penalties.spectral_orthogonality(w, mode, 0, v))(p)
      return (g + lam * grad).astype(g.dtype)

    return _leafwise(leaf, updates, params, strengths, vectors), vectors

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    _need_params(params)
    strengths = _strengths_at(strength, state.count, updates)
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

  return _transform(init_fn, update_fn, mask)


def project(
    projection: Callable[[jax.Array], jax.Array], mask: Any = None
) -> optax.GradientTransformation:
  r"""Constraint after the step: maps an update ``u`` to ``projection(p + u) − p``.

  .. math:: p_{t+1} = \Pi_C(p_t + u_t)

  Goes **last** in a chain. Examples: ``project(functools.partial(prox.max_norm,
  max_value=3.0))`` (max-norm per unit), ``project(optax.projections.projection_non_negative)``,
  ``project(prox.orthonormal, mask=masks.matrices)`` (hard orthogonality by polar
  retraction, kernels only; pass ``functools.partial(prox.orthonormal, method="qr")`` for
  the cheaper QR retraction). The orthonormal projection needs matrices, so give it a
  mask that leaves biases out.

  Args:
    projection: ``array -> array`` onto the constraint set.
    mask: Optax mask; ``None`` selects every leaf.

  Returns:
    An ``optax.GradientTransformation`` with ``optax.EmptyState``.

  Examples:
    >>> import jax.numpy as jnp, optax, regjax
    >>> tx = regjax.project(optax.projections.projection_non_negative)
    >>> params = jnp.array([0.5, 0.25])
    >>> updates, _ = tx.update(jnp.array([-1.0, 0.5]), tx.init(params), params)
    >>> optax.apply_updates(params, updates)
    Array([0.  , 0.75], dtype=float32)

  References:
    Projected gradient descent; Absil, Mahony & Sepulchre, 2008, for retractions.
  """
  if not callable(projection):
    raise TypeError(f"`projection` must be a function array -> array, got {projection!r}.")

  def init_fn(params):
    _checks.check_float_params("params", params)
    return optax.EmptyState()

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    _need_params(params)
    new = _leafwise(lambda u, p: (projection(p + u) - p).astype(u.dtype), updates, params)
    return new, state

  return _transform(init_fn, update_fn, mask)
