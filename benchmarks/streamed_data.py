"""Streamed batches vs in-memory data: one ``regjax.sweep`` of a Trainer fed either way.

The digits MLP (``regjax.models.MLP(64, (64, 64), 10)``, ``regjax.prox_adam``, batch
128) is trained at K grid points for S steps by ``regjax.sweep`` two ways:

  (mem)    ``Trainer(train=Dataset)``: each row draws its minibatch on the device
           (a gather per row, vmapped) inside one compiled scan;
  (stream) ``Trainer(train=generator)``: a host generator yields NumPy batches (drawn
           with NumPy from the same arrays, as a loader would), stacked
           ``segment_steps`` at a time and shared by every row; a compiled scan per
           segment, dispatched asynchronously so Python prepares the next block while
           the device trains.

Both are warm calls (compiled programs cached); their ratio is measured within each
round, in wall time (what a user waits; it sees the overlap of host and device) and in
process CPU time (the work done; steadier on a shared machine). The host's time to
produce the batches alone is reported for context.

Run: ``python -m benchmarks.streamed_data [--quick]``.
"""

from __future__ import annotations

import time

import numpy as np

import regjax
from benchmarks import _common

BATCH = 128
HIDDEN = (64, 64)


def trainers(steps: int, segment: int):
  """The in-memory Trainer and the streamed one (with its batch generator)."""
  train, test = regjax.data.digits()
  inputs, labels = np.asarray(train.inputs), np.asarray(train.labels)

  def stream():
    rng = np.random.default_rng(0)
    for _ in range(steps):
      index = rng.integers(0, len(labels), BATCH)
      yield inputs[index], labels[index]

  common = dict(
      model=lambda rngs: regjax.models.MLP(64, HIDDEN, 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
      test=test, steps=steps, batch_size=BATCH)
  memory = regjax.experiment.trainer.Trainer(train=train, **common)
  streamed = regjax.experiment.trainer.Trainer(train=stream, segment_steps=segment, **common)
  return memory, streamed, stream


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=200, help="training steps per model")
  parser.add_argument("--segment", type=int, default=100, help="steps per streamed segment")
  args = parser.parse_args()
  sizes, steps, segment, repeats = (16, 64), args.steps, args.segment, 3
  if args.quick:
    sizes, steps, segment, repeats = (4,), 20, 10, 1
  repeats = args.repeats or repeats
  _common.print_header("streamed batches vs in-memory data under regjax.sweep", args, [
      f"model MLP(64, {HIDDEN}, 10), prox_adam, batch {BATCH}, {steps} steps, segments of "
      f"{segment} steps, K = {sizes}, {repeats} interleaved rounds"])
  machine = _common.machine_name()
  memory, streamed, stream = trainers(steps, segment)
  start = time.perf_counter()
  for _ in stream():
    pass
  host = time.perf_counter() - start
  print(f"host generator alone, {steps} batches: {host * 1e3:.1f} ms on {machine}")
  for k in sizes:
    grid = regjax.grid(lam=np.logspace(-5, -2, k))
    calls = {
        "mem": lambda grid=grid: regjax.sweep(memory, grid, progress=False)["test_loss"],
        "stream": lambda grid=grid: regjax.sweep(streamed, grid, progress=False)["test_loss"],
    }
    for name, call in calls.items():  # first calls compile
      print(f"K={k} {name}: first call (with compile) {_common.timed(call):.2f} s")
    walls: dict[str, list[float]] = {name: [] for name in calls}
    cpu = _common.interleave(
        {name: _common.cpu_timer(call, walls[name]) for name, call in calls.items()}, repeats)
    wall = {name: np.asarray(values[-repeats:]) for name, values in walls.items()}
    print(f"-- K = {k}, on {machine} (wall seconds; process CPU seconds, all threads):")
    for name in calls:
      print(f"  {name:6s} wall {_common.spread(wall[name])} s per sweep call "
            f"({np.median(k * steps / wall[name]):.0f} models·steps/s); CPU "
            f"{_common.spread(cpu[name])} s")
    _common.ratio_line(f"time stream/mem K={k}", wall["stream"] / wall["mem"])
    _common.ratio_line(f"CPU time stream/mem K={k}", cpu["stream"] / cpu["mem"])
    gap = np.abs(regjax.sweep(streamed, grid, progress=False)["test_loss"]
                 - regjax.sweep(memory, grid, progress=False)["test_loss"]).max()
    print(f"  (different batches, same model: max |test loss difference| {gap:.3g})")
  _common.print_footer()


if __name__ == "__main__":
  main()
