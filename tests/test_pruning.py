"""Tests for regjax.pruning: exact magnitude pruning, keep_pruned fine-tuning, compaction."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from regjax import data, pruning
from regjax.nn.models import MLP, ConvNet


def _params(seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  return {
      "dense": {"kernel": jax.random.normal(keys[0], (6, 5)), "bias": jnp.ones(5)},
      "conv": {"kernel": jax.random.normal(keys[1], (3, 3, 2, 4)), "bias": jnp.ones(4)},
      "out": {"kernel": jax.random.normal(keys[2], (5, 3)), "bias": jnp.ones(3)},
  }


def _build(factory, seed=0):
  """A model with N(0, 0.3^2) parameters, skipping Flax's initialisers (slow to compile)."""
  graphdef, abstract = nnx.split(nnx.eval_shape(factory))
  rng = np.random.default_rng(seed)
  state = jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.3, s.shape), s.dtype), abstract)
  return nnx.merge(graphdef, state)


def _mlp(hidden, seed=0, **kwargs):
  return _build(lambda: MLP(64, hidden, 10, rngs=nnx.Rngs(0), **kwargs), seed)


def _convnet(hidden, seed=0):
  return _build(lambda: ConvNet(hidden_features=hidden, rngs=nnx.Rngs(0)), seed)


def _zeros(tree):
  return jax.tree.map(lambda x: int(np.sum(np.asarray(x) == 0)), tree)


def _mlp_count(widths):
  return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _convnet_count(channels, out=10, area=64, kernel=9):
  convs = sum(kernel * a * b + b for a, b in zip(channels[:-1], channels[1:], strict=True))
  return convs + area * channels[-1] * out + out


@pytest.fixture(scope="module")
def test_inputs():
  return data.load_digits("test").inputs[:128]


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 1 / 3, 0.5, 0.9, 1.0])
def test_global_weight_pruning_is_exact_and_removes_the_smallest(sparsity):
  params = _params()
  pruned, keep = pruning.magnitude_prune(params, sparsity)
  n = 30 + 72 + 15
  zeros = _zeros(pruned)
  assert sum(zeros[k]["kernel"] for k in params) == round(sparsity * n)
  assert all(zeros[k]["bias"] == 0 for k in params)  # biases are skipped by default
  removed = np.concatenate([np.abs(params[k]["kernel"])[~keep[k]["kernel"]] for k in params])
  kept = np.concatenate([np.abs(params[k]["kernel"])[keep[k]["kernel"]] for k in params])
  if removed.size and kept.size:
    assert removed.max() <= kept.min()
  for k in params:
    np.testing.assert_array_equal(pruned[k]["kernel"],
                                  np.where(keep[k]["kernel"], params[k]["kernel"], 0.0))


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.7])
def test_per_layer_weight_pruning_is_exact_per_leaf(sparsity):
  params = _params(1)
  pruned, keep = pruning.magnitude_prune(params, sparsity, scope="per_layer")
  for k in params:
    leaf = params[k]["kernel"]
    assert _zeros(pruned)[k]["kernel"] == round(sparsity * leaf.size)
    threshold = np.sort(np.abs(leaf).ravel())[round(sparsity * leaf.size)]
    np.testing.assert_array_equal(keep[k]["kernel"], np.abs(leaf) >= threshold)


def test_ties_are_broken_by_position_and_count_stays_exact():
  params = {"w": jnp.ones((4, 5)), "v": -jnp.ones((2, 5))}
  pruned, _ = pruning.magnitude_prune(params, 0.5)
  # 15 of 30 equal magnitudes: leaves in key order ("v" before "w"), row-major inside.
  assert _zeros(pruned) == {"v": 10, "w": 5}
  np.testing.assert_array_equal(pruned["w"][0], np.zeros(5))
  np.testing.assert_array_equal(pruned["w"][1:], np.ones((3, 5)))


@pytest.mark.parametrize("scope", ["global", "per_layer"])
def test_unit_pruning_zeroes_whole_columns_and_their_biases(scope):
  params = _params(2)
  pruned, keep = pruning.magnitude_prune(params, 0.5, structure="unit", scope=scope)
  units = {k: params[k]["kernel"].shape[-1] for k in params}
  dead = {}
  for k in params:
    kernel = np.asarray(pruned[k]["kernel"]).reshape(-1, units[k])
    dead[k] = ~np.any(kernel != 0, axis=0)
    np.testing.assert_array_equal(np.asarray(pruned[k]["bias"]) == 0, dead[k])
    np.testing.assert_array_equal(keep[k]["bias"], ~dead[k])
  if scope == "global":
    assert sum(d.sum() for d in dead.values()) == round(0.5 * sum(units.values()))
    norms = {k: np.linalg.norm(np.asarray(params[k]["kernel"]).reshape(-1, units[k]), axis=0)
             for k in params}
    removed = np.concatenate([norms[k][dead[k]] for k in params])
    kept = np.concatenate([norms[k][~dead[k]] for k in params])
    assert removed.max() <= kept.min()
  else:
    assert {k: int(d.sum()) for k, d in dead.items()} == {
        k: round(0.5 * u) for k, u in units.items()
    }


def test_mask_prefix_and_callable_select_leaves():
  params = _params(3)
  pruned, _ = pruning.magnitude_prune(
      params, 0.5, mask={"dense": True, "conv": False, "out": False}
  )
  # A True prefix also selects the dense bias in weight mode: 35 candidates, 18 pruned.
  zeros = _zeros(pruned)
  assert zeros["dense"]["kernel"] + zeros["dense"]["bias"] == round(0.5 * 35)
  assert zeros["conv"] == {"kernel": 0, "bias": 0}
  pruned2, _ = pruning.magnitude_prune(
      params, 0.5, mask=lambda p: jax.tree.map(lambda x: x.shape == (5, 3), p)
  )
  assert _zeros(pruned2)["out"]["kernel"] == round(0.5 * 15)
  assert _zeros(pruned2)["dense"]["kernel"] == 0


def test_prune_jit_and_vmap_over_sparsity():
  params = _params(4)
  sparsities = jnp.array([0.0, 0.2, 0.5, 0.8])
  count = jax.jit(jax.vmap(
      lambda s: sum(jnp.sum(~k) for k in jax.tree.leaves(pruning.magnitude_prune(params, s)[1]))
  ))
  np.testing.assert_array_equal(count(sparsities), [0, 23, 58, 94])  # round(s * 117)


def test_prune_jit_over_params_and_vmap_over_stacked_models():
  params = _params(5)
  eager, _ = pruning.magnitude_prune(params, 0.5, structure="unit")
  jitted, _ = jax.jit(lambda p: pruning.magnitude_prune(p, 0.5, structure="unit"))(params)
  jax.tree.map(np.testing.assert_array_equal, jitted, eager)
  stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, _params(6))
  pruned, keep = jax.vmap(lambda p: pruning.magnitude_prune(p, 0.25))(stacked)
  kernels = [pruned[k]["kernel"] for k in params]
  zeros_per_model = sum(jnp.sum(k.reshape(2, -1) == 0, axis=1) for k in kernels)
  np.testing.assert_array_equal(zeros_per_model, [29, 29])  # round(0.25 * 117)
  second, _ = pruning.magnitude_prune(_params(6), 0.25)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[1], b), pruned, second)


def test_prune_on_nnx_state_round_trips_into_the_model():
  model = _mlp((6,))
  pruned, keep = pruning.magnitude_prune(nnx.state(model, nnx.Param), 0.5)
  nnx.update(model, pruned)
  kernels = [np.asarray(layer.kernel[...]) for layer in model.layers]
  assert sum(int(np.sum(k == 0)) for k in kernels) == round(0.5 * (384 + 60))
  np.testing.assert_array_equal(kernels[0] != 0, keep["layers"][0]["kernel"][...])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sparsity": 1.5}, ValueError, "`sparsity` must be <= 1"),
        ({"sparsity": -0.1}, ValueError, "`sparsity` must be >= 0"),
        ({"sparsity": float("nan")}, ValueError, "`sparsity` must be finite"),
        ({"sparsity": jnp.array([0.1, 0.2])}, ValueError, "`sparsity` must be a scalar"),
        ({"sparsity": 0.5, "scope": "layer"}, ValueError, "`scope`"),
        ({"sparsity": 0.5, "structure": "filter"}, ValueError, "`structure`"),
        ({"sparsity": 0.5, "mask": {"a": True}}, ValueError, "`mask` must have the structure"),
        ({"sparsity": 0.5, "mask": lambda p: False}, ValueError, "selects no parameter"),
        ({"sparsity": 0.5, "mask": lambda p: 1}, TypeError, "`mask` leaves must be bools"),
    ],
)
def test_prune_errors(kwargs, error, match):
  with pytest.raises(error, match=match):
    pruning.magnitude_prune(_params(), **kwargs)


def test_prune_rejects_integer_params():
  with pytest.raises(TypeError, match="`params`"):
    pruning.magnitude_prune({"w": jnp.ones((2, 2), jnp.int32)}, 0.5)


def test_keep_pruned_holds_zeros_through_adam_fine_tuning(test_inputs):
  labels = data.load_digits("test").labels[:128]
  model = _mlp((16,))
  pruned, keep = pruning.magnitude_prune(nnx.state(model, nnx.Param), 0.6)
  nnx.update(model, pruned)
  start = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  tx = optax.chain(optax.add_decayed_weights(1e-2), optax.adam(1e-2), pruning.keep_pruned(keep))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  def loss_fn(model):
    return optax.softmax_cross_entropy_with_integer_labels(model(test_inputs), labels).mean()

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss, grads

  keep_arrays = jax.tree.map(np.asarray, nnx.to_pure_dict(keep))
  grad_at_pruned = 0.0
  for _ in range(20):
    _, grads = step(model, optimizer)
    for i, layer in enumerate(model.layers):
      mask = keep_arrays["layers"][i]["kernel"]
      kernel = np.asarray(layer.kernel[...])
      assert np.all(kernel[~mask] == 0.0)
      grad_at_pruned += float(np.abs(np.asarray(grads["layers"][i]["kernel"][...])[~mask]).sum())
  # The loss pushes on the pruned weights, so holding them at zero is the transform's doing.
  assert grad_at_pruned > 0.0
  for i, layer in enumerate(model.layers):
    mask = keep_arrays["layers"][i]["kernel"]
    moved = np.asarray(layer.kernel[...])[mask] != start["layers"][i]["kernel"][mask]
    assert moved.mean() > 0.95


def test_keep_pruned_update_is_minus_param_on_plain_dicts_under_jit():
  params = {"w": jnp.array([[1.0, -2.0], [3.0, 4.0]]), "b": jnp.array([0.5, 0.5])}
  keep = {"w": jnp.array([[True, False], [False, True]]), "b": True}
  tx = optax.chain(optax.sgd(0.1), pruning.keep_pruned(keep))
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = jax.jit(tx.update)(grads, state, params)
  np.testing.assert_array_equal(updates["w"], np.float32([[-0.1, 2.0], [-3.0, -0.1]]))
  np.testing.assert_array_equal(updates["b"], np.float32([-0.1, -0.1]))
  new = optax.apply_updates(params, updates)
  assert float(new["w"][0, 1]) == 0.0 and float(new["w"][1, 0]) == 0.0
  assert isinstance(tx.init(params)[1], optax.EmptyState)


def test_keep_pruned_errors():
  with pytest.raises(TypeError, match="`keep_mask` must hold bool"):
    pruning.keep_pruned({"w": jnp.ones(2)})
  tx = pruning.keep_pruned({"w": jnp.array([True, False])})
  with pytest.raises(ValueError, match="params"):
    tx.update({"w": jnp.ones(2)}, optax.EmptyState())
  with pytest.raises(ValueError, match="does not match"):
    tx.update({"w": jnp.ones(3)}, optax.EmptyState(), {"w": jnp.ones(3)})
  with pytest.raises(ValueError, match="`keep_mask` must have the structure"):
    tx.update({"v": jnp.ones(2)}, optax.EmptyState(), {"v": jnp.ones(2)})


def test_count_params_matches_closed_form():
  assert pruning.count_params(_mlp((32, 16))) == _mlp_count((64, 32, 16, 10))
  assert pruning.count_params(_convnet((8, 16))) == _convnet_count((1, 8, 16))
  assert pruning.count_params({"a": jnp.ones((2, 3)), "b": jnp.ones(4)}) == 10


def _set(variable, array):
  variable.set_value(jnp.asarray(array))


def test_compact_mlp_by_hand_removes_dead_units(test_inputs):
  model = _mlp((12, 10))
  first, second, third = model.layers
  k0, b0 = np.array(first.kernel[...]), np.array(first.bias[...])
  k1, b1 = np.array(second.kernel[...]), np.array(second.bias[...])
  b1[3] = 0.1
  k2 = np.array(third.kernel[...])
  k0[:, [1, 5]] = 0.0
  b0[[1, 5]] = 0.0          # layer 0, units 1 and 5: zero column and bias
  k1[7] = 0.0               # layer 0, unit 7: feeds nothing
  k1[:, 3] = 0.0            # layer 1, unit 3: zero column, bias 0.1 -> constant, folded
  k2[[4, 8]] = 0.0          # layer 1, units 4 and 8: feed nothing
  for variable, value in [(first.kernel, k0), (first.bias, b0), (second.kernel, k1),
                          (second.bias, b1), (third.kernel, k2)]:
    _set(variable, value)
  compact = pruning.compact_mlp(model)
  assert compact.hidden_features == (9, 7)
  assert pruning.count_params(model) - pruning.count_params(compact) == (
      _mlp_count((64, 12, 10, 10)) - _mlp_count((64, 9, 7, 10))
  )
  np.testing.assert_allclose(compact(test_inputs), model(test_inputs), atol=1e-5, rtol=0)
  # The original is untouched.
  assert model.hidden_features == (12, 10) and model.layers[0].kernel.shape == (64, 12)


def test_compact_mlp_cascades_and_keeps_one_unit(test_inputs):
  model = _mlp((6, 5), seed=1, activation=jax.nn.sigmoid)
  # Every unit of hidden layer 1 feeds nothing: the whole second layer collapses to one
  # zero unit, which leaves every layer-0 unit feeding nothing as well.
  _set(model.layers[2].kernel, np.zeros((5, 10)))
  compact = pruning.compact_mlp(model)
  assert compact.hidden_features == (1, 1)
  np.testing.assert_allclose(compact(test_inputs), model(test_inputs), atol=1e-6, rtol=0)


def test_compact_mlp_after_unit_pruning(test_inputs):
  model = _mlp((16, 12), seed=2)
  hidden_only = {"layers": {0: True, 1: True, 2: False}}
  pruned, _ = pruning.magnitude_prune(
      nnx.state(model, nnx.Param), 0.5, structure="unit", scope="per_layer", mask=hidden_only
  )
  nnx.update(model, pruned)
  compact = pruning.compact_mlp(model)
  assert compact.hidden_features == (8, 6)
  assert pruning.count_params(compact) == _mlp_count((64, 8, 6, 10))
  np.testing.assert_allclose(compact(test_inputs), model(test_inputs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("multiple_of,widths", [(1, (8, 6)), (4, (8, 8)), (16, (16, 12)),
                                                (5, (10, 10))])
def test_compact_mlp_pads_widths_to_a_multiple_with_zero_units(test_inputs, multiple_of,
                                                               widths):
  model = _mlp((16, 12), seed=2, activation=jax.nn.sigmoid)  # sigmoid(0) = 0.5, not 0
  hidden_only = {"layers": {0: True, 1: True, 2: False}}
  pruned, _ = pruning.magnitude_prune(
      nnx.state(model, nnx.Param), 0.5, structure="unit", scope="per_layer", mask=hidden_only
  )
  nnx.update(model, pruned)
  compact = pruning.compact_mlp(model, multiple_of=multiple_of)
  # Rounded up from (8, 6), never past the original (16, 12).
  assert compact.hidden_features == widths
  np.testing.assert_allclose(compact(test_inputs), model(test_inputs), atol=1e-5, rtol=0)
  padded = np.asarray(compact.layers[1].kernel[...])[:, 6:]
  assert not padded.any() and not np.asarray(compact.layers[2].kernel[...])[6:].any()


def test_compact_mlp_rejects_a_bad_multiple():
  with pytest.raises(ValueError, match="multiple_of"):
    pruning.compact_mlp(_mlp((4,)), multiple_of=0)


def test_compact_convnet_by_hand_removes_dead_filters(test_inputs):
  images = test_inputs.reshape(-1, 8, 8, 1)
  model = _convnet((6, 5))
  conv0, conv1 = model.convs
  k0, b0 = np.array(conv0.kernel[...]), np.array(conv0.bias[...])
  k1, b1 = np.array(conv1.kernel[...]), np.array(conv1.bias[...])
  b0[4] = b1[3] = 0.1
  head = np.array(model.head.kernel[...]).reshape(8, 8, 5, 10)
  k0[..., 2] = 0.0
  b0[2] = 0.0               # conv 0, filter 2: zero filter and bias -> zero map
  k0[..., 4] = 0.0          # conv 0, filter 4: zero filter, bias 0.1 -> kept (SAME padding)
  k1[:, :, 0, :] = 0.0      # conv 0, channel 0: feeds nothing
  k1[..., 3] = 0.0          # conv 1, filter 3: constant 0.1, folded into the head bias
  head[:, :, 1, :] = 0.0    # conv 1, channel 1: feeds nothing (NHWC flatten order)
  for variable, value in [(conv0.kernel, k0), (conv0.bias, b0), (conv1.kernel, k1),
                          (conv1.bias, b1), (model.head.kernel, head.reshape(320, 10))]:
    _set(variable, value)
  compact = pruning.compact_convnet(model)
  assert compact.hidden_features == (4, 3)
  assert pruning.count_params(model) - pruning.count_params(compact) == (
      _convnet_count((1, 6, 5)) - _convnet_count((1, 4, 3))
  )
  np.testing.assert_allclose(compact(images), model(images), atol=1e-5, rtol=0)


def test_compact_convnet_after_unit_pruning(test_inputs):
  images = test_inputs.reshape(-1, 8, 8, 1)
  model = _convnet((8, 6), seed=3)
  pruned, _ = pruning.magnitude_prune(
      nnx.state(model, nnx.Param), 0.5, structure="unit", mask={"convs": True, "head": False}
  )
  nnx.update(model, pruned)
  compact = pruning.compact_convnet(model)
  assert sum(compact.hidden_features) == 14 - 7
  assert pruning.count_params(compact) == _convnet_count((1, *compact.hidden_features))
  np.testing.assert_allclose(compact(images), model(images), atol=1e-5, rtol=0)


def test_compact_type_errors():
  with pytest.raises(TypeError, match="`model` must be a regjax MLP"):
    pruning.compact_mlp(_convnet((2,)))
  with pytest.raises(TypeError, match="`model` must be a regjax ConvNet"):
    pruning.compact_convnet(_mlp((2,)))


def test_weights_already_zero_are_pruned_first():
  # "Weights that were already zero count as the smallest": among ties at zero and a
  # smaller nonzero magnitude, every zero goes before 1e-6.
  params = {"kernel": jnp.array([[1e-6, 0.0, 5.0], [0.0, 2.0, 0.0]])}
  pruned, keep = pruning.magnitude_prune(params, 0.5)
  np.testing.assert_array_equal(keep["kernel"], [[True, False, True], [False, True, False]])
  np.testing.assert_array_equal(pruned["kernel"], params["kernel"])


def test_unit_pruning_scores_kernels_only_when_a_mask_selects_biases_too():
  # "With structure='unit' selected leaves with ndim < 2 are ignored": the bias is not a
  # candidate of its own; it follows its kernel's pruned units.
  params = {"kernel": jnp.array([[3.0, 0.1, 2.0, 0.2]]), "bias": jnp.array([9.0, 9.0, 0.0, 9.0])}
  pruned, keep = pruning.magnitude_prune(params, 0.5, structure="unit", mask=True)
  np.testing.assert_array_equal(keep["kernel"], [[True, False, True, False]])
  np.testing.assert_array_equal(pruned["bias"], [9.0, 0.0, 0.0, 0.0])


def test_compaction_leaves_the_input_model_unchanged():
  # "A new model; the input model is not modified" (both compact_mlp and compact_convnet).
  for model, compact in ((_mlp((6,)), pruning.compact_mlp),
                         (_convnet((3,)), pruning.compact_convnet)):
    first = next(iter(model.layers if isinstance(model, MLP) else model.convs))
    kernel = np.array(first.kernel[...])
    kernel[..., 0] = 0.0  # unit 0 is dead, so compaction has something to remove
    first.kernel.set_value(jnp.asarray(kernel))
    first.bias.set_value(first.bias[...].at[0].set(0.0))
    before = jax.tree.map(np.array, nnx.state(model, nnx.Param))
    small = compact(model)
    assert pruning.count_params(small) < pruning.count_params(model)
    jax.tree.map(np.testing.assert_array_equal, nnx.state(model, nnx.Param), before)
