"""regjax.sweep sharded over 4 host CPU devices (in a subprocess: see sweep_sharded_worker)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

_HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def facts():
  env = dict(os.environ)
  flags = env.get("XLA_FLAGS", "")
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=4".strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_HERE.parent), env.get("PYTHONPATH")]))
  done = subprocess.run(
      [sys.executable, str(_HERE / "sweep_sharded_worker.py")],
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert done.returncode == 0, done.stderr[-4000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_worker_sees_four_devices(facts):
  assert facts["devices"] == 4


def test_each_device_holds_its_share_of_the_grid(facts):
  eight = facts["eight"]
  assert eight["rows"] == 8 and eight["chunk_size"] == 8
  expected = [[0, 0, 2], [1, 2, 2], [2, 4, 2], [3, 6, 2]]  # device, first row, rows
  assert len(eight["input_shards"]) == 2  # the l1 column and the seeds
  assert all(sorted(s) == expected for s in eight["input_shards"])
  assert eight["inputs_match"]
  assert all(sorted(s) == expected for s in eight["output_shards"])


def test_sharded_results_equal_the_one_device_results(facts):
  for name in ("eight", "six", "chunked"):
    assert facts[name]["max_difference"] < 1e-5, name


def test_a_grid_not_divisible_by_the_devices_is_padded_and_trimmed(facts):
  six = facts["six"]
  assert six["rows"] == 6 and six["chunk_size"] == 8
  assert all(sorted(s)[3] == [3, 6, 2] for s in six["input_shards"])  # 2 padded rows
  assert six["inputs_match"]


def test_chunk_size_is_rounded_up_to_the_device_count(facts):
  chunked = facts["chunked"]
  assert chunked["rows"] == 8 and chunked["chunk_size"] == 4
  assert len(chunked["input_shards"]) == 2 * 2  # two chunks of (l1, seeds)
  assert all(sorted(s)[1] == [1, 1, 1] for s in chunked["input_shards"])


def test_progress_callback_reports_once_per_step_across_devices(facts):
  # steps 0, 10, 20 and the last (29), reported by one device for the whole batch
  assert facts["eight"]["steps"] == [0, 10, 20, 29]
  assert facts["chunked"]["steps"] == [0, 10, 20, 29] * 2
