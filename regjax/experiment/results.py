"""The result of a sweep: a pandas table of its rows and an xarray Dataset of its curves.

:class:`SweepResult` is a small container, not a data frame of its own:

* :attr:`SweepResult.table` is a ``pandas.DataFrame`` with one row per grid point and
  seed: the grid axes (and labels such as ``method``), ``seed``, every metric, ``failed``.
  Group, pivot and join it with pandas; :meth:`~SweepResult.mean_over_seeds`,
  :meth:`~SweepResult.best` and :meth:`~SweepResult.filter` are thin helpers over it.
* :attr:`SweepResult.curves` is an ``xarray.Dataset`` of the metrics recorded during
  training, dims ``("row", "step")``: row ``i`` of the curves is row ``i`` of the table,
  the hyperparameters and ``seed`` are coordinates along ``row`` and the evaluation steps
  the coordinate ``step``. Rows rather than a ``(point, seed)`` cube, because a table can
  be filtered, concatenated across methods or filled by an adaptive search with rows that
  do not form a cube; the cube is one call away,
  ``result.curves.set_index(row=["lam", "seed"]).unstack("row")`` (dims ``lam``, ``seed``,
  ``step``), and ``result.curves.groupby("lam").mean()`` averages a one-axis grid over
  seeds.

Columns. A sweep's table holds, in order: the grid axes; ``seed`` (the row's PRNG seed);
the metrics ``fn`` returned, in its order (a :class:`regjax.Trainer`'s are listed in
:meth:`regjax.Trainer.evaluate`); ``failed`` (a metric is NaN/±Inf, or ``failed_step``
>= 0). :meth:`~SweepResult.mean_over_seeds` replaces ``seed`` by ``n_seeds`` (rows in the
group) and ``n_failed`` (failed rows in it), and each metric ``m`` by ``m_mean`` and
``m_std`` (sample standard deviation over the successful seeds), plus ``m_low`` and
``m_high`` with ``interval=``; its ``failed`` means every seed failed.

Files, each in its library's own format (:meth:`~SweepResult.save`,
:func:`load`): ``.nc`` (netCDF 3 through xarray's scipy engine: table, curves and
metadata, every dtype restored), ``.json`` (the same Dataset as xarray's dict, NaN as
``null``), ``.csv`` and ``.parquet`` (the table alone, through pandas; parquet needs
pyarrow). Files written by regjax 0.1 (its ``to_json``, ``to_npz`` and CSV files) load too.

Examples:
  >>> import numpy as np
  >>> from regjax.experiment.results import SweepResult
  >>> result = SweepResult({"lam": [0.1, 0.1, 1.0, 1.0], "seed": [0, 1, 0, 1],
  ...                       "acc": [0.8, 0.9, 0.5, 0.7]}, hparams=("lam",))
  >>> result.mean_over_seeds()["acc_mean"].round(3).tolist()
  [0.85, 0.6]
  >>> result.table.groupby("lam")["acc"].mean().round(3).tolist()  # the same, in pandas
  [0.85, 0.6]
  >>> result.best("acc")["seed"]
  1
"""

from __future__ import annotations

import json
import math
import numbers
import pathlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from regjax import _checks
from regjax.experiment import curves as _curves
from regjax.experiment.grids import RESERVED

if TYPE_CHECKING:
  import matplotlib.axes
  import matplotlib.figure
  import xarray

__all__ = ["CURVE_PREFIX", "RESERVED", "SweepResult", "concat", "load"]

# A metric of `fn` named "curves/<name>" is a curve `<name>` (see `regjax.sweep`); the
# same prefix names the curves in a saved file, beside the table's columns.
CURVE_PREFIX = "curves/"
"""A metric named ``"curves/<name>"`` is a 1-D curve per row, kept in the curves, not the table."""
_ROW, _STEP = _curves.ROW, _curves.STEP
_META = "regjax"  # the attribute of a saved Dataset that holds the metadata, as JSON
_FORMAT_VERSION = 2


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


def _is_numeric(values: Any) -> bool:
  dtype = np.asarray(values).dtype if not isinstance(values, pd.Series) else values.dtype
  return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _numpy(series: pd.Series) -> np.ndarray:
  """A column as NumPy: numbers keep their dtype, text becomes a ``str`` array."""
  if _is_numeric(series):
    return series.to_numpy(copy=True)
  return np.asarray(series.to_numpy(), dtype=str)


def _as_frame(columns: Mapping[str, npt.ArrayLike] | pd.DataFrame) -> pd.DataFrame:
  if isinstance(columns, pd.DataFrame):
    frame = columns.reset_index(drop=True)
  else:
    data = {name: np.asarray(values) for name, values in columns.items()}
    shapes = {name: values.shape for name, values in data.items()}
    if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) > 1:
      raise ValueError(f"`columns` must be 1-D arrays of one length, got shapes {shapes}.")
    frame = pd.DataFrame(data)
  if "failed" not in frame.columns:
    frame["failed"] = np.zeros(len(frame), dtype=bool)
  return frame


def _xr() -> Any:
  import xarray  # imported on first use: a sweep without curves does not need it

  return xarray


def _row_coords(table: pd.DataFrame, hparams: Sequence[str]) -> dict[str, Any]:
  names = [*hparams, *(["seed"] if "seed" in table.columns else [])]
  return {name: (_ROW, _numpy(table[name])) for name in names}


def _as_curves(curves: Mapping[str, npt.ArrayLike] | xarray.Dataset | None, table: pd.DataFrame,
               hparams: Sequence[str]) -> xarray.Dataset:
  """Curves as a Dataset ``(row, step)`` whose row coordinates are ``table``'s."""
  xr = _xr()
  if curves is None or (isinstance(curves, Mapping) and not isinstance(curves, xr.Dataset)):
    arrays = _curves.check(cast("Mapping[str, npt.ArrayLike]", curves or {}), len(table))
    steps = arrays.pop(_STEP, None)
    width = next(iter(arrays.values())).shape[1] if arrays else 0
    if steps is not None and not (steps == steps[:1]).all():
      raise ValueError("`curves['step']` must hold the same steps in every row.")
    step = steps[0] if steps is not None and len(steps) else np.arange(width)
    curves = xr.Dataset({name: ((_ROW, _STEP), values) for name, values in arrays.items()},
                        coords={_STEP: step} if arrays or steps is not None else {})
  if not isinstance(curves, xr.Dataset):
    raise TypeError(f"`curves` must be a mapping of arrays or an xarray.Dataset, got "
                    f"{type(curves).__name__}.")
  for name, variable in curves.data_vars.items():
    if variable.dims != (_ROW, _STEP) or variable.shape[0] != len(table):
      raise ValueError(f"Curve `{name}` must have dims ('row', 'step') with {len(table)} "
                       f"rows, got {dict(variable.sizes)}.")
  stale = [name for name, c in curves.coords.items() if name != _STEP and c.dims == (_ROW,)]
  return curves.drop_vars(stale).assign_coords(_row_coords(table, hparams))


class SweepResult:
  """The rows of a sweep: a pandas table and xarray curves, plus metadata.

  Args:
    columns: mapping name -> 1-D array (all of one length), or a ``pandas.DataFrame``;
      a missing ``failed`` column is taken as all False.
    hparams: names of the columns that identify a configuration (grid axes and labels
      such as ``method``); :meth:`mean_over_seeds` groups by them.
    metrics: names of the metric columns; default every column that is not an hparam,
      ``seed``, ``n_seeds``, ``n_failed`` or ``failed``.
    wall_time: seconds the sweep took, compilation included.
    chunk_size: rows per compiled call, when the result comes from :func:`regjax.sweep`.
    curves: metrics recorded during training: an ``xarray.Dataset`` with dims
      ``("row", "step")``, or a mapping name -> array ``[rows, evaluations]`` in which
      ``"step"`` (if given) holds the step of each evaluation, the same in every row.

  Examples:
    >>> from regjax.experiment.results import SweepResult
    >>> result = SweepResult({"lam": [0.1, 1.0], "seed": [0, 0], "acc": [0.9, 0.5]},
    ...                      hparams=("lam",), curves={"acc": [[0.5, 0.9], [0.4, 0.5]],
    ...                                            "step": [[10, 20], [10, 20]]})
    >>> result.columns
    ('lam', 'seed', 'acc', 'failed')
    >>> result.curves["acc"].sel(step=20).values.tolist()
    [0.9, 0.5]
    >>> print(result)
    lam  seed  acc  failed
    ---  ----  ---  ------
    0.1     0  0.9   False
      1     0  0.5   False
  """

  def __init__(self, columns: Mapping[str, npt.ArrayLike] | pd.DataFrame, *,
               hparams: Sequence[str] = (), metrics: Sequence[str] | None = None,
               wall_time: float = 0.0, chunk_size: int | None = None,
               curves: Mapping[str, npt.ArrayLike] | xarray.Dataset | None = None):
    table = _as_frame(columns)
    for name in hparams:
      if name not in table.columns:
        raise ValueError(f"`hparams` names a missing column `{name}`.")
    if metrics is None:
      metrics = [c for c in table.columns if c not in hparams and c not in RESERVED]
    self._table = table
    self.hparams = tuple(hparams)
    self.metrics = tuple(metrics)
    self.wall_time = float(wall_time)
    self.chunk_size = chunk_size
    self._curves = _as_curves(curves, table, self.hparams)

  # --------------------------------------------------------------------------- access

  @property
  def table(self) -> pd.DataFrame:
    """The rows as a ``pandas.DataFrame`` (a copy): one row per grid point and seed."""
    return self._table.copy()

  @property
  def curves(self) -> xarray.Dataset:
    """Metrics recorded during training: an ``xarray.Dataset``, dims ``("row", "step")``.

    Row ``i`` is row ``i`` of :attr:`~SweepResult.table`; the hparams and ``seed`` are coordinates
    along ``row``, the evaluation steps the coordinate ``step``. Empty without curves.
    """
    return self._curves.copy(deep=True)

  @property
  def columns(self) -> tuple[str, ...]:
    """The column names, in order."""
    return tuple(self._table.columns)

  def __len__(self) -> int:
    return len(self._table)

  def __getitem__(self, name: str) -> np.ndarray:
    self._check_column("name", name)
    return _numpy(self._table[name])

  def _check_column(self, argument: str, name: Any) -> None:
    if name not in self._table.columns:
      raise ValueError(f"`{argument}` must be one of the columns {self.columns}, got {name!r}.")

  def _like(self, table: pd.DataFrame | Mapping[str, npt.ArrayLike],
            **changes: Any) -> SweepResult:
    options: dict[str, Any] = dict(hparams=self.hparams, metrics=self.metrics,
                                   wall_time=self.wall_time, chunk_size=self.chunk_size,
                                   curves=self._curves)
    options.update(changes)
    return SweepResult(table, **options)

  def _take(self, index: np.ndarray) -> SweepResult:
    rows = np.arange(len(self))[np.asarray(index)]
    return self._like(self._table.iloc[rows], curves=self._curves.isel({_ROW: rows}))

  def to_pandas(self) -> pd.DataFrame:
    """The rows as a ``pandas.DataFrame`` with the same columns, in order (a copy)."""
    return self.table

  def to_records(self) -> list[dict[str, Any]]:
    """The rows as dicts of Python values (float32 numbers as they print)."""
    columns = {name: self[name] for name in self.columns}
    return [{name: _python_value(values[i]) for name, values in columns.items()}
            for i in range(len(self))]

  # --------------------------------------------------------------------------- printing

  def to_table(self, max_rows: int | None = None) -> str:
    """An aligned text table, floats with 4 significant digits.

    Args:
      max_rows: show at most this many rows (None shows all).
    """
    records = self.to_records()
    shown = records if max_rows is None else records[:max_rows]
    header = list(self.columns)
    cells = [[f"{r[n]:.4g}" if isinstance(r[n], float) else str(r[n]) for n in header]
             for r in shown]
    widths = [max([len(h)] + [len(row[j]) for row in cells]) for j, h in enumerate(header)]
    left = [not _is_numeric(self._table[name]) for name in header]

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

  # --------------------------------------------------------------------------- files

  def save(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes the result in the format its suffix names; returns the path.

    ``.nc``: netCDF 3 (xarray, scipy engine): table, curves and metadata, dtypes
    restored by :func:`load`. ``.json``: the same Dataset as xarray's dict, strict JSON
    (NaN and ±Inf as ``null``). ``.csv`` / ``.parquet``: the table alone (pandas).

    Args:
      path: the file to write.

    Returns:
      ``path`` as a ``pathlib.Path``.

    Examples:
      >>> import pathlib, tempfile
      >>> from regjax.experiment.results import SweepResult, load
      >>> result = SweepResult({"lam": [0.1], "seed": [2**32 - 1], "acc": [0.9]},
      ...                      hparams=("lam",), curves={"acc": [[0.5, 0.9]]})
      >>> path = result.save(pathlib.Path(tempfile.mkdtemp()) / "r.nc")
      >>> again = load(path)
      >>> again["seed"].dtype, again.curves["acc"].values.tolist(), again.hparams
      (dtype('int64'), [[0.5, 0.9]], ('lam',))
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
      self.to_csv(path)
    elif suffix == ".parquet":
      self._table.to_parquet(path, index=False)
    elif suffix == ".nc":
      _for_netcdf(self._dataset()).to_netcdf(path, engine="scipy")
    elif suffix == ".json":
      document = self._dataset().to_dict(data="list")
      path.write_text(json.dumps(_nulls(document), indent=1, allow_nan=False))
    else:
      raise ValueError(f"`path` must end in .nc, .json, .csv or .parquet, got {path.name!r}.")
    return path

  def to_csv(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes the table as CSV (pandas, no index, NaN as ``nan``); returns the path."""
    path = pathlib.Path(path)
    self._table.to_csv(path, index=False, na_rep="nan")
    return path

  def to_json(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes table, curves and metadata as strict JSON; ``save`` with a ``.json`` path."""
    return _write_as(self, path, ".json")

  def to_netcdf(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes table, curves and metadata as netCDF 3; ``save`` with a ``.nc`` path."""
    return _write_as(self, path, ".nc")

  @classmethod
  def load(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a file written by :meth:`save` (or by regjax 0.1); see :func:`load`."""
    return load(path)

  @classmethod
  def from_csv(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a CSV table; the hparams are the columns before ``seed`` or ``n_seeds``."""
    return _from_csv(path)

  @classmethod
  def from_json(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a JSON file written by :meth:`to_json` (this version's or regjax 0.1's)."""
    return _from_json(path)

  @classmethod
  def from_netcdf(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a netCDF file written by :meth:`to_netcdf`."""
    return _from_dataset(_xr().load_dataset(pathlib.Path(path), engine="scipy"))

  @classmethod
  def from_npz(cls, path: str | pathlib.Path) -> SweepResult:
    """Reads a ``.npz`` archive written by regjax 0.1's ``SweepResult.to_npz``.

    This version no longer writes ``.npz``; re-save with ``load(path).save("r.nc")``.
    """
    with np.load(pathlib.Path(path)) as archive:
      meta = json.loads(str(archive["meta"]))
      data = {name: archive[f"column/{name}"] for name in meta["columns"]}
      curves = {name: archive[f"curve/{name}"] for name in meta["curves"]}
    return cls(data, hparams=meta["hparams"], metrics=meta["metrics"],
               wall_time=meta["wall_time"], curves=curves)

  def _dataset(self) -> xarray.Dataset:
    """Table, curves and metadata as one Dataset: columns on ``row``, curves prefixed."""
    xr = _xr()
    columns = {name: (_ROW, self[name]) for name in self.columns}
    curves = {CURVE_PREFIX + str(name): variable.reset_coords(drop=True)
              for name, variable in self._curves.data_vars.items()}
    dataset = xr.Dataset({**columns, **curves})
    meta = {"version": _FORMAT_VERSION, "hparams": list(self.hparams),
            "metrics": list(self.metrics), "wall_time": self.wall_time,
            "chunk_size": self.chunk_size, "columns": list(self.columns),
            "dtypes": {str(n): str(v.dtype) for n, v in dataset.variables.items()}}
    dataset.attrs[_META] = json.dumps(meta)
    return dataset

  # --------------------------------------------------------------------------- helpers

  def mean_over_seeds(self, interval: float | None = None) -> SweepResult:
    r"""Mean and spread of each metric over the seeds of each configuration.

    Rows are grouped by the hparam columns (``table.groupby(hparams)``). Failed rows are
    left out: ``m_mean`` is the mean and ``m_std`` the sample standard deviation
    (ddof=1, NaN with fewer than two successful seeds) over the successful seeds. With
    ``interval=c``, ``m_low`` and ``m_high`` bound the two-sided Student-t interval of
    the mean, :math:`\bar m \pm t_{n-1,(1+c)/2}\, s/\sqrt{n}`. ``n_seeds`` and
    ``n_failed`` count the rows of a group; ``failed`` is True when every seed failed.
    ``failed_step`` and non-numeric metrics are not averaged. Curves are averaged the
    same way, pointwise, into ``<name>_mean`` and ``<name>_std``.

    Args:
      interval: confidence level of the interval columns, in (0, 1); None adds none.

    Returns:
      A :class:`SweepResult` with one row per configuration, in order of appearance.

    Examples:
      >>> from regjax.experiment.results import SweepResult
      >>> result = SweepResult({"lam": [1.0, 1.0, 1.0], "seed": [0, 1, 2],
      ...                       "acc": [0.5, 0.7, 0.9]}, hparams=("lam",))
      >>> row = result.mean_over_seeds(interval=0.95).to_records()[0]
      >>> round(row["acc_mean"], 3), round(row["acc_std"], 3), round(row["acc_low"], 3)
      (0.7, 0.2, 0.203)
    """
    if "seed" not in self._table.columns:
      raise ValueError("`mean_over_seeds` needs a `seed` column; this result has none.")
    if interval is not None and not 0.0 < interval < 1.0:
      raise ValueError(f"`interval` must be a confidence level in (0, 1), got {interval!r}.")
    group, firsts = _groups(self._table, self.hparams)
    failed = self["failed"]
    table = {name: self._table[name].to_numpy()[firsts] for name in self.hparams}
    table["n_seeds"] = np.bincount(group)
    table["n_failed"] = np.bincount(group, weights=failed, minlength=len(firsts)).astype(int)
    names = [m for m in self.metrics if m != "failed_step" and _is_numeric(self._table[m])]
    table.update(_group_statistics(self._table[names], group, failed, len(firsts), interval))
    table["failed"] = table["n_failed"] == table["n_seeds"]
    metrics = [c for c in table if c not in (*self.hparams, "n_seeds", "n_failed", "failed")]
    curves = _curves.mean_over_groups(self._curves, group, failed, len(firsts))
    return self._like(pd.DataFrame(table), metrics=metrics, curves=curves)

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

    Args:
      metric: a column (or, with ``split``, the name after the split's prefix).
      mode: ``"max"`` or ``"min"``.
      split: ``"validation"``, ``"train"`` or None.

    Returns:
      The chosen row as a dict of Python values.

    Examples:
      >>> from regjax.experiment.results import SweepResult
      >>> result = SweepResult({"lam": [0.1, 1.0], "loss": [0.3, 0.2]}, hparams=("lam",))
      >>> result.best("loss", mode="min")["lam"]
      1.0
    """
    _checks.check_choice("mode", mode, ("max", "min"))
    if split is not None:
      metric = _split_metric(metric, split)
      if metric in self._curves.data_vars:
        return self._best_step(metric, mode)
    self._check_column("metric", metric)
    if not _is_numeric(self._table[metric]):
      raise TypeError(f"`metric` must name a numeric column, `{metric}` has "
                      f"{self._table[metric].dtype}.")
    values = self[metric].astype(np.float64)
    ok = ~self["failed"] & np.isfinite(values)
    if not ok.any():
      raise ValueError(f"No successful row has a finite `{metric}`.")
    score = np.where(ok, values if mode == "max" else -values, -np.inf)
    return self._take(np.array([int(np.argmax(score))])).to_records()[0]

  def _best_step(self, metric: str, mode: str) -> dict[str, Any]:
    row, index = _curves.best_step(self._curves[metric].values, ~self["failed"], mode)
    record = self._take(np.array([row])).to_records()[0]
    record[_STEP] = _python_value(self._curves[_STEP].values[index])
    record.update({str(name): _python_value(variable.values[row, index])
                   for name, variable in self._curves.data_vars.items()})
    return record

  def filter(self, **conditions: object) -> SweepResult:
    """The rows meeting every condition (with their curves).

    Each condition is ``column=value`` (floats compared with a relative tolerance of
    1e-6), ``column=[v1, v2, ...]`` (any of them), or ``column=callable`` taking the
    column as a NumPy array and returning a boolean mask. In pandas:
    ``result.table.query(...)`` or a boolean mask.

    Args:
      **conditions: column name -> value, list of values or callable.

    Returns:
      A :class:`SweepResult` of the selected rows, in order.

    Examples:
      >>> from regjax.experiment.results import SweepResult
      >>> result = SweepResult({"lam": [0.1, 0.2, 0.3], "acc": [0.9, 0.8, 0.7]},
      ...                      hparams=("lam",))
      >>> result.filter(lam=[0.1, 0.3])["acc"].tolist()
      [0.9, 0.7]
    """
    mask = np.ones(len(self), dtype=bool)
    for name, condition in conditions.items():
      if name not in self._table.columns:
        raise ValueError(f"`{name}` is not a column; columns are {self.columns}.")
      column = self[name]
      if callable(condition):
        mask &= np.asarray(condition(column), dtype=bool)
      elif isinstance(condition, (list, tuple, set, np.ndarray)):
        mask &= np.any([_equal(column, c) for c in condition], axis=0)
      else:
        mask &= _equal(column, condition)
    return self._take(mask)

  def plot(self, x: str, y: str, *, hue: str | None = None,
           ax: matplotlib.axes.Axes | None = None, path: str | pathlib.Path | None = None,
           logx: bool | None = None, title: str | None = None) -> matplotlib.figure.Figure:
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
    return _curves.plot_table(self._table, x, y, hue=hue, ax=ax, path=path, logx=logx,
                              title=title)

  def plot_curves(self, metric: str, by: str | None = None, *,
                  ax: matplotlib.axes.Axes | None = None, path: str | pathlib.Path | None = None,
                  title: str | None = None) -> matplotlib.figure.Figure:
    """Plots the curve ``metric`` against steps: one line per value of ``by``.

    Each line is the mean over the rows (seeds) with that value, with a ±1 std band
    when there are several; on a :meth:`mean_over_seeds` result, ``metric`` names the
    curve before its ``_mean`` suffix and the band is its ``_std``. Failed rows are
    skipped. Rows sharing a value of ``by`` must not differ in another hparam (filter
    first). Needs matplotlib (the ``plots`` extra); no pyplot state is used.

    Args:
      metric: a curve name (see :attr:`~SweepResult.curves`).
      by: the column whose values make the lines; None draws one line.
      ax: a matplotlib Axes to draw on; None makes a new Figure.
      path: if given, the figure is saved there.
      title: the axes title.

    Returns:
      The matplotlib Figure.
    """
    if by is not None:
      self._check_column("by", by)
    return _curves.plot(self._curves, self._table, self.hparams, metric, by, ax=ax,
                        path=path, title=title)


def _write_as(result: SweepResult, path: str | pathlib.Path, suffix: str) -> pathlib.Path:
  path = pathlib.Path(path)
  if path.suffix.lower() != suffix:
    raise ValueError(f"`path` must end in {suffix}, got {path.name!r}.")
  return result.save(path)


def _split_metric(metric: str, split: str) -> str:
  if split == "test":
    raise ValueError("`split='test'` would choose on the test set; pick on 'validation' "
                     "and report test at the chosen point.")
  _checks.check_choice("split", split, ("validation", "train"))
  return metric if metric.startswith(f"{split}_") else f"{split}_{metric}"


def _groups(table: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
  """Each row's group (by ``keys``, numbered in order of appearance) and each group's first
  row."""
  if not keys:
    group = np.zeros(len(table), dtype=np.int64)
  else:
    group = table.groupby(list(keys), sort=False, dropna=False).ngroup().to_numpy()
  _, firsts = np.unique(group, return_index=True)
  return group, firsts


def _group_statistics(values: pd.DataFrame, group: np.ndarray, failed: np.ndarray, n: int,
                      interval: float | None) -> dict[str, np.ndarray]:
  """``<m>_mean``, ``<m>_std`` (and ``<m>_low``/``<m>_high``) per group, failed rows out."""
  ok = values[~failed].astype(np.float64).groupby(group[~failed])
  mean, std = ok.mean().reindex(range(n)), ok.std(ddof=1).reindex(range(n))
  out: dict[str, np.ndarray] = {}
  if interval is not None:
    from scipy import stats

    count = ok.count().reindex(range(n)).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
      half = stats.t.ppf((1 + interval) / 2, count - 1) * std / np.sqrt(count)
  for name in values.columns:
    out[f"{name}_mean"], out[f"{name}_std"] = mean[name].to_numpy(), std[name].to_numpy()
    if interval is not None:
      out[f"{name}_low"] = (mean[name] - half[name]).to_numpy()
      out[f"{name}_high"] = (mean[name] + half[name]).to_numpy()
  return out


def _equal(column: np.ndarray, value: Any) -> np.ndarray:
  if np.issubdtype(column.dtype, np.floating) and isinstance(value, numbers.Real):
    return np.isclose(column, float(value), rtol=1e-6, atol=0.0)
  return column == value


# ----------------------------------------------------------------------------- files


def _nulls(value: Any) -> Any:
  """JSON-ready: NaN and ±Inf (which JSON lacks) become None, recursively."""
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: _nulls(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_nulls(v) for v in value]
  return value


def _for_netcdf(dataset: xarray.Dataset) -> xarray.Dataset:
  """netCDF 3 has no 64-bit integers: those that int32 cannot hold go as float64 (exact
  below 2**53); :func:`_from_dataset` casts them back from the recorded dtypes."""
  changed = {}
  for name, variable in dataset.variables.items():
    if np.issubdtype(variable.dtype, np.integer) and variable.size:
      info = np.iinfo(np.int32)
      if variable.values.min() < info.min or variable.values.max() > info.max:
        changed[name] = variable.astype(np.float64)
  return dataset.assign(changed)


def _from_dataset(dataset: xarray.Dataset) -> SweepResult:
  if _META not in dataset.attrs:
    raise ValueError("This Dataset or file was not written by `SweepResult.save`.")
  meta = json.loads(dataset.attrs[_META])
  restored = {name: dataset[name].astype(dtype) if not dtype.startswith("<U")
              else dataset[name].astype(str) for name, dtype in meta["dtypes"].items()}
  table = {name: restored[name].values for name in meta["columns"]}
  curves = _xr().Dataset(
      {name[len(CURVE_PREFIX):]: restored[name].variable for name in restored
       if name.startswith(CURVE_PREFIX)},
      coords={_STEP: restored[_STEP].values} if _STEP in restored else {})
  return SweepResult(table, hparams=meta["hparams"], metrics=meta["metrics"],
                     wall_time=meta["wall_time"], chunk_size=meta["chunk_size"], curves=curves)


def _from_frame(frame: pd.DataFrame) -> SweepResult:
  """A table without metadata: its hparams are the columns before ``seed``/``n_seeds``."""
  names = list(frame.columns)
  marker = next((m for m in ("seed", "n_seeds") if m in names), None)
  return SweepResult(frame, hparams=names[: names.index(marker)] if marker else ())


def _from_csv(path: str | pathlib.Path) -> SweepResult:
  return _from_frame(pd.read_csv(pathlib.Path(path)))


def _from_json(path: str | pathlib.Path) -> SweepResult:
  document = json.loads(pathlib.Path(path).read_text())
  if "records" in document:  # regjax 0.1: {"columns", "hparams", "metrics", "records", ...}
    table = pd.DataFrame.from_records(document["records"], columns=document["columns"])
    curves = {name: np.array(c["values"], dtype=float).astype(c["dtype"])
              for name, c in document.get("curves", {}).items()}
    return SweepResult(table.fillna(np.nan), hparams=document["hparams"],
                       metrics=document["metrics"], wall_time=document["wall_time"],
                       curves=curves)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # None -> NaN in integer-free columns
    dataset = _xr().Dataset.from_dict(_nans(document))
  return _from_dataset(dataset)


def _nans(value: Any) -> Any:
  """The inverse of :func:`_nulls` for the ``data`` lists of a Dataset dict."""
  if isinstance(value, dict):
    return {k: (np.array(v, dtype=float) if k == "data" and _has_none(v) else _nans(v))
            for k, v in value.items()}
  return value


def _has_none(values: Any) -> bool:
  if isinstance(values, list):
    return any(_has_none(v) for v in values)
  return values is None


_READERS: dict[str, Callable[[Any], SweepResult]] = {
    ".csv": _from_csv,
    ".json": _from_json,
    ".nc": SweepResult.from_netcdf,
    ".npz": SweepResult.from_npz,
    ".parquet": lambda path: _from_frame(pd.read_parquet(path)),
}


def load(path: str | pathlib.Path) -> SweepResult:
  """Reads a :class:`SweepResult` from the file ``path``, by its suffix.

  ``.nc`` and ``.json`` (written by :meth:`SweepResult.save`) restore table, curves,
  dtypes and metadata; ``.csv`` and ``.parquet`` hold the table alone, and their hparams
  are taken to be the columns before ``seed`` (or ``n_seeds``). Files of regjax 0.1
  (``to_json``, ``to_npz``, ``sweep.csv``, ``rows.csv``) load too.

  Args:
    path: the file.

  Returns:
    The result.

  Examples:
    >>> import pathlib, tempfile
    >>> from regjax.experiment.results import SweepResult, load
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
    >>> _ = SweepResult({"lam": [0.1], "seed": [0], "acc": [0.9]}).to_csv(path)
    >>> load(path).hparams
    ('lam',)
  """
  path = pathlib.Path(path)
  reader = _READERS.get(path.suffix.lower())
  if reader is None:
    raise ValueError(f"`path` must end in one of {sorted(_READERS)}, got {path.name!r}.")
  return reader(path)


def concat(results: Mapping[str, SweepResult] | Sequence[SweepResult], *,
           column: str = "method") -> SweepResult:
  """Stacks results row-wise, e.g. one sweep per method.

  With a mapping ``label -> result``, a first column ``column`` holds each row's label
  and becomes an hparam column (so :meth:`SweepResult.mean_over_seeds` keeps methods
  apart). Columns missing from some results are filled with NaN (numbers, turned into
  floats) or ``""`` (text). Curves are stacked by row on the union of their steps, NaN
  where a result has none. ``wall_time`` is the sum.

  Args:
    results: a mapping label -> :class:`SweepResult`, or a sequence of them (no label
      column).
    column: name of the label column.

  Returns:
    One :class:`SweepResult`.

  Examples:
    >>> import regjax
    >>> from regjax.experiment.results import SweepResult
    >>> a = SweepResult({"lam": [0.1], "acc": [0.9]}, hparams=("lam",))
    >>> b = SweepResult({"lam": [1.0], "acc": [0.5]}, hparams=("lam",))
    >>> regjax.concat_results({"a": a, "b": b}).columns
    ('method', 'lam', 'acc', 'failed')
  """
  labels, parts = (list(results), list(results.values())) if isinstance(results, Mapping) \
      else (None, list(results))
  if not parts:
    raise ValueError("`results` is empty; pass at least one SweepResult.")
  for part in parts:
    if not isinstance(part, SweepResult):
      raise TypeError(f"`results` must hold SweepResults, got {type(part).__name__}.")
  if labels is not None and any(column in part.columns for part in parts):
    raise ValueError(f"`column` {column!r} is already a column; pick another name.")
  names = [n for n in dict.fromkeys(c for p in parts for c in p.columns) if n != "failed"]
  table: dict[str, Any] = {}
  if labels is not None:
    table[column] = np.concatenate([np.full(len(p), str(label))
                                    for label, p in zip(labels, parts, strict=True)])
  for name in [*names, "failed"]:
    table[name] = _stacked_column(parts, name)
  hparams = ([column] if labels is not None else []) + list(
      dict.fromkeys(h for p in parts for h in p.hparams))
  metrics = list(dict.fromkeys(m for p in parts for m in p.metrics))
  # The conventional order: hparams, seed counters, metrics, failed.
  order = hparams + [n for n in names if n not in hparams and n not in metrics] + metrics
  return SweepResult({name: table[name] for name in [*order, "failed"]}, hparams=hparams,
                     metrics=metrics, wall_time=sum(p.wall_time for p in parts),
                     curves=_curves.stack([p._curves for p in parts]))


def _stacked_column(parts: Sequence[SweepResult], name: str) -> np.ndarray:
  present = [p[name] for p in parts if name in p.columns]
  if len(present) == len(parts):
    return np.concatenate(present)
  if all(not _is_numeric(v) for v in present):
    return np.concatenate([p[name] if name in p.columns else np.full(len(p), "")
                           for p in parts])
  return np.concatenate([p[name].astype(np.float64) if name in p.columns
                         else np.full(len(p), np.nan) for p in parts])
