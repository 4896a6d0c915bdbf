"""Splits, the reduced vocabulary and the command-line options the examples share."""
import argparse
import collections
import os
import random

from _location import PRETRAINED_SMALL_DIR

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def split_data(data, fractions=(0.8, 0.1, 0.1), seed=0):
    """Shuffle a copy of `data` with `seed` and cut it into len(fractions)
    parts (train, valid, test); the last part takes the remainder."""
    data = list(data)
    random.Random(seed).shuffle(data)
    parts, start = [], 0
    for i, fraction in enumerate(fractions):
        end = len(data) if i + 1 == len(fractions) else start + int(round(fraction * len(data)))
        parts.append(data[start:end])
        start = end
    return parts


def corpus_vocab(vocab_path, texts, min_count=1, do_lower_case=True, extra_tokens=()):
    """A vocabulary reduced to the tokens a training corpus uses.

    `load_vocab(simplified=True)` first drops tokens WordPiece never emits;
    then only tokens that occur at least `min_count` times in `texts` (plus
    the special tokens and `extra_tokens` found in the vocabulary) are kept.

    Returns `(token_dict, keep_tokens)`: `keep_tokens[i]` is the original id
    of new id `i`, which `build_transformer_model(keep_tokens=...)` uses to
    slice a pretrained checkpoint's embeddings to the same vocabulary.
    """
    from bert4keras.tokenizers import Tokenizer, load_vocab

    token_dict, keep_tokens = load_vocab(vocab_path, simplified=True, startswith=SPECIAL_TOKENS)
    tokenizer = Tokenizer(token_dict, do_lower_case=do_lower_case)
    counts = collections.Counter()
    for text in texts:
        counts.update(tokenizer.encode(text)[0])
    wanted = set(SPECIAL_TOKENS) | set(extra_tokens)
    new_dict, new_keep = {}, []
    for token, i in sorted(token_dict.items(), key=lambda kv: kv[1]):
        if token in wanted or counts[i] >= min_count:
            new_dict[token] = len(new_dict)
            new_keep.append(keep_tokens[i])
    return new_dict, new_keep


def model_arguments(description, quick_help="a few steps on a small slice (for CI)"):
    """An argparse parser with the options every example shares."""
    from bert4keras.models import model_names

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="bert_config.json / HF config.json of a checkpoint to fine-tune")
    parser.add_argument("--checkpoint", help="Google checkpoint prefix, .safetensors file or HF directory")
    parser.add_argument("--vocab", help="vocab.txt (default: bert-base-chinese's, shipped by fastbert)")
    parser.add_argument("--model", default="bert", choices=model_names(),
                        help="a registered family of bert4keras.models (default: bert)")
    parser.add_argument("--pretrained-small", nargs="?", const=PRETRAINED_SMALL_DIR, metavar="DIR",
                        help="fine-tune the checkpoint of examples/pretrain_chinese_small.py (its output "
                             f"directory, default {os.path.relpath(PRETRAINED_SMALL_DIR)}); sets "
                             "--config/--checkpoint/--vocab")
    parser.add_argument("--devices", type=int, default=1,
                        help="data-parallel devices: tf.distribute.MirroredStrategy (TensorFlow; the CPU "
                             "is split into logical devices when there are fewer GPUs) or "
                             "keras.distribution.DataParallel (JAX)")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--seed", type=int, default=0, help="initialisation, shuffling and (by default) the split")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="seed of the train/valid/test split (default: --seed; 0 with --pretrained-small, "
                             "whose corpus left out the held-out lines of that split)")
    return parser


def model_config(args, small, keep_tokens):
    """Keyword arguments of `build_transformer_model`.

    With `--config`/`--checkpoint` the checkpoint's sizes are used and its
    embeddings are sliced to `keep_tokens`; otherwise a model of the `small`
    sizes is built from scratch with one embedding row per kept token.
    """
    if args.checkpoint and not args.config and not os.path.isdir(args.checkpoint):
        raise SystemExit("--checkpoint needs --config (or pass an HF model directory)")
    if args.config or args.checkpoint:
        return {
            "config_path": args.config, "checkpoint_path": args.checkpoint,
            "model": args.model, "keep_tokens": keep_tokens,
        }
    return dict(small, model=args.model, vocab_size=len(keep_tokens))
