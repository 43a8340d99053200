"""Worker for test_multiprocess.py: one of two processes joined by jax.distributed.

Run as ``python multiprocess_worker.py PROCESS_ID PORT DIRECTORY`` with
XLA_FLAGS=--xla_force_host_platform_device_count=2 and JAX_PLATFORMS=cpu, as the
README's multi-host recipe says: initialize, build a global mesh, call the sweep with
the same arguments in every process. Prints the facts it saw as JSON on its last line.
"""

import json
import pathlib
import shutil
import sys

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

jax.config.update("jax_cpu_collectives_implementation", "gloo")


def main():
  process_id, port, directory = int(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                             process_id=process_id, initialization_timeout=120)
  from multiprocess_setup import GRID, METRICS, trainer

  import regjax  # after initialize: nothing may touch the devices before it

  mesh = Mesh(np.array(jax.devices()), ("grid",))
  options = dict(seeds=2, mesh=mesh, chunk_size=4, progress=False)
  swept = regjax.sweep(trainer(), GRID, **options)
  resumable = dict(checkpoint=directory, segments=2, **options)
  whole = regjax.sweep(trainer(), GRID, resume=False, **resumable)
  if process_id == 0:  # as if killed during segment 2 of chunk 1
    shutil.rmtree(directory / "chunk_0001" / "segment_0002")
  multihost_utils.sync_global_devices("segment removed")
  resumed = regjax.sweep(trainer(), GRID, resume=True, **resumable)
  facts = {
      "process_index": jax.process_index(),
      "devices": [jax.device_count(), jax.local_device_count()],
      "chunk_size": [swept.chunk_size, whole.chunk_size],
  }
  for name, result in (("sweep", swept), ("whole", whole), ("resumed", resumed)):
    facts[name] = {m: result[m].tolist() for m in ("lam", "seed", *METRICS)}
  print(json.dumps(facts))
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
