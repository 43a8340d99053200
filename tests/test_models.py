"""Tests for regjax.models: shapes, sown activations, split/merge under vmap, training."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from regjax import data
from regjax.nn.models import MLP, ConvNet


@pytest.fixture(scope="module")
def digits_batch():
  train = data.load_digits("train")
  return train.inputs[:64], train.labels[:64]


def test_mlp_shapes_and_kernel_layout():
  model = MLP(8, (4, 3), 2, rngs=nnx.Rngs(0))
  assert [layer.kernel.shape for layer in model.layers] == [(8, 4), (4, 3), (3, 2)]
  assert model(jnp.ones((5, 8))).shape == (5, 2)
  assert model(jnp.ones(8)).shape == (2,)
  assert (model.in_features, model.out_features) == (8, 2)


def test_mlp_matches_hand_written_forward():
  model = MLP(8, (4,), 2, rngs=nnx.Rngs(1), activation=jnp.tanh)
  x = jax.random.normal(jax.random.key(0), (7, 8))
  first, second = model.layers
  expected = jnp.tanh(x @ first.kernel[...] + first.bias[...][None]) @ second.kernel[...] \
      + second.bias[...][None]
  np.testing.assert_allclose(model(x), expected, rtol=1e-6, atol=1e-6)


def test_mlp_without_hidden_layers_is_linear():
  model = MLP(8, (), 2, rngs=nnx.Rngs(0))
  x = jnp.eye(8)
  layer = model.layers[0]
  np.testing.assert_allclose(model(x), layer.kernel[...] + layer.bias[...][None])


def test_mlp_sows_post_activation_hidden_layers():
  model = MLP(8, (4, 3), 2, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (5, 8))
  logits, acts = nnx.capture(model, nnx.Intermediate)(x)
  assert set(acts.keys()) == {"hidden_0", "hidden_1"}
  (h0,), (h1,) = acts["hidden_0"].get_value(), acts["hidden_1"].get_value()
  first = model.layers[0]
  np.testing.assert_allclose(h0, jax.nn.relu(x @ first.kernel[...] + first.bias[...][None]),
                             rtol=1e-6, atol=1e-6)
  assert h1.shape == (5, 3) and float(h1.min()) >= 0.0
  np.testing.assert_allclose(logits, model(x))


def test_plain_call_leaves_state_unchanged():
  model = MLP(8, (4,), 2, rngs=nnx.Rngs(0))
  graphdef, _ = nnx.split(model)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    model(jnp.ones((3, 8)))
    model(jnp.ones((3, 8)))
  assert nnx.split(model)[0] == graphdef
  assert len(nnx.state(model, nnx.Intermediate)) == 0


def test_convnet_shapes_and_sown_maps():
  model = ConvNet(hidden_features=(4, 8), rngs=nnx.Rngs(0))
  assert [c.kernel.shape for c in model.convs] == [(3, 3, 1, 4), (3, 3, 4, 8)]
  assert model.head.kernel.shape == (8 * 8 * 8, 10)
  x = jax.random.uniform(jax.random.key(0), (5, 8, 8, 1))
  logits, acts = nnx.capture(model, nnx.Intermediate)(x)
  assert logits.shape == (5, 10)
  assert acts["hidden_0"].get_value()[0].shape == (5, 8, 8, 4)
  (h1,) = acts["hidden_1"].get_value()
  assert h1.shape == (5, 8, 8, 8)
  # The head reads the last maps flattened in NHWC order.
  np.testing.assert_allclose(
      logits, h1.reshape(5, -1) @ model.head.kernel[...] + model.head.bias[...][None],
      rtol=1e-5, atol=1e-5,
  )
  # Any number of batch axes, none included (shapes only, to skip compiling).
  assert nnx.eval_shape(lambda m, v: m(v), model, x[0]).shape == (10,)
  assert nnx.eval_shape(lambda m, v: m(v), model, x.reshape(5, 1, 8, 8, 1)).shape == (5, 1, 10)


def test_convnet_first_layer_matches_lax_conv():
  model = ConvNet(hidden_features=(4, 8), rngs=nnx.Rngs(2))
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1))
  _, acts = nnx.capture(model, nnx.Intermediate)(x)
  conv = model.convs[0]
  expected = jax.lax.conv_general_dilated(
      x, conv.kernel[...], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  expected = jax.nn.relu(expected + conv.bias[...][None, None, None])
  np.testing.assert_allclose(acts["hidden_0"].get_value()[0], expected, rtol=1e-5, atol=1e-5)


def test_convnet_rejects_wrong_input_shape():
  with pytest.raises(ValueError, match="`x` must have shape"):
    ConvNet(hidden_features=(4, 8), rngs=nnx.Rngs(0))(jnp.ones((5, 64)))


@pytest.mark.parametrize(
    ("factory", "error", "match"),
    [
        (lambda: MLP(64, 32, 10, rngs=nnx.Rngs(0)), TypeError, "`hidden_features`"),
        (lambda: MLP(64, (32, 0), 10, rngs=nnx.Rngs(0)), ValueError, r"`hidden_features\[1\]`"),
        (lambda: MLP(0, (3,), 10, rngs=nnx.Rngs(0)), ValueError, "`in_features`"),
        (lambda: MLP(4, (3,), 2, rngs=nnx.Rngs(0), activation=1), TypeError, "`activation`"),
        (lambda: ConvNet(hidden_features=(), rngs=nnx.Rngs(0)), ValueError, "`hidden_features`"),
        (lambda: ConvNet(image_shape=(8,), rngs=nnx.Rngs(0)), ValueError, "`image_shape`"),
    ],
)
def test_constructor_errors(factory, error, match):
  with pytest.raises(error, match=match):
    factory()


def test_models_built_and_run_inside_vmap_over_keys():
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: MLP(64, (16,), 10, rngs=nnx.Rngs(0))))

  def init(key):
    return nnx.split(MLP(64, (16,), 10, rngs=nnx.Rngs(key)))[1]

  states = jax.jit(jax.vmap(init))(jax.random.split(jax.random.key(0), 3))
  assert states["layers"][0]["kernel"][...].shape == (3, 64, 16)
  x = jnp.ones((4, 64))
  logits = jax.jit(jax.vmap(lambda s: nnx.merge(graphdef, s)(x)))(states)
  assert logits.shape == (3, 4, 10)
  # Model 1 alone gives row 1: vmap did not mix the copies.
  one = nnx.merge(graphdef, jax.tree.map(lambda a: a[1], states))
  np.testing.assert_allclose(logits[1], one(x), rtol=1e-6, atol=1e-6)
  assert not np.allclose(logits[0], logits[1])


def test_capture_under_jit_and_grad_of_embedding_penalty():
  model = MLP(8, (4, 3), 2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (5, 8))

  @nnx.jit
  def penalty_grad(model):
    def loss(model):
      _, acts = nnx.capture(model, nnx.Intermediate)(x)
      return jnp.sum(acts["hidden_1"].get_value()[0] ** 2)

    return nnx.grad(loss)(model)

  grads = penalty_grad(model)
  # The penalty on the last hidden layer does not depend on the output layer.
  assert float(jnp.abs(grads["layers"][2]["kernel"][...]).max()) == 0.0
  assert float(jnp.abs(grads["layers"][0]["kernel"][...]).max()) > 0.0


def _train(model, inputs, labels, steps=30):
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

  def loss_fn(model):
    return optax.softmax_cross_entropy_with_integer_labels(model(inputs), labels).mean()

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  losses = [float(step(model, optimizer)) for _ in range(steps)]
  return losses, float(loss_fn(model))


def test_mlp_training_reduces_loss_on_digits(digits_batch):
  inputs, labels = digits_batch
  losses, final = _train(MLP(64, (16,), 10, rngs=nnx.Rngs(0)), inputs, labels)
  assert losses[0] > 2.0  # about log(10) at initialisation
  assert final < 0.5 * losses[0]


def test_convnet_training_reduces_loss_on_digits(digits_batch):
  inputs, labels = digits_batch
  model = ConvNet(hidden_features=(4, 8), rngs=nnx.Rngs(0))
  losses, final = _train(model, inputs.reshape(-1, 8, 8, 1), labels, steps=20)
  assert final < 0.5 * losses[0]
