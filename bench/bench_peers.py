"""Same-run speed against the peers: ours vs keras-hub vs bert4keras 0.11.5.

Rows (fp32, batch 8 x 128 by default; every peer builds the same sizes
with random weights and runs the same token ids):

- `minilm`: MiniLM-L6 inference (6 layers, hidden 384, 12 heads,
  intermediate 1536, vocab 30522), the sequence output;
- `base`: BERT-base inference (12 layers, hidden 768, 12 heads,
  intermediate 3072, vocab 21128 as bert-base-chinese), the sequence output;
- `train`: one training step of a small BERT (4 layers, hidden 256, 4 heads,
  intermediate 1024, vocab 21128, dropout 0.1) with the MLM head (dense,
  LayerNorm, tied embedding, bias) on every position: softmax over the whole
  vocabulary, sparse categorical cross-entropy from logits, Adam(1e-4),
  `model.train_on_batch`;
- `albert-minilm`, `albert-base`: ALBERT (one shared block, embedding_size
  128) at the MiniLM and BERT-base sizes, inference;
- `nezha-minilm`, `nezha-base`: NEZHA (relative positions clipped at 64)
  at those sizes, inference.

Peers:
- ours: `build_transformer_model` from this tree (`model=` the row's family);
- keras-hub (bert rows only, this process, same backend and compiler):
  `keras_hub.models.BertBackbone` for inference (its outputs include the
  pooler; its blocks use the tanh GELU where ours and bert4keras use the
  exact erf form), and `BertMaskedLM` with every position given as a mask
  position for training, as in bench/bench_pretraining.py;
- bert4keras 0.11.5 on tf-keras, in its own interpreter (`--b4k-python`,
  default env B4K_PYTHON; see tests/data/make_family_reference_b4k.py for
  that environment), run with
  TF_KERAS=1 TF_USE_LEGACY_KERAS=1 as a persistent worker that gets "run n
  calls" commands on stdin and answers with the call times on stdout. A
  missing interpreter is a printed note and the rows run without it.

Compilation: on TensorFlow, inference runs through
`tf.function(jit_compile=True)` and training through
`model.compile(jit_compile=True)` + `train_on_batch`, for all three peers.
On JAX (`KERAS_BACKEND=jax`) ours and keras-hub run under `jax.jit`
(inference: `stateless_call`; training: `compile(jit_compile=True)`);
bert4keras 0.11.5 has no JAX, so its TF + XLA time is printed as the
reference of the row ("(TF+XLA)").

Timing: per row every peer is built, compiled and warmed up, then each of
`--rounds` rounds runs `--iters` timed calls of every peer in turn, the
order rotating by one peer each round, with a 50 ms pause between peers
(a thread pool spins briefly after its work, which would slow a peer in
another process that starts at once); the worker times its own calls, so
no pipe traffic is timed. Medians and quartiles are over all timed calls of a peer.
The paired column divides each round's peer time by our time in the same
round and gives the median of those ratios with a bootstrap 95% interval,
and a verdict: 'faster' or 'slower' when the whole interval is on one
side of 1, else 'tie' (the run cannot tell the two apart).
All processes run on the same CPUs (`--threads`: CPU affinity and TF's
intra-op threads). The 1-minute load average is printed per row.

FLOPs are the matmuls only (embedding lookups, LayerNorm, softmax, GELU and
the pooler left out), with B batch, L length, n layers, h hidden,
i intermediate, e embedding size, V vocabulary:

    inference  F = n * (B*L*(8*h*h + 4*h*i) + 4*B*L*L*h)
                   + 2*B*L*e*h           (ALBERT: the embedding mapping, e != h)
                   + n * 4*B*L*L*h       (NEZHA: relative features on keys and values)
    training   3 * (F + B*L*(2*h*e + 2*e*V))   (MLM dense and tied decoder;
                                               backward = 2 x forward)

8*h*h are the Q/K/V/O projections, 4*h*i the two FFN maps, 4*L*h the scores
and the weighted values. Achieved GFLOP/s is F over the median time; its
fraction is of the best GFLOP/s of a 2048^3 fp32 matmul measured in this
run on the same backend and compiler (TF: XLA; JAX: jit), at the start and
after each row. peer/ours is the peer's median over ours: above 1 we are
faster. "best ms" is the fastest call: on a shared machine, load only adds.

    python bench/bench_peers.py                          # TF + XLA
    KERAS_BACKEND=jax python bench/bench_peers.py        # JAX (jax.jit)
    python bench/bench_peers.py --rows base,train --rounds 15 --b4k-python /venv/bin/python
    python bench/bench_peers.py --tiny --rounds 2 --iters 1   # tiny sizes (smoke test)
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
B4K_ENV = {"TF_KERAS": "1", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
PEERS = ("ours", "keras-hub", "bert4keras 0.11.5")

MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536)
BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072)
SMALL = dict(vocab_size=21128, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=1024)
TINY = dict(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def row_specs(tiny=False, dropout=0.1):
    """name -> row spec (JSON, the worker gets it too): title, task, model,
    builder keyword arguments (ours and bert4keras 0.11.5 take the same
    names) and peers."""
    def spec(title, task, model, sizes, peers, **extra):
        kwargs = dict(TINY if tiny else sizes, hidden_act="gelu", max_position=512, segment_vocab_size=2, **extra)
        if tiny and "embedding_size" in extra:
            kwargs["embedding_size"] = 16
        return {"title": title, "task": task, "model": model, "kwargs": kwargs, "peers": list(peers)}

    b4k_only = (PEERS[0], PEERS[2])
    return {
        "minilm": spec("MiniLM-L6 inference", "inference", "bert", MINILM, PEERS),
        "base": spec("BERT-base inference", "inference", "bert", BASE, PEERS),
        "train": spec("training step, full MLM softmax, Adam", "train", "bert", SMALL, PEERS,
                      dropout_rate=dropout, attention_dropout_rate=dropout),
        "albert-minilm": spec("ALBERT inference, MiniLM sizes", "inference", "albert", MINILM, b4k_only,
                              embedding_size=128),
        "albert-base": spec("ALBERT inference, BERT-base sizes", "inference", "albert", BASE, b4k_only,
                            embedding_size=128),
        "nezha-minilm": spec("NEZHA inference, MiniLM sizes", "inference", "nezha", MINILM, b4k_only),
        "nezha-base": spec("NEZHA inference, BERT-base sizes", "inference", "nezha", BASE, b4k_only),
    }


def make_batch(spec, batch, length, seed=0):
    """Token ids (no padding), segment ids and MLM labels, the same for every peer."""
    rng = np.random.RandomState(seed)
    vocab = spec["kwargs"]["vocab_size"]
    ids = rng.randint(1, vocab, size=(batch, length)).astype("int32")
    labels = rng.randint(1, vocab, size=(batch, length)).astype("int32")
    return ids, np.zeros_like(ids), labels


def inference_flops(spec, batch, length):
    """Matmul FLOPs of one forward pass (see the module docstring)."""
    k = spec["kwargs"]
    h, i, n = k["hidden_size"], k["intermediate_size"], k["num_hidden_layers"]
    e = k.get("embedding_size") or h
    tokens = batch * length
    attention = 4 * tokens * length * h
    if spec["model"] == "nezha":
        attention *= 2
    flops = n * (tokens * (8 * h * h + 4 * h * i) + attention)
    if e != h:
        flops += 2 * tokens * e * h
    return flops


def step_flops(spec, batch, length):
    """Matmul FLOPs of one call of the row: a forward pass, or a training step
    (3 x the forward with the MLM head on every position)."""
    flops = inference_flops(spec, batch, length)
    if spec["task"] != "train":
        return flops
    k = spec["kwargs"]
    h, v = k["hidden_size"], k["vocab_size"]
    e = k.get("embedding_size") or h
    return 3 * (flops + batch * length * (2 * h * e + 2 * e * v))


def peer_ratios(medians, ours="ours"):
    """peer median / our median for every other peer (above 1: ours is faster)."""
    if ours not in medians:
        return {}
    return {name: t / medians[ours] for name, t in medians.items() if name != ours}


def paired_ratio(ours, peer, iters=1, resamples=2000, seed=0):
    """Paired per-round peer/ours ratio: (median, 95% low, 95% high, verdict).

    `ours` and `peer` are per-call seconds in round order, `iters` calls per
    round (`interleave`). Each round gives one ratio, its median peer call
    over its median own call: the two ran back to back, so load that drifts
    over the run divides out. The interval is a percentile bootstrap of the
    median ratio over rounds (`resamples` draws, fixed seed). The verdict is
    "faster" (we are: the whole interval above 1), "slower" (all below 1)
    or "tie".
    """
    rounds = min(len(ours), len(peer)) // iters
    if rounds == 0:
        raise ValueError(f"paired_ratio: no complete round of {iters} calls in {len(ours)} / {len(peer)} times")
    ours = np.median(np.reshape(ours[:rounds * iters], (rounds, iters)), axis=1)
    peer = np.median(np.reshape(peer[:rounds * iters], (rounds, iters)), axis=1)
    ratios = peer / ours
    draws = np.random.default_rng(seed).integers(0, rounds, size=(resamples, rounds))
    low, high = np.percentile(np.median(ratios[draws], axis=1), [2.5, 97.5])
    verdict = "faster" if low > 1 else "slower" if high < 1 else "tie"
    return float(np.median(ratios)), float(low), float(high), verdict


def achieved(flops, seconds, peak):
    """(GFLOP/s, fraction of the peak FLOP/s) of `flops` done in `seconds`."""
    rate = flops / seconds
    return rate / 1e9, rate / peak


def summary(times):
    """Median, quartiles and best (ms) of a list of seconds."""
    q1, median, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return {"median_ms": 1e3 * statistics.median(times), "q1_ms": 1e3 * q1, "q3_ms": 1e3 * q3,
            "best_ms": 1e3 * min(times), "calls": len(times)}


def pin_threads(threads):
    """Run this process (and the workers it starts) on the first `threads` CPUs."""
    if threads and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, cpus)


# ---------------------------------------------------------------------------
# bert4keras 0.11.5 worker: runs in --b4k-python (tf-keras, TF_KERAS=1)
# ---------------------------------------------------------------------------


def b4k_step(spec, batch, length):
    """A zero-argument function running the row once in bert4keras 0.11.5."""
    import tensorflow as tf
    import tf_keras
    from bert4keras.models import build_transformer_model

    train = spec["task"] == "train"
    model = build_transformer_model(model=spec["model"], with_mlm="linear" if train else False, **spec["kwargs"])
    ids, segs, labels = make_batch(spec, batch, length)
    if train:
        model.compile(optimizer=tf_keras.optimizers.Adam(1e-4),
                      loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
        return lambda: model.train_on_batch([ids, segs], labels)
    fn = tf.function(lambda inputs: model(inputs, training=False), jit_compile=True)
    return lambda: fn([ids, segs])


def worker(threads):
    """Answer one JSON line on stdout for each JSON command line on stdin:
    {"op": "build", "spec", "batch", "length"}, {"op": "run", "n"}, {"op": "quit"}."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the libraries print goes to stderr; stdout carries answers only

    def answer(**reply):
        answers.write(json.dumps(reply) + "\n")
        answers.flush()

    try:
        import bert4keras
        import tensorflow as tf
        import tf_keras

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        # Imported after bert4keras 0.11.5, so this tree's bert4keras stays out.
        from bench_inference import timed_calls
    except Exception as e:  # noqa: BLE001 - reported to the driver
        answer(error=f"{type(e).__name__}: {e}")
        return
    answer(ready=True, bert4keras=bert4keras.__version__, tensorflow=tf.__version__, tf_keras=tf_keras.__version__,
           cpus=len(os.sched_getaffinity(0)))
    step = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "build":
                step = None
                tf_keras.backend.clear_session()
                gc.collect()
                step = b4k_step(command["spec"], command["batch"], command["length"])
                answer(ok=True)
            elif command["op"] == "run":
                answer(times=timed_calls(step, command["n"]))
            else:
                answer(ok=True)
                return
        except Exception as e:  # noqa: BLE001 - reported to the driver
            answer(error=f"{type(e).__name__}: {e}"[:2000])


class PeerWorker:
    """The driver's side of `worker`: a persistent bert4keras 0.11.5 process."""

    def __init__(self, python, threads):
        self.log = tempfile.TemporaryFile(mode="w+")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
        env.update(B4K_ENV)
        self.proc = subprocess.Popen(
            [python, os.path.abspath(__file__), "--worker", "--threads", str(threads or 0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self._info = None

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read().strip().splitlines()[-3:]
            raise RuntimeError("bert4keras 0.11.5 worker exited: " + " | ".join(tail))
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def info(self):
        """The worker's versions, once it has started."""
        if self._info is None:
            self._info = self._read()
        return self._info

    def ask(self, **command):
        self.info()
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def build(self, spec, batch, length):
        self.ask(op="build", spec=spec, batch=batch, length=length)
        return lambda n: self.ask(op="run", n=n)["times"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.ask(op="quit")
            except (RuntimeError, OSError):
                pass
            self.proc.wait(timeout=30)
        self.log.close()


# ---------------------------------------------------------------------------
# driver: ours and keras-hub in this process
# ---------------------------------------------------------------------------


def train_step(model, x, y):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    return lambda: model.train_on_batch(x, y)


def ours_step(spec, batch, length):
    import keras

    from bench_inference import compiled
    from bert4keras.models import build_transformer_model

    train = spec["task"] == "train"
    model = build_transformer_model(model=spec["model"], with_mlm="linear" if train else False, **spec["kwargs"])
    ids, segs, labels = make_batch(spec, batch, length)
    if train:
        return train_step(keras.Model(model.inputs, model.outputs[-1]), [ids, segs], labels)
    fn = compiled(model, True)
    return lambda: fn([ids, segs])


def hub_step(spec, batch, length):
    import keras_hub

    from bench_inference import compiled

    k = spec["kwargs"]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=k["vocab_size"], num_layers=k["num_hidden_layers"], num_heads=k["num_attention_heads"],
        hidden_dim=k["hidden_size"], intermediate_dim=k["intermediate_size"], max_sequence_length=k["max_position"],
        num_segments=k["segment_vocab_size"], dropout=k.get("dropout_rate", 0.0))
    ids, segs, labels = make_batch(spec, batch, length)
    inputs = {"token_ids": ids, "segment_ids": segs, "padding_mask": ids > 0}
    if spec["task"] == "train":
        inputs["mask_positions"] = np.tile(np.arange(length, dtype="int32"), (batch, 1))
        return train_step(keras_hub.models.BertMaskedLM(backbone, preprocessor=None), inputs, labels)
    fn = compiled(backbone, True)
    return lambda: fn(inputs)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(row_specs()), help="comma list of " + ", ".join(row_specs()))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iters", type=int, default=1, help="timed calls per peer per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout of the training row")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPUs for every process")
    parser.add_argument("--b4k-python", default=os.environ.get("B4K_PYTHON", ""),
                        help="interpreter with bert4keras==0.11.5 and tf-keras (env B4K_PYTHON)")
    parser.add_argument("--no-keras-hub", action="store_true", help="leave keras-hub out")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    specs = row_specs(args.tiny, args.dropout)
    args.row_names = [r for r in args.rows.split(",") if r]
    unknown = [r for r in args.row_names if r not in specs]
    if unknown:
        parser.error(f"--rows: unknown {unknown}; choose from {list(specs)}")
    args.specs = specs
    return args


def print_row(result, peak):
    spec = result["spec"]
    k = spec["kwargs"]
    sizes = (f"{k['num_hidden_layers']} layers, hidden {k['hidden_size']}, {k['num_attention_heads']} heads, "
             f"intermediate {k['intermediate_size']}, vocab {k['vocab_size']}"
             + (f", embedding {k['embedding_size']}" if k.get("embedding_size") else ""))
    print()
    print(f"{spec['title']} ({sizes}): {result['gflop']:.1f} GFLOP per call; "
          f"load {result['load'][0]:.2f} -> {result['load'][1]:.2f}")
    print(f"  {'peer':34s}{'median ms':>11s}{'q1-q3 ms':>16s}{'best ms':>9s}{'GFLOP/s':>9s}{'of peak':>9s}"
          f"{'peer/ours':>11s}{'paired, 95% interval':>28s}")
    for name, stats in result["peers"].items():
        gflops, fraction = achieved(result["gflop"] * 1e9, stats["median_ms"] / 1e3, peak)
        ratio = result["ratios"].get(name, 1.0 if name == "ours" else None)
        quartiles = f"{stats['q1_ms']:.1f}-{stats['q3_ms']:.1f}"
        ratio = f"{ratio:.3f}x" if ratio is not None else ""
        paired = result.get("paired", {}).get(name)
        paired = f"{paired[0]:.3f} ({paired[1]:.3f}-{paired[2]:.3f}) {paired[3]}" if paired else ""
        print(f"  {result['labels'][name]:34s}{stats['median_ms']:11.1f}{quartiles:>16s}{stats['best_ms']:9.1f}"
              f"{gflops:9.0f}{fraction:9.3f}{ratio:>11s}{paired:>28s}")
    for note in result["notes"]:
        print("  note:", note)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args.threads)
    pin_threads(args.threads)
    notes = []
    peer_worker = None
    if not args.b4k_python or not os.path.exists(args.b4k_python):
        notes.append(f"no bert4keras 0.11.5 interpreter at {args.b4k_python}; pass --b4k-python "
                     "(or set B4K_PYTHON); its peer is left out")
    elif any(PEERS[2] in args.specs[r]["peers"] for r in args.row_names):
        peer_worker = PeerWorker(args.b4k_python, args.threads)  # starts while we import

    sys.path.insert(0, ROOT)
    import keras

    from bench_inference import interleave, timed_calls
    from bench_pretraining import measure_peak

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import logging

        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    hub_version = None
    if not args.no_keras_hub:
        try:
            import keras_hub

            hub_version = keras_hub.__version__
        except ImportError as e:
            notes.append(f"keras-hub not importable ({e}); pip install --no-deps keras-hub tokenizers")
    b4k_info = None
    if peer_worker is not None:
        try:
            b4k_info = peer_worker.info()
        except RuntimeError as e:
            notes.append(f"bert4keras 0.11.5 worker failed to start: {e}")
            peer_worker.close()
            peer_worker = None
    compiler = "XLA" if backend == "tensorflow" else "jax.jit"
    load_start = os.getloadavg()[0]
    peaks = [measure_peak("float32", repeats=10, jit_compile=True)]
    labels = {"ours": "ours", "keras-hub": f"keras-hub {hub_version}",
              PEERS[2]: PEERS[2] + (" (TF+XLA)" if backend != "tensorflow" else "")}
    builders = {"ours": ours_step, "keras-hub": hub_step if hub_version else None,
                PEERS[2]: peer_worker.build if peer_worker else None}

    results = []
    for name in args.row_names:
        spec = args.specs[name]
        row_notes, runners = [], {}
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        for peer in spec["peers"]:
            if builders[peer] is None:
                continue
            try:
                if peer == PEERS[2]:
                    runners[peer] = builders[peer](spec, args.batch, args.length)
                else:
                    step = builders[peer](spec, args.batch, args.length)
                    runners[peer] = (lambda s: lambda n: timed_calls(s, n))(step)
            except Exception as e:  # noqa: BLE001 - report and go on
                row_notes.append(f"{peer} failed to build: {type(e).__name__}: {e}"[:300])
        try:
            times = interleave(runners, args.warmup, args.rounds, args.iters)
        except Exception as e:  # noqa: BLE001 - report and go on
            row_notes.append(f"timing failed: {type(e).__name__}: {e}"[:300])
            times = {}
        stats = {peer: summary(t) for peer, t in times.items()}
        medians = {peer: s["median_ms"] for peer, s in stats.items()}
        paired = {peer: paired_ratio(times["ours"], t, args.iters)
                  for peer, t in times.items() if peer != "ours" and "ours" in times}
        results.append({"row": name, "spec": spec, "gflop": step_flops(spec, args.batch, args.length) / 1e9,
                        "load": (load_before, os.getloadavg()[0]), "peers": stats, "labels": labels,
                        "ratios": peer_ratios(medians), "paired": paired, "notes": row_notes,
                        "seconds": time.perf_counter() - start})
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)
        runners = times = None
        keras.utils.clear_session(free_memory=True)
        gc.collect()
        peaks.append(measure_peak("float32", repeats=10, jit_compile=True))
    if peer_worker is not None:
        peer_worker.close()
    peak = max(peaks)

    versions = f"keras {keras.__version__}" + (f", keras-hub {hub_version}" if hub_version else "")
    if backend == "tensorflow":
        versions += f", tensorflow {tf.__version__}"
    else:
        import jax

        versions += f", jax {jax.__version__}"
    if b4k_info:
        versions += (f"; bert4keras {b4k_info['bert4keras']} on tensorflow {b4k_info['tensorflow']}, "
                     f"tf-keras {b4k_info['tf_keras']}")
    print(f"backend {backend} ({compiler}); {versions}")
    print(f"batch {args.batch} x {args.length}, fp32, {args.threads} threads; {args.rounds} interleaved rounds x "
          f"{args.iters} calls per peer, medians")
    print(f"matmul peak (2048^3 fp32, {compiler}): {peak / 1e9:.0f} GFLOP/s, the best of "
          f"{len(peaks)} measurements (at the start and after each row: "
          f"{', '.join(f'{p / 1e9:.0f}' for p in peaks)}); load {load_start:.2f} -> {os.getloadavg()[0]:.2f}")
    for result in results:
        print_row(result, peak)
    print("\n(peer/ours = peer median / our median: above 1 we are faster; 'of peak' = achieved / matmul peak;\n"
          " paired = median over rounds of the round's peer/ours, with a bootstrap 95% interval: 'faster' or\n"
          " 'slower' when the whole interval is on one side of 1, else 'tie')")
    for note in notes:
        print("note:", note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": backend, "peak_gflops": peak / 1e9, "peaks_gflops": [p / 1e9 for p in peaks],
                       "rows": [{k: v for k, v in r.items() if k != "labels"} for r in results],
                       "notes": notes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
