r"""Penalty functions ``R(x) -> scalar``, unscaled: the caller multiplies by the strength.

Conventions: no ½ in front of squared terms, so ``l2_squared(w) = Σ w²`` and a loss
``L + λ·l2_squared(w)`` has gradient ``∇L + 2λw`` (the convention of the seed notes).
Each penalty ``NAME`` here has a proximal operator ``regjax.prox.NAME`` for the same ``R``.

The orthogonality family works on a matrix or a conv kernel, viewed as
:math:`W \in \mathbb{R}^{n \times m}` with ``n = fan_in`` (all leading axes flattened) and
``m = fan_out``. ``mode="columns"`` compares the ``m`` output units (Gram
:math:`W^\top W`, ``m × m``), ``mode="rows"`` the ``n`` input rows (Gram :math:`W W^\top`),
and ``mode="auto"`` builds whichever Gram is smaller. For the soft and spectral kinds the
two sides share their nonzero eigenvalues: the larger Gram minus ``I`` has ``|n − m|``
extra eigenvalues ``−1``. So ``soft`` differs by the constant ``|n − m|`` and has the same
gradient, and ``spectral`` agrees whenever :math:`\sigma_{\max} \ge 1`. ``auto``
therefore gives the same gradient at a fraction of the cost. Grams are accumulated in at
least float32. These functions apply to activations as well as weights (embedding regularization).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from regjax import _checks, _trees
from regjax.prox import Axis, _group_axes, _group_norm, as_matrix
from regjax.typing import Mask, Params, Strength

__all__ = [
    "MODES",
    "ORTHOGONALITY",
    "decorrelation",
    "double_soft_orthogonality",
    "elastic_net",
    "gram",
    "group_l2",
    "l1",
    "l2_squared",
    "mutual_coherence",
    "power_iteration",
    "soft_orthogonality",
    "spectral_orthogonality",
    "spectral_vector",
    "tree_penalty",
]

MODES = ("auto", "rows", "columns")
"""The sides an orthogonality penalty compares: ``mode`` is one of these."""


@jax.custom_jvp
def _abs(x: jax.Array) -> jax.Array:
  return jnp.abs(x)


@_abs.defjvp
def _abs_jvp(primals, tangents):
  # jax.grad(jnp.abs)(0.0) is 1; the subgradient convention of the L1 literature is 0.
  (x,), (dx,) = primals, tangents
  return jnp.abs(x), jnp.sign(x) * dx


def l1(x: ArrayLike) -> jax.Array:
  r"""L1 norm :math:`\|x\|_1 = \sum_i |x_i|`.

  Its gradient is :math:`\operatorname{sign}(x)`, **0 at 0** (the minimum-norm
  subgradient), so a weight that is exactly zero stays there under a pure penalty step.

  References:
    Tibshirani, "Regression shrinkage and selection via the lasso", J. R. Stat.
    Soc. B, 1996.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> float(l1(jnp.array([1.0, -2.0])))
    3.0
    >>> jax.grad(l1)(jnp.array([0.0, -2.0]))  # 0 at 0, not jnp.abs's 1
    Array([ 0., -1.], dtype=float32)
  """
  return jnp.sum(_abs(jnp.asarray(x)))


def l2_squared(x: ArrayLike) -> jax.Array:
  r"""Squared L2 (Frobenius) norm :math:`\|x\|_2^2 = \sum_i x_i^2` (no ½).

  References:
    Hoerl & Kennard, "Ridge regression", Technometrics, 1970; Krogh & Hertz,
    "A simple weight decay can improve generalization", NeurIPS 1991.

  Examples:
    >>> import jax.numpy as jnp
    >>> float(l2_squared(jnp.array([[1.0, -2.0], [0.0, 3.0]])))  # 1 + 4 + 9
    14.0
  """
  return jnp.sum(jnp.square(jnp.asarray(x)))


def elastic_net(x: ArrayLike, l2_weight: ArrayLike = 1.0) -> jax.Array:
  r"""Elastic net :math:`\|x\|_1 + w \|x\|_2^2`.

  Args:
    x: input array.
    l2_weight: :math:`w`, the ratio of the L2 to the L1 strength.

  Returns:
    A scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> float(elastic_net(jnp.array([1.0, -2.0]), l2_weight=0.5))  # 3 + 0.5 * 5
    5.5

  References:
    Zou & Hastie, "Regularization and variable selection via the elastic net", 2005.
  """
  weight = _checks.nonnegative("l2_weight", l2_weight)
  if jnp.ndim(weight) != 0:
    raise ValueError(f"`l2_weight` must be a scalar, got shape {jnp.shape(weight)}.")
  return l1(x) + weight * l2_squared(x)


def group_l2(x: ArrayLike, axis: Axis = None) -> jax.Array:
  r"""Group lasso :math:`\sum_g \|x_g\|_2`, groups spanning ``axis``.

  Args:
    x: input array.
    axis: the axes one group spans; ``None`` means all but the last (one group per output
      unit in Flax's ``(fan_in, fan_out)`` layout).

  Returns:
    A scalar, with a finite gradient at zero groups.

  References:
    Yuan & Lin, "Model selection and estimation in regression with grouped
    variables", J. R. Stat. Soc. B, 2006; Scardapane et al., "Group sparse
    regularization for deep neural networks", Neurocomputing, 2017.

  Examples:
    One group per column by default (norms 5 and 0); ``axis=1`` groups the rows (3 + 4):

    >>> import jax.numpy as jnp
    >>> kernel = jnp.array([[3.0, 0.0], [4.0, 0.0]])
    >>> float(group_l2(kernel)), float(group_l2(kernel, axis=1))
    (5.0, 7.0)
  """
  x = jnp.asarray(x)
  norm, _ = _group_norm(x, _group_axes(x, axis))
  return jnp.sum(norm)


def _side(matrix: jax.Array, mode: str) -> str:
  _checks.check_choice("mode", mode, MODES)
  if mode != "auto":
    return mode
  return "columns" if matrix.shape[1] <= matrix.shape[0] else "rows"


def gram(x: ArrayLike, mode: str = "auto") -> jax.Array:
  r"""Gram matrix of a kernel: :math:`W^\top W` (columns) or :math:`W W^\top` (rows).

  Computed in at least float32 so that bfloat16/float16 weights do not lose the
  off-diagonal entries to rounding.

  Args:
    x: a matrix or a conv kernel ``(..., fan_in, fan_out)``.
    mode: ``"columns"``, ``"rows"`` or ``"auto"`` (the smaller Gram).

  Returns:
    A square matrix in ``promote(dtype, float32)``.

  References:
    Bansal, Chen & Wang, "Can we gain more from orthogonality regularizations in
    training deep CNNs?", NeurIPS 2018.

  Examples:
    A ``3 × 2`` kernel: ``"auto"`` builds the ``2 × 2`` Gram of its columns.

    >>> import jax.numpy as jnp
    >>> w = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> gram(w)
    Array([[35., 44.],
           [44., 56.]], dtype=float32)
    >>> gram(w, "rows").shape
    (3, 3)
  """
  matrix = as_matrix(jnp.asarray(x))
  matrix = matrix.astype(jnp.promote_types(matrix.dtype, jnp.float32))
  if _side(matrix, mode) == "columns":
    return matrix.T @ matrix
  return matrix @ matrix.T


def _gram_minus_identity(x: ArrayLike, mode: str) -> jax.Array:
  g = gram(x, mode)
  return g - jnp.eye(g.shape[0], dtype=g.dtype)


def _working_matrix(x: ArrayLike, mode: str) -> tuple[jax.Array, str]:
  matrix = as_matrix(jnp.asarray(x))
  return matrix.astype(jnp.promote_types(matrix.dtype, jnp.float32)), _side(matrix, mode)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _soft_orthogonality(matrix: jax.Array, side: str) -> jax.Array:
  return jnp.sum(jnp.square(_gram_minus_identity(matrix, side)))


@_soft_orthogonality.defjvp
def _soft_orthogonality_jvp(side, primals, tangents):
  # The closed form 4 W (WᵀW − I) takes two matrix products; autodiff of the sum of
  # squares takes three.
  (matrix,), (tangent,) = primals, tangents
  residual = _gram_minus_identity(matrix, side)
  gradient = 4 * (matrix @ residual if side == "columns" else residual @ matrix)
  return jnp.sum(jnp.square(residual)), jnp.sum(gradient * tangent)


def soft_orthogonality(x: ArrayLike, mode: str = "auto") -> jax.Array:
  r"""Soft orthogonality :math:`\|W^\top W - I\|_F^2` (or :math:`\|W W^\top - I\|_F^2`).

  Its gradient is the closed form :math:`4 W (W^\top W - I)` (or
  :math:`4 (W W^\top - I) W`), two matrix products.

  Args:
    x: a matrix or a conv kernel ``(..., fan_in, fan_out)``.
    mode: ``"columns"``, ``"rows"`` or ``"auto"``; see the module docstring.

  Returns:
    A float32 (or wider) scalar.

  Examples:
    ``jnp.eye(3, 2)`` has orthonormal columns; its rows' Gram ``diag(1, 1, 0)`` misses
    ``I`` by one (the ``|n − m|`` of the module docstring). ``2·I`` gives
    :math:`\|3 I\|_F^2 = 18`.

    >>> import jax.numpy as jnp
    >>> w = jnp.eye(3, 2)
    >>> float(soft_orthogonality(w)), float(soft_orthogonality(w, "rows"))
    (0.0, 1.0)
    >>> float(soft_orthogonality(2 * jnp.eye(2)))
    18.0

  References:
    Xie, Xiong & Pu, "All you need is beyond a good init", CVPR 2017;
    Bansal, Chen & Wang, "Can we gain more from orthogonality regularizations in training
    deep CNNs?", NeurIPS 2018.
  """
  return _soft_orthogonality(*_working_matrix(x, mode))


def double_soft_orthogonality(x: ArrayLike) -> jax.Array:
  r"""Double soft orthogonality :math:`\|W^\top W - I\|_F^2 + \|W W^\top - I\|_F^2`.

  Both sides by definition, so it takes no ``mode``.

  Args:
    x: a matrix or a conv kernel ``(..., fan_in, fan_out)``.

  Returns:
    A float32 (or wider) scalar.

  Examples:
    Orthonormal columns still pay for the rows (0 + 1):

    >>> import jax.numpy as jnp
    >>> float(double_soft_orthogonality(jnp.eye(3, 2)))
    1.0

  References:
    Bansal, Chen & Wang, NeurIPS 2018.
  """
  return soft_orthogonality(x, "columns") + soft_orthogonality(x, "rows")


def decorrelation(x: ArrayLike, mode: str = "auto") -> jax.Array:
  r"""Sum of squared off-diagonal cosines :math:`\sum_{i \ne j} (\hat w_i^\top \hat w_j)^2`.

  :math:`\hat w_i` are the unit-normalized columns (``mode="columns"``) or rows; only the
  correlation between vectors is penalized, not their lengths. A zero vector contributes
  nothing.

  Args:
    x: a matrix or a conv kernel.
    mode: ``"columns"``, ``"rows"`` or ``"auto"`` (the fewer vectors).

  Returns:
    A scalar.

  Examples:
    The columns ``(1, 0, 0, 0)`` and ``(1, 1, 1, 1)`` have cosine 1/2, counted for
    ``(i, j)`` and ``(j, i)``; scaling a column changes nothing:

    >>> import jax.numpy as jnp
    >>> w = jnp.array([[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    >>> float(decorrelation(w)), float(decorrelation(w * jnp.array([[1.0, 2.0]])))
    (0.5, 0.5)

  References:
    Cogswell et al., "Reducing overfitting in deep networks by decorrelating
    representations" (DeCov), ICLR 2016; Rodríguez et al., "Regularizing CNNs with locally
    constrained decorrelations", ICLR 2017.
  """
  g = gram(x, mode)
  diagonal = jnp.diagonal(g)
  positive = diagonal > 0
  inverse_norm = jnp.where(positive, 1 / jnp.sqrt(jnp.where(positive, diagonal, 1)), 0)
  cosines = g * inverse_norm[:, None] * inverse_norm[None, :]
  off_diagonal = cosines * (1 - jnp.eye(g.shape[0], dtype=g.dtype))
  return jnp.sum(jnp.square(off_diagonal))


def mutual_coherence(x: ArrayLike, mode: str = "auto") -> jax.Array:
  r"""Mutual coherence :math:`\|W^\top W - I\|_\infty = \max_{ij} |(W^\top W - I)_{ij}|`.

  Args:
    x: a matrix or a conv kernel ``(..., fan_in, fan_out)``.
    mode: ``"columns"``, ``"rows"`` or ``"auto"``; see the module docstring.

  Returns:
    A float32 (or wider) scalar.

  Examples:
    The columns' inner product 0.5 is the largest entry of
    :math:`W^\top W - I = \begin{pmatrix} 0 & 0.5 \\ 0.5 & 0.25 \end{pmatrix}`:

    >>> import jax.numpy as jnp
    >>> float(mutual_coherence(jnp.array([[1.0, 0.5], [0.0, 1.0]])))
    0.5

  References:
    Bansal, Chen & Wang, NeurIPS 2018 (the MC regularizer).
  """
  return jnp.max(jnp.abs(_gram_minus_identity(x, mode)))


def _power_iterate(
    matvec: Callable[[jax.Array], jax.Array], vector: jax.Array, num_iterations: int
) -> jax.Array:
  def step(v, _):
    w = matvec(v)
    return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(w.dtype).tiny), None

  v = vector / jnp.maximum(jnp.linalg.norm(vector), jnp.finfo(vector.dtype).tiny)
  return jax.lax.scan(step, v, None, length=num_iterations)[0]


def power_iteration(
    matrix: jax.Array, vector: jax.Array, num_iterations: int = 1
) -> tuple[jax.Array, jax.Array]:
  r"""Power iteration for the largest-magnitude eigenpair of a symmetric matrix.

  Args:
    matrix: a symmetric matrix :math:`A`.
    vector: the starting vector (need not be normalized; must not be orthogonal to the top
      eigenvector).
    num_iterations: how many products :math:`v \leftarrow Av/\|Av\|`.

  Returns:
    ``(sigma, v)``: the estimate :math:`|v^\top A v|` of :math:`\sigma_{\max}(A)` and the
    unit vector after the iterations.

  References:
    Golub & Van Loan, "Matrix Computations", 4th ed., 2013, §8.2 (the power
    method); Miyato et al., "Spectral normalization for generative
    adversarial networks", ICLR 2018.

  Examples:
    >>> import jax.numpy as jnp
    >>> a = jnp.array([[3.0, 0.0], [0.0, 0.0]])
    >>> sigma, v = power_iteration(a, jnp.array([1.0, 0.5]), num_iterations=20)
    >>> float(sigma), v
    (3.0, Array([1., 0.], dtype=float32))
  """
  matrix = jnp.asarray(matrix)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
    raise ValueError(f"`matrix` must be a square matrix, got shape {matrix.shape}.")
  vector = _start_vector(vector, matrix.shape[0], matrix.dtype)
  num_iterations = _checks.check_int("num_iterations", num_iterations, low=0)
  v = _power_iterate(lambda u: matrix @ u, vector, num_iterations)
  return jnp.abs(v @ matrix @ v), v


def _start_vector(vector: ArrayLike, size: int, dtype: Any) -> jax.Array:
  """``vector`` as a ``(size,)`` array of ``dtype``, or a ``ValueError`` naming it."""
  vector = jnp.asarray(vector)
  if vector.shape != (size,):
    raise ValueError(
        f"`vector` must have shape ({size},) (the side of the Gram matrix), got "
        f"{vector.shape}.")
  return vector.astype(dtype)


def _gram_side_matvec(matrix: jax.Array, side: str) -> Callable[[jax.Array], jax.Array]:
  # (WᵀW − I) v as two matrix-vector products: the Gram is never formed.
  if side == "columns":
    return lambda v: matrix.T @ (matrix @ v) - v
  return lambda v: matrix @ (matrix.T @ v) - v


def spectral_vector(
    x: ArrayLike, vector: ArrayLike, mode: str = "auto", num_iterations: int = 1
) -> jax.Array:
  r"""Advances a power-iteration vector for :math:`W^\top W - I` without forming the Gram.

  Each iteration is :math:`v \leftarrow (W^\top (W v) - v) / \|\cdot\|`: two
  matrix-vector products, :math:`O(nm)` instead of the Gram's :math:`O(nm^2)`.

  Args:
    x: a matrix or a conv kernel.
    vector: the current vector, of the Gram's size (``fan_out`` for ``"columns"``).
    mode: ``"columns"``, ``"rows"`` or ``"auto"``.
    num_iterations: power-iteration steps.

  Returns:
    The unit vector after the iterations, in the Gram's dtype (float32 or wider).

  References:
    Yoshida & Miyato, "Spectral norm regularization for improving the
    generalizability of deep learning", 2017; Miyato et al., ICLR 2018.

  Examples:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # WᵀW − I = diag(3, 0)
    >>> spectral_vector(w, jnp.array([1.0, 0.5]), num_iterations=20)
    Array([1., 0.], dtype=float32)
  """
  matrix, side = _working_matrix(jax.lax.stop_gradient(x), mode)
  size = matrix.shape[1] if side == "columns" else matrix.shape[0]
  start = _start_vector(vector, size, matrix.dtype)
  num_iterations = _checks.check_int("num_iterations", num_iterations, low=0)
  return _power_iterate(_gram_side_matvec(matrix, side), start, num_iterations)


def spectral_orthogonality(
    x: ArrayLike,
    mode: str = "auto",
    num_iterations: int = 20,
    vector: ArrayLike | None = None,
) -> jax.Array:
  r"""Spectral restricted isometry (SRIP) :math:`\sigma_{\max}(W^\top W - I)`.

  Estimated by ``num_iterations`` steps of power iteration on the symmetric matrix
  :math:`A = W^\top W - I` (matrix-vector products only, no Gram and no SVD), as
  :math:`|v^\top A v| = |\|W v\|^2 - \|v\|^2|`. The gradient treats the iterate
  :math:`v` as fixed, which is the exact gradient once :math:`v` has converged:
  :math:`\pm 2 (W v) v^\top`, an outer product. :func:`regjax.transforms.orthogonality`
  keeps ``v`` in its state and advances it with :func:`spectral_vector` each step.

  Args:
    x: a matrix or a conv kernel.
    mode: ``"columns"``, ``"rows"`` or ``"auto"``; see the module docstring.
    num_iterations: power-iteration steps.
    vector: starting vector of the Gram's size; defaults to all ones.

  Returns:
    A scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> float(spectral_orthogonality(jnp.array([[2.0, 0.0], [0.0, 1.0]])))  # σmax(diag(3, 0))
    3.0

  References:
    Bansal, Chen & Wang, NeurIPS 2018 (SRIP).
  """
  matrix, side = _working_matrix(x, mode)
  size = matrix.shape[1] if side == "columns" else matrix.shape[0]
  start = jnp.ones(size, matrix.dtype) if vector is None else vector
  v = spectral_vector(matrix, start, side, num_iterations)
  image = matrix @ v if side == "columns" else matrix.T @ v
  return jnp.abs(jnp.sum(jnp.square(image)) - jnp.sum(jnp.square(v)))


ORTHOGONALITY: dict[str, Callable[..., jax.Array]] = {
    "soft": soft_orthogonality,
    "double_soft": double_soft_orthogonality,
    "decorrelation": decorrelation,
    "mutual_coherence": mutual_coherence,
    "spectral": spectral_orthogonality,
}
"""The orthogonality family by ``kind`` (:func:`regjax.orthogonality`'s names)."""


def _scalar_strength(value: Any) -> Any:
  value = _checks.nonnegative("strength", value)
  if jnp.ndim(value) != 0:
    raise ValueError(
        f"`strength` must hold one scalar per leaf (the penalty is a scalar), got shape "
        f"{jnp.shape(value)}.")
  return value


def tree_penalty(
    penalty: Callable[[jax.Array], jax.Array],
    tree: Params,
    strength: Strength = 1.0,
    mask: Mask = None,
) -> jax.Array:
  r"""Sum of ``strength_leaf · penalty(leaf)`` over the leaves a mask selects.

  .. math:: \sum_{\ell \in \text{mask}} \lambda_\ell R(x_\ell)

  Args:
    penalty: a function ``array -> scalar`` (e.g. :func:`l1`, or
      ``functools.partial(soft_orthogonality, mode="columns")``).
    tree: a pytree of arrays (parameters or activations).
    strength: a scalar (possibly traced) or a pytree with one scalar per leaf of
      ``tree`` (matched by path, as :func:`regjax.per_layer` builds it); ``None`` leaves
      are skipped. Not a schedule (there is no step count here). A negative, NaN or
      non-numeric Python or NumPy strength raises; a JAX array follows the rule of
      :mod:`regjax.prox` (negative or NaN gives NaN, a rounding residue counts as 0).
    mask: Optax-style mask: a pytree of bools matching ``tree`` or a prefix of it, or a
      callable ``tree -> mask``; ``None`` selects every leaf. A path that names no leaf
      of ``tree`` raises a ``ValueError``.

  Returns:
    A scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> params = {"dense": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([4.0])}}
    >>> float(tree_penalty(l1, params, 0.5, mask={"dense": {"kernel": True, "bias": False}}))
    1.5
  """
  _checks.check_callable("penalty", penalty, "array -> scalar")
  if strength is None:
    raise ValueError("`strength` must be a number or a tree of numbers, got None.")
  strength = jax.tree.map(_scalar_strength, strength)
  selected = _trees.resolve_mask(mask, tree)
  strengths = _trees.broadcast_strength(strength, tree, "strength")

  def one(leaf, keep, lam):
    if not keep or lam is None:
      return jnp.zeros((), jnp.float32)
    return lam * penalty(leaf)

  terms = jax.tree.map(one, tree, selected, strengths, is_leaf=lambda v: v is None)
  return sum(jax.tree.leaves(terms), jnp.zeros((), jnp.float32))
