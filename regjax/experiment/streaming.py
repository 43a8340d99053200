"""Host-streamed training data for a :class:`regjax.Trainer` under a sweep.

When ``Trainer(train=...)`` is a stream of batches (pytrees of NumPy arrays with a
leading batch axis, from any loader: a generator, grain, tf.data), the sweep loop
(:mod:`regjax.experiment.loop`) runs each chunk of rows in segments:

1. Python reads the segment's batches from the stream and stacks them into one block
   ``[segment_steps, batch, ...]``, placed on the mesh *replicated* (not split by row);
2. one compiled ``jit(vmap(advance, in_axes=(0, 0, None)))`` scans over the block. The
   batch is not vmapped, so every grid point sees the same data in the same order, and
   XLA computes a first layer for all grid points as one matrix product;
3. dispatch is asynchronous: while the device trains on one block, Python reads and
   stacks the next.

A :class:`BatchStream` wraps the source. A re-iterable source (a zero-argument callable
returning an iterable, e.g. a generator function, or an iterable whose ``iter()`` starts
over: a list, most loaders) is read from the start by every chunk and every sweep. A
one-shot iterator (a generator *object*) is read once: it serves one sweep of one chunk
(its first batch may be peeked for shapes without being lost); a second pass raises a
``TypeError`` that says how to pass a re-iterable source. Exactly ``steps`` batches are
read per pass.

Examples:
  >>> from regjax.experiment.streaming import BatchStream
  >>> stream = BatchStream(iter([1, 2, 3]))  # a one-shot iterator
  >>> stream.first(), list(stream.iterate())
  (1, [1, 2, 3])
  >>> BatchStream(lambda: iter([1, 2])).one_shot
  False
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias, cast

from regjax.typing import PyTree

__all__ = ["BatchSource", "BatchStream", "is_stream"]

BatchSource: TypeAlias = Callable[[], Iterable[PyTree]] | Iterable[PyTree]
"""Host batches (pytrees of NumPy arrays with a leading batch axis): a zero-argument
callable returning an iterable of them (a generator function), an iterable whose ``iter()``
starts over (a list, most loaders), or a one-shot iterator (a generator object)."""


def is_stream(train: object) -> bool:
  """Whether ``train`` is a stream of batches (not a tuple/mapping of in-memory arrays).

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment.streaming import is_stream
    >>> is_stream((np.zeros((4, 2)), np.zeros(4))), is_stream(lambda: iter([]))
    (False, True)
  """
  if isinstance(train, (tuple, Mapping)):
    return False
  return callable(train) or isinstance(train, Iterable)


_UNREAD = object()


class BatchStream:
  """A source of host batches, re-iterable or one-shot, whose first batch can be peeked.

  Args:
    source: a zero-argument callable returning an iterable, an iterable whose ``iter()``
      starts over, or a one-shot iterator (read once).

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment.streaming import BatchStream
    >>> def batches():  # a generator function: every pass starts over
    ...   for i in range(3):
    ...     yield {"x": np.full((2, 4), i, np.float32)}
    >>> stream = BatchStream(batches)
    >>> stream.first()["x"].shape, [int(b["x"][0, 0]) for b in stream.iterate()]
    ((2, 4), [0, 1, 2])
    >>> once = BatchStream(batches())  # a generator object: one pass only
    >>> once.one_shot, len(list(once.iterate()))
    (True, 3)
  """

  def __init__(self, source: BatchSource):
    self._source = source
    self.one_shot = (not callable(source) and isinstance(source, Iterator)
                     and iter(source) is source)
    self._first: Any = _UNREAD
    self._pending: list[Any] = []  # a peeked batch of a one-shot source, not yet passed on
    self._read = False

  def _fresh(self) -> Iterator[Any]:
    return iter(self._source() if callable(self._source) else self._source)

  def iterate(self) -> Iterator[Any]:
    """A pass over the batches from the first one.

    Raises:
      TypeError: a one-shot iterator was already read.
    """
    if not self.one_shot:
      return self._fresh()
    if self._read:
      raise TypeError(
          "`train` is a one-shot iterator (e.g. a generator object) and was already read "
          "once; a second pass is needed (another chunk of rows, or another sweep). Pass a "
          "function returning it instead, e.g. `train=lambda: loader()`, so that every pass "
          "can start over.")
    self._read = True
    return self._one_pass()

  def _iterator(self) -> Iterator[PyTree]:
    """The one-shot source itself (``iter`` of an iterator is the iterator)."""
    return iter(cast("Iterable[PyTree]", self._source))

  def _one_pass(self) -> Iterator[Any]:
    pending, self._pending = self._pending, []
    for batch in itertools.chain(pending, self._iterator()):
      if self._first is _UNREAD:
        self._first = batch
      yield batch

  def first(self) -> Any:
    """The first batch, without using up a one-shot iterator."""
    if self._first is _UNREAD:
      if not self.one_shot:
        self._first = next(self._fresh(), None)
      else:
        self._first = next(self._iterator(), None)
        self._pending.append(self._first)
    if self._first is None:
      raise ValueError("`train` yielded no batch.")
    return self._first
