"""SweepResult on pandas and xarray: files in their formats with every dtype restored,
regjax 0.1's files, intervals over seeds, and the xarray idioms the docs show."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regjax.experiment import results
from regjax.experiment.results import SweepResult


@pytest.fixture()
def mixed():
  # Every dtype a sweep produces: float32/float64 metrics, int64 seeds up to 2**32 - 1,
  # bools, text labels, a NaN, int32 steps; two configurations x two seeds.
  return SweepResult(
      {"method": ["a", "a", "bb", "bb"], "lam": np.array([0.1, 0.1, 1.0, 1.0], np.float32),
       "seed": np.array([0, 2**32 - 1, 0, 2**32 - 1], np.int64),
       "acc": np.array([0.5, 0.7, np.nan, 0.9], np.float32),
       "loss": np.array([1 / 3, 2 / 3, 1.0, np.pi]), "failed_step": np.array([-1, -1, 3, -1]),
       "failed": [False, False, True, False]},
      hparams=("method", "lam"), wall_time=2.5, chunk_size=4,
      curves={"acc": np.array([[0.1, 0.5], [0.2, 0.7], [np.nan, np.nan], [0.3, 0.9]],
                              np.float32),
              "step": np.tile(np.array([10, 20], np.int32), (4, 1))})


@pytest.mark.parametrize("suffix", [".nc", ".json"])
def test_a_saved_result_loads_with_every_dtype_and_value(mixed, tmp_path, suffix):
  loaded = results.load(mixed.save(tmp_path / f"r{suffix}"))
  assert loaded.columns == mixed.columns and loaded.hparams == mixed.hparams
  assert loaded.metrics == mixed.metrics
  assert (loaded.wall_time, loaded.chunk_size) == (2.5, 4)
  for name in mixed.columns:
    assert loaded[name].dtype.kind == mixed[name].dtype.kind, name
    if mixed[name].dtype.kind != "U":
      assert loaded[name].dtype == mixed[name].dtype, name
    np.testing.assert_array_equal(loaded[name], mixed[name], err_msg=name)
  np.testing.assert_array_equal(loaded.curves["acc"], mixed.curves["acc"])
  assert loaded.curves["acc"].dtype == np.float32
  assert loaded.curves["step"].dtype == np.int32
  np.testing.assert_array_equal(loaded.curves["seed"], mixed["seed"])  # row coordinates


def test_csv_is_the_table_in_pandas_and_json_is_strict(mixed, tmp_path):
  path = mixed.to_csv(tmp_path / "rows.csv")
  frame = pd.read_csv(path)
  assert list(frame.columns) == list(mixed.columns)
  np.testing.assert_array_equal(frame["seed"], mixed["seed"])
  loaded = results.load(path)
  assert loaded.hparams == ("method", "lam")
  np.testing.assert_array_equal(loaded["acc"].astype(np.float32), mixed["acc"])
  text = mixed.save(tmp_path / "r.json").read_text()
  assert "NaN" not in text and json.loads(text)["data_vars"]["acc"]["data"][2] is None
  with pytest.raises(ValueError, match=r"\.nc, \.json, \.csv or \.parquet"):
    mixed.save(tmp_path / "r.txt")


def test_files_of_regjax_0_1_load(mixed, tmp_path):
  # The layouts regjax 0.1's SweepResult.to_json and to_npz wrote.
  records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
             for r in mixed.to_records()]
  old_json = {"columns": list(mixed.columns), "hparams": ["method", "lam"],
              "metrics": ["acc", "loss", "failed_step"], "wall_time": 2.5, "records": records,
              "curves": {"acc": {"dtype": "float32", "values": [[0.1, 0.5], [0.2, 0.7],
                                                                [None, None], [0.3, 0.9]]},
                         "step": {"dtype": "int32", "values": [[10, 20]] * 4}}}
  (tmp_path / "old.json").write_text(json.dumps(old_json))
  meta = {"hparams": ["method", "lam"], "metrics": ["acc", "loss", "failed_step"],
          "wall_time": 2.5, "columns": list(mixed.columns), "curves": ["acc", "step"]}
  arrays = {f"column/{n}": mixed[n] for n in mixed.columns}
  arrays.update({"curve/acc": mixed.curves["acc"].values,
                 "curve/step": np.tile(np.array([10, 20], np.int32), (4, 1))})
  np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), **arrays)
  for loaded in (results.load(tmp_path / "old.json"), results.load(tmp_path / "old.npz")):
    assert loaded.hparams == ("method", "lam") and loaded.wall_time == 2.5
    np.testing.assert_array_equal(loaded["seed"], mixed["seed"])
    np.testing.assert_allclose(loaded["acc"], mixed["acc"], rtol=1e-7)
    np.testing.assert_allclose(loaded.curves["acc"], mixed.curves["acc"], rtol=1e-7)
    np.testing.assert_array_equal(loaded.curves["step"], [10, 20])


def test_mean_over_seeds_gives_the_student_t_interval(mixed):
  result = SweepResult({"lam": [1.0] * 4 + [2.0] * 2, "seed": [0, 1, 2, 3, 0, 1],
                        "acc": [0.5, 0.6, 0.8, 0.9, 0.1, np.nan],
                        "failed": [False, False, False, False, False, True]},
                       hparams=("lam",))
  means = result.mean_over_seeds(interval=0.9)
  acc = np.array([0.5, 0.6, 0.8, 0.9])
  low, high = stats.t.interval(0.9, 3, loc=acc.mean(), scale=stats.sem(acc))
  np.testing.assert_allclose([means["acc_low"][0], means["acc_high"][0]], [low, high])
  assert np.isnan(means["acc_low"][1])  # one successful seed: no interval
  assert means.columns == ("lam", "n_seeds", "n_failed", "acc_mean", "acc_std", "acc_low",
                           "acc_high", "failed")
  with pytest.raises(ValueError, match="`interval`"):
    result.mean_over_seeds(interval=95)
  # The pandas idiom of the docs gives the same means.
  table = result.table
  ok = table[~table["failed"]].groupby("lam")["acc"].mean()
  np.testing.assert_allclose(ok.to_numpy(), means["acc_mean"])
  # And the xarray one, on the curves: rows grouped by a one-axis grid.
  grouped = mixed.filter(method="a").curves.groupby("lam").mean()
  np.testing.assert_allclose(grouped["acc"].values[0], [0.15, 0.6], rtol=1e-6)
