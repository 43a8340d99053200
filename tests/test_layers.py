"""The three layers: `import regjax` is the core only; the outer names load on first use."""

import subprocess
import sys

import pytest

import regjax


def _fresh_python(code: str) -> str:
  return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                        text=True).stdout.strip()


def test_import_regjax_pulls_in_neither_flax_nor_the_harness():
  loaded = _fresh_python(
      "import sys, regjax; regjax.prox_adam(1e-3, 1e-4); "
      "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flax' "
      "or m.startswith(('regjax.nn', 'regjax.experiment'))))")
  assert loaded == "[]"


def test_touching_a_lazy_name_loads_its_layer():
  loaded = _fresh_python(
      "import sys, regjax; regjax.sweep; a = 'flax' in sys.modules; regjax.Trainer; "
      "print('regjax.experiment.sweeps' in sys.modules, a, 'flax' in sys.modules)")
  assert loaded == "True False True"


def test_a_sweep_of_a_jax_function_imports_neither_flax_nor_orbax():
  # The one-liner: orbax only with `checkpoint=`, flax only with a Trainer.
  loaded = _fresh_python(
      "import sys, jax.numpy as jnp, regjax; "
      "regjax.sweep(lambda h, k: {'y': h['x']**2}, regjax.grid(x=[1., 2.]), progress=False); "
      "print(sorted(m for m in ('flax','orbax') if any(n.startswith(m) for n in sys.modules)))")
  assert loaded == "[]"


@pytest.mark.parametrize("name", sorted(regjax._LAZY))
def test_every_lazy_name_is_the_object_its_layer_defines(name):
  import importlib

  module_name, attribute = regjax._LAZY[name]
  module = importlib.import_module(module_name)
  expected = module if attribute is None else getattr(module, attribute)
  assert getattr(regjax, name) is expected


def test_unknown_attribute_is_an_attribute_error():
  with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
    regjax.not_a_name  # noqa: B018


def test_public_names_are_all_reachable():
  for name in regjax.__all__:
    assert getattr(regjax, name) is not None
  assert set(regjax.__all__) <= set(dir(regjax))
