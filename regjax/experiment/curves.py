"""Curves of a sweep: metrics recorded during training, ``[rows, evaluations]`` per metric.

A :class:`regjax.SweepResult` keeps its curves beside its columns (``result.curves``);
``curves["step"]`` holds the step of every evaluation. The functions here average them
over seeds, pick the best step on a validation curve, and draw them; the
:class:`~regjax.SweepResult` methods of the same names call them.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

STEP = "step"


def check(curves: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
  """Curves as 2-D arrays ``[rows, evaluations]``, all of one shape."""
  arrays = {name: np.asarray(values) for name, values in curves.items()}
  shapes = {name: values.shape for name, values in arrays.items()}
  if any(len(s) != 2 or s[0] != rows for s in shapes.values()) or len(set(shapes.values())) > 1:
    raise ValueError(f"`curves` must be arrays [rows={rows}, evaluations] of one shape, got "
                     f"{shapes}.")
  return arrays


def mean_over_groups(curves: Mapping[str, np.ndarray], groups: Sequence[Sequence[int]],
                     failed: np.ndarray) -> dict[str, np.ndarray]:
  """Per group of rows: ``<name>_mean`` and ``<name>_std`` (ddof=1) over successful rows.

  ``step`` is kept as it is (the first row's). A group whose rows all failed gets NaN.
  """
  result: dict[str, np.ndarray] = {}
  for name, values in curves.items():
    if name == STEP:
      result[name] = values[[rows[0] for rows in groups]]
      continue
    means, stds = [], []
    for rows in groups:
      ok = values[list(rows)][~failed[list(rows)]].astype(np.float64)
      width = values.shape[1]
      means.append(ok.mean(axis=0) if len(ok) else np.full(width, np.nan))
      stds.append(ok.std(axis=0, ddof=1) if len(ok) > 1 else np.full(width, np.nan))
    result[f"{name}_mean"], result[f"{name}_std"] = np.array(means), np.array(stds)
  return result


def best_step(curve: np.ndarray, ok: np.ndarray, mode: str) -> tuple[int, int]:
  """``(row, evaluation)`` of the best finite value among rows ``ok``; ties go first."""
  values = curve.astype(np.float64)
  usable = ok[:, None] & np.isfinite(values)
  if not usable.any():
    raise ValueError("No successful row has a finite value on the curve.")
  score = np.where(usable, values if mode == "max" else -values, -np.inf)
  row, index = np.unravel_index(int(np.argmax(score)), score.shape)
  return int(row), int(index)


def figure_and_axes(ax: Any, caller: str) -> tuple[Any, Any]:
  """``ax``'s Figure and ``ax``, or a new Figure (no pyplot state) and its Axes."""
  try:
    from matplotlib.figure import Figure
  except ImportError as error:
    raise ImportError(f"`{caller}` needs matplotlib: pip install 'regjax[plots]'.") from error
  if ax is None:
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    return figure, figure.add_subplot()
  return ax.figure, ax


def plot(result: Any, metric: str, by: str | None, *, ax: Any = None,
         path: str | pathlib.Path | None = None, title: str | None = None,
         label_format: str = "{:.3g}") -> Any:
  """Draws ``metric`` against steps, one line per value of ``by``, with a seed band.

  See :meth:`regjax.SweepResult.plot_curves`.
  """
  curves = result._curves
  averaged = metric not in curves and f"{metric}_mean" in curves
  name = f"{metric}_mean" if averaged else metric
  if name not in curves:
    raise ValueError(f"`metric` must name a curve; curves are {sorted(curves)}, got {metric!r}.")
  figure, ax = figure_and_axes(ax, "plot_curves")
  ok = ~result["failed"]
  keys = np.zeros(len(result)) if by is None else result[by]
  others = [h for h in result.hparams if h != by]
  for value in dict.fromkeys(keys[ok].tolist()):
    rows = np.flatnonzero(ok & (keys == value))
    for other in others:
      if len(set(result[other][rows].tolist())) > 1:
        raise ValueError(f"Rows with {by}={value} differ in `{other}`; filter the result "
                         f"first, e.g. result.filter({other}=...).plot_curves(...).")
    steps = curves[STEP][rows[0]] if STEP in curves else np.arange(curves[name].shape[1])
    values = curves[name][rows].astype(np.float64)
    if averaged:
      mean, spread = values[0], curves[f"{metric}_std"][rows[0]].astype(np.float64)
    else:
      mean = values.mean(axis=0)
      spread = values.std(axis=0, ddof=1) if len(rows) > 1 else None
    label = None if by is None else f"{by}={label_format.format(value)}"
    (line,) = ax.plot(steps, mean, label=label)
    if spread is not None and np.isfinite(spread).any():
      ax.fill_between(steps, mean - spread, mean + spread, color=line.get_color(), alpha=0.2)
  ax.set_xlabel("step")
  ax.set_ylabel(metric)
  if title is not None:
    ax.set_title(title)
  if by is not None:
    ax.legend(fontsize="small")
  if path is not None:
    figure.savefig(path, dpi=120)
  return figure
