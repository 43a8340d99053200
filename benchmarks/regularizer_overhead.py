"""Step-time overhead of regjax's regularizers against the plain Optax optimizers.

Pairs, each measured side by side (interleaved rounds, per-round ratios):

* ``optax.adam`` vs ``regjax.prox_adam`` (preconditioned L1 prox on the kernels);
* ``optax.adamw`` vs ``regjax.adamw`` (decoupled decay; both decay the kernels only);
* ``optax.adam`` vs ``optax.chain(regjax.orthogonality(kind=...), optax.adam)`` for every
  kind: soft, double_soft, decorrelation, mutual_coherence, spectral.

On two models, each with a batch of 128: the default digits MLP (64-64-64-10) and a wide
MLP whose three kernels are 1024x1024. Two timings per pair: a full training step
(forward, backward, optimizer, ``apply_updates``) and the optimizer update alone on a
fixed gradient. Both run ``--steps`` iterations inside one ``lax.scan`` per call, so
Python dispatch does not dilute the ratio. Last, the ``mode="auto"`` saving: soft
orthogonality on a 4096x256 kernel, auto (256x256 Gram) against ``mode="rows"``
(4096x4096 Gram).

Run: ``python -m benchmarks.regularizer_overhead [--quick]``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import regjax
from benchmarks import _common

LEARNING_RATE = 1e-3
STRENGTH = 1e-4
KINDS = ("soft", "double_soft", "decorrelation", "mutual_coherence", "spectral")


def optimizers(kinds: tuple[str, ...]) -> dict[str, optax.GradientTransformation]:
  kernels = regjax.masks.matrices
  result = {
      "adam": optax.adam(LEARNING_RATE),
      "prox_adam": regjax.prox_adam(LEARNING_RATE, STRENGTH, mask=kernels),
      "optax_adamw": optax.adamw(LEARNING_RATE, weight_decay=STRENGTH, mask=kernels),
      "regjax_adamw": regjax.adamw(LEARNING_RATE, STRENGTH),
  }
  for kind in kinds:
    result[f"orth_{kind}"] = optax.chain(
        regjax.orthogonality(STRENGTH, kind=kind), optax.adam(LEARNING_RATE))
  return result


def model_and_batch(width: int, depth_in: int, classes: int, batch: int):
  def build():
    return regjax.models.MLP(depth_in, (width, width), classes, rngs=nnx.Rngs(0))

  graphdef = nnx.split(nnx.eval_shape(build))[0]
  # Initialised in one jitted call: eager initialisers compile one program per shape.
  params = jax.jit(lambda: nnx.to_pure_dict(nnx.state(build())))()
  rng = np.random.default_rng(0)
  inputs = jnp.asarray(rng.standard_normal((batch, depth_in)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, classes, batch), jnp.int32)

  def loss(params, batch):
    inputs, labels = batch
    model = nnx.merge(graphdef, params)
    return optax.softmax_cross_entropy_with_integer_labels(model(inputs), labels).mean()

  return params, loss, (inputs, labels)


def scanned(tx: optax.GradientTransformation, loss, params, batch, steps: int, full: bool):
  """A compiled call running ``steps`` optimizer steps, and a thunk that calls it."""
  grads = jax.jit(jax.grad(loss))(params, batch)
  opt_state = jax.jit(tx.init)(params)

  # Everything the step reads is an argument: a closed-over array is a constant that XLA
  # may fold at compile time, which would take work out of the timed call.
  @jax.jit
  def run(params, opt_state, grads, batch):
    def body(carry, _):
      params, opt_state = carry
      g = jax.grad(loss)(params, batch) if full else grads
      updates, opt_state = tx.update(g, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(body, (params, opt_state), None, length=steps)[0]

  jax.block_until_ready(run(params, opt_state, grads, batch))
  return lambda: run(params, opt_state, grads, batch)


def kernel_shapes(width: int, depth_in: int, classes: int) -> list[tuple[int, int]]:
  return [(depth_in, width), (width, width), (width, classes)]


def step_flops(width: int, depth_in: int, classes: int, batch: int) -> float:
  """Matmul FLOPs of forward and backward (no input gradient for the first layer)."""
  shapes = kernel_shapes(width, depth_in, classes)
  return 2.0 * batch * (2 * sum(a * b for a, b in shapes) + sum(a * b for a, b in shapes[1:]))


def gram_flops(width: int, depth_in: int, classes: int) -> float:
  """Least FLOPs of a Gram-based penalty gradient: the Gram and one product, both sides."""
  return sum(4.0 * max(a, b) * min(a, b) ** 2 for a, b in kernel_shapes(width, depth_in, classes))


def run_config(name: str, width: int, depth_in: int, classes: int, batch: int, steps: int,
               repeats: int, machine: str, kinds: tuple[str, ...]) -> dict[str, float]:
  params, loss, data = model_and_batch(width, depth_in, classes, batch)
  square = width == depth_in
  txs = optimizers(kinds)
  cheap = ("adam", "prox_adam", "optax_adamw", "regjax_adamw")
  orth = ("adam", *(tx_name for tx_name in txs if tx_name.startswith("orth_")))
  # Prox and decay variants are cheap: more rounds for their small differences.
  cheap_repeats = 3 * repeats
  print(f"-- {name}: kernels {[tuple(p['kernel'].shape) for p in params['layers'].values()]}, "
        f"batch {batch}, {steps} steps per timed call; {cheap_repeats} rounds for "
        f"{', '.join(cheap)}; {repeats} rounds for adam and the orthogonality kinds", flush=True)
  medians = {}
  for full in (True, False):
    mode = "full step" if full else "update only"
    programs = {tx_name: scanned(tx, loss, params, data, steps, full)
                for tx_name, tx in txs.items()}
    group_1 = _common.interleave({k: programs[k] for k in cheap}, cheap_repeats)
    group_2 = _common.interleave({k: programs[k] for k in orth}, repeats)
    print(f"  {mode}: time per step on {machine} (ms): " + ", ".join(
        f"{k} {np.median(v) / steps * 1e3:.3g}" for k, v in {**group_1, **group_2}.items()))
    medians[f"{mode} adam seconds"] = float(np.median(group_1["adam"]))
    if full:
      rate = step_flops(width, depth_in, classes, batch) * steps / group_1["adam"] / 1e9
      print(f"  full step with adam: {np.median(rate):.2f} GFLOP/s of model matmuls")
    pairs = [(group_1, "prox_adam", "adam"), (group_1, "regjax_adamw", "optax_adamw")]
    pairs += [(group_2, tx_name, "adam") for tx_name in orth[1:]]
    for times, ours, base in pairs:
      value = _common.ratio_line(f"{name} {mode} {ours}/{base}", times[ours] / times[base])
      medians[f"{mode} {ours}"] = value
  share = medians["update only adam seconds"] / medians["full step adam seconds"]
  for ours in ("prox_adam", "regjax_adamw"):
    value = medians[f"full step {ours}"]
    _common.target_line(
        f"{name} {ours} overhead <= 5% (full step)", value <= 1.05,
        f"{value - 1:+.1%}; the update alone {medians[f'update only {ours}'] - 1:+.1%}, and "
        f"adam's update is {share:.0%} of adam's full step")
  if square:
    extra = gram_flops(width, depth_in, classes) / step_flops(width, depth_in, classes, batch)
    for kind in kinds:
      value = medians[f"full step orth_{kind}"]
      if value <= 1.15:
        why = ""
      elif kind == "spectral":
        why = ("; the spectral kind forms no Gram (matrix-vector products only): its cost "
               "is a few passes over the kernels, beside Adam's own")
      else:
        why = (f"; a Gram-based penalty adds >= 4·m·n^2 FLOPs per m x n kernel (the Gram "
               f"and one product for its gradient), here {extra:.2f}x the model's matmul "
               f"FLOPs at B={batch}, and that work does not shrink with the batch: 15% by "
               f"FLOP count needs B >= {batch * extra / 0.15:.0f}")
      _common.target_line(f"{name} orthogonality {kind} overhead <= 15% (square, full step)",
                          value <= 1.15, f"{value - 1:+.1%}{why}")
  print(flush=True)
  return medians


def auto_mode(rows: int, cols: int, repeats: int, machine: str) -> None:
  kernel = np.random.default_rng(0).standard_normal((rows, cols)) / np.sqrt(rows)
  params = {"kernel": jnp.asarray(kernel, jnp.float32)}
  grads = {"kernel": jnp.ones((rows, cols), jnp.float32)}
  variants = {}
  for mode in ("auto", "rows"):
    tx = regjax.orthogonality(STRENGTH, kind="soft", mode=mode)
    state = jax.jit(tx.init)(params)
    update = jax.jit(tx.update)  # params as an argument, so XLA cannot fold the Gram
    jax.block_until_ready(update(grads, state, params))
    variants[mode] = functools.partial(update, grads, state, params)
  times = _common.interleave(variants, repeats)
  print(f"-- mode='auto' on a {rows}x{cols} kernel (soft orthogonality update, {repeats} rounds)")
  print(f"  on {machine}: auto ({cols}x{cols} Gram) {np.median(times['auto']) * 1e3:.3g} ms, "
        f"rows ({rows}x{rows} Gram) {np.median(times['rows']) * 1e3:.3g} ms")
  _common.ratio_line(f"auto-mode saving {rows}x{cols} rows/auto", times["rows"] / times["auto"])


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=1024, help="width of the wide MLP")
  args = parser.parse_args()
  kinds = KINDS
  if args.quick:  # one small square model and two kinds: every code path, few compiles
    configs = [("wide MLP 32", 32, 32, 32, 16, 1)]
    repeats, auto_shape, kinds = 2, (256, 16), ("soft", "spectral")
  else:
    configs = [("digits MLP", 64, 64, 10, 128, 100),
               (f"wide MLP {args.width}", args.width, args.width, args.width, 128, 2)]
    repeats, auto_shape = 5, (4096, 256)
  repeats = args.repeats or repeats
  _common.print_header("regularizer overhead: regjax vs plain Optax step time", args, [
      f"learning rate {LEARNING_RATE}, strengths {STRENGTH}; masks: kernels (ndim >= 2) "
      "for prox, decay and orthogonality",
  ])
  machine = _common.machine_name()
  for config in configs:
    run_config(*config, repeats=repeats, machine=machine, kinds=kinds)
  auto_mode(*auto_shape, repeats=repeats, machine=machine)
  _common.print_footer()


if __name__ == "__main__":
  main()
