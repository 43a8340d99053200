"""A 64-point Lasso path: a vmapped FISTA built from regjax pieces vs scikit-learn.

Objective, for every ``alpha`` on the path (the one scikit-learn minimizes):

.. math:: F_\\alpha(w) = \\frac{1}{2n}\\|y - Xw\\|^2 + \\alpha \\|w\\|_1

on centered data (``fit_intercept=False``), float64 (x64 is enabled in this script).
The regjax solver runs all alphas at once as the columns of one matrix ``W``:

* the Gram ``G = X^T X / n`` and ``c = X^T y / n`` are formed once (n > p on both
  problems, so a step costs a ``p x p`` by ``p x A`` matmul instead of two ``n x p`` ones);
* step ``1/L`` with ``L`` the top eigenvalue of ``G`` (power iteration, 1% margin);
* FISTA steps ``W <- prox.l1(Z - (G Z - c)/L, alpha/L)`` with momentum, restarted per
  column whenever the step goes against the momentum (O'Donoghue & Candès, 2015);
* every 10 steps, the duality gap of every column (from ``G W``, no pass over ``X``);
  a ``lax.while_loop`` stops when every column's gap is below ``tol`` times its
  objective.

The same FISTA run sequentially along the path with warm starts (``lax.scan`` over the
alphas, a ``while_loop`` per alpha) is measured too: it needs fewer steps in all, but each
step is a matvec instead of a matmul, and it came out slower here (see its ratio line).

scikit-learn: ``sklearn.linear_model.lasso_path(X, y, alphas=..., tol=1e-12)`` (coordinate
descent with warm starts; it precomputes the Gram when n > p, like the solver above).

Run: ``python -m benchmarks.lasso_path [--quick]``.

References:
  Beck & Teboulle, "A fast iterative shrinkage-thresholding algorithm for linear inverse
  problems", SIAM J. Imaging Sciences, 2009; O'Donoghue & Candès, "Adaptive restart for
  accelerated gradient schemes", Foundations of Computational Mathematics, 2015;
  Friedman, Hastie & Tibshirani, "Regularization paths for generalized linear models via
  coordinate descent", J. Statistical Software, 2010.
"""

from __future__ import annotations

import functools
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402 (x64 must be on before arrays are made)
import numpy as np  # noqa: E402

import regjax  # noqa: E402
from benchmarks import _common  # noqa: E402

CHECK_EVERY = 10


def duality_gap(gram: jax.Array, c: jax.Array, yy: jax.Array, w: jax.Array,
                alphas: jax.Array) -> tuple[jax.Array, jax.Array]:
  r"""Primal objective and duality gap of every column of ``w``, from Gram quantities.

  With :math:`r = y - Xw`, :math:`\|r\|^2/n = yy - 2w^\top c + w^\top G w` and the dual
  point :math:`\theta = s\,r/n`, :math:`s = \min(1, \alpha / \|c - Gw\|_\infty)`, the dual
  objective is :math:`-\tfrac12 s^2 \|r\|^2/n + s\,(yy - w^\top c)`.

  Returns:
    ``(gap, primal)``, each of shape ``(alphas,)``.
  """
  gw = gram @ w
  wc = c @ w
  residual = yy - 2 * wc + jnp.sum(w * gw, axis=0)
  primal = 0.5 * residual + alphas * jnp.sum(jnp.abs(w), axis=0)
  correlation = jnp.max(jnp.abs(c[:, None] - gw), axis=0)
  scale = jnp.minimum(1.0, alphas / jnp.maximum(correlation, jnp.finfo(w.dtype).tiny))
  dual = -0.5 * scale**2 * residual + scale * (yy - wc)
  return primal - dual, primal


def least_squares_terms(x: jax.Array, y: jax.Array):
  """``XᵀX/n``, ``Xᵀy/n``, ``yᵀy/n`` and a step bound 1.01·σ_max(XᵀX/n) by power iteration."""
  n = x.shape[0]
  gram = x.T @ x / n
  c = x.T @ y / n
  sigma, _ = regjax.penalties.power_iteration(gram, jnp.ones_like(c), num_iterations=100)
  return gram, c, y @ y / n, 1.01 * sigma


@functools.partial(jax.jit, static_argnames=("max_iterations",))
def fista_path(x: jax.Array, y: jax.Array, alphas: jax.Array, tol: float = 1e-10,
               max_iterations: int = 100_000):
  """Lasso solutions for every alpha (columns), FISTA with adaptive restart.

  Returns:
    ``(w, iterations, gap)``: coefficients ``(p, alphas)``, steps taken, final gaps.
  """
  gram, c, yy, lipschitz = least_squares_terms(x, y)
  thresholds = (alphas / lipschitz)[None, :]

  def fista_step(_, carry):
    w, z, t = carry
    w_new = regjax.prox.l1(z - (gram @ z - c[:, None]) / lipschitz, thresholds)
    restart = jnp.sum((z - w_new) * (w_new - w), axis=0) > 0
    t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
    momentum = jnp.where(restart, 0.0, (t - 1) / t_new)
    z = w_new + momentum[None, :] * (w_new - w)
    return w_new, z, jnp.where(restart, 1.0, t_new)

  def not_done(state):
    _, _, _, iterations, gap, primal = state
    return jnp.any(gap > tol * primal) & (iterations < max_iterations)

  def body(state):
    w, z, t, iterations, _, _ = state
    w, z, t = jax.lax.fori_loop(0, CHECK_EVERY, fista_step, (w, z, t))
    gap, primal = duality_gap(gram, c, yy, w, alphas)
    return w, z, t, iterations + CHECK_EVERY, gap, primal

  w0 = jnp.zeros((c.shape[0], alphas.shape[0]), x.dtype)
  gap, primal = duality_gap(gram, c, yy, w0, alphas)
  start = (w0, w0, jnp.ones_like(alphas), jnp.zeros((), jnp.int32), gap, primal)
  w, _, _, iterations, gap, _ = jax.lax.while_loop(not_done, body, start)
  return w, iterations, gap


@functools.partial(jax.jit, static_argnames=("max_iterations",))
def warm_start_path(x: jax.Array, y: jax.Array, alphas: jax.Array, tol: float = 1e-10,
                    max_iterations: int = 100_000):
  """The same solver run one alpha at a time, each started from the previous solution.

  Returns:
    ``(w, iterations)``: coefficients ``(p, alphas)`` and the steps taken per alpha.
  """
  gram, c, yy, lipschitz = least_squares_terms(x, y)

  def solve(w_start, alpha):
    def fista_step(_, carry):
      w, z, t = carry
      w_new = regjax.prox.l1(z - (gram @ z - c) / lipschitz, alpha / lipschitz)
      restart = jnp.sum((z - w_new) * (w_new - w)) > 0
      t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
      z = w_new + jnp.where(restart, 0.0, (t - 1) / t_new) * (w_new - w)
      return w_new, z, jnp.where(restart, 1.0, t_new)

    def gap_of(w):
      gap, primal = duality_gap(gram, c, yy, w[:, None], alpha[None])
      return gap[0], primal[0]

    def not_done(state):
      _, _, _, iterations, gap, primal = state
      return (gap > tol * primal) & (iterations < max_iterations)

    def body(state):
      w, z, t, iterations, _, _ = state
      w, z, t = jax.lax.fori_loop(0, CHECK_EVERY, fista_step, (w, z, t))
      return (w, z, t, iterations + CHECK_EVERY, *gap_of(w))

    start = (w_start, w_start, jnp.ones((), x.dtype), jnp.zeros((), jnp.int32), *gap_of(w_start))
    w, _, _, iterations, _, _ = jax.lax.while_loop(not_done, body, start)
    return w, (w, iterations)

  _, (w, iterations) = jax.lax.scan(solve, jnp.zeros_like(c), alphas)
  return w.T, iterations


def objective(x: np.ndarray, y: np.ndarray, w: np.ndarray, alphas: np.ndarray) -> np.ndarray:
  """F_alpha(w) per column, in NumPy float64, straight from the definition."""
  residual = y[:, None] - x @ w
  return 0.5 * np.sum(residual**2, axis=0) / len(y) + alphas * np.sum(np.abs(w), axis=0)


def certified_gap(x: np.ndarray, y: np.ndarray, w: np.ndarray, alphas: np.ndarray) -> np.ndarray:
  """Duality gap per column from X itself: an upper bound on F(w) - min F."""
  n = len(y)
  residual = y[:, None] - x @ w
  scale = np.minimum(1.0, alphas / np.max(np.abs(x.T @ residual / n), axis=0))
  theta = scale * residual / n
  dual = 0.5 * (y @ y) / n - 0.5 * n * np.sum((theta - y[:, None] / n) ** 2, axis=0)
  return objective(x, y, w, alphas) - dual


def problems(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
  from sklearn.datasets import load_diabetes

  n, p = (200, 50) if quick else (2000, 1000)
  x, y, _ = regjax.data.make_sparse_regression(jax.random.key(0), n, p, p // 20)
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  diabetes = load_diabetes()
  xd = diabetes.data - diabetes.data.mean(0)
  xd /= xd.std(0)
  return [
      (f"synthetic {n}x{p} (make_sparse_regression, {p // 20} informative, centered)",
       x - x.mean(0), y - y.mean()),
      ("diabetes 442x10 (sklearn load_diabetes, standardized X, centered y)",
       xd, diabetes.target - diabetes.target.mean()),
  ]


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--alphas", type=int, default=64)
  parser.add_argument("--tol", type=float, default=1e-10,
                      help="regjax: stop at duality gap <= tol * objective, every alpha")
  parser.add_argument("--sklearn-tol", type=float, default=1e-12)
  args = parser.parse_args()
  import sklearn
  from sklearn.linear_model import lasso_path

  repeats = args.repeats or (2 if args.quick else 7)
  num_alphas = 8 if args.quick else args.alphas
  _common.print_header("Lasso path: vmapped FISTA (regjax.prox.l1) vs sklearn lasso_path", args, [
      f"scikit-learn {sklearn.__version__}; float64; {num_alphas} alphas from alpha_max down to "
      f"1e-3 alpha_max (log-spaced); regjax tol {args.tol} (relative duality gap), "
      f"sklearn tol {args.sklearn_tol}; {repeats} interleaved rounds",
  ])
  machine = _common.machine_name()
  for name, x, y in problems(args.quick):
    alpha_max = np.max(np.abs(x.T @ y)) / len(y)
    alphas = np.geomspace(alpha_max, 1e-3 * alpha_max, num_alphas)
    xj, yj, aj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(alphas)
    start = time.perf_counter()
    w, iterations, _ = jax.block_until_ready(fista_path(xj, yj, aj, args.tol))
    cold = time.perf_counter() - start
    sk_out = {}

    def run_sklearn(sk_out=sk_out, x=x, y=y, alphas=alphas):
      sk_out["coefs"] = lasso_path(x, y, alphas=alphas, tol=args.sklearn_tol,
                                   max_iter=1_000_000)[1]

    w_warm, warm_iterations = jax.block_until_ready(warm_start_path(xj, yj, aj, args.tol))
    gram = jax.jit(lambda x: x.T @ x / x.shape[0])
    jax.block_until_ready(gram(xj))
    times = _common.interleave({
        "gram": lambda xj=xj, gram=gram: gram(xj),
        "regjax": lambda xj=xj, yj=yj, aj=aj: fista_path(xj, yj, aj, args.tol),
        "sklearn": run_sklearn,
        "warm_start": lambda xj=xj, yj=yj, aj=aj: warm_start_path(xj, yj, aj, args.tol),
    }, repeats)
    w = np.asarray(w)
    f_ours = objective(x, y, w, alphas)
    f_sk = objective(x, y, sk_out["coefs"], alphas)
    relative = (f_ours - f_sk) / f_sk
    gap_ours = certified_gap(x, y, w, alphas) / f_ours
    gap_sk = certified_gap(x, y, sk_out["coefs"], alphas) / f_sk
    print(f"-- {name}")
    print(f"  on {machine}: regjax {_common.spread(times['regjax'])} s (first call, with "
          f"compile, {cold:.2f} s); sklearn {_common.spread(times['sklearn'])} s")
    f_warm = objective(x, y, np.asarray(w_warm), alphas)
    print(f"  sequential warm-start variant: {_common.spread(times['warm_start'])} s, "
          f"{int(np.sum(warm_iterations))} FISTA steps over the path "
          f"({int(np.max(warm_iterations))} at most per alpha); max relative objective "
          f"difference to sklearn {np.max(np.abs(f_warm - f_sk) / f_sk):.2e}")
    print(f"  profile: forming X^T X / n alone takes {_common.spread(times['gram'])} s, "
          f"{np.median(times['gram'] / times['regjax']):.0%} of the vmapped solve")
    print(f"  regjax FISTA steps: {int(iterations)} (all alphas together); nonzeros at the "
          f"smallest alpha: regjax {int(np.sum(w[:, -1] != 0))}, "
          f"sklearn {int(np.sum(sk_out['coefs'][:, -1] != 0))}")
    print(f"  relative objective difference (F_regjax - F_sklearn) / F_sklearn over the path: "
          f"max {relative.max():.2e}, min {relative.min():.2e}")
    print(f"  certified relative duality gap, max over the path: regjax {gap_ours.max():.2e}, "
          f"sklearn {gap_sk.max():.2e}")
    ratio = _common.ratio_line(f"time regjax/sklearn {name.split(' (')[0]}",
                               times["regjax"] / times["sklearn"])
    _common.ratio_line(f"time vmapped/sequential warm-start {name.split(' (')[0]}",
                       times["regjax"] / times["warm_start"])
    worst = float(np.max(np.abs(relative)))
    _common.target_line(f"objective within 1e-6 relative, {name.split(' (')[0]}",
                        worst <= 1e-6, f"max |relative difference| {worst:.2e}")
    _common.target_line(f"time within 3x of scikit-learn, {name.split(' (')[0]}", ratio <= 3.0,
                        f"{ratio:.3g}x (warm; the first call also compiles: {cold:.2f} s)")
    print(flush=True)
  _common.print_footer()


if __name__ == "__main__":
  main()
