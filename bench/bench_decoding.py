"""Decoding speed: KV-cached vs full-recomputation beam search.

A 4-layer UniLM (hidden 256, 4 heads, vocab 21128 by default) decodes a batch
of 8 prefixes with beam width 4 for exactly 64 new tokens (minlen = maxlen,
so both paths do the same number of steps). Both paths are compiled (XLA on
TensorFlow, jax.jit on JAX) and warmed up on the same shapes first; timings
are medians over repeats. The two outputs are checked to be identical.

    python bench/bench_decoding.py
    KERAS_BACKEND=jax python bench/bench_decoding.py
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prefix", type=int, default=32, help="prefix length")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=21128)
    parser.add_argument("--repeats", type=int, default=3)
    from bert4keras.models import MODELS

    parser.add_argument("--model", default="bert",
                        choices=sorted(n for n, cls in MODELS.items() if "unilm" in cls.applications),
                        help="a registered family with lm/unilm (default: bert)")
    args = parser.parse_args()

    import keras

    from bert4keras.generation import Seq2SeqDecoder
    from bert4keras.models import build_transformer_model

    model = build_transformer_model(
        model=args.model, application="unilm", with_mlm=True, vocab_size=args.vocab,
        hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden, max_position=512,
    )
    rng = np.random.RandomState(0)
    lengths = rng.randint(args.prefix // 2, args.prefix + 1, size=args.batch)
    lengths[0] = args.prefix
    token_ids = [[2] + list(rng.randint(5, args.vocab, size=n - 2)) + [3] for n in lengths]
    segment_ids = [[0] * n for n in lengths]
    end_id = 3
    decoders = {
        "cached": Seq2SeqDecoder(model, end_id, args.new_tokens, minlen=args.new_tokens, use_cache=True),
        "uncached": Seq2SeqDecoder(model, end_id, args.new_tokens, minlen=args.new_tokens, use_cache=False),
    }
    outputs, times = {}, {name: [] for name in decoders}
    for name, decoder in decoders.items():  # warm-up: compiles every shape used
        outputs[name] = decoder.beam_search([token_ids, segment_ids], topk=args.beam)
    for _ in range(args.repeats):
        for name, decoder in decoders.items():
            start = time.perf_counter()
            decoder.beam_search([token_ids, segment_ids], topk=args.beam)
            times[name].append(time.perf_counter() - start)
    same = all(np.array_equal(a, b) for a, b in zip(outputs["cached"], outputs["uncached"]))
    generated = args.batch * args.new_tokens
    print(f"Beam search, batch {args.batch}, beam {args.beam}, {args.new_tokens} new tokens, prefix "
          f"<= {args.prefix}; {args.model} UniLM, {args.layers} layers, hidden {args.hidden}, "
          f"vocab {args.vocab}; backend {keras.backend.backend()}; medians of {args.repeats}")
    print(f"{'path':10s} {'seconds':>9s} {'tokens/s':>10s}")
    for name in decoders:
        median = statistics.median(times[name])
        print(f"{name:10s} {median:9.2f} {generated / median:10.1f}")
    ratio = statistics.median(times["uncached"]) / statistics.median(times["cached"])
    print(f"cache speed-up: {ratio:.2f}x (outputs identical: {same})")
    if not same:
        sys.exit("cached and uncached outputs differ")


if __name__ == "__main__":
    main()
