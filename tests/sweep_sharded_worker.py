"""Worker for test_sweep_sharded.py: sweeps on 4 host CPU devices, prints facts as JSON.

Run with XLA_FLAGS=--xla_force_host_platform_device_count=4 and JAX_PLATFORMS=cpu; the
device count is fixed when JAX starts, hence the separate process.
"""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

S = importlib.import_module("regjax.experiment.sweeps")  # the module, whatever regjax re-exports
R = importlib.import_module("regjax.experiment.rows")
P = importlib.import_module("regjax.experiment.progress")

jax.config.update("jax_numpy_rank_promotion", "raise")

_A = jax.random.normal(jax.random.key(3), (10, 4))
_B = _A @ jnp.array([1.0, 0.0, -1.0, 2.0])
_STEPS = 30


def train(hparams, key):
  """ISTA on a small lasso problem, reporting progress every 10 steps."""

  def step(x, t):
    S.progress_callback(t, _STEPS, every=10)
    z = x - 0.02 * (_A.T @ (_A @ x - _B))
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - 0.02 * hparams["l1"], 0.0), None

  x, _ = jax.lax.scan(step, 0.1 * jax.random.normal(key, (4,)), jnp.arange(_STEPS))
  return {"loss": 0.5 * jnp.sum((_A @ x - _B) ** 2), "x0": x[0]}


def shards(array):
  """(device id, first row, number of rows) of each local shard of `array`."""
  return [
      (s.device.id, s.index[0].start or 0, int(s.data.shape[0])) for s in array.addressable_shards
  ]


def main():
  placed, returned, steps = [], [], []
  put, to_host, report = R._put_on_mesh, R._to_host, P._StepReporter.__call__
  R._put_on_mesh = lambda a, s: placed.append((a, put(a, s))) or placed[-1][1]
  R._to_host = lambda x: returned.append(x) or to_host(x)

  def counting(self, step):
    steps.append(int(step))
    report(self, step)

  P._StepReporter.__call__ = counting

  values = np.logspace(-2, 1, 8)
  one_device = Mesh(np.array(jax.devices()[:1]), ("grid",))
  reference = S.sweep(train, S.grid(l1=values), mesh=one_device, progress=False)
  facts = {"devices": len(jax.devices())}
  for name, points, chunk in (("eight", 8, None), ("six", 6, None), ("chunked", 8, 3)):
    placed.clear(), returned.clear(), steps.clear()
    grid = S.grid(l1=values[:points])
    sharded = S.sweep(train, grid, seeds=(0,), chunk_size=chunk, progress=True, desc=name)
    facts[name] = {
        "rows": len(sharded),
        "chunk_size": sharded.chunk_size,
        "input_shards": [shards(array) for _, array in placed],
        "inputs_match": all(
            np.array_equal(np.asarray(s.data), host[s.index])
            for host, array in placed
            for s in array.addressable_shards
        ),
        "output_shards": [shards(array) for array in returned],
        "steps": list(steps),
        "max_difference": max(
            float(np.max(np.abs(sharded[m] - reference[m][:points]))) for m in ("l1", "loss", "x0")
        ),
    }
  print(json.dumps(facts))


if __name__ == "__main__":
  main()
