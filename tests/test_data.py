"""Tests for regjax.data: the embedded digits, their fixed split, loaders and generators."""

import hashlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import datasets

from regjax import data

# sha256 of the sorted split indices as int64, recorded when digits.npz was made; a change
# here means the committed split changed.
TRAIN_SHA256 = "0c70dbb57fea58b52b9e4f71161fe6d9526b630e6eb7fa7b805a4886b9c5dc86"
TEST_SHA256 = "2fbaae31b8c6aad12464a07771b64269876d904bfed86f77a63c8265fa201621"


def _sha(indices):
  return hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def sklearn_digits():
  return datasets.load_digits()


def test_split_sizes_and_partition():
  train, test = data.digits_split_indices("train"), data.digits_split_indices("test")
  assert (train.size, test.size) == (1437, 360)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
  assert np.intersect1d(train, test).size == 0


def test_split_is_the_committed_one():
  assert _sha(data.digits_split_indices("train")) == TRAIN_SHA256
  assert _sha(data.digits_split_indices("test")) == TEST_SHA256
  assert int(data.digits_split_indices("train").sum()) == 1275762
  assert int(data.digits_split_indices("test").sum()) == 337944


def test_split_is_stratified():
  labels = data.load_digits("all").labels
  for split, n in (("train", 1437), ("test", 360)):
    counts = np.bincount(np.asarray(data.load_digits(split).labels), minlength=10)
    assert counts.sum() == n and np.all(counts > 0)
    # Stratified: every class share within one example of the overall share.
    overall = np.bincount(np.asarray(labels), minlength=10) / 1797
    assert np.all(np.abs(counts - overall * n) <= 1.0)


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_images_equal_sklearn_at_stored_indices(sklearn_digits, split):
  indices = data.digits_split_indices(split)
  ds = data.load_digits(split, flatten=False)
  assert ds.inputs.shape == (indices.size, 8, 8, 1)
  np.testing.assert_array_equal(np.asarray(ds.inputs[..., 0]) * 16,
                                sklearn_digits.images[indices])
  np.testing.assert_array_equal(np.asarray(ds.labels), sklearn_digits.target[indices])


def test_flatten_is_row_major_reshape_and_pixels_in_unit_interval():
  flat = data.load_digits("test")
  image = data.load_digits("test", flatten=False)
  assert flat.inputs.shape == (360, 64) and flat.inputs.dtype == jnp.float32
  assert flat.labels.dtype == jnp.int32
  np.testing.assert_array_equal(flat.inputs, image.inputs.reshape(360, 64))
  assert float(flat.inputs.min()) == 0.0 and float(flat.inputs.max()) == 1.0
  # Pixels are k / 16 for integer k.
  np.testing.assert_array_equal(flat.inputs * 16, jnp.round(flat.inputs * 16))


def test_digits_pair_and_dtype():
  train, test = data.digits(dtype=jnp.bfloat16)
  assert train.inputs.dtype == jnp.bfloat16 and test.inputs.shape == (360, 64)


def test_package_data_file_is_small():
  path = pathlib.Path(data.__file__).parent / "_data" / "digits.npz"
  assert path.stat().st_size < 100_000


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"split": "valid"}, ValueError, "`split`"),
        ({"dtype": jnp.int32}, TypeError, "`dtype`"),
    ],
)
def test_load_digits_errors(kwargs, error, match):
  with pytest.raises(error, match=match):
    data.load_digits(**kwargs)


def test_from_arrays_stratified_split_partitions_and_is_reproducible():
  x = np.arange(40, dtype=np.float64).reshape(20, 2)
  y = np.repeat(np.arange(4), 5)
  train, test = data.from_arrays(x, y, test_fraction=0.2, seed=3)
  # round(0.2 * 5) = 1 test example per class.
  np.testing.assert_array_equal(np.bincount(np.asarray(test.labels)), [1, 1, 1, 1])
  np.testing.assert_array_equal(np.bincount(np.asarray(train.labels)), [4, 4, 4, 4])
  rows = np.concatenate([np.asarray(train.inputs[:, 0]), np.asarray(test.inputs[:, 0])]) / 2
  np.testing.assert_array_equal(np.sort(rows), np.arange(20))
  # The label still belongs to its row: row r has label r // 5.
  np.testing.assert_array_equal(np.asarray(test.inputs[:, 0]) // 10, np.asarray(test.labels))
  again = data.from_arrays(x, y, test_fraction=0.2, seed=3)[1]
  np.testing.assert_array_equal(again.inputs, test.inputs)
  assert train.inputs.dtype == jnp.float32 and train.labels.dtype == jnp.int32


def test_from_arrays_unstratified_size():
  x, y = np.zeros((10, 3)), np.zeros(10, np.int64)
  train, test = data.from_arrays(x, y, test_fraction=0.3, stratify=False)
  assert (train.inputs.shape[0], test.inputs.shape[0]) == (7, 3)


@pytest.mark.parametrize(
    ("inputs", "labels", "kwargs", "error", "match"),
    [
        (np.zeros((5, 2)), np.zeros(4, int), {}, ValueError, "same length"),
        (np.zeros((5, 2)), np.zeros(5), {}, TypeError, "`labels` must be integers"),
        (np.zeros((5, 2)), np.zeros((5, 1), int), {}, ValueError, "`labels` must be 1-D"),
        (np.full((5, 2), np.nan), np.zeros(5, int), {}, ValueError, "`inputs` must be finite"),
        (np.zeros((5, 2)), -np.ones(5, int), {}, ValueError, "`labels` must be >= 0"),
        (np.array(["a"] * 5), np.zeros(5, int), {}, TypeError, "`inputs` must be numeric"),
        (np.zeros((1, 2)), np.zeros(1, int), {}, ValueError, "n >= 2"),
        (np.zeros((5, 2)), np.zeros(5, int), {"test_fraction": 1.0}, ValueError,
         "`test_fraction`"),
        (np.zeros((5, 2)), np.zeros(5, int), {"test_fraction": 0.0}, ValueError,
         "`test_fraction`"),
        (np.zeros((5, 2)), np.zeros(5, int), {"test_fraction": 0.01}, ValueError,
         "test set empty"),
    ],
)
def test_from_arrays_errors(inputs, labels, kwargs, error, match):
  with pytest.raises(error, match=match):
    data.from_arrays(inputs, labels, **kwargs)


def test_sparse_regression_support_and_noise_free_fit():
  x, y, coef = data.make_sparse_regression(jax.random.key(0), 50, 12, 4, noise=0.0)
  assert x.shape == (50, 12) and y.shape == (50,) and coef.shape == (12,)
  assert int(jnp.count_nonzero(coef)) == 4
  nonzero = jnp.abs(coef[coef != 0])
  assert bool(jnp.all((nonzero >= 1.0) & (nonzero <= 2.0)))
  np.testing.assert_allclose(y, x @ coef, rtol=1e-6, atol=1e-6)
  # Least squares on noise-free data recovers the coefficients.
  solution = jnp.linalg.lstsq(x, y)[0]
  np.testing.assert_allclose(solution, coef, atol=1e-4)


def test_sparse_regression_noise_level_and_vmap_over_keys():
  keys = jax.random.split(jax.random.key(1), 4)
  make = jax.vmap(lambda k: data.make_sparse_regression(k, 2000, 5, 2, noise=0.5))
  x, y, coef = make(keys)
  assert x.shape == (4, 2000, 5)
  residual = y - jnp.einsum("bnf,bf->bn", x, coef)
  np.testing.assert_allclose(jnp.std(residual, axis=1), 0.5, rtol=0.06)
  assert not np.allclose(coef[0], coef[1])


def test_classification_blobs_balanced_and_separable():
  ds = data.make_classification_blobs(jax.random.key(0), 30, 4, 3, separation=20.0)
  np.testing.assert_array_equal(np.bincount(np.asarray(ds.labels)), [10, 10, 10])
  # Far-apart centres: nearest class mean classifies every point.
  means = jnp.stack([ds.inputs[ds.labels == c].mean(0) for c in range(3)])
  distances = jnp.sum((ds.inputs[:, None, :] - means[None]) ** 2, axis=-1)
  np.testing.assert_array_equal(jnp.argmin(distances, axis=1), ds.labels)


@pytest.mark.parametrize(
    ("fn", "args", "error", "match"),
    [
        (data.make_sparse_regression, (10, 5, 6), ValueError, "`n_informative`"),
        (data.make_sparse_regression, (0, 5, 2), ValueError, "`n_samples`"),
        (data.make_sparse_regression, (10.0, 5, 2), TypeError, "`n_samples`"),
        (data.make_classification_blobs, (10, 2, 1), ValueError, "`n_classes`"),
    ],
)
def test_generator_errors(fn, args, error, match):
  with pytest.raises(error, match=match):
    fn(jax.random.key(0), *args)


def test_sparse_regression_negative_noise_error():
  with pytest.raises(ValueError, match="`noise`"):
    data.make_sparse_regression(jax.random.key(0), 10, 5, 2, noise=-1.0)
