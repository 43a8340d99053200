"""The sweep of ``sweep_throughput`` sharded over 1, 2 and 4 simulated CPU devices.

JAX fixes the device count when it starts, so each device count runs in its own
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``. ``regjax.sweep``
shards the grid axis over all local devices. The subprocesses are interleaved: round
``r`` runs every device count once, in an order rotated by ``r``; they share one
persistent compilation cache, so only the first round of each count compiles.

Two times per call, both per grid point: a whole warm ``regjax.sweep`` call (which also
traces and lowers) and the compiled sharded program alone. Simulated devices share the
machine's cores: on 2 physical cores no device count can be more than 2x faster than
one device, and one device already uses both cores for its larger matmuls.

Run: ``python -m benchmarks.sharded_scaling [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import _common

RESULT_TAG = "RESULT "


def worker(devices: int, k: int, steps: int, calls: int) -> None:
  """Runs in a subprocess: times sweeps on ``devices`` simulated devices, prints JSON."""
  import jax

  import regjax
  from benchmarks import sweep_throughput

  if jax.device_count() != devices:
    raise SystemExit(f"expected {devices} devices, got {jax.device_count()}; is XLA_FLAGS set?")
  _common.enable_compilation_cache()
  trainer = sweep_throughput.make_trainer(steps, sweep_throughput.HIDDEN)
  grid = regjax.grid(lam=np.logspace(-5, -2, k))
  first = _common.timed(lambda: regjax.sweep(trainer, grid, progress=False).columns)
  program, args = sweep_throughput.sweep_program(trainer, k)
  times = _common.interleave({
      "sweep": lambda: regjax.sweep(trainer, grid, progress=False).columns,
      "exec": lambda: program(*args),
  }, calls, warmup=0)
  # Cores kept busy by the program alone: process CPU time over wall time.
  cpu_start, wall_start = time.process_time(), time.perf_counter()
  jax.block_until_ready(program(*args))
  busy = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
  print(RESULT_TAG + json.dumps({
      "devices": devices, "first": first, "busy": busy,
      "sweep": times["sweep"].tolist(), "exec": times["exec"].tolist()}), flush=True)


def spawn(devices: int, k: int, steps: int, calls: int, cache: str) -> dict:
  env = dict(os.environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
  env["REGJAX_BENCH_CACHE"] = cache
  command = [sys.executable, "-m", "benchmarks.sharded_scaling", "--worker",
             "--devices", str(devices), "--grid-size", str(k), "--steps", str(steps),
             "--calls", str(calls)]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, check=False)
  for line in done.stdout.splitlines():
    if line.startswith(RESULT_TAG):
      return json.loads(line[len(RESULT_TAG):])
  raise RuntimeError(f"worker for {devices} devices failed:\n{done.stdout}\n{done.stderr}")


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--devices", type=str, default="1,2,4")
  parser.add_argument("--grid-size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--calls", type=int, default=2, help="timed sweep calls per subprocess")
  args = parser.parse_args()
  if args.worker:
    worker(int(args.devices), args.grid_size, args.steps, args.calls)
    return
  if args.quick:
    device_counts, k, steps, calls, rounds = (1, 2), 2, 3, 1, 1
  else:
    device_counts = tuple(int(n) for n in args.devices.split(","))
    k, steps, calls, rounds = args.grid_size, args.steps, args.calls, 3
  rounds = args.repeats or rounds
  bad = [n for n in device_counts if k % n]
  if bad:
    raise SystemExit(f"--grid-size {k} must be a multiple of every device count, not of {bad}")
  _common.print_header("sharded scaling: one sweep over 1, 2, 4 simulated CPU devices", args, [
      f"sweep of sweep_throughput: digits MLP, prox_adam, K = {k} grid points, {steps} steps; "
      f"device counts {device_counts}; {rounds} rounds x {calls} timed calls per subprocess",
  ])
  machine = _common.machine_name()
  cache = os.environ.get("REGJAX_BENCH_CACHE") or tempfile.mkdtemp(prefix="regjax-bench-")
  results: dict[int, list[dict]] = {n: [] for n in device_counts}
  start = time.perf_counter()
  try:
    for round_index in range(rounds):
      shift = round_index % len(device_counts)
      for n in device_counts[shift:] + device_counts[:shift]:
        results[n].append(spawn(n, k, steps, calls, cache))
  finally:
    if "REGJAX_BENCH_CACHE" not in os.environ:
      shutil.rmtree(cache, ignore_errors=True)
  print(f"(subprocesses took {time.perf_counter() - start:.1f} s in all)")

  def per_round(n: int, key: str) -> np.ndarray:
    return np.array([np.median(r[key]) for r in results[n]]) / k

  print(f"time per grid point on {machine} (s; median of calls, then over rounds):")
  for n in device_counts:
    first = [r["first"] for r in results[n]]
    cached = f", of later rounds (cached) {np.median(first[1:]):.2f} s" if first[1:] else ""
    busy = np.median([r["busy"] for r in results[n]])
    print(f"  {n} device(s): sweep call {_common.spread(per_round(n, 'sweep'))}; "
          f"program alone {_common.spread(per_round(n, 'exec'))}; first call of round 1 "
          f"(compile) {first[0]:.2f} s{cached}; cores busy while the program runs "
          f"(CPU time / wall time) {busy:.2f}")
  base = device_counts[0]
  for n in device_counts[1:]:
    _common.ratio_line(f"speedup sweep call {n} vs {base} device(s)",
                       per_round(base, "sweep") / per_round(n, "sweep"))
    _common.ratio_line(f"speedup program {n} vs {base} device(s)",
                       per_round(base, "exec") / per_round(n, "exec"))
  print(f"note: the {_common.usable_cores()} physical cores are shared by all simulated devices, "
        "so the speedup cannot exceed that core count (2x here); the figures show what "
        "sharding costs or gains on one host, not multi-chip scaling.")
  _common.print_footer()


if __name__ == "__main__":
  main()
