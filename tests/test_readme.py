"""The README's Python examples run as printed, so the tour cannot drift from the API."""

import ast
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import regjax

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_its_examples():
  assert len(BLOCKS) >= 3


def _run(statement: ast.stmt, namespace: dict) -> None:
  module = ast.Module(body=[statement], type_ignores=[])
  exec(compile(module, str(README), "exec"), namespace)  # noqa: S102


@pytest.mark.slow
def test_readme_examples_run_in_order(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the sweep example writes acc.png
  model = regjax.models.MLP(64, (64, 64), 10, rngs=nnx.Rngs(0))
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  # The names the examples take as given: some kernel, and a model's parameters.
  namespace = {"kernel": jax.random.normal(jax.random.key(0), (8, 4)), "params": params}
  optimizers = 0
  for block in BLOCKS:
    for statement in ast.parse(block).body:
      _run(statement, namespace)
      targets = getattr(statement, "targets", [])
      if any(isinstance(t, ast.Name) and t.id == "tx" for t in targets):
        # Every optimizer of the tour takes a step on a real model's parameters.
        tx = namespace["tx"]
        updates, _ = tx.update(params, tx.init(params), params)
        assert all(jnp.all(jnp.isfinite(u)) for u in jax.tree.leaves(updates))
        optimizers += 1
  assert optimizers == 6
  np.testing.assert_allclose(
      regjax.prox.l1(jnp.array([2.5, -0.8, 0.1]), 0.2), [2.3, -0.6, 0.0], rtol=1e-6)
  result = namespace["result"]
  assert len(result) == 24 and not result["failed"].any()
  assert (tmp_path / "acc.png").stat().st_size > 0
  assert result.curves["zero_weights"].shape == (24, 10)
  assert (tmp_path / "curves.png").stat().st_size > 0
