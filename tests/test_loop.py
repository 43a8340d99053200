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


class Hook:
  """Refills row 1 at a = 0.7 (not a float32 value) with seed 7 after segment 1; keeps a
  count of its calls as its state, saved with the checkpoints."""

  def __init__(self, stop_after=None):
    self.events, self.calls, self.stop_after = [], 0, stop_after

  def __call__(self, event):
    self.events.append(event)
    self.calls += 1
    if event.segment == self.stop_after:
      return loop.Stop()
    if event.segment == 1:
      return loop.Refill(positions=[1], hparams={"a": [0.7]}, seeds=[7])
    return None

  def state_dict(self):
    return {"calls": self.calls}

  def load_state_dict(self, state):
    self.calls = state["calls"]


def test_a_refilled_row_restarts_from_its_new_point_and_seed(tmp_path):
  grid = regjax.grid(a=[0.1, 2.0, 0.3])
  hook = Hook()
  result = regjax.sweep(Decay(), grid, seeds=[0], segments=3, between=hook, progress=False)
  events = hook.events
  assert [(e.segment, e.last) for e in events] == [(1, False), (2, False), (3, True)]
  assert events[0].steps == 2
  np.testing.assert_allclose(events[0].metrics["x"][0], _by_hand(0.1, 0, 2), rtol=1e-6)
  assert events[1].hparams["a"].tolist() == [0.1, 0.7, 0.3]  # float64, as given
  assert result["a"].tolist() == [0.1, 0.7, 0.3]
  np.testing.assert_array_equal(result["seed"], [0, 7, 0])
  np.testing.assert_array_equal(result["t"], [6, 4, 6])  # the refilled row ran 4 steps
  np.testing.assert_allclose(result["x"], [_by_hand(0.1, 0, 6), _by_hand(0.7, 7, 4),
                                           _by_hand(0.3, 0, 6)], rtol=1e-6)
  # The hook's metrics after the last segment are the result's, not evaluated twice.
  np.testing.assert_array_equal(events[2].metrics["x"], result["x"])
  # Checkpointed: the refill and the hook's state are saved with the rows, so a resume
  # after the last segment was lost gives the same rows bit for bit, hyperparameter
  # columns included (they came back float32-rounded when only the device copy was kept).
  options = dict(seeds=[0], segments=3, checkpoint=tmp_path, progress=False)
  whole = regjax.sweep(Decay(), grid, between=Hook(), **options)
  last = sorted(tmp_path.glob("chunk_0000/segment_*"))[-1]
  assert last.name == "segment_0003"
  import shutil

  shutil.rmtree(last)
  again = Hook()
  resumed = regjax.sweep(Decay(), grid, between=again, **options)
  assert [e.segment for e in again.events] == [3] and again.calls == 3  # 1, 2 restored
  assert again.events[0].hparams["a"].tolist() == [0.1, 0.7, 0.3]
  assert resumed.table.equals(whole.table)
  np.testing.assert_array_equal(whole["x"], result["x"])
  with pytest.raises(ValueError, match="saved with a hook state"):
    regjax.sweep(Decay(), grid, between=lambda event: None, **options)
  with pytest.raises(ValueError, match="Refill after the last segment"):
    regjax.sweep(Decay(), grid, seeds=[0], segments=3, progress=False,
                 between=lambda e: loop.Refill([0], {"a": [1.0]}, [0]) if e.last else None)


def test_a_stop_ends_the_chunk_and_a_resume_keeps_it_stopped(tmp_path):
  grid = regjax.grid(a=[0.1, 2.0])
  options = dict(seeds=[0], segments=3, checkpoint=tmp_path, progress=False)
  hook = Hook(stop_after=1)
  stopped = regjax.sweep(Decay(), grid, between=hook, **options)
  np.testing.assert_array_equal(stopped["t"], [2, 2])  # 2 of 6 steps, then stopped
  saved = sorted(p.name for p in tmp_path.glob("chunk_0000/segment_*"))
  assert saved == ["segment_0001"] and len(hook.events) == 1
  again = Hook(stop_after=1)
  resumed = regjax.sweep(Decay(), grid, between=again, **options)
  assert again.events == [] and again.calls == 1 and resumed.table.equals(stopped.table)


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
