"""MLM pretraining data: plain text -> sharded TFRecords -> `tf.data` batches.

Corpus format: UTF-8 text files with one sentence or paragraph per line and a
blank line between documents (Google's BERT format). Files without blank lines
are one long document each, which suits continuous text such as news.

Building records (`build_records`, or `python -m pretraining.data`):

1. every line is tokenized into *words*, each a tuple of token ids: jieba words
   for Chinese (`whole_word='jieba'`), a WordPiece token and its `##`
   continuations for English (`'wordpiece'`), or single tokens (`'none'`);
2. the words of a document are packed into samples of `seq_len` tokens
   (`[CLS] ... [SEP]`), across sentence boundaries, splitting only between
   words; with `pack_documents=True` documents are packed together too,
   separated by `[SEP]`;
3. with `masking='static'` each sample is masked `dupe_factor` times (see
   `mask_sample`) and stored masked; with `masking='dynamic'` it is stored
   unmasked, with its word ids, and `make_dataset` draws a fresh mask for
   every batch inside `tf.data`.

The work runs in `num_workers` processes over fixed chunks of lines, each with
its own random stream `(seed, chunk index)`, so the output files are the same
byte for byte for a given seed whatever the number of processes.

A `meta.json` next to the shards records the settings, the special token ids
and each shard's sample count and size; training checks the records against
it and against its own settings before it starts.

Only the `tf.data` functions need TensorFlow (imported when called); the text
processing and masking are plain numpy and run under any Keras backend.
"""
import argparse
import hashlib
import json
import logging
import math
import os
import sys

import numpy as np

META_FILE = "meta.json"
RECORD_PATTERN = "records-%05d-of-%05d.tfrecord"
STATIC_FEATURES = ("input_ids", "masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
DYNAMIC_FEATURES = ("input_ids", "word_ids")
WHOLE_WORD_MODES = ("jieba", "wordpiece", "none")
FORMAT_VERSION = 1


class DataError(ValueError):
    """Records that do not match the training settings, or are corrupt."""


# ---------------------------------------------------------------------------
# Text -> words -> samples
# ---------------------------------------------------------------------------


_REBUILD = "; rebuild the records with `python -m pretraining.data`"


def special_token_ids(token_dict):
    """Ids of the special tokens and the pool of random replacement tokens.

    Returns a dict with `pad_id`, `cls_id`, `sep_id`, `mask_id` and
    `excluded_random_ids`: every bracketed token (`[PAD]`, `[unused1]`, ...)
    is left out of the 10% random replacements, so a replacement looks like
    real text.
    """
    ids = {}
    for key, token in (("pad_id", "[PAD]"), ("cls_id", "[CLS]"), ("sep_id", "[SEP]"),
                       ("mask_id", "[MASK]")):
        if token not in token_dict:
            raise ValueError(
                f"the vocabulary must have a {token} token (MLM pretraining needs it), "
                "got none; add it to vocab.txt"
            )
        ids[key] = int(token_dict[token])
    if ids["pad_id"] != 0:
        raise ValueError(f"[PAD] must have id 0 (the models treat id 0 as padding), got {ids['pad_id']}")
    excluded = sorted(int(i) for t, i in token_dict.items()
                      if len(t) > 2 and t.startswith("[") and t.endswith("]"))
    ids["excluded_random_ids"] = excluded
    return ids


def random_token_pool(vocab_size, excluded_ids):
    """Token ids drawn for the 10% random replacements."""
    keep = np.ones(vocab_size, dtype=bool)
    keep[np.asarray(excluded_ids, dtype=np.int64)] = False
    pool = np.nonzero(keep)[0]
    if pool.size == 0:
        raise ValueError(
            "the vocabulary must have ordinary (non-special) tokens for random "
            "replacement, got none"
        )
    return pool


class WordSplitter:
    """Text -> list of words, each a tuple of token ids.

    The words only group the tokens of the text: their concatenation is the
    text's tokenization, exactly as for fine-tuning.

    Args:
        tokenizer: a bert4keras `Tokenizer` built with `token_start=None,
            token_end=None`.
        whole_word: 'jieba' (tokens whose characters lie in one jieba word
            form a word; so do a WordPiece token and its `##` continuations,
            even when jieba cuts between them), 'wordpiece' (a token and its
            `##` continuations) or 'none' (every token alone).
    """

    def __init__(self, tokenizer, whole_word="jieba"):
        if whole_word not in WHOLE_WORD_MODES:
            raise ValueError(f"whole_word must be one of {WHOLE_WORD_MODES}, got {whole_word!r}")
        self.tokenizer = tokenizer
        self.whole_word = whole_word
        if whole_word == "jieba":
            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._jieba = jieba.Tokenizer()
        self._cache, self._pair_cache = {}, {}
        size = tokenizer.vocab_size
        self._continuation = np.zeros(size, dtype=bool)
        for i in range(size):
            if tokenizer.id_to_token(i).startswith("##"):
                self._continuation[i] = True

    def _ids(self, text):
        ids = self._cache.get(text)
        if ids is None:
            ids = tuple(self.tokenizer.encode(text)[0])
            if len(self._cache) < 1000000:
                self._cache[text] = ids
        return ids

    def _splits_between(self, left, right):
        """True if tokenization always splits between these two characters."""
        if "\u4e00" <= left <= "\u9fff" or "\u4e00" <= right <= "\u9fff":
            return True  # a CJK ideograph is always a token of its own
        key = left + right
        safe = self._pair_cache.get(key)
        if safe is None:
            if left.isspace() or right.isspace():
                safe = True
            else:
                ids = self._ids(key)
                safe = len(ids) >= 2 and not self._continuation[ids[-1]] \
                    and len(self._ids(left)) + len(self._ids(right)) == len(ids)
            self._pair_cache[key] = safe
        return safe

    def _jieba_words(self, text):
        """jieba's words, merged where jieba cuts inside a WordPiece word
        (e.g. '９' + '７', which WordPiece reads as '９ ##７')."""
        merged = []
        for word in self._jieba.lcut(text):
            if merged and not self._splits_between(merged[-1][-1], word[0]):
                merged[-1] += word
            else:
                merged.append(word)
        return merged

    def __call__(self, text):
        if self.whole_word == "jieba":
            # Tokenizing word by word gives the tokens of the whole text,
            # because words only break where the tokenizer splits anyway.
            words = (self._ids(word) for word in self._jieba_words(text))
            return [w for w in words if w]
        ids = self.tokenizer.encode(text)[0]
        if self.whole_word == "none":
            return [(i,) for i in ids]
        words = []
        for i in ids:
            if words and self._continuation[i]:
                words[-1].append(i)
            else:
                words.append([i])
        return [tuple(w) for w in words]


def pack_words(documents, max_tokens, sep_id=None):
    """Pack documents (lists of lines, each a list of words) into samples.

    Words fill a sample up to `max_tokens` tokens across line boundaries; a
    sample ends at a document boundary, unless `sep_id` is given, in which
    case documents continue in the same sample after a `(sep_id,)` separator
    (which is never masked). A word longer than `max_tokens` is cut.

    Returns a list of samples, each a list of words (tuples of ids); a
    separator word is `None`.
    """
    samples, current, size = [], [], 0

    def flush():
        nonlocal current, size
        while current and current[-1] is None:  # no trailing separator
            current.pop()
        if current:
            samples.append(current)
        current, size = [], 0

    for document in documents:
        if sep_id is not None and current and size + 1 < max_tokens:
            current.append(None)
            size += 1
        for line in document:
            for word in line:
                word = tuple(word[:max_tokens])
                if size + len(word) > max_tokens:
                    flush()
                current.append(word)
                size += len(word)
        if sep_id is None:
            flush()
    flush()
    return samples


def sample_arrays(words, seq_len, cls_id, sep_id):
    """`(input_ids, word_ids)` of one packed sample, padded to `seq_len`.

    `word_ids` numbers the words from 1 in order; special tokens and padding
    get 0 and are never masked.
    """
    input_ids = np.zeros(seq_len, dtype=np.int64)
    word_ids = np.zeros(seq_len, dtype=np.int64)
    input_ids[0] = cls_id
    position, index = 1, 0
    for word in words:
        if word is None:
            input_ids[position] = sep_id
            position += 1
            continue
        index += 1
        n = len(word)
        input_ids[position:position + n] = word
        word_ids[position:position + n] = index
        position += n
    if position >= seq_len:
        raise ValueError(
            f"`seq_len` must hold the sample, got seq_len={seq_len} for a sample of "
            f"{position + 1} tokens"
        )
    input_ids[position] = sep_id
    return input_ids, word_ids


def mask_budget(num_tokens, mask_prob, max_predictions):
    """Number of tokens to mask: round(n * p), at least 1, at most the cap."""
    return min(max_predictions, max(1, int(math.floor(num_tokens * mask_prob + 0.5))))


def mask_sample(input_ids, word_ids, rng, mask_id, random_pool, mask_prob=0.15,
                max_predictions=20):
    """Whole-word masking of one sample with the 80/10/10 rule.

    Words are visited in a random order and taken unless they would exceed
    the budget `mask_budget(number of maskable tokens)` (Google's rule: a
    word that does not fit is skipped, later shorter ones may still fit);
    every token of a taken word is predicted. Each predicted token becomes `[MASK]` with probability
    0.8, a random token from `random_pool` with 0.1, and stays with 0.1.

    Returns `(masked_ids, positions, labels, weights)`, the last three of
    length `max_predictions`, padded with 0 (weight 0.0).
    """
    maskable = word_ids > 0
    budget = mask_budget(int(maskable.sum()), mask_prob, max_predictions)
    num_words = int(word_ids.max()) if maskable.any() else 0
    lengths = np.bincount(word_ids, minlength=num_words + 1)[1:]
    order = rng.permutation(num_words)
    taken, covered = [], 0
    for w in order:
        if covered + lengths[w] <= budget:
            taken.append(w + 1)
            covered += lengths[w]
    chosen = np.nonzero(np.isin(word_ids, taken) & maskable)[0]
    draws = rng.random(len(chosen))
    replacements = random_pool[rng.integers(0, len(random_pool), size=len(chosen))]
    masked = input_ids.copy()
    labels = input_ids[chosen]
    masked[chosen[draws < 0.8]] = mask_id
    random_slots = draws >= 0.9
    masked[chosen[random_slots]] = replacements[random_slots]
    positions = np.zeros(max_predictions, dtype=np.int64)
    label_out = np.zeros(max_predictions, dtype=np.int64)
    weights = np.zeros(max_predictions, dtype=np.float32)
    positions[:len(chosen)] = chosen
    label_out[:len(chosen)] = labels
    weights[:len(chosen)] = 1.0
    return masked, positions, label_out, weights


# ---------------------------------------------------------------------------
# Record building (multiprocessing)
# ---------------------------------------------------------------------------


def iter_chunks(paths, chunk_lines=2000):
    """Yield `(documents, num_bytes)` chunks of about `chunk_lines` lines.

    A chunk closes at the first document boundary after `chunk_lines` lines,
    or inside a document once it holds `2 * chunk_lines` lines (a very long
    document is then split across chunks, and packing restarts there).
    """
    documents, document, count, nbytes = [], [], 0, 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for raw in f:
                nbytes += len(raw.encode("utf-8"))
                line = raw.strip()
                if not line:
                    if document:
                        documents.append(document)
                        document = []
                        if count >= chunk_lines:
                            yield documents, nbytes
                            documents, count, nbytes = [], 0, 0
                    continue
                document.append(line)
                count += 1
                if count >= 2 * chunk_lines:
                    documents.append(document)
                    document = []
                    yield documents, nbytes
                    documents, count, nbytes = [], 0, 0
        if document:  # a file ends its last document
            documents.append(document)
            document = []
    if documents:
        yield documents, nbytes


# Per-process state of the record-building workers (set by the pool initializer).
_WORKER = {}


def _init_worker(config):
    from bert4keras.tokenizers import Tokenizer

    tokenizer = Tokenizer(config["vocab_path"], do_lower_case=config["do_lower_case"],
                          token_start=None, token_end=None)
    _WORKER.clear()
    _WORKER["config"] = config
    _WORKER["splitter"] = WordSplitter(tokenizer, config["whole_word"])
    _WORKER["pool"] = random_token_pool(config["vocab_size"], config["excluded_random_ids"])


def _process_chunk(task):
    """Samples of one chunk as a list of feature dicts of numpy arrays."""
    chunk_index, documents = task
    config, splitter = _WORKER["config"], _WORKER["splitter"]
    tokenized = [[splitter(line) for line in document] for document in documents]
    seq_len = config["seq_len"]
    samples = pack_words(tokenized, seq_len - 2,
                         sep_id=config["sep_id"] if config["pack_documents"] else None)
    samples = [sample_arrays(s, seq_len, config["cls_id"], config["sep_id"]) for s in samples]
    out = []
    rng = np.random.default_rng([config["seed"], chunk_index])
    if config["masking"] == "dynamic":
        for input_ids, word_ids in samples:
            out.append({"input_ids": input_ids, "word_ids": word_ids})
    else:
        for _ in range(config["dupe_factor"]):
            for input_ids, word_ids in samples:
                masked, positions, labels, weights = mask_sample(
                    input_ids, word_ids, rng, config["mask_id"], _WORKER["pool"],
                    config["mask_prob"], config["max_predictions_per_seq"])
                out.append({"input_ids": masked, "masked_lm_positions": positions,
                            "masked_lm_ids": labels, "masked_lm_weights": weights})
    # Shuffle within the chunk so dupes of one sample are not adjacent;
    # training shuffles again across files.
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _serialize(features):
    import tensorflow as tf

    feature = {}
    for key, value in features.items():
        if value.dtype == np.float32:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=value))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Map fields serialize in hash order unless asked not to, which differs
    # from process to process.
    return example.SerializeToString(deterministic=True)


def build_records(
    corpus,
    vocab_path,
    output_dir,
    seq_len=128,
    max_predictions_per_seq=20,
    mask_prob=0.15,
    whole_word="jieba",
    masking="static",
    dupe_factor=1,
    pack_documents=False,
    do_lower_case=True,
    num_shards=1,
    num_workers=1,
    seed=12345,
    chunk_lines=2000,
    progress=True,
):
    """Turn text files into sharded TFRecords for MLM pretraining.

    Args:
        corpus: a text file path or a list of them (see the module docstring
            for the format).
        vocab_path: the model's `vocab.txt`.
        output_dir: directory for `records-*.tfrecord` and `meta.json`.
        seq_len: tokens per sample, `[CLS]` and `[SEP]` included.
        max_predictions_per_seq: most masked tokens per sample.
        mask_prob: fraction of the tokens to mask.
        whole_word: 'jieba', 'wordpiece' or 'none' (see `WordSplitter`).
        masking: 'static' (masked records, `dupe_factor` masks per sample) or
            'dynamic' (unmasked records with word ids; masked in `tf.data`).
        dupe_factor: static masking only, number of masked copies per sample.
        pack_documents: also pack documents together, separated by `[SEP]`.
        do_lower_case: lower-case and strip accents (uncased and Chinese BERT).
        num_shards: number of output files (samples go round-robin).
        num_workers: processes tokenizing and masking in parallel.
        seed: random seed; the output depends only on it and the settings.
        chunk_lines: lines per unit of work.
        progress: show a tqdm progress bar.

    Returns:
        The meta dict written to `output_dir/meta.json`.

    Example:
    ```python
    build_records(["wiki_zh.txt"], "vocab.txt", "records/", seq_len=128,
                  whole_word="jieba", num_shards=8, num_workers=4)
    ```
    """
    import tensorflow as tf

    from bert4keras.tokenizers import load_vocab

    paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    if not paths:
        raise ValueError("corpus: `paths` must name at least one input file, got none")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"corpus files must exist, got {path!r}, which is not found")
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(f"`vocab_path` must be an existing file, got {vocab_path!r}, which is not found")
    if masking not in ("static", "dynamic"):
        raise ValueError(f"masking must be 'static' or 'dynamic', got {masking!r}")
    if whole_word not in WHOLE_WORD_MODES:
        raise ValueError(f"whole_word must be one of {WHOLE_WORD_MODES}, got {whole_word!r}")
    for name, value, low in (("seq_len", seq_len, 3), ("max_predictions_per_seq", max_predictions_per_seq, 1),
                             ("dupe_factor", dupe_factor, 1), ("num_shards", num_shards, 1),
                             ("num_workers", num_workers, 1), ("chunk_lines", chunk_lines, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob!r}")

    token_dict = load_vocab(vocab_path)
    specials = special_token_ids(token_dict)
    config = dict(
        vocab_path=os.path.abspath(vocab_path), vocab_size=len(token_dict), do_lower_case=bool(do_lower_case),
        whole_word=whole_word, seq_len=seq_len, max_predictions_per_seq=max_predictions_per_seq,
        mask_prob=float(mask_prob), masking=masking, dupe_factor=dupe_factor if masking == "static" else 1,
        pack_documents=bool(pack_documents), seed=int(seed), **specials,
    )
    os.makedirs(output_dir, exist_ok=True)
    names = [RECORD_PATTERN % (i, num_shards) for i in range(num_shards)]
    # A stale meta.json would describe files about to be replaced.
    meta_path = os.path.join(output_dir, META_FILE)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    writers = [tf.io.TFRecordWriter(os.path.join(output_dir, n)) for n in names]
    counts = [0] * num_shards
    total_bytes = sum(os.path.getsize(p) for p in paths)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="building records")

    def tasks():
        for index, (documents, nbytes) in enumerate(iter_chunks(paths, chunk_lines)):
            sizes.append(nbytes)
            yield index, documents

    sizes = []
    next_shard = 0
    if num_workers == 1:
        _init_worker(config)
        results = map(_process_chunk, tasks())
        pool = None
    else:
        import multiprocessing

        # spawn: this process has TensorFlow loaded, which is not fork-safe.
        pool = multiprocessing.get_context("spawn").Pool(num_workers, _init_worker, (config,))
        results = pool.imap(_process_chunk, tasks(), chunksize=1)
    try:
        for index, chunk in enumerate(results):
            for features in chunk:
                writers[next_shard].write(_serialize(features))
                counts[next_shard] += 1
                next_shard = (next_shard + 1) % num_shards
            if bar is not None:
                bar.update(sizes[index])
                bar.set_postfix(samples=sum(counts))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        for writer in writers:
            writer.close()
        if bar is not None:
            bar.close()
    if sum(counts) == 0:
        raise ValueError(
            f"corpus {paths} must produce samples, got none; check that the files are "
            "not empty"
        )
    meta = {key: value for key, value in config.items() if key != "vocab_path"}
    meta.update(
        format_version=FORMAT_VERSION,
        vocab_file=os.path.basename(vocab_path),
        vocab_sha256=_sha256(vocab_path),
        num_samples=sum(counts),
        files={n: {"num_samples": c, "bytes": os.path.getsize(os.path.join(output_dir, n))}
               for n, c in zip(names, counts)},
    )
    tmp = meta_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, meta_path)
    return meta


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Reading: checks and tf.data
# ---------------------------------------------------------------------------


def read_meta(data_dir):
    """`(meta, files)` of a records directory, checking every file is intact.

    Raises `DataError` naming the file when `meta.json` is missing or
    malformed, or a shard is missing or has a different size than written
    (truncated or replaced).
    """
    meta_path = os.path.join(data_dir, META_FILE)
    if not os.path.isdir(data_dir):
        raise DataError(f"records directory not found: {data_dir!r}{_REBUILD}")
    if not os.path.isfile(meta_path):
        raise DataError(f"{meta_path!r} not found: build the records with `python -m pretraining.data`")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        meta["files"], meta["seq_len"], meta["masking"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise DataError(f"records meta file {meta_path!r} is malformed: {e!r}{_REBUILD}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{meta_path!r} has format_version {meta.get('format_version')!r}, "
                        f"expected {FORMAT_VERSION}{_REBUILD}")
    files = []
    for name, info in sorted(meta["files"].items()):
        path = os.path.join(data_dir, name)
        if not os.path.isfile(path):
            raise DataError(f"record file {path!r} listed in {meta_path!r} is missing{_REBUILD}")
        size = os.path.getsize(path)
        if size != info["bytes"]:
            raise DataError(f"record file {path!r} has {size} bytes but {info['bytes']} were written "
                            "(truncated or replaced); rebuild the records")
        files.append(path)
    return meta, files


def feature_spec(masking, seq_len, max_predictions):
    """`tf.io.parse_example` spec of the records."""
    import tensorflow as tf

    spec = {"input_ids": tf.io.FixedLenFeature([seq_len], tf.int64)}
    if masking == "static":
        spec["masked_lm_positions"] = tf.io.FixedLenFeature([max_predictions], tf.int64)
        spec["masked_lm_ids"] = tf.io.FixedLenFeature([max_predictions], tf.int64)
        spec["masked_lm_weights"] = tf.io.FixedLenFeature([max_predictions], tf.float32)
    elif masking == "dynamic":
        spec["word_ids"] = tf.io.FixedLenFeature([seq_len], tf.int64)
    else:
        raise DataError(f"`masking` must be 'static' or 'dynamic', got {masking!r}")
    return spec


def _describe(serialized):
    """`{feature: (kind, length)}` of one serialized tf.train.Example."""
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = (kind, len(getattr(feature, kind).value) if kind else 0)
    return out


def check_record_file(path, masking, seq_len, max_predictions, full=False):
    """Check the records of `path` against the expected layout.

    Reads the first record (every record when `full`), and raises `DataError`
    naming the file, the record and the feature at fault.
    """
    import tensorflow as tf

    expected = {"input_ids": ("int64_list", seq_len)}
    if masking == "static":
        expected.update(masked_lm_positions=("int64_list", max_predictions),
                        masked_lm_ids=("int64_list", max_predictions),
                        masked_lm_weights=("float_list", max_predictions))
    else:
        expected["word_ids"] = ("int64_list", seq_len)
    dataset = tf.data.TFRecordDataset(path)
    if not full:
        dataset = dataset.take(1)
    index = -1
    try:
        for index, serialized in enumerate(dataset.as_numpy_iterator()):
            try:
                found = _describe(serialized)
            except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError
                raise DataError(f"record file {path!r}: record {index} is not a tf.train.Example ({e})") from None
            for key, (kind, length) in expected.items():
                if key not in found:
                    raise DataError(
                        f"record file {path!r}: record {index} has no feature {key!r} "
                        f"(found {sorted(found)}); expected {masking} records")
                if found[key] != (kind, length):
                    raise DataError(
                        f"record file {path!r}: feature {key!r} of record {index} is "
                        f"{found[key][0]} of length {found[key][1]}, expected {kind} of length {length} "
                        f"(seq_len={seq_len}, max_predictions_per_seq={max_predictions})")
    except tf.errors.OpError as e:
        raise DataError(f"record file {path!r} is corrupt after record {index}: {e.message}") from None
    if index < 0:
        raise DataError(f"record file {path!r} holds no records{_REBUILD}")


def check_records(data_dir, seq_len=None, max_predictions=None, vocab_size=None, full=False):
    """Check a records directory before training; returns `(meta, files)`.

    `seq_len`, `max_predictions` and `vocab_size` (when given) must match what
    the records were built with; every file must be intact and hold the
    features of its masking mode. Errors name the file at fault.
    """
    meta, files = read_meta(data_dir)
    meta_path = os.path.join(data_dir, META_FILE)
    for name, wanted in (("seq_len", seq_len), ("max_predictions_per_seq", max_predictions),
                         ("vocab_size", vocab_size)):
        if wanted is not None and meta.get(name) != wanted:
            raise DataError(f"records in {data_dir!r} were built with {name}={meta.get(name)} "
                            f"({meta_path}), but training uses {name}={wanted}")
    for path in files:
        check_record_file(path, meta["masking"], meta["seq_len"], meta["max_predictions_per_seq"], full)
    return meta, files


def find_bad_file(files, masking, seq_len, max_predictions):
    """The `DataError` of the first file failing a full check, or None."""
    for path in files:
        try:
            check_record_file(path, masking, seq_len, max_predictions, full=True)
        except DataError as e:
            return e
    return None


def dynamic_mask(input_ids, word_ids, seed, mask_id, random_pool, mask_prob, max_predictions):
    """Whole-word 80/10/10 masking of a batch inside a TensorFlow graph.

    The same rule as `mask_sample`, over the whole batch at once: a random
    score per word gives the order in which words are visited. `seed` is
    a shape-[2] int tensor (stateless random ops), so a batch's mask depends
    only on it.

    Returns a dict with `token_ids`, `masked_positions`, `masked_ids`,
    `masked_weights`.
    """
    import tensorflow as tf

    input_ids = tf.cast(input_ids, tf.int32)
    word_ids = tf.cast(word_ids, tf.int32)
    batch = tf.shape(input_ids)[0]
    length = input_ids.shape[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    slots = length + 1  # word ids run from 0 (not maskable) to at most length
    maskable = word_ids > 0
    budget = tf.minimum(
        max_predictions,
        tf.maximum(1, tf.cast(tf.floor(tf.cast(tf.reduce_sum(tf.cast(maskable, tf.int32), 1), tf.float32)
                                       * mask_prob + 0.5), tf.int32)))
    word_lengths = tf.reduce_sum(tf.one_hot(word_ids, slots, dtype=tf.int32), axis=1)
    word_lengths = word_lengths * tf.concat([[0], tf.ones([slots - 1], tf.int32)], 0)
    scores = tf.random.stateless_uniform([batch, slots], seeds[0])
    scores = tf.where(word_lengths > 0, scores, 2.0)  # absent words sort last
    order = tf.argsort(scores, axis=1, stable=True)
    sorted_lengths = tf.gather(word_lengths, order, batch_dims=1)

    def visit(covered, length):
        fits = (length > 0) & (covered + length <= budget)
        return covered + tf.where(fits, length, 0)

    # Tokens covered after each visited word; a word was taken iff it grew.
    covered = tf.scan(visit, tf.transpose(sorted_lengths), initializer=tf.zeros_like(budget))
    previous = tf.concat([tf.zeros_like(covered[:1]), covered[:-1]], axis=0)
    taken_sorted = tf.transpose(covered > previous)
    taken = tf.gather(taken_sorted, tf.argsort(order, axis=1, stable=True), batch_dims=1)
    chosen = tf.gather(taken, word_ids, batch_dims=1) & maskable
    draws = tf.random.stateless_uniform([batch, length], seeds[1])
    pool = tf.constant(np.asarray(random_pool), tf.int32)
    picks = tf.random.stateless_uniform([batch, length], seeds[2], 0, int(pool.shape[0]), tf.int32)
    replacements = tf.gather(pool, picks)
    token_ids = tf.where(chosen & (draws < 0.8), mask_id, input_ids)
    token_ids = tf.where(chosen & (draws >= 0.9), replacements, token_ids)
    index = tf.range(length)[None, :]
    positions = tf.argsort(tf.where(chosen, index, index + length), axis=1, stable=True)
    positions = positions[:, :max_predictions]
    count = tf.reduce_sum(tf.cast(chosen, tf.int32), axis=1)
    valid = tf.range(max_predictions)[None, :] < count[:, None]
    positions = tf.where(valid, positions, 0)
    labels = tf.where(valid, tf.gather(input_ids, positions, batch_dims=1), 0)
    return {
        "token_ids": token_ids,
        "masked_positions": positions,
        "masked_ids": labels,
        "masked_weights": tf.cast(valid, tf.float32),
    }


def make_dataset(
    files,
    meta,
    batch_size,
    seed=0,
    shuffle_buffer=10000,
    skip_batches=0,
    mask_prob=None,
    num_shards=1,
    shard_index=0,
    split=1,
    repeat=True,
):
    """`tf.data.Dataset` of MLM batches from record files.

    Each element is a dict: `token_ids`, `segment_ids` (zeros),
    `masked_positions`, `masked_ids` (int32) and `masked_weights` (float32).
    The order of files and samples depends only on `seed`, and so does each
    dynamic mask (stateless ops seeded by `(seed, shard, batch index)`, a
    fresh mask every epoch). `skip_batches` drops the first batches before
    they are parsed or masked, which is how a resumed run continues the data
    stream.

    Args:
        files: record files (all of the same layout, described by `meta`).
        meta: the records' meta dict (`read_meta`).
        batch_size: samples per batch drawn from this pipeline (batches are
            full; the end of an epoch carries over into the next).
        seed: shuffling and masking seed.
        shuffle_buffer: samples in the shuffle buffer (0: no shuffling).
        skip_batches: batches to skip at the start.
        mask_prob: dynamic masking rate (default: the rate in `meta`).
        num_shards, shard_index: this pipeline's share of the data (one
            shard per worker): whole files when there are at least
            `num_shards` files, else every `num_shards`-th record.
        split: cut every batch, after masking, into this many consecutive
            equal parts (one per local replica), so the data and masks do
            not depend on how many replicas share a batch.
        repeat: loop over the data forever.
    """
    import tensorflow as tf

    masking, seq_len = meta["masking"], meta["seq_len"]
    max_predictions = meta["max_predictions_per_seq"]
    spec = feature_spec(masking, seq_len, max_predictions)
    if batch_size % split:
        raise ValueError(f"`batch_size` must be divisible by split={split}, got {batch_size}")
    files = list(files)
    shard_records = num_shards > 1 and len(files) < num_shards
    if num_shards > 1 and not shard_records:
        files = files[shard_index::num_shards]
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_buffer:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = files_ds.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shard_records:
        dataset = dataset.shard(num_shards, shard_index)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.enumerate()
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    pool = random_token_pool(meta["vocab_size"], meta["excluded_random_ids"])
    rate = meta["mask_prob"] if mask_prob is None else float(mask_prob)
    base_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, 0], tf.int64), shard_index)

    def parse(index, serialized):
        features = tf.io.parse_example(serialized, spec)
        if masking == "dynamic":
            batch = dynamic_mask(features["input_ids"], features["word_ids"],
                                 tf.random.experimental.stateless_fold_in(base_seed, index),
                                 meta["mask_id"], pool, rate, max_predictions)
        else:
            batch = {
                "token_ids": tf.cast(features["input_ids"], tf.int32),
                "masked_positions": tf.cast(features["masked_lm_positions"], tf.int32),
                "masked_ids": tf.cast(features["masked_lm_ids"], tf.int32),
                "masked_weights": features["masked_lm_weights"],
            }
        batch["segment_ids"] = tf.zeros_like(batch["token_ids"])
        return batch

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if split > 1:
        dataset = dataset.rebatch(batch_size // split, drop_remainder=True)  # static shapes (TPU)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pretraining.data",
        description="Build sharded TFRecords for MLM pretraining from plain text "
                    "(one sentence or paragraph per line, blank lines between documents).")
    parser.add_argument("--corpus", nargs="+", required=True, help="input text files")
    parser.add_argument("--vocab", required=True, help="vocab.txt of the model")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-predictions", type=int, default=20, help="max_predictions_per_seq")
    parser.add_argument("--mask-prob", type=float, default=0.15)
    parser.add_argument("--whole-word", choices=WHOLE_WORD_MODES, default="jieba",
                        help="word boundaries for whole-word masking: jieba (Chinese), "
                             "wordpiece (## continuations, English) or none")
    parser.add_argument("--masking", choices=("static", "dynamic"), default="static",
                        help="static: masked records; dynamic: token records masked in tf.data")
    parser.add_argument("--dupe-factor", type=int, default=1, help="static masks per sample")
    parser.add_argument("--pack-documents", action="store_true",
                        help="also pack documents together, separated by [SEP]")
    parser.add_argument("--no-lower-case", dest="do_lower_case", action="store_false",
                        help="keep case (cased vocabularies)")
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--chunk-lines", type=int, default=2000)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    try:
        meta = build_records(
            args.corpus, args.vocab, args.output, seq_len=args.seq_len,
            max_predictions_per_seq=args.max_predictions, mask_prob=args.mask_prob,
            whole_word=args.whole_word, masking=args.masking, dupe_factor=args.dupe_factor,
            pack_documents=args.pack_documents, do_lower_case=args.do_lower_case,
            num_shards=args.num_shards, num_workers=args.workers, seed=args.seed,
            chunk_lines=args.chunk_lines, progress=args.progress)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {meta['num_samples']} samples in {len(meta['files'])} file(s) to {args.output}")


if __name__ == "__main__":
    sys.exit(main())
