"""Post-training magnitude pruning, fine-tuning that keeps pruned weights at zero, compaction.

The workflow: train, ``magnitude_prune`` to an exact sparsity, fine-tune with
``optax.chain(optimizer, keep_pruned(keep_mask))``, then, after unit (neuron / filter)
pruning, ``compact_mlp`` / ``compact_convnet`` drop the dead units to get a physically
smaller model computing the same function.

References:
  Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient Neural
  Networks", NeurIPS 2015.
  Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient ConvNets", ICLR 2017.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from regjax import _checks, _transform_base, _trees
from regjax.nn.models import MLP, ConvNet
from regjax.typing import Mask, Params, Scalar

__all__ = ["compact_convnet", "compact_mlp", "count_params", "keep_pruned", "magnitude_prune"]


def _bias_partner(paths: list[tuple[Any, ...]], index: int) -> int | None:
  """Index of the leaf named ``bias`` beside the leaf ``kernel`` at ``index``, if any."""
  names = [_trees.path_names(path) for path in paths]
  name = names[index]
  positions = [i for i, part in enumerate(name) if part == "kernel"]
  if not positions:
    return None
  at = positions[-1]
  wanted = (*name[:at], "bias", *name[at + 1 :])
  return names.index(wanted) if wanted in names else None


def _prune_count(sparsity: Any, n: int) -> Any:
  if _checks.is_concrete(sparsity):
    return int(round(float(sparsity) * n))
  return jnp.round(sparsity * n).astype(jnp.int32)


def _keep_smallest_removed(scores: jax.Array, count: Any) -> jax.Array:
  """Bool vector: False at the ``count`` smallest scores (ties: lower index first)."""
  order = jnp.argsort(scores, stable=True)
  ranks = jnp.zeros(scores.shape, jnp.int32).at[order].set(
      jnp.arange(scores.shape[0], dtype=jnp.int32)
  )
  return ranks >= count


def magnitude_prune(
    params: Params,
    sparsity: Scalar,
    *,
    scope: str = "global",
    structure: str = "weight",
    mask: Mask = None,
    prune_bias: bool = True,
) -> tuple[Params, Params]:
  r"""Zero the smallest-magnitude weights, or whole units, to an exact sparsity.

  Among the selected leaves, with ``n`` candidates (weights, or output units), exactly

  .. math:: k = \operatorname{round}(\text{sparsity} \cdot n)

  candidates with the smallest score are pruned: ``|w|`` for ``structure="weight"``, the
  L2 norm of the unit's kernel slice ``kernel[..., j]`` (Flax layout, outputs last: a
  column of a dense kernel, a filter of a conv kernel) for ``structure="unit"``. Ties are
  broken by position (earlier leaf, then lower row-major index, pruned first), so the
  result is deterministic and the count is exact. With ``scope="global"`` one threshold
  is shared by all selected leaves; with ``scope="per_layer"`` each leaf loses
  ``round(sparsity * n_leaf)`` of its own candidates.

  With ``structure="unit"`` and ``prune_bias``, the entry ``j`` of the leaf named
  ``bias`` next to a pruned ``kernel`` (as in Flax's ``Linear`` and ``Conv``) is zeroed
  too, so the unit is dead and ``compact_mlp``/``compact_convnet`` can remove it.
  The default mask includes the output layer; pass a mask without it to keep every
  class logit alive.

  Args:
    params: a pytree of float arrays, e.g. ``nnx.state(model, nnx.Param)``.
    sparsity: fraction of candidates to prune, in [0, 1]. A traced value (under ``jit``
      or ``vmap``) is not checked and ``k`` is then rounded in float32.
    scope: "global" or "per_layer".
    structure: "weight" or "unit".
    mask: which leaves are pruned: an Optax-style pytree of bools (or a prefix of one)
      or a callable ``params -> mask``. Default: leaves with ``ndim >= 2`` (kernels,
      not biases). With ``structure="unit"`` selected leaves with ``ndim < 2`` are
      ignored (they follow their kernel through ``prune_bias``).
    prune_bias: with ``structure="unit"``, also zero the bias of each pruned unit.

  Returns:
    ``(pruned_params, keep_mask)``: the parameters with pruned coordinates set to 0.0,
    and a tree of the same structure holding bool arrays, False exactly at the pruned
    coordinates (all True on unselected leaves). Weights that were already zero count
    as the smallest, so they are pruned first.

  References:
    Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient
    Neural Networks", 2015; Li et al., "Pruning Filters for Efficient ConvNets", 2017.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.nn import pruning
    >>> params = {"kernel": jnp.array([[0.1, -2.0], [0.5, 3.0]]), "bias": jnp.ones(2)}
    >>> pruned, keep = pruning.magnitude_prune(params, 0.5)  # biases are not candidates
    >>> pruned["kernel"].tolist(), pruned["bias"].tolist()
    ([[0.0, -2.0], [0.0, 3.0]], [1.0, 1.0])
    >>> keep["kernel"].tolist()
    [[False, True], [False, True]]
    >>> units, _ = pruning.magnitude_prune(params, 0.5, structure="unit")  # whole columns
    >>> units["kernel"].tolist(), units["bias"].tolist()
    ([[0.0, -2.0], [0.0, 3.0]], [0.0, 1.0])
  """
  _checks.check_choice("scope", scope, ("global", "per_layer"))
  _checks.check_choice("structure", structure, ("weight", "unit"))
  _checks.check_number_tree("sparsity", sparsity, low=0.0, high=1.0, allow_callable=False)
  if jnp.ndim(sparsity) != 0:
    raise ValueError(f"`sparsity` must be a scalar, got shape {jnp.shape(sparsity)}.")
  path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [path for path, _ in path_leaves]
  leaves = [jnp.asarray(leaf) for _, leaf in path_leaves]
  selected = jax.tree.leaves(_trees.resolve_mask(_trees.MATRICES if mask is None else mask,
                                                  params))
  # Units live in kernels; a 1-D leaf under a selected sub-tree (a bias) is not scored
  # and follows its kernel through `prune_bias` instead.
  chosen = [
      i for i, s in enumerate(selected) if s and (structure == "weight" or leaves[i].ndim >= 2)
  ]
  if not chosen:
    raise ValueError(
        f"`mask` selects no parameter leaf to prune with structure={structure!r} (unit "
        "pruning needs leaves with ndim >= 2)."
    )
  _checks.check_float_params("params", [leaves[i] for i in chosen])

  def scores(leaf: jax.Array) -> jax.Array:
    leaf = leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32))
    if structure == "weight":
      return jnp.abs(leaf).ravel()
    return jnp.sqrt(jnp.sum(jnp.square(leaf), axis=tuple(range(leaf.ndim - 1))))

  per_leaf_scores = [scores(leaves[i]) for i in chosen]
  if scope == "global":
    flat = jnp.concatenate(per_leaf_scores)
    keep_flat = _keep_smallest_removed(flat, _prune_count(sparsity, flat.shape[0]))
    splits = np.cumsum([s.shape[0] for s in per_leaf_scores])[:-1]
    keep_parts = jnp.split(keep_flat, splits)
  else:
    keep_parts = [
        _keep_smallest_removed(s, _prune_count(sparsity, s.shape[0])) for s in per_leaf_scores
    ]

  keep = [jnp.ones(leaf.shape, jnp.bool_) for leaf in leaves]
  for i, part in zip(chosen, keep_parts, strict=True):
    if structure == "weight":
      keep[i] = part.reshape(leaves[i].shape)
    else:
      keep[i] = jnp.broadcast_to(part, leaves[i].shape)
      partner = _bias_partner(paths, i) if prune_bias else None
      if partner is not None and leaves[partner].shape == part.shape:
        keep[partner] = keep[partner] & part
  pruned = [
      jnp.where(k, leaf, jnp.zeros((), leaf.dtype)) for k, leaf in zip(keep, leaves, strict=True)
  ]
  return jax.tree.unflatten(treedef, pruned), jax.tree.unflatten(treedef, keep)


def keep_pruned(keep_mask: Params) -> optax.GradientTransformation:
  r"""Hold pruned coordinates at exactly zero while fine-tuning the others.

  .. math:: u'_i = \begin{cases} u_i & \text{keep}_i \\ -p_i & \text{otherwise}\end{cases}

  so that ``optax.apply_updates`` gives ``p_i + u'_i = 0.0`` exactly at pruned
  coordinates, whatever earlier transforms proposed.

  Place it LAST in the chain, after the optimizer, learning-rate scaling and any weight
  decay: ``optax.chain(optax.adam(1e-3), keep_pruned(keep_mask))``. A transform placed
  after it would move the pruned weights off zero again. The inner optimizer's state
  (e.g. Adam's moments) still sees the gradients of pruned coordinates; only the applied
  update is overridden.

  Args:
    keep_mask: the second output of `magnitude_prune`: a tree with the parameters'
      leaves, each a bool array of the leaf's shape (or a scalar bool), False where the
      parameter is held at zero. A plain dict matching an ``nnx.State`` leaf for leaf is
      accepted.

  Returns:
    An ``optax.GradientTransformation`` with state ``optax.EmptyState()``; its
    ``update`` requires ``params``.

  References:
    Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient
    Neural Networks", NeurIPS 2015 (retraining with the pruned connections held at zero).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from regjax.nn import pruning
    >>> params = {"kernel": jnp.array([[0.1, -2.0], [0.5, 3.0]])}
    >>> params, keep = pruning.magnitude_prune(params, 0.5)
    >>> tx = optax.chain(optax.sgd(0.1), pruning.keep_pruned(keep))
    >>> grads = {"kernel": jnp.ones((2, 2))}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> kernel = optax.apply_updates(params, updates)["kernel"]
    >>> kernel[:, 0].tolist()  # the pruned weights stay exactly zero
    [0.0, 0.0]
    >>> bool(jnp.allclose(kernel[:, 1], jnp.array([-2.1, 2.9])))  # the others train
    True
  """
  mask_leaves = jax.tree.leaves(keep_mask)
  if not mask_leaves:
    raise ValueError("`keep_mask` is empty; pass the mask returned by magnitude_prune.")
  for leaf in mask_leaves:
    if jnp.asarray(leaf).dtype != jnp.bool_:
      raise TypeError(
          f"`keep_mask` must hold bool arrays, got a leaf of dtype {jnp.asarray(leaf).dtype}."
      )

  def init_fn(params: Params) -> optax.EmptyState:
    del params
    return optax.EmptyState()

  def update_fn(updates: Params, state: optax.EmptyState,
                params: Params = None) -> tuple[Params, optax.EmptyState]:
    _transform_base.need_params(params)
    update_leaves, treedef = jax.tree.flatten(updates, is_leaf=_trees.is_leaf)
    param_leaves = jax.tree.leaves(params, is_leaf=_trees.is_leaf)
    keeps = [jnp.asarray(k) for k in jax.tree.leaves(
        _trees.match("keep_mask", keep_mask, updates), is_leaf=_trees.is_leaf)]
    new_leaves = []
    for u, p, keep in zip(update_leaves, param_leaves, keeps, strict=True):
      if _trees.is_leaf(u):
        new_leaves.append(u)
        continue
      if keep.ndim != 0 and keep.shape != u.shape:
        raise ValueError(
            f"`keep_mask` leaf of shape {keep.shape} does not match an update of shape "
            f"{u.shape}."
        )
      new_leaves.append(jnp.where(keep, u, -p).astype(u.dtype))
    return jax.tree.unflatten(treedef, new_leaves), state

  return optax.GradientTransformation(init_fn, update_fn)


def count_params(model: nnx.Module | Params) -> int:
  """Number of scalars in the ``nnx.Param`` variables of a module (or leaves of a tree).

  Args:
    model: an ``nnx.Module``, or a pytree of arrays whose leaves are all counted.

  Returns:
    The total size of the parameters, a Python int.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax.nn import models, pruning
    >>> pruning.count_params(models.MLP(4, [8], 2, rngs=nnx.Rngs(0)))  # 4*8 + 8 + 8*2 + 2
    58
    >>> pruning.count_params({"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)})
    8
  """
  tree = nnx.state(model, nnx.Param) if isinstance(model, nnx.Module) else model
  return int(sum(np.size(leaf) for leaf in jax.tree.leaves(tree)))


def _keep_one_if_empty(keep: np.ndarray) -> bool:
  """Keep unit 0 when every unit is removable; True if it had to (caller zeroes it)."""
  if keep.any():
    return False
  keep[0] = True
  return True


def _activation_of(model: MLP | ConvNet, bias: np.ndarray) -> np.ndarray:
  return np.asarray(model.activation(jnp.asarray(bias)))


def _bias(layer: nnx.Linear | nnx.Conv) -> nnx.Param[jax.Array]:
  """The bias of a layer of a regjax model, which always has one (Flax types it optional)."""
  return cast(nnx.Param[jax.Array], layer.bias)


def _kernels_and_biases(model: MLP | ConvNet, kind: type, layers: str
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Writable host copies of the kernels and biases of ``model.<layers>``."""
  if not isinstance(model, kind):
    raise TypeError(f"`model` must be a regjax {kind.__name__}, got {type(model).__name__}.")
  modules = getattr(model, layers)
  return ([np.array(m.kernel[...]) for m in modules], [np.array(_bias(m)[...]) for m in modules])


def compact_mlp(model: MLP, multiple_of: int = 1) -> MLP:
  r"""A smaller `MLP` computing the same function, without the dead hidden units.

  Hidden unit ``j`` of layer ``i`` is removed when either

  * its outgoing row ``layers[i+1].kernel[j, :]`` is all zero (it feeds nothing), or
  * its incoming column ``layers[i].kernel[:, j]`` is all zero: it then outputs the
    constant :math:`c_j = \sigma(b_j)` (0 for relu with :math:`b_j \le 0`), which is
    folded into the next bias, :math:`b_{i+1} \mathrel{+}= c_j W_{i+1}[j, :]`.

  Removal repeats until nothing changes, since dropping a unit can leave others dead.
  If every unit of a layer is removable, one all-zero unit is kept so no layer has
  width zero. Outputs agree with the original up to float rounding of the folded
  biases. Works on concrete parameters only (not under ``jit``).

  Fewer units is not always faster: on a CPU with 16-float vector registers a 55-53 MLP
  ran 1.3x as long as the 64-64 one it came from (``benchmarks/compacted_widths.py``).
  ``multiple_of`` pads each compacted width up to a multiple (never beyond the original
  width) with units whose weights and bias are exactly zero, so the function is unchanged.

  Args:
    model: an `MLP`, typically after ``magnitude_prune(..., structure="unit")``.
    multiple_of: round each hidden width up to a multiple of this (a positive int; 1
      keeps the compacted widths as they are).

  Returns:
    A new `MLP`; the input model is not modified.

  References:
    Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient ConvNets", ICLR
    2017 (removing pruned units and their connections to get a smaller network).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax import masks
    >>> from regjax.nn import models, pruning
    >>> model = models.MLP(4, [6], 2, rngs=nnx.Rngs(0))
    >>> pruned, _ = pruning.magnitude_prune(nnx.state(model, nnx.Param), 0.5,
    ...                                     structure="unit", mask=masks.by_path("layers/0"))
    >>> nnx.update(model, pruned)  # 3 of the 6 hidden units are now dead
    >>> small = pruning.compact_mlp(model)
    >>> small.hidden_features, pruning.count_params(small), pruning.count_params(model)
    ((3,), 23, 44)
    >>> x = jnp.ones((5, 4))
    >>> bool(jnp.allclose(small(x), model(x), atol=1e-6))  # the same function
    True
  """
  multiple_of = _checks.check_int("multiple_of", multiple_of)
  original = list(model.hidden_features)
  kernels, biases = _kernels_and_biases(model, MLP, "layers")
  changed = True
  while changed:
    changed = False
    for i in range(len(kernels) - 1):
      dead_in = ~np.any(kernels[i] != 0, axis=0)
      dead_out = ~np.any(kernels[i + 1] != 0, axis=1)
      fold = dead_in & ~dead_out
      if fold.any():
        const = _activation_of(model, biases[i])
        shift = const[fold] @ kernels[i + 1][fold]
        biases[i + 1] = (biases[i + 1] + shift).astype(biases[i + 1].dtype)
        kernels[i + 1][fold] = 0
      keep = ~(dead_in | dead_out)
      if _keep_one_if_empty(keep):
        kernels[i][:, 0] = 0
        biases[i][0] = 0
        kernels[i + 1][0] = 0
      if keep.all():
        continue
      kernels[i] = kernels[i][:, keep]
      biases[i] = biases[i][keep]
      kernels[i + 1] = kernels[i + 1][keep]
      changed = True
  for i, width in enumerate(original):
    extra = min(-kernels[i].shape[1] % multiple_of, width - kernels[i].shape[1])
    kernels[i] = np.pad(kernels[i], ((0, 0), (0, extra)))
    biases[i] = np.pad(biases[i], (0, extra))
    kernels[i + 1] = np.pad(kernels[i + 1], ((0, extra), (0, 0)))
  hidden = [k.shape[1] for k in kernels[:-1]]
  # Only the structure is needed; every parameter is overwritten below, so skip the
  # random initialisation.
  new = nnx.eval_shape(
      lambda: MLP(
          model.in_features, hidden, model.out_features,
          rngs=nnx.Rngs(0), activation=model.activation,
      )
  )
  for layer, kernel, bias in zip(new.layers, kernels, biases, strict=True):
    layer.kernel.set_value(jnp.asarray(kernel))
    _bias(layer).set_value(jnp.asarray(bias))
  return new


def compact_convnet(model: ConvNet) -> ConvNet:
  r"""A smaller `ConvNet` computing the same function, without the dead filters.

  Output channel ``c`` of conv ``i`` is removed when either

  * its outgoing weights are all zero: ``convs[i+1].kernel[:, :, c, :]``, or for the last
    conv the read-out rows of channel ``c`` (``head.kernel`` seen as
    ``(height, width, channels, out)``, the NHWC flatten order), or
  * its filter ``convs[i].kernel[..., c]`` is all zero, so the channel is the constant
    map :math:`\sigma(b_c)`, and either :math:`\sigma(b_c) = 0`, or the conv is the last
    one and the constant is folded into the head's bias (a constant map entering a SAME
    padded conv is not constant after padding, so it cannot be folded there).

  Removal repeats until nothing changes; one all-zero channel is kept if all would go.
  Works on concrete parameters only (not under ``jit``).

  Args:
    model: a `ConvNet`, typically after ``magnitude_prune(..., structure="unit")``.

  Returns:
    A new `ConvNet`; the input model is not modified.

  References:
    Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient ConvNets", ICLR 2017.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from regjax import masks
    >>> from regjax.nn import models, pruning
    >>> model = models.ConvNet(1, [4], 3, image_shape=(4, 4), rngs=nnx.Rngs(0))
    >>> pruned, _ = pruning.magnitude_prune(nnx.state(model, nnx.Param), 0.5,
    ...                                     structure="unit", mask=masks.by_path("convs"))
    >>> nnx.update(model, pruned)  # 2 of the 4 filters are now dead
    >>> small = pruning.compact_convnet(model)
    >>> small.hidden_features, small.head.in_features
    ((2,), 32)
    >>> x = jnp.ones((2, 4, 4, 1))
    >>> bool(jnp.allclose(small(x), model(x), atol=1e-6))  # the same function
    True
  """
  kernels, biases = _kernels_and_biases(model, ConvNet, "convs")
  height, width = model.image_shape
  head_kernel = np.array(model.head.kernel[...]).reshape(height, width, -1, model.out_features)
  head_bias = np.array(_bias(model.head)[...])
  last = len(kernels) - 1
  changed = True
  while changed:
    changed = False
    for i in range(len(kernels)):
      outgoing = kernels[i + 1] if i < last else head_kernel
      dead_in = ~np.any(kernels[i] != 0, axis=(0, 1, 2))
      dead_out = ~np.any(outgoing != 0, axis=(0, 1, 3))
      const = _activation_of(model, biases[i])
      if i == last:
        fold = dead_in & ~dead_out
        if fold.any():
          shift = np.einsum("c,hwco->o", const[fold], head_kernel[:, :, fold, :])
          head_bias = (head_bias + shift).astype(head_bias.dtype)
          head_kernel[:, :, fold, :] = 0
        removable = dead_in | dead_out
      else:
        removable = (dead_in & (const == 0)) | dead_out
      keep = ~removable
      if _keep_one_if_empty(keep):
        kernels[i][..., 0] = 0
        biases[i][0] = 0
        outgoing[:, :, 0, :] = 0
      if keep.all():
        continue
      kernels[i] = kernels[i][..., keep]
      biases[i] = biases[i][keep]
      if i < last:
        kernels[i + 1] = kernels[i + 1][:, :, keep, :]
      else:
        head_kernel = head_kernel[:, :, keep, :]
      changed = True
  new = nnx.eval_shape(
      lambda: ConvNet(
          model.in_features,
          [k.shape[-1] for k in kernels],
          model.out_features,
          image_shape=model.image_shape,
          kernel_size=model.kernel_size,
          rngs=nnx.Rngs(0),
          activation=model.activation,
      )
  )
  for conv, kernel, bias in zip(new.convs, kernels, biases, strict=True):
    conv.kernel.set_value(jnp.asarray(kernel))
    _bias(conv).set_value(jnp.asarray(bias))
  new.head.kernel.set_value(jnp.asarray(head_kernel.reshape(-1, model.out_features)))
  _bias(new.head).set_value(jnp.asarray(head_bias))
  return new
