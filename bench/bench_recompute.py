"""Activation memory and step time of a training step with and without recompute.

A BERT encoder (default: 12 layers, hidden 256, 4 heads, intermediate 1024,
vocab 21128, hidden dropout 0.1) with a token-classification head (8 labels,
NER-like fine-tuning; the full-vocabulary MLM softmax would add a large
activation that no block remat touches) trains with Adam on batch 4 x 512.
Each rematerialisation variant is built from the same configuration, and one
training step (forward, backward, Adam update) is measured three ways:

- step memory, by the backend's own counter:
  TensorFlow: the CPU/GPU allocator's peak (`tf.config.experimental.
  get_memory_info`, reset before the step) minus what was allocated before the
  step (weights, optimizer state, inputs): the step's incremental peak, i.e.
  activations + gradients + temporaries. It counts XLA's buffers too.
  JAX: `jax.jit(step).lower(...).compile().memory_analysis()
  .temp_size_in_bytes`, XLA's buffer assignment for everything that is
  neither an argument nor an output (weights/optimizer state are donated):
  the same quantity, known before running.
- peak RSS (`--rss`): each variant in its own process; the process's resident
  set after building, tracing and (JAX) compiling, before the first step, is
  subtracted from its high-water mark during that first step (`VmHWM`,
  reset through `/proc/self/clear_refs`). The first step is used because
  TensorFlow keeps the pages of a finished step resident, so later steps
  add almost nothing. glibc is told to return freed memory at once
  (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`). A cross-check of the
  counters; for tf-xla it includes XLA's compilation, which happens on the
  first run.
- step time: median over interleaved rounds (every variant once per round,
  in the same process), and the median of per-round ratios against `none`,
  which cancels drift in machine load. Wall time ("step s") and the
  process's CPU time ("cpu s", all threads), whose ratio is steadier on a
  machine shared with other jobs.

"act" columns subtract the gradient size (parameter bytes) from the step's
incremental peak: an approximation of activation memory (not every gradient
is alive at the peak, so it is a slight under-estimate, the same for all
variants).

Variants (`--variants`):
- none:          recompute=False.
- layers:        recompute=True, the library's choice: each block's
                 MultiHeadAttention and FeedForward layer is rematerialised.
- layers+small:  as `layers`, and also every Add and LayerNorm layer of the
                 blocks (bench-only Transformer subclass). Dropout layers stay
                 outside: a Keras Dropout under remat steps its seed generator
                 inside jax.checkpoint (a leaked tracer) and draws a new mask
                 in TensorFlow's recomputation; it stores only its mask anyway.
- block:         one remat per whole transformer block (attention, dropout,
                 add, norm, feed-forward, dropout, add, norm in one layer,
                 `keras.remat`), so only each block's input and its two
                 boolean dropout masks are stored (bench-only subclass). The
                 masks are drawn outside the rematerialised function, so the
                 recomputation uses the same ones: exact gradients with
                 dropout on both backends (tests/test_bench_recompute.py).

Modes, each in its own subprocess:
- tf-graph: tf.function without XLA.
- tf-xla: tf.function(jit_compile=True).
- jax: jax.jit.
- jax-keep-barriers: jax.jit with
  XLA_FLAGS=--xla_disable_hlo_passes=cse_barrier_expander. XLA:CPU removes
  the optimization barriers that jax.checkpoint puts around a recomputation
  right after its first CSE pass, and later passes merge the recomputation
  back into the forward pass: remat is undone and saves nothing. Keeping the
  barriers restores it. (TensorFlow's `tf.recompute_grad` makes the
  recomputation depend on the incoming gradient instead, which XLA keeps.)
For the XLA modes the number of matrix products in the optimized HLO is
printed too: if XLA undid the recomputation, a remat variant has as many as
`none`. For tf-graph it is counted in the traced graph, before grappler.

    python bench/bench_recompute.py                           # all modes, all variants
    python bench/bench_recompute.py --modes tf-graph,jax-keep-barriers --rss
    python bench/bench_recompute.py --variants none,layers --rounds 3
    python bench/bench_recompute.py --tiny                    # seconds per mode; smoke run

Goal (issue 4): at least 2x less activation memory at no more than 35% extra
step time.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")

# mode -> (Keras backend, extra environment of its worker)
MODES = {
    "tf-graph": ("tensorflow", {}),
    "tf-xla": ("tensorflow", {}),
    "jax": ("jax", {}),
    # XLA:CPU strips the optimization barriers that jax.checkpoint relies on
    # right after its first CSE pass (`cse_barrier_expander`), and later
    # passes then merge the recomputation with the forward: remat is undone.
    "jax-keep-barriers": ("jax", {"XLA_FLAGS": "--xla_disable_hlo_passes=cse_barrier_expander"}),
}
VARIANTS = ("none", "layers", "layers+small", "block")
MB = 1024 * 1024
# Freed blocks go back to the OS at once, so RSS follows live memory.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="tf-graph,tf-xla,jax,jax-keep-barriers", help="comma list of " + ", ".join(MODES))
    p.add_argument("--variants", default="none,layers,layers+small,block", help="comma list of " + ", ".join(VARIANTS))
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=21128)
    p.add_argument("--labels", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1, help="hidden dropout rate")
    p.add_argument("--attention-dropout", type=float, default=0.0)
    p.add_argument("--rounds", type=int, default=5, help="timed steps per variant (interleaved)")
    p.add_argument("--rss", action="store_true", help="also measure peak RSS, one process per variant")
    p.add_argument("--no-hlo", action="store_true", help="skip counting matrix products in the HLO")
    p.add_argument("--tiny", action="store_true", help="2 layers, hidden 32, seq 16: a smoke run")
    p.add_argument("--json", help="also write all results to this file")
    # Internal: run one mode (all variants, or one with --rss-only) in this process.
    p.add_argument("--worker", choices=sorted(MODES), help=argparse.SUPPRESS)
    p.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.layers, args.hidden, args.heads, args.intermediate = 2, 32, 4, 64
        args.vocab, args.seq, args.batch, args.rounds = 100, 16, 2, 2
    modes = args.modes.split(",")
    variants = args.variants.split(",")
    for m in modes:
        if m not in MODES:
            p.error(f"--modes: unknown mode {m!r}; choose from {sorted(MODES)}")
    for v in variants:
        if v not in VARIANTS:
            p.error(f"--variants: unknown variant {v!r}; choose from {list(VARIANTS)}")
    if "none" not in variants:
        variants.insert(0, "none")  # the reference of every ratio
    args.mode_list, args.variant_list = modes, variants
    return args


# ----------------------------------------------------------------- models
def transformer_classes():
    """The bench-only Transformer subclasses of the `layers+small` and `block` variants."""
    import keras

    from bert4keras.layers import FeedForward, LayerNormalization, MultiHeadAttention
    from bert4keras.models import BERT

    small = re.compile(r"^Transformer-\d+-.+-(Add|Norm)$")
    class SmallLayersRematBERT(BERT):
        """`recompute=True` plus remat of every block Add and LayerNorm layer.

        Dropout stays outside: a seed generator stepped under remat leaks a
        tracer out of `jax.checkpoint` (and draws a new mask on TensorFlow),
        and a dropout layer stores only its mask anyway.
        """

        def apply(self, inputs, layer_class, name, arguments=None, **kwargs):
            full_name = self.prefix + name
            if self.recompute and full_name not in self.layers and small.match(name):
                with keras.RematScope(mode="list_of_layers", layer_names=[full_name]):
                    self.layers[full_name] = layer_class(name=full_name, **kwargs)
            return super().apply(inputs, layer_class, name, arguments, **kwargs)

    class TransformerBlock(keras.layers.Layer):
        """One post-LN block as a single layer, the same computation as `BERT`'s.

        With `remat=True` the whole block runs under `keras.remat`. Its two
        hidden-dropout masks are drawn outside the rematerialised function
        and passed in as boolean tensors: a seed generator stepped inside it
        leaks a tracer out of `jax.checkpoint`, and on TensorFlow the
        recomputation would draw new masks.
        """

        def __init__(self, heads, head_size, intermediate_size, activation, dropout_rate,
                     attention_dropout_rate, epsilon, kernel_initializer, remat=False, **kwargs):
            super().__init__(**kwargs)
            self.dropout_rate, self.remat = float(dropout_rate), remat
            self.attention = MultiHeadAttention(
                heads=heads, head_size=head_size, attention_dropout=attention_dropout_rate,
                kernel_initializer=kernel_initializer, name="attention",
            )
            self.attention_norm = LayerNormalization(epsilon=epsilon, name="attention_norm")
            self.feed_forward = FeedForward(
                intermediate_size, activation=activation, kernel_initializer=kernel_initializer,
                name="feed_forward",
            )
            self.feed_forward_norm = LayerNormalization(epsilon=epsilon, name="feed_forward_norm")
            self.seed_generator = keras.random.SeedGenerator()

        def build(self, input_shape):
            self.attention.build([input_shape] * 3)
            self.attention_norm.build(input_shape)
            self.feed_forward.build(input_shape)
            self.feed_forward_norm.build(input_shape)

        def call(self, x, attention_mask=None, training=None):
            ops, rate = keras.ops, self.dropout_rate
            masks = None
            if training and rate > 0:
                masks = [keras.random.uniform(ops.shape(x), seed=self.seed_generator) >= rate for _ in "ab"]

            def drop(y, mask):
                return y if masks is None else ops.where(mask, y / (1.0 - rate), ops.zeros_like(y))

            # Boolean masks are closed over, not passed: they need no gradient,
            # and tf.recompute_grad adds a zero to every argument it is given.
            def block(x):
                y = self.attention([x, x, x], attention_mask=attention_mask, training=training)
                x = self.attention_norm(x + drop(y, masks and masks[0]))
                y = self.feed_forward(x)
                return self.feed_forward_norm(x + drop(y, masks and masks[1]))

            return (keras.remat(block) if self.remat else block)(x)

        def compute_output_shape(self, input_shape):
            return input_shape

    class BlockRematBERT(BERT):
        """One rematerialised layer per transformer block (bench only)."""

        def apply_main_layers(self, x, index, attention_mask, cache=None, position_ids=None):
            if cache is not None:
                raise NotImplementedError("the bench-only block has no decoding cache")
            y = self.apply(
                x,
                TransformerBlock,
                "Transformer-%d" % index,
                arguments={"attention_mask": attention_mask},
                heads=self.num_attention_heads,
                head_size=self.attention_head_size,
                intermediate_size=self.intermediate_size,
                activation=self.hidden_act,
                dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate,
                epsilon=self.layer_norm_eps,
                kernel_initializer=self.initializer,
                remat=self.recompute,
            )
            return y, None

    return {"layers+small": SmallLayersRematBERT, "block": BlockRematBERT}


def build_model(args, variant, classes=None, recompute=None):
    """The token-classification model of `variant` (see the module docstring).

    `recompute` overrides the variant's own setting (e.g. the `block`
    architecture without remat, as a reference).
    """
    import keras

    from bert4keras.models import build_transformer_model

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    classes = classes or transformer_classes()
    encoder = build_transformer_model(
        model=classes.get(variant, "bert"),
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position=max(512, args.seq),
        dropout_rate=args.dropout,
        attention_dropout_rate=args.attention_dropout,
        recompute=variant != "none" if recompute is None else recompute,
    )
    logits = keras.layers.Dense(args.labels, name="Token-Classifier")(encoder.output)
    return keras.Model(encoder.inputs, logits, name="bench_" + variant.replace("+", "_"))


def make_batch(args, seed=0):
    import numpy as np

    rng = np.random.RandomState(seed)
    ids = rng.randint(1, args.vocab, size=(args.batch, args.seq)).astype("int32")
    segs = np.zeros_like(ids)
    labels = rng.randint(0, args.labels, size=(args.batch, args.seq)).astype("int32")
    return ids, segs, labels


# ------------------------------------------------------------- train steps
class TFStep:
    """tf.function training step (GradientTape + Adam), optionally XLA-compiled."""

    def __init__(self, model, xla, batch):
        import keras
        import tensorflow as tf

        self.tf, self.model, self.batch = tf, model, [tf.constant(a) for a in batch]
        self.optimizer = keras.optimizers.Adam(1e-4)
        self.optimizer.build(model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function(jit_compile=xla)
        def step(ids, segs, labels):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model([ids, segs], training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            self.optimizer.apply(grads, model.trainable_variables)
            return loss

        self.step, self.xla = step, xla

    def run(self):
        return float(self.step(*self.batch))

    def compile(self, run=True):
        if run:
            self.run()  # traces (and XLA-compiles) on the first call
        else:
            self.step.get_concrete_function(*self.batch)  # traces only; XLA compiles on the first run

    def memory_counter(self):
        """Incremental allocator peak of one step, in bytes."""
        tf = self.tf
        device = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"
        tf.config.experimental.reset_memory_stats(device)
        before = tf.config.experimental.get_memory_info(device)["current"]
        self.run()
        return tf.config.experimental.get_memory_info(device)["peak"] - before

    def matmul_count(self):
        if self.xla:
            hlo = self.step.experimental_get_compiler_ir(*self.batch)(stage="optimized_hlo")
            return count_hlo_matmuls(hlo), "optimized HLO"
        graph = self.step.get_concrete_function(*self.batch).graph
        kinds = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"}
        return sum(op.type in kinds for op in graph.get_operations()), "traced graph (pre-grappler)"


class JaxStep:
    """jax.jit training step on `stateless_call`, weights/optimizer state donated."""

    def __init__(self, model, batch):
        import jax
        import keras

        self.jax, self.model = jax, model
        self.optimizer = keras.optimizers.Adam(1e-4)
        self.optimizer.build(model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def loss(trainable, non_trainable, ids, segs, labels):
            logits, non_trainable = model.stateless_call(trainable, non_trainable, [ids, segs], training=True)
            return loss_fn(labels, logits), non_trainable

        def step(trainable, non_trainable, opt_vars, ids, segs, labels):
            (value, non_trainable), grads = jax.value_and_grad(loss, has_aux=True)(
                trainable, non_trainable, ids, segs, labels
            )
            trainable, opt_vars = self.optimizer.stateless_apply(opt_vars, grads, trainable)
            return value, trainable, non_trainable, opt_vars

        self.jitted = jax.jit(step, donate_argnums=(0, 1, 2))
        self.batch = [jax.numpy.asarray(a) for a in batch]
        self.state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in self.optimizer.variables],
        )
        self.compiled = None

    def compile(self, run=True):
        self.compiled = self.jitted.lower(*self.state, *self.batch).compile()
        if run:
            self.run()

    def run(self):
        value, *state = self.compiled(*self.state, *self.batch)
        self.state = tuple(state)
        return float(self.jax.block_until_ready(value))

    def memory_counter(self):
        return self.compiled.memory_analysis().temp_size_in_bytes

    def matmul_count(self):
        return count_hlo_matmuls(self.compiled.as_text()), "optimized HLO"


def count_hlo_matmuls(hlo_text):
    """Matrix products in an HLO module (plain dots or oneDNN matmul custom calls)."""
    dots = len(re.findall(r"\bdot\(", hlo_text))
    onednn = len(re.findall(r'custom_call_target="__onednn\$matmul"', hlo_text))
    return dots + onednn


# ---------------------------------------------------------------- workers
def read_status_kb(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def make_step(mode, model, batch):
    if MODES[mode][0] == "jax":
        return JaxStep(model, batch)
    return TFStep(model, mode == "tf-xla", batch)


def worker(args):
    import gc

    import keras

    mode = args.worker
    expected = MODES[mode][0]
    if keras.backend.backend() != expected:
        raise RuntimeError(f"mode {mode} needs KERAS_BACKEND={expected}, got {keras.backend.backend()}")
    batch = make_batch(args)
    classes = transformer_classes()
    if args.rss_only:
        (variant,) = args.variant_list[-1:]  # the parent passes exactly "none,<variant>"
        model = build_model(args, variant, classes)
        step = make_step(mode, model, batch)
        # Measured on the first run: TensorFlow's CPU allocator keeps the RSS
        # of a finished step, so a second step would add almost nothing.
        step.compile(run=False)
        gc.collect()
        before = read_status_kb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        step.run()
        peak = read_status_kb("VmHWM")
        print(json.dumps({"variant": variant, "rss_before": before * 1024, "rss_step": (peak - before) * 1024}))
        return

    results = {}
    steps = {}
    for variant in args.variant_list:
        keras.utils.set_random_seed(0)
        model = build_model(args, variant, classes)
        t0 = time.perf_counter()
        try:
            step = make_step(mode, model, batch)
            step.compile()
        except Exception as e:  # reported, not hidden: the table shows the error
            message = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(e)).split())
            results[variant] = {"error": f"{type(e).__name__}: ...{message[-400:]}"}
            continue
        compile_s = time.perf_counter() - t0
        param_bytes = sum(4 * int(_size(v.shape)) for v in model.trainable_variables)
        results[variant] = {
            "compile_s": compile_s,
            "param_bytes": param_bytes,
            "memory": step.memory_counter(),
            "times": [],
            "cpu_times": [],
        }
        if not args.no_hlo:
            count, where = step.matmul_count()
            results[variant]["matmuls"], results[variant]["matmuls_in"] = count, where
        steps[variant] = step
    for step in steps.values():
        step.run()  # an untimed round after the HLO/graph inspection above
    for _ in range(args.rounds):
        for variant, step in steps.items():
            t, c = time.perf_counter(), time.process_time()
            step.run()
            results[variant]["times"].append(time.perf_counter() - t)
            results[variant]["cpu_times"].append(time.process_time() - c)
    print(json.dumps({"mode": mode, "backend": keras.backend.backend(), "results": results}))


def _size(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


# ----------------------------------------------------------------- parent
def child_command(args, mode, variants, rss_only=False):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--variants", ",".join(variants)]
    for name in ("layers", "hidden", "heads", "intermediate", "vocab", "labels", "seq", "batch", "rounds"):
        cmd += ["--" + name, str(getattr(args, name))]
    cmd += ["--dropout", str(args.dropout), "--attention-dropout", str(args.attention_dropout)]
    if args.no_hlo:
        cmd.append("--no-hlo")
    if rss_only:
        cmd.append("--rss-only")
    return cmd


def run_child(cmd, mode, rss_only=False):
    backend, extra = MODES[mode]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    if rss_only:
        env.update(MALLOC_ENV)  # not while timing: page faults on every big buffer
    for key, value in extra.items():
        env[key] = " ".join(v for v in (env.get(key), value) if v)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.abspath(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"worker failed ({proc.returncode}): {' '.join(cmd)}")
    return json.loads(lines[-1])


def ratio_rounds(times, base):
    return statistics.median(t / b for t, b in zip(times, base))


def _ratio(a, b):
    return a / b if a > 0 and b > 0 else float("nan")


def report(args, mode, out, rss):
    res = out["results"]
    base = res["none"]
    extra = " ".join(f"{k}={v}" for k, v in MODES[mode][1].items())
    print(f"\n== {mode} (KERAS_BACKEND={out['backend']}{' ' + extra if extra else ''}) ==")
    counter = "allocator peak - current" if out["backend"] == "tensorflow" else "XLA temp_size (memory_analysis)"
    header = f"{'variant':<14}{'step mem MB':>12}{'saving':>8}{'act MB':>9}{'act saving':>11}"
    if rss:
        header += f"{'RSS MB':>9}{'RSS saving':>11}"
    header += f"{'step s':>8}{'overhead':>9}{'cpu s':>7}{'cpu ovh':>9}{'matmuls':>8}{'compile s':>10}"
    print(f"step mem: {counter}; act = step mem - gradient size ({base['param_bytes'] / MB:.1f} MB)")
    print(header)
    errors = {v: r["error"] for v, r in res.items() if "error" in r}
    if "none" in errors:
        print(f"none FAILED: {errors['none']}")
        return
    for variant, r in res.items():
        if variant in errors:
            print(f"{variant:<14}FAILED: {errors[variant]}")
            continue
        act, base_act = r["memory"] - r["param_bytes"], base["memory"] - base["param_bytes"]
        line = f"{variant:<14}{r['memory'] / MB:>12.1f}{_ratio(base['memory'], r['memory']):>7.2f}x"
        line += f"{act / MB:>9.1f}{_ratio(base_act, act):>10.2f}x"
        if rss and variant in rss:
            rv, rb = rss[variant]["rss_step"], rss["none"]["rss_step"]
            line += f"{rv / MB:>9.1f}{_ratio(rb, rv):>10.2f}x"
        ratio = ratio_rounds(r["times"], base["times"])
        cpu_ratio = ratio_rounds(r["cpu_times"], base["cpu_times"])
        line += f"{statistics.median(r['times']):>8.3f}{100 * (ratio - 1):>+8.1f}%"
        line += f"{statistics.median(r['cpu_times']):>7.2f}{100 * (cpu_ratio - 1):>+8.1f}%"
        line += f"{r.get('matmuls', '-'):>8}{r['compile_s']:>10.1f}"
        print(line)
    where = next((r["matmuls_in"] for r in res.values() if "matmuls_in" in r), None)
    if where:
        print(f"matmuls counted in the {where}")


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    print("command: python bench/bench_recompute.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(
        f"BERT {args.layers} layers, hidden {args.hidden}, {args.heads} heads, intermediate "
        f"{args.intermediate}, vocab {args.vocab}, dropout {args.dropout}/{args.attention_dropout}; "
        f"token head {args.labels} labels; batch {args.batch} x {args.seq}; Adam; "
        f"{args.rounds} timed rounds"
    )
    all_results = {}
    for mode in args.mode_list:
        out = run_child(child_command(args, mode, args.variant_list), mode)
        rss = None
        if args.rss:
            rss = {
                v: run_child(child_command(args, mode, ["none", v], rss_only=True), mode, rss_only=True)
                for v in args.variant_list
                if "error" not in out["results"][v]
            }
        report(args, mode, out, rss)
        all_results[mode] = {"counters": out, "rss": rss}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": all_results}, f, indent=1)


if __name__ == "__main__":
    main()
