"""Tests for regjax.sweep: grids, the vmapped engine, chunking, failures and results."""

import csv
import importlib
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regjax

# The implementation module (regjax re-exports its public names).
S = importlib.import_module("regjax.experiment.sweeps")
R = importlib.import_module("regjax.experiment.rows")
P = importlib.import_module("regjax.experiment.progress")

# A small lasso problem: 12 observations, 6 features, a 3-sparse truth.
_A = jax.random.normal(jax.random.key(42), (12, 6))
_B = _A @ jnp.array([1.0, -2.0, 0.0, 0.0, 3.0, 0.0])
_STEPS = 100


@jax.jit
def _lasso(hparams, key):
  """100 proximal-gradient (ISTA) steps on ½‖Ax − b‖² + λ‖x‖₁ from a random start."""
  l1 = hparams["l1"]
  lr = hparams.get("lr", jnp.float32(0.02))
  x0 = 0.1 * jax.random.normal(key, (6,))

  def step(carry, t):
    x, failed_step = carry
    z = x - lr * (_A.T @ (_A @ x - _B))
    x = jnp.sign(z) * jnp.maximum(jnp.abs(z) - lr * l1, 0.0)
    bad = ~jnp.all(jnp.isfinite(x)) & (failed_step < 0)
    return (x, jnp.where(bad, t, failed_step)), None

  (x, failed_step), _ = jax.lax.scan(step, (x0, jnp.int32(-1)), jnp.arange(_STEPS))
  return {
      "loss": 0.5 * jnp.sum((_A @ x - _B) ** 2),
      "zeros": jnp.sum(x == 0),
      "init": jnp.sum(x0),
      "failed_step": failed_step,
  }


_L1 = np.logspace(-2, 3, 8)


def _assert_rows_match(result, expected, rtol=2e-6, atol=2e-6):
  for name, values in expected.items():
    np.testing.assert_allclose(result[name], values, rtol=rtol, atol=atol, err_msg=name)


def _separate_runs(points, seeds):
  runs = [
      _lasso({k: jnp.float32(v) for k, v in point.items()}, jax.random.key(seed))
      for point in points
      for seed in seeds
  ]
  return {name: np.array([run[name] for run in runs]) for name in runs[0]}


@pytest.fixture(scope="module")
def lasso_sweep():
  return S.sweep(_lasso, S.grid(l1=_L1), progress=False)


# ----------------------------------------------------------------------------- grids


def test_grid_is_a_cartesian_product_with_the_first_axis_slowest():
  g = S.grid(a=[1, 2], b=[10.0, 20.0, 30.0])
  assert len(g) == 6 and g.names == ("a", "b")
  np.testing.assert_array_equal(g.points["a"], [1, 1, 1, 2, 2, 2])
  np.testing.assert_array_equal(g.points["b"], [10, 20, 30, 10, 20, 30])
  assert g.points["a"].dtype == np.float64
  assert list(g)[4] == {"a": 2.0, "b": 20.0}


def test_grid_times_zip_grid_combines_axes():
  g = S.grid(l1=jnp.logspace(-5, -2, 4)) * S.zip_grid(lr=[0.1, 0.2], wd=[0.0, 1.0])
  assert len(g) == 8 and g.names == ("l1", "lr", "wd")
  np.testing.assert_array_equal(g.points["lr"], [0.1, 0.2] * 4)
  np.testing.assert_array_equal(g.points["wd"], [0.0, 1.0] * 4)
  np.testing.assert_allclose(g.points["l1"], np.repeat(np.logspace(-5, -2, 4), 2), rtol=1e-6)
  assert g.points["l1"].dtype == np.float32  # float32 input keeps the values as written
  other = S.grid(l1=jnp.logspace(-5, -2, 4)).product(S.zip_grid(lr=[0.1, 0.2], wd=[0.0, 1.0]))
  for name in g.names:
    np.testing.assert_array_equal(other.points[name], g.points[name])
  g.points["lr"][0] = 99.0  # points hands out copies
  assert g.points["lr"][0] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "build, error, fragment",
    [
      (lambda: S.grid(), ValueError, "at least one axis"),
      (lambda: S.zip_grid(), ValueError, "at least one axis"),
      (lambda: S.grid(l1=[]), ValueError, "`l1` is empty"),
      (lambda: S.grid(l1=0.1), ValueError, "`l1` must be 1-D"),
      (lambda: S.grid(l1=[[0.1, 0.2]]), ValueError, "`l1` must be 1-D"),
      (lambda: S.grid(l1=[0.1, [0.2, 0.3]]), ValueError, "`l1`"),
      (lambda: S.grid(l1=["a", "b"]), TypeError, "`l1` must hold numbers"),
      (lambda: S.grid(l1="abc"), TypeError, "`l1`"),
      (lambda: S.grid(l1=[True, False]), TypeError, "`l1` must hold numbers"),
      (lambda: S.grid(l1=[0.1, np.nan]), ValueError, "`l1` must be finite"),
      (lambda: S.grid(l1=[0.1, np.inf]), ValueError, "`l1` must be finite"),
      (lambda: S.zip_grid(lr=[0.1, 0.2], wd=[0.0]), ValueError, "equal lengths"),
      (lambda: S.grid(l1=[1.0]) * S.grid(l1=[2.0]), ValueError, "['l1']"),
      (lambda: S.grid(seed=[1.0]), ValueError, "`seed` is reserved"),
    ],
)
def test_bad_grids_raise_errors_naming_the_axis(build, error, fragment):
  with pytest.raises(error, match=fragment.replace("[", r"\[").replace("]", r"\]")):
    build()


# ----------------------------------------------------------------------------- engine


def test_sweep_equals_separate_runs_with_the_same_keys(lasso_sweep):
  assert len(lasso_sweep) == 8
  # `_lasso` is jitted, and jit returns dicts with sorted keys.
  assert lasso_sweep.columns == ("l1", "seed", "failed_step", "init", "loss", "zeros", "failed")
  np.testing.assert_allclose(lasso_sweep["l1"], _L1)
  _assert_rows_match(lasso_sweep, _separate_runs(S.grid(l1=_L1), seeds=(0,)))
  # Closed form: the lasso solution is exactly 0 iff λ >= ‖Aᵀb‖∞.
  threshold = float(jnp.max(jnp.abs(_A.T @ _B)))
  assert _L1[0] < threshold < _L1[-1]
  np.testing.assert_array_equal(lasso_sweep["zeros"] == 6, _L1 >= threshold)
  assert not lasso_sweep["failed"].any() and lasso_sweep.wall_time > 0


def test_chunked_sweep_with_padding_equals_one_chunk_and_compiles_once(lasso_sweep):
  traces = []

  def fn(hparams, key):
    traces.append(1)
    return _lasso(hparams, key)

  chunked = S.sweep(fn, S.grid(l1=_L1), chunk_size=3, progress=False)
  assert len(traces) == 1 and chunked.chunk_size == 3 and len(chunked) == 8
  _assert_rows_match(chunked, {n: lasso_sweep[n] for n in lasso_sweep.columns})


def test_a_repeated_sweep_reuses_its_compiled_program():
  traces = []

  def fn(hparams, key):
    traces.append(1)
    return _lasso(hparams, key)

  first = S.sweep(fn, S.grid(l1=_L1), progress=False)
  again = S.sweep(fn, S.grid(l1=_L1[::-1]), progress=False)  # same size, other values
  assert len(traces) == 1
  _assert_rows_match(again, {n: first[n][::-1] for n in ("loss", "zeros", "init")})
  assert again.columns == first.columns  # the metric order survives the cache
  S.sweep(fn, S.grid(l1=_L1[:5]), progress=False)  # another row count: a new program
  S.sweep(fn, S.grid(l1=_L1), progress=True)  # progress changes what is traced
  assert len(traces) == 3


def test_an_unhashable_callable_also_reuses_its_program():
  # A Trainer holds arrays, so it cannot be hashed; the cache goes by identity.
  class Holder:
    __hash__ = None

    def __init__(self):
      self.offset, self.traces = jnp.ones(2), 0

    def __call__(self, hparams, key):
      self.traces += 1
      return {"m": hparams["a"] + jnp.sum(self.offset)}

  first, second = Holder(), Holder()
  for holder in (first, first, second):
    result = S.sweep(holder, S.grid(a=[1.0, 2.0]), progress=False)
    np.testing.assert_allclose(result["m"], [3.0, 4.0])
  assert (first.traces, second.traces) == (1, 1)


def test_seeds_multiply_rows_and_give_their_own_keys():
  seeds = (0, 7, 2**32 - 1)
  points = S.grid(l1=_L1[:3])
  result = S.sweep(_lasso, points, seeds=seeds, progress=False)
  assert len(result) == 9
  np.testing.assert_array_equal(result["seed"], list(seeds) * 3)
  np.testing.assert_array_equal(result["l1"], np.repeat(_L1[:3], 3))
  _assert_rows_match(result, _separate_runs(points, seeds))
  inits = result["init"].reshape(3, 3)
  assert len(set(inits[0].tolist())) == 3  # different seeds, different starts
  np.testing.assert_array_equal(inits, np.tile(inits[:1], (3, 1)))  # same seed, same start


def test_an_int_of_seeds_is_a_count_and_a_list_names_the_seeds():
  points = S.grid(l1=_L1[:2])
  three = S.sweep(_lasso, points, seeds=3, progress=False)
  np.testing.assert_array_equal(three["seed"], [0, 1, 2, 0, 1, 2])
  np.testing.assert_array_equal(
      three["init"], S.sweep(_lasso, points, seeds=[0, 1, 2], progress=False)["init"])
  only_three = S.sweep(_lasso, points, seeds=[3], progress=False)
  np.testing.assert_array_equal(only_three["seed"], [3, 3])
  _assert_rows_match(only_three, _separate_runs(points, (3,)))
  np.testing.assert_array_equal(S.sweep(_lasso, points, progress=False)["seed"], [0, 0])


def test_sweep_accepts_a_mapping_and_keeps_the_metric_order():
  result = S.sweep(
      lambda h, k: {"z": h["a"] * 2.0, "m": h["a"] + h["b"]},
      {"a": [1.0, 2.0], "b": [10.0, 20.0]},
      progress=False,
  )
  assert result.columns == ("a", "b", "seed", "z", "m", "failed")
  np.testing.assert_allclose(result["m"], [11.0, 21.0, 12.0, 22.0])
  assert result.hparams == ("a", "b") and result.metrics == ("z", "m")


def test_a_nan_row_is_marked_failed_and_the_others_match_a_clean_run():
  lrs = [0.01, 0.02, 0.2, 0.03]  # 0.2 > 2 / ‖A‖², so gradient descent diverges
  result = S.sweep(_lasso, S.grid(l1=[0.1]) * S.grid(lr=lrs), progress=False)
  clean = S.sweep(_lasso, S.grid(l1=[0.1]) * S.grid(lr=[0.01, 0.02, 0.03]), progress=False)
  np.testing.assert_array_equal(result["failed"], [False, False, True, False])
  assert not math.isfinite(result["loss"][2])
  assert 0 < result["failed_step"][2] < _STEPS
  np.testing.assert_array_equal(result["failed_step"][[0, 1, 3]], [-1, -1, -1])
  ok = result.filter(failed=False)
  _assert_rows_match(ok, {n: clean[n] for n in ("lr", "loss", "zeros", "init")}, 0, 0)
  assert result.best("loss", mode="max")["lr"] != pytest.approx(0.2)


def test_failed_step_alone_marks_a_row_failed():
  result = S.sweep(
      lambda h, k: {"m": h["lr"], "failed_step": jnp.where(h["lr"] > 1.0, 3, -1)},
      S.grid(lr=[0.5, 2.0]),
      progress=False,
  )
  np.testing.assert_array_equal(result["failed"], [False, True])
  np.testing.assert_array_equal(result["failed_step"], [-1, 3])


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
      (dict(seeds=()), ValueError, "`seeds` is empty"),
      (dict(seeds=0), ValueError, r"`seeds` as an int is a count .* `seeds=\[0\]`"),
      (dict(seeds=(0, 0)), ValueError, "`seeds` must be distinct"),
      (dict(seeds=(-1,)), ValueError, r"`seeds` must hold ints in \[0, 2\*\*32\)"),
      (dict(seeds=(1.5,)), TypeError, "`seeds` must hold ints"),
      (dict(seeds="0"), TypeError, "`seeds`"),
      (dict(chunk_size=0), ValueError, "`chunk_size` must be a positive int"),
      (dict(chunk_size=2.0), TypeError, "`chunk_size`"),
      (dict(mesh="gpu"), TypeError, "`mesh`"),
      (dict(fn=3), TypeError, "`fn` must be callable"),
      (dict(grid=[1, 2]), TypeError, "`grid`"),
      (dict(fn=lambda h, k: h["a"]), TypeError, "dict of scalar metrics"),
      (dict(fn=lambda h, k: {"v": jnp.ones(3)}), ValueError, r"`v` must be a scalar"),
      (dict(fn=lambda h, k: {"seed": h["a"]}), ValueError, "`seed` clashes"),
      (dict(fn=lambda h, k: {"a": h["a"]}), ValueError, "`a` clashes"),
      (dict(fn=lambda h, k: {"k": k}), TypeError, "`k` must be numeric"),
    ],
)
def test_bad_sweep_arguments_raise_clear_errors(kwargs, error, fragment):
  arguments = dict(fn=lambda h, k: {"m": h["a"]}, grid=S.grid(a=[1.0, 2.0]), progress=False)
  arguments.update(kwargs)
  with pytest.raises(error, match=fragment):
    S.sweep(arguments.pop("fn"), arguments.pop("grid"), **arguments)


def test_rows_that_fit_splits_evenly_by_the_memory_estimate():
  assert R._rows_that_fit(800, 1000, 8) == 8  # fits: one chunk
  assert R._rows_that_fit(8000, 3000 / 0.9, 8) == 3  # 3 rows fit -> 3 chunks of 3
  assert R._rows_that_fit(8000, 5000 / 0.9, 8) == 4  # 5 fit -> 2 chunks, 4 rows each
  assert R._rows_that_fit(8000, 10, 8) == 1


def test_free_bytes_reads_memory_stats_and_falls_back_to_none():
  class Device:
    def __init__(self, stats):
      self._stats = stats

    def memory_stats(self):
      return self._stats

  full = Device({"bytes_limit": 1000, "bytes_in_use": 300})
  assert R._free_bytes([full, Device({"bytes_limit": 500, "bytes_in_use": 0})]) == 500
  assert R._free_bytes([full, Device(None)]) is None


def test_sweep_chunks_itself_when_the_estimate_does_not_fit(monkeypatch):
  # Pretend 8 rows need 8000 bytes and 3000 are free: 3 chunks of 3 rows.
  monkeypatch.setattr(R, "_estimated_bytes", lambda compiled: 8000)
  monkeypatch.setattr(R, "_free_bytes", lambda devices: 3000 / 0.9)
  result = S.sweep(lambda h, k: {"m": 2.0 * h["a"]}, S.grid(a=np.arange(8.0)), progress=False)
  assert result.chunk_size == 3 and len(result) == 8
  np.testing.assert_array_equal(result["m"], 2.0 * np.arange(8.0))


def test_one_device_keeps_every_row_on_it(monkeypatch):
  placed = []
  real = R._put_on_mesh
  monkeypatch.setattr(R, "_put_on_mesh", lambda a, s: placed.append(real(a, s)) or placed[-1])
  S.sweep(lambda h, k: {"m": h["a"]}, S.grid(a=[1.0, 2.0, 3.0]), progress=False)
  assert [len(x.addressable_shards) for x in placed] == [1, 1]
  assert all(x.addressable_shards[0].data.shape == (3,) for x in placed)


# ----------------------------------------------------------------------------- progress


def _counting_scan(hparams, key):
  del key

  def body(x, t):
    S.progress_callback(t, 40, every=10, desc="train")
    return x + hparams["a"], None

  x, _ = jax.lax.scan(body, jnp.float32(0.0), jnp.arange(40))
  return {"x": x}


def test_progress_reports_each_step_once_under_vmap_and_each_chunk(monkeypatch, capfd):
  monkeypatch.setattr(P, "_load_tqdm", lambda: None)  # plain printed lines
  result = S.sweep(_counting_scan, S.grid(a=np.arange(8.0)), chunk_size=4, desc="grid")
  np.testing.assert_allclose(result["x"], 40 * np.arange(8.0))
  lines = capfd.readouterr().err.splitlines()
  steps = [line.split()[1] for line in lines if line.startswith("train:")]
  # steps 0, 10, 20, 30 and the last one (39), once per chunk, not once per grid point
  assert steps == ["1/40", "11/40", "21/40", "31/40", "40/40"] * 2
  assert [line.split(",")[0] for line in lines if line.startswith("grid:")] == [
      "grid: 1/2 chunks",
      "grid: 2/2 chunks",
  ]


def test_progress_false_and_enabled_false_print_nothing(monkeypatch, capfd):
  monkeypatch.setattr(P, "_load_tqdm", lambda: None)
  S.sweep(_counting_scan, S.grid(a=[1.0, 2.0]), progress=False)
  assert capfd.readouterr().err == ""

  def quiet(hparams, key):
    S.progress_callback(jnp.int32(0), 10, enabled=False)
    return {"m": hparams["a"]}

  S.sweep(quiet, S.grid(a=[1.0]), progress=True, desc="grid")
  lines = capfd.readouterr().err.splitlines()
  assert lines and not any(line.startswith("steps:") for line in lines)


def test_progress_uses_tqdm_when_installed(capfd):
  pytest.importorskip("tqdm")
  S.sweep(_counting_scan, S.grid(a=[1.0, 2.0]), desc="grid")
  assert "grid: 100%" in capfd.readouterr().err


def test_progress_callback_rejects_bad_arguments():
  with pytest.raises(TypeError, match="`total_steps`"):
    S.progress_callback(0, 10.0)
  with pytest.raises(ValueError, match="`every`"):
    S.progress_callback(0, 10, every=0)


# ----------------------------------------------------------------------------- results


@pytest.fixture()
def by_hand():
  # Two configurations x three seeds; the last row failed (NaN accuracy).
  return S.SweepResult(
      {
          "a": [1.0, 1.0, 1.0, 2.0, 2.0, 2.0],
          "seed": [0, 1, 2, 0, 1, 2],
          "acc": np.array([0.5, 0.7, 0.9, 0.2, 0.4, np.nan], dtype=np.float32),
          "steps": [10, 20, 30, 40, 50, 60],
          "failed": [False, False, False, False, False, True],
      },
      hparams=("a",),
  )


def test_mean_over_seeds_matches_hand_computed_values(by_hand):
  mean = by_hand.mean_over_seeds()
  assert mean.columns == (
      "a", "n_seeds", "n_failed", "acc_mean", "acc_std", "steps_mean", "steps_std", "failed"
  )
  np.testing.assert_allclose(mean["acc_mean"], [0.7, 0.3], rtol=1e-6)
  # sample std: sqrt((0.2² + 0 + 0.2²) / 2) = 0.2 and sqrt((0.1² + 0.1²) / 1) = 0.1·√2
  np.testing.assert_allclose(mean["acc_std"], [0.2, 0.1 * math.sqrt(2)], rtol=1e-6)
  np.testing.assert_allclose(mean["steps_mean"], [20.0, 45.0])  # failed row left out
  np.testing.assert_array_equal(mean["n_failed"], [0, 1])
  np.testing.assert_array_equal(mean["failed"], [False, False])


def test_to_pandas_holds_the_same_columns_and_groups_like_mean_over_seeds(by_hand):
  frame = by_hand.to_pandas()
  assert list(frame.columns) == list(by_hand.columns) and len(frame) == 6
  assert frame["acc"].dtype == np.float32 and frame["failed"].dtype == bool
  ok = frame[~frame["failed"]].groupby("a")["acc"]
  mean = by_hand.mean_over_seeds()
  np.testing.assert_allclose(ok.mean().to_numpy(), mean["acc_mean"], rtol=1e-6)
  np.testing.assert_allclose(ok.std().to_numpy(), mean["acc_std"], rtol=1e-6)
  np.testing.assert_allclose(ok.mean().to_numpy(), [0.7, 0.3], rtol=1e-6)


def test_best_and_filter_pick_the_right_rows(by_hand):
  assert by_hand.best("acc") == {
      "a": 1.0, "seed": 2, "acc": 0.9, "steps": 30, "failed": False
  }
  assert by_hand.best("acc", mode="min")["acc"] == 0.2
  assert by_hand.best("steps")["steps"] == 50  # the failed row (60) is skipped
  with pytest.raises(ValueError, match="`mode`"):
    by_hand.best("acc", mode="mean")
  with pytest.raises(ValueError, match="`metric`"):
    by_hand.best("accuracy")
  assert len(by_hand.filter(a=1.0)) == 3
  np.testing.assert_array_equal(by_hand.filter(seed=[0, 2])["steps"], [10, 30, 40, 60])
  np.testing.assert_array_equal(by_hand.filter(acc=lambda v: v > 0.45)["seed"], [0, 1, 2])
  with pytest.raises(ValueError, match="`b` is not a column"):
    by_hand.filter(b=1)


def test_table_csv_and_json_round_trip(lasso_sweep, tmp_path):
  table = lasso_sweep.to_table().splitlines()
  assert table[0].split() == list(lasso_sweep.columns)
  assert len({len(line) for line in table}) == 1  # aligned
  with lasso_sweep.to_csv(tmp_path / "r.csv").open() as file:
    rows = list(csv.reader(file))
  assert rows[0] == list(lasso_sweep.columns)
  floats = [lasso_sweep[name].dtype.kind == "f" for name in lasso_sweep.columns]
  for line, row in zip(table[2:], rows[1:], strict=True):
    cells = [f"{float(c):.4g}" if f else c for c, f in zip(row, floats, strict=True)]
    assert line.split() == cells
  for reread in (
      S.SweepResult.from_csv(tmp_path / "r.csv"),
      S.SweepResult.from_json(lasso_sweep.to_json(tmp_path / "r.json")),
  ):
    assert reread.columns == lasso_sweep.columns and reread.hparams == ("l1",)
    for name in lasso_sweep.columns:
      original = lasso_sweep[name]
      np.testing.assert_array_equal(reread[name].astype(original.dtype), original, err_msg=name)


def test_json_writes_nan_as_null_and_reads_it_back(by_hand, tmp_path):
  path = by_hand.to_json(tmp_path / "r.json")
  assert json.loads(path.read_text())["data_vars"]["acc"]["data"][5] is None
  reread = S.SweepResult.from_json(path)
  np.testing.assert_allclose(reread["acc"], by_hand["acc"], rtol=1e-7)
  assert reread.metrics == ("acc", "steps")


def test_concat_adds_a_label_column_and_fills_missing_columns(lasso_sweep, by_hand):
  both = regjax.concat_results({"lasso": lasso_sweep, "toy": by_hand})
  assert len(both) == 14 and both.columns[0] == "method"
  assert both.hparams == ("method", "l1", "a")
  assert list(both["method"]) == ["lasso"] * 8 + ["toy"] * 6
  assert np.isnan(both["a"][:8]).all() and np.isnan(both["l1"][8:]).all()
  np.testing.assert_array_equal(both["failed"][8:], by_hand["failed"])
  assert len(both.mean_over_seeds()) == 8 + 2
  assert both.wall_time == pytest.approx(lasso_sweep.wall_time)
  with pytest.raises(ValueError, match="`column`"):
    regjax.concat_results({"x": both}, column="method")


def test_plot_writes_a_png_with_a_log_axis_and_one_line_per_hue(lasso_sweep, tmp_path):
  pytest.importorskip("matplotlib")
  mean = regjax.concat_results({"p": lasso_sweep, "q": lasso_sweep}).mean_over_seeds()
  figure = mean.plot(x="l1", y="loss_mean", hue="method", path=tmp_path / "p.png")
  assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  (ax,) = figure.axes
  assert ax.get_xscale() == "log" and len(ax.get_lines()) == 2
  np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), _L1)
  with pytest.raises(ValueError, match="`y`"):
    mean.plot(x="l1", y="nope")
