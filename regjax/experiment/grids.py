"""Grids of hyperparameters: named axes of concrete numbers, combined by product or zip.

A :class:`Grid` is a finite set of points, each a float per named axis. :func:`grid`
takes the cartesian product of its axes (the first varies slowest), :func:`zip_grid`
zips equal-length axes, ``*`` multiplies grids, and :func:`as_grid` turns a mapping into
a grid the one way every entry point of the harness does.

A grid axis may be negative (a log-exponent, a bias): the grid only rejects values that
are not finite numbers. Whether a value is a valid *strength* is for the code that uses
it to say: a :class:`regjax.Trainer` builds its optimizer with every concrete grid point
before anything compiles, so the transform's own check names a negative strength.

Examples:
  >>> import regjax
  >>> g = regjax.grid(l1=[1e-4, 1e-3], lr=[0.1, 0.01, 0.001])
  >>> len(g), g.names
  (6, ('l1', 'lr'))
  >>> list(regjax.zip_grid(lr=[0.1, 0.01], decay=[0.0, 1.0]))
  [{'lr': 0.1, 'decay': 0.0}, {'lr': 0.01, 'decay': 1.0}]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from regjax import _checks

__all__ = ["RESERVED", "AxisValues", "Grid", "GridLike", "as_grid", "grid", "zip_grid"]

# Column names of a sweep's table that no grid axis may take.
RESERVED = ("seed", "failed", "n_seeds", "n_failed")
"""Column names a grid axis or a metric may not take: the result table uses them."""

AxisValues: TypeAlias = npt.ArrayLike
"""The values of one grid axis: a list or 1-D array (NumPy or JAX) of finite real numbers."""


class Grid:
  """A finite set of hyperparameter points, each a float per named axis.

  Build one with :func:`grid` (cartesian product) or :func:`zip_grid` (zipped lists)
  and combine them with ``*`` (cartesian product; the left grid varies slowest).

  Args:
    points: mapping name -> equal-length 1-D sequence of finite numbers.

  Examples:
    >>> from regjax.experiment.grids import Grid
    >>> g = Grid({"lr": [0.1, 0.01]}) * Grid({"decay": [0.0, 1.0]})
    >>> g.points["lr"].tolist(), g.points["decay"].tolist()
    ([0.1, 0.1, 0.01, 0.01], [0.0, 1.0, 0.0, 1.0])
  """

  def __init__(self, points: Mapping[str, AxisValues]):
    if not points:
      raise ValueError("A grid needs at least one axis, e.g. `grid(l1=[1e-4, 1e-3])`.")
    columns = {name: _axis_values(name, values) for name, values in points.items()}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
      raise ValueError(f"Zipped axes must have equal lengths, got {lengths}.")
    self._points = columns

  @property
  def names(self) -> tuple[str, ...]:
    """The axis names, in order."""
    return tuple(self._points)

  @property
  def points(self) -> dict[str, np.ndarray]:
    """Mapping name -> float array of length ``len(self)``, one entry per point (copies).

    float32 axes stay float32; every other axis is float64.
    """
    return {name: values.copy() for name, values in self._points.items()}

  def __len__(self) -> int:
    return len(next(iter(self._points.values())))

  def __iter__(self) -> Iterator[dict[str, float]]:
    for i in range(len(self)):
      yield {name: float(values[i]) for name, values in self._points.items()}

  def product(self, other: Grid) -> Grid:
    """Cartesian product: every point of ``self`` with every point of ``other``.

    Examples:
      >>> import regjax
      >>> regjax.grid(lr=[0.1, 0.01]).product(regjax.grid(seed_scale=[1.0, 2.0, 3.0]))
      Grid(6 points; axes lr, seed_scale)
    """
    if not isinstance(other, Grid):
      raise TypeError(f"`other` must be a Grid, got {type(other).__name__}.")
    shared = sorted(set(self.names) & set(other.names))
    if shared:
      raise ValueError(f"Grid axes must have distinct names; both grids have {shared}.")
    n, m = len(self), len(other)
    points = {name: np.repeat(v, m) for name, v in self._points.items()}
    points.update({name: np.tile(v, n) for name, v in other._points.items()})
    return Grid(points)

  def __mul__(self, other: object) -> Grid:
    if not isinstance(other, Grid):
      return NotImplemented
    return self.product(other)

  def __repr__(self) -> str:
    return f"Grid({len(self)} points; axes {', '.join(self.names)})"


GridLike: TypeAlias = Grid | Mapping[str, AxisValues]
"""A :class:`Grid`, or a mapping axis name -> :data:`AxisValues` taken as ``grid(**mapping)``."""


def _axis_values(name: str, values: AxisValues) -> np.ndarray:
  if name in RESERVED:
    raise ValueError(f"Grid axis name `{name}` is reserved for a result column; rename it.")
  if isinstance(values, (str, bytes)):
    raise TypeError(f"Grid axis `{name}` must be a list or 1-D array of numbers, got {values!r}.")
  if not _checks.is_concrete(values):
    raise TypeError(f"Grid axis `{name}` must hold concrete numbers, not traced values.")
  try:
    array = np.asarray(values)
  except (TypeError, ValueError) as error:
    raise ValueError(f"Grid axis `{name}` must be a 1-D list of numbers: {error}") from None
  if array.ndim != 1:
    raise ValueError(f"Grid axis `{name}` must be 1-D, got shape {array.shape}.")
  if array.size == 0:
    raise ValueError(f"Grid axis `{name}` is empty; give it at least one value.")
  if np.issubdtype(array.dtype, np.bool_) or not np.issubdtype(array.dtype, np.number):
    raise TypeError(f"Grid axis `{name}` must hold numbers, got dtype {array.dtype}.")
  if np.issubdtype(array.dtype, np.complexfloating):
    raise TypeError(f"Grid axis `{name}` must hold real numbers, got dtype {array.dtype}.")
  _checks.check_number_tree(name, array, low=-np.inf, allow_callable=False)
  # float32 input stays float32 so that results print the values the user wrote.
  return array.astype(np.float32 if array.dtype == np.float32 else np.float64)


def grid(**axes: AxisValues) -> Grid:
  """The cartesian product of named axes; the first axis varies slowest.

  Args:
    **axes: name -> list or 1-D array of finite numbers.

  Returns:
    A :class:`Grid` with ``prod(len(axis))`` points.

  Examples:
    >>> import regjax
    >>> g = regjax.grid(l1=[1e-4, 1e-3], lr=[0.1, 0.01, 0.001])
    >>> len(g), list(g)[1]
    (6, {'l1': 0.0001, 'lr': 0.01})
  """
  return as_grid(axes)


def zip_grid(**axes: AxisValues) -> Grid:
  """Points made of zipped equal-length axes: point i takes the i-th value of each.

  Args:
    **axes: name -> list or 1-D array of finite numbers, all of one length.

  Returns:
    A :class:`Grid` with as many points as each axis has values.

  Examples:
    >>> import regjax
    >>> len(regjax.zip_grid(lr=[0.1, 0.01], steps=[100, 1000]))
    2
  """
  if not axes:
    raise ValueError("`zip_grid` needs at least one axis, e.g. `zip_grid(lr=[0.1, 0.01])`.")
  return Grid(axes)


def as_grid(value: GridLike) -> Grid:
  """``value`` if it is a :class:`Grid`, else the cartesian product of the mapping's axes.

  Args:
    value: a :class:`Grid`, or a mapping name -> values taken as ``grid(**mapping)``.

  Returns:
    The grid.

  Raises:
    TypeError: ``value`` is neither.

  Examples:
    >>> from regjax.experiment.grids import as_grid
    >>> as_grid({"a": [1.0, 2.0], "b": [0.5]})
    Grid(2 points; axes a, b)
  """
  if isinstance(value, Grid):
    return value
  if not isinstance(value, Mapping):
    raise TypeError(f"`grid` must be a Grid or a mapping of axes, got {type(value).__name__}.")
  if not value:
    raise ValueError("`grid` needs at least one axis, e.g. `grid(l1=[1e-4, 1e-3])`.")
  grids = [Grid({name: values}) for name, values in value.items()]
  result = grids[0]
  for other in grids[1:]:
    result = result * other
  return result
