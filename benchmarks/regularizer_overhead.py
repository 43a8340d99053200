"""Step-time overhead of regjax's regularizers against the plain Optax optimizers.

Pairs, each measured side by side (interleaved rounds, per-round ratios):

* ``optax.adam`` vs ``regjax.prox_adam`` (preconditioned L1 prox on the kernels);
* ``optax.adamw`` vs ``regjax.adamw`` (decoupled decay; both decay the kernels only);
* ``optax.adam`` vs ``optax.chain(regjax.orthogonality(kind=...), optax.adam)`` for every
  kind: soft, double_soft, decorrelation, mutual_coherence, spectral; on the full step at
  ``every`` = 1, 4 and 16 (lazy regularization), side by side in the same rounds.

On two models, each with a batch of 128: the default digits MLP (64-64-64-10) and a wide
MLP whose three kernels are 1024x1024. Two timings per pair: a full training step
(forward, backward, optimizer, ``apply_updates``) and the optimizer update alone on a
fixed gradient. Both run a number of steps (a multiple of 16, so every ``every`` gets its
share of due steps) inside one ``lax.scan`` per call, so Python dispatch does not dilute
the ratio. Then:

* lazy orthogonality under ``jax.vmap`` (a sweep of 8 strengths on the digits MLP): the
  full step at ``every`` = 1 and 16 with the step counter unbatched (state built inside
  the vmapped run) and batched (state vmapped in), against a plain ``lax.cond`` on the
  batched counter, which vmap turns into a select that computes the Gram on every step;
* what the saving costs: test accuracy and orthogonality error after a short training on
  digits, ``every`` = 4 and 16 against 1 (and no penalty), on the same seeds, with 95%
  t intervals of the paired differences;
* the ``mode="auto"`` saving: soft orthogonality on a 4096x256 kernel, auto (256x256
  Gram) against ``mode="rows"`` (4096x4096 Gram).

With ``--clock cpu`` every call is timed by the CPU time of this process (all its
threads) instead of the wall clock: on a machine shared with other jobs, wall time counts
the time spent waiting for a core, CPU time does not.

Run: ``python -m benchmarks.regularizer_overhead [--quick] [--repeats N] [--seeds N]
[--clock wall|cpu]``.
"""

from __future__ import annotations

import functools
import time

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
EVERY = (1, 4, 16)


def measure(programs, repeats: int, clock: str) -> dict[str, np.ndarray]:
  """``_common.interleave`` on the wall clock, or on this process's CPU time."""
  if clock == "wall":
    return _common.interleave(programs, repeats)

  def cpu_seconds(thunk):
    start = time.process_time()
    jax.block_until_ready(thunk())
    return time.process_time() - start

  return _common.interleave(
      {name: functools.partial(cpu_seconds, thunk) for name, thunk in programs.items()}, repeats)


def optimizers(kinds: tuple[str, ...]) -> dict[str, optax.GradientTransformation]:
  kernels = regjax.masks.matrices
  result = {
      "adam": optax.adam(LEARNING_RATE),
      "prox_adam": regjax.prox_adam(LEARNING_RATE, STRENGTH, mask=kernels),
      "optax_adamw": optax.adamw(LEARNING_RATE, weight_decay=STRENGTH, mask=kernels),
      "regjax_adamw": regjax.adamw(LEARNING_RATE, STRENGTH),
  }
  for kind in kinds:
    for every in EVERY:
      result[orth_name(kind, every)] = optax.chain(
          regjax.orthogonality(STRENGTH, kind=kind, every=every), optax.adam(LEARNING_RATE))
  return result


def orth_name(kind: str, every: int) -> str:
  return f"orth_{kind}" + ("" if every == 1 else f"_every{every}")


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
               repeats: int, machine: str, kinds: tuple[str, ...], clock: str
               ) -> dict[str, float]:
  params, loss, data = model_and_batch(width, depth_in, classes, batch)
  square = width == depth_in
  txs = optimizers(kinds)
  cheap = ("adam", "prox_adam", "optax_adamw", "regjax_adamw")
  lazy = ("adam", *(orth_name(kind, every) for kind in kinds for every in EVERY))
  # Prox and decay variants are cheap: more rounds for their small differences.
  cheap_repeats = 3 * repeats
  print(f"-- {name}: kernels {[tuple(p['kernel'].shape) for p in params['layers'].values()]}, "
        f"batch {batch}, {steps} steps per timed call; {cheap_repeats} rounds for "
        f"{', '.join(cheap)}; {repeats} rounds for adam and the orthogonality kinds (full "
        f"step: every = {', '.join(map(str, EVERY))}; update only: every = 1)", flush=True)
  medians = {}
  for full in (True, False):
    mode = "full step" if full else "update only"
    orth = lazy if full else ("adam", *(orth_name(kind, 1) for kind in kinds))
    programs = {tx_name: scanned(txs[tx_name], loss, params, data, steps, full)
                for tx_name in dict.fromkeys(cheap + orth)}
    group_1 = measure({k: programs[k] for k in cheap}, cheap_repeats, clock)
    group_2 = measure({k: programs[k] for k in orth}, repeats, clock)
    print(f"  {mode}: {clock} time per step on {machine} (ms): " + ", ".join(
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
      values = {every: medians[f"full step {orth_name(kind, every)}"] for every in EVERY}
      met = [every for every, value in values.items() if value <= 1.15]
      detail = ", ".join(f"every={every} {value - 1:+.1%}" for every, value in values.items())
      if met:
        why = f"; smallest every within 15%: {met[0]}"
      elif kind == "spectral":
        why = ("; the spectral kind forms no Gram (matrix-vector products only): its cost "
               "is a few passes over the kernels, beside Adam's own")
      else:
        why = (f"; a Gram-based penalty adds >= 4·m·n^2 FLOPs per m x n kernel (the Gram "
               f"and one product for its gradient), here {extra:.2f}x the model's matmul "
               f"FLOPs at B={batch}, and that work does not shrink with the batch")
      _common.target_line(
          f"{name} orthogonality {kind} overhead <= 15% at some every (square, full step)",
          bool(met), f"{detail}{why}")
  print(flush=True)
  return medians


def naive_lazy_soft(strength: float, every: int) -> optax.GradientTransformation:
  """Reference only: lazy soft orthogonality with a plain ``lax.cond`` on the counter."""

  def init_fn(params):
    del params
    return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    def penalized():
      return jax.tree.map(
          lambda g, p: g + every * strength * jax.grad(regjax.penalties.soft_orthogonality)(p)
          if p.ndim >= 2 else g, updates, params)

    new = jax.lax.cond(state.count % every == 0, penalized, lambda: updates)
    return new, optax.ScaleByScheduleState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


def vmapped(make_tx, loss, params, batch, strengths, steps: int, batched_counter: bool):
  """A compiled vmapped sweep over ``strengths`` running ``steps`` full steps, as a thunk."""
  stacked = jax.tree.map(lambda v: jnp.stack([v] * len(strengths)), params)

  def train(strength, params, batch, opt_state=None):
    tx = make_tx(strength)
    if opt_state is None:  # built inside vmap: the step counter stays unbatched
      opt_state = tx.init(params)

    def body(carry, _):
      params, opt_state = carry
      updates, opt_state = tx.update(jax.grad(loss)(params, batch), opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(body, (params, opt_state), None, length=steps)[0]

  if batched_counter:
    states = jax.jit(jax.vmap(lambda s, p: make_tx(s).init(p)))(strengths, stacked)
    run = jax.jit(jax.vmap(train, in_axes=(0, 0, None, 0)))
    args = (strengths, stacked, batch, states)
  else:
    run = jax.jit(jax.vmap(train, in_axes=(0, 0, None)))
    args = (strengths, stacked, batch)
  jax.block_until_ready(run(*args))
  return lambda: run(*args)


def vmap_section(rows: int, steps: int, repeats: int, machine: str, quick: bool,
                 clock: str) -> None:
  params, loss, data = model_and_batch(64, 64, 10, 128)
  strengths = jnp.geomspace(1e-5, 1e-3, rows).astype(jnp.float32)

  def lazy(every):
    return lambda s: optax.chain(regjax.orthogonality(s, every=every), optax.adam(LEARNING_RATE))

  variants = {
      "adam": (lambda s: optax.adam(LEARNING_RATE), False),
      "soft every=1": (lazy(1), False),
      "soft every=16, counter unbatched": (lazy(16), False),
      "soft every=16, counter batched": (lazy(16), True),
      "plain cond every=16, counter batched": (
          lambda s: optax.chain(naive_lazy_soft(s, 16), optax.adam(LEARNING_RATE)), True),
  }
  if quick:  # fewer compiles: the batched-counter pair is the case that needs the trick
    variants = {name: variants[name] for name in
                ("adam", "soft every=16, counter batched", "plain cond every=16, counter batched")}
  programs = {name: vmapped(make, loss, params, data, strengths, steps, batched)
              for name, (make, batched) in variants.items()}
  times = measure(programs, repeats, clock)
  print(f"-- lazy orthogonality under jax.vmap: digits MLP, {rows} strengths vmapped, batch "
        f"128, {steps} full steps per timed call, {repeats} rounds")
  print(f"  {clock} time per step of the whole sweep on {machine} (ms): " + ", ".join(
      f"{name} {np.median(value) / steps * 1e3:.3g}" for name, value in times.items()))
  for name in list(variants)[1:]:
    _common.ratio_line(f"vmap {rows} rows {name}/adam", times[name] / times["adam"])
  print(flush=True)


def quality(kinds: tuple[str, ...], everys: tuple[int, ...], seeds: int, steps: int,
            strength: float) -> None:
  """Test accuracy and orthogonality error after training, lazy against every=1."""
  train, test = regjax.data.digits()

  def model(rngs):
    return regjax.models.MLP(64, (64, 64), 10, rngs=rngs)

  def run(kind, every):
    def optimizer(hparams):
      if kind is None:
        return optax.adam(LEARNING_RATE)
      return optax.chain(regjax.orthogonality(hparams["strength"], kind=kind, every=every),
                         optax.adam(LEARNING_RATE))

    trainer = regjax.Trainer(model=model, optimizer=optimizer, train=train, test=test,
                             steps=steps)

    def one(key):
      hparams = {"strength": jnp.float32(strength)}
      state = trainer.advance(hparams, trainer.init(hparams, key), steps)
      kernels = [leaf for leaf in jax.tree.leaves(state.params) if leaf.ndim == 2]
      return {"accuracy": trainer.evaluate(hparams, state)["test_accuracy"],
              "error": jnp.mean(jnp.stack([regjax.metrics.orthogonality_error(k)
                                           for k in kernels]))}

    keys = jax.random.split(jax.random.key(0), seeds)
    return jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(keys))

  print(f"-- what lazy orthogonality costs: digits MLP, adam {LEARNING_RATE}, strength "
        f"{strength}, {steps} steps at batch 128, {seeds} seeds (the same for every row); "
        "orthogonality error = RMS of Gram − I, averaged over the 3 kernels")
  plain = run(None, 1)
  print(f"  no penalty: test accuracy {plain['accuracy'].mean():.4f}, orthogonality error "
        f"{plain['error'].mean():.4f}")
  for kind in kinds:
    results = {every: run(kind, every) for every in everys}
    base = results[1]
    for every, result in results.items():
      line = (f"  {kind} every={every}: test accuracy {result['accuracy'].mean():.4f}, "
              f"orthogonality error {result['error'].mean():.4f}")
      if every != 1:
        line += (f"; paired vs every=1 (95% t): accuracy "
                 f"{_common.t_interval(result['accuracy'] - base['accuracy'])}, error "
                 f"{_common.t_interval(result['error'] - base['error'])}")
      print(line, flush=True)
  print(flush=True)


def auto_mode(rows: int, cols: int, repeats: int, machine: str, clock: str) -> None:
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
  times = measure(variants, repeats, clock)
  print(f"-- mode='auto' on a {rows}x{cols} kernel (soft orthogonality update, {repeats} rounds)")
  print(f"  {clock} time on {machine}: auto ({cols}x{cols} Gram) "
        f"{np.median(times['auto']) * 1e3:.3g} ms, rows ({rows}x{rows} Gram) "
        f"{np.median(times['rows']) * 1e3:.3g} ms")
  _common.ratio_line(f"auto-mode saving {rows}x{cols} rows/auto", times["rows"] / times["auto"])


def main() -> None:
  parser = _common.parser(__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=1024, help="width of the wide MLP")
  parser.add_argument("--seeds", type=int, default=None, help="seeds of the accuracy study")
  parser.add_argument("--quality-strength", type=float, default=1e-3,
                      help="orthogonality strength of the accuracy study")
  parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                      help="time calls by the wall clock or by this process's CPU time")
  args = parser.parse_args()
  kinds = KINDS
  if args.quick:  # one small square model and two kinds: every code path, few compiles
    configs = [("wide MLP 32", 32, 32, 32, 16, 16)]
    repeats, auto_shape, kinds = 2, (256, 16), ("soft", "spectral")
    rows, vmap_steps, seeds, train_steps, quality_kinds, everys = 2, 16, 2, 16, ("soft",), (1, 4)
  else:
    configs = [("digits MLP", 64, 64, 10, 128, 112),
               (f"wide MLP {args.width}", args.width, args.width, args.width, 128, 16)]
    repeats, auto_shape = 5, (4096, 256)
    rows, vmap_steps, seeds, train_steps, everys = 8, 112, 8, 1000, EVERY
    quality_kinds = ("soft", "spectral")  # one Gram-based kind and the Gram-free one
  repeats = args.repeats or repeats
  seeds = args.seeds or seeds
  _common.print_header("regularizer overhead: regjax vs plain Optax step time", args, [
      f"learning rate {LEARNING_RATE}, strengths {STRENGTH}; masks: kernels (ndim >= 2) "
      "for prox, decay and orthogonality",
      "clock: " + ("CPU time of this process, all threads" if args.clock == "cpu" else "wall"),
  ])
  machine = _common.machine_name()
  for config in configs:
    run_config(*config, repeats=repeats, machine=machine, kinds=kinds, clock=args.clock)
  vmap_section(rows, vmap_steps, repeats, machine, args.quick, args.clock)
  quality(quality_kinds, everys, seeds, train_steps, args.quality_strength)
  auto_mode(*auto_shape, repeats=repeats, machine=machine, clock=args.clock)
  _common.print_footer()


if __name__ == "__main__":
  main()
