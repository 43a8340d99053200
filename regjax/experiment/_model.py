"""The model side of a :class:`regjax.Trainer`: its structure, rebuilding it per step,
the sown activations it reports, and which kernels are hidden layers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from regjax import _trees
from regjax.typing import Params, PyTree

__all__ = ["Structure", "build", "hidden_kernels", "hidden_mask", "merge", "sown"]


class Structure(NamedTuple):
  """What every row's model shares: built once, abstractly."""

  graph: Any  # nnx.GraphDef of the model split into (Param, RngState, rest)
  rngs: Any  # ShapeDtypeStructs of the random streams' state
  outputs: list[str]  # sown paths whose value is the model's output (the output layer)


def sown(captured: Any) -> dict[str, jax.Array]:
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


def build(model: Callable[[nnx.Rngs], nnx.Module], example: Any) -> Structure:
  """The graph, the random-stream template and the output layer's paths of ``model``.

  Args:
    model: ``rngs -> nnx.Module``.
    example: one input example ``[1, ...]`` to find the output layer, or None.
  """
  found: dict[str, Any] = {}

  def trace() -> None:
    module = model(nnx.Rngs(0, params=0))
    found["graph"], *states = nnx.split(module, nnx.Param, nnx.RngState, ...)
    rngs = states[1]
    found["rngs"] = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                 nnx.to_pure_dict(rngs))
    module.eval()
    found["outputs"] = []
    if example is not None:  # the layers whose output is the model's output
      out, captured = nnx.capture(module, nnx.Intermediate,
                                  method_outputs=nnx.Intermediate)(jnp.asarray(example))
      found["outputs"] = [path for path, value in sown(captured).items() if value is out]

  jax.eval_shape(trace)
  return Structure(found["graph"], found["rngs"], found["outputs"])


def merge(structure: Structure, params: Any, model_state: Any, rng_key: jax.Array,
          step: Any) -> Any:
  """The model with ``params`` and ``model_state``; its random streams reseeded with
  ``fold_in(fold_in(rng_key, step), i)``, one key per stream."""
  base = jax.random.fold_in(jax.random.wrap_key_data(rng_key), step)
  leaves, treedef = jax.tree.flatten(structure.rngs)
  rngs = jax.tree_util.tree_unflatten(treedef, [
      jax.random.fold_in(base, i) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
      else jnp.zeros(leaf.shape, leaf.dtype) for i, leaf in enumerate(leaves)])
  return nnx.merge(structure.graph, params, rngs, model_state)


def hidden_kernels(params: Params) -> PyTree:
  """Mask of the kernels of hidden layers: every ``ndim >= 2`` leaf but the last one.

  The last kernel in path order is taken as the output layer, which holds for
  :class:`regjax.models.MLP`; :meth:`regjax.Trainer.hidden_mask` finds it from the model.

  Examples:
    >>> import jax.numpy as jnp
    >>> from regjax.experiment.trainer import hidden_kernels
    >>> params = {"layers": {0: {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)},
    ...                      1: {"kernel": jnp.zeros((4, 2)), "bias": jnp.zeros(2)}}}
    >>> hidden_kernels(params)["layers"][0]["kernel"], hidden_kernels(params)["layers"][1]
    (True, {'bias': False, 'kernel': False})
  """
  kernels = [path for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if jnp.ndim(leaf) >= 2]
  last = kernels[-1] if kernels else None
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: jnp.ndim(leaf) >= 2 and path != last, params)


def hidden_mask(params: Any, hidden: Any, outputs: list[str]) -> Any:
  """The kernels counted by ``dead_units``: ``hidden`` if given, else every kernel but
  the output layer's (``outputs``, the sown paths of the model's output)."""
  if hidden is not None:
    return hidden(params) if callable(hidden) else hidden
  output_modules = {tuple(p.split("/")[:-1]) for p in outputs}
  if not output_modules:
    return hidden_kernels(params)

  def keep(path: Any, leaf: Any) -> bool:
    names = tuple(str(name) for name in _trees.path_names(path))
    return jnp.ndim(leaf) >= 2 and names[:-1] not in output_modules

  return jax.tree_util.tree_map_with_path(keep, params)
