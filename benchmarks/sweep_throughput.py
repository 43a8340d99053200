"""Throughput of a vmapped ``regjax.sweep`` against one-λ-at-a-time training.

The default digits MLP (``regjax.models.MLP(64, (64, 64), 10)``, ``regjax.prox_adam`` with
the strength from ``hparams``, batch 128) trained at K grid points three ways:

  (a) one ``regjax.sweep`` call (a vmapped, jitted run of ``regjax.experiment.trainer.Trainer``);
  (b) K sequential calls of ``jax.jit(trainer)``, one per λ;
  (c) a plain Python loop per λ, as a user writes it: ``nnx.Optimizer`` and an
      ``@nnx.jit`` train step called once per minibatch, the batch drawn with NumPy.

Throughput is models·steps/s; compile time is excluded and reported separately. (a) is a
warm call: XLA's compile is served from the persistent compilation cache, but the call
still traces and lowers, which is part of its time; ``(a) exec`` is the compiled
program alone. Achieved FLOP/s counts the matmul FLOPs of forward and backward passes
and is compared with the fp32 rate of a large ``jnp.dot`` measured in the same rounds.

Run: ``python -m benchmarks.sweep_throughput [--quick]``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import regjax
from benchmarks import _common

LEARNING_RATE = 1e-2
BATCH = 128
HIDDEN = (64, 64)


def layer_shapes(hidden: tuple[int, ...]) -> list[tuple[int, int]]:
  widths = (64, *hidden, 10)
  return list(zip(widths[:-1], widths[1:], strict=True))


def flops_per_model_step(hidden: tuple[int, ...]) -> tuple[float, float]:
  """Matmul FLOPs of one forward+backward step: exact count and ``6·B·Σ in·out``.

  Forward and weight gradients cost ``2·B·in·out`` per layer each; input gradients are
  needed for every layer but the first, whose input is data.
  """
  shapes = layer_shapes(hidden)
  total = sum(a * b for a, b in shapes)
  exact = 2 * BATCH * (2 * total + sum(a * b for a, b in shapes[1:]))
  return float(exact), float(6 * BATCH * total)


def make_trainer(steps: int, hidden: tuple[int, ...]) -> regjax.experiment.trainer.Trainer:
  train, test = regjax.data.digits()
  return regjax.experiment.trainer.Trainer(
      model=lambda rngs: regjax.models.MLP(64, hidden, 10, rngs=rngs),
      optimizer=lambda h: regjax.prox_adam(LEARNING_RATE, h["lam"], mask=regjax.masks.matrices),
      train=train, test=test, steps=steps, batch_size=BATCH)


def sweep_program(trainer: regjax.experiment.trainer.Trainer, k: int):
  """The program ``regjax.sweep`` runs for ``k`` rows, compiled, and its arguments.

  Built the way the sweep engine builds it (same function, mesh and shardings), so XLA's
  compile is a persistent-cache hit after the first sweep call of this size.
  """
  mesh = Mesh(np.array(jax.local_devices()), ("grid",))
  sharding = NamedSharding(mesh, PartitionSpec(("grid",)))

  def run(row_hparams, seed):
    return trainer(row_hparams, jax.random.key(seed))

  batched = jax.jit(jax.vmap(run), in_shardings=sharding, out_shardings=sharding)
  hparams = {"lam": jax.device_put(
      jnp.asarray(np.logspace(-5, -2, k), jnp.result_type(float)), sharding)}
  seeds = jax.device_put(jnp.zeros((k,), jnp.uint32), sharding)
  return batched.lower(hparams, seeds).compile(), (hparams, seeds)


class PythonLoop:
  """One λ trained by a plain Python loop: ``@nnx.jit`` step, NumPy minibatches."""

  def __init__(self, lam: float, hidden: tuple[int, ...], train_step, data):
    self.model = regjax.models.MLP(64, hidden, 10, rngs=nnx.Rngs(0))
    self.optimizer = nnx.Optimizer(
        self.model, regjax.prox_adam(LEARNING_RATE, lam, mask=regjax.masks.matrices),
        wrt=nnx.Param)
    self.train_step = train_step
    self.inputs, self.labels = data
    self.rng = np.random.default_rng(0)
    # The first step compiles: the optimizer is static in nnx.jit, so every λ compiles.
    self.compile_seconds = self.run(1)

  def run(self, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      index = self.rng.integers(0, len(self.labels), BATCH)
      loss = self.train_step(self.model, self.optimizer, self.inputs[index], self.labels[index])
    float(loss)
    return time.perf_counter() - start


def make_train_step():
  @nnx.jit
  def train_step(model, optimizer, inputs, labels):
    def loss_fn(model):
      return optax.softmax_cross_entropy_with_integer_labels(model(inputs), labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  return train_step


def step_matmuls(k: int, hidden: tuple[int, ...], calls: int):
  """The batched matmuls of one vmapped step alone (forward, weight and input grads)."""
  shapes = layer_shapes(hidden)
  keys = iter(jax.random.split(jax.random.key(0), 3 * len(shapes)))
  acts = [jax.random.normal(next(keys), (k, BATCH, a)) for a, _ in shapes]
  kernels = [jax.random.normal(next(keys), (k, a, b)) for a, b in shapes]
  grads = [jax.random.normal(next(keys), (k, BATCH, b)) for _, b in shapes]

  @jax.jit
  def matmuls(acts, kernels, grads):
    out = []
    for i, (h, w, g) in enumerate(zip(acts, kernels, grads, strict=True)):
      out.append(jnp.einsum("kbi,kio->kbo", h, w))
      out.append(jnp.einsum("kbi,kbo->kio", h, g))
      if i > 0:
        out.append(jnp.einsum("kbo,kio->kbi", g, w))
    return out

  jax.block_until_ready(matmuls(acts, kernels, grads))

  def variant() -> float:
    start = time.perf_counter()
    for _ in range(calls):
      out = matmuls(acts, kernels, grads)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls

  return variant


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--grid-sizes", default="1,4,16,64", help="comma-separated K values")
  parser.add_argument("--steps", type=int, default=200, help="training steps per model")
  parser.add_argument("--loop-lambdas", type=int, default=2,
                      help="λ values (c) is timed on per round (its throughput does not "
                           "depend on K: the runs are sequential)")
  parser.add_argument("--matmul-size", type=int, default=2048)
  args = parser.parse_args()
  if args.quick:
    grid_sizes, steps, repeats, loop_lambdas, mm_size = (2,), 3, 1, 1, 256
  else:
    grid_sizes = tuple(int(k) for k in args.grid_sizes.split(","))
    steps, repeats, loop_lambdas, mm_size = args.steps, 5, args.loop_lambdas, args.matmul_size
  repeats = args.repeats or repeats
  cache = _common.enable_compilation_cache()
  hidden = HIDDEN
  exact_flops, formula_flops = flops_per_model_step(hidden)
  _common.print_header("sweep throughput: vmapped regjax.sweep vs sequential runs", args, [
      f"model MLP(64, {hidden}, 10), regjax.prox_adam(lr={LEARNING_RATE}), batch {BATCH}, "
      f"{steps} steps per model, grid sizes K = {grid_sizes}, {repeats} interleaved rounds",
      f"matmul FLOPs per model-step: {exact_flops / 1e6:.3f} M exact "
      f"(6·B·Σ in·out = {formula_flops / 1e6:.3f} M also counts the unused input "
      "gradient of layer 1); rates below use the exact count",
      f"persistent compilation cache: {cache}",
  ])
  machine = _common.machine_name()

  trainer = make_trainer(steps, hidden)
  train = regjax.data.load_digits("train")
  data = (np.asarray(train.inputs), np.asarray(train.labels))
  mm, mm_flops = _common.matmul_variant(mm_size)

  start = time.perf_counter()
  # A closure: the Trainer holds arrays, so it is not hashable as jit's function.
  single = jax.jit(lambda hparams, key: trainer(hparams, key))
  key0 = jax.random.key(0)
  jax.block_until_ready(single({"lam": jnp.float32(1e-4)}, key0))
  compile_b = time.perf_counter() - start
  train_step = make_train_step()
  loops = [PythonLoop(float(lam), hidden, train_step, data)
           for lam in np.logspace(-5, -2, max(loop_lambdas, 1))]
  compile_c = np.array([loop.compile_seconds for loop in loops])
  print(f"compile times on {machine}:")
  print(f"  (b) jax.jit(trainer), once for all λ: {compile_b:.2f} s")
  print(f"  (c) @nnx.jit step, once per λ (optimizer is static): {_common.spread(compile_c)} s "
        "per λ, i.e. K times that for a grid of K")

  summary = []
  for k in grid_sizes:
    lambdas = np.logspace(-5, -2, k)
    grid = regjax.grid(lam=lambdas)
    cold = _common.timed(lambda grid=grid: regjax.sweep(trainer, grid, progress=False).columns)
    start = time.perf_counter()
    program, program_args = sweep_program(trainer, k)
    cached_compile = time.perf_counter() - start
    lam_args = [{"lam": jnp.float32(lam)} for lam in lambdas]
    c_loops = loops[:min(k, len(loops))]

    def run_sequential(lam_args=lam_args):
      for hparams in lam_args:
        jax.block_until_ready(single(hparams, key0))

    def run_loops(c_loops=c_loops) -> float:
      return float(sum(loop.run(steps) for loop in c_loops))

    variants = {
        "a": lambda grid=grid: regjax.sweep(trainer, grid, progress=False).columns,
        "a_exec": lambda program=program, program_args=program_args: program(*program_args),
        "b": run_sequential,
        "c": run_loops,
        "matmul": mm,
    }
    is_last = k == grid_sizes[-1]
    if is_last:
      variants["step_matmuls"] = step_matmuls(k, hidden, calls=10)
    jax.block_until_ready(program(*program_args))  # the cold sweep call primed the rest
    times = _common.interleave(variants, repeats, warmup=0)
    work = {"a": k * steps, "a_exec": k * steps, "b": k * steps, "c": len(c_loops) * steps}
    throughput = {name: work[name] / times[name] for name in work}
    peak = mm_flops / times["matmul"]
    compile_a = cold - np.median(times["a"])

    print(f"\n-- K = {k} grid points ({steps} steps each); absolute figures on {machine}")
    print(f"  compile: first regjax.sweep call {cold:.2f} s, {compile_a:.2f} s more than a warm "
          f"call; cached reload of the program (trace+lower+load) {cached_compile:.2f} s")
    labels = {"a": "(a) regjax.sweep, warm call", "a_exec": "(a) exec, compiled program only",
              "b": "(b) K sequential jax.jit runs", "c": f"(c) Python nnx loop ({len(c_loops)} λ)"}
    for name, label in labels.items():
      rate = throughput[name] * exact_flops
      print(f"  {label:34s} {_common.spread(throughput[name])} models·steps/s; "
            f"{np.median(rate) / 1e9:.2f} GFLOP/s = {np.median(rate / peak):.1%} of matmul")
    print(f"  fp32 matmul {mm_size}x{mm_size}: {_common.spread(peak / 1e9)} GFLOP/s")
    _common.ratio_line(f"a/b throughput K={k} (sweep vs sequential jit)",
                       throughput["a"] / throughput["b"])
    _common.ratio_line(f"a/c throughput K={k} (sweep vs Python loop)",
                       throughput["a"] / throughput["c"])
    _common.ratio_line(f"a_exec/b throughput K={k}", throughput["a_exec"] / throughput["b"])
    fraction = throughput["a"] * exact_flops / peak
    fraction_exec = throughput["a_exec"] * exact_flops / peak
    _common.ratio_line(f"sweep FLOP/s over matmul FLOP/s K={k}", fraction)
    summary.append((k, throughput, fraction, fraction_exec))
    if is_last:
      matmul_time = times["step_matmuls"]
      step_time = times["a_exec"] / steps
      rate_shapes = k * exact_flops / matmul_time
      print(f"  profile at K={k}: the step's batched matmuls alone (shapes (K={k}, {BATCH}, in) "
            f"x (K, in, out)) run at {np.median(rate_shapes) / 1e9:.2f} GFLOP/s = "
            f"{np.median(rate_shapes / peak):.1%} of the big matmul, and take "
            f"{np.median(matmul_time / step_time):.1%} of a compiled step "
            f"({np.median(step_time) * 1e3:.2f} ms); the rest is the optimizer update, "
            "minibatch gather, RNG and loop overhead")
      # Judged on the compiled program: a warm call's tracing and lowering is compile work.
      met = float(np.median(fraction_exec)) >= 0.6
      detail = (f"compiled program {np.median(fraction_exec):.1%}, warm sweep call "
                f"{np.median(fraction):.1%} of the measured fp32 matmul rate; "
                f"its matmuls of shape ({k}, {BATCH}, <=64) reach only "
                f"{np.median(rate_shapes / peak):.1%} of the big-matmul rate even alone")
      _common.target_line(f">= 60% of matmul FLOP/s at K={k}", met, detail)

  print("\nsummary (medians):")
  print("  K    a/b     a/c     sweep %matmul   exec %matmul")
  for k, thr, fraction, fraction_exec in summary:
    print(f"  {k:<4d} {np.median(thr['a'] / thr['b']):6.2f}  {np.median(thr['a'] / thr['c']):6.2f}"
          f"  {np.median(fraction):12.1%}  {np.median(fraction_exec):12.1%}")
  _common.print_footer()


if __name__ == "__main__":
  main()
