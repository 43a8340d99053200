"""The result of a sweep: one row per grid point and seed, printable, savable, plottable."""

from __future__ import annotations

import csv
import itertools
import json
import math
import numbers
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from regjax import _checks
from regjax.experiment import curves as _curves

RESERVED = ("seed", "failed", "n_seeds", "n_failed")
# A metric of `fn` named "curves/<name>" is a curve `<name>` (see `regjax.sweep`).
CURVE_PREFIX = "curves/"


def _python_value(value: Any) -> Any:
  """A NumPy scalar as the Python value it prints as (float32 0.1 -> 0.1)."""
  if isinstance(value, np.bool_):
    return bool(value)
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.floating):
    return float(str(value)) if value.dtype.itemsize < 8 else float(value)
  if isinstance(value, np.str_):
    return str(value)
  return value


def _cell(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def _is_numeric(values: np.ndarray) -> bool:
  return np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.bool_)


class SweepResult:
  """The rows of a sweep: hyperparameters, ``seed``, metrics and ``failed``.

  Args:
    columns: mapping name -> 1-D array, all of one length; a missing ``failed`` column
      is taken as all False.
    hparams: names of the columns that identify a configuration (grid axes and labels
      such as ``method``); :meth:`mean_over_seeds` groups by them.
    metrics: names of the metric columns; default every column that is not an
      hparam, ``seed``, ``n_seeds``, ``n_failed`` or ``failed``.
    wall_time: seconds the sweep took, compilation included.
    chunk_size: rows per compiled call, when the result comes from :func:`sweep`.
    curves: mapping name -> array ``[rows, evaluations]`` of metrics recorded during
      training (all of one shape); ``"step"`` holds the step of each evaluation.
  """

  def __init__(
      self,
      columns: Mapping[str, Any],
      *,
      hparams: Sequence[str] = (),
      metrics: Sequence[str] | None = None,
      wall_time: float = 0.0,
      chunk_size: int | None = None,
      curves: Mapping[str, Any] | None = None,
  ):
    data = {name: np.asarray(values) for name, values in columns.items()}
    lengths = {name: values.shape for name, values in data.items()}
    if any(len(shape) != 1 for shape in lengths.values()) or len(set(lengths.values())) > 1:
      raise ValueError(f"`columns` must be 1-D arrays of one length, got shapes {lengths}.")
    n = len(next(iter(data.values()))) if data else 0
    if "failed" not in data:
      data["failed"] = np.zeros(n, dtype=bool)
    for name in hparams:
      if name not in data:
        raise ValueError(f"`hparams` names a missing column `{name}`.")
    if metrics is None:
      metrics = [c for c in data if c not in hparams and c not in RESERVED]
    self._data = data
    self.hparams = tuple(hparams)
    self.metrics = tuple(metrics)
    self.wall_time = float(wall_time)
    self.chunk_size = chunk_size
    self._curves = _curves.check(curves or {}, n)

  @property
  def curves(self) -> dict[str, np.ndarray]:
    """Metrics recorded during training: name -> ``[rows, evaluations]`` (copies).

    ``curves["step"]`` is the step of each evaluation. Empty when none were recorded.
    """
    return {name: values.copy() for name, values in self._curves.items()}

  @property
  def columns(self) -> tuple[str, ...]:
    """The column names, in order."""
    return tuple(self._data)

  def __len__(self) -> int:
    return len(self._data["failed"])

  def __getitem__(self, name: str) -> np.ndarray:
    self._check_column("name", name)
    return self._data[name].copy()

  def _check_column(self, argument: str, name: str) -> None:
    if name not in self._data:
      raise ValueError(f"`{argument}` must be one of the columns {self.columns}, got {name!r}.")

  def _like(self, data: Mapping[str, Any], **changes: Any) -> SweepResult:
    options = dict(
        hparams=self.hparams, metrics=self.metrics, wall_time=self.wall_time,
        chunk_size=self.chunk_size, curves=self._curves,
    )
    options.update(changes)
    return SweepResult(data, **options)

  def to_records(self) -> list[dict[str, Any]]:
    """The rows as dicts of Python values (float32 numbers as they print)."""
    names = self.columns
    return [
        {name: _python_value(self._data[name][i]) for name in names} for i in range(len(self))
    ]

  def to_table(self, max_rows: int | None = None) -> str:
    """An aligned text table, floats with 4 significant digits.

    Args:
      max_rows: show at most this many rows (None shows all).
    """
    records = self.to_records()
    shown = records if max_rows is None else records[:max_rows]
    header = list(self.columns)
    cells = [[_cell(record[name]) for name in header] for record in shown]
    widths = [max([len(h)] + [len(row[j]) for row in cells]) for j, h in enumerate(header)]
    left = [not _is_numeric(self._data[name]) for name in header]

    def line(values: Sequence[str]) -> str:
      padded = zip(values, widths, left, strict=True)
      return "  ".join(v.ljust(w) if is_left else v.rjust(w) for v, w, is_left in padded).rstrip()

    lines = [line(header), line(["-" * w for w in widths])] + [line(row) for row in cells]
    if len(shown) < len(records):
      lines.append(f"... {len(records) - len(shown)} more rows")
    return "\n".join(lines)

  def __str__(self) -> str:
    return self.to_table(max_rows=60)

  def __repr__(self) -> str:
    return f"SweepResult({len(self)} rows; columns {', '.join(self.columns)})"

  def to_csv(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes the rows as CSV (header line, then one line per row); returns the path."""
    path = pathlib.Path(path)
    with path.open("w", newline="") as file:
      writer = csv.DictWriter(file, fieldnames=list(self.columns))
      writer.writeheader()
      writer.writerows(self.to_records())
    return path

  def to_pandas(self) -> Any:
    """The rows as a ``pandas.DataFrame`` with the same columns, in order.

    For grouping, pivoting or joining beyond :meth:`mean_over_seeds`, :meth:`best` and
    :meth:`filter`, use pandas rather than this class. Needs pandas (the ``pandas``
    extra). Columns with one array per row (e.g. curves) become object columns.
    """
    try:
      import pandas
    except ImportError as error:
      raise ImportError("`to_pandas` needs pandas: pip install 'regjax[pandas]'.") from error
    return pandas.DataFrame(
        {name: list(values) if values.ndim > 1 else values.copy()
         for name, values in self._data.items()})

  @classmethod
  def from_csv(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a CSV written by :meth:`to_csv`.

    Column types are inferred (bool, int, float, else str). The hparam columns are taken
    to be those before ``seed`` or ``n_seeds``.
    """
    with pathlib.Path(path).open(newline="") as file:
      reader = csv.DictReader(file)
      rows = list(reader)
      names = list(reader.fieldnames or [])
    data = {name: _parse_column([row[name] for row in rows]) for name in names}
    return cls(data, hparams=_leading_hparams(names))

  def to_json(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes strict JSON: columns, hparams, metrics, wall_time and the records.

    NaN and ±Inf have no JSON form and are written as ``null``.
    """
    records = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        for r in self.to_records()
    ]
    document = {
        "columns": list(self.columns),
        "hparams": list(self.hparams),
        "metrics": list(self.metrics),
        "wall_time": self.wall_time,
        "records": records,
        "curves": {name: {"dtype": str(values.dtype),
                          "values": [[None if isinstance(v, float) and not math.isfinite(v)
                                      else v for v in row] for row in values.tolist()]}
                   for name, values in self._curves.items()},
    }
    path = pathlib.Path(path)
    path.write_text(json.dumps(document, indent=1, allow_nan=False))
    return path

  @classmethod
  def from_json(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a file written by :meth:`to_json` (``null`` numbers come back as NaN)."""
    document = json.loads(pathlib.Path(path).read_text())
    records = document["records"]
    data = {name: _json_column([r[name] for r in records]) for name in document["columns"]}
    curves = {name: np.array([[np.nan if v is None else v for v in row]
                              for row in curve["values"]], dtype=curve["dtype"])
              for name, curve in document.get("curves", {}).items()}
    return cls(
        data,
        hparams=document["hparams"],
        metrics=document["metrics"],
        wall_time=document["wall_time"],
        curves=curves,
    )

  def to_npz(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes columns and curves with their exact dtypes to a NumPy ``.npz`` archive."""
    meta = {"hparams": list(self.hparams), "metrics": list(self.metrics),
            "wall_time": self.wall_time, "columns": list(self.columns),
            "curves": list(self._curves)}
    arrays = {f"column/{name}": values for name, values in self._data.items()}
    arrays.update({f"curve/{name}": values for name, values in self._curves.items()})
    path = pathlib.Path(path)
    with path.open("wb") as handle:
      np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
    return path

  @classmethod
  def from_npz(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a file written by :meth:`to_npz`."""
    with np.load(pathlib.Path(path)) as archive:
      meta = json.loads(str(archive["meta"]))
      data = {name: archive[f"column/{name}"] for name in meta["columns"]}
      curves = {name: archive[f"curve/{name}"] for name in meta["curves"]}
    return cls(data, hparams=meta["hparams"], metrics=meta["metrics"],
               wall_time=meta["wall_time"], curves=curves)

  def _take(self, index: np.ndarray) -> SweepResult:
    return self._like({name: values[index] for name, values in self._data.items()},
                      curves={name: values[index] for name, values in self._curves.items()})

  def mean_over_seeds(self) -> SweepResult:
    """Mean and standard deviation of each metric over the seeds of each configuration.

    Rows are grouped by the hparam columns. Failed rows are left out: ``m_mean`` is the
    mean and ``m_std`` the sample standard deviation (ddof=1, NaN with fewer than two
    successful seeds) over the successful seeds. ``n_seeds`` and ``n_failed`` count the
    rows of a group; ``failed`` is True when every seed failed. ``failed_step`` and
    non-numeric metrics are not averaged. Curves are averaged the same way, pointwise,
    into curves ``<name>_mean`` and ``<name>_std`` (the band); ``step`` is kept.

    Returns:
      A :class:`SweepResult` with one row per configuration, in order of appearance.
    """
    if "seed" not in self._data:
      raise ValueError("`mean_over_seeds` needs a `seed` column; this result has none.")
    groups: dict[tuple[str, ...], list[int]] = {}
    keys = [self._data[name] for name in self.hparams]
    for i in range(len(self)):
      groups.setdefault(tuple(repr(k[i]) for k in keys), []).append(i)
    firsts = np.array([rows[0] for rows in groups.values()], dtype=np.int64)
    failed = self._data["failed"]
    data: dict[str, Any] = {name: self._data[name][firsts] for name in self.hparams}
    data["n_seeds"] = np.array([len(rows) for rows in groups.values()])
    data["n_failed"] = np.array([int(failed[rows].sum()) for rows in groups.values()])
    metrics = []
    for name in self.metrics:
      values = self._data[name]
      if name == "failed_step" or not _is_numeric(values):
        continue
      means, stds = [], []
      for rows in groups.values():
        ok = values[rows][~failed[rows]].astype(np.float64)
        means.append(ok.mean() if len(ok) else np.nan)
        stds.append(ok.std(ddof=1) if len(ok) > 1 else np.nan)
      data[f"{name}_mean"], data[f"{name}_std"] = np.array(means), np.array(stds)
      metrics += [f"{name}_mean", f"{name}_std"]
    data["failed"] = data["n_failed"] == data["n_seeds"]
    curves = _curves.mean_over_groups(self._curves, list(groups.values()), failed)
    return self._like(data, metrics=metrics, curves=curves)

  def best(self, metric: str, mode: str = "max", split: str | None = None) -> dict[str, Any]:
    """The best row (and, on a curve, the best step) by ``metric``.

    Without ``split``: the row with the largest (``mode="max"``) or smallest column
    ``metric`` among rows that did not fail and whose metric is finite; ties go to the
    first row.

    With ``split`` ("validation" or "train"; never "test", which would leak the test set
    into model selection), the metric is ``f"{split}_{metric}"``. When it was recorded as
    a curve, the best (row, step) over all evaluations is chosen, which is early
    stopping on that split: the record then holds ``step`` and, for every curve, its
    value at that step (e.g. ``test_accuracy`` at the chosen step) in place of the
    final value. Without a curve, the best row by the final column is returned.
    """
    _checks.check_choice("mode", mode, ("max", "min"))
    if split is not None:
      if split == "test":
        raise ValueError("`split='test'` would choose on the test set; pick on 'validation' "
                         "and report test at the chosen point.")
      _checks.check_choice("split", split, ("validation", "train"))
      metric = metric if metric.startswith(f"{split}_") else f"{split}_{metric}"
      if metric in self._curves:
        row, index = _curves.best_step(self._curves[metric], ~self._data["failed"], mode)
        record = self._take(np.array([row])).to_records()[0]
        record.update({name: _python_value(values[row, index])
                       for name, values in self._curves.items()})
        return record
    self._check_column("metric", metric)
    values = self._data[metric]
    if not _is_numeric(values):
      raise TypeError(f"`metric` must name a numeric column, `{metric}` has {values.dtype}.")
    values = values.astype(np.float64)
    ok = ~self._data["failed"] & np.isfinite(values)
    if not ok.any():
      raise ValueError(f"No successful row has a finite `{metric}`.")
    score = np.where(ok, values if mode == "max" else -values, -np.inf)
    return self._take(np.array([int(np.argmax(score))])).to_records()[0]

  def filter(self, **conditions: Any) -> SweepResult:
    """The rows meeting every condition.

    Each condition is ``column=value`` (floats compared with a relative tolerance of
    1e-6), ``column=[v1, v2, ...]`` (any of them), or ``column=callable`` taking the
    column as a NumPy array and returning a boolean mask.
    """
    mask = np.ones(len(self), dtype=bool)
    for name, condition in conditions.items():
      if name not in self._data:
        raise ValueError(f"`{name}` is not a column; columns are {self.columns}.")
      column = self._data[name]
      if callable(condition):
        mask &= np.asarray(condition(column), dtype=bool)
      elif isinstance(condition, (list, tuple, set, np.ndarray)):
        mask &= np.any([_equal(column, c) for c in condition], axis=0)
      else:
        mask &= _equal(column, condition)
    return self._take(mask)

  def plot(
      self,
      x: str,
      y: str,
      *,
      hue: str | None = None,
      ax: Any = None,
      path: str | pathlib.Path | None = None,
      logx: bool | None = None,
      title: str | None = None,
  ) -> Any:
    """Plots ``y`` against ``x``, one line per value of ``hue``; failed rows are skipped.

    A ``y`` ending in ``_mean`` with a matching ``_std`` column gets a ±1 std band. Call
    :meth:`mean_over_seeds` first to plot one line per configuration. Needs matplotlib
    (the ``plots`` extra); no pyplot state is used.

    Args:
      x: column on the horizontal axis.
      y: column on the vertical axis.
      hue: column whose values split the rows into lines, or None.
      ax: a matplotlib Axes to draw on; None makes a new Figure.
      path: if given, the figure is saved there (format from the suffix, e.g. ``.png``).
      logx: log-scale x; None picks it when x is positive and spans 100x or more.
      title: the axes title.

    Returns:
      The matplotlib Figure.
    """
    for argument, name in (("x", x), ("y", y)) + ((("hue", hue),) if hue is not None else ()):
      self._check_column(argument, name)
    figure, ax = _curves.figure_and_axes(ax, "plot")
    ok = ~self._data["failed"]
    xs_all = self._data[x].astype(np.float64)
    band = y[: -len("_mean")] + "_std" if y.endswith("_mean") else None
    labels = [None] if hue is None else list(dict.fromkeys(self._data[hue][ok].tolist()))
    for label in labels:
      rows = ok if label is None else ok & (self._data[hue] == label)
      order = np.argsort(xs_all[rows], kind="stable")
      xs, ys = xs_all[rows][order], self._data[y][rows][order].astype(np.float64)
      name = None if label is None else f"{hue}={_cell(label)}"
      (line,) = ax.plot(xs, ys, marker="o", label=name)
      if band is not None and band in self._data:
        spread = self._data[band][rows][order].astype(np.float64)
        ax.fill_between(xs, ys - spread, ys + spread, color=line.get_color(), alpha=0.2)
    if logx is None:
      finite = xs_all[ok & np.isfinite(xs_all)]
      logx = bool(len(finite)) and finite.min() > 0 and finite.max() >= 100 * finite.min()
    if logx:
      ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title is not None:
      ax.set_title(title)
    if hue is not None:
      ax.legend()
    if path is not None:
      figure.savefig(path, dpi=120)
    return figure

  def plot_curves(
      self,
      metric: str,
      by: str | None = None,
      *,
      ax: Any = None,
      path: str | pathlib.Path | None = None,
      title: str | None = None,
  ) -> Any:
    """Plots the curve ``metric`` against steps: one line per value of ``by``.

    Each line is the mean over the rows (seeds) with that value, with a ±1 std band
    when there are several; on a :meth:`mean_over_seeds` result, ``metric`` names the
    curve before its ``_mean`` suffix and the band is its ``_std``. Failed rows are
    skipped. Rows sharing a value of ``by`` must not differ in another hparam (filter
    first). Needs matplotlib (the ``plots`` extra); no pyplot state is used.

    Args:
      metric: a curve name (see :attr:`curves`).
      by: the column whose values make the lines; None draws one line.
      ax: a matplotlib Axes to draw on; None makes a new Figure.
      path: if given, the figure is saved there.
      title: the axes title.

    Returns:
      The matplotlib Figure.
    """
    if by is not None:
      self._check_column("by", by)
    return _curves.plot(self, metric, by, ax=ax, path=path, title=title)


def _equal(column: np.ndarray, value: Any) -> np.ndarray:
  if np.issubdtype(column.dtype, np.floating) and isinstance(value, numbers.Real):
    return np.isclose(column, value, rtol=1e-6, atol=0.0)
  return column == value


def _leading_hparams(names: Sequence[str]) -> list[str]:
  for marker in ("seed", "n_seeds"):
    if marker in names:
      return list(names[: list(names).index(marker)])
  return []


def _parse_column(cells: Sequence[str]) -> np.ndarray:
  if cells and all(c in ("True", "False") for c in cells):
    return np.array([c == "True" for c in cells])
  for kind in (int, float):
    try:
      return np.array([kind(c) for c in cells], dtype=np.int64 if kind is int else np.float64)
    except ValueError:
      continue
  return np.array(cells, dtype=str)


def _json_column(values: Sequence[Any]) -> np.ndarray:
  if values and all(isinstance(v, bool) for v in values):
    return np.array(values, dtype=bool)
  if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
    return np.array(values, dtype=np.int64)
  if all(v is None or isinstance(v, (int, float)) for v in values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
  return np.array(values, dtype=str)


def concat(
    results: Mapping[str, SweepResult] | Sequence[SweepResult], *, column: str = "method"
) -> SweepResult:
  """Stacks results row-wise, e.g. one sweep per method.

  With a mapping ``label -> result``, a first column ``column`` holds each row's label
  and becomes an hparam column (so :meth:`SweepResult.mean_over_seeds` keeps methods
  apart). Columns missing from some results are filled with NaN (numbers, turned
  into floats) or ``""`` (strings). ``wall_time`` is the sum.

  Args:
    results: a mapping label -> :class:`SweepResult`, or a sequence of them (no label
      column).
    column: name of the label column.

  Returns:
    One :class:`SweepResult`.
  """
  if isinstance(results, Mapping):
    labels: list[Any] | None = list(results)
    parts = list(results.values())
  else:
    labels, parts = None, list(results)
  if not parts:
    raise ValueError("`results` is empty; pass at least one SweepResult.")
  for part in parts:
    if not isinstance(part, SweepResult):
      raise TypeError(f"`results` must hold SweepResults, got {type(part).__name__}.")
  if labels is not None and any(column in part.columns for part in parts):
    raise ValueError(f"`column` {column!r} is already a column; pick another name.")
  names = list(dict.fromkeys(itertools.chain.from_iterable(p.columns for p in parts)))
  names.remove("failed")
  names.append("failed")
  data: dict[str, Any] = {}
  if labels is not None:
    data[column] = np.concatenate(
        [np.full(len(p), str(label)) for label, p in zip(labels, parts, strict=True)]
    )
  for name in names:
    present = [p._data[name] for p in parts if name in p._data]
    if len(present) == len(parts):
      data[name] = np.concatenate(present)
    elif all(not _is_numeric(v) for v in present):
      data[name] = np.concatenate(
          [p._data[name] if name in p._data else np.full(len(p), "") for p in parts]
      )
    else:
      data[name] = np.concatenate(
          [
              p._data[name].astype(np.float64) if name in p._data else np.full(len(p), np.nan)
              for p in parts
          ]
      )
  hparams = ([column] if labels is not None else []) + list(
      dict.fromkeys(itertools.chain.from_iterable(p.hparams for p in parts))
  )
  metrics = list(dict.fromkeys(itertools.chain.from_iterable(p.metrics for p in parts)))
  # Keep the conventional order: hparams, seed counters, metrics, failed.
  order = hparams + [n for n in names if n not in hparams and n not in metrics and n != "failed"]
  order += metrics + ["failed"]
  return SweepResult(
      {name: data[name] for name in order},
      hparams=hparams,
      metrics=metrics,
      wall_time=sum(p.wall_time for p in parts),
      curves=_concat_curves(parts),
  )


def _concat_curves(parts: Sequence[SweepResult]) -> dict[str, np.ndarray]:
  """Curves stacked by row; a curve missing from a part, or shorter, is NaN-filled."""
  names = list(dict.fromkeys(itertools.chain.from_iterable(p._curves for p in parts)))
  if not names:
    return {}
  width = max(v.shape[1] for p in parts for v in p._curves.values())

  def padded(part: SweepResult, name: str) -> np.ndarray:
    values = part._curves.get(name)
    out = np.full((len(part), width), np.nan)
    if values is not None:
      out[:, : values.shape[1]] = values
    return out

  result = {}
  for name in names:
    present = [p._curves.get(name) for p in parts]
    if all(v is not None and v.shape[1] == width for v in present):
      result[name] = np.concatenate(present)
    else:
      result[name] = np.concatenate([padded(p, name) for p in parts])
  return result
