"""Cost of recording curves: a sweep with ``eval_every`` = 10, 100, 1000 vs none.

The digits MLP (``regjax.models.MLP(64, (64, 64), 10)``, ``regjax.prox_adam``, batch
128) at K = 16 grid points, S steps, trained by ``regjax.sweep`` with the Trainer
recording every metric (held-out loss and accuracy on the 360 test digits, train loss,
exact zeros, dead units, sown activations) every N steps inside the compiled scan, and
without recording. Warm calls (programs cached), interleaved; the overhead is the ratio
of sweep times within each round, in process CPU time (steady on a shared machine; the
recording adds work, not waiting) and, beside it, wall time. Target: <= 5 % at N = 100.

Run: ``python -m benchmarks.curve_overhead [--quick]``.
"""

from __future__ import annotations

import numpy as np

import regjax
from benchmarks import _common

BATCH = 128
HIDDEN = (64, 64)
K = 16


def trainer(steps: int, every: int | None):
  train, test = regjax.data.digits()
  return regjax.experiment.trainer.Trainer(
      model=lambda rngs: regjax.models.MLP(64, HIDDEN, 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
      train=train, test=test, steps=steps, batch_size=BATCH, eval_every=every)


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1000, help="training steps per model")
  args = parser.parse_args()
  steps, everies, repeats = args.steps, (10, 100, 1000), 3
  if args.quick:
    steps, everies, repeats = 100, (100,), 1
  repeats = args.repeats or repeats
  _common.print_header("curve recording overhead under regjax.sweep", args, [
      f"model MLP(64, {HIDDEN}, 10), prox_adam, batch {BATCH}, {steps} steps, K = {K}, "
      f"eval_every {everies} vs none, {repeats} interleaved rounds"])
  machine = _common.machine_name()
  grid = regjax.grid(lam=np.logspace(-5, -2, K))
  runs = {"none": trainer(steps, None)}
  runs.update({f"every {n}": trainer(steps, n) for n in everies})
  calls = {name: (lambda run=run: regjax.sweep(run, grid, progress=False)["test_loss"])
           for name, run in runs.items()}
  for name, call in calls.items():
    print(f"{name}: first call (with compile) {_common.timed(call):.2f} s")
  walls: dict[str, list[float]] = {name: [] for name in calls}
  variants = {name: _common.cpu_timer(call, walls[name]) for name, call in calls.items()}
  times = _common.interleave(variants, repeats)
  wall = {name: np.asarray(values[-repeats:]) for name, values in walls.items()}
  print(f"-- on {machine} (process CPU seconds, all threads; wall seconds):")
  for name in calls:
    print(f"  {name:10s} CPU {_common.spread(times[name])} s, wall {_common.spread(wall[name])} "
          "s per sweep call")
  ratios = {}
  for n in everies:
    ratios[n] = _common.ratio_line(f"time eval_every={n}/none",
                                   times[f"every {n}"] / times["none"])
    _common.ratio_line(f"wall time eval_every={n}/none", wall[f"every {n}"] / wall["none"])
  if 100 in ratios:
    _common.target_line("overhead <= 5% at eval_every=100", ratios[100] <= 1.05,
                        f"{(ratios[100] - 1) * 100:+.1f}% in process CPU time (median of "
                        "per-round ratios; wall time is reported above)")
  _common.print_footer()


if __name__ == "__main__":
  main()
