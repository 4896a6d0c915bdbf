"""snippets: padding, truncation, segmentation, DataGenerator, Viterbi."""
import itertools
import os

import keras
import numpy as np
import pytest

from bert4keras.snippets import (
    DataGenerator,
    ViterbiDecoder,
    open as b4k_open,
    parallel_apply,
    sequence_padding,
    softmax,
    text_segmentate,
    truncate_sequences,
)


# ---------------------------------------------------------------------------
# sequence_padding
# ---------------------------------------------------------------------------
def _pad_reference(inputs, length, value, mode):
    """Brute-force 1-level padding."""
    out = []
    for x in inputs:
        x = list(x)[:length]
        pad = [value] * (length - len(x))
        out.append(x + pad if mode == "post" else pad + x)
    return np.array(out)


def test_sequence_padding_ragged_post_pre_value_length():
    rng = np.random.default_rng(0)
    for _ in range(50):
        inputs = [list(rng.integers(1, 9, size=rng.integers(0, 7))) for _ in range(rng.integers(1, 5))]
        longest = max(len(x) for x in inputs)
        for mode in ("post", "pre"):
            for length in (None, 3, longest + 2):
                for value in (0, -1):
                    out = sequence_padding(inputs, length=length, value=value, mode=mode)
                    expected = _pad_reference(inputs, longest if length is None else length, value, mode)
                    np.testing.assert_array_equal(out, expected.reshape(out.shape))
                    assert out.dtype.kind == "i"


def test_sequence_padding_examples():
    np.testing.assert_array_equal(sequence_padding([[1, 2, 3], [4]]), [[1, 2, 3], [4, 0, 0]])
    np.testing.assert_array_equal(sequence_padding([[1, 2, 3], [4]], mode="pre"), [[1, 2, 3], [0, 0, 4]])
    out = sequence_padding([np.ones((2, 3)), np.ones((1, 3))], value=-5)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[1, 1], [-5, -5, -5])
    out = sequence_padding([[0.5], []], value=0)
    assert out.dtype == np.float64 and out.tolist() == [[0.5], [0.0]]
    assert sequence_padding([[], []]).shape == (2, 0)


def test_sequence_padding_nested_seq_dims_2():
    # Ragged at both levels: samples of words of characters.
    inputs = [[[1, 2], [3]], [[4, 5, 6]], []]
    out = sequence_padding(inputs, seq_dims=2)
    expected = np.zeros((3, 2, 3), dtype=int)
    for i, sample in enumerate(inputs):
        for j, word in enumerate(sample):
            expected[i, j, : len(word)] = word
    np.testing.assert_array_equal(out, expected)
    out = sequence_padding(inputs, seq_dims=2, mode="pre", length=2, value=9)
    np.testing.assert_array_equal(out, sequence_padding(inputs, seq_dims=2, mode="pre", length=[2, 2], value=9))
    expected = np.full((3, 2, 2), 9)
    expected[0, 0] = [1, 2]
    expected[0, 1] = [9, 3]
    expected[1, 1] = [4, 5]
    np.testing.assert_array_equal(out, expected)
    # 2-D arrays with a trailing feature dim
    x = [np.arange(12).reshape(2, 3, 2), np.arange(4).reshape(1, 2, 2)]
    out = sequence_padding(x, seq_dims=2)
    assert out.shape == (2, 2, 3, 2)
    np.testing.assert_array_equal(out[1, 0, :2], x[1][0])
    assert (out[1, 0, 2] == 0).all() and (out[1, 1] == 0).all()


def test_sequence_padding_errors():
    with pytest.raises(ValueError, match="mode"):
        sequence_padding([[1]], mode="middle")
    with pytest.raises(ValueError, match="length"):
        sequence_padding([[[1]]], seq_dims=2, length=[1])
    with pytest.raises(ValueError, match="sample 1"):
        sequence_padding([[1], 5])
    with pytest.raises(ValueError, match="sample 1"):
        sequence_padding([np.ones((2, 3)), np.ones((2, 4))])


# ---------------------------------------------------------------------------
# truncate_sequences
# ---------------------------------------------------------------------------
def _pop_reference(maxlen, indices, *seqs):
    seqs = [s for s in seqs if s]
    if not isinstance(indices, list):
        indices = [indices] * len(seqs)
    while sum(map(len, seqs)) > maxlen:
        i = int(np.argmax([len(s) for s in seqs]))
        s = seqs[i]
        s.pop(max(min(indices[i], len(s) - 1), -len(s)))
    return seqs


def test_truncate_sequences_matches_pop_algorithm():
    rng = np.random.default_rng(1)
    for _ in range(500):
        k = int(rng.integers(1, 4))
        seqs = [list(range(100 * j, 100 * j + int(rng.integers(0, 12)))) for j in range(k)]
        maxlen = int(rng.integers(0, 30))
        index = int(rng.integers(-4, 4))
        per = [int(rng.integers(-3, 3)) for _ in range(k)]
        for idx in (index, per):
            a = [list(s) for s in seqs]
            b = [list(s) for s in seqs]
            got = truncate_sequences(maxlen, idx, *a)
            kept_idx = [i for s, i in zip(b, idx)] if isinstance(idx, list) else idx
            if isinstance(idx, list):
                kept_idx = [i for s, i in zip(b, idx) if s]
            expected = _pop_reference(maxlen, kept_idx, *b)
            assert got == expected
            assert sum(map(len, a)) <= maxlen or sum(map(len, a)) == sum(map(len, seqs)) <= maxlen


def test_truncate_sequences_example_and_errors():
    a, b = [1, 2, 3, 4], [5, 6]
    assert truncate_sequences(4, -1, a, b) == [[1, 2], [5, 6]]
    assert a == [1, 2]
    with pytest.raises(ValueError, match="maxlen"):
        truncate_sequences(-1, -1, [1])
    with pytest.raises(TypeError, match="lists"):
        truncate_sequences(1, -1, (1, 2))


# ---------------------------------------------------------------------------
# text_segmentate
# ---------------------------------------------------------------------------
def test_text_segmentate_examples():
    assert text_segmentate("aa。bb。cc", 6, seps="。") == ["aa。bb。", "cc"]
    assert text_segmentate("短句", 10) == ["短句"]
    text = "第一句话，很长很长。第二句！第三句，也很长很长很长。"
    pieces = text_segmentate(text, 8, seps="。！，")
    assert pieces == ["第一句话，", "很长很长。", "第二句！", "第三句，", "也很长很长很长。"]
    assert text_segmentate("  a\nb  ", 1, seps="\n") == ["a", "b"]
    assert text_segmentate("，a，", 10, strips="，") == ["a"]


def test_text_segmentate_properties():
    rng = np.random.default_rng(2)
    for _ in range(200):
        text = "".join(rng.choice(list("abcde。，"), size=int(rng.integers(1, 60))))
        maxlen = int(rng.integers(2, 15))
        pieces = text_segmentate(text, maxlen, seps="。，")
        assert "".join(pieces) == text
        for p in pieces:
            # a piece is too long only when it has no separator left to cut
            # at (a separator followed by more text)
            cuts = [i for i in range(len(p) - 1) if p[i] in "。，" and p[i + 1] not in "。，"]
            # (as in bert4keras, repeated separators stay glued to the piece)
            assert len(p.rstrip("。，")) <= maxlen or not cuts, (text, maxlen, pieces)


# ---------------------------------------------------------------------------
# ViterbiDecoder
# ---------------------------------------------------------------------------
def _brute_force_path(nodes, trans, starts, ends):
    length, k = nodes.shape
    best, best_path = -np.inf, None
    for path in itertools.product(range(k), repeat=length):
        if starts is not None and path[0] not in starts:
            continue
        if ends is not None and path[-1] not in ends:
            continue
        score = nodes[0, path[0]] + sum(
            trans[path[t - 1], path[t]] + nodes[t, path[t]] for t in range(1, length)
        )
        if score > best:
            best, best_path = score, path
    return np.array(best_path)


def test_viterbi_equals_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(1, 5))
        length = int(rng.integers(1, 6))
        trans = rng.normal(size=(k, k))
        nodes = rng.normal(size=(length, k))
        starts = ends = None
        if rng.random() < 0.5:
            starts = sorted(rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False).tolist())
        if rng.random() < 0.5:
            ends = sorted(rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False).tolist())
        if length == 1 and starts is not None and ends is not None and not set(starts) & set(ends):
            continue
        original = nodes.copy()
        path = ViterbiDecoder(trans, starts, ends).decode(nodes)
        np.testing.assert_array_equal(path, _brute_force_path(nodes, trans, starts, ends))
        np.testing.assert_array_equal(nodes, original)  # input not modified
        assert path.dtype.kind == "i"


def test_viterbi_errors_and_empty():
    assert ViterbiDecoder(np.zeros((3, 3))).decode(np.zeros((0, 3))).shape == (0,)
    with pytest.raises(ValueError, match="trans"):
        ViterbiDecoder(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="starts"):
        ViterbiDecoder(np.zeros((2, 2)), starts=[5])
    with pytest.raises(ValueError, match="nodes"):
        ViterbiDecoder(np.zeros((2, 2))).decode(np.zeros((4, 3)))


# ---------------------------------------------------------------------------
# DataGenerator
# ---------------------------------------------------------------------------
class BatchGenerator(DataGenerator):
    """Yields ready batches: (ids as float features, ids as targets)."""

    def __iter__(self, random=False):
        xs = []
        for is_end, i in self.sample(random):
            xs.append(i)
            if len(xs) == self.batch_size or is_end:
                x = np.array(xs, dtype="float32")[:, None]
                yield x, x
                xs = []


class SampleGenerator(DataGenerator):
    """Yields single ragged samples, for to_dataset(padded_batch=True)."""

    def __iter__(self, random=False):
        for _, i in self.sample(random):
            yield np.full((i % 4 + 1,), i, dtype="int32"), np.array([i], dtype="float32")


def test_sample_covers_data_once():
    data = list(range(37))
    for random in (False, True):
        gen = BatchGenerator(data, batch_size=5, seed=0)
        items = list(gen.sample(random))
        assert sorted(i for _, i in items) == data
        assert [e for e, _ in items] == [False] * 36 + [True]
        # an iterable without length: buffer shuffle
        gen = BatchGenerator(iter(data), batch_size=5, buffer_size=7, seed=0)
        assert sorted(i for _, i in gen.sample(True)) == data
    gen = BatchGenerator(data, batch_size=5)
    assert len(gen) == 8
    assert sum(len(x) for x, _ in gen) == 37
    with pytest.raises(TypeError, match="length"):
        len(BatchGenerator(iter(data)))
    with pytest.raises(ValueError, match="batch_size"):
        BatchGenerator(data, batch_size=0)


def _epoch_ids(dataset):
    ids = []
    for x, y in dataset:
        ids.extend(np.asarray(y).reshape(-1).astype(int).tolist())
    return ids


@pytest.mark.parametrize("workers", [1, 3])
def test_to_dataset_each_sample_once_per_epoch(workers):
    data = list(range(53))
    gen = SampleGenerator(data, batch_size=8, seed=1)
    ds = gen.to_dataset(
        types=("int32", "float32"), shapes=([None], [1]), padded_batch=True, workers=workers
    )
    next(iter(ds))  # a dropped partial pass (Keras peeks like this) must not desync workers
    orders = []
    for _ in range(3):
        ids = _epoch_ids(ds)
        assert sorted(ids) == data
        orders.append(ids)
    assert orders[0] != orders[1]  # reshuffled each epoch
    x, y = next(iter(ds))
    assert x.shape[0] == 8 and x.dtype.name == "int32"
    # padded to the longest sample of the batch, with zeros
    lengths = (np.asarray(y)[:, 0].astype(int) % 4) + 1
    assert x.shape[1] == lengths.max()
    assert (np.asarray(x)[np.arange(8), lengths - 1] == np.asarray(y)[:, 0]).all()


def test_to_dataset_inferred_types_names_and_batched():
    gen = BatchGenerator(list(range(20)), batch_size=6)
    ds = gen.to_dataset(batched=True, random=False, workers=2)
    ids = _epoch_ids(ds)
    assert sorted(ids) == list(range(20))
    gen = SampleGenerator(list(range(10)), batch_size=4)
    ds = gen.to_dataset(names=("Input-Token", "label"), padded_batch=True, random=False)
    batch = next(iter(ds))
    assert set(batch) == {"Input-Token", "label"}
    assert batch["Input-Token"].shape[0] == 4


class IdCounter(keras.metrics.Metric):
    """Counts how often each sample id reaches the train step in an epoch."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = n
        self.counts = self.add_variable(shape=(n,), initializer="zeros", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ids = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        self.counts.assign_add(keras.ops.sum(keras.ops.one_hot(ids, self.n), axis=0))

    def result(self):
        # number of ids not seen exactly once
        return keras.ops.sum(keras.ops.cast(keras.ops.not_equal(self.counts, 1.0), "float32"))


def _tiny_model(n):
    inputs = keras.Input(shape=(1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=[IdCounter(n, name="bad_ids")])
    return model


def test_fit_consumes_to_dataset_with_workers():
    n = 61
    gen = BatchGenerator(list(range(n)), batch_size=8, seed=2)
    ds = gen.to_dataset(batched=True, workers=3)
    history = _tiny_model(n).fit(ds, epochs=4, verbose=0)
    assert history.history["bad_ids"] == [0.0] * 4
    # endless, bert4keras-style, with steps_per_epoch
    ds = gen.to_dataset(batched=True, repeat=True)
    history = _tiny_model(n).fit(ds, steps_per_epoch=len(gen), epochs=3, verbose=0)
    assert history.history["bad_ids"] == [0.0] * 3


def test_fit_consumes_forfit():
    n = 45
    gen = BatchGenerator(list(range(n)), batch_size=7, seed=3)
    history = _tiny_model(n).fit(gen.forfit(), steps_per_epoch=len(gen), epochs=3, verbose=0)
    assert history.history["bad_ids"] == [0.0] * 3


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def test_open_limit_and_index(tmp_path):
    path = str(tmp_path / "lines.txt")
    with b4k_open(path, "w") as f:
        for i in range(10):
            f.write("行%d\n" % i)
    with b4k_open(path, limit=3) as f:
        assert [l.strip() for l in f] == ["行0", "行1", "行2"]
    with b4k_open(path, indexable=True) as f:
        assert len(f) == 10 and f[7] == "行7\n" and f[0] == "行0\n"
    with pytest.raises(ValueError, match="mode"):
        b4k_open(path, "rb")


def test_parallel_apply_and_softmax():
    assert parallel_apply(len, ["a", "bb", "ccc"], workers=2, dummy=True) == [1, 2, 3]
    seen = []
    assert parallel_apply(abs, [-1, -2], workers=2, dummy=True, callback=seen.append) is None
    assert seen == [1, 2]
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(softmax(x), np.exp(x) / np.exp(x).sum())
