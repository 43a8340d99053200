"""Shared test settings: loud broadcasting errors and a fixed hypothesis profile."""

import os

# The suite's programs are tiny and compile-bound on CPU: LLVM's optimization passes cost
# more than they save (a notebook's quick run: 128 s of CPU at the default level, 92 s at
# 0). Set before jax starts a backend; subprocesses (notebook kernels, the CLI) inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = " ".join(
      filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))

import jax  # noqa: E402
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A deeper, randomized run of the conformance fuzzer (tests/test_conformance.py), which runs
# a few derandomized examples per transform otherwise:
#   pytest tests/test_conformance.py --hypothesis-profile=long
settings.register_profile(
    "long",
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
