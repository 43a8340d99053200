"""The main job end to end at a tiny size: table, CSV rows equal to it, PNG, resume."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from regjax.experiment import cli

TINY = ["sweep", "--steps", "40", "--seeds", "2", "--grid=-4:-2:2", "--width", "16",
        "--segments", "2", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("out")
  completed = subprocess.run([sys.executable, "-m", "regjax", *TINY, "--out", str(out)],
                             capture_output=True, text=True, timeout=600, check=True)
  return out, completed.stdout


def test_table_csv_and_png(tiny_run):
  out, stdout = tiny_run
  lines = stdout.splitlines()
  start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["method"])
  printed = [line.split() for line in lines[start + 2:start + 2 + 8]]
  with open(out / "sweep.csv") as handle:
    rows = list(csv.reader(handle))
  assert rows[0] == ["method", "lambda", "test_acc", "acc_std", "zero_w_%", "dead_units_%",
                     "seconds"]
  assert rows[1:] == printed  # the CSV holds exactly the printed rows
  assert {row[0] for row in rows[1:]} == set(cli.METHODS)
  assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  for row in rows[1:]:
    assert 0.0 <= float(row[2]) <= 1.0 and 0.0 <= float(row[4]) <= 100.0


def test_resume_from_a_checkpoint_is_bit_identical(tmp_path):
  args = cli.build_parser().parse_args(
      [*TINY, "--methods", "prox_l1", "--out", str(tmp_path)])
  whole = cli.run_sweep(args)
  # Drop the last segment's checkpoint: the run must redo it from segment 1.
  (tmp_path / "checkpoints" / "prox_l1" / "segment_0002.msgpack").unlink()
  args.resume = True
  resumed = cli.run_sweep(args)
  for column in ("test_accuracy", "test_loss", "train_loss", "zero_weights"):
    np.testing.assert_array_equal(whole[column], resumed[column])


def test_bad_arguments_are_explained(capsys):
  for bad in (["sweep", "--methods", "dropout"], ["sweep", "--grid", "1:2"],
              ["sweep", "--steps", "0"]):
    with pytest.raises(SystemExit):
      cli.build_parser().parse_args(bad)
  err = capsys.readouterr().err
  assert "unknown method" in err and "LOW:HIGH:N" in err and "must be >= 1" in err
