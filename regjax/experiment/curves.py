"""Curves of a sweep: an ``xarray.Dataset`` of metrics recorded during training.

A :class:`regjax.SweepResult` keeps its curves as a Dataset with dims ``("row", "step")``
(see :mod:`regjax.experiment.results` for why rows): ``curves["test_accuracy"]`` is a
``DataArray`` ``[rows, evaluations]``, ``curves["step"]`` the step of each evaluation.
The functions here average curves over groups of rows (seeds), pick the best step on a
validation curve, stack curves of several results, and draw curves and table columns;
the :class:`~regjax.SweepResult` methods of the same names call them.

Examples:
  >>> import numpy as np, xarray as xr
  >>> from regjax.experiment import curves
  >>> ds = xr.Dataset({"acc": (("row", "step"), [[0.5, 0.9], [0.7, 0.8]])},
  ...                 coords={"step": [10, 20]})
  >>> curves.best_step(ds["acc"].values, np.array([True, True]), "max")
  (0, 1)
  >>> curves.mean_over_groups(ds, np.array([0, 0]), np.array([False, False]), 1)[
  ...     "acc_mean"].values.round(3).tolist()
  [[0.6, 0.85]]
"""

from __future__ import annotations

import pathlib
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
  import matplotlib.axes
  import matplotlib.figure
  import pandas as pd
  import xarray

__all__ = ["ROW", "STEP", "best_step", "check", "mean_over_groups", "plot", "plot_table",
           "stack"]

ROW = "row"
"""The dimension of the curves (:attr:`regjax.SweepResult.curves`) along the table's rows."""
STEP = "step"
"""The dimension along the evaluations of a curve (its coordinate is the step count)."""


def check(curves: Mapping[str, npt.ArrayLike], rows: int) -> dict[str, np.ndarray]:
  """Curves as 2-D arrays ``[rows, evaluations]``, all of one shape.

  Args:
    curves: name -> array-like ``[rows, evaluations]``.
    rows: the number of rows.

  Returns:
    name -> NumPy array.

  Examples:
    >>> from regjax.experiment import curves
    >>> curves.check({"acc": [[0.5, 0.9]]}, rows=1)["acc"].shape
    (1, 2)
  """
  arrays = {name: np.asarray(values) for name, values in curves.items()}
  shapes = {name: values.shape for name, values in arrays.items()}
  if any(len(s) != 2 or s[0] != rows for s in shapes.values()) or len(set(shapes.values())) > 1:
    raise ValueError(f"`curves` must be arrays [rows={rows}, evaluations] of one shape, got "
                     f"{shapes}.")
  return arrays


def mean_over_groups(curves: xarray.Dataset, group: np.ndarray, failed: np.ndarray,
                     n_groups: int) -> xarray.Dataset:
  """Per group of rows: ``<name>_mean`` and ``<name>_std`` (ddof=1) over successful rows.

  A NaN in a successful row's curve propagates to its group's mean (it is not skipped);
  a group whose rows all failed gets NaN.

  Args:
    curves: a Dataset with dims ``("row", "step")``.
    group: each row's group, in ``0..n_groups-1``.
    failed: each row's ``failed`` flag.
    n_groups: the number of groups.

  Returns:
    A Dataset with dims ``("row", "step")``, one row per group.

  Examples:
    >>> import numpy as np, xarray as xr
    >>> from regjax.experiment import curves
    >>> ds = xr.Dataset({"acc": (("row", "step"), [[0.5, 0.9], [0.7, 0.7], [0.2, 0.4]])},
    ...                 coords={"step": [10, 20]})
    >>> means = curves.mean_over_groups(ds, group=np.array([0, 0, 1]),
    ...                                 failed=np.array([False, False, False]), n_groups=2)
    >>> means["acc_mean"].values.round(3).tolist(), means["acc_std"].values[1].tolist()
    ([[0.6, 0.8], [0.2, 0.4]], [nan, nan])
  """
  ok = np.flatnonzero(~failed)
  plain = curves.reset_coords(drop=True)
  if not plain.data_vars:
    return plain.isel({ROW: []}) if ROW in plain.dims else plain
  rows = plain.isel({ROW: ok}).astype(np.float64).assign_coords(group=(ROW, group[ok]))
  grouped = rows.groupby("group")
  with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
    warnings.simplefilter("ignore", RuntimeWarning)  # ddof=1 with one row: NaN, as documented
    mean, std = grouped.mean(skipna=False), grouped.std(ddof=1, skipna=False)
  parts = {}
  for name in plain.data_vars:
    for suffix, values in (("mean", mean), ("std", std)):
      full = values[name].reindex(group=np.arange(n_groups)).rename(group=ROW)
      parts[f"{name}_{suffix}"] = full.drop_vars(ROW).transpose(ROW, STEP)
  return type(plain)(parts, coords={STEP: plain[STEP].values})


def best_step(curve: np.ndarray, ok: np.ndarray, mode: str) -> tuple[int, int]:
  """``(row, evaluation)`` of the best finite value among rows ``ok``; ties go first.

  Args:
    curve: ``[rows, evaluations]``.
    ok: the rows that may be chosen.
    mode: ``"max"`` or ``"min"``.

  Returns:
    The row and the evaluation index.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment import curves
    >>> curve = np.array([[0.5, 0.9], [0.7, np.nan], [0.95, 0.1]])
    >>> curves.best_step(curve, ok=np.array([True, True, False]), mode="max")  # row 2 failed
    (0, 1)
  """
  values = curve.astype(np.float64)
  usable = ok[:, None] & np.isfinite(values)
  if not usable.any():
    raise ValueError("No successful row has a finite value on the curve.")
  score = np.where(usable, values if mode == "max" else -values, -np.inf)
  row, index = np.unravel_index(int(np.argmax(score)), score.shape)
  return int(row), int(index)


def stack(parts: Sequence[xarray.Dataset]) -> xarray.Dataset:
  """Curves of several results stacked by row, on the union of their steps (NaN-filled).

  Row coordinates are dropped (the caller's table sets them again). A curve missing from
  a part is NaN there; a curve present everywhere on the same steps keeps its dtype.

  Args:
    parts: Datasets with dims ``("row", "step")``.

  Returns:
    One Dataset.

  Examples:
    >>> import xarray as xr
    >>> from regjax.experiment import curves
    >>> a = xr.Dataset({"acc": (("row", "step"), [[0.5, 0.9]])}, coords={"step": [10, 20]})
    >>> b = xr.Dataset({"acc": (("row", "step"), [[0.7]])}, coords={"step": [20]})
    >>> both = curves.stack([a, b])
    >>> both["step"].values.tolist(), both["acc"].values.tolist()
    ([10, 20], [[0.5, 0.9], [nan, 0.7]])
  """
  import xarray as xr

  plain = [p.reset_coords(drop=True) for p in parts]
  names = list(dict.fromkeys(str(n) for p in plain for n in p.data_vars))
  if not names:
    return xr.Dataset()
  step_lists = [p[STEP].values for p in plain if STEP in p.coords]
  steps = step_lists[0]
  if any(len(s) != len(steps) or (s != steps).any() for s in step_lists):
    steps = np.unique(np.concatenate(step_lists))
  stacked = {}
  for name in names:
    pieces = []
    for part, original in zip(plain, parts, strict=True):
      rows = original.sizes.get(ROW, 0)
      if name in part.data_vars and np.array_equal(part[STEP].values, steps):
        pieces.append(part[name].values)
      elif name in part.data_vars:
        pieces.append(part[name].astype(np.float64).reindex({STEP: steps}).values)
      else:
        pieces.append(np.full((rows, len(steps)), np.nan))
    dtype = np.result_type(*pieces)
    stacked[name] = ((ROW, STEP), np.concatenate([p.astype(dtype) for p in pieces]))
  return xr.Dataset(stacked, coords={STEP: steps})


def _figure_and_axes(ax: matplotlib.axes.Axes | None,
                     caller: str) -> tuple[matplotlib.figure.Figure, matplotlib.axes.Axes]:
  """``ax``'s Figure and ``ax``, or a new Figure (no pyplot state) and its Axes."""
  try:
    from matplotlib.figure import Figure
  except ImportError as error:
    raise ImportError(f"`{caller}` needs matplotlib: pip install 'regjax[plots]'.") from error
  if ax is None:
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    return figure, figure.add_subplot()
  return cast("matplotlib.figure.Figure", ax.figure), ax  # (a SubFigure's Axes: its SubFigure)


def _finish(figure: matplotlib.figure.Figure, ax: matplotlib.axes.Axes, xlabel: str,
            ylabel: str, title: str | None, legend: bool,
            path: str | pathlib.Path | None) -> matplotlib.figure.Figure:
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title is not None:
    ax.set_title(title)
  if legend:
    ax.legend(fontsize="small")
  if path is not None:
    figure.savefig(path, dpi=120)
  return figure


def plot(curves: xarray.Dataset, table: pd.DataFrame, hparams: Sequence[str], metric: str,
         by: str | None, *, ax: matplotlib.axes.Axes | None = None,
         path: str | pathlib.Path | None = None, title: str | None = None,
         label_format: str = "{:.3g}") -> matplotlib.figure.Figure:
  """Draws the curve ``metric`` against steps, one line per value of ``by``, with a seed
  band; :meth:`regjax.SweepResult.plot_curves` calls it with the result's own parts.

  Args:
    curves: a Dataset with dims ``("row", "step")`` (or one of means over seeds, whose
      ``<metric>_mean`` and ``<metric>_std`` are then drawn).
    table: the rows, with a ``failed`` column (failed rows are skipped).
    hparams: the hparam columns; rows drawn as one line must agree on all but ``by``.
    metric: the curve to draw.
    by: the column whose values make the lines; None draws one line.
    ax: a matplotlib Axes to draw on; None makes a new Figure (no pyplot state).
    path: if given, the figure is saved there.
    title: the axes title.
    label_format: how a value of ``by`` prints in the legend.

  Returns:
    The matplotlib Figure.

  Examples:
    >>> import pandas as pd, xarray as xr
    >>> from regjax.experiment import curves
    >>> table = pd.DataFrame({"lam": [0.1, 0.1, 1.0], "failed": [False, False, False]})
    >>> ds = xr.Dataset({"acc": (("row", "step"), [[0.5, 0.9], [0.7, 0.8], [0.2, 0.4]])},
    ...                 coords={"step": [10, 20]})
    >>> figure = curves.plot(ds, table, ("lam",), "acc", by="lam")
    >>> [line.get_label() for line in figure.axes[0].lines]
    ['lam=0.1', 'lam=1']
  """
  averaged = metric not in curves.data_vars and f"{metric}_mean" in curves.data_vars
  name = f"{metric}_mean" if averaged else metric
  if name not in curves.data_vars:
    raise ValueError(f"`metric` must name a curve; curves are {sorted(map(str, curves))}, "
                     f"got {metric!r}.")
  figure, ax = _figure_and_axes(ax, "plot_curves")
  ok = ~table["failed"].to_numpy(dtype=bool)
  keys = np.zeros(len(table)) if by is None else table[by].to_numpy()
  steps = curves[STEP].values
  for value in dict.fromkeys(keys[ok].tolist()):
    rows = np.flatnonzero(ok & (keys == value))
    for other in (h for h in hparams if h != by):
      if len(set(table[other].to_numpy()[rows].tolist())) > 1:
        raise ValueError(f"Rows with {by}={value} differ in `{other}`; filter the result "
                         f"first, e.g. result.filter({other}=...).plot_curves(...).")
    values = curves[name].values[rows].astype(np.float64)
    if averaged:
      mean, spread = values[0], curves[f"{metric}_std"].values[rows[0]].astype(np.float64)
    else:
      mean = values.mean(axis=0)
      spread = values.std(axis=0, ddof=1) if len(rows) > 1 else None
    label = None if by is None else f"{by}={label_format.format(value)}"
    (line,) = ax.plot(steps, mean, label=label)
    if spread is not None and np.isfinite(spread).any():
      ax.fill_between(steps, mean - spread, mean + spread, color=line.get_color(), alpha=0.2)
  return _finish(figure, ax, "step", metric, title, by is not None, path)


def plot_table(table: pd.DataFrame, x: str, y: str, *, hue: str | None = None,
               ax: matplotlib.axes.Axes | None = None, path: str | pathlib.Path | None = None,
               logx: bool | None = None, title: str | None = None) -> matplotlib.figure.Figure:
  """Draws column ``y`` against ``x``, one line per value of ``hue``; failed rows skipped.

  :meth:`regjax.SweepResult.plot` calls it with the result's table; a ``y`` ending in
  ``_mean`` with a matching ``_std`` column gets a ±1 std band.

  Args:
    table: the rows, with a ``failed`` column.
    x: column on the horizontal axis.
    y: column on the vertical axis.
    hue: column whose values split the rows into lines, or None.
    ax: a matplotlib Axes to draw on; None makes a new Figure (no pyplot state).
    path: if given, the figure is saved there.
    logx: log-scale x; None picks it when x is positive and spans 100x or more.
    title: the axes title.

  Returns:
    The matplotlib Figure.

  Examples:
    >>> import pandas as pd
    >>> from regjax.experiment import curves
    >>> table = pd.DataFrame({"lam": [1e-4, 1e-3, 1e-2], "acc_mean": [0.9, 0.8, 0.5],
    ...                       "acc_std": [0.01, 0.02, 0.05], "failed": [False] * 3})
    >>> figure = curves.plot_table(table, "lam", "acc_mean")
    >>> figure.axes[0].get_xscale(), len(figure.axes[0].collections)  # log x, a std band
    ('log', 1)
  """
  figure, ax = _figure_and_axes(ax, "plot")
  ok = ~table["failed"].to_numpy(dtype=bool)
  xs_all = table[x].to_numpy(dtype=np.float64)
  band = y[: -len("_mean")] + "_std" if y.endswith("_mean") else None
  hues = None if hue is None else table[hue].to_numpy()
  labels = [None] if hues is None else list(dict.fromkeys(hues[ok].tolist()))
  for label in labels:
    rows = ok if hues is None else ok & (hues == label)
    order = np.argsort(xs_all[rows], kind="stable")
    xs, ys = xs_all[rows][order], table[y].to_numpy(dtype=np.float64)[rows][order]
    name = None if label is None else f"{hue}={label:.4g}" if isinstance(label, float) \
        else f"{hue}={label}"
    (line,) = ax.plot(xs, ys, marker="o", label=name)
    if band is not None and band in table.columns:
      spread = table[band].to_numpy(dtype=np.float64)[rows][order]
      ax.fill_between(xs, ys - spread, ys + spread, color=line.get_color(), alpha=0.2)
  if logx is None:
    finite = xs_all[ok & np.isfinite(xs_all)]
    logx = bool(len(finite)) and finite.min() > 0 and finite.max() >= 100 * finite.min()
  if logx:
    ax.set_xscale("log")
  return _finish(figure, ax, x, y, title, hue is not None, path)
