"""Conformance fuzzer: every regjax transform against its Optax or closed-form counterpart.

Hypothesis draws a parameter tree (nested dicts, lists and tuples; ``None`` and bfloat16
leaves, and integer leaves where the transform leaves them alone), a mask (``None``, the
default, a tree of bools, a prefix of one, a callable), a strength (a number, a JAX or
NumPy scalar, a per-leaf tree or a prefix of one with per-coordinate arrays, or any Optax
schedule family, many of them ending at 0) and a learning rate (a number or a schedule),
sometimes through ``optax.inject_hyperparams``. Both sides run 20 steps in one jitted
``lax.scan``, the way a training loop runs, and the parameters must agree to a tolerance.
The reference is Optax's own optimizer where one exists (``optax.adamw``), otherwise
Optax's upstream step followed by the closed form of the regularizer, leaf by leaf, from
the selection and strengths the strategies drew (not from regjax's resolver).

Bad inputs (a mask or strength tree with an entry that names no parameter, or missing
one; a negative, NaN, string or boolean strength; a schedule that turns negative; a
strength array of the wrong shape; an integer leaf the transform would touch; a 1-D leaf
given to orthogonality) must raise the error class Optax raises on the same input
(``optax.masked`` for masks) or, where Optax has no counterpart, the documented one.

Each good example compiles one program, which dominates on CPU, so the default profile
runs a few per transform, derandomized so CI is deterministic. A deeper run:
``pytest tests/test_conformance.py --hypothesis-profile=long``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import regjax
from regjax import penalties, prox

STEPS = 20
LONG = settings.get_current_profile_name() == "long"


def _settings(default_examples: int) -> settings:
  return settings(
      max_examples=settings.default.max_examples if LONG else default_examples,
      derandomize=not LONG,
      deadline=None,
      suppress_health_check=list(HealthCheck),
      print_blob=True,
  )


class Box:
  """A value the strategies attach to a node of a tree: a pytree leaf whatever it holds."""

  def __init__(self, value: Any):
    self.value = value

  def __repr__(self) -> str:
    return f"Box({self.value!r})"


def _at(box: Box, t: jax.Array) -> Any:
  value = box.value
  return value(t) if callable(value) else value


def _broadcast(prefix: Any, params: Any) -> Any:
  """A tree like ``params`` holding, per leaf, the ``Box`` of ``prefix`` above it.

  JAX's own prefix broadcasting (``jax.tree.map`` with a prefix tree first), not
  regjax's path resolver, so the reference is independent of the code under test.
  """
  return jax.tree.map(lambda box, sub: jax.tree.map(lambda _: box, sub), prefix, params)


# ---------------------------------------------------------------------------- strategies

KEYS = ["a", "b", "kernel", "bias", "scale", "w"]
SHAPES = [(3,), (2, 3), (3, 2), (2, 2, 3), ()]


def _leaf(draw, ints: bool) -> Any:
  roll = draw(st.integers(0, 19))
  if roll == 0:
    return None
  dtype = jnp.bfloat16 if roll == 1 else jnp.int32 if (ints and roll == 2) else jnp.float32
  shape = draw(st.sampled_from(SHAPES))
  values = np.random.default_rng(draw(st.integers(0, 2**16))).normal(size=shape)
  return jnp.asarray(np.round(3 * values) if dtype == jnp.int32 else values, dtype)


def _node(draw, depth: int, ints: bool) -> Any:
  kind = draw(st.sampled_from(["leaf", "leaf", "dict", "list", "tuple"] if depth < 2 else
                              ["leaf"]))
  if kind == "leaf":
    return _leaf(draw, ints)
  n = draw(st.integers(1, 3))
  children = [_node(draw, depth + 1, ints) for _ in range(n)]
  if kind == "dict":
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=n, max_size=n, unique=True))
    return dict(zip(keys, children, strict=True))
  return children if kind == "list" else tuple(children)


@st.composite
def param_trees(draw, ints: bool = False) -> dict[str, Any]:
  """A dict of subtrees with at least one float32 leaf."""
  keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
  tree = {key: _node(draw, 1, ints) for key in keys}
  if not any(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(tree)):
    tree["w"] = jnp.asarray(np.linspace(-1.0, 1.5, 6).reshape(2, 3), jnp.float32)
  return tree


def _prefix_of_dict(draw, tree: dict, collapse: float, value: Callable[[Any], Any]) -> dict:
  """A prefix of the dict ``tree`` (the dict itself kept) with ``Box`` leaves."""
  return {key: _prefix(draw, node, collapse, value) for key, node in tree.items()}


def _prefix(draw, node: Any, collapse: float, value: Callable[[Any], Any]) -> Any:
  """A prefix of ``node`` whose leaves are ``Box(value(subtree))``."""
  containers = (dict, list, tuple)
  if isinstance(node, containers) and draw(st.floats(0, 1)) >= collapse:
    if isinstance(node, dict):
      return {k: _prefix(draw, v, collapse, value) for k, v in node.items()}
    children = [_prefix(draw, v, collapse, value) for v in node]
    return children if isinstance(node, list) else tuple(children)
  return Box(value(node))


def _unbox(tree: Any) -> Any:
  return jax.tree.map(lambda box: box.value, tree)


@dataclasses.dataclass
class Drawn:
  """What the user passes, and what it means per leaf (for the reference)."""

  value: Any  # passed to regjax
  per_leaf: Any  # a tree like params of Box(...)
  fault: type[Exception] | None = None  # the error class bad input must raise
  form: str = ""


@st.composite
def masks(draw, params: Any, has_default: bool, fault: str | None) -> Drawn:
  forms = ["none", "tree", "prefix", "callable"] + (["default"] if has_default else [])
  form = draw(st.sampled_from(forms)) if fault is None else draw(st.sampled_from(
      ["tree", "prefix"]))
  if form == "default":
    return Drawn(regjax.masks.matrices,
                 jax.tree.map(lambda p: Box(jnp.ndim(p) >= 2), params), form=form)
  if form == "none":
    return Drawn(None, jax.tree.map(lambda p: Box(True), params), form=form)
  prefix = _prefix_of_dict(draw, params, 0.0 if form in ("tree", "callable") else 0.5,
                           lambda _: draw(st.booleans()))
  per_leaf = _broadcast(prefix, params)
  mask = _unbox(prefix)
  error = None
  if fault == "mask_extra":
    mask = {**mask, "typo": True}
    error = ValueError
  elif fault == "mask_missing":
    mask = dict(list(mask.items())[1:])
    error = ValueError
  if form == "callable":
    full = mask
    mask = lambda tree: full  # noqa: E731
  return Drawn(mask, per_leaf, error, form)


@st.composite
def schedules(draw, peak: float) -> Callable[[Any], Any]:
  """A schedule from one of Optax's families (most end at 0), or a plain lambda."""
  top = draw(st.sampled_from([0.0, peak, peak / 3, peak / 30]))
  n = draw(st.integers(1, 25))
  end = draw(st.sampled_from([0.0, 0.0, top / 10]))
  family = draw(st.sampled_from([
      "constant", "linear", "polynomial", "cosine", "warmup_cosine", "exponential",
      "warmup_exponential", "piecewise_constant", "piecewise_interpolate", "onecycle",
      "join", "sgdr", "warmup_constant", "lambda"]))
  if family == "constant":
    return optax.constant_schedule(top)
  if family == "linear":
    return optax.linear_schedule(top, end, n, transition_begin=draw(st.integers(0, 3)))
  if family == "polynomial":
    return optax.polynomial_schedule(top, end, draw(st.sampled_from([0.5, 1, 2])), n)
  if family == "cosine":
    return optax.cosine_decay_schedule(top, n, alpha=draw(st.sampled_from([0.0, 0.1])))
  if family == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, top, min(3, n), n + 3, end_value=end)
  if family == "exponential":
    return optax.exponential_decay(top, n, draw(st.sampled_from([0.0, 0.1, 0.5])),
                                   staircase=draw(st.booleans()), end_value=end or None)
  if family == "warmup_exponential":
    return optax.warmup_exponential_decay_schedule(0.0, top, 3, n, 0.5, end_value=end)
  if family == "piecewise_constant":
    return optax.piecewise_constant_schedule(top, {n: 0.5, n + 5: 0.0})
  if family == "piecewise_interpolate":
    return optax.piecewise_interpolate_schedule(
        draw(st.sampled_from(["linear", "cosine"])), top, {3: 1.0, n + 3: 0.0})
  if family == "onecycle":
    make = draw(st.sampled_from([optax.linear_onecycle_schedule, optax.cosine_onecycle_schedule]))
    return make(n + 2, top)
  if family == "join":
    return optax.join_schedules([optax.linear_schedule(top, 0.0, n),
                                 optax.constant_schedule(0.0)], [n])
  if family == "sgdr":
    return optax.sgdr_schedule([dict(init_value=0.0, peak_value=top, warmup_steps=2,
                                     decay_steps=n + 2, end_value=0.0)] * 2)
  if family == "warmup_constant":
    return optax.warmup_constant_schedule(0.0, top, n)
  return lambda count: top * jnp.maximum(1.0 - count / n, 0.0)


def _coordinate_shape(draw, shape: tuple[int, ...], group: bool) -> tuple[int, ...]:
  """A shape that broadcasts to ``shape`` (same rank: the tests raise on rank promotion);
  for a group prox, to its group norms (every axis but the last set to 1)."""
  out = []
  for i, n in enumerate(shape):
    grouped = group and (i < len(shape) - 1 or len(shape) == 1)
    out.append(1 if grouped or draw(st.booleans()) else n)
  return tuple(out)


@st.composite
def strengths(draw, params: Any, peak: float, group: bool, fault: str | None) -> Drawn:
  """A strength and its meaning per leaf; ``fault`` makes it bad in one named way."""
  if fault in ("negative", "nan", "string", "bool", "schedule_negative"):
    value = {"negative": -draw(st.floats(1e-6, 1.0)), "nan": float("nan"), "string": "0.1",
             "bool": True, "schedule_negative": lambda t: peak - 0.01 * t}[fault]
    error = TypeError if fault in ("string", "bool") else ValueError
    return Drawn(value, None, error, fault)
  forms = ["float", "zero", "jax", "numpy", "schedule", "schedule", "tree", "prefix"]
  form = draw(st.sampled_from(forms)) if fault is None else "tree"
  number = draw(st.floats(0.0, peak))
  if form in ("float", "zero", "jax", "numpy", "schedule"):
    value = {"float": number, "zero": 0.0, "jax": jnp.float32(number),
             "numpy": np.float32(number)}.get(form) if form != "schedule" else draw(
                 schedules(peak))
    return Drawn(value, jax.tree.map(lambda p: Box(value), params), form=form)

  def one(node):
    kind = draw(st.sampled_from(["float", "schedule", "none", "array"]))
    if kind == "none":
      return None
    if kind == "schedule":
      return draw(schedules(peak))
    if kind == "array" and isinstance(node, jax.Array):
      shape = _coordinate_shape(draw, node.shape, group)
      return jnp.asarray(np.random.default_rng(draw(st.integers(0, 99))).uniform(
          0.0, peak, size=shape), jnp.float32)
    return draw(st.floats(0.0, peak))

  prefix = _prefix_of_dict(draw, params, 0.0 if form == "tree" else 0.5, one)
  value, error = _unbox(prefix), None
  if fault == "tree_extra":
    value, error = {**value, "typo": 0.1}, ValueError
  elif fault == "shape":
    leaf = next(p for p in jax.tree.leaves(params) if p.dtype == jnp.float32)
    bad = tuple(n + 1 for n in leaf.shape) or (2,)
    value, error = jax.tree.map(lambda p: jnp.full(bad, 0.1) if p is leaf else 0.1,
                                params), ValueError
  return Drawn(value, _broadcast(prefix, params), error, form)


@st.composite
def learning_rates(draw) -> Any:
  if draw(st.booleans()):
    return draw(st.sampled_from([0.02, 0.05, 0.1]))
  return draw(schedules(0.1))


# ---------------------------------------------------------------------------- references

def _soft(z, tau):
  return jnp.sign(z) * jnp.maximum(jnp.abs(z) - tau, 0)


def _group(z, tau):
  axes = tuple(range(z.ndim - 1)) if z.ndim >= 2 else tuple(range(z.ndim))
  norm = jnp.sqrt(jnp.sum(jnp.square(z.astype(jnp.float32)), axis=axes, keepdims=True))
  return jnp.where(norm > tau, 1 - tau / jnp.where(norm > 0, norm, 1), 0) * z


# name -> (regjax prox_fn, closed form (z, threshold) -> prox, is a group prox)
PROXES = {
    "l1": (prox.l1, _soft, False),
    "l2_squared": (prox.l2_squared, lambda z, tau: z / (1 + 2 * tau), False),
    "nonneg_l1": (prox.nonneg_l1, lambda z, tau: jnp.maximum(z - tau, 0), False),
    "elastic_net": (functools.partial(prox.elastic_net, l2_weight=0.5),
                    lambda z, tau: _soft(z, tau) / (1 + tau), False),
    "group_l2": (prox.group_l2, _group, True),
}
# name -> (penalty, closed-form gradient)
GRADIENTS = {
    "l1": (penalties.l1, jnp.sign),
    "l2_squared": (penalties.l2_squared, lambda p: 2 * p),
}


def _leafwise(fn, updates, params, selected, lam, *rest):
  """``fn(u, p, box, *rest)`` on selected leaves with a strength; ``u`` elsewhere."""

  def leaf(u, p, keep, box, *more):
    if not keep.value or box.value is None:
      return u
    return fn(u, p, box, *more).astype(u.dtype)

  return jax.tree.map(leaf, updates, params, selected, lam, *rest)


def _reference(upstream, post=None, pre=None):
  """Optax's ``upstream`` with ``pre(g, p, t)`` before it and ``post(u, p, t, inner)``
  after it, counting steps from 0 like regjax's transforms."""

  def init(params):
    return jnp.zeros([], jnp.int32), upstream.init(params)

  def update(grads, state, params):
    t, inner = state
    if pre is not None:
      grads = pre(grads, params, t)
    updates, inner = upstream.update(grads, inner, params)
    if post is not None:
      updates = post(updates, params, t, inner)
    return updates, (t + 1, inner)

  return optax.GradientTransformation(init, update)


def _rate(learning_rate, t):
  return learning_rate(t) if callable(learning_rate) else learning_rate


@dataclasses.dataclass
class Case:
  """A transform, what it is compared with, and what it accepts."""

  name: str
  peak: float  # largest strength drawn
  has_default: bool  # whether its default mask is "ndim >= 2"
  ints: bool  # whether integer leaves may sit in the tree (unselected)
  options: Callable[..., dict[str, Any]]  # draw -> options
  build: Callable[..., Any]  # (strength, lr, mask kwargs, options) -> regjax tx
  reference: Callable[..., Any]  # (drawn strength, lr, drawn mask, options) -> reference tx
  injectable: tuple[str, tuple[str, ...]] | None = None  # (strength name, static_args)


def _mask_kwargs(mask: Drawn) -> dict[str, Any]:
  return {} if mask.form == "default" else {"mask": mask.value}


def _proximal_case() -> Case:
  def options(draw):
    return {"prox": draw(st.sampled_from(sorted(PROXES)))}

  def build(strength, lr, mask_kwargs, options, injected=False):
    fn = PROXES[options["prox"]][0]
    if injected:
      tx = optax.inject_hyperparams(regjax.proximal, static_args=(
          "prox_fn",) + (("mask",) if callable(mask_kwargs.get("mask")) else ()))(
              prox_fn=fn, strength=strength, learning_rate=lr, **mask_kwargs)
    else:
      tx = regjax.proximal(fn, strength, lr, **mask_kwargs)
    return optax.chain(optax.sgd(lr), tx)

  def reference(strength, lr, mask, options):
    closed = PROXES[options["prox"]][1]

    def post(u, p, t, inner):
      return _leafwise(lambda u, p, box: closed(p + u, _rate(lr, t) * _at(box, t)) - p,
                       u, p, mask.per_leaf, strength.per_leaf)

    return _reference(optax.sgd(lr), post=post)

  return Case("proximal", 1.0, False, True, options, build, reference)


def _prox_sgd_case() -> Case:
  def options(draw):
    momentum = draw(st.sampled_from([None, 0.5, 0.9]))
    return {"momentum": momentum, "nesterov": momentum is not None and draw(st.booleans())}

  def build(strength, lr, mask_kwargs, options, injected=False):
    if injected:  # momentum static: see test_inject_hyperparams_on_mixed_dtypes_fails_as_optax
      static = ("mask",) if callable(mask_kwargs.get("mask")) else ()
      return optax.inject_hyperparams(regjax.prox_sgd, static_args=static + (
          "nesterov", "momentum"))(lr, strength, **options, **mask_kwargs)
    return regjax.prox_sgd(lr, strength, **options, **mask_kwargs)

  def reference(strength, lr, mask, options):
    def post(u, p, t, inner):
      return _leafwise(lambda u, p, box: _soft(p + u, _rate(lr, t) * _at(box, t)) - p,
                       u, p, mask.per_leaf, strength.per_leaf)

    return _reference(optax.sgd(lr, **options), post=post)

  return Case("prox_sgd", 1.0, False, False, options, build, reference)


def _decay_case() -> Case:
  def options(draw):
    return {"coupled": draw(st.booleans())}

  def build(strength, lr, mask_kwargs, options, injected=False):
    coupled = lr if options["coupled"] else None
    factory = regjax.decoupled_weight_decay
    if injected:
      static = ("mask",) if callable(mask_kwargs.get("mask")) else ()
      factory = optax.inject_hyperparams(factory, static_args=static)
    return optax.chain(optax.sgd(lr), factory(strength, coupled, **mask_kwargs))

  def reference(strength, lr, mask, options):
    def post(u, p, t, inner):
      scale = _rate(lr, t) if options["coupled"] else 1.0
      return _leafwise(lambda u, p, box: u - scale * _at(box, t) * p, u, p, mask.per_leaf,
                       strength.per_leaf)

    return _reference(optax.sgd(lr), post=post)

  return Case("decoupled_weight_decay", 0.5, True, True, options, build, reference)


def _penalty_case() -> Case:
  def options(draw):
    return {"penalty": draw(st.sampled_from(sorted(GRADIENTS)))}

  def build(strength, lr, mask_kwargs, options, injected=False):
    penalty = GRADIENTS[options["penalty"]][0]
    factory = regjax.add_penalty_gradient
    if injected:
      static = ("penalty",) + (("mask",) if callable(mask_kwargs.get("mask")) else ())
      factory = optax.inject_hyperparams(factory, static_args=static)
    return optax.chain(factory(penalty, strength, **mask_kwargs), optax.sgd(lr))

  def reference(strength, lr, mask, options):
    gradient = GRADIENTS[options["penalty"]][1]

    def pre(g, p, t):
      return _leafwise(lambda g, p, box: g + _at(box, t) * gradient(p), g, p, mask.per_leaf,
                       strength.per_leaf)

    return _reference(optax.sgd(lr), pre=pre)

  return Case("add_penalty_gradient", 1.0, False, True, options, build, reference)


def _orthogonality_case() -> Case:
  def options(draw):
    return {"mode": draw(st.sampled_from(["auto", "rows", "columns"])),
            "every": draw(st.sampled_from([1, 1, 2]))}

  def build(strength, lr, mask_kwargs, options, injected=False):
    factory = regjax.orthogonality
    if injected:
      static = ("mode", "every") + (("mask",) if callable(mask_kwargs.get("mask")) else ())
      factory = optax.inject_hyperparams(factory, static_args=static)
    return optax.chain(factory(strength, **options, **mask_kwargs), optax.sgd(lr))

  def reference(strength, lr, mask, options):
    every = options["every"]

    def gradient(p):
      w = p.reshape(-1, p.shape[-1]).astype(jnp.float32)
      n, m = w.shape
      rows = options["mode"] == "rows" or (options["mode"] == "auto" and m > n)
      g = 4 * ((w @ w.T - jnp.eye(n)) @ w if rows else w @ (w.T @ w - jnp.eye(m)))
      return g.reshape(p.shape)

    def pre(g, p, t):
      weight = jnp.where(t % every == 0, every, 0)
      return _leafwise(lambda g, p, box: g + weight * _at(box, t) * gradient(p), g, p,
                       mask.per_leaf, strength.per_leaf)

    return _reference(optax.sgd(lr), pre=pre)

  return Case("orthogonality", 0.05, True, True, options, build, reference)


def _prox_adam_case() -> Case:
  def options(draw):
    return {"prox": draw(st.sampled_from(["l1", "l2_squared", "nonneg_l1", "elastic_net"])),
            "decoupled": draw(st.booleans()), "b2": draw(st.sampled_from([0.999, 0.9])),
            "eps": draw(st.sampled_from([1e-8, 1e-3]))}

  def build(strength, lr, mask_kwargs, options, injected=False):
    fn = PROXES[options["prox"]][0]
    kwargs = dict(prox_fn=fn, decoupled=options["decoupled"], b2=options["b2"],
                  eps=options["eps"], **mask_kwargs)
    if injected:
      # Adam's options static: see test_inject_hyperparams_on_mixed_dtypes_fails_as_optax.
      static = ("prox_fn", "decoupled", "b1", "b2", "eps") + (
          ("mask",) if callable(kwargs.get("mask")) else ())
      return optax.inject_hyperparams(regjax.prox_adam, static_args=static)(
          lr, strength, **kwargs)
    return regjax.prox_adam(lr, strength, **kwargs)

  def reference(strength, lr, mask, options):
    closed, b2, eps = PROXES[options["prox"]][1], options["b2"], options["eps"]
    adam = optax.scale_by_adam(b2=b2, eps=eps)

    def post(d, p, t, inner):
      rate = _rate(lr, t)
      moved = jax.tree.map(lambda d, p: p - rate * d, d, p)
      nu_hat = jax.tree.map(lambda v: v / (1 - b2 ** inner.count), inner.nu)

      def prox_step(m, p, box, v):
        metric = 1.0 if options["decoupled"] else jnp.sqrt(v) + eps
        return closed(m, rate * _at(box, t) / metric)

      stepped = _leafwise(prox_step, moved, p, mask.per_leaf, strength.per_leaf, nu_hat)
      return jax.tree.map(lambda z, p: (z - p).astype(p.dtype), stepped, p)

    return _reference(adam, post=post)

  return Case("prox_adam", 0.5, False, False, options, build, reference)


def _adamw_case() -> Case:
  def options(draw):
    return {"coupled": draw(st.booleans()), "b1": draw(st.sampled_from([0.9, 0.0]))}

  def build(strength, lr, mask_kwargs, options, injected=False):
    factory = regjax.adamw
    if injected:
      static = ("coupled", "b1", "b2", "eps") + (
          ("mask",) if callable(mask_kwargs.get("mask")) else ())
      factory = optax.inject_hyperparams(factory, static_args=static)
    return factory(lr, strength, b1=options["b1"], coupled=options["coupled"], **mask_kwargs)

  def reference(strength, lr, mask, options):
    single = not isinstance(strength.value, (dict, list, tuple))
    if single and options["coupled"]:  # Optax's own AdamW, with the mask as a bool tree
      bools = jax.tree.map(lambda box: bool(box.value), mask.per_leaf)
      return optax.adamw(lr, b1=options["b1"], weight_decay=strength.value, mask=bools)

    def post(u, p, t, inner):
      scale = _rate(lr, t) if options["coupled"] else 1.0
      return _leafwise(lambda u, p, box: u - scale * _at(box, t) * p, u, p, mask.per_leaf,
                       strength.per_leaf)

    return _reference(optax.chain(optax.scale_by_adam(b1=options["b1"]),
                                  optax.scale_by_learning_rate(lr)), post=post)

  return Case("adamw", 0.5, True, False, options, build, reference)


def _project_case() -> Case:
  def build(strength, lr, mask_kwargs, options, injected=False):
    return optax.chain(optax.sgd(lr), regjax.project(
        optax.projections.projection_non_negative, **mask_kwargs))

  def reference(strength, lr, mask, options):
    def post(u, p, t, inner):
      return _leafwise(lambda u, p, box: jnp.maximum(p + u, 0) - p, u, p, mask.per_leaf,
                       jax.tree.map(lambda _: Box(1.0), p))

    return _reference(optax.sgd(lr), post=post)

  return Case("project", 1.0, False, True, lambda draw: {}, build, reference)


CASES = {case.name: case for case in (
    _proximal_case(), _prox_sgd_case(), _decay_case(), _penalty_case(),
    _orthogonality_case(), _prox_adam_case(), _adamw_case(), _project_case())}


# --------------------------------------------------------------------------------- driver

def _grads(params, t):
  """A deterministic gradient that changes sign with the step and coordinate and depends
  only mildly on the parameters: Adam divides by sqrt(v̂), so a gradient that depends
  strongly on them would amplify the last-ulp differences of two correct
  implementations past any useful tolerance in 20 steps."""
  def leaf(p):
    if jnp.issubdtype(p.dtype, jnp.integer):
      return jnp.ones_like(p)
    phase = 0.7 * jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape)
    g = 0.5 * jnp.cos(0.3 * t + phase) + 0.1 * p.astype(jnp.float32) + 0.05
    return g.astype(p.dtype)
  return jax.tree.map(leaf, params)


def _train(tx, params):
  def step(carry, t):
    params, state = carry
    updates, state = tx.update(_grads(params, t), state, params)
    return (optax.apply_updates(params, updates), state), None

  return jax.lax.scan(step, (params, tx.init(params)), jnp.arange(STEPS))[0][0]


def _expected_error(case: Case, params, mask: Drawn, strength: Drawn | None) -> type | None:
  """The error class bad input must raise (one fault at most per example)."""
  if (strength and strength.fault) or mask.fault:
    return (strength and strength.fault) or mask.fault
  selected = [bool(box.value) for box in jax.tree.leaves(mask.per_leaf)]
  leaves = jax.tree.leaves(params)
  if any(jnp.issubdtype(p.dtype, jnp.integer) and (keep or not case.ints)
         for p, keep in zip(leaves, selected, strict=True)):
    return TypeError  # float parameters are checked first, whatever the strength
  if case.name == "orthogonality":
    lams = [box.value for box in jax.tree.leaves(strength.per_leaf)]
    if any(keep and lam is not None and p.ndim < 2
           for p, keep, lam in zip(leaves, selected, lams, strict=True)):
      return ValueError
  return None


def _check(case: Case, params, mask: Drawn, strength: Drawn | None, lr, options,
           injected: bool) -> None:
  expected = _expected_error(case, params, mask, strength)
  value = None if strength is None else strength.value
  if expected is not None:
    with pytest.raises(expected):
      tx = case.build(value, lr, _mask_kwargs(mask), options, injected=injected)
      jax.jit(lambda p: _train(tx, p))(params)
    if mask.fault and mask.form != "callable":  # Optax refuses the same mask, alike
      with pytest.raises(expected):
        optax.masked(optax.sgd(0.1), mask.value).init(params)
    return
  ours = case.build(value, lr, _mask_kwargs(mask), options, injected=injected)
  theirs = case.reference(strength, lr, mask, options)
  got, want = jax.jit(lambda p: (_train(ours, p), _train(theirs, p)))(params)
  for path, a, b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(got),
                        jax.tree.leaves(want), strict=True):
    assert a.dtype == b.dtype, path[0]
    tolerance = 6e-2 if a.dtype == jnp.bfloat16 else 2e-4
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=tolerance, atol=tolerance / 5,
                               err_msg=f"{case.name} {jax.tree_util.keystr(path[0])}")


@pytest.mark.parametrize("name", CASES)
@_settings(default_examples=3)
@given(data=st.data())
def test_regjax_matches_its_reference_for_20_jitted_steps(name, data):
  case = CASES[name]
  options = case.options(data.draw)
  group = name == "proximal" and PROXES[options["prox"]][2]
  params = data.draw(param_trees(ints=case.ints), label="params")
  mask = data.draw(masks(params, case.has_default, None), label="mask")
  strength = None if name == "project" else data.draw(
      strengths(params, case.peak, group, None), label="strength")
  lr = data.draw(learning_rates(), label="learning_rate")
  injected = name != "project" and strength.form in (
      "float", "zero", "jax", "numpy", "schedule") and data.draw(st.booleans(), label="inject")
  _check(case, params, mask, strength, lr, options, injected)


FAULTS = ["negative", "nan", "string", "bool", "schedule_negative", "tree_extra", "shape",
          "mask_extra", "mask_missing", "int_selected"]


@pytest.mark.parametrize("fault", FAULTS)
@_settings(default_examples=4)
@given(data=st.data())
def test_bad_input_raises_the_error_optax_raises_or_the_docs_promise(fault, data):
  on_mask, on_params = fault.startswith("mask"), fault == "int_selected"
  names = [n for n, c in CASES.items() if (c.ints if on_params else
                                           on_mask or n != "project")]
  case = CASES[data.draw(st.sampled_from(names), label="transform")]
  options = case.options(data.draw)
  params = data.draw(param_trees(ints=False), label="params")  # one fault at a time
  if on_params:
    params = {**params, "ints": jnp.arange(6, dtype=jnp.int32).reshape(2, 3)}
  if on_params or fault == "shape":  # every leaf selected
    mask = Drawn(None, jax.tree.map(lambda p: Box(True), params), form="none")
  else:
    mask = data.draw(masks(params, case.has_default, fault if on_mask else None), label="mask")
  strength = None if case.name == "project" else data.draw(strengths(
      params, case.peak, False, None if on_mask or on_params else fault), label="strength")
  assert _expected_error(case, params, mask, strength) is not None
  _check(case, params, mask, strength, 0.1, options, injected=False)


# ------------------------------------------------- schedules that anneal a strength to 0

def _with_residue(schedule):
  return lambda count: jnp.where(count >= 15, jnp.float32(-1.04e-8), schedule(count))


ENDING_AT_ZERO = {
    "linear": lambda peak: optax.linear_schedule(peak, 0.0, 15),
    "cosine": lambda peak: optax.cosine_decay_schedule(peak, 15, alpha=0.0),
    "warmup_cosine": lambda peak: optax.warmup_cosine_decay_schedule(0.0, peak, 3, 15,
                                                                     end_value=0.0),
    "exponential": lambda peak: optax.exponential_decay(peak, 5, 0.0),
    "piecewise": lambda peak: optax.piecewise_constant_schedule(peak, {5: 0.5, 10: 0.0}),
    # linear_schedule's own residue (-1.04e-8 from step 15 on, under jit) depends on XLA's
    # code generation: at optimization level 0 (tests/conftest.py) it is exactly 0. This
    # family has it whatever the backend does.
    "linear_with_residue": lambda peak: _with_residue(optax.linear_schedule(peak, 0.0, 15)),
}
KERNELS = {"dense": {"kernel": jnp.asarray(np.linspace(-1.2, 1.0, 12).reshape(4, 3)),
                     "bias": jnp.asarray([0.3, -0.1, 0.05])},
           "head": {"kernel": jnp.asarray(np.linspace(0.9, -0.4, 6).reshape(3, 2))}}


@pytest.mark.parametrize("name", [n for n in CASES if n != "project"])
def test_schedules_that_end_at_zero_match_the_reference_in_a_jitted_scan(name):
  # Under jit, linear_schedule(0.2, 0.0, 15) is -1.04e-8 from step 15 on: a rounding
  # residue that must count as 0, not turn the run into NaN. One program for all five.
  case = CASES[name]
  options = {"proximal": {"prox": "l1"}, "prox_sgd": {"momentum": None, "nesterov": False},
             "decoupled_weight_decay": {"coupled": True},
             "add_penalty_gradient": {"penalty": "l2_squared"},
             "orthogonality": {"mode": "auto", "every": 1},
             "prox_adam": {"prox": "l1", "decoupled": False, "b2": 0.999, "eps": 1e-8},
             "adamw": {"coupled": True, "b1": 0.9}}[name]
  mask = Drawn(regjax.masks.matrices, jax.tree.map(
      lambda p: Box(p.ndim >= 2), KERNELS), form="default") if case.has_default else Drawn(
          None, jax.tree.map(lambda p: Box(True), KERNELS), form="none")
  pairs = {}
  for family, make in ENDING_AT_ZERO.items():
    schedule = make(case.peak)
    strength = Drawn(schedule, jax.tree.map(lambda p, s=schedule: Box(s), KERNELS), form="schedule")
    pairs[family] = (case.build(schedule, 0.05, _mask_kwargs(mask), options),
                     case.reference(strength, 0.05, mask, options))
  results = jax.jit(lambda p: {family: (_train(ours, p), _train(theirs, p))
                               for family, (ours, theirs) in pairs.items()})(KERNELS)
  for family, (got, want) in results.items():
    chex.assert_tree_all_finite(got)
    chex.assert_trees_all_close(got, want, rtol=2e-5, atol=2e-6, custom_message=family)


def test_inject_hyperparams_on_mixed_dtypes_fails_as_optax():
  # optax.inject_hyperparams casts float hyperparameters to the dtype of the first leaf;
  # in a tree that mixes bfloat16 and float32 leaves, Adam's moments or SGD's trace then
  # change dtype inside lax.scan. regjax's optimizers raise exactly where Optax's do (the
  # fuzzer keeps those options static for that reason), and work on one dtype.
  mixed = {"a": jnp.ones(3, jnp.bfloat16), "w": jnp.ones((2, 3))}
  pairs = [(optax.inject_hyperparams(regjax.prox_adam)(0.1, 0.0),
            optax.inject_hyperparams(optax.adam)(0.1)),
           (optax.inject_hyperparams(regjax.prox_sgd, static_args=("nesterov",))(
               0.1, 0.0, momentum=0.5), optax.inject_hyperparams(optax.sgd)(0.1, momentum=0.5)),
           (optax.inject_hyperparams(regjax.adamw)(0.1, 0.0),
            optax.inject_hyperparams(optax.adamw)(0.1, weight_decay=0.0))]
  for ours, theirs in pairs:
    for tx in (ours, theirs):
      with pytest.raises(TypeError, match="carry input and carry output must have equal types"):
        jax.eval_shape(functools.partial(_train, tx), mixed)
    jax.eval_shape(functools.partial(_train, ours), {"a": mixed["a"]})  # one dtype: fine
