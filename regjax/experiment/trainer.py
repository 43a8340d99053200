r"""Flax NNX glue: a pure, vmappable training run for a model and a regjax optimizer.

A :class:`Trainer` turns "build a model, build an optimizer from the hyperparameters,
train for ``steps`` minibatch steps, evaluate" into pure functions of ``(hparams, key)``,
so :func:`regjax.sweep` can run one model per grid point as one ``jit(vmap(...))``:

.. code-block:: python

  trainer = Trainer(
      model=lambda rngs: MLP(64, (64, 64), 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["l1"], mask=regjax.masks.matrices),
      train=train, test=test, steps=1000, eval_every=100)
  result = regjax.sweep(trainer, regjax.grid(l1=jnp.logspace(-5, -2, 12)))

The model is built inside the traced function and split (``nnx.split``) into its
``nnx.Param`` leaves, its random streams (``nnx.RngState``) and every other variable
(e.g. ``nnx.BatchStat``); ``nnx.merge`` rebuilds it in every step. Only the ``Param``
leaves are differentiated, handed to the optimizer, regularized and counted by the
sparsity metrics; batch statistics are carried beside them and updated by the forward
pass in training mode (``model.train()``); evaluation runs in ``model.eval()`` (dropout
off, running statistics). The random streams (``nnx.Dropout``,
:class:`regjax.stochastic.DropConnectLinear`, ...) are reseeded in every step with
``fold_in(rng_key, t)``, one key per stream, where ``rng_key`` comes from the row's key:
each row and each step draws fresh masks, and a run cut into segments draws the same.

Steps run in ``jax.lax.scan``; the minibatch of step ``t`` is drawn with
``fold_in(data_key, t)``, so a run cut into segments (:meth:`Trainer.advance`) is
bit-identical to an uninterrupted one. ``train`` may instead be a host stream of batches
(a generator function or any iterable of NumPy batches, see
:mod:`regjax.experiment.streaming`): every grid point then sees the same batches.

Curves: with ``eval_every=N`` the run records every metric of :meth:`Trainer.evaluate`
each ``N`` steps inside the same compiled scan, into fixed-size buffers of
``steps // N`` entries kept in :class:`TrainState` and written at the absolute
evaluation index, so a run cut into segments records the same curve as one piece.

Losses: ``loss_fn(model, batch, hparams)`` returns the loss or ``(loss, aux)`` (``aux`` a
dict of scalars, reported as ``train_<name>``). The default is softmax cross-entropy for
integer labels and the mean squared error for float targets. ``metrics_fn(model, batch,
hparams) -> dict`` adds held-out metrics. Activation (embedding) regularization: models
record activations with ``self.sow`` (see :mod:`regjax.models`);
``activation_penalties={"hidden_0": (penalties.l1, "act")}`` adds
``hparams["act"] · R(h) / batch`` for the sown activation ``h``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from regjax import _checks, masks, metrics
from regjax.experiment import streaming
from regjax.experiment import sweeps as _sweep
from regjax.experiment.data import Dataset
from regjax.experiment.results import CURVE_PREFIX

Hparams = Mapping[str, jax.Array]
# Every variable that is neither optimized nor a random stream nor a sown activation.
_OTHER = nnx.All(nnx.Not(nnx.Param), nnx.Not(nnx.RngState), nnx.Not(nnx.Intermediate))


class TrainState(NamedTuple):
  """Everything a run needs to continue: pure arrays, so it saves and vmaps."""

  step: jax.Array  # shape=(), int32: steps taken.
  params: Any  # pure dict of the model's nnx.Param values (the optimized leaves).
  model_state: Any  # pure dict of its other variables (nnx.BatchStat, ...).
  opt_state: Any  # the optimizer's state.
  data_key: jax.Array  # uint32 key data; minibatch t uses fold_in(data_key, t).
  rng_key: jax.Array  # uint32 key data; the random streams of step t use fold_in(rng_key, t).
  loss: jax.Array  # shape=(): the last step's training loss (with penalties).
  aux: Any  # dict of the last step's auxiliary outputs of `loss_fn`.
  failed_step: jax.Array  # shape=(), int32: first step with a non-finite loss, or -1.
  curves: Any  # metric -> [steps // eval_every]; NaN until recorded. Empty without curves.


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy against integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def squared_error(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  r"""Mean squared error :math:`\frac{1}{n}\sum_i (y_i - t_i)^2`, targets reshaped to outputs."""
  return jnp.mean((outputs - jnp.reshape(targets, outputs.shape)) ** 2)


def default_loss(model: nnx.Module, batch: Any, hparams: Hparams) -> jax.Array:
  """Cross-entropy for integer labels, mean squared error for float targets.

  ``batch`` is ``(inputs, labels)`` (a :class:`regjax.data.Dataset` slice or a tuple).
  """
  del hparams
  inputs, labels = batch
  outputs = model(inputs)
  if jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
    return cross_entropy(outputs, labels)
  return squared_error(outputs, labels)


class _Axes(dict):
  """The hyperparameters of a row; a missing name lists the grid's axes."""

  def __missing__(self, name: Any) -> Any:
    raise KeyError(f"hparams[{name!r}]: no grid axis is named {name!r}; the grid's axes are "
                   f"{sorted(self)}. Fix the name in the Trainer's functions or the grid.")


def _split_loss(value: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
  if isinstance(value, tuple):
    if len(value) != 2 or not isinstance(value[1], Mapping):
      raise TypeError("`loss_fn` must return a loss or (loss, aux) with aux a dict of scalars.")
    return value[0], dict(value[1])
  return value, {}


def _sown(captured: Any) -> dict[str, jax.Array]:
  """Flattens captured ``nnx.Intermediate`` values to ``{"a/b": first value}``."""
  found: dict[str, jax.Array] = {}

  def walk(prefix: str, node: Any) -> None:
    for name, value in node.items():
      path = f"{prefix}{name}"
      if isinstance(value, Mapping):
        walk(f"{path}/", value)
      else:
        found[path] = value[0]

  walk("", nnx.to_pure_dict(captured))
  return found


def _first(tree: Any) -> Any:
  return jax.tree.leaves(tree)[0]


@dataclasses.dataclass(frozen=True)
class Trainer:
  """A pure training run ``(hparams, key) -> metrics`` for :func:`regjax.sweep`.

  Attributes:
    model: ``rngs -> nnx.Module``.
    optimizer: ``hparams -> optax.GradientTransformation``; strengths come from
      ``hparams`` (traced scalars under a sweep). It sees only the ``nnx.Param`` leaves.
    train: in-memory training data (a :class:`regjax.data.Dataset` or another pytree of
      arrays with a leading example axis; minibatches drawn uniformly with replacement),
      or a host stream of batches: a zero-argument callable returning an iterable (e.g. a
      generator function), or an iterable of batches (pytrees of NumPy arrays with a
      leading batch axis). A stream is read once per sweep chunk, ``steps`` batches.
    test: held-out data for :meth:`evaluate` (metrics ``test_*``).
    steps: minibatch steps of a full run.
    batch_size: examples per step for in-memory data.
    loss_fn: ``(model, batch, hparams) -> loss`` or ``(loss, aux)``; default
      :func:`default_loss`.
    metrics_fn: ``(model, batch, hparams) -> {name: scalar}``, held-out metrics computed
      in eval mode on ``test`` (and ``validation``), reported as ``test_<name>``.
    loss_penalty: optional ``(params, hparams) -> scalar`` added to the loss, e.g. an L1
      term for the subgradient method.
    activation_penalties: ``{sown name: (penalty, hparam name)}``; each adds
      ``hparams[name] · penalty(h) / batch_size``.
    validation: optional held-out split for model selection (metrics ``validation_*``);
      :meth:`regjax.SweepResult.best` with ``split="validation"`` picks on it.
    eval_every: record the metrics every this many steps (curves); must divide
      ``steps``. None records none.
    hidden: Optax-style mask of the kernels whose output units count for
      ``dead_units``; None takes every kernel (``ndim >= 2`` Param) except those of the
      output layer, found from the model: the layer whose output is the model's output
      (traced once on ``test``'s first example; if no layer's output is returned as is,
      the last kernel in path order, as :func:`hidden_kernels`).
    segment_steps: steps per host-fed segment of a streamed run (a multiple of
      ``eval_every`` dividing ``steps``); None picks the largest such count <= 100.
    progress: report step progress through :func:`regjax.progress_callback`.
  """

  model: Callable[[nnx.Rngs], nnx.Module]
  optimizer: Callable[[Hparams], optax.GradientTransformation]
  train: Any
  test: Dataset
  steps: int = 1000
  batch_size: int = 128
  loss_fn: Callable[..., Any] | None = None
  metrics_fn: Callable[..., Mapping[str, jax.Array]] | None = None
  loss_penalty: Callable[[Any, Hparams], jax.Array] | None = None
  activation_penalties: Mapping[str, tuple[Callable[[jax.Array], jax.Array], str]] = (
      dataclasses.field(default_factory=dict))
  validation: Dataset | None = None
  eval_every: int | None = None
  hidden: Any = None
  segment_steps: int | None = None
  progress: bool = False

  def __post_init__(self):
    for name in ("steps", "batch_size"):
      _checks.check_int(name, getattr(self, name))
    for name in ("eval_every", "segment_steps"):
      if getattr(self, name) is not None:
        _checks.check_int(name, getattr(self, name))
    if self.eval_every is not None and self.steps % self.eval_every:
      raise ValueError(f"`eval_every` {self.eval_every} must divide `steps` {self.steps}.")
    if not self.streamed:
      n = _first(self.train).shape[0]
      if self.batch_size > n:
        raise ValueError(f"`batch_size` {self.batch_size} exceeds the {n} training "
                         "examples; pass a smaller batch.")
    elif self.segment_steps is not None and (
        self.steps % self.segment_steps or self.segment_steps % (self.eval_every or 1)):
      raise ValueError(f"`segment_steps` {self.segment_steps} must divide `steps` "
                       f"{self.steps} and be a multiple of `eval_every` {self.eval_every}.")
    for name in ("loss_fn", "metrics_fn", "loss_penalty"):
      value = getattr(self, name)
      if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be callable or None, got {value!r}.")
    for name, spec in self.activation_penalties.items():
      if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0])):
        raise TypeError(
            f"`activation_penalties[{name!r}]` must be (penalty_fn, hparam_name), got {spec!r}.")

  @property
  def streamed(self) -> bool:
    """Whether ``train`` is a host stream of batches rather than in-memory arrays."""
    return streaming.is_stream(self.train)

  # --------------------------------------------------------------------------- the model

  @functools.cached_property
  def _structure(self) -> tuple[Any, Any, Any]:
    """The graph, the random-stream template, and the paths of the output layer."""
    found: dict[str, Any] = {}

    def build():
      model = self.model(nnx.Rngs(0, params=0))
      found["graph"], _, rngs, _ = nnx.split(model, nnx.Param, nnx.RngState, ...)
      found["rngs"] = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                   nnx.to_pure_dict(rngs))
      model.eval()
      inputs = jnp.asarray(self.test[0][:1]) if isinstance(self.test, tuple) else None
      found["outputs"] = []
      if inputs is not None:  # the layers whose output is the model's output
        out, captured = nnx.capture(model, nnx.Intermediate,
                                    method_outputs=nnx.Intermediate)(inputs)
        found["outputs"] = [path for path, value in _sown(captured).items() if value is out]

    jax.eval_shape(build)
    return found["graph"], found["rngs"], found["outputs"]

  def _merge(self, params: Any, model_state: Any, rng_key: jax.Array, step: Any) -> Any:
    graph, rng_template, _ = self._structure
    base = jax.random.fold_in(jax.random.wrap_key_data(rng_key), step)
    leaves, treedef = jax.tree.flatten(rng_template)
    rngs = treedef.unflatten([
        jax.random.fold_in(base, i) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        else jnp.zeros(leaf.shape, leaf.dtype) for i, leaf in enumerate(leaves)])
    return nnx.merge(graph, params, rngs, model_state)

  def hidden_mask(self, params: Any) -> Any:
    """The kernels counted by ``dead_units``: ``hidden``, else all but the output layer's."""
    if self.hidden is not None:
      return self.hidden(params) if callable(self.hidden) else self.hidden
    _, _, outputs = self._structure
    output_modules = {tuple(p.split("/")[:-1]) for p in outputs}
    if not output_modules:
      return hidden_kernels(params)

    def keep(path: Any, leaf: Any) -> bool:
      names = tuple(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
      return jnp.ndim(leaf) >= 2 and names[:-1] not in output_modules

    return jax.tree_util.tree_map_with_path(keep, params)

  # --------------------------------------------------------------------------- losses

  def _loss_value(self, model: nnx.Module, batch: Any, hparams: Hparams) -> Any:
    return (self.loss_fn or default_loss)(model, batch, hparams)

  def _train_loss(self, params, model_state, rng_key, step, hparams, batch):
    model = self._merge(params, model_state, rng_key, step)
    model.train()
    if self.activation_penalties:
      value, captured = nnx.capture(
          lambda m: self._loss_value(m, batch, hparams), nnx.Intermediate)(model)
      sown = _sown(captured)
    else:
      value, sown = self._loss_value(model, batch, hparams), {}
    total, aux = _split_loss(value)
    if self.loss_penalty is not None:
      total = total + self.loss_penalty(params, hparams)
    for name, (penalty, hparam) in self.activation_penalties.items():
      if name not in sown:
        raise KeyError(f"`activation_penalties` names {name!r}, but the model sowed "
                       f"{sorted(sown)}.")
      total = total + hparams[hparam] * penalty(sown[name]) / sown[name].shape[0]
    return total, (aux, nnx.to_pure_dict(nnx.state(model, _OTHER)))

  def loss(self, params: Any, hparams: Hparams, inputs: jax.Array, labels: jax.Array, *,
           state: TrainState | None = None) -> jax.Array:
    """Training loss with every configured penalty on the batch ``(inputs, labels)``.

    The model runs in training mode with the variables and random streams of ``state``
    (needed when the model has batch statistics); without it, of a fresh model.
    """
    hparams = _Axes(hparams)
    if state is None:
      state = self.init(hparams, jax.random.key(0))
    return self._train_loss(params, state.model_state, state.rng_key, state.step, hparams,
                            Dataset(inputs, labels))[0]

  # --------------------------------------------------------------------------- running

  def init(self, hparams: Hparams, key: jax.Array) -> TrainState:
    """A fresh run: the model initialised from ``key``, the optimizer's state, step 0."""
    hparams = _Axes(hparams)
    init_key, data_key = jax.random.split(key)
    _, params, _, model_state = nnx.split(
        self.model(nnx.Rngs(init_key, params=init_key)), nnx.Param, nnx.RngState, ...)
    params, model_state = nnx.to_pure_dict(params), nnx.to_pure_dict(model_state)
    _checks.check_float_params("params", params)
    state = TrainState(
        step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
        opt_state=self.optimizer(hparams).init(params),
        data_key=jax.random.key_data(data_key),
        rng_key=jax.random.key_data(jax.random.split(init_key)[1]),
        loss=jnp.zeros((), jnp.float32), aux={}, failed_step=jnp.full((), -1, jnp.int32),
        curves={})
    if self.loss_fn is not None:
      batch = self._example_batch()
      _, (aux, _) = jax.eval_shape(
          lambda b: self._train_loss(params, model_state, state.rng_key, 0, hparams, b), batch)
      state = state._replace(aux={k: jnp.zeros(v.shape, v.dtype) for k, v in aux.items()})
    if self.eval_every is not None:
      shapes = jax.eval_shape(lambda: self._measure(hparams, state))
      n = self.steps // self.eval_every
      state = state._replace(curves={
          name: jnp.full((n,), jnp.nan if jnp.issubdtype(v.dtype, jnp.inexact) else -1, v.dtype)
          for name, v in shapes.items()})
    return state

  def _example_batch(self) -> Any:
    if self.streamed:
      return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype),
                          streaming.batch_spec(self))
    return jax.tree.map(lambda a: a[: self.batch_size], self.train)

  def advance(self, hparams: Hparams, state: TrainState, num_steps: int,
              batches: Any = None) -> TrainState:
    """``num_steps`` more training steps from ``state`` (pure; jit/vmap it).

    Args:
      hparams: the row's hyperparameters.
      state: where the run stands.
      num_steps: steps to take; a multiple of ``eval_every`` when curves are recorded
        (and ``state.step`` is then a multiple of it too).
      batches: None draws minibatches from the in-memory ``train``; else a pytree of
        batches stacked on a leading axis of length ``num_steps`` (a streamed segment).

    Returns:
      The state after the steps, with any curve points they reach recorded.
    """
    hparams = _Axes(hparams)
    if num_steps == 0:
      return state
    if self.eval_every is not None and num_steps % self.eval_every:
      raise ValueError(f"`num_steps` {num_steps} must be a multiple of `eval_every` "
                       f"{self.eval_every}.")
    if batches is None and self.streamed:
      raise TypeError("This Trainer streams its data: pass `batches` (stacked batches of the "
                      "segment), or run it through `regjax.sweep`.")
    tx = self.optimizer(hparams)
    data_key = jax.random.wrap_key_data(state.data_key)

    def step(state, inputs):
      offset, batch = inputs
      t = state.step + offset
      if batches is None:
        n = _first(self.train).shape[0]
        index = jax.random.randint(jax.random.fold_in(data_key, t), (self.batch_size,), 0, n)
        batch = jax.tree.map(lambda a: jnp.asarray(a)[index], self.train)
      grad_fn = jax.value_and_grad(self._train_loss, has_aux=True)
      (loss, (aux, model_state)), grads = grad_fn(
          state.params, state.model_state, state.rng_key, t, hparams, batch)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      failed = jnp.where((state.failed_step < 0) & ~jnp.isfinite(loss), t, state.failed_step)
      if self.progress:
        _sweep.progress_callback(t, self.steps, desc="train steps")
      state = state._replace(params=params, model_state=model_state, opt_state=opt_state,
                             loss=loss, aux=aux, failed_step=failed)
      if self.eval_every is not None:
        # `offset` is not batched under vmap, so this stays a branch taken every N steps.
        due = (offset + 1) % self.eval_every == 0
        state = jax.lax.cond(due, lambda s: self._record(hparams, s, t + 1), lambda s: s, state)
      return state, None

    offsets = jnp.arange(num_steps, dtype=jnp.int32)
    state, _ = jax.lax.scan(step, state, (offsets, batches))
    return state._replace(step=state.step + num_steps)

  def _record(self, hparams: Hparams, state: TrainState, steps_done: jax.Array) -> TrainState:
    """Writes the metrics after ``steps_done`` steps at evaluation ``steps_done // N - 1``."""
    measured = self._measure(hparams, state)
    index = steps_done // self.eval_every - 1
    return state._replace(curves={name: curve.at[index].set(measured[name])
                                  for name, curve in state.curves.items()})

  def _held_out(self, prefix: str, data: Any, hparams: Hparams, state: TrainState):
    model = self._merge(state.params, state.model_state, state.rng_key, state.step)
    model.eval()

    def measure(model):
      if self.loss_fn is None:  # one forward pass for the loss and the accuracy
        inputs, labels = data
        outputs = model(inputs)
        if jnp.issubdtype(labels.dtype, jnp.integer):
          found = {"loss": cross_entropy(outputs, labels),
                   "accuracy": jnp.mean(jnp.argmax(outputs, -1) == labels)}
        else:
          found = {"loss": squared_error(outputs, labels)}
      else:
        found = {"loss": _split_loss(self.loss_fn(model, data, hparams))[0]}
      if self.metrics_fn is not None:
        found.update(self.metrics_fn(model, data, hparams))
      return found

    found, captured = nnx.capture(measure, nnx.Intermediate)(model)
    result = {f"{prefix}_{name}": value for name, value in found.items()}
    return result, _sown(captured)

  def _measure(self, hparams: Hparams, state: TrainState) -> dict[str, jax.Array]:
    result = {"train_loss": state.loss}
    result.update({f"train_{name}": value for name, value in state.aux.items()})
    held_out, sown = self._held_out("test", self.test, hparams, state)
    result.update(held_out)
    if self.validation is not None:
      result.update(self._held_out("validation", self.validation, hparams, state)[0])
    result["zero_weights"] = metrics.zero_fraction(state.params, masks.matrices)
    result["dead_units"] = metrics.dead_unit_fraction(state.params, self.hidden_mask)
    for name, value in sown.items():
      result[f"{name}_zero"] = jnp.mean(value == 0)
    return result

  def evaluate(self, hparams: Hparams, state: TrainState) -> dict[str, jax.Array]:
    """Held-out metrics, train loss, sparsity of kernels, dead units, activations, curves.

    Returns ``train_loss``, ``test_loss``, ``test_accuracy`` (integer labels and the
    default loss), ``test_<metrics_fn name>``, the same for ``validation_``, then
    ``zero_weights``, ``dead_units``, ``<sown>_zero``, ``failed_step``, and with
    ``eval_every`` the curves as ``curves/<metric>`` (length ``steps // eval_every``)
    plus ``curves/step``.
    """
    hparams = _Axes(hparams)
    result = self._measure(hparams, state)
    result["failed_step"] = state.failed_step
    if self.eval_every is not None:
      for name, curve in state.curves.items():
        result[CURVE_PREFIX + name] = curve
      result[CURVE_PREFIX + "step"] = self.eval_every * jnp.arange(
          1, self.steps // self.eval_every + 1, dtype=jnp.int32)
    return result

  def __call__(self, hparams: Hparams, key: jax.Array) -> dict[str, jax.Array]:
    """A whole run: :meth:`init`, :meth:`advance` by ``steps``, :meth:`evaluate`."""
    if self.streamed:
      raise TypeError("A streamed Trainer is fed from the host: run it with `regjax.sweep`.")
    return self.evaluate(hparams, self.advance(hparams, self.init(hparams, key), self.steps))

  @property
  def sweep_rows(self) -> Callable[..., dict[str, jax.Array]] | None:
    """For :func:`regjax.sweep`: with a streamed ``train``, ``(hparams, seeds, sharding)
    -> metrics`` running one chunk of rows fed from the host; None for in-memory data."""
    return functools.partial(streaming.run_rows, self) if self.streamed else None




def hidden_kernels(params: Any) -> Any:
  """Mask of the kernels of hidden layers: every ``ndim >= 2`` leaf but the last one.

  The last kernel in path order is taken as the output layer, which holds for
  :class:`regjax.models.MLP`; :meth:`Trainer.hidden_mask` finds it from the model.
  """
  kernels = [path for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if jnp.ndim(leaf) >= 2]
  last = kernels[-1] if kernels else None
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: jnp.ndim(leaf) >= 2 and path != last, params)


def hidden_dead_fraction(params: Any) -> jax.Array:
  """Fraction of hidden units whose incoming weights are all exactly zero."""
  return metrics.dead_unit_fraction(params, hidden_kernels)


