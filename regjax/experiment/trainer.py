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

A Trainer is a segmented run (:class:`regjax.experiment.loop.SegmentedRun`): ``init``,
``advance``, ``evaluate``, plus ``plan_segments``, ``host_batches`` and
``check_hparams``, so the sweep loop can cut it into segments, save and resume it, feed
it streamed batches and refill its rows. Calling it runs a whole run in one program.
Its parts each do one job: the model's structure, rebuilding and hidden layers
(``_model``), losses and the training steps (``_training``), evaluation and curves
(``_evaluation``), host data (:mod:`regjax.experiment.streaming`).

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
(a generator function, a generator object, or any iterable of NumPy batches, see
:mod:`regjax.experiment.streaming`): every grid point then sees the same batches.

Curves: with ``eval_every=N`` the run records every metric of :meth:`Trainer.evaluate`
each ``N`` steps inside the same compiled scan, into fixed-size buffers of
``steps // N`` entries kept in :class:`TrainState` and written at the absolute
evaluation index, so a run cut into segments records the same curve as one piece.

Losses: ``loss_fn(model, batch, hparams)`` returns the loss or ``(loss, aux)`` (``aux`` a
dict of scalars, reported as ``train_<name>``). When the loss contains a regularization
term (an L0 gate's expected L0, an orthogonality penalty), report it as
``aux["penalty"]``: the table then shows ``train_penalty`` beside ``train_loss`` (the
whole objective), and the held-out ``test_loss``/``validation_loss`` are the data term
alone (``loss - penalty``). The default loss is softmax cross-entropy for integer labels
and the mean squared error for float targets. ``metrics_fn(model, batch, hparams) ->
dict`` adds held-out metrics. Activation (embedding) regularization: models record
activations with ``self.sow`` (see :mod:`regjax.models`);
``activation_penalties={"hidden_0": (penalties.l1, "act")}`` adds
``hparams["act"] · R(h) / batch`` for the sown activation ``h``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from regjax import _checks
from regjax.experiment import _evaluation, _model, _training, loop, streaming
from regjax.experiment._model import hidden_kernels
from regjax.experiment._training import cross_entropy, default_loss, squared_error
from regjax.experiment.data import Dataset
from regjax.experiment.loop import Hparams
from regjax.experiment.results import CURVE_PREFIX
from regjax.experiment.streaming import BatchSource
from regjax.typing import Mask, Params, PRNGKey, PyTree

__all__ = ["TrainState", "Trainer", "cross_entropy", "default_loss", "hidden_kernels",
           "squared_error"]


class TrainState(NamedTuple):
  """Everything a run needs to continue: pure arrays, so it saves and vmaps.

  :meth:`Trainer.init` makes one, :meth:`Trainer.advance` steps it, :meth:`Trainer.evaluate`
  reads it; a sweep keeps one per row (stacked on a leading axis) and checkpoints it.

  Examples:
    >>> import jax
    >>> from regjax import Trainer, data, models, prox_adam
    >>> digits = data.load_digits("test")
    >>> trainer = Trainer(lambda rngs: models.MLP(64, (8,), 10, rngs=rngs),
    ...                   lambda h: prox_adam(1e-2, h["lam"]), train=digits, test=digits)
    >>> state = jax.eval_shape(trainer.init, {"lam": 1e-3}, jax.random.key(0))  # shapes only
    >>> state.step, state.params["layers"][0]["kernel"]
    (ShapeDtypeStruct(shape=(), dtype=int32), ShapeDtypeStruct(shape=(64, 8), dtype=float32))
  """

  step: jax.Array  # shape=(), int32: steps taken.
  params: Params  # pure dict of the model's nnx.Param values (the optimized leaves).
  model_state: PyTree  # pure dict of its other variables (nnx.BatchStat, ...).
  opt_state: PyTree  # the optimizer's state.
  data_key: jax.Array  # uint32 key data; minibatch t uses fold_in(data_key, t).
  rng_key: jax.Array  # uint32 key data; the random streams of step t use fold_in(rng_key, t).
  loss: jax.Array  # shape=(): the last step's training loss (with penalties).
  aux: dict[str, jax.Array]  # the last step's auxiliary outputs of `loss_fn` (and `penalty`).
  failed_step: jax.Array  # shape=(), int32: first step with a non-finite loss, or -1.
  curves: dict[str, jax.Array]  # metric -> [steps // eval_every]; NaN until recorded; or {}.


class _Axes(dict):
  """The hyperparameters of a row; a missing name lists the grid's axes."""

  def __missing__(self, name: Any) -> Any:
    raise KeyError(f"hparams[{name!r}]: no grid axis is named {name!r}; the grid's axes are "
                   f"{sorted(self)}. Fix the name in the Trainer's functions or the grid.")


def _default_segment(steps: int, every: int) -> int:
  """The largest multiple of ``every`` that divides ``steps`` and is <= max(100, every)."""
  limit = max(100, every)
  return max(m for m in range(every, min(limit, steps) + 1, every) if steps % m == 0)


@dataclasses.dataclass(frozen=True)
class Trainer:
  """A pure training run ``(hparams, key) -> metrics`` for :func:`regjax.sweep`.

  Attributes:
    model: ``rngs -> nnx.Module``.
    optimizer: ``hparams -> optax.GradientTransformation``; strengths come from
      ``hparams`` (traced scalars under a sweep). It sees only the ``nnx.Param`` leaves.
      Before compiling, a sweep builds it once with every concrete grid point, so a
      transform's own check (e.g. a negative strength) names the point.
    train: in-memory training data (a :class:`regjax.data.Dataset` or another pytree of
      arrays with a leading example axis; minibatches drawn uniformly with replacement),
      or a host stream of batches: a zero-argument callable returning an iterable (e.g. a
      generator function), an iterable of batches (pytrees of NumPy arrays with a
      leading batch axis), or a one-shot iterator such as a generator object (read
      once: it serves a sweep of one chunk). ``steps`` batches per pass.
    test: held-out data for :meth:`evaluate` (metrics ``test_*``).
    steps: minibatch steps of a full run.
    batch_size: examples per step for in-memory data.
    loss_fn: ``(model, batch, hparams) -> loss`` or ``(loss, aux)``; ``aux["penalty"]``
      names the regularization part of the loss (see the module docstring); default
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

  Examples:
    >>> import jax, optax
    >>> import regjax
    >>> from regjax import data, models
    >>> train, test = data.digits()
    >>> trainer = regjax.Trainer(model=lambda rngs: models.MLP(64, (8,), 10, rngs=rngs),
    ...                          optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"]),
    ...                          train=train, test=test, steps=4, batch_size=16)
    >>> result = regjax.sweep(trainer, regjax.grid(lam=[0.0, 1e-2]), progress=False)
    >>> result.columns[:4]
    ('lam', 'seed', 'train_loss', 'test_loss')
  """

  model: Callable[[nnx.Rngs], nnx.Module]
  optimizer: Callable[[Hparams], optax.GradientTransformation]
  train: PyTree | BatchSource
  test: Dataset
  steps: int = 1000
  batch_size: int = 128
  loss_fn: Callable[..., jax.Array | tuple[jax.Array, Mapping[str, jax.Array]]] | None = None
  metrics_fn: Callable[..., Mapping[str, jax.Array]] | None = None
  loss_penalty: Callable[[Params, Hparams], jax.Array] | None = None
  activation_penalties: Mapping[str, tuple[Callable[[jax.Array], jax.Array], str]] = (
      dataclasses.field(default_factory=dict))
  validation: Dataset | None = None
  eval_every: int | None = None
  hidden: Mask = None
  segment_steps: int | None = None
  progress: bool = False
  _stream: streaming.BatchStream | None = dataclasses.field(
      default=None, init=False, repr=False, compare=False)

  def __post_init__(self) -> None:
    for name in ("steps", "batch_size"):
      _checks.check_int(name, getattr(self, name))
    for name in ("eval_every", "segment_steps"):
      if getattr(self, name) is not None:
        _checks.check_int(name, getattr(self, name))
    if self.eval_every is not None and self.steps % self.eval_every:
      raise ValueError(f"`eval_every` {self.eval_every} must divide `steps` {self.steps}.")
    object.__setattr__(self, "_stream", streaming.BatchStream(self.train)
                       if self.streamed else None)
    self._check_data()
    for name in ("loss_fn", "metrics_fn", "loss_penalty"):
      value = getattr(self, name)
      if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be callable or None, got {value!r}.")
    for name, spec in self.activation_penalties.items():
      if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0])):
        raise TypeError(
            f"`activation_penalties[{name!r}]` must be (penalty_fn, hparam_name), got {spec!r}.")

  def _check_data(self) -> None:
    if not self.streamed:
      n = jax.tree.leaves(self.train)[0].shape[0]
      if self.batch_size > n:
        raise ValueError(f"`batch_size` {self.batch_size} exceeds the {n} training "
                         "examples; pass a smaller batch.")
    elif self.segment_steps is not None and (
        self.steps % self.segment_steps or self.segment_steps % (self.eval_every or 1)):
      raise ValueError(f"`segment_steps` {self.segment_steps} must divide `steps` "
                       f"{self.steps} and be a multiple of `eval_every` {self.eval_every}.")

  @property
  def streamed(self) -> bool:
    """Whether ``train`` is a host stream of batches rather than in-memory arrays."""
    return streaming.is_stream(self.train)

  @functools.cached_property
  def structure(self) -> _model.Structure:
    """The model's graph, random-stream template and output layer (built once)."""
    example = self.test[0][:1] if isinstance(self.test, tuple) else None
    return _model.build(self.model, example)

  def hidden_mask(self, params: Params) -> PyTree:
    """The kernels counted by ``dead_units``: ``hidden``, else all but the output layer's."""
    return _model.hidden_mask(params, self.hidden, self.structure.outputs)

  # --------------------------------------------------------------------------- the run

  def loss(self, params: Params, hparams: Hparams, inputs: jax.Array, labels: jax.Array, *,
           state: TrainState | None = None) -> jax.Array:
    """Training loss with every configured penalty on the batch ``(inputs, labels)``.

    The model runs in training mode with the variables and random streams of ``state``
    (needed when the model has batch statistics); without it, of a fresh model.
    """
    hparams = _Axes(hparams)
    if state is None:
      state = self.init(hparams, jax.random.key(0))
    return _training.objective(self, params, state.model_state, state.rng_key, state.step,
                               hparams, Dataset(inputs, labels))[0]

  def init(self, hparams: Hparams, key: PRNGKey) -> TrainState:
    """A fresh run: the model initialised from ``key``, the optimizer's state, step 0."""
    hparams = _Axes(hparams)
    init_key, data_key = jax.random.split(key)
    _, *states = nnx.split(self.model(nnx.Rngs(init_key, params=init_key)), nnx.Param,
                           nnx.RngState, ...)
    params, model_state = nnx.to_pure_dict(states[0]), nnx.to_pure_dict(states[2])
    _checks.check_float_params("params", params)
    state = TrainState(
        step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
        opt_state=self.optimizer(hparams).init(params),
        data_key=jax.random.key_data(data_key),
        rng_key=jax.random.key_data(jax.random.split(init_key)[1]),
        loss=jnp.zeros((), jnp.float32), aux={}, failed_step=jnp.full((), -1, jnp.int32),
        curves={})
    _, (aux, _) = jax.eval_shape(lambda b: _training.objective(
        self, params, model_state, state.rng_key, 0, hparams, b), self._example_batch())
    state = state._replace(aux={k: jnp.zeros(v.shape, v.dtype) for k, v in aux.items()})
    if self.eval_every is not None:
      state = state._replace(curves=_evaluation.curve_buffers(self, hparams, state))
    return state

  def _example_batch(self) -> Any:
    if self._stream is not None:
      return jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.asarray(a).dtype),
                          self._stream.first())
    return jax.tree.map(lambda a: a[: self.batch_size], self.train)

  def advance(self, hparams: Hparams, state: TrainState, num_steps: int,
              batches: PyTree = None) -> TrainState:
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
    if num_steps == 0:
      return state
    if self.eval_every is not None and num_steps % self.eval_every:
      raise ValueError(f"`num_steps` {num_steps} must be a multiple of `eval_every` "
                       f"{self.eval_every}.")
    if batches is None and self.streamed:
      raise TypeError("This Trainer streams its data: pass `batches` (stacked batches of the "
                      "segment), or run it through `regjax.sweep`.")
    return _training.advance(self, _Axes(hparams), state, num_steps, batches)

  def record(self, hparams: Hparams, state: TrainState, steps_done: jax.Array) -> TrainState:
    """``state`` with the metrics after ``steps_done`` steps written into its curves."""
    return _evaluation.record(self, hparams, state, steps_done)

  def evaluate(self, hparams: Hparams, state: TrainState) -> dict[str, jax.Array]:
    """The metrics of a run, in this order (the columns of a sweep's table).

    ``train_loss`` (the last step's whole objective); ``train_<aux>`` for each ``aux``
    entry of ``loss_fn``; ``train_penalty`` (the regularization part of ``train_loss``:
    ``aux["penalty"]`` + ``loss_penalty`` + activation penalties; only when one is on);
    ``test_loss`` (held-out, eval mode; the data term alone when ``loss_fn`` reports a
    penalty); ``test_accuracy`` (integer labels with the default loss);
    ``test_<name>`` for each ``metrics_fn`` entry; the same with ``validation_`` when
    ``validation`` is given; ``zero_weights`` (share of exact zeros among the kernels,
    ``ndim >= 2`` Params); ``dead_units`` (share of hidden units whose incoming weights
    are all zero, see ``hidden``); ``<sown>_zero`` (share of exact zeros in each
    activation the model sowed on ``test``, e.g. ``hidden_0_zero`` for the first hidden
    layer of :class:`regjax.models.MLP`); ``failed_step`` (first step with a non-finite
    loss, or -1). With ``eval_every`` also the curves, as ``curves/<metric>`` (length
    ``steps // eval_every``) and ``curves/step``.
    """
    hparams = _Axes(hparams)
    result = _evaluation.measure(self, hparams, state)
    result["failed_step"] = state.failed_step
    if self.eval_every is not None:
      for name, curve in state.curves.items():
        result[CURVE_PREFIX + name] = curve
      result[CURVE_PREFIX + "step"] = self.eval_every * jnp.arange(
          1, self.steps // self.eval_every + 1, dtype=jnp.int32)
    return result

  def __call__(self, hparams: Hparams, key: PRNGKey) -> dict[str, jax.Array]:
    """A whole run: :meth:`init`, :meth:`advance` by ``steps``, :meth:`evaluate`."""
    if self.streamed:
      raise TypeError("A streamed Trainer is fed from the host: run it with `regjax.sweep`.")
    return self.evaluate(hparams, self.advance(hparams, self.init(hparams, key), self.steps))

  # --------------------------------------------------------------------------- the loop's

  def plan_segments(self, count: int | None) -> Sequence[int]:
    """Segment lengths: ``count`` near-equal multiples of ``eval_every``; with None, one
    segment, or for a stream segments of ``segment_steps`` (default: the largest
    multiple of ``eval_every`` dividing ``steps`` and at most 100)."""
    every = self.eval_every or 1
    if count is not None:
      return loop.split_steps(self.steps, count, every)
    if not self.streamed:
      return (self.steps,)
    size = self.segment_steps or _default_segment(self.steps, every)
    return (size,) * (self.steps // size)

  def host_batches(self) -> Iterator[PyTree] | None:
    """A new pass over the streamed batches, or None for in-memory data."""
    return None if self._stream is None else self._stream.iterate()

  def check_hparams(self, point: Mapping[str, float]) -> None:
    """Builds the optimizer with the concrete ``point``, so its checks run before compiling
    (a negative strength raises here), and checks the hparams the penalties name."""
    hparams = _Axes(point)
    self.optimizer(hparams)
    for _, hparam in self.activation_penalties.values():
      hparams[hparam]  # noqa: B018 - a missing name raises the KeyError listing the axes
