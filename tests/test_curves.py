"""Curves: metrics recorded every `eval_every` steps inside the compiled scan, carried by
`SweepResult` through chunks, seeds, files, early stopping and plots."""

import pathlib
import shutil

import jax
import numpy as np
import pytest

import regjax
from regjax import data, models
from regjax.experiment import cli
from regjax.experiment.data import Dataset
from regjax.experiment.results import SweepResult, concat
from regjax.experiment.trainer import Trainer

TRAIN, TEST = data.load_digits("train"), data.load_digits("test")
FIT = Dataset(TRAIN.inputs[:1100], TRAIN.labels[:1100])
VALIDATION = Dataset(TRAIN.inputs[1100:], TRAIN.labels[1100:])
GRID = regjax.grid(lam=[1e-4, 1e-3, 1e-2])


def trainer(steps=40, every=10):
  return Trainer(model=lambda rngs: models.MLP(64, (16,), 10, rngs=rngs),
                 optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
                 train=FIT, test=TEST, validation=VALIDATION, steps=steps, batch_size=32,
                 eval_every=every)


RUN = trainer()


def test_curve_ends_at_the_final_metric_and_segments_record_the_same_curve():
  hparams = {"lam": np.float32(1e-3)}
  start = RUN.init(hparams, jax.random.key(0))
  whole = jax.jit(lambda s: RUN.advance(hparams, s, 40))(start)
  quarter = jax.jit(lambda s: RUN.advance(hparams, s, 10))
  pieces = quarter(quarter(quarter(quarter(start))))
  for name, curve in whole.curves.items():
    np.testing.assert_array_equal(pieces.curves[name], curve, err_msg=name)
  assert not np.isnan(whole.curves["test_accuracy"]).any()
  final = jax.jit(RUN.evaluate)(hparams, whole)
  for name in ("test_accuracy", "validation_loss", "train_loss", "zero_weights", "dead_units"):
    np.testing.assert_allclose(final["curves/" + name][-1], final[name], rtol=1e-6)
  np.testing.assert_array_equal(final["curves/step"], [10, 20, 30, 40])
  # Half-way, the points not yet reached are NaN.
  half = jax.jit(lambda s: RUN.advance(hparams, s, 20))(start)
  assert np.isnan(half.curves["test_loss"][2:]).all()
  assert np.isfinite(half.curves["test_loss"][:2]).all()
  with pytest.raises(ValueError, match="multiple of `eval_every`"):
    RUN.advance(hparams, start, 15)


def test_curves_chunk_and_resume_like_the_rest_of_the_row(tmp_path):
  whole = regjax.sweep(RUN, GRID, seeds=(0, 1), progress=False)
  chunked = regjax.sweep(RUN, GRID, seeds=(0, 1), chunk_size=4, progress=False)
  resumed = regjax.sweep(RUN, GRID, seeds=(0, 1), checkpoint=tmp_path, segments=2,
                         progress=False)
  # Interrupted after the first segment: drop the newest checkpoint and resume.
  segments = sorted(tmp_path.glob("chunk_*/segment_*"))
  assert [s.name for s in segments] == ["segment_0001", "segment_0002"]
  shutil.rmtree(segments[-1])
  again = regjax.sweep(RUN, GRID, seeds=(0, 1), checkpoint=tmp_path, segments=2,
                       progress=False)  # resumes by default
  assert whole.curves["test_accuracy"].shape == (6, 4)
  for name, curve in resumed.curves.items():
    np.testing.assert_array_equal(again.curves[name], curve, err_msg=name)
  for other in (chunked, resumed):
    assert set(other.curves) == set(whole.curves)
    for name, curve in whole.curves.items():
      np.testing.assert_allclose(other.curves[name], curve, rtol=1e-6, err_msg=name)
  # Seeds averaged pointwise, with a band.
  means = whole.mean_over_seeds()
  rows = whole.curves["validation_accuracy"].values.reshape(3, 2, 4)
  # The same through xarray: the rows unstacked into a (lam, seed, step) cube.
  cube = whole.curves.set_index(row=["lam", "seed"]).unstack("row")
  np.testing.assert_allclose(cube["validation_accuracy"].mean("seed").transpose("lam", "step"),
                             rows.mean(1))
  np.testing.assert_allclose(means.curves["validation_accuracy_mean"], rows.mean(1))
  np.testing.assert_allclose(means.curves["validation_accuracy_std"], rows.std(1, ddof=1))


def hand_result():
  validation = np.array([[0.5, 0.9, 0.7], [0.6, 0.8, 0.95], [0.1, 0.2, np.nan],
                         [0.4, 0.5, 0.6]])
  test = np.array([[0.4, 0.85, 0.6], [0.5, 0.7, 0.91], [0.1, 0.1, 0.1], [0.3, 0.4, 0.5]])
  return SweepResult(
      {"lam": [0.1, 0.1, 1.0, 1.0], "seed": [0, 1, 0, 1], "test_accuracy": test[:, -1],
       "validation_accuracy": [0.7, 0.95, 0.2, 0.6], "failed": [False, False, False, False]},
      hparams=("lam",),
      curves={"validation_accuracy": validation, "test_accuracy": test,
              "zero_weights": np.tile([0.0, 0.1, 0.2], (4, 1)),
              "step": np.tile([100, 200, 300], (4, 1))})


def test_best_picks_the_step_on_validation_and_reports_test_there():
  result = hand_result()
  best = result.best("accuracy", split="validation")
  assert (best["lam"], best["seed"], best["step"]) == (0.1, 1, 300)
  assert best["test_accuracy"] == 0.91
  early = result.filter(seed=0).best("accuracy", split="validation")
  assert (early["step"], early["test_accuracy"]) == (200, 0.85)
  with pytest.raises(ValueError, match="test set"):
    result.best("accuracy", split="test")
  assert result.best("validation_accuracy")["seed"] == 1  # end points, as before


def test_curves_survive_json_netcdf_filter_and_concat(tmp_path):
  result = hand_result()
  for loaded in (SweepResult.from_json(result.to_json(tmp_path / "r.json")),
                 SweepResult.from_netcdf(result.to_netcdf(tmp_path / "r.nc"))):
    for name, curve in result.curves.items():
      np.testing.assert_array_equal(loaded.curves[name], curve)
    assert loaded.curves["step"].dtype == result.curves["step"].dtype
  picked = result.filter(lam=1.0)
  np.testing.assert_array_equal(picked.curves["test_accuracy"], result.curves["test_accuracy"][2:])
  both = concat({"a": result, "b": picked})
  assert both.curves["validation_accuracy"].shape == (6, 3)
  np.testing.assert_array_equal(both.curves["validation_accuracy"][4:],
                                result.curves["validation_accuracy"][2:])


def test_plot_curves_draws_one_line_per_grid_value_with_a_seed_band(tmp_path):
  pytest.importorskip("matplotlib")
  result = hand_result()
  figure = result.plot_curves("test_accuracy", by="lam", path=tmp_path / "c.png")
  ax = figure.axes[0]
  assert [line.get_label() for line in ax.get_lines()] == ["lam=0.1", "lam=1"]
  np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.45, 0.775, 0.755])
  assert len(ax.collections) == 2  # a band per line
  assert (tmp_path / "c.png").stat().st_size > 0
  averaged = result.mean_over_seeds().plot_curves("validation_accuracy", by="lam")
  np.testing.assert_allclose(averaged.axes[0].get_lines()[1].get_ydata(), [0.25, 0.35, np.nan])


def test_cli_writes_curves_png(tmp_path):
  pytest.importorskip("matplotlib")
  rows = concat({"prox_l1": hand_result(), "weight_decay": hand_result()})
  (path,) = cli.write_curves(rows, tmp_path)
  assert path == tmp_path / "curves.png" and path.stat().st_size > 0
  assert cli._eval_every(1000, 4) == 50 and cli._eval_every(600, 4) == 30
  assert pathlib.Path(path).suffix == ".png"
