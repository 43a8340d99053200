"""The Trainer with any NNX model and any loss: regression, autoencoders, dropout,
DropConnect, batch norm, the output layer found from the model, streamed batches."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import regjax
from regjax import data, models, penalties
from regjax.experiment.data import Dataset
from regjax.experiment.trainer import Trainer
from regjax.nn.stochastic import DropConnectLinear

TRAIN, TEST = data.load_digits("train"), data.load_digits("test")
H = {"lam": jnp.float32(0.0)}


def adam(h):
  return optax.adam(1e-2)


class FeaturesClassifier(nnx.Module):
  """Hidden layers under `features`, output under `classifier`: in path order the
  classifier comes first, so "the last kernel is the output layer" is wrong here."""

  def __init__(self, rngs, width=8, norm=False, dropout=0.0):
    self.features = nnx.Linear(64, width, rngs=rngs)
    self.norm = nnx.BatchNorm(width, rngs=rngs) if norm else None
    self.drop = nnx.Dropout(dropout, rngs=rngs) if dropout else None
    self.connect = DropConnectLinear(width, width, rate=dropout, rngs=rngs) if dropout else None
    self.classifier = nnx.Linear(width, 10, rngs=rngs)

  def __call__(self, x):
    h = self.features(x)
    if self.norm is not None:
      h = self.norm(h)
    h = nnx.relu(h)
    if self.drop is not None:
      h = nnx.relu(self.connect(self.drop(h)))
    return self.classifier(h)


def test_regression_with_float_targets_recovers_least_squares():
  x = jax.random.normal(jax.random.key(1), (256, 3))
  w = jnp.array([[1.5], [-2.0], [0.5]])
  y = (x @ w)[:, 0] + 0.01 * jax.random.normal(jax.random.key(2), (256,))
  run = Trainer(model=lambda rngs: nnx.Linear(3, 1, rngs=rngs),
                optimizer=lambda h: optax.adam(optax.linear_schedule(5e-2, 1e-4, 600)),
                train=Dataset(x, y), test=Dataset(x, y), steps=600, batch_size=64)
  state = jax.jit(lambda: run.advance(H, run.init(H, jax.random.key(0)), 600))()
  solution, *_ = np.linalg.lstsq(np.c_[x, np.ones(256)], np.asarray(y), rcond=None)
  np.testing.assert_allclose(state.params["kernel"][:, 0], solution[:3], atol=5e-3)
  out = jax.jit(run.evaluate)(H, state)
  assert "test_accuracy" not in out
  residual = np.c_[x, np.ones(256)] @ solution - np.asarray(y)
  np.testing.assert_allclose(out["test_loss"], np.mean(residual**2), rtol=0.5)


def test_autoencoder_with_custom_loss_aux_and_activation_penalty():
  inputs = TRAIN.inputs

  def reconstruction(model, batch, hparams):
    error = jnp.mean((model(batch.inputs) - batch.inputs) ** 2)
    return error, {"error": error}

  def run(lam):
    trainer = Trainer(
        model=lambda rngs: models.MLP(64, (16,), 64, rngs=rngs), optimizer=adam,
        train=Dataset(inputs, inputs), test=Dataset(TEST.inputs, TEST.inputs), steps=300,
        batch_size=64, loss_fn=reconstruction,
        activation_penalties={"hidden_0": (penalties.l1, "act")})
    return trainer({"act": lam}, jax.random.key(0))

  out = jax.jit(jax.vmap(run))(jnp.array([0.0, 0.01]))
  # Without a penalty the loss is the reconstruction error reported as aux.
  np.testing.assert_allclose(out["train_loss"][0], out["train_error"][0], rtol=1e-6)
  assert out["train_loss"][1] > out["train_error"][1]
  assert out["test_loss"][0] < 0.6 * np.var(np.asarray(TEST.inputs), axis=0).mean()
  assert out["hidden_0_zero"][1] > out["hidden_0_zero"][0] + 0.2


def test_dropout_and_dropconnect_train_with_fresh_masks_per_step():
  run = Trainer(model=lambda rngs: FeaturesClassifier(rngs, width=32, dropout=0.3),
                optimizer=adam, train=TRAIN, test=TEST, steps=300, batch_size=64)
  state = jax.jit(lambda: run.init(H, jax.random.key(0)))()
  x, y = TEST.inputs[:64], TEST.labels[:64]
  loss = jax.jit(lambda s: run.loss(s.params, H, x, y, state=s))
  at_0, again, at_1 = loss(state), loss(state), loss(state._replace(step=state.step + 1))
  assert at_0 == again and at_0 != at_1  # same step, same masks; next step, new masks
  # The optimizer sees only Params: Adam's moments have the parameters' structure.
  assert jax.tree.structure(state.opt_state[0].mu) == jax.tree.structure(state.params)
  result = regjax.sweep(run, regjax.grid(lam=[0.0, 1.0]), progress=False)
  assert (result["test_accuracy"] > 0.85).all()


def test_batch_norm_statistics_update_and_evaluation_uses_them():
  run = Trainer(model=lambda rngs: FeaturesClassifier(rngs, norm=True), optimizer=adam,
                train=TRAIN, test=TEST, steps=50, batch_size=64)
  start = jax.jit(lambda: run.init(H, jax.random.key(0)))()
  state = jax.jit(lambda s: run.advance(H, s, 50))(start)
  stats = jax.tree.map(np.asarray, state.model_state["norm"])
  before = start.model_state["norm"]
  assert not np.allclose(stats["mean"], before["mean"]) and not np.allclose(stats["var"], 1.0)
  moments = jax.tree_util.tree_leaves_with_path(state.opt_state[0].mu)
  assert {jax.tree_util.keystr(p) for p, _ in moments} == {
      jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state.params)}
  # Evaluation by hand with the running statistics (eval mode).
  p = jax.tree.map(np.asarray, state.params)
  h = np.asarray(TEST.inputs) @ p["features"]["kernel"] + p["features"]["bias"]
  h = (h - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * p["norm"]["scale"] + p["norm"]["bias"]
  logits = np.maximum(h, 0) @ p["classifier"]["kernel"] + p["classifier"]["bias"]
  expected = optax.softmax_cross_entropy_with_integer_labels(logits, TEST.labels).mean()
  out = jax.jit(run.evaluate)(H, state)
  np.testing.assert_allclose(out["test_loss"], expected, rtol=1e-4)
  # Only Params are counted: 1 - zero_weights is the share of nonzero kernel entries.
  kernels = [p["features"]["kernel"], p["classifier"]["kernel"]]
  zeros = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
  np.testing.assert_allclose(out["zero_weights"], zeros)


def test_dead_units_find_the_output_layer_from_the_model():
  run = Trainer(model=lambda rngs: FeaturesClassifier(rngs), optimizer=adam, train=TRAIN,
                test=TEST, steps=1, batch_size=8)
  state = run.init(H, jax.random.key(0))
  kernel = state.params["features"]["kernel"].at[:, :4].set(0.0)
  params = {**state.params, "features": {**state.params["features"], "kernel": kernel}}
  out = run.evaluate(H, state._replace(params=params))
  np.testing.assert_allclose(out["dead_units"], 0.5)  # 4 of the 8 hidden units
  chosen = Trainer(model=lambda rngs: FeaturesClassifier(rngs), optimizer=adam, train=TRAIN,
                   test=TEST, steps=1, batch_size=8,
                   hidden=lambda p: {"features": {"kernel": True, "bias": False},
                                     "classifier": {"kernel": True, "bias": False}})
  # With the classifier's 10 units counted too: 4 of 18.
  np.testing.assert_allclose(chosen.evaluate(H, state._replace(params=params))["dead_units"],
                             4 / 18)


class TwoMLPs(nnx.Module):
  """Two regjax MLPs in an ``nnx.List``, called one after the other."""

  def __init__(self, rngs):
    self.parts = nnx.List([models.MLP(64, (8,), 16, rngs=rngs),
                           models.MLP(16, (8,), 10, rngs=rngs)])

  def __call__(self, x):
    return self.parts[1](nnx.relu(self.parts[0](x)))


def test_numpy_data_and_a_model_nesting_mlps_train_and_evaluate():
  as_numpy = Dataset(*(np.asarray(a) for a in TRAIN))
  runs = [Trainer(model=TwoMLPs, optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"]),
                  train=train, test=TEST, steps=20, batch_size=16)
          for train in (as_numpy, TRAIN)]
  from_numpy, from_jax = (regjax.sweep(run, regjax.grid(lam=[0.0, 1e-2]), seeds=1,
                                       progress=False) for run in runs)
  # Each MLP's sown hidden layer is reported under its path in the list.
  for name in ("parts/0/hidden_0_zero", "parts/1/hidden_0_zero", "test_accuracy"):
    np.testing.assert_array_equal(from_numpy[name], from_jax[name])
  assert from_numpy["zero_weights"][from_numpy["lam"] > 0].item() > 0.0  # the prox acted


def test_misspelled_hyperparameter_lists_the_grid_axes():
  run = Trainer(model=lambda rngs: models.MLP(64, (8,), 10, rngs=rngs),
                optimizer=lambda h: regjax.adamw(1e-2, h["lamda"]), train=TRAIN, test=TEST,
                steps=2, batch_size=8)
  with pytest.raises(KeyError, match=r"'lamda'.*axes are \['lam'\]"):
    regjax.sweep(run, regjax.grid(lam=[0.1]), progress=False)


def test_a_concrete_negative_or_nan_strength_in_the_grid_is_refused_before_training():
  run = Trainer(model=lambda rngs: models.MLP(64, (8,), 10, rngs=rngs),
                optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"]), train=TRAIN, test=TEST,
                steps=2, batch_size=8)
  for bad, message in ((-1e-3, r"`strength` must be >= 0.0, got -0.001"),
                       (float("nan"), "`lam` must be finite")):
    with pytest.raises(ValueError, match=message):
      regjax.sweep(run, regjax.grid(lam=[1e-3, bad]), progress=False)


def test_streamed_batches_equal_the_in_memory_run_fed_the_same_batches():
  steps, batch = 40, 32
  memory = Trainer(model=lambda rngs: models.MLP(64, (16,), 10, rngs=rngs),
                   optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
                   train=TRAIN, test=TEST, steps=steps, batch_size=batch, eval_every=10)
  # The in-memory run draws minibatch t from fold_in(data_key, t), data_key the second
  # half of split(key(seed)); the stream yields those very batches, as NumPy arrays.
  data_key = jax.random.split(jax.random.key(0))[1]
  indices = [np.asarray(jax.random.randint(jax.random.fold_in(data_key, t), (batch,), 0,
                                           len(TRAIN.labels))) for t in range(steps)]
  inputs, labels = np.asarray(TRAIN.inputs), np.asarray(TRAIN.labels)

  def stream():
    for index in indices:
      yield inputs[index], labels[index]

  streamed = Trainer(model=memory.model, optimizer=memory.optimizer, train=stream,
                     test=TEST, steps=steps, eval_every=10, segment_steps=20)
  grid = regjax.grid(lam=[1e-4, 1e-3, 1e-2])
  expected = regjax.sweep(memory, grid, progress=False)
  got = regjax.sweep(streamed, grid, chunk_size=2, progress=False)
  for name in ("test_loss", "train_loss", "zero_weights"):
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(got.curves["test_loss"], expected.curves["test_loss"], rtol=1e-5)
  # A generator object is read once, shared by every row of a one-chunk sweep...
  one_shot = Trainer(model=memory.model, optimizer=memory.optimizer, train=stream(),
                     test=TEST, steps=steps, eval_every=10, segment_steps=20)
  got = regjax.sweep(one_shot, grid, progress=False)
  np.testing.assert_allclose(got["test_loss"], expected["test_loss"], rtol=1e-5, atol=1e-7)
  # ...and a second pass (another sweep, or a second chunk) says how to pass a re-iterable.
  for chunk_size in (None, 2):
    with pytest.raises(TypeError, match="one-shot iterator .* `train=lambda: loader"):
      regjax.sweep(one_shot, grid, chunk_size=chunk_size, progress=False)


@pytest.mark.slow
def test_cnn_example_trains_through_a_sweep_in_tiny_mode(capsys):
  path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "cnn_dropout_batchnorm.py"
  spec = importlib.util.spec_from_file_location("cnn_example", path)
  example = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(example)
  result = example.main(["--tiny"])
  assert len(result) == 4 and not result["failed"].any()
  assert (result["test_accuracy"] > 0.3).all()  # chance is 0.1; 40 steps
  # Label smoothing raises the training loss above the plain cross-entropy (aux).
  smooth = result["smooth"] > 0
  assert (result["train_loss"][smooth] > result["train_cross_entropy"][smooth]).all()
  np.testing.assert_allclose(result["train_loss"][~smooth], result["train_cross_entropy"][~smooth])
  assert "best on validation" in capsys.readouterr().out


def test_a_reported_penalty_is_shown_apart_and_left_out_of_held_out_losses():
  def penalized(model, batch, hparams):
    data = cross_entropy_of(model, batch)
    penalty = hparams["lam"] * sum(jnp.sum(jnp.abs(k)) for k in (model.layers[0].kernel[...],))
    return data + penalty, {"penalty": penalty, "data": data}

  def cross_entropy_of(model, batch):
    from regjax.experiment.trainer import cross_entropy

    return cross_entropy(model(batch[0]), batch[1])

  small = Dataset(TRAIN.inputs[:64], TRAIN.labels[:64])
  run = Trainer(model=lambda rngs: models.MLP(64, (4,), 10, rngs=rngs), optimizer=adam,
                train=small, test=small, steps=1, batch_size=64, loss_fn=penalized,
                loss_penalty=lambda params, h: 2.0 * h["lam"])
  hparams = {"lam": jnp.float32(0.01)}
  state = run.advance(hparams, run.init(hparams, jax.random.key(0)), 1)
  out = run.evaluate(hparams, state)
  # train_penalty: the loss_fn's penalty plus loss_penalty (2 λ); train_loss holds both.
  np.testing.assert_allclose(out["train_penalty"], out["train_loss"] - out["train_data"],
                             rtol=1e-5)
  assert out["train_penalty"] > 2.0 * 0.01
  # Held out, the same batch gives the data term alone (the model after the step).
  model = _model_of(run, state)
  np.testing.assert_allclose(out["test_loss"], cross_entropy_of(model, small), rtol=1e-5)


def _model_of(run, state):
  from regjax.experiment import _model

  model = _model.merge(run.structure, state.params, state.model_state, state.rng_key,
                       state.step)
  model.eval()
  return model
