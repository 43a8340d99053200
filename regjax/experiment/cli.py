"""``regjax sweep``: the main job, a λ sweep of four sparsity methods on the digits.

Each method trains one MLP per (λ, seed) as one vmapped computation, saved after each
segment of steps (``--resume`` goes on from there), and the results go to the terminal
(one row per method and λ, mean over seeds), ``sweep.csv`` (the same rows),
``rows.csv`` (every seed, full precision), ``sweep.png`` (held-out accuracy against
the share of exact-zero weights) and ``curves.png`` (held-out accuracy and the share of
exact zeros against steps, for a few λ of each method, recorded about 20 times per run
inside the compiled training loop).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax

from regjax import masks, optimizers, penalties, prox, transforms
from regjax.experiment import checkpoint, data
from regjax.experiment import results as _results
from regjax.experiment import rows as _rows
from regjax.experiment import sweeps as _sweep
from regjax.experiment import trainer as regjax_nnx
from regjax.experiment.grids import grid as _grid
from regjax.experiment.loop import Hparams
from regjax.nn import models
from regjax.typing import Params

__all__ = ["COLUMNS", "METHODS", "Method", "build_parser", "main", "parse_args", "run_sweep",
           "summarize", "write_curves", "write_outputs"]


@dataclasses.dataclass(frozen=True)
class Method:
  """One regularization method of the main job (an entry of :data:`METHODS`).

  Attributes:
    description: what ``--help`` shows for it.
    log10_range: the default λ grid's bounds in log10 (12 points between them).
    optimizer: learning rate -> (hparams -> Optax transform); ``hparams["lam"]`` is λ.
    loss_penalty: a ``(params, hparams) -> scalar`` added to the loss, or None (the
      :class:`regjax.Trainer`'s ``loss_penalty``).

  Examples:
    >>> import optax
    >>> from regjax.experiment import cli
    >>> cli.METHODS["weight_decay"].log10_range
    (-3.0, 1.0)
    >>> plain_l2 = cli.Method("L2 in Adam's gradient (coupled)", (-5.0, -1.0),
    ...                       lambda lr: lambda h: optax.adamw(lr, weight_decay=h["lam"]))
    >>> transform = plain_l2.optimizer(1e-2)({"lam": 1e-3})
    >>> callable(transform.init) and callable(transform.update)
    True
  """

  description: str
  log10_range: tuple[float, float]  # default λ grid, log10 bounds
  optimizer: Callable[[float], Callable[[Hparams], optax.GradientTransformation]]
  loss_penalty: Callable[[Params, Hparams], jax.Array] | None = None


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
"""The methods of ``regjax sweep``: name -> :class:`Method` (description, λ range in
log10, optimizer factory of the learning rate)."""
# What every column of the printed table, sweep.csv and rows.csv holds (`--help` shows it).
COLUMNS = {
    "sweep.csv and the printed table (one row per method and λ, mean over seeds)": {
        "method": "the regularization method (see --methods)",
        "lambda": "its strength λ",
        "test_acc": "held-out accuracy on the 360 test digits, mean over seeds",
        "acc_std": "its sample standard deviation over seeds",
        "zero_w_%": "percent of exact-zero weights in the kernels (biases not counted)",
        "dead_units_%": "percent of hidden units whose incoming weights are all zero",
        "seconds": "wall time of the method's whole sweep (every λ and seed at once)",
        "failed": "True when every seed failed (a non-finite loss)",
    },
    "rows.csv (one row per method, λ and seed, full precision)": {
        "method, lam, seed": "the method, λ and the seed of the row's PRNG key",
        "train_loss": "training objective of the last step (data term + penalty)",
        "train_penalty": "its penalty part (l1_subgradient: λ·‖W‖₁; empty for the others)",
        "test_loss, test_accuracy": "held-out cross-entropy and accuracy",
        "zero_weights, dead_units": "shares (0..1) as zero_w_% and dead_units_% above",
        "hidden_0_zero, hidden_1_zero, ...": "share of exact-zero activations of hidden layer "
                                            "0, 1, ... on the test digits",
        "failed_step": "first step with a non-finite loss, or -1",
        "seconds": "as above",
        "failed": "the row failed (a non-finite metric or failed_step >= 0)",
    },
}
"""What every column of the printed table, ``sweep.csv`` and ``rows.csv`` holds: file ->
{column: description}; ``regjax sweep --help`` prints it."""
# Summary columns: (column of `mean_over_seeds()`, printed name, scale).
_SUMMARY = (
    ("lam", "lambda", 1.0),
    ("test_accuracy_mean", "test_acc", 1.0),
    ("test_accuracy_std", "acc_std", 1.0),
    ("zero_weights_mean", "zero_w_%", 100.0),
    ("dead_units_mean", "dead_units_%", 100.0),
    ("seconds_mean", "seconds", 1.0),
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
  return int(_parse_positive(text, int, "a positive int"))


def _positive_float(text: str) -> float:
  return _parse_positive(text, float, "a number")


def _parse_positive(text: str, cast: type, expected: str) -> int | float:
  try:
    value = cast(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
  if cast is int and value < 1:
    raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
  if not (np.isfinite(value) and value > 0):
    raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
  return value


def _seeds(text: str) -> int | list[int]:
  """``N`` -> N seeds 0..N-1; ``a,b,...`` -> those seeds (as ``regjax.sweep``'s seeds)."""
  try:
    if "," in text:
      return list(_rows.check_seeds([int(s) for s in text.split(",") if s.strip()]))
    count = int(text)
    _rows.check_seeds(count)
    return count
  except (TypeError, ValueError) as error:
    raise argparse.ArgumentTypeError(
        f"expected a count N (seeds 0..N-1) or a comma-separated list of distinct seeds, "
        f"got {text!r} ({error})") from None


def _epilog() -> str:
  lines = ["columns:"]
  for where, columns in COLUMNS.items():
    lines.append(f"  {where}:")
    lines += [f"    {name}: {meaning}" for name, meaning in columns.items()]
  return "\n".join(lines)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
  """Keeps the description's layout and appends every option's default to its help."""

  def _get_help_string(self, action: argparse.Action) -> str | None:
    text = action.help or ""
    if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
      text += " (default: %(default)s)"
    return text


class _Parser(argparse.ArgumentParser):
  """Takes ``--grid -4:-2:3`` (a value that starts with ``-``) like ``--grid=-4:-2:3``."""

  def parse_known_args(  # type: ignore[override]
      self, args: Sequence[str] | None = None,
      namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
    joined: list[str] = []
    for arg in sys.argv[1:] if args is None else args:
      if joined and joined[-1] == "--grid" and arg.startswith("-"):
        joined[-1] = f"--grid={arg}"
      else:
        joined.append(arg)
    return super().parse_known_args(joined, namespace)


def build_parser() -> argparse.ArgumentParser:
  """The ``regjax`` command line: its ``sweep`` command with every option and its help.

  It parses without checking values against the data (:func:`parse_args` does that); a
  negative ``--grid`` bound may follow the option after a space (``--grid -4:-2:3``).

  Returns:
    The parser (``prog="regjax"``); the command is ``args.command``.

  Examples:
    >>> from regjax.experiment import cli
    >>> args = cli.build_parser().parse_args(["sweep", "--grid", "-4:-2:3", "--seeds", "0,5"])
    >>> args.command, args.grid, args.seeds, args.steps  # --steps at its default
    ('sweep', (-4.0, -2.0, 3), [0, 5], 1000)
  """
  parser = _Parser(prog="regjax", description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest="command", required=True)
  run = commands.add_parser(
      "sweep", help="train a λ grid for several methods and report accuracy vs sparsity",
      description=__doc__, epilog=_epilog(), formatter_class=_HelpFormatter)
  run.add_argument("--methods", type=_methods, default=",".join(METHODS),
                   help="comma-separated subset of: " + ", ".join(
                       f"{k} ({m.description})" for k, m in METHODS.items()))
  ranges = ", ".join(f"{k} {m.log10_range[0]:g}:{m.log10_range[1]:g}:12"
                     for k, m in METHODS.items())
  run.add_argument("--grid", type=_log_range, default=None, metavar="LOW:HIGH:N",
                   help="λ = logspace(LOW, HIGH, N) for every method "
                        f"(default: each method's own range: {ranges})")
  run.add_argument("--steps", type=_positive, default=1000, help="Adam steps per model")
  run.add_argument("--seeds", type=_seeds, default=2,
                   help="N for the seeds 0..N-1, or a comma-separated list of seeds "
                        "(as `seeds` of regjax.sweep)")
  run.add_argument("--width", type=_positive, default=64, help="hidden units per layer")
  run.add_argument("--depth", type=_positive, default=2, help="hidden layers")
  run.add_argument("--batch-size", type=_positive, default=128,
                   help="examples per step, at most the training examples")
  run.add_argument("--learning-rate", type=_positive_float, default=1e-2,
                   help="Adam learning rate")
  run.add_argument("--out", type=pathlib.Path, default=pathlib.Path("regjax-out"),
                   help="output folder for sweep.csv (mean over seeds), rows.csv (every "
                        "seed), sweep.png and checkpoints/")
  run.add_argument("--segments", type=_positive, default=4,
                   help="training is saved to --out/checkpoints after each of this many "
                        "segments of --steps (near-equal: lengths differ by one evaluation "
                        "period at most)")
  run.add_argument("--resume", action="store_true",
                   help="continue from the checkpoints in --out (same arguments, else an "
                        "error names the one that differs), bit-identical to an "
                        "uninterrupted run")
  run.add_argument("--no-progress", action="store_true", help="hide progress bars")
  search = run.add_argument_group(
      "adaptive search (regjax.adaptive_sweep)",
      "With --adaptive, each method searches λ log-uniformly between --grid's LOW and HIGH "
      "(N is not used) instead of training a grid: --slots λ values (each on every seed) "
      "train at once, and after each segment the worst are stopped and replaced by new λ "
      "refined around the best; every reported λ is a full run. The choice reads a "
      "validation split (20%% of the training digits, stratified, seed 0), which then "
      "leaves the training set.")
  search.add_argument("--adaptive", action="store_true", help="search instead of a grid")
  search.add_argument("--slots", type=_positive, default=4, help="λ values trained at once")
  search.add_argument("--rounds", type=_positive, default=None,
                      help="segments the search runs (default: 4 x --segments, the cost of "
                           "4 x --slots full runs)")
  search.add_argument("--objective", choices=("sparsest", "accuracy"), default="sparsest",
                      help="sparsest: most exact zeros within 1 point of the best validation "
                           "accuracy; accuracy: best validation accuracy")
  return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parses and checks the command line; bad values exit with an argparse error.

  Beyond :func:`build_parser`, it checks ``--batch-size`` against the training digits and
  ``--segments`` against ``--steps``, and fills ``--rounds`` (4 x ``--segments``).

  Args:
    argv: the arguments after the program name (``["sweep", ...]``); None reads
      ``sys.argv``, and a bare ``regjax`` means ``regjax sweep``.

  Returns:
    The checked arguments.

  Raises:
    SystemExit: a bad value (status 2, after argparse prints the error).

  Examples:
    >>> from regjax.experiment import cli
    >>> args = cli.parse_args(["sweep", "--methods", "prox_l1,group_lasso", "--segments", "2"])
    >>> args.methods, args.rounds
    (['prox_l1', 'group_lasso'], 8)
    >>> try:
    ...   cli.parse_args(["sweep", "--steps", "4", "--segments", "5"])
    ... except SystemExit as exit:
    ...   print("exit status", exit.code)  # stderr: "--segments: 5 exceeds --steps 4"
    exit status 2
  """
  parser = build_parser()
  args = parser.parse_args(["sweep"] if argv is None and len(sys.argv) == 1 else argv)
  n_train = len(data.load_digits("train").labels)
  if args.batch_size > n_train:
    parser.error(f"argument --batch-size: {args.batch_size} exceeds the {n_train} training "
                 "examples of the digits")
  if args.segments > args.steps:
    parser.error(f"argument --segments: {args.segments} exceeds --steps {args.steps}")
  if args.adaptive and args.steps % args.segments:
    parser.error(f"argument --segments: {args.segments} must divide --steps {args.steps} for "
                 "--adaptive (its runs restart at segment boundaries)")
  if args.rounds is None:
    args.rounds = 4 * args.segments
  if args.adaptive and args.rounds < args.segments:
    parser.error(f"argument --rounds: {args.rounds} is fewer than --segments {args.segments}: "
                 "no run could complete")
  return args


def _trainer(method: Method, args: argparse.Namespace) -> regjax_nnx.Trainer:
  hidden = (args.width,) * args.depth
  train, validation = data.load_digits("train"), None
  if getattr(args, "adaptive", False):
    train, validation = data.from_arrays(np.asarray(train.inputs), np.asarray(train.labels),
                                         test_fraction=0.2, seed=0)
  return regjax_nnx.Trainer(
      model=lambda rngs: models.MLP(64, hidden, 10, rngs=rngs),
      optimizer=method.optimizer(args.learning_rate),
      train=train, test=data.load_digits("test"), validation=validation,
      steps=args.steps, batch_size=args.batch_size, loss_penalty=method.loss_penalty,
      eval_every=_eval_every(args.steps, args.segments))


def _search(name: str, method: Method, args: argparse.Namespace,
            settings: dict[str, Any]) -> _results.SweepResult:
  """One method's adaptive λ search (``--adaptive``); prints its choice."""
  from regjax.experiment import adaptive, search

  low, high, _ = args.grid or (*method.log10_range, 12)
  objective = (adaptive.MaximizeWithin("zero_weights", "validation_accuracy", 0.01)
               if args.objective == "sparsest" else adaptive.Maximize("validation_accuracy"))
  result = search.adaptive_sweep(
      _trainer(method, args), adaptive.Space(lam=adaptive.LogUniform(10**low, 10**high)),
      objective=objective, slots=args.slots, rounds=args.rounds, segments=args.segments,
      seeds=args.seeds, checkpoint=args.out / "checkpoints" / name, resume=args.resume,
      progress=not args.no_progress)
  best = result.search.best()  # type: ignore[attr-defined]
  print(f"{name}: adaptive choice λ = {best['lam']:.4g} ({args.objective}): validation "
        f"accuracy {best['validation_accuracy']:.4f}, test accuracy "
        f"{best['test_accuracy']:.4f}, zero weights {best['zero_weights']:.1%}; "
        f"{len(result.search.table()['status'])} λ tried, "  # type: ignore[attr-defined]
        f"{result.model_steps:,} model·steps")  # type: ignore[attr-defined]
  del settings  # the search's own configuration enters its checkpoint signature
  return result


def _eval_every(steps: int, segments: int) -> int:
  """About 20 evaluations per run, at least one per segment: a divisor of the segment
  length when ``segments`` divides ``steps``, else of ``steps``."""
  period = steps // segments if steps % segments == 0 else steps
  limit = max(1, steps // max(20, segments))
  return max(d for d in range(1, limit + 1) if period % d == 0 and steps % d == 0)


def run_sweep(args: argparse.Namespace) -> _results.SweepResult:
  """Runs every method's sweep; returns the per-seed rows of all methods.

  Each method trains its grid (or, with ``--adaptive``, searches λ) as one vmapped
  :func:`regjax.sweep` of a :class:`regjax.Trainer`, checkpointed under
  ``args.out/checkpoints/<method>``; its wall time becomes the ``seconds`` column.

  Args:
    args: the checked arguments of :func:`parse_args`.

  Returns:
    The rows of every method (:func:`regjax.concat_results`, labelled ``method``).

  Raises:
    CheckpointError: ``--resume`` found another run's checkpoints.

  Examples:
    >>> import pathlib, tempfile
    >>> from regjax.experiment import checkpoint, cli
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> args = cli.parse_args(["sweep", "--methods", "weight_decay", "--grid", "-3:-2:2",
    ...                        "--out", str(out), "--resume"])
    >>> (out / "checkpoints" / "weight_decay" / "chunk_0000" / "segment_0001").mkdir(
    ...     parents=True)  # another run's checkpoint, without its signature
    >>> try:  # (with a fresh --out it trains and returns the rows, as `regjax sweep` does)
    ...   cli.run_sweep(args)
    ... except checkpoint.CheckpointError as error:
    ...   print("refused before training:", str(error).split(" (")[0].split("/")[-1])
    refused before training: sweep.json is missing or damaged
  """
  results = {}
  for name in args.methods:
    method = METHODS[name]
    low, high, count = args.grid or (*method.log10_range, 12)
    grid = _grid(lam=np.logspace(low, high, count))
    settings = {"method": name, "learning_rate": args.learning_rate, "width": args.width,
                "depth": args.depth}
    if getattr(args, "adaptive", False):
      result = _search(name, method, args, settings)
    else:
      result = _sweep.sweep(
          _trainer(method, args), grid, seeds=args.seeds, settings=settings,
          checkpoint=args.out / "checkpoints" / name, segments=args.segments,
          resume=args.resume, progress=not args.no_progress, desc=name)
    columns = {column: result[column] for column in result.columns}
    columns["seconds"] = np.full(len(result), result.wall_time)
    results[name] = _results.SweepResult(columns, hparams=result.hparams,
                                         wall_time=result.wall_time, curves=result.curves)
  return _results.concat(results)


def summarize(rows: _results.SweepResult) -> _results.SweepResult:
  """Mean over seeds per method and λ, in percent where named so, with wall times.

  Args:
    rows: the per-seed rows of :func:`run_sweep`.

  Returns:
    The table ``regjax sweep`` prints and writes to ``sweep.csv`` (see :data:`COLUMNS`).

  Examples:
    >>> from regjax.experiment import cli
    >>> from regjax.experiment.results import SweepResult
    >>> rows = SweepResult({"method": ["prox_l1", "prox_l1"], "lam": [1e-3, 1e-3],
    ...                     "seed": [0, 1], "test_accuracy": [0.9, 0.8],
    ...                     "zero_weights": [0.5, 0.7], "dead_units": [0.0, 0.1],
    ...                     "seconds": [3.0, 3.0]}, hparams=("method", "lam"))
    >>> print(cli.summarize(rows))
    method   lambda  test_acc  acc_std  zero_w_%  dead_units_%  seconds  failed
    -------  ------  --------  -------  --------  ------------  -------  ------
    prox_l1   0.001      0.85  0.07071        60             5        3   False
  """
  means = rows.mean_over_seeds()
  columns = {"method": means["method"]}
  columns.update({title: scale * means[name] for name, title, scale in _SUMMARY})
  columns["failed"] = means["failed"]
  return _results.SweepResult(columns, hparams=("method", "lambda"), wall_time=rows.wall_time)


def _plot_sweep(summary: _results.SweepResult, path: pathlib.Path) -> pathlib.Path | None:
  """Held-out accuracy against the share of exact-zero weights, one line per method."""
  try:
    figure = summary.plot(x="zero_w_%", y="test_acc", hue="method", logx=False,
                          title="digits MLP: held-out accuracy vs sparsity")
  except ImportError:
    print(f"matplotlib is not installed (pip install 'regjax[plots]'): no {path.name}",
          file=sys.stderr)
    return None
  axes = figure.axes[0]
  axes.set_xlabel("exact-zero weights (%)")
  axes.set_ylabel("held-out accuracy (mean over seeds)")
  figure.savefig(path, dpi=120)
  return path


def write_outputs(rows: _results.SweepResult, summary: _results.SweepResult,
                  out: pathlib.Path) -> tuple[pathlib.Path, ...]:
  """Writes sweep.csv (the printed summary), rows.csv (every seed) and the figures.

  ``sweep.png`` draws held-out accuracy against the share of exact-zero weights, one line
  per method; without matplotlib it is skipped with a note on stderr.

  Args:
    rows: the per-seed rows of :func:`run_sweep`.
    summary: their :func:`summarize`.
    out: the output folder (created if needed).

  Returns:
    The paths written.

  Examples:
    >>> import pathlib, tempfile
    >>> from regjax.experiment import cli
    >>> from regjax.experiment.results import SweepResult
    >>> rows = SweepResult({"method": ["prox_l1"] * 2, "lam": [1e-3, 1e-2], "seed": [0, 0],
    ...                     "test_accuracy": [0.9, 0.8], "zero_weights": [0.5, 0.7],
    ...                     "dead_units": [0.0, 0.1], "seconds": [3.0, 3.0]},
    ...                    hparams=("method", "lam"))
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> [path.name for path in cli.write_outputs(rows, cli.summarize(rows), out)]
    ['sweep.csv', 'rows.csv', 'sweep.png']
  """
  out.mkdir(parents=True, exist_ok=True)
  paths = [summary.to_csv(out / "sweep.csv"), rows.to_csv(out / "rows.csv")]
  figures = [_plot_sweep(summary, out / "sweep.png")]
  return tuple(paths + [path for path in figures if path is not None])


def write_curves(rows: _results.SweepResult, out: pathlib.Path,
                 lines: int = 4) -> tuple[pathlib.Path, ...]:
  """``curves.png``: held-out accuracy and exact zeros against steps, a few λ per method.

  One column of two panels per method; each line is one λ (``lines`` of them, evenly
  spaced over the grid), the mean over seeds with a ±1 std band. Nothing is written
  when the rows have no ``test_accuracy`` curve or matplotlib is missing.

  Args:
    rows: the per-seed rows of :func:`run_sweep`, with their curves.
    out: the output folder (created if needed).
    lines: λ values drawn per method.

  Returns:
    The paths written: ``(out / "curves.png",)`` or ``()``.

  Examples:
    >>> import pathlib, tempfile
    >>> from regjax.experiment import cli
    >>> from regjax.experiment.results import SweepResult
    >>> rows = SweepResult({"method": ["prox_l1"] * 2, "lam": [1e-3, 1e-2], "seed": [0, 0]},
    ...                    hparams=("method", "lam"),
    ...                    curves={"test_accuracy": [[0.5, 0.9], [0.4, 0.8]],
    ...                            "zero_weights": [[0.1, 0.5], [0.2, 0.7]]})
    >>> [path.name for path in cli.write_curves(rows, pathlib.Path(tempfile.mkdtemp()))]
    ['curves.png']
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
  """``regjax sweep``: parses the arguments, runs the sweeps, prints and writes the results.

  The console script ``regjax`` and ``python -m regjax`` call it. It prints the machine
  and the run's settings, then the summary table (:func:`summarize`), and writes
  ``sweep.csv``, ``rows.csv``, ``sweep.png`` and ``curves.png`` to ``--out``
  (:func:`write_outputs`, :func:`write_curves`).

  Args:
    argv: the arguments after the program name, as :func:`parse_args` takes them.

  Returns:
    The exit status: 0, or 2 when ``--resume`` finds checkpoints it cannot resume (the
    error, naming the setting that differs, goes to stderr). Bad arguments exit with
    argparse's status 2 (``SystemExit``).

  Examples:
    >>> import pathlib, tempfile
    >>> from regjax.experiment import cli
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> damaged = out / "checkpoints" / "prox_l1" / "chunk_0000" / "segment_0001"
    >>> damaged.mkdir(parents=True)  # a checkpoint without its sweep.json
    >>> status = cli.main(["sweep", "--methods", "prox_l1", "--resume", "--out", str(out)])
    ... # doctest: +ELLIPSIS
    regjax sweep on ...
    methods: prox_l1; 1000 steps, 2 seed(s), MLP 64-64-64-10 on the 8x8 digits (1437 train ...)
    >>> status  # refused before anything trained
    2
  """
  args = parse_args(argv)
  start = time.perf_counter()
  device = jax.devices()[0]
  n_seeds = args.seeds if isinstance(args.seeds, int) else len(args.seeds)
  print(f"regjax sweep on {device.platform} ({device.device_kind}, {jax.device_count()} "
        f"device(s)), {platform.processor() or platform.machine()}; jax {jax.__version__}")
  print(f"methods: {', '.join(args.methods)}; {args.steps} steps, {n_seeds} seed(s), "
        f"MLP 64-{'-'.join([str(args.width)] * args.depth)}-10 on the 8x8 digits "
        f"({len(data.load_digits('train').labels)} train / "
        f"{len(data.load_digits('test').labels)} test)")
  try:
    rows = run_sweep(args)
  except checkpoint.CheckpointError as error:
    print(f"regjax sweep: error: {error}", file=sys.stderr)
    return 2
  summary = summarize(rows)
  print(summary.to_table())
  paths = write_outputs(rows, summary, args.out) + write_curves(rows, args.out)
  print(f"wrote {', '.join(str(p) for p in paths)}; total wall time "
        f"{time.perf_counter() - start:.1f} s")
  failed = int(np.sum(summary["failed"]))
  if failed:
    print(f"{failed} configuration(s) failed (non-finite loss); see the table", file=sys.stderr)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
