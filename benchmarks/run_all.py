"""Runs every benchmark, one subprocess each, and prints their reports in order.

Each script runs in its own process because some set process-wide JAX state (x64 in
``lasso_path``, the device count in ``sharded_scaling``'s workers).

Run: ``python -m benchmarks.run_all [--quick] [--only NAME,NAME]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

BENCHMARKS = (
    "sweep_throughput", "regularizer_overhead", "lasso_path", "sharded_scaling", "prox_metric",
    "streamed_data", "curve_overhead", "compacted_widths", "adaptive_sweep",
)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
  parser.add_argument("--only", default=",".join(BENCHMARKS),
                      help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
  args = parser.parse_args()
  names = [name.strip() for name in args.only.split(",") if name.strip()]
  unknown = sorted(set(names) - set(BENCHMARKS))
  if unknown:
    parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  failed = []
  for name in names:
    command = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if args.quick else [])]
    start = time.perf_counter()
    code = subprocess.call(command, cwd=root)
    print(f"[{name}: exit {code}, {time.perf_counter() - start:.1f} s]\n", flush=True)
    if code:
      failed.append(name)
  if failed:
    print(f"FAILED: {', '.join(failed)}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
