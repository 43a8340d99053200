"""``regjax sweep``: the main job, a λ sweep of four sparsity methods on the digits.

Each method trains one MLP per (λ, seed) as one vmapped computation and the results go
to the terminal (one row per method and λ, mean over seeds), ``sweep.csv`` (the same
rows), ``sweep.png`` (held-out accuracy against the share of exact-zero weights) and
``curves.png`` (held-out accuracy and the share of exact zeros against steps, for a few
λ of each method, recorded about 20 times per run inside the compiled training loop).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import platform
import sys
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
import optax

from regjax import masks, optimizers, penalties, prox, transforms
from regjax.experiment import checkpoint, data
from regjax.experiment import results as _results
from regjax.experiment import sweeps as _sweep
from regjax.experiment import trainer as regjax_nnx
from regjax.nn import models


@dataclasses.dataclass(frozen=True)
class Method:
  """One regularization method of the main job."""

  description: str
  log10_range: tuple[float, float]  # default λ grid, log10 bounds
  optimizer: Callable[[float], Callable]  # learning rate -> (hparams -> transform)
  loss_penalty: Callable | None = None


def _l1_in_loss(params, hparams):
  return hparams["lam"] * penalties.tree_penalty(penalties.l1, params, mask=masks.matrices)


METHODS = {
    "prox_l1": Method(
        "proximal L1, Adam-preconditioned threshold (regjax.prox_adam)", (-5.0, -1.5),
        lambda lr: lambda h: optimizers.prox_adam(lr, h["lam"], mask=masks.matrices)),
    "l1_subgradient": Method(
        "L1 term in the loss, plain Adam (the subgradient method)", (-5.0, -1.5),
        lambda lr: lambda h: optax.adam(lr), loss_penalty=_l1_in_loss),
    "weight_decay": Method(
        "decoupled weight decay, AdamW (regjax.adamw)", (-3.0, 1.0),
        lambda lr: lambda h: optimizers.adamw(lr, h["lam"])),
    "group_lasso": Method(
        "group lasso prox on hidden units after Adam (regjax.proximal + prox.group_l2)",
        (-2.5, 0.5),
        lambda lr: lambda h: optax.chain(
            optax.adam(lr),
            transforms.proximal(prox.group_l2, h["lam"], lr, mask=regjax_nnx.hidden_kernels))),
}
TABLE = (
    ("method", "method", "{}"),
    ("lam", "lambda", "{:.3g}"),
    ("test_accuracy_mean", "test_acc", "{:.4f}"),
    ("test_accuracy_std", "acc_std", "{:.4f}"),
    ("zero_weights_pct", "zero_w_%", "{:.1f}"),
    ("dead_units_pct", "dead_units_%", "{:.1f}"),
    ("seconds", "seconds", "{:.1f}"),
)


def _log_range(text: str) -> tuple[float, float, int]:
  try:
    low, high, count = text.split(":")
    result = float(low), float(high), int(count)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected LOW:HIGH:N (log10 bounds and a count), got {text!r}") from None
  if result[2] < 1 or not all(np.isfinite(result[:2])):
    raise argparse.ArgumentTypeError(f"N must be >= 1 and bounds finite, got {text!r}")
  return result


def _methods(text: str) -> list[str]:
  names = [name.strip() for name in text.split(",") if name.strip()]
  unknown = [name for name in names if name not in METHODS]
  if unknown or not names:
    raise argparse.ArgumentTypeError(
        f"unknown method(s) {unknown or text!r}; choose from {', '.join(METHODS)}")
  return names


def _positive(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
  return value


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="regjax", description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest="command", required=True)
  run = commands.add_parser(
      "sweep", help="train a λ grid for several methods and report accuracy vs sparsity",
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  run.add_argument("--methods", type=_methods, default=list(METHODS),
                   help="comma-separated subset of: " + ", ".join(
                       f"{k} ({m.description})" for k, m in METHODS.items()))
  run.add_argument("--grid", type=_log_range, default=None, metavar="LOW:HIGH:N",
                   help="λ = logspace(LOW, HIGH, N) for every method "
                        "(default: 12 points over each method's own range)")
  run.add_argument("--steps", type=_positive, default=1000, help="Adam steps per model")
  run.add_argument("--seeds", type=_positive, default=2, help="seeds per λ (0..N-1)")
  run.add_argument("--width", type=_positive, default=64, help="hidden units per layer")
  run.add_argument("--depth", type=_positive, default=2, help="hidden layers")
  run.add_argument("--batch-size", type=_positive, default=128, help="examples per step")
  run.add_argument("--learning-rate", type=float, default=1e-2, help="Adam learning rate")
  run.add_argument("--out", type=pathlib.Path, default=pathlib.Path("regjax-out"),
                   help="output folder for sweep.csv, sweep.png and checkpoints")
  run.add_argument("--segments", type=_positive, default=4,
                   help="training is saved to --out/checkpoints after each of this many "
                        "equal segments of --steps")
  run.add_argument("--resume", action="store_true",
                   help="continue from the checkpoints in --out (same arguments), "
                        "bit-identical to an uninterrupted run")
  run.add_argument("--no-progress", action="store_true", help="hide progress bars")
  return parser


def _trainer(method: Method, args: argparse.Namespace) -> regjax_nnx.Trainer:
  hidden = (args.width,) * args.depth
  return regjax_nnx.Trainer(
      model=lambda rngs: models.MLP(64, hidden, 10, rngs=rngs),
      optimizer=method.optimizer(args.learning_rate),
      train=data.load_digits("train"), test=data.load_digits("test"),
      steps=args.steps, batch_size=args.batch_size, loss_penalty=method.loss_penalty,
      eval_every=_eval_every(args.steps, args.segments))


def _eval_every(steps: int, segments: int) -> int:
  """About 20 evaluations per run, a divisor of the segment length (curves resume)."""
  per_segment = steps // segments
  return max(d for d in range(1, max(1, steps // 20) + 1) if per_segment % d == 0)


def run_sweep(args: argparse.Namespace) -> _results.SweepResult:
  """Runs every method's sweep; returns the per-seed rows of all methods."""
  if args.steps % args.segments:
    raise SystemExit(f"--steps {args.steps} must be a multiple of --segments {args.segments}")
  results = {}
  for name in args.methods:
    method = METHODS[name]
    low, high, count = args.grid or (*method.log10_range, 12)
    grid = _sweep.grid(lam=np.logspace(low, high, count))
    result = checkpoint.resumable_sweep(
        _trainer(method, args), grid, seeds=tuple(range(args.seeds)),
        directory=args.out / "checkpoints" / name, segments=args.segments,
        resume=args.resume, progress=not args.no_progress, desc=name)
    columns = {column: result[column] for column in result.columns}
    columns["seconds"] = np.full(len(result), result.wall_time)
    results[name] = _results.SweepResult(columns, hparams=result.hparams,
                                         wall_time=result.wall_time, curves=result.curves)
  return _results.concat(results)


def summarize(rows: _results.SweepResult) -> _results.SweepResult:
  """Mean over seeds, percentages, and the wall time of each method's sweep."""
  means = rows.mean_over_seeds()
  columns = {name: means[name] for name in ("method", "lam", "test_accuracy_mean",
                                            "test_accuracy_std")}
  columns["zero_weights_pct"] = 100 * means["zero_weights_mean"]
  columns["dead_units_pct"] = 100 * means["dead_units_mean"]
  columns["seconds"] = means["seconds_mean"]
  columns["failed"] = means["failed"]
  return _results.SweepResult(columns, hparams=("method", "lam"), wall_time=rows.wall_time)


def format_table(summary: _results.SweepResult) -> str:
  header = [title for _, title, _ in TABLE]
  body = [[fmt.format(record[key]) for key, _, fmt in TABLE]
          for record in summary.to_records()]
  widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
  lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                     for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
           for row in [header, *body]]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def write_outputs(summary: _results.SweepResult, out: pathlib.Path) -> tuple[pathlib.Path, ...]:
  out.mkdir(parents=True, exist_ok=True)
  csv_path = out / "sweep.csv"
  with open(csv_path, "w") as handle:
    handle.write(",".join(title for _, title, _ in TABLE) + "\n")
    for record in summary.to_records():
      handle.write(",".join(fmt.format(record[key]) for key, _, fmt in TABLE) + "\n")
  png_path = out / "sweep.png"
  try:
    figure = summary.plot(x="zero_weights_pct", y="test_accuracy_mean", hue="method",
                          logx=False, title="digits MLP: held-out accuracy vs sparsity")
  except ImportError:
    print("matplotlib is not installed (pip install 'regjax[plots]'): no sweep.png",
          file=sys.stderr)
    return (csv_path,)
  axes = figure.axes[0]
  axes.set_xlabel("exact-zero weights (%)")
  axes.set_ylabel("held-out accuracy (mean over seeds)")
  figure.savefig(png_path, dpi=120)
  return csv_path, png_path


def write_curves(rows: _results.SweepResult, out: pathlib.Path,
                 lines: int = 4) -> tuple[pathlib.Path, ...]:
  """``curves.png``: held-out accuracy and exact zeros against steps, a few λ per method.

  One column of two panels per method; each line is one λ (``lines`` of them, evenly
  spaced over the grid), the mean over seeds with a ±1 std band.
  """
  if "test_accuracy" not in rows.curves:
    return ()
  try:
    from matplotlib.figure import Figure
  except ImportError:
    print("matplotlib is not installed (pip install 'regjax[plots]'): no curves.png",
          file=sys.stderr)
    return ()
  methods = list(dict.fromkeys(rows["method"].tolist()))
  figure = Figure(figsize=(4.0 * len(methods), 6.0), layout="constrained")
  axes = figure.subplots(2, len(methods), squeeze=False)
  for j, method in enumerate(methods):
    part = rows.filter(method=method)
    lams = np.unique(part["lam"])
    chosen = lams[np.unique(np.linspace(0, len(lams) - 1, min(lines, len(lams))).round()
                            .astype(int))]
    part = part.filter(lam=chosen.tolist())
    part.plot_curves("test_accuracy", by="lam", ax=axes[0, j], title=method)
    part.plot_curves("zero_weights", by="lam", ax=axes[1, j])
    axes[0, j].set_ylabel("held-out accuracy")
    axes[1, j].set_ylabel("exact-zero weights (share)")
  path = out / "curves.png"
  out.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, dpi=100)
  return (path,)


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(["sweep"] if argv is None and len(sys.argv) == 1
                                   else argv)
  start = time.perf_counter()
  device = jax.devices()[0]
  print(f"regjax sweep on {device.platform} ({device.device_kind}, {jax.device_count()} "
        f"device(s)), {platform.processor() or platform.machine()}; jax {jax.__version__}")
  print(f"methods: {', '.join(args.methods)}; {args.steps} steps, {args.seeds} seed(s), "
        f"MLP 64-{'-'.join([str(args.width)] * args.depth)}-10 on the 8x8 digits "
        f"({len(data.load_digits('train').labels)} train / "
        f"{len(data.load_digits('test').labels)} test)")
  rows = run_sweep(args)
  summary = summarize(rows)
  print(format_table(summary))
  paths = write_outputs(summary, args.out) + write_curves(rows, args.out)
  print(f"wrote {', '.join(str(p) for p in paths)}; total wall time "
        f"{time.perf_counter() - start:.1f} s")
  failed = int(np.sum(summary["failed"]))
  if failed:
    print(f"{failed} configuration(s) failed (non-finite loss); see the table", file=sys.stderr)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())

