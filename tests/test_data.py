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


# ----------------------------------------------------------------------------- MNIST-1D

mnist1d = pytest.importorskip("mnist1d")


def test_mnist1d_has_the_papers_shapes_and_classes():
  train, test = data.load_mnist1d("train"), data.load_mnist1d("test")
  assert train.inputs.shape == (4000, data.MNIST1D_LENGTH)
  assert test.inputs.shape == (1000, data.MNIST1D_LENGTH)
  assert train.inputs.dtype == jnp.float32 and train.labels.dtype == jnp.int32
  # 500 signals per class, shuffled before the 4,000 / 1,000 cut.
  counts = np.bincount(np.asarray(train.labels), minlength=10) + np.bincount(
      np.asarray(test.labels), minlength=10)
  np.testing.assert_array_equal(counts, np.full(10, 500))
  everything = np.asarray(data.load_mnist1d("all").inputs, np.float64)
  # Standardised over the whole set by the generator.
  np.testing.assert_allclose([everything.mean(), everything.std()], [0.0, 1.0], atol=1e-5)
  assert data.load_mnist1d("test", flatten=False).inputs.shape == (1000, 40, 1)


def test_mnist1d_equals_the_generator_and_keeps_global_random_state():
  from mnist1d.data import get_dataset_args, make_dataset

  state = np.random.get_state()
  ours = data.load_mnist1d("test")
  assert np.random.get_state()[2] == state[2]
  np.testing.assert_array_equal(np.random.get_state()[1], state[1])
  reference = make_dataset(get_dataset_args())
  np.testing.assert_allclose(np.asarray(ours.inputs), reference["x_test"], rtol=1e-6,
                             atol=1e-6)
  np.testing.assert_array_equal(np.asarray(ours.labels), reference["y_test"])


def test_mnist1d_validation_split_partitions_the_training_signals():
  full = data.load_mnist1d("train")
  train = data.load_mnist1d("train", validation_fraction=0.25)
  val = data.load_mnist1d("validation", validation_fraction=0.25)
  # Stratified: round(25 %) of each class, and the rows are the training rows.
  per_class = np.bincount(np.asarray(full.labels), minlength=10)
  held = int(np.round(0.25 * per_class).sum())
  assert abs(held - 1000) <= 5
  assert (len(train.labels), len(val.labels)) == (4000 - held, held)
  np.testing.assert_array_equal(np.bincount(np.asarray(val.labels), minlength=10),
                                np.round(0.25 * per_class))
  rows = {row.tobytes() for row in np.asarray(full.inputs)}
  union = np.concatenate([np.asarray(train.inputs), np.asarray(val.inputs)])
  assert {row.tobytes() for row in union} == rows and len(union) == len(rows)
  again = data.load_mnist1d("validation", validation_fraction=0.25)
  np.testing.assert_array_equal(np.asarray(again.inputs), np.asarray(val.inputs))
  other = data.load_mnist1d("validation", validation_fraction=0.25, validation_seed=1)
  assert not np.array_equal(np.asarray(other.labels), np.asarray(val.labels))


def test_mnist1d_is_deterministic_per_seed():
  a = data.load_mnist1d("train", num_samples=200, seed=3)
  b = data.load_mnist1d("train", num_samples=200, seed=3)
  c = data.load_mnist1d("train", num_samples=200, seed=4)
  assert a.inputs.shape == (160, 40)
  np.testing.assert_array_equal(np.asarray(a.inputs), np.asarray(b.inputs))
  assert not np.allclose(np.asarray(a.inputs), np.asarray(c.inputs))


def test_mnist1d_logistic_regression_is_near_the_papers_32_percent():
  # Greydanus (2020) reports about 32 % test accuracy for logistic regression.
  from sklearn.linear_model import LogisticRegression

  train, test = data.load_mnist1d("train"), data.load_mnist1d("test")
  model = LogisticRegression(max_iter=2000).fit(np.asarray(train.inputs),
                                                np.asarray(train.labels))
  accuracy = model.score(np.asarray(test.inputs), np.asarray(test.labels))
  assert 0.25 <= accuracy <= 0.40


@pytest.mark.parametrize("kwargs, error", [
    (dict(split="val"), ValueError),
    (dict(split="validation"), ValueError),
    (dict(validation_fraction=1.0), ValueError),
    (dict(num_samples=10), ValueError),
    (dict(num_samples=100.0), TypeError),
    (dict(dtype=jnp.int32), TypeError),
])
def test_mnist1d_bad_arguments(kwargs, error):
  with pytest.raises(error, match=next(iter(kwargs))):
    data.load_mnist1d(**kwargs)
