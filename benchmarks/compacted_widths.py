"""Inference time of an MLP against its hidden widths: does a narrower network run faster?

Compaction (``regjax.nn.pruning.compact_mlp``) removes dead units, so it leaves widths
such as 55-53 where the dense network had 64-64. This times a jitted forward pass of
``64-W-W-10`` ReLU MLPs on ``ROWS`` rows for several widths W, interleaved, each as a ratio
to the 64-64 network measured in the same round (wall time; the pass is pure compute).

Run: ``python -m benchmarks.compacted_widths [--quick]``.
"""

from __future__ import annotations

import numpy as np

from benchmarks import _common

ROWS = 28_752  # the 1,797 digits 16 times over, as notebook 21 times them
WIDTHS = ((64, 64), (56, 56), (55, 53), (48, 48), (32, 51), (32, 32))


def forward(layers, x):
  import jax

  for kernel, bias in layers[:-1]:
    x = jax.nn.relu(x @ kernel + bias)
  return x @ layers[-1][0] + layers[-1][1]


def network(widths: tuple[int, ...], seed: int = 0):
  import jax.numpy as jnp

  dims = (64, *widths, 10)
  rng = np.random.default_rng(seed)
  return [(jnp.asarray(rng.normal(size=(a, b)), jnp.float32), jnp.zeros(b, jnp.float32))
          for a, b in zip(dims[:-1], dims[1:], strict=True)]


def main() -> None:
  import jax
  import jax.numpy as jnp

  parser = _common.parser(__doc__.splitlines()[0])
  args = parser.parse_args()
  rows, repeats = (1_797, 3) if args.quick else (ROWS, 30)
  repeats = args.repeats or repeats
  _common.print_header("forward-pass time against hidden widths", args, [
      f"64-W-W-10 ReLU MLP, float32, {rows} rows, widths {WIDTHS}, {repeats} rounds"])
  x = jnp.asarray(np.random.default_rng(1).normal(size=(rows, 64)), jnp.float32)
  run = jax.jit(forward)
  nets = {widths: network(widths) for widths in WIDTHS}
  calls = {"-".join(map(str, w)): (lambda layers=layers: run(layers, x))
           for w, layers in nets.items()}
  for call in calls.values():
    jax.block_until_ready(call())  # compile every shape first
  times = _common.interleave(calls, repeats)
  machine = _common.machine_name()
  print(f"-- seconds per forward pass on {machine}:")
  for name, values in times.items():
    print(f"  {name:6s} {_common.spread(values)}")
  for name in list(calls)[1:]:
    _common.ratio_line(f"time {name}/64-64", times[name] / times["64-64"])
  _common.print_footer()


if __name__ == "__main__":
  main()
