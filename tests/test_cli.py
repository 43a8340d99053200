"""The main job end to end at a tiny size, and the command line behaving like one."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from regjax.experiment import cli, data

TINY = ["sweep", "--steps", "40", "--seeds", "2", "--grid", "-4:-2:2", "--width", "16",
        "--segments", "2", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("out")
  completed = subprocess.run([sys.executable, "-m", "regjax", *TINY, "--out", str(out)],
                             capture_output=True, text=True, timeout=600, check=True)
  return out, completed.stdout


def _csv(path):
  with open(path) as handle:
    return list(csv.reader(handle))


def test_the_printed_table_is_sweep_csv_rounded(tiny_run):
  out, stdout = tiny_run
  lines = stdout.splitlines()
  start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["method"])
  printed = [line.split() for line in lines[start:start + 2 + 8]]
  rows = _csv(out / "sweep.csv")
  header = ["method", "lambda", "test_acc", "acc_std", "zero_w_%", "dead_units_%", "seconds",
            "failed"]
  assert rows[0] == header == printed[0]
  assert len(rows) == 1 + 8 and {row[0] for row in rows[1:]} == set(cli.METHODS)
  for row, shown in zip(rows[1:], printed[2:], strict=True):  # table: 4 significant digits
    cells = [row[0], *(f"{float(v):.4g}" for v in row[1:-1]), row[-1]]
    assert cells == shown
    assert 0.0 <= float(row[2]) <= 1.0 and 0.0 <= float(row[4]) <= 100.0
  assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_csv_holds_every_seed_and_averages_to_sweep_csv(tiny_run):
  out, _ = tiny_run
  rows = _csv(out / "rows.csv")
  header, body = rows[0], rows[1:]
  assert header[:3] == ["method", "lam", "seed"] and len(body) == 4 * 2 * 2
  assert [row[2] for row in body] == ["0", "1"] * 8  # --seeds 2 means seeds 0 and 1
  accuracy = np.array([float(row[header.index("test_accuracy")]) for row in body])
  summary = np.array([float(row[2]) for row in _csv(out / "sweep.csv")[1:]])
  np.testing.assert_allclose(accuracy.reshape(8, 2).mean(axis=1), summary, rtol=1e-6)


def test_grid_takes_negative_bounds_with_or_without_equals():
  for argv in (["sweep", "--grid", "-4:-2:3"], ["sweep", "--grid=-4:-2:3"]):
    assert cli.parse_args(argv).grid == (-4.0, -2.0, 3)
  assert cli.parse_args(["sweep", "--grid", "1:2:2", "--steps", "8", "--segments", "2"]).grid \
      == (1.0, 2.0, 2)


def test_help_shows_every_default(capsys):
  with pytest.raises(SystemExit):
    cli.parse_args(["sweep", "--help"])
  text = " ".join(capsys.readouterr().out.split())
  for shown in ("Adam steps per model (default: 1000)", "(default: 2)", "(default: 64)",
                "(default: 128)", "Adam learning rate (default: 0.01)", "(default: 4)",
                "(default: regjax-out)", "(default: prox_l1,l1_subgradient,weight_decay,",
                "(default: each method's own range: prox_l1 -5:-1.5:12,"):
    assert shown in text, shown


@pytest.mark.parametrize("argv, message", [
    (["--methods", "dropout"], "unknown method"),
    (["--grid", "1:2"], "LOW:HIGH:N"),
    (["--steps", "0"], "argument --steps: must be >= 1"),
    (["--steps", "ten"], "argument --steps: expected a positive int, got 'ten'"),
    (["--learning-rate", "-0.01"], "argument --learning-rate: must be a finite number > 0"),
    (["--learning-rate", "nan"], "argument --learning-rate: must be a finite number > 0"),
    (["--batch-size", "5000"], "argument --batch-size: 5000 exceeds the 1437 training"),
    (["--steps", "10", "--segments", "11"], "argument --segments: 11 exceeds --steps 10"),
    (["--seeds", "0"], "argument --seeds: expected a count N"),
    (["--seeds", "1,1"], "`seeds` must be distinct"),
])
def test_bad_values_are_argparse_errors(capsys, argv, message):
  with pytest.raises(SystemExit) as exit_:
    cli.parse_args(["sweep", *argv])
  assert exit_.value.code == 2
  err = capsys.readouterr().err
  assert message in err and "Traceback" not in err
  assert len(data.load_digits("train").labels) == 1437


def test_the_default_segments_take_any_step_count():
  # `--steps 50` with the default 4 segments: lengths 14, 12, 12, 12 (periods of 2 steps).
  args = cli.parse_args(["sweep", "--steps", "50"])
  assert args.segments == 4 and cli._eval_every(50, 4) == 2
  assert cli._trainer(cli.METHODS["prox_l1"], args).plan_segments(4) == (14, 12, 12, 12)
  assert cli._eval_every(300, 3) == 10  # a divisor of the segment when segments divide


def test_help_describes_every_column(capsys):
  with pytest.raises(SystemExit):
    cli.parse_args(["sweep", "--help"])
  text = capsys.readouterr().out
  for column in ("test_acc", "acc_std", "zero_w_%", "dead_units_%", "seconds", "failed",
                 "train_penalty", "hidden_0_zero", "failed_step", "dead_units"):
    assert f"    {column}" in text or f", {column}" in text, column


def test_seeds_mean_a_count_or_a_list_as_in_the_api():
  assert cli.parse_args(["sweep", "--seeds", "3"]).seeds == 3
  assert cli.parse_args(["sweep", "--seeds", "3,"]).seeds == [3]
  assert cli.parse_args(["sweep", "--seeds", "0,7"]).seeds == [0, 7]
