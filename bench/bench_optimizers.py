"""Step-time overhead of the bert4keras optimizer extensions vs plain Keras Adam.

One small BERT MLM training step (default: 4 layers, hidden 256, 4 heads,
intermediate 1024, vocab 21128, full MLM softmax, batch 8 x 128), the same
model weights and data for every optimizer, measured in one run. Timings are
medians over interleaved rounds, since shared machines are noisy; the
overhead is the median of per-round ratios (each round times every optimizer
back to back), which cancels slow drift in machine load. A second table times
the optimizer update alone (`optimizer.apply` on fixed gradients, compiled the
same way), which is much less sensitive to load.

    python bench/bench_optimizers.py                    # TF backend, XLA
    python bench/bench_optimizers.py --no-xla           # TF graph without XLA
    KERAS_BACKEND=jax python bench/bench_optimizers.py  # JAX backend (jax.jit)

Optimizers compared (ratios are against `keras.optimizers.Adam`):
- `issue-stack`: EMA(accumulation(layer-wise lr(weight decay(Adam)))) with
  `grad_accum_steps=1`, i.e. every call is a full update: the honest
  per-update overhead of the stack.
- `issue-stack-accum4`: the same with `grad_accum_steps=4`; time per call
  (micro-step), 3 of 4 calls only accumulate.
- `everything`: all extensions at once (clipping, weight decay, layer
  adaptation, layer-wise lr, piecewise lr, lookahead, EMA; no accumulation).
- `keras-adam-accum4`: Keras' own `gradient_accumulation_steps=4`, as a peer.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import keras  # noqa: E402

from bert4keras import optimizers as bo  # noqa: E402


def build_model(args):
    """The MLM model; falls back to a hand-built one if models.py is absent."""
    try:
        from bert4keras.models import build_transformer_model
    except ImportError as e:  # pragma: no cover - only before models.py exists
        print(f"NOTE: bert4keras.models unavailable ({e}); using a hand-built model")
        return build_fallback_model(args), "hand-built"
    bert = build_transformer_model(
        config_path=None,
        model="bert",
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position=max(512, args.seq),
        with_mlm=True,
    )
    return keras.Model(bert.inputs, bert.outputs[-1]), "build_transformer_model"


def build_fallback_model(args):
    token_ids = keras.Input((None,), dtype="int32")
    segment_ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(args.vocab, args.hidden, name="Embedding-Token")(token_ids)
    x = x + keras.layers.Embedding(2, args.hidden, name="Embedding-Segment")(segment_ids)
    x = keras.layers.LayerNormalization(epsilon=1e-12, name="Embedding-Norm")(x)
    for i in range(args.layers):
        a = keras.layers.MultiHeadAttention(
            args.heads, args.hidden // args.heads, name=f"Transformer-{i}-MultiHeadSelfAttention"
        )(x, x)
        x = keras.layers.LayerNormalization(
            epsilon=1e-12, name=f"Transformer-{i}-MultiHeadSelfAttention-Norm"
        )(x + a)
        f = keras.layers.Dense(args.intermediate, activation="gelu", name=f"Transformer-{i}-FeedForward")(x)
        f = keras.layers.Dense(args.hidden, name=f"Transformer-{i}-FeedForward-Out")(f)
        x = keras.layers.LayerNormalization(epsilon=1e-12, name=f"Transformer-{i}-FeedForward-Norm")(x + f)
    x = keras.layers.Dense(args.hidden, activation="gelu", name="MLM-Dense")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-12, name="MLM-Norm")(x)
    out = keras.layers.Dense(args.vocab, activation="softmax", name="MLM-Bias")(x)
    return keras.Model([token_ids, segment_ids], out)


def optimizers(model, lr=1e-4):
    Stack = bo.extend_with_exponential_moving_average(
        bo.extend_with_gradient_accumulation(
            bo.extend_with_layerwise_lr(bo.extend_with_weight_decay(keras.optimizers.Adam))
        )
    )
    multipliers = bo.layerwise_lr_decay(model, 0.8)
    stack_kwargs = dict(
        learning_rate=lr,
        weight_decay_rate=0.01,
        exclude_from_weight_decay=["Norm", "bias"],
        lr_multipliers=multipliers,
        ema_momentum=0.999,
    )
    Everything = bo.extend_with_exponential_moving_average(
        bo.extend_with_lookahead(
            bo.extend_with_piecewise_linear_lr(
                bo.extend_with_layerwise_lr(
                    bo.extend_with_layer_adaptation(
                        bo.extend_with_weight_decay(
                            bo.extend_with_gradient_clipping(keras.optimizers.Adam)
                        )
                    )
                )
            )
        )
    )
    return {
        "keras-adam": lambda: keras.optimizers.Adam(learning_rate=lr),
        "issue-stack": lambda: Stack(grad_accum_steps=1, **stack_kwargs),
        "issue-stack-accum4": lambda: Stack(grad_accum_steps=4, **stack_kwargs),
        "everything": lambda: Everything(
            clip_global_norm=1.0,
            exclude_from_layer_adaptation=["Norm", "bias"],
            lr_schedule={1000: 1.0, 100000: 0.1},
            **stack_kwargs,
        ),
        "keras-adam-accum4": lambda: keras.optimizers.Adam(
            learning_rate=lr, gradient_accumulation_steps=4
        ),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=21128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--iters", type=int, default=3, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-xla", action="store_true")
    p.add_argument("--only", default="", help="comma-separated optimizer names")
    p.add_argument("--no-update-only", action="store_true", help="skip the update-only timing")
    args = p.parse_args()
    backend = keras.backend.backend()
    jit = not args.no_xla

    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    token_ids = rng.randint(1, args.vocab, (args.batch, args.seq)).astype("int32")
    segment_ids = np.zeros_like(token_ids)
    labels = rng.randint(1, args.vocab, (args.batch, args.seq)).astype("int32")

    template, source = build_model(args)
    init = template.get_weights()
    factories = optimizers(template)
    names = [n for n in factories if not args.only or n in args.only.split(",")]
    print(
        f"backend={backend} jit_compile={jit} model={source} layers={args.layers} "
        f"hidden={args.hidden} vocab={args.vocab} batch={args.batch}x{args.seq} "
        f"params={template.count_params():,}"
    )

    models = {}
    for name in names:
        model, _ = build_model(args)
        model.set_weights(init)
        model.compile(
            optimizer=factories[name](),
            loss="sparse_categorical_crossentropy",
            jit_compile=jit,
        )
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            model.train_on_batch([token_ids, segment_ids], labels)
        print(f"  {name:20s} compiled + {args.warmup} warmup steps: {time.perf_counter() - t0:.1f} s")
        models[name] = model

    times = {name: [] for name in names}
    round_medians = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:  # interleaved, so drift hits every optimizer alike
            model = models[name]
            block = []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                loss = model.train_on_batch([token_ids, segment_ids], labels)
                float(loss)  # block until done (JAX dispatches asynchronously)
                block.append(time.perf_counter() - t0)
            times[name].extend(block)
            round_medians[name].append(statistics.median(block))

    print("\nFull training step (forward + backward + update), ms:")
    report(names, times, round_medians)

    if not args.no_update_only:
        print("\nUpdate only (optimizer.apply on fixed gradients, compiled), ms:")
        utimes, umedians = update_only(args, models, names, jit)
        report(names, utimes, umedians)
        if "keras-adam" in utimes and "issue-stack" in utimes:
            extra = statistics.median(utimes["issue-stack"]) - statistics.median(
                utimes["keras-adam"]
            )
            step = statistics.median(times["keras-adam"])
            print(
                f"\nissue-stack update costs {extra * 1e3:+.1f} ms more than Adam's: "
                f"{100 * extra / step:+.1f}% of the median Adam training step"
            )

    if "keras-adam" in times and "issue-stack" in times:
        ratios = [a / b for a, b in zip(round_medians["issue-stack"], round_medians["keras-adam"])]
        print(
            f"\nOVERHEAD issue-stack (every call an update) vs keras Adam, median of "
            f"paired per-round ratios: {100 * (statistics.median(ratios) - 1):+.1f}% "
            f"(goal <= +10%)"
        )


def report(names, times, round_medians):
    base = round_medians.get("keras-adam")
    print(
        f"{'optimizer':22s} {'median':>8s} {'min':>8s} {'p25':>8s} {'p75':>8s}"
        f" {'paired ratio vs Adam (median [p25, p75])':>44s}"
    )
    for name in names:
        ts = sorted(times[name])
        q = lambda f: ts[min(len(ts) - 1, int(f * len(ts)))] * 1e3  # noqa: E731
        line = (
            f"{name:22s} {statistics.median(ts) * 1e3:8.1f} {ts[0] * 1e3:8.1f}"
            f" {q(0.25):8.1f} {q(0.75):8.1f}"
        )
        if base:
            r = sorted(a / b for a, b in zip(round_medians[name], base))
            rq = lambda f: r[min(len(r) - 1, int(f * len(r)))]  # noqa: E731
            line += (
                f"    {statistics.median(r):.3f}x ({100 * (statistics.median(r) - 1):+.1f}%)"
                f" [{rq(0.25):.3f}, {rq(0.75):.3f}]"
            )
        print(line)


def update_only(args, models, names, jit):
    """Times `optimizer.apply` alone on fixed gradients, compiled like fit."""
    backend = keras.backend.backend()
    rng = np.random.RandomState(1)
    runners = {}
    for name in names:
        model = models[name]
        opt = model.optimizer
        variables = model.trainable_variables
        grads = [
            keras.ops.convert_to_tensor((1e-3 * rng.randn(*v.shape)).astype("float32"))
            for v in variables
        ]
        if backend == "tensorflow":
            import tensorflow as tf

            fn = tf.function(lambda: opt.apply(grads, variables), jit_compile=jit)

            def run(fn=fn):
                fn()
                float(keras.ops.convert_to_numpy(opt.iterations))

        elif backend == "jax":
            import jax

            fn = jax.jit(lambda ov, tv, g, opt=opt: opt.stateless_apply(ov, g, tv))
            state = {
                "tv": [v.value for v in variables],
                "ov": [v.value for v in opt.variables],
            }

            def run(fn=fn, state=state, grads=grads):
                tv, ov = fn(state["ov"], state["tv"], grads)
                jax.block_until_ready(tv)
                state["tv"], state["ov"] = tv, ov

        else:
            raise SystemExit(f"update-only timing not written for backend {backend}")
        for _ in range(args.warmup):
            run()
        runners[name] = run
    times = {name: [] for name in names}
    medians = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            block = []
            for _ in range(args.iters * 2):
                t0 = time.perf_counter()
                runners[name]()
                block.append(time.perf_counter() - t0)
            times[name].extend(block)
            medians[name].append(statistics.median(block))
    return times, medians


if __name__ == "__main__":
    main()
