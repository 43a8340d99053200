"""Shared helpers of the benchmark scripts: machine report, interleaved timing, ratio lines.

Every script prints the machine first, then interleaves repeated measurements of its
variants (round ``r`` runs them in an order rotated by ``r``, so slow drifts of a shared
machine hit all variants alike), and reports ratios as the median over rounds of the
ratio *within* each round, with the smallest and largest per-round ratio as the spread.

Line formats that ``tests/test_benchmarks.py`` greps for:

* ``ratio <what>: <median>x  [min <lo>, max <hi>, n=<rounds>]``
* ``target <what>: MET (...)`` or ``target <what>: MISSED (...)``
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
      for line in handle:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
  """Cores this process may run on (affinity mask when the OS reports one)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def machine_name() -> str:
  """Short name of the machine, printed next to every absolute time."""
  import jax

  return f"{cpu_model()} x{usable_cores()} cores, jax {jax.devices()[0].device_kind}"


def _load() -> str:
  try:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
  except OSError:
    return "n/a"


def print_header(title: str, args: argparse.Namespace, extra: Sequence[str] = ()) -> None:
  """Prints the benchmark's title, its command line and the machine."""
  import flax
  import jax
  import jaxlib
  import optax

  devices = jax.devices()
  print(f"== {title}")
  argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])  # orig_argv keeps "-m x"
  print(f"command: {' '.join([os.path.basename(argv[0]), *argv[1:]])}")
  print(f"mode: {'QUICK (smoke-test sizes, figures not meaningful)' if args.quick else 'full'}")
  print("machine:")
  print(f"  cpu: {cpu_model()}; {usable_cores()} usable cores (os.cpu_count={os.cpu_count()})")
  print(f"  load average at start (1/5/15 min): {_load()}")
  print(f"  platform: {platform.platform()}; python {platform.python_version()}")
  print(f"  jax devices: {len(devices)} x {devices[0].platform} ({devices[0].device_kind})")
  print(f"  versions: jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
        f"optax {optax.__version__}, flax {flax.__version__}, numpy {np.__version__}")
  for line in extra:
    print(f"  {line}")
  print(flush=True)


def print_footer() -> None:
  """Prints the load average at the end, so a reader sees how busy the machine was."""
  print(f"load average at end (1/5/15 min): {_load()}", flush=True)


def parser(description: str) -> argparse.ArgumentParser:
  """An argument parser with ``--quick`` and ``--repeats``."""
  result = argparse.ArgumentParser(description=description)
  result.add_argument("--quick", action="store_true",
                      help="tiny sizes for the smoke test (figures are not meaningful)")
  result.add_argument("--repeats", type=int, default=None,
                      help="interleaved measurement rounds (default: script's own)")
  return result


def enable_compilation_cache() -> str:
  """Turns on JAX's persistent compilation cache in a fresh temporary folder.

  ``regjax.sweep`` builds a new ``jax.jit`` on every call, so without the cache every
  call recompiles. With it, the first call compiles (timed as compile time) and later
  calls load the executable (they still trace and lower, which counts as their cost).
  """
  import jax

  folder = os.environ.get("REGJAX_BENCH_CACHE")
  if not folder:
    folder = tempfile.mkdtemp(prefix="regjax-bench-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
  jax.config.update("jax_compilation_cache_dir", folder)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  return folder


def timed(fn: Callable[[], Any]) -> float:
  """Seconds for ``fn()`` including waiting for every array it returns."""
  import jax

  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def cpu_timer(fn: Callable[[], Any], walls: list[float]) -> Callable[[], float]:
  """A variant for :func:`interleave` that returns the process CPU seconds of ``fn()``
  (all threads; steadier than wall time on an oversubscribed machine, but blind to
  overlap of host and device work) and appends its wall seconds to ``walls``."""
  import jax

  def variant() -> float:
    wall, start = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    walls.append(time.perf_counter() - wall)
    return time.process_time() - start

  return variant


def interleave(
    variants: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, np.ndarray]:
  """Times every variant ``repeats`` times, rotating the order each round.

  A variant may return a float: then that is its time (for variants that time only part
  of what they do); otherwise its wall time, after ``block_until_ready``, is used. The
  first ``warmup`` rounds are run and discarded (first calls touch fresh memory).
  """
  import jax

  names = list(variants)
  times: dict[str, list[float]] = {name: [] for name in names}
  for round_index in range(warmup + repeats):
    shift = round_index % len(names)
    for name in names[shift:] + names[:shift]:
      start = time.perf_counter()
      out = variants[name]()
      if not isinstance(out, float):
        jax.block_until_ready(out)
        out = time.perf_counter() - start
      if round_index >= warmup:
        times[name].append(out)
  return {name: np.asarray(values) for name, values in times.items()}


def spread(values: Any) -> str:
  """``median [min, max, n]`` of a sample."""
  values = np.asarray(values, dtype=float)
  return (f"{np.median(values):.4g}  [min {values.min():.4g}, max {values.max():.4g}, "
          f"n={values.size}]")


def t_interval(values: Any, sign: str = "+") -> str:
  """``mean [low, high]``: the mean and its 95% Student-t interval over the samples."""
  from scipy import stats

  values = np.asarray(values, np.float64)
  mean = values.mean()
  if values.size < 2:
    return f"{mean:{sign}.4f} [n=1, no interval]"
  half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
  return f"{mean:{sign}.4f} [{mean - half:{sign}.4f}, {mean + half:{sign}.4f}]"


def ratio_line(what: str, values: Any) -> float:
  """Prints ``ratio <what>: ...`` for per-round ratios and returns their median."""
  values = np.asarray(values, dtype=float)
  median = float(np.median(values))
  print(f"ratio {what}: {median:.3g}x  [min {values.min():.3g}, max {values.max():.3g}, "
        f"n={values.size}]", flush=True)
  return median


def target_line(what: str, met: bool, detail: str) -> None:
  """Prints ``target <what>: MET|MISSED (<detail>)``."""
  print(f"target {what}: {'MET' if met else 'MISSED'} ({detail})", flush=True)


def matmul_variant(size: int) -> tuple[Callable[[], Any], float]:
  """A jitted fp32 ``size x size`` matmul (already compiled) and its FLOP count."""
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
  dot = jax.jit(jnp.dot)
  jax.block_until_ready(dot(a, b))
  return (lambda: dot(a, b)), 2.0 * size**3
