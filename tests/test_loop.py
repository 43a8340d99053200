"""The one sweep loop: segments of a SegmentedRun, the refill hook between them (resumed
bit for bit), a program cache that keeps no user function alive, eager grid checks,
and every function of the harness short enough to read."""

import ast
import gc
import pathlib
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regjax
from regjax.experiment import data, loop, sweeps
from regjax.experiment.trainer import Trainer
from regjax.nn import models

_HARNESS = pathlib.Path(__file__).resolve().parents[1] / "regjax" / "experiment"


class Decay:
  """x_{t+1} = 0.9 x_t + a from x_0 ~ N(0, 1) drawn from the row's key, 6 steps."""

  steps = 6

  def check_hparams(self, point):
    if point["a"] > 100:
      raise ValueError(f"`a` must be <= 100, got {point['a']}")

  def plan_segments(self, count):
    return loop.split_steps(self.steps, count or 1)

  def host_batches(self):
    return None

  def init(self, hparams, key):
    return {"x": jax.random.normal(key, ()), "t": jnp.zeros((), jnp.int32)}

  def advance(self, hparams, state, num_steps, batches=None):
    def step(x, _):
      return 0.9 * x + hparams["a"], None

    x, _ = jax.lax.scan(step, state["x"], None, length=num_steps)
    return {"x": x, "t": state["t"] + num_steps}

  def evaluate(self, hparams, state):
    return {"x": state["x"], "t": state["t"]}


def _by_hand(a, seed, steps):
  x = float(jax.random.normal(jax.random.key(seed), ()))
  for _ in range(steps):
    x = np.float32(0.9) * np.float32(x) + np.float32(a)
  return x


def test_every_function_of_the_harness_is_at_most_60_lines():
  # Signature and body; the docstring (Args, Examples) is documentation, not code to read.
  long = []
  for path in sorted(_HARNESS.glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
          length -= first.end_lineno - first.lineno + 1
        if length > 60:
          long.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
  assert not long, long


def test_split_steps_cuts_any_count_into_near_equal_periods():
  assert loop.split_steps(50, 4) == (13, 13, 12, 12)
  assert loop.split_steps(40, 2, multiple=10) == (20, 20)
  assert sum(loop.split_steps(1000, 7, multiple=50)) == 1000
  with pytest.raises(ValueError, match="`segments` must be between 1 and 5"):
    loop.split_steps(50, 6, multiple=10)


def test_a_segmented_run_equals_the_same_steps_by_hand():
  result = regjax.sweep(Decay(), regjax.grid(a=[0.5, 2.0]), seeds=2, segments=3,
                        progress=False)
  assert isinstance(Decay(), loop.SegmentedRun)
  expected = [_by_hand(a, s, 6) for a in (0.5, 2.0) for s in (0, 1)]
  np.testing.assert_allclose(result["x"], expected, rtol=1e-6)
  np.testing.assert_array_equal(result["t"], [6] * 4)


def test_a_refilled_row_restarts_from_its_new_point_and_seed(tmp_path):
  events = []

  def between(event):
    events.append(event)
    if event.segment == 1:  # restart row 1 at a = 3 with seed 7 after 2 of 6 steps
      return loop.Refill(positions=[1], hparams={"a": [3.0]}, seeds=[7])
    return None

  grid = regjax.grid(a=[0.5, 2.0, 1.0])
  options = dict(seeds=[0], segments=3, between=between, progress=False)
  result = regjax.sweep(Decay(), grid, **options)
  assert [e.segment for e in events] == [1, 2] and events[0].steps == 2
  np.testing.assert_allclose(events[0].metrics["x"][0], _by_hand(0.5, 0, 2), rtol=1e-6)
  np.testing.assert_array_equal(events[1].hparams["a"], [0.5, 3.0, 1.0])
  np.testing.assert_array_equal(result["a"], [0.5, 3.0, 1.0])
  np.testing.assert_array_equal(result["seed"], [0, 7, 0])
  np.testing.assert_array_equal(result["t"], [6, 4, 6])  # the refilled row ran 4 steps
  np.testing.assert_allclose(result["x"], [_by_hand(0.5, 0, 6), _by_hand(3.0, 7, 4),
                                           _by_hand(1.0, 0, 6)], rtol=1e-6)
  # Checkpointed: the refill is saved with the rows, so a resume after the last segment
  # was lost gives the same rows, bit for bit, without calling the hook for it again.
  whole = regjax.sweep(Decay(), grid, checkpoint=tmp_path, **options)
  last = sorted(tmp_path.glob("chunk_0000/segment_*"))[-1]
  assert last.name == "segment_0003"
  import shutil

  shutil.rmtree(last)
  events.clear()
  again = regjax.sweep(Decay(), grid, checkpoint=tmp_path, **options)
  assert [e.segment for e in events] == []  # segments 1 and 2 were restored
  for name in ("a", "seed", "x", "t"):
    np.testing.assert_array_equal(again[name], whole[name], err_msg=name)
  np.testing.assert_array_equal(whole["x"], result["x"])


def test_a_plain_function_cannot_be_segmented_or_checkpointed(tmp_path):
  for options in (dict(segments=2), dict(checkpoint=tmp_path)):
    with pytest.raises(TypeError, match="segmented run"):
      regjax.sweep(lambda h, k: {"y": h["x"]}, regjax.grid(x=[1.0]), progress=False,
                   **options)


def test_a_grid_point_is_checked_before_anything_compiles():
  with pytest.raises(ValueError, match=r"grid point \{'a': 200.0\}: `a` must be <= 100"):
    regjax.sweep(Decay(), regjax.grid(a=[1.0, 200.0]), progress=False)
  # A Trainer builds its optimizer with each point: the transform's own check names it.
  train, test = data.digits()
  trainer = Trainer(model=lambda rngs: models.MLP(64, (4,), 10, rngs=rngs),
                    optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"]), train=train,
                    test=test, steps=2, batch_size=4)
  with pytest.raises(ValueError, match=r"grid point \{'lam': -0.1\}: .*strength"):
    regjax.sweep(trainer, regjax.grid(lam=[0.1, -0.1]), progress=False)
  # A grid axis itself may be negative (a log-exponent): only the user of a value judges it.
  assert regjax.grid(log_lam=[-3.0, -2.0]).points["log_lam"].tolist() == [-3.0, -2.0]


def test_the_program_cache_keeps_no_function_or_data_alive():
  class Holder:
    def __init__(self):
      self.data = jnp.arange(1000.0)
      self.traces = 0

    def __call__(self, hparams, key):
      self.traces += 1
      return {"m": hparams["a"] * jnp.sum(self.data)}

  holder = Holder()
  for _ in range(2):
    result = sweeps.sweep(holder, regjax.grid(a=[1.0, 2.0]), progress=False)
  assert holder.traces == 1  # the second call reused the compiled program
  np.testing.assert_allclose(result["m"], [499500.0, 999000.0])
  entries = len(loop._CACHE)
  alive = weakref.ref(holder)
  del holder
  gc.collect()
  assert alive() is None and len(loop._CACHE) == entries - 1
  segmented = Decay()
  regjax.sweep(segmented, regjax.grid(a=[1.0]), segments=2, progress=False)
  alive = weakref.ref(segmented)
  del segmented
  gc.collect()
  assert alive() is None
