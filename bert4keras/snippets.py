"""Data helpers: padding, truncation, text segmentation, batch generators and
Viterbi decoding.

Everything here is plain Python/NumPy. The sequence helpers live in
`bert4keras.sequences` and `DataGenerator` (with its `tf.data` bridge) in
`bert4keras.data_generator`; they are re-exported here under bert4keras'
names, as are the decoders of `bert4keras.generation` (loaded on first
access).
"""
import builtins
import itertools

import numpy as np

from bert4keras.data_generator import DataGenerator
from bert4keras.sequences import sequence_padding, text_segmentate, truncate_sequences

__all__ = [
    "is_string",
    "to_array",
    "softmax",
    "sequence_padding",
    "truncate_sequences",
    "text_segmentate",
    "parallel_apply",
    "DataGenerator",
    "ViterbiDecoder",
]


def is_string(s):
    """True for `str` objects."""
    return isinstance(s, str)


def to_array(*args):
    """Convert each argument to a NumPy array; one argument gives one array."""
    results = [np.array(a) for a in args]
    return results[0] if len(results) == 1 else results


def softmax(x, axis=-1):
    """Numerically stable NumPy softmax."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


class open:  # noqa: A001 - same name as in bert4keras, on purpose
    """Text file reader/writer in the style of bert4keras' `open`.

    Iterating yields lines (with their newline); `limit` stops after that
    many lines. With `indexable=True` the byte offset of every line is
    recorded once, and `f[i]` reads line `i` without loading the file
    (useful for large corpora).

    Args:
        name: file path.
        mode: `'r'`, `'w'` or `'a'` (text modes).
        encoding: text encoding.
        errors: decoding error handling, as in the builtin `open`.
        indexable: build a line index for random access.
        limit: iterate over at most this many lines.

    Example:
    >>> with open("corpus.txt", limit=1000) as f:
    ...     lines = [l.strip() for l in f]
    """

    def __init__(self, name, mode="r", encoding="utf-8", errors="strict", indexable=False, limit=None):
        if mode not in ("r", "w", "a"):
            raise ValueError("open: `mode` must be 'r', 'w' or 'a', got %r" % (mode,))
        self.name = name
        self.mode = mode
        self.encoding = encoding
        self.errors = errors
        self.limit = limit
        self.offsets = None
        if mode == "r":
            self.file = builtins.open(name, "rb")
        else:
            self.file = builtins.open(name, mode, encoding=encoding, errors=errors)
        if indexable:
            if mode != "r":
                raise ValueError("open(indexable=True) needs mode='r'")
            self.offsets, offset = [], 0
            for line in self.file:
                self.offsets.append(offset)
                offset += len(line)
            self.file.seek(0)

    def _decode(self, raw):
        return raw.decode(self.encoding, self.errors)

    def __iter__(self):
        self._check_read()
        lines = iter(self.file.readline, b"")
        if self.limit is not None:
            lines = itertools.islice(lines, self.limit)
        for raw in lines:
            yield self._decode(raw)

    def __len__(self):
        if self.offsets is None:
            raise TypeError("len(open(...)) needs indexable=True")
        return len(self.offsets)

    def __getitem__(self, i):
        if self.offsets is None:
            raise TypeError("open(...)[i] needs indexable=True")
        self.file.seek(self.offsets[i])
        return self._decode(self.file.readline())

    def _check_read(self):
        if self.mode != "r":
            raise ValueError("file %r was opened for writing" % (self.name,))

    def read(self):
        self._check_read()
        return self._decode(self.file.read())

    def readline(self):
        self._check_read()
        return self._decode(self.file.readline())

    def readlines(self):
        return list(self)

    def write(self, text):
        if self.mode == "r":
            raise ValueError("file %r was opened for reading" % (self.name,))
        return self.file.write(text)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parallel_apply(func, iterable, workers=4, max_queue_size=None, dummy=False, callback=None, chunksize=1):
    """Apply `func` to every item with a process (or thread) pool, in order.

    Args:
        func: a picklable function (any function when `dummy=True`).
        iterable: the inputs.
        workers: pool size.
        max_queue_size: unused; kept for bert4keras compatibility.
        dummy: use threads instead of processes.
        callback: if given, called on each result in order and nothing is
            returned; otherwise the list of results is returned.
        chunksize: items sent to a worker at a time.

    Example:
    >>> parallel_apply(len, ["a", "bb"], workers=2, dummy=True)
    [1, 2]
    """
    if dummy:
        from multiprocessing.pool import ThreadPool as Pool
    else:
        from multiprocessing import Pool
    results = [] if callback is None else None
    with Pool(workers) as pool:
        for r in pool.imap(func, iterable, chunksize=chunksize):
            if callback is None:
                results.append(r)
            else:
                callback(r)
    return results


class ViterbiDecoder:
    """Best tag path under per-step scores and a transition matrix (NumPy).

    Scores are in log space: the score of a path is the sum of its node
    scores and of the transitions between consecutive tags.

    Args:
        trans: `[num_labels, num_labels]` transition scores, `trans[i, j]`
            for tag `i` followed by tag `j`.
        starts: optional list of tags allowed at the first position.
        ends: optional list of tags allowed at the last position.

    Example:
    >>> decoder = ViterbiDecoder(trans, starts=[0], ends=[0])
    >>> tags = decoder.decode(nodes)  # nodes: [seq_len, num_labels]
    """

    def __init__(self, trans, starts=None, ends=None):
        self.trans = np.asarray(trans, dtype=np.float64)
        if self.trans.ndim != 2 or self.trans.shape[0] != self.trans.shape[1]:
            raise ValueError("ViterbiDecoder: `trans` must be a square matrix, got shape %s" % (self.trans.shape,))
        self.num_labels = self.trans.shape[0]
        self.non_starts = self._complement(starts, "starts")
        self.non_ends = self._complement(ends, "ends")

    def _complement(self, allowed, name):
        if allowed is None:
            return []
        allowed = set(int(i) for i in allowed)
        bad = [i for i in allowed if not 0 <= i < self.num_labels]
        if bad:
            raise ValueError("ViterbiDecoder: `%s` must hold tags in 0..%d, got %s" % (name, self.num_labels - 1, bad))
        return [i for i in range(self.num_labels) if i not in allowed]

    def decode(self, nodes):
        """Best path for `nodes` of shape `[seq_len, num_labels]` (not modified).

        Returns:
            An int array of `seq_len` tag ids.
        """
        nodes = np.array(nodes, dtype=np.float64)
        if nodes.ndim != 2 or nodes.shape[1] != self.num_labels:
            raise ValueError(
                "ViterbiDecoder.decode: `nodes` must have shape [seq_len, %d], got %s"
                % (self.num_labels, nodes.shape)
            )
        length = nodes.shape[0]
        if length == 0:
            return np.zeros((0,), dtype=np.int64)
        nodes[0, self.non_starts] = -np.inf
        nodes[-1, self.non_ends] = -np.inf
        scores = nodes[0]
        backpointers = np.zeros((length, self.num_labels), dtype=np.int64)
        for t in range(1, length):
            total = scores[:, None] + self.trans + nodes[t][None, :]
            backpointers[t] = total.argmax(axis=0)
            scores = total[backpointers[t], np.arange(self.num_labels)]
        path = np.zeros((length,), dtype=np.int64)
        path[-1] = int(scores.argmax())
        for t in range(length - 1, 0, -1):
            path[t - 1] = backpointers[t, path[t]]
        return path


# bert4keras users import the decoder from snippets. It lives in
# bert4keras.generation, which imports Keras; loading it on first access keeps
# `import bert4keras.tokenizers` (and data-preparation workers) free of
# Keras and TensorFlow.
_LAZY = {"AutoRegressiveDecoder", "Seq2SeqDecoder"}


def __getattr__(name):
    if name in _LAZY:
        from bert4keras import generation

        return getattr(generation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)
