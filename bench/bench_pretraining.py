"""MLM pretraining throughput: bert4keras vs keras-hub's BertMaskedLM.

A small BERT (default: 4 layers, hidden 256, 4 heads, intermediate 1024,
vocab 21128, dropout 0.1), batch 8 x 128 with 20 masked positions per
sample, one training step of AdamW on the MLM loss over the masked positions.

Part 1 (any backend): our pretraining model (`pretraining.model`, the MLM
head on the masked positions only) and keras-hub's `BertMaskedLM` (which
gathers the masked positions too) with the same sizes, batch, loss
(`SparseCategoricalCrossentropy(from_logits=True)` weighted by the mask
weights) and optimizer (`keras.optimizers.AdamW`), both through
`model.train_on_batch`. On TensorFlow with and without XLA
(`jit_compile`); on JAX always `jax.jit`. In float32 and mixed_bfloat16.
Timings are medians over interleaved rounds (shared machines are noisy).
The backend is the only one needed: with `KERAS_BACKEND=jax` this part never
imports TensorFlow.

Part 2 (TensorFlow only): the real entry point, `pretraining.pretrain.run`
(tf.data from records, custom loop, our AdamW stack with clipping and a
warmup schedule), on synthetic records, in float32 / bf16 / fp16, with and
without `--xla`; tokens/s is the median over executions after the first.

FLOPs per training step (matmuls only; embeddings, LayerNorm, softmax and
GELU left out), with B batch, L sequence length, P masked positions, h
hidden, i intermediate, V vocabulary, n layers:

    3 * [ B*L*n*(8*h*h + 4*h*i + 4*L*h) + B*P*(2*h*h + 2*h*V) ]

(forward = Q/K/V/O projections, FFN, attention scores and values, the MLM
transform and tied decoder on the P gathered positions; backward = 2x
forward). Model-FLOPs utilisation (MFU) is achieved FLOP/s over a peak: by
default the best FLOP/s of a large matmul measured now in the same backend
and dtype (`--peak-tflops` overrides it, e.g. a GPU's datasheet figure).

    python bench/bench_pretraining.py
    python bench/bench_pretraining.py --parts fit --precisions fp32
    KERAS_BACKEND=jax python bench/bench_pretraining.py
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import keras  # noqa: E402

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def step_flops(args):
    b, l, p, h, i, v, n = args.batch_size, args.seq_len, args.max_predictions, args.hidden, \
        args.intermediate, args.vocab, args.layers
    forward = b * l * n * (8 * h * h + 4 * h * i + 4 * l * h) + b * p * (2 * h * h + 2 * h * v)
    return 3 * forward


def synthetic_batch(args, seed):
    rng = np.random.RandomState(seed)
    b, l, p = args.batch_size, args.seq_len, args.max_predictions
    ids = rng.randint(5, args.vocab, size=(b, l)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3
    positions = np.sort(np.stack([rng.choice(np.arange(1, l - 1), p, replace=False) for _ in range(b)]), 1)
    labels = np.take_along_axis(ids, positions, 1)
    np.put_along_axis(ids, positions, 4, 1)
    weights = np.ones((b, p), "float32")
    weights[:, -2:] = 0.0  # some padding positions, as in real batches
    return ids, positions.astype("int32"), labels, weights


# ---------------------------------------------------------------------------
# Part 1: model.train_on_batch, ours vs keras-hub
# ---------------------------------------------------------------------------


def build_ours(args):
    from bert4keras.models import build_transformer_model
    from pretraining.model import build_pretraining_model

    builder = build_transformer_model(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=args.intermediate, max_position=512,
        dropout_rate=0.1, attention_dropout_rate=0.1, with_mlm="linear", return_keras_model=False)
    return build_pretraining_model(builder, max_predictions=args.max_predictions)


def build_keras_hub(args):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=args.vocab, num_layers=args.layers, num_heads=args.heads, hidden_dim=args.hidden,
        intermediate_dim=args.intermediate, dropout=0.1, max_sequence_length=512, num_segments=2)
    return keras_hub.models.BertMaskedLM(backbone, preprocessor=None)


def fit_step(kind, args, precision, xla):
    """A zero-argument function running one `train_on_batch` step."""
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        model = build_ours(args) if kind == "ours" else build_keras_hub(args)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=xla)
    ids, positions, labels, weights = synthetic_batch(args, 0)
    segments = np.zeros_like(ids)
    if kind == "ours":
        x = [ids, segments, positions]
    else:
        x = {"token_ids": ids, "segment_ids": segments, "padding_mask": np.ones_like(ids, dtype=bool),
             "mask_positions": positions}

    def step():
        out = model.train_on_batch(x, labels, sample_weight=weights)
        return float(np.asarray(out, dtype="float64").ravel()[0])

    return step


def time_interleaved(fns, warmup, rounds, iters):
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(iters):
                start = time.perf_counter()
                loss = fn()
                times[name].append(time.perf_counter() - start)
                if not np.isfinite(loss):
                    raise FloatingPointError(f"{name}: loss {loss}")
    return {name: statistics.median(t) for name, t in times.items()}


# ---------------------------------------------------------------------------
# Peak FLOP/s of one large matmul, same backend and dtype
# ---------------------------------------------------------------------------


def measure_peak(dtype, n=2048, repeats=5, jit_compile=False):
    """Best FLOP/s of an n x n x n matmul (on TF through XLA with `jit_compile`)."""
    a = keras.random.normal((n, n), dtype=dtype, seed=1)
    b = keras.random.normal((n, n), dtype=dtype, seed=2)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        fn = jax.jit(lambda x, y: x @ y)
    elif backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=jit_compile)
    else:
        fn = keras.ops.matmul
    np.asarray(keras.ops.convert_to_numpy(fn(a, b)[:1, :1]))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(a, b)
        np.asarray(keras.ops.convert_to_numpy(out[:1, :1]))
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


# ---------------------------------------------------------------------------
# Part 2: pretraining.pretrain.run on synthetic records (TensorFlow)
# ---------------------------------------------------------------------------


def synthetic_records(args, directory):
    """A vocabulary of `args.vocab` CJK characters and records built from
    random text with `pretraining.data.build_records`."""
    from pretraining import data as data_lib

    chars = [chr(c) for c in range(0x4E00, 0x9FA6)] + [chr(c) for c in range(0x3400, 0x4DB6)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars[: args.vocab - 5]
    vocab = os.path.join(directory, "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    rng = np.random.RandomState(0)
    corpus = os.path.join(directory, "corpus.txt")
    needed = args.batch_size * args.seq_len * (args.cli_steps + 2)
    with open(corpus, "w", encoding="utf-8") as f:
        written = 0
        while written < needed:
            for _ in range(20):
                line = "".join(tokens[i] for i in rng.randint(5, len(tokens), size=rng.randint(30, 120)))
                f.write(line + "\n")
                written += len(line)
            f.write("\n")
    out = os.path.join(directory, "records")
    data_lib.build_records(corpus, vocab, out, seq_len=args.seq_len, max_predictions_per_seq=args.max_predictions,
                           whole_word="none", num_shards=2, progress=False)
    config = os.path.join(directory, "bert_config.json")
    with open(config, "w") as f:
        json.dump(dict(vocab_size=len(tokens), hidden_size=args.hidden, num_hidden_layers=args.layers,
                       num_attention_heads=args.heads, intermediate_size=args.intermediate,
                       max_position_embeddings=512, type_vocab_size=2, hidden_dropout_prob=0.1,
                       attention_probs_dropout_prob=0.1), f)
    return out, config


def cli_throughput(args, records, config, directory, precision, xla):
    from pretraining import pretrain

    keras.utils.clear_session()
    spe = max(1, args.cli_steps // 4)
    argv = ["--data", records, "--config", config, "--output-dir", os.path.join(directory, f"run-{precision}-{xla}"),
            "--batch-size", str(args.batch_size), "--train-steps", str(spe * 4), "--steps-per-execution", str(spe),
            "--save-every", "1000000", "--warmup-steps", "10", "--no-progress", "--no-export",
            "--mixed-precision", {"fp32": "off"}.get(precision, precision)]
    if xla:
        argv.append("--xla")
    summary = pretrain.run(pretrain.parse_args(argv))
    losses = [r["loss"] for r in summary["history"]]
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(f"CLI {precision} xla={xla}: non-finite loss")
    return summary["tokens_per_sec"]


# ---------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-predictions", type=int, default=20)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=21128)
    parser.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16, fp16")
    parser.add_argument("--parts", default="fit,cli", help="fit (ours vs keras-hub), cli (TF entry point)")
    parser.add_argument("--xla-modes", default="off,on", help="TensorFlow: comma list of off, on")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--cli-steps", type=int, default=40, help="updates per CLI run")
    parser.add_argument("--peak-tflops", type=float, help="peak TFLOP/s for MFU (default: measured matmul)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    backend = keras.backend.backend()
    if backend == "tensorflow":  # retracing notes from the repeated runs are expected
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    precisions = [p for p in args.precisions.split(",") if p]
    parts = args.parts.split(",")
    xla_modes = [m == "on" for m in args.xla_modes.split(",")] if backend == "tensorflow" else [True]
    flops = step_flops(args)
    tokens = args.batch_size * args.seq_len
    print(f"backend {backend}; BERT {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
          f"intermediate {args.intermediate}, vocab {args.vocab}; batch {args.batch_size} x {args.seq_len}, "
          f"{args.max_predictions} masked positions; {flops / 1e9:.2f} GFLOP per training step")
    peaks = {}
    for precision in precisions:
        dtype = "bfloat16" if precision == "bf16" else "float16" if precision == "fp16" else "float32"
        peaks[precision] = args.peak_tflops * 1e12 if args.peak_tflops else measure_peak(dtype)
        print(f"peak for MFU, {precision}: {peaks[precision] / 1e9:,.0f} GFLOP/s"
              f"{'' if args.peak_tflops else ' (measured 2048^3 matmul, ' + dtype + ')'}")
    results = {"backend": backend, "gflop_per_step": flops / 1e9, "fit": [], "cli": []}

    if "fit" in parts:
        print("\nPart 1: train_on_batch, same model sizes, batch, loss and optimizer")
        print(f"{'precision':<10}{'compile':<9}{'ours ms':>9}{'keras-hub ms':>14}{'ours tok/s':>12}"
              f"{'hub tok/s':>11}{'ours MFU':>10}{'hub MFU':>9}{'ours/peer':>11}")
        for precision in precisions:
            for xla in xla_modes:
                try:
                    fns = {"ours": fit_step("ours", args, precision, xla),
                           "keras-hub": fit_step("keras-hub", args, precision, xla)}
                    t = time_interleaved(fns, args.warmup, args.rounds, args.iters)
                except Exception as e:  # noqa: BLE001 - report and go on
                    print(f"{precision:<10}{'xla' if xla else 'graph':<9}failed: {type(e).__name__}: {e}"[:300])
                    continue
                mode = "jit" if backend == "jax" else ("xla" if xla else "graph")
                row = {"precision": precision, "compile": mode, "ours_ms": t["ours"] * 1e3,
                       "keras_hub_ms": t["keras-hub"] * 1e3, "ours_tokens_per_sec": tokens / t["ours"],
                       "keras_hub_tokens_per_sec": tokens / t["keras-hub"],
                       "ours_mfu": flops / t["ours"] / peaks[precision],
                       "keras_hub_mfu": flops / t["keras-hub"] / peaks[precision],
                       "ratio": t["keras-hub"] / t["ours"]}
                results["fit"].append(row)
                print(f"{precision:<10}{mode:<9}{row['ours_ms']:>9.1f}{row['keras_hub_ms']:>14.1f}"
                      f"{row['ours_tokens_per_sec']:>12,.0f}{row['keras_hub_tokens_per_sec']:>11,.0f}"
                      f"{row['ours_mfu']:>10.1%}{row['keras_hub_mfu']:>9.1%}{row['ratio']:>10.2f}x")
        print("(ours/peer = ours tokens/s over keras-hub tokens/s)")

    if "cli" in parts:
        if backend != "tensorflow":
            print("\nnote: part 2 (pretraining.pretrain, tf.distribute) needs the TensorFlow backend; skipped")
        else:
            print("\nPart 2: python -m pretraining.pretrain (tf.data + custom loop + AdamW stack), "
                  "synthetic records")
            print(f"{'precision':<10}{'compile':<9}{'step ms':>9}{'tokens/s':>11}{'MFU':>8}")
            with tempfile.TemporaryDirectory() as directory:
                records, config = synthetic_records(args, directory)
                for precision in precisions + (["fp16"] if "fp16" not in precisions else []):
                    peak = peaks.get(precision) or (args.peak_tflops * 1e12 if args.peak_tflops
                                                    else measure_peak("float16"))
                    for xla in xla_modes:
                        mode = "xla" if xla else "graph"
                        try:
                            rate = cli_throughput(args, records, config, directory, precision, xla)
                        except Exception as e:  # noqa: BLE001 - report and go on
                            print(f"{precision:<10}{mode:<9}failed: {type(e).__name__}: {e}"[:300])
                            continue
                        row = {"precision": precision, "compile": mode, "step_ms": tokens / rate * 1e3,
                               "tokens_per_sec": rate, "mfu": rate / tokens * flops / peak}
                        results["cli"].append(row)
                        print(f"{precision:<10}{mode:<9}{row['step_ms']:>9.1f}{rate:>11,.0f}{row['mfu']:>8.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
