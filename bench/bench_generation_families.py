"""Generation speed of GPT-2 and mT5.1.1: KV-cached vs uncached, and vs transformers.

For each family, a batch of `--batch` inputs of `--length` tokens is decoded
with beam width `--beam` for exactly `--new-tokens` tokens (minlen = maxlen, so
every run does the same steps):

- ours, cached: `Seq2SeqDecoder` (GPT-2) / `EncoderDecoderGenerator` (mT5)
  with their key/value caches, compiled (XLA on TensorFlow, jax.jit on JAX);
- ours, uncached: the same decoders with `use_cache=False` (the full model
  on every step), checked to give the same tokens;
- transformers: `GPT2LMHeadModel.generate` / `MT5ForConditionalGeneration.generate`
  with its cache (`use_cache=True`, `num_beams`, `min_new_tokens` =
  `max_new_tokens`), same sizes, random weights, in a persistent worker
  process of `--hf-python` (torch with the same thread count).

Both processes are pinned to the same `--threads` CPUs. After one warm-up
call each, rounds of ours-cached and transformers interleave (the order
rotates); medians are printed with the ratios. The uncached path is timed
`--uncached-runs` times (it is the slow one).

    python bench/bench_generation_families.py --hf-python /path/to/torch-env/bin/python
    KERAS_BACKEND=jax python bench/bench_generation_families.py --hf-python ...
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)


def sizes(args):
    """The shared architecture of both sides, per family."""
    heads = max(1, args.hidden // 64)
    return {
        "gpt2": dict(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                     num_attention_heads=heads, intermediate_size=4 * args.hidden,
                     max_position=args.length + args.new_tokens + 8),
        "mt5.1.1": dict(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=heads, attention_head_size=64, intermediate_size=2 * args.hidden),
    }


def make_inputs(args):
    rng = np.random.RandomState(0)
    return rng.randint(5, args.vocab - 1, size=(args.batch, args.length)).astype("int32")


# ---------------------------------------------------------------------------
# transformers worker (runs in --hf-python)
# ---------------------------------------------------------------------------
def hf_generate(family, size, ids, beam, new_tokens):
    """A zero-argument function running transformers' cached beam search once."""
    import torch
    import transformers

    torch.manual_seed(0)
    if family == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=size["vocab_size"], n_embd=size["hidden_size"], n_layer=size["num_hidden_layers"],
            n_head=size["num_attention_heads"], n_inner=size["intermediate_size"], n_positions=size["max_position"],
            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = transformers.GPT2LMHeadModel(config).eval()
        inputs = {"input_ids": torch.tensor(ids, dtype=torch.long),
                  "attention_mask": torch.ones(ids.shape, dtype=torch.long)}
        eos = size["vocab_size"] - 1
    else:
        config = transformers.MT5Config(
            vocab_size=size["vocab_size"], d_model=size["hidden_size"], d_kv=size["attention_head_size"],
            d_ff=size["intermediate_size"], num_layers=size["num_hidden_layers"],
            num_heads=size["num_attention_heads"], feed_forward_proj="gated-gelu", dropout_rate=0.0,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        model = transformers.MT5ForConditionalGeneration(config).eval()
        inputs = {"input_ids": torch.tensor(ids, dtype=torch.long),
                  "attention_mask": torch.ones(ids.shape, dtype=torch.long)}
        eos = 1

    def run():
        with torch.no_grad():
            return model.generate(**inputs, num_beams=beam, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  do_sample=False, early_stopping=False, use_cache=True, eos_token_id=eos,
                                  pad_token_id=0)

    return run


def worker(threads):
    """One JSON answer line per JSON command line: build, run, quit."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def answer(**reply):
        answers.write(json.dumps(reply) + "\n")
        answers.flush()

    import torch
    import transformers

    if threads:
        torch.set_num_threads(threads)
    answer(ready=True, torch=torch.__version__, transformers=transformers.__version__, threads=torch.get_num_threads())
    run = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "build":
                run = hf_generate(command["family"], command["size"], np.array(command["ids"]), command["beam"],
                                  command["new_tokens"])
                answer(ok=True)
            elif command["op"] == "run":
                times = []
                for _ in range(command["n"]):
                    start = time.perf_counter()
                    out = run()
                    times.append(time.perf_counter() - start)
                answer(times=times, shape=list(out.shape))
            else:
                answer(ok=True)
                return
        except Exception as e:  # noqa: BLE001 - reported to the driver
            answer(error=f"{type(e).__name__}: {e}"[:2000])


class HFWorker:
    """The driver's side of `worker`."""

    def __init__(self, python, threads):
        self.log = tempfile.TemporaryFile(mode="w+")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--worker", "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError("transformers worker exited: " + " | ".join(self.log.read().splitlines()[-3:]))
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def ask(self, **command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.ask(op="quit")
            self.proc.wait(timeout=30)


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------
def ours_generators(family, size, args):
    from bert4keras.generation import EncoderDecoderGenerator, Seq2SeqDecoder
    from bert4keras.models import build_transformer_model

    builder = build_transformer_model(model=family, return_keras_model=False, **size)
    if family == "gpt2":
        make = lambda cache: Seq2SeqDecoder(builder.model, end_id=args.vocab - 1, maxlen=args.new_tokens,  # noqa
                                            minlen=args.new_tokens, use_cache=cache)
    else:
        make = lambda cache: EncoderDecoderGenerator(builder, end_id=1, maxlen=args.new_tokens,  # noqa
                                                     minlen=args.new_tokens, use_cache=cache)
    return make(True), make(False)


def timed(fn, n):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_family(family, size, ids, args, hf):
    from bench_inference import interleave

    cached, uncached = ours_generators(family, size, args)
    run_cached = lambda: cached.beam_search([ids], topk=args.beam)  # noqa: E731
    run_uncached = lambda: uncached.beam_search([ids], topk=args.beam)  # noqa: E731
    first = run_cached()
    assert all(len(x) == args.new_tokens for x in first), [len(x) for x in first]
    same = all(np.array_equal(a, b) for a, b in zip(first, run_uncached()))
    runners = {"ours cached": lambda n: timed(run_cached, n)}
    if hf is not None:
        hf.ask(op="build", family=family, size=size, ids=ids.tolist(), beam=args.beam, new_tokens=args.new_tokens)
        runners["transformers generate"] = lambda n: hf.ask(op="run", n=n)["times"]
    times = interleave(runners, warmup=1, rounds=args.rounds, iters=1)
    times["ours uncached"] = timed(run_uncached, args.uncached_runs)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n{family}: {size}")
    print(f"  batch {args.batch} x {args.length} tokens, beam {args.beam}, {args.new_tokens} new tokens; "
          f"cached and uncached tokens identical: {same}")
    for name, seconds in medians.items():
        tokens = args.batch * args.new_tokens / seconds
        print(f"  {name:<22} {seconds * 1000:9.1f} ms  ({tokens:7.1f} generated tokens/s, "
              f"{len(times[name])} runs)")
    print(f"  cached vs uncached: {medians['ours uncached'] / medians['ours cached']:.2f}x faster")
    if "transformers generate" in medians:
        print(f"  cached vs transformers generate: "
              f"{medians['transformers generate'] / medians['ours cached']:.2f}x faster")
    return medians


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help="CPUs for each side (pinned)")
    parser.add_argument("--hf-python", default=None, help="a Python with torch + transformers (omit to skip)")
    parser.add_argument("--families", nargs="+", default=["gpt2", "mt5.1.1"], choices=["gpt2", "mt5.1.1"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--length", type=int, default=32, help="prompt / encoder input length")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uncached-runs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.threads)
    if args.threads and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    hf = HFWorker(args.hf_python, args.threads) if args.hf_python else None
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, threads {args.threads}"
          + (f"; transformers {hf.info['transformers']}, torch {hf.info['torch']}" if hf else ""))
    ids = make_inputs(args)
    try:
        for family in args.families:
            bench_family(family, sizes(args)[family], ids, args, hf)
    finally:
        if hf is not None:
            hf.close()


if __name__ == "__main__":
    main()
