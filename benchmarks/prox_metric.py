"""Cost of the group prox in Adam's metric, next to the plain group prox and Adam's step.

Three measurements, each interleaved (per-round ratios):

* the operator alone: ``prox.group_l2(x, λ, metric=d)`` (a safeguarded Newton iteration
  per unit, :mod:`regjax._secular`) against the closed-form ``prox.group_l2(x, λ)``, on
  a kernel whose metric spreads over three orders of magnitude within each unit,
  ``--steps`` applications inside one ``lax.scan`` per call;
* whole optimizer steps on the digits MLP (64-64-64-10) and on a wide MLP (1024x1024
  kernels), batch 128, with the same scanned steps as ``benchmarks.regularizer_overhead``
  (full step, and the update alone on a fixed gradient), for:
  ``optax.adam``; ``chain(adam, proximal(group_l2))`` (the plain group prox after Adam,
  Euclidean metric); ``prox_adam(prox_fn=partial(group_l2, axis=0))`` (ProxGen, the
  group prox in Adam's metric); ``prox_adam`` with L1 (separable, closed form).

Every group prox acts on the kernels, one group per output unit (``axis=0``). Each ratio is
printed twice: from wall time (the project's convention) and from the process's CPU time
in the same calls, which a machine shared with other jobs disturbs much less (CPU time
counts the work of every XLA thread, not the time spent waiting for a core).

Run: ``python -m benchmarks.prox_metric [--quick]``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import regjax
from benchmarks import _common
from benchmarks.regularizer_overhead import model_and_batch, scanned

LEARNING_RATE = 1e-3
STRENGTH = 1e-4
UNITS = functools.partial(regjax.prox.group_l2, axis=0)


def optimizers() -> dict[str, optax.GradientTransformation]:
  kernels = regjax.masks.matrices
  return {
      "adam": optax.adam(LEARNING_RATE),
      "adam_then_group": optax.chain(
          optax.adam(LEARNING_RATE),
          regjax.proximal(UNITS, STRENGTH, LEARNING_RATE, mask=kernels)),
      "prox_adam_group": regjax.prox_adam(LEARNING_RATE, STRENGTH, prox_fn=UNITS, mask=kernels),
      "prox_adam_l1": regjax.prox_adam(LEARNING_RATE, STRENGTH, mask=kernels),
  }


def with_cpu_time(
    programs: dict[str, Callable[[], Any]]
) -> tuple[dict[str, Callable[[], Any]], dict[str, list[float]]]:
  """Wraps each program to log its process CPU time per call (after the warmup round)."""
  logs: dict[str, list[float]] = {name: [] for name in programs}

  def wrap(name, fn):
    def run():
      start = time.process_time()
      out = jax.block_until_ready(fn())
      logs[name].append(time.process_time() - start)
      return out
    return run

  return {name: wrap(name, fn) for name, fn in programs.items()}, logs


def ratios(what: str, wall: dict[str, np.ndarray], logs: dict[str, list[float]],
           ours: str, base: str) -> None:
  cpu = {name: np.asarray(values[-len(wall[name]):]) for name, values in logs.items()}
  _common.ratio_line(f"{what} {ours}/{base}", wall[ours] / wall[base])
  _common.ratio_line(f"{what} {ours}/{base} (cpu time)", cpu[ours] / cpu[base])


def operator(size: int, steps: int, repeats: int, machine: str) -> None:
  rng = np.random.default_rng(0)
  kernel = jnp.asarray(rng.standard_normal((size, size)) / np.sqrt(size), jnp.float32)
  metric = jnp.asarray(10.0 ** rng.uniform(-3, 0, (size, size)), jnp.float32)
  strength = 0.05 * float(np.median(np.linalg.norm(metric * kernel, axis=0)))

  def program(with_metric):
    @jax.jit
    def run(x, d):
      def body(x, _):
        z = UNITS(x, strength, metric=d) if with_metric else UNITS(x, strength)
        return z * 1.01, None  # keep the scale, so every step does the same work

      return jax.lax.scan(body, x, None, length=steps)[0]

    jax.block_until_ready(run(kernel, metric))
    return lambda: run(kernel, metric)

  programs, logs = with_cpu_time({"plain": program(False), "metric": program(True)})
  times = _common.interleave(programs, repeats)
  print(f"-- group_l2 on a {size}x{size} kernel ({size} units), metric spread 1e3 within "
        f"each unit, {steps} applications per call, {repeats} rounds")
  print(f"  on {machine}: plain {np.median(times['plain']) / steps * 1e6:.3g} us, "
        f"metric {np.median(times['metric']) / steps * 1e6:.3g} us per application (wall)")
  ratios(f"operator {size}x{size}", times, logs, "metric", "plain")


def optimizer_steps(name: str, width: int, depth_in: int, classes: int, batch: int,
                    steps: int, repeats: int, machine: str) -> None:
  params, loss, data = model_and_batch(width, depth_in, classes, batch)
  txs = optimizers()
  print(f"-- {name}: kernels {[tuple(p['kernel'].shape) for p in params['layers'].values()]}, "
        f"batch {batch}, {steps} steps per timed call, {repeats} rounds", flush=True)
  for full in (True, False):
    mode = "full step" if full else "update only"
    programs, logs = with_cpu_time(
        {k: scanned(tx, loss, params, data, steps, full) for k, tx in txs.items()})
    times = _common.interleave(programs, repeats)
    print(f"  {mode}: time per step on {machine} (ms): " + ", ".join(
        f"{k} {np.median(v) / steps * 1e3:.3g}" for k, v in times.items()))
    for ours, base in (("prox_adam_group", "adam"), ("prox_adam_group", "adam_then_group"),
                       ("adam_then_group", "adam"), ("prox_adam_l1", "adam")):
      ratios(f"{name} {mode}", times, logs, ours, base)
  print(flush=True)


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=1024, help="width of the wide MLP")
  args = parser.parse_args()
  if args.quick:  # every code path at tiny sizes
    operators, configs, repeats = [(32, 5)], [("wide MLP 32", 32, 32, 32, 16, 1)], 2
  else:
    operators = [(64, 200), (args.width, 5)]
    configs = [("digits MLP", 64, 64, 10, 128, 100),
               (f"wide MLP {args.width}", args.width, args.width, args.width, 128, 2)]
    repeats = 9
  repeats = args.repeats or repeats
  _common.print_header("group prox in Adam's metric: cost next to the plain prox and Adam",
                       args, [f"learning rate {LEARNING_RATE}, strength {STRENGTH}; group "
                              "proxes on the kernels, one group per output unit"])
  machine = _common.machine_name()
  for size, steps in operators:
    operator(size, steps, repeats, machine)
  for config in configs:
    optimizer_steps(*config, repeats=repeats, machine=machine)
  _common.print_footer()


if __name__ == "__main__":
  main()
