"""The embedded default data set (8x8 handwritten digits), MNIST-1D, and small generators.

The digits are the 1,797 images of the UCI "Optical Recognition of Handwritten Digits"
test set as distributed with scikit-learn (``sklearn.datasets.load_digits``): 8x8 grey
levels in 0..16, ten classes. They are stored in
``regjax/experiment/_data/digits.npz`` together with a fixed stratified split (1,437
train / 360 test indices, drawn once with
``sklearn.model_selection.train_test_split(test_size=360, stratify=labels,
random_state=0)`` and sorted), so every run and every machine sees the same split and
regjax needs no scikit-learn at run time.

MNIST-1D (:func:`load_mnist1d`) is generated on first use by the ``mnist1d`` package
(the ``regjax[mnist1d]`` extra) and kept in memory: 5,000 signals of length 40, ten
classes, harder than the digits (Greydanus reports about 32 % test accuracy for logistic
regression, 68 % for an MLP and 94 % for a CNN).

References:
  Alpaydin, Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning
  Repository, 1998.

  Greydanus, "Scaling down Deep Learning", arXiv:2011.14439, 2020.
"""

from __future__ import annotations

import functools
import random
from importlib import resources
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jax.typing import DTypeLike

from regjax import _checks
from regjax.typing import PRNGKey

__all__ = [
    "DIGITS_NUM_CLASSES",
    "DIGITS_SHAPE",
    "MNIST1D_LENGTH",
    "MNIST1D_NUM_CLASSES",
    "Dataset",
    "digits",
    "digits_split_indices",
    "from_arrays",
    "load_digits",
    "load_mnist1d",
    "make_classification_blobs",
    "make_sparse_regression",
]

DIGITS_SHAPE = (8, 8)
"""The shape of one embedded digit image (height, width); ``flatten=True`` gives 64 inputs."""
DIGITS_NUM_CLASSES = 10
"""The digits' classes, 0..9."""
_DIGITS_MAX = 16.0
_SPLITS = ("train", "test", "all")
_MNIST1D_SPLITS = ("train", "validation", "test", "all")
MNIST1D_LENGTH = 40
"""The length of one MNIST-1D signal (its inputs with ``flatten=True``)."""
MNIST1D_NUM_CLASSES = 10
"""MNIST-1D's classes, 0..9."""


class Dataset(NamedTuple):
  """A supervised data set held as JAX arrays.

  Attributes:
    inputs: features, shape ``(n, ...)``, floating point.
    labels: integer class labels (or float targets), shape ``(n,)``.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment.data import Dataset
    >>> data = Dataset(np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]))
    >>> data.inputs.shape, data[1].tolist()  # a NamedTuple: (inputs, labels)
    ((4, 3), [0, 1, 0, 1])
  """

  inputs: jax.Array | np.ndarray
  labels: jax.Array | np.ndarray


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> dict[str, np.ndarray]:
  path = resources.files("regjax.experiment").joinpath("_data").joinpath("digits.npz")
  with path.open("rb") as handle, np.load(handle) as archive:
    arrays = {name: np.array(archive[name]) for name in archive.files}
  for array in arrays.values():
    array.setflags(write=False)
  return arrays


def digits_split_indices(split: str) -> np.ndarray:
  """The fixed indices (into the 1,797 images) of ``split``: "train", "test" or "all".

  Examples:
    >>> from regjax.experiment.data import digits_split_indices
    >>> train, test = digits_split_indices("train"), digits_split_indices("test")
    >>> len(train), len(test), len(set(train.tolist()) & set(test.tolist()))
    (1437, 360, 0)
  """
  _checks.check_choice("split", split, _SPLITS)
  arrays = _digits_arrays()
  if split == "all":
    return np.arange(arrays["labels"].shape[0])
  return arrays[f"{split}_indices"].astype(np.int64)


def load_digits(
    split: str = "train",
    *,
    flatten: bool = True,
    dtype: DTypeLike = jnp.float32,
) -> Dataset:
  r"""Load the embedded 8x8 digits, scaled to [0, 1].

  .. math:: x = \text{pixel} / 16, \quad \text{pixel} \in \{0, \dots, 16\}

  Args:
    split: "train" (1,437 images), "test" (360 images) or "all" (1,797, in the original
      order). Every class appears in both splits; the split is fixed.
    flatten: if True the inputs have shape ``(n, 64)`` (for an MLP), otherwise
      ``(n, 8, 8, 1)``, NHWC, for a convolutional network.
    dtype: floating dtype of the inputs.

  Returns:
    A ``Dataset(inputs, labels)``; labels are int32 in 0..9.

  Examples:
    >>> from regjax.experiment import data
    >>> test = data.load_digits("test", flatten=False)
    >>> test.inputs.shape, test.labels.dtype, float(test.inputs.max())
    ((360, 8, 8, 1), dtype('int32'), 1.0)
  """
  _checks.check_choice("split", split, _SPLITS)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"`dtype` must be a floating dtype, got {dtype!r}.")
  arrays = _digits_arrays()
  indices = digits_split_indices(split)
  images = arrays["images"][indices].astype(np.float32) / _DIGITS_MAX
  shape = (indices.shape[0], -1) if flatten else (indices.shape[0], *DIGITS_SHAPE, 1)
  inputs = jnp.asarray(images.reshape(shape), dtype=dtype)
  labels = jnp.asarray(arrays["labels"][indices], dtype=jnp.int32)
  return Dataset(inputs, labels)


def digits(*, flatten: bool = True,
           dtype: DTypeLike = jnp.float32) -> tuple[Dataset, Dataset]:
  """The fixed (train, test) split of the embedded digits; see :func:`load_digits`.

  Examples:
    >>> from regjax.experiment import data
    >>> train, test = data.digits()
    >>> train.inputs.shape, test.inputs.shape
    ((1437, 64), (360, 64))
  """
  return (
      load_digits("train", flatten=flatten, dtype=dtype),
      load_digits("test", flatten=flatten, dtype=dtype),
  )


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, seed: int) -> dict[str, np.ndarray]:
  try:
    from mnist1d.data import get_dataset_args, make_dataset
  except ImportError as error:
    raise ImportError(
        "MNIST-1D needs the `mnist1d` package: `pip install 'regjax[mnist1d]'`.") from error
  args = get_dataset_args()
  args.num_samples, args.seed = num_samples, seed
  # The generator seeds NumPy's and Python's global generators; leave them as they were.
  numpy_state, python_state = np.random.get_state(), random.getstate()
  try:
    generated = make_dataset(args)
  finally:
    np.random.set_state(numpy_state)
    random.setstate(python_state)
  arrays = {"x": generated["x"], "y": generated["y"], "x_test": generated["x_test"],
            "y_test": generated["y_test"]}
  arrays = {name: np.array(value, np.float32 if name.startswith("x") else np.int32)
            for name, value in arrays.items()}
  for array in arrays.values():
    array.setflags(write=False)
  return arrays


def load_mnist1d(
    split: str = "train",
    *,
    validation_fraction: float = 0.0,
    validation_seed: int = 0,
    flatten: bool = True,
    num_samples: int = 5000,
    seed: int = 42,
    dtype: DTypeLike = jnp.float32,
) -> Dataset:
  r"""Load MNIST-1D (Greydanus 2020), generated offline by the ``mnist1d`` package.

  Each example is a length-40 signal: one of ten 1-D digit templates, padded, sheared,
  scaled, translated and given correlated and i.i.d. noise, then the whole set is
  standardised (:math:`x \leftarrow (x - \bar x) / s` with the mean and standard
  deviation over all values). With the defaults this is the paper's data set: 4,000
  training and 1,000 test signals (``train_split=0.8`` of ``num_samples``). The arrays are
  generated once per ``(num_samples, seed)`` and cached in memory; NumPy's and Python's
  global random states are restored afterwards.

  Args:
    split: "train", "validation", "test" or "all" (train then test, in that order).
      With ``validation_fraction > 0`` the paper's training part is split again,
      stratified by class (see :func:`from_arrays`): "train" is what remains and
      "validation" the held-out part; "all" always holds every signal.
    validation_fraction: share of the training signals held out for validation, in
      ``[0, 1)``; "validation" needs it ``> 0``.
    validation_seed: seed of that split (the same seed gives the same split).
    flatten: if True the inputs have shape ``(n, 40)``, otherwise ``(n, 40, 1)`` (NWC,
      for a 1-D convolution).
    num_samples: signals generated in total (the paper uses 5,000).
    seed: the generator's seed (42 in the paper).
    dtype: floating dtype of the inputs.

  Returns:
    A ``Dataset(inputs, labels)``; labels are int32 in 0..9.

  Raises:
    ImportError: if the ``mnist1d`` package is not installed.

  References:
    Greydanus, "Scaling down Deep Learning", arXiv:2011.14439, 2020.

  Examples:
    >>> from regjax.experiment import data
    >>> small = data.load_mnist1d("test", num_samples=100)  # the paper's set: the defaults
    >>> small.inputs.shape, small.labels.dtype
    ((20, 40), dtype('int32'))
  """
  _checks.check_choice("split", split, _MNIST1D_SPLITS)
  num_samples = _checks.check_int("num_samples", num_samples, low=20)
  seed = _checks.check_int("seed", seed, low=0)
  _checks.check_number_tree("validation_fraction", validation_fraction, low=0.0, high=1.0,
                            high_inclusive=False, allow_callable=False)
  if split == "validation" and validation_fraction == 0:
    raise ValueError("`split='validation'` needs `validation_fraction` > 0, e.g. 0.2.")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"`dtype` must be a floating dtype, got {dtype!r}.")
  arrays = _mnist1d_arrays(num_samples, seed)
  if split == "all":
    dataset = Dataset(np.concatenate([arrays["x"], arrays["x_test"]]),
                      np.concatenate([arrays["y"], arrays["y_test"]]))
  elif split == "test":
    dataset = Dataset(arrays["x_test"], arrays["y_test"])
  elif validation_fraction == 0:
    dataset = Dataset(arrays["x"], arrays["y"])
  else:
    train, validation = from_arrays(arrays["x"], arrays["y"],
                                    test_fraction=validation_fraction, seed=validation_seed)
    dataset = validation if split == "validation" else train
  inputs = np.asarray(dataset.inputs)
  shape = (inputs.shape[0], -1) if flatten else (inputs.shape[0], inputs.shape[1], 1)
  return Dataset(jnp.asarray(inputs.reshape(shape), dtype=dtype),
                 jnp.asarray(dataset.labels, dtype=jnp.int32))


def from_arrays(
    inputs: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
    dtype: DTypeLike = jnp.float32,
) -> tuple[Dataset, Dataset]:
  """Check user arrays and split them into (train, test) Datasets.

  With ``stratify`` each class is split separately, ``round(test_fraction * n_c)`` of its
  ``n_c`` examples going to the test set (at least one stays in train), so class
  proportions match across the splits. The permutation comes from
  ``numpy.random.default_rng(seed)``, so the same seed gives the same split.

  Args:
    inputs: array of shape ``(n, ...)`` with finite numbers.
    labels: integer array of shape ``(n,)`` with values >= 0.
    test_fraction: fraction of examples held out, in (0, 1).
    seed: seed of the split.
    stratify: split each class separately (True) or the whole set at once.
    dtype: floating dtype of the returned inputs.

  Returns:
    ``(train, test)``, two Datasets whose indices partition ``range(n)``; within each
    split the examples keep their original order.

  Examples:
    >>> import numpy as np
    >>> from regjax.experiment import data
    >>> labels = np.array([0] * 10 + [1] * 5)
    >>> train, test = data.from_arrays(np.arange(15.0)[:, None], labels, test_fraction=0.2)
    >>> np.bincount(train.labels).tolist(), np.bincount(test.labels).tolist()  # stratified
    ([8, 4], [2, 1])
  """
  x = np.asarray(inputs)
  y = np.asarray(labels)
  if x.ndim < 1 or x.shape[0] < 2:
    raise ValueError(f"`inputs` must have shape (n, ...) with n >= 2, got shape {x.shape}.")
  if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise TypeError(f"`inputs` must be numeric, got dtype {x.dtype}.")
  if not np.all(np.isfinite(x)):
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    raise ValueError(f"`inputs` must be finite, got {bad} NaN or infinite values.")
  if y.ndim != 1:
    raise ValueError(f"`labels` must be 1-D with shape (n,), got shape {y.shape}.")
  if y.shape[0] != x.shape[0]:
    raise ValueError(
        f"`inputs` and `labels` must have the same length, got {x.shape[0]} inputs and "
        f"{y.shape[0]} labels."
    )
  if not np.issubdtype(y.dtype, np.integer):
    raise TypeError(f"`labels` must be integers (class indices), got dtype {y.dtype}.")
  if np.any(y < 0):
    raise ValueError(f"`labels` must be >= 0, got min {y.min()}.")
  _checks.check_number_tree(
      "test_fraction", test_fraction, low=0.0, high=1.0, high_inclusive=False,
      allow_callable=False,
  )
  if test_fraction == 0:
    raise ValueError("`test_fraction` must be > 0, got 0.")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"`dtype` must be a floating dtype, got {dtype!r}.")

  rng = np.random.default_rng(seed)
  groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
  test_parts = []
  for group in groups:
    n_test = min(int(round(test_fraction * group.size)), group.size - 1)
    test_parts.append(rng.permutation(group)[:n_test])
  test_idx = np.sort(np.concatenate(test_parts))
  if test_idx.size == 0:
    raise ValueError(
        f"`test_fraction`={test_fraction} leaves the test set empty for {len(y)} examples; "
        "use a larger fraction or more data."
    )
  train_idx = np.setdiff1d(np.arange(len(y)), test_idx)

  def subset(idx: np.ndarray) -> Dataset:
    return Dataset(jnp.asarray(x[idx], dtype=dtype), jnp.asarray(y[idx], dtype=jnp.int32))

  return subset(train_idx), subset(test_idx)


def make_sparse_regression(
    key: PRNGKey,
    n_samples: int,
    n_features: int,
    n_informative: int,
    *,
    noise: float = 0.1,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""A linear regression problem whose true coefficients are sparse.

  .. math:: y = X \beta + \sigma \varepsilon, \quad X_{ij}, \varepsilon_i \sim N(0, 1)

  ``beta`` has ``n_informative`` non-zeros at random positions, each ``±U(1, 2)``, so the
  support is bounded away from zero (useful to test support recovery by the lasso).

  Args:
    key: a PRNG key.
    n_samples: rows of ``X``.
    n_features: columns of ``X``.
    n_informative: number of non-zero coefficients, at most ``n_features``.
    noise: standard deviation ``sigma`` of the additive noise, >= 0 (may be traced;
      then it is not checked).

  Returns:
    ``(X, y, true_coef)`` with shapes ``(n_samples, n_features)``, ``(n_samples,)`` and
    ``(n_features,)``, float32.

  Examples:
    >>> import jax, numpy as np
    >>> from regjax.experiment import data
    >>> x, y, coef = data.make_sparse_regression(jax.random.key(0), 20, 6, 2, noise=0.0)
    >>> x.shape, int(np.count_nonzero(coef)), np.allclose(np.asarray(x) @ np.asarray(coef), y)
    ((20, 6), 2, True)
  """
  n_samples = _checks.check_int("n_samples", n_samples)
  n_features = _checks.check_int("n_features", n_features)
  n_informative = _checks.check_int("n_informative", n_informative, low=0)
  if n_informative > n_features:
    raise ValueError(
        f"`n_informative` must be <= n_features={n_features}, got {n_informative}."
    )
  _checks.check_number_tree("noise", noise, allow_callable=False)
  key_x, key_pos, key_mag, key_sign, key_noise = jax.random.split(key, 5)
  x = jax.random.normal(key_x, (n_samples, n_features))
  support = jax.random.permutation(key_pos, n_features)[:n_informative]
  magnitude = jax.random.uniform(key_mag, (n_informative,), minval=1.0, maxval=2.0)
  sign = jax.random.rademacher(key_sign, (n_informative,), dtype=jnp.float32)
  coef = jnp.zeros((n_features,)).at[support].set(sign * magnitude)
  y = x @ coef + noise * jax.random.normal(key_noise, (n_samples,))
  return x, y, coef


def make_classification_blobs(
    key: PRNGKey,
    n_samples: int,
    n_features: int,
    n_classes: int,
    *,
    separation: float = 3.0,
) -> Dataset:
  r"""Gaussian blobs, one per class, with balanced classes.

  .. math:: x_i = \mu_{y_i} + \varepsilon_i, \quad
            \mu_c \sim N(0, s^2 I), \ \varepsilon_i \sim N(0, I)

  Labels are ``arange(n_samples) % n_classes`` shuffled, so class counts differ by at
  most one.

  Args:
    key: a PRNG key.
    n_samples: number of examples.
    n_features: input dimension.
    n_classes: number of classes, >= 2.
    separation: standard deviation ``s`` of the class centres, in units of the
      within-class standard deviation (larger is easier).

  Returns:
    A ``Dataset`` with float32 inputs ``(n_samples, n_features)`` and int32 labels.

  Examples:
    >>> import jax, numpy as np
    >>> from regjax.experiment import data
    >>> blobs = data.make_classification_blobs(jax.random.key(0), 9, 2, 3)
    >>> blobs.inputs.shape, np.bincount(blobs.labels).tolist()
    ((9, 2), [3, 3, 3])
  """
  n_samples = _checks.check_int("n_samples", n_samples)
  n_features = _checks.check_int("n_features", n_features)
  n_classes = _checks.check_int("n_classes", n_classes, low=2)
  _checks.check_number_tree("separation", separation, allow_callable=False)
  key_centres, key_labels, key_noise = jax.random.split(key, 3)
  centres = separation * jax.random.normal(key_centres, (n_classes, n_features))
  labels = jax.random.permutation(key_labels, jnp.arange(n_samples) % n_classes)
  inputs = centres[labels] + jax.random.normal(key_noise, (n_samples, n_features))
  return Dataset(inputs, labels.astype(jnp.int32))

