"""Smoke test of the benchmark scripts: each runs with --quick and prints its figures.

The figures of a quick run mean nothing about speed; what is checked is that every
script still runs end to end, prints its ratio and target lines with finite values, and
that the correctness checks built into the scripts hold (the Lasso objectives agree).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RATIO = re.compile(r"^ratio (?P<what>.+): (?P<value>\S+)x  \[min (?P<lo>\S+), max (?P<hi>\S+), "
                   r"n=(?P<n>\d+)\]$", re.MULTILINE)
TARGET = re.compile(r"^target (?P<what>.+): (?P<verdict>MET|MISSED) \(", re.MULTILINE)


def run_quick(name: str, *extra: str) -> str:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  done = subprocess.run(
      [sys.executable, "-m", f"benchmarks.{name}", "--quick", *extra], cwd=ROOT, env=env,
      capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
  assert "machine:" in done.stdout and "cpu:" in done.stdout
  return done.stdout


def ratios(output: str) -> dict[str, float]:
  found = {}
  for match in RATIO.finditer(output):
    value, lo, hi = (float(match[key]) for key in ("value", "lo", "hi"))
    assert 0 < lo <= value <= hi < float("inf"), match[0]
    found[match["what"]] = value
  return found


def targets(output: str) -> dict[str, str]:
  return {match["what"]: match["verdict"] for match in TARGET.finditer(output)}


@pytest.mark.slow
def test_sweep_throughput_prints_its_ratios():
  output = run_quick("sweep_throughput")
  found = ratios(output)
  for what in ("a/b throughput K=2", "a/c throughput K=2", "sweep FLOP/s over matmul FLOP/s K=2"):
    assert any(key.startswith(what) for key in found), (what, output)
  assert list(targets(output)) == [">= 60% of matmul FLOP/s at K=2"]


@pytest.mark.slow
def test_regularizer_overhead_prints_its_ratios():
  output = run_quick("regularizer_overhead")
  found = ratios(output)
  for mode in ("full step", "update only"):
    for pair in ("prox_adam/adam", "regjax_adamw/optax_adamw", "orth_soft/adam",
                 "orth_spectral/adam"):
      assert f"wide MLP 32 {mode} {pair}" in found, (mode, pair, output)
  for kind in ("soft", "spectral"):  # lazy orthogonality, full step only
    for every in (4, 16):
      assert f"wide MLP 32 full step orth_{kind}_every{every}/adam" in found, output
  for name in ("soft every=16, counter batched", "plain cond every=16, counter batched"):
    assert f"vmap 2 rows {name}/adam" in found, output
  assert "auto-mode saving 256x16 rows/auto" in found
  verdicts = targets(output)
  assert len(verdicts) == 4
  assert "wide MLP 32 orthogonality spectral overhead <= 15% at some every (square, full step)" in (
      verdicts)
  lines = re.findall(r"^  soft every=(\d+): test accuracy ([0-9.]+), orthogonality error ([0-9.]+)",
                     output, re.MULTILINE)
  assert [every for every, _, _ in lines] == ["1", "4"], output
  assert all(0 <= float(acc) <= 1 and float(err) >= 0 for _, acc, err in lines)
  assert "paired vs every=1 (95% t)" in output


@pytest.mark.slow
def test_lasso_path_matches_sklearn_objective():
  output = run_quick("lasso_path")
  found = ratios(output)
  assert {"time regjax/sklearn synthetic 200x50", "time regjax/sklearn diabetes 442x10"} <= set(
      found)
  verdicts = targets(output)
  assert verdicts["objective within 1e-6 relative, synthetic 200x50"] == "MET"
  assert verdicts["objective within 1e-6 relative, diabetes 442x10"] == "MET"


@pytest.mark.slow
def test_sharded_scaling_prints_its_ratios():
  output = run_quick("sharded_scaling")
  found = ratios(output)
  assert {"speedup sweep call 2 vs 1 device(s)", "speedup program 2 vs 1 device(s)"} <= set(found)


@pytest.mark.slow
def test_streamed_data_prints_its_ratios():
  found = ratios(run_quick("streamed_data"))  # full mode: K = 16 and 64
  assert "time stream/mem K=4" in found


@pytest.mark.slow
def test_curve_overhead_prints_its_ratios():
  output = run_quick("curve_overhead")
  assert "time eval_every=100/none" in ratios(output)  # full mode: 10, 100 and 1000
  assert list(targets(output)) == ["overhead <= 5% at eval_every=100"]


def test_prox_metric_prints_its_ratios():
  output = run_quick("prox_metric")
  found = ratios(output)
  for clock in ("", " (cpu time)"):
    assert f"operator 32x32 metric/plain{clock}" in found
    for mode in ("full step", "update only"):
      for pair in ("prox_adam_group/adam", "prox_adam_group/adam_then_group",
                   "adam_then_group/adam", "prox_adam_l1/adam"):
        assert f"wide MLP 32 {mode} {pair}{clock}" in found, (mode, pair, output)


def test_compacted_widths_prints_its_ratios():
  found = ratios(run_quick("compacted_widths"))
  assert {"time 56-56/64-64", "time 55-53/64-64", "time 32-32/64-64"} <= set(found)


def test_adaptive_sweep_prints_its_figures(tmp_path):
  # Optuna is in the `dev` extra, so CI runs this test: it is not skipped without Optuna.
  figure = tmp_path / "frontier.png"
  output = run_quick("adaptive_sweep", "--figure", str(figure))
  assert figure.stat().st_size > 0
  # Every arm's choice is checked on fresh seeds (one, in a quick run).
  assert output.count("on 1 fresh seeds: zero weights") == 7, output
  found = ratios(output)
  for objective in ("accuracy", "sparsest"):
    assert f"-- digits, objective {objective}: 2 repetitions" in output
    assert output.count("paired optuna - grid test_accuracy") == 2
  assert "policy time per refill / segment time digits" in found
  assert output.count("paired adaptive - grid test_accuracy") == 2
  assert "refill host time / segment time digits sparsest" in found
  goals = targets(output)
  assert "adaptive choice inside the grid's 95% interval, zero_weights, <= 1/4 model·steps, " \
         "digits sparsest" in goals
  # Optuna's trials reuse one compiled initialization and one compiled segment program.
  assert "jit cache entries after all trials 2 " in output, output
