"""Checkpointed sweeps (`regjax.sweep(..., checkpoint=DIR)`): bit-identical resume (after
SIGKILL too), chunks, refused signatures naming the setting, damaged files named with a
way out, and the deprecated `resumable_sweep` alias."""

import csv
import gc
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regjax
from regjax.experiment import checkpoint, cli, data, sweeps
from regjax.experiment.trainer import Trainer
from regjax.nn import models

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_METRICS = ("test_accuracy", "test_loss", "train_loss", "zero_weights", "dead_units")


def _trainer(width=8, steps=8):
  return Trainer(
      model=lambda rngs: models.MLP(64, (width,), 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(1e-2, h["lam"], mask=regjax.masks.matrices),
      train=data.load_digits("train"), test=data.load_digits("test"), steps=steps,
      batch_size=16)


_GRID = sweeps.grid(lam=[1e-4, 1e-3, 1e-2])


def _resumable(trainer, grid, *, directory, resume=False, **options):
  """The checkpointed sweep; `resume=False` starts over, as `resumable_sweep` did."""
  return sweeps.sweep(trainer, grid, checkpoint=directory, resume=resume, **options)


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
  directory = tmp_path_factory.mktemp("chunked")
  result = _resumable(_trainer(), _GRID, seeds=2, directory=directory, segments=2,
                      chunk_size=4, progress=False)
  return directory, result


def test_rows_are_cut_into_chunks_with_one_checkpoint_per_segment(chunked):
  directory, result = chunked
  assert result.chunk_size == 4 and len(result) == 6  # 2 chunks, the last one padded
  saved = sorted(str(p.relative_to(directory)) for p in directory.glob("chunk_*/segment_*"))
  assert saved == ["chunk_0000/segment_0001", "chunk_0000/segment_0002",
                   "chunk_0001/segment_0001", "chunk_0001/segment_0002"]
  np.testing.assert_array_equal(result["seed"], [0, 1] * 3)
  # The same rows as the one-call sweep, up to one test example of accuracy.
  plain = sweeps.sweep(_trainer(), _GRID, seeds=2, chunk_size=4, progress=False)
  np.testing.assert_allclose(result["test_accuracy"], plain["test_accuracy"],
                             atol=1.01 / len(data.load_digits("test").labels))


def test_a_chunked_resume_is_bit_identical_and_keeps_the_saved_chunks(chunked, tmp_path):
  directory, whole = chunked
  copy = tmp_path / "copy"
  shutil.copytree(directory, copy)
  shutil.rmtree(copy / "chunk_0001" / "segment_0002")  # chunk 1 redoes its last segment
  resumed = _resumable(_trainer(), _GRID, seeds=2, directory=copy,
                                       segments=2, resume=True, progress=False)
  assert resumed.chunk_size == 4  # taken from sweep.json
  for name in _METRICS:
    np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)
  assert (copy / "chunk_0001" / "segment_0002").is_dir()
  # The deprecated alias is the same sweep, bit for bit (here: resuming the whole copy).
  with pytest.warns(DeprecationWarning, match="resumable_sweep"):
    alias = checkpoint.resumable_sweep(_trainer(), _GRID, seeds=2, directory=copy,
                                       segments=2, resume=True, progress=False)
  for name in _METRICS:
    np.testing.assert_array_equal(alias[name], whole[name], err_msg=name)


def test_resume_on_an_empty_directory_starts_fresh_and_writes_the_signature(tmp_path):
  _resumable(_trainer(steps=4), {"lam": [1e-3]}, directory=tmp_path,
                             segments=2, resume=True, settings={"note": "a"}, progress=False)
  signature = json.loads((tmp_path / "sweep.json").read_text())
  assert signature["steps"] == 4 and signature["seeds"] == [0]
  assert signature["settings['note']"] == "a" and signature["grid"] == {"lam": [1e-3]}
  state = signature["training state"]  # leaf path -> [shape, dtype], whatever the pytree
  kernels = [leaf for path, leaf in state.items() if path.endswith("['layers'][0]['kernel']")]
  assert kernels[0] == [[64, 8], "float32"]
  with pytest.raises(checkpoint.CheckpointError, match=r"settings\['note'\]: was 'a', now 'b'"):
    _resumable(_trainer(steps=4), {"lam": [1e-3]}, directory=tmp_path,
                               segments=2, resume=True, settings={"note": "b"}, progress=False)
  # Checkpoints of the format before (arrays alone, no host JSON) are refused by name.
  assert signature.pop("checkpoint format") == checkpoint.FORMAT == 2
  (tmp_path / "sweep.json").write_text(json.dumps(signature))
  with pytest.raises(checkpoint.CheckpointError, match="checkpoint format: was None, now 2"):
    _resumable(_trainer(steps=4), {"lam": [1e-3]}, directory=tmp_path,
                               segments=2, resume=True, settings={"note": "a"}, progress=False)


def test_a_different_model_shape_is_refused_naming_the_leaf(chunked):
  directory, _ = chunked
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"training state .*\['bias'\] was \[\[8\], 'float32'\], "
                           r"now \[\[12\], 'float32'\]"):
    _resumable(_trainer(width=12), _GRID, seeds=2, directory=directory,
                               segments=2, resume=True, progress=False)


_TINY = ["sweep", "--methods", "prox_l1", "--steps", "4", "--seeds", "2", "--grid=-4:-2:2",
         "--width", "8", "--batch-size", "16", "--segments", "2", "--no-progress"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("cli")
  cli.run_sweep(cli.parse_args([*_TINY, "--out", str(out)]))
  return out


@pytest.mark.parametrize("flag, value, named", [
    ("--learning-rate", "0.02", "settings['learning_rate']: was 0.01, now 0.02"),
    ("--width", "12", "settings['width']: was 8, now 12"),
    ("--depth", "1", "settings['depth']: was 2, now 1"),
    ("--steps", "8", "steps: was 4, now 8"),
    ("--seeds", "3", "seeds: was [0, 1], now [0, 1, 2]"),
    ("--seeds", "0,7", "seeds: was [0, 1], now [0, 7]"),
    ("--grid", "-4:-1:2", "grid: was {'lam': [0.0001, 0.01]}, now {'lam': [0.0001, 0.1]}"),
    ("--batch-size", "32", "batch_size: was 16, now 32"),
    ("--segments", "4", "segments: was 2, now 4"),
])
def test_resume_with_a_different_setting_is_refused_naming_it(cli_run, flag, value, named):
  args = cli.parse_args([*_TINY, "--out", str(cli_run), "--resume", flag, value])
  with pytest.raises(checkpoint.CheckpointError) as error:
    cli.run_sweep(args)
  assert named in str(error.value) and "without `resume`" in str(error.value)


def test_the_cli_reports_a_refused_resume_without_a_traceback(cli_run, capsys):
  code = cli.main([*_TINY, "--out", str(cli_run), "--resume", "--learning-rate", "0.5"])
  err = capsys.readouterr().err
  assert code == 2 and err.startswith("regjax sweep: error: `resume`")
  assert "learning_rate" in err and "Traceback" not in err


def test_a_damaged_checkpoint_is_named_with_the_way_out(chunked, tmp_path, monkeypatch):
  # Orbax's reads still in flight after a failed restore report "Event loop is closed"
  # through sys.unraisablehook: the clean CheckpointError must come alone.
  reports = []
  monkeypatch.setattr(sys, "unraisablehook", reports.append)
  directory, _ = chunked
  copy = tmp_path / "copy"
  shutil.copytree(directory, copy)
  newest = copy / "chunk_0000" / "segment_0002"
  for path in newest.rglob("*"):
    if path.is_file():
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
  with pytest.raises(checkpoint.CheckpointError) as error:
    _resumable(_trainer(), _GRID, seeds=2, directory=copy, segments=2,
               resume=True, progress=False)
  assert f"Checkpoint {newest} cannot be read" in str(error.value)
  assert f"Delete {newest} to resume from the segment before it" in str(error.value)
  # A missing manifest fails inside Orbax's parallel reads: the clean error only, without
  # the "Event loop is closed" reports of the reads still in flight.
  shutil.rmtree(newest)
  older = copy / "chunk_0000" / "segment_0001"
  (older / "state" / "manifest.ocdbt").unlink()
  with pytest.raises(checkpoint.CheckpointError, match=f"Checkpoint {older} cannot be read"):
    _resumable(_trainer(), _GRID, seeds=2, directory=copy, segments=2, resume=True,
               progress=False)
  time.sleep(1.0)
  gc.collect()
  assert not [r for r in reports if "Event loop is closed" in str(r.exc_value)]
  (copy / "sweep.json").write_text('{"grid": ')
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"signature .*sweep\.json is missing or damaged.*without `resume`"):
    _resumable(_trainer(), _GRID, seeds=2, directory=copy, segments=2,
               resume=True, progress=False)


def test_save_and_load_round_trip_any_pytree_with_typed_keys(tmp_path):
  tree = {"keys": jax.random.split(jax.random.key(3), 4), "w": jnp.arange(6.0).reshape(2, 3),
          "step": (jnp.int32(7), jnp.ones(2, jnp.bfloat16))}
  checkpoint.save(tmp_path / "tree", tree)
  back = checkpoint.load(tmp_path / "tree", tree)
  np.testing.assert_array_equal(jax.random.key_data(back["keys"]),
                                jax.random.key_data(tree["keys"]))
  pairs = zip(jax.tree.leaves(back["step"]), jax.tree.leaves(tree["step"]), strict=True)
  assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in pairs)
  np.testing.assert_array_equal(back["w"], tree["w"])


# ----------------------------------------------------------------------------- SIGKILL


def _cli(out, *extra):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
  command = [sys.executable, "-m", "regjax", "sweep", "--methods", "prox_l1", "--steps",
             "300", "--segments", "3", "--seeds", "2", "--grid=-4:-2:2", "--width", "16",
             "--no-progress", "--out", str(out), *extra]
  return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def _rows_csv(out):
  with open(out / "rows.csv") as handle:
    return list(csv.DictReader(handle))


def test_a_sweep_killed_mid_segment_resumes_bit_identical(tmp_path):
  killed, whole = tmp_path / "killed", tmp_path / "whole"
  reference = _cli(whole)
  victim = _cli(killed)
  first = killed / "checkpoints" / "prox_l1" / "chunk_0000" / "segment_0001"
  deadline = time.monotonic() + 300
  while not first.is_dir() and victim.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  victim.send_signal(signal.SIGKILL)
  victim.communicate()
  assert victim.returncode == -signal.SIGKILL
  segments = sorted(p.name for p in first.parent.glob("segment_*"))
  assert segments[0] == "segment_0001" and "segment_0003" not in segments  # mid-run
  resumed = _cli(killed, "--resume")
  assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-3000:]
  assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]
  left = {p.name for p in first.parent.iterdir()}  # an unfinished save was removed
  assert left == {"segment_0001", "segment_0002", "segment_0003"}
  ours, theirs = _rows_csv(killed), _rows_csv(whole)
  assert len(ours) == 4
  for name in (*_METRICS, "lam"):  # written in full (shortest round-trip form)
    assert [row[name] for row in ours] == [row[name] for row in theirs], name
