"""The README's multi-host recipe, for real: two processes on localhost with two CPU
devices each, joined by jax.distributed (gloo collectives), sweep over a global mesh."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from multiprocess_setup import GRID, METRICS, trainer

import regjax

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _free_port():
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
  directory = tmp_path_factory.mktemp("shared")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
      filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
  flags = env.get("XLA_FLAGS", "")
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
  port = str(_free_port())
  start = time.perf_counter()
  workers = [subprocess.Popen(
      [sys.executable, str(_ROOT / "tests" / "multiprocess_worker.py"), str(i), port,
       str(directory)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in (0, 1)]
  outputs = []
  try:
    for worker in workers:
      outputs.append(worker.communicate(timeout=400))
  finally:
    for worker in workers:
      worker.kill()
  for worker, (_, err) in zip(workers, outputs, strict=True):
    assert worker.returncode == 0, err[-4000:]
  facts = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
  print(f"two processes: {time.perf_counter() - start:.1f} s wall")
  return facts


def test_each_process_sees_four_global_and_two_local_devices(processes):
  assert [f["process_index"] for f in processes] == [0, 1]
  assert all(f["devices"] == [4, 2] for f in processes)
  assert all(f["chunk_size"] == [4, 4] for f in processes)


def test_every_process_receives_the_full_and_same_result(processes):
  first, second = processes
  for name in ("sweep", "whole", "resumed"):
    assert first[name] == second[name], name
    np.testing.assert_array_equal(first[name]["seed"], [0, 1] * 3)
    np.testing.assert_allclose(first[name]["lam"], np.repeat([1e-4, 1e-3, 1e-2], 2))


def test_a_checkpointed_resume_across_processes_is_bit_identical(processes):
  for facts in processes:
    assert facts["resumed"] == facts["whole"]


def test_the_result_equals_the_one_process_run(processes):
  one = regjax.sweep(trainer(), GRID, seeds=2, progress=False)
  n_test = len(trainer().test.labels)
  for name in ("sweep", "whole"):
    got = processes[0][name]
    np.testing.assert_allclose(got["test_accuracy"], one["test_accuracy"], atol=1.01 / n_test)
    for metric in METRICS[1:]:
      np.testing.assert_allclose(got[metric], one[metric], rtol=2e-5, atol=1e-6,
                                 err_msg=f"{name} {metric}")
