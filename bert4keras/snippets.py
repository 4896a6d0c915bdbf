"""Data helpers: padding, truncation, text segmentation, batch generators and
Viterbi decoding.

Everything here is plain Python/NumPy. TensorFlow is imported only inside
`DataGenerator.to_dataset`, which builds a `tf.data.Dataset` (usable by
`model.fit` on every Keras backend).
"""
import builtins
import copy
import itertools

import numpy as np

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
            raise ValueError("open(mode=...): expected 'r', 'w' or 'a', got %r" % (mode,))
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


def _is_leaf_scalar(x):
    return isinstance(x, (int, float, complex, bool, np.generic, str, bytes))


def _nested_max(x, depth, seq_dims, lengths, leaves):
    """Record per-level maximum lengths of a ragged nested sequence."""
    n = len(x)
    if n > lengths[depth]:
        lengths[depth] = n
    if depth + 1 < seq_dims:
        for item in x:
            _nested_max(item, depth + 1, seq_dims, lengths, leaves)
    elif n and not leaves:
        leaves.append(x[0])


def _fill(out, x, depth, seq_dims, length, mode):
    x = x[: length[depth]]
    n = len(x)
    offset = length[depth] - n if mode == "pre" else 0
    if depth + 1 == seq_dims:
        if n:
            out[offset:offset + n] = np.asarray(x) if not isinstance(x, np.ndarray) else x
        return
    for i, item in enumerate(x):
        _fill(out[offset + i], item, depth + 1, seq_dims, length, mode)


def sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post", dtype=None):
    """Pad (and cut) a batch of ragged sequences into one NumPy array.

    Args:
        inputs: list of samples; each is a (possibly nested, ragged) sequence
            whose first `seq_dims` levels vary in length. Deeper levels must
            have a common shape.
        length: target length (an int for every padded level, or a list of
            `seq_dims` ints); default the longest in the batch. Longer
            sequences keep their beginning.
        value: the padding value.
        seq_dims: how many leading levels are padded.
        mode: `'post'` pads at the end, `'pre'` at the start.
        dtype: output dtype; default from the data and `value`.

    Returns:
        A NumPy array of shape `[batch] + length + trailing shape`.

    Example:
    >>> sequence_padding([[1, 2, 3], [4]])
    array([[1, 2, 3],
           [4, 0, 0]])
    """
    if mode not in ("post", "pre"):
        raise ValueError('sequence_padding(mode=...): expected "post" or "pre", got %r' % (mode,))
    seq_dims = int(seq_dims)
    if seq_dims < 1:
        raise ValueError("sequence_padding(seq_dims=...): must be >= 1, got %r" % (seq_dims,))
    inputs = list(inputs)
    lengths, leaves = [0] * seq_dims, []
    for i, x in enumerate(inputs):
        if _is_leaf_scalar(x) or not hasattr(x, "__len__"):
            raise ValueError(
                "sequence_padding(inputs=...): sample %d is %r, not a sequence" % (i, type(x).__name__)
            )
        _nested_max(x, 0, seq_dims, lengths, leaves)
    if length is not None:
        if np.ndim(length) == 0:
            length = [length] * seq_dims
        length = [int(l) for l in length]
        if len(length) != seq_dims:
            raise ValueError(
                "sequence_padding(length=...): expected %d lengths for seq_dims=%d, got %r"
                % (seq_dims, seq_dims, length)
            )
        if min(length) < 0:
            raise ValueError("sequence_padding(length=...): lengths must be >= 0, got %r" % (length,))
    else:
        length = lengths
    if leaves:
        leaf = np.asarray(leaves[0])
        trailing = leaf.shape
        if dtype is None:
            dtype = np.result_type(leaf.dtype, value) if np.ndim(value) == 0 else leaf.dtype
    else:
        trailing = ()
        if dtype is None:
            dtype = np.asarray(value).dtype
    out = np.full([len(inputs)] + list(length) + list(trailing), value, dtype=dtype)
    for i, x in enumerate(inputs):
        try:
            _fill(out[i], x, 0, seq_dims, length, mode)
        except ValueError as e:
            raise ValueError(
                "sequence_padding: sample %d does not fit the common trailing shape %s: %s"
                % (i, trailing, e)
            ) from None
    return out


def _truncate_lengths(lengths, maxlen):
    """Target lengths after repeatedly removing one item from the longest
    sequence (the first on ties) until the total is at most `maxlen`,
    computed in closed form instead of one pop at a time.
    """
    lengths = list(lengths)
    excess = sum(lengths) - maxlen
    while excess > 0:
        top = max(lengths)
        tied = [i for i, n in enumerate(lengths) if n == top]
        lower = [n for n in lengths if n < top]
        floor = max(lower) if lower else 0
        cost = len(tied) * (top - floor)
        if cost <= excess:
            for i in tied:
                lengths[i] = floor
            excess -= cost
            if floor == 0:
                break
        else:
            rounds, rest = divmod(excess, len(tied))
            for k, i in enumerate(tied):
                lengths[i] = top - rounds - (1 if k < rest else 0)
            excess = 0
    return lengths


def _drop_at(seq, index, k):
    """Remove `k` items from `seq` as `k` calls of `seq.pop(index)` would,
    except that an index past either end is clamped instead of raising."""
    n = len(seq)
    k = min(k, n)
    if k <= 0:
        return
    if index < 0:
        stop = max(n + index + 1, 0)
        start = max(stop - k, 0)
        del seq[start:stop]
        left = k - (stop - start)
        if left:
            del seq[:left]
    else:
        start = min(index, n)
        stop = min(start + k, n)
        del seq[start:stop]
        left = k - (stop - start)
        if left:
            del seq[len(seq) - left:]


def truncate_sequences(maxlen, indices, *sequences):
    """Shorten lists in place until their total length is at most `maxlen`.

    One item at a time is removed from the currently longest list (the first
    one on ties), at position `indices` (one int for all lists, or one per
    list; e.g. -2 drops the item before a final `[SEP]`). If a list gets too
    short for its index, the nearest valid position is used.

    Args:
        maxlen: the length budget (int >= 0).
        indices: int, or list of ints, the position to remove at.
        *sequences: Python lists (None or empty ones are ignored).

    Returns:
        The list of non-empty input sequences (the same objects, truncated).

    Example:
    >>> a, b = [1, 2, 3, 4], [5, 6]
    >>> truncate_sequences(4, -1, a, b)
    [[1, 2], [5, 6]]
    """
    maxlen = int(maxlen)
    if maxlen < 0:
        raise ValueError("truncate_sequences(maxlen=...): must be >= 0, got %r" % (maxlen,))
    if isinstance(indices, (list, tuple)):
        if len(indices) != len(sequences):
            raise ValueError(
                "truncate_sequences(indices=...): %d indices for %d sequences" % (len(indices), len(sequences))
            )
        pairs = [(s, i) for s, i in zip(sequences, indices) if s]
    else:
        pairs = [(s, indices) for s in sequences if s]
    for s, _ in pairs:
        if not isinstance(s, list):
            raise TypeError("truncate_sequences: sequences must be lists, got %s" % type(s).__name__)
    targets = _truncate_lengths([len(s) for s, _ in pairs], maxlen)
    for (s, index), target in zip(pairs, targets):
        _drop_at(s, int(index), len(s) - target)
    return [s for s, _ in pairs]


def text_segmentate(text, maxlen, seps="\n", strips=None):
    """Split a text into pieces of at most `maxlen` characters at separators.

    The text is split at `seps[0]`; consecutive parts are merged back while
    they fit in `maxlen`, and parts still too long are split at `seps[1]`,
    and so on. Separators stay at the end of their piece; a part with no
    separator left to split at is returned as is, even if too long, and a
    run of repeated separators stays glued to the end of its piece.

    Args:
        text: the string.
        maxlen: the target maximum piece length.
        seps: separators, strongest first, e.g. `'\\n。！？!?；;，, '`.
        strips: characters stripped from both ends of every piece
            (whitespace always is).

    Returns:
        A list of strings.

    Example:
    >>> text_segmentate("aa。bb。cc", 6, seps="。")
    ['aa。bb。', 'cc']
    """
    text = text.strip().strip(strips)
    if not seps or len(text) <= maxlen:
        return [text]
    sep, rest = seps[0], seps[1:]
    parts = text.split(sep)
    pieces, current = [], ""
    for i, part in enumerate(parts):
        chunk = part if i + 1 == len(parts) else part + sep
        if current and part and len(current) + len(chunk) > maxlen:
            pieces.extend(text_segmentate(current, maxlen, rest, strips))
            current = ""
        current += chunk
    if current:
        pieces.extend(text_segmentate(current, maxlen, rest, strips))
    return pieces


class DataGenerator:
    """Batch generator template, as in bert4keras.

    Subclass it and implement `__iter__(self, random=False)`, which yields
    either ready batches (for `forfit()` and plain iteration) or single
    samples (for `to_dataset()`, which batches them). `self.sample(random)`
    walks the data, shuffled when `random`, and flags the last item, so a
    typical subclass is:

    ```python
    class Generator(DataGenerator):
        def __iter__(self, random=False):
            batch_token_ids, batch_labels = [], []
            for is_end, (text, label) in self.sample(random):
                token_ids, _ = tokenizer.encode(text, maxlen=128)
                batch_token_ids.append(token_ids)
                batch_labels.append([label])
                if len(batch_token_ids) == self.batch_size or is_end:
                    yield sequence_padding(batch_token_ids), np.array(batch_labels)
                    batch_token_ids, batch_labels = [], []
    ```

    Args:
        data: a list (or anything with `__len__` and `__getitem__`), or an
            iterable; for the latter, shuffling uses a buffer.
        batch_size: samples per batch.
        buffer_size: shuffle buffer for iterables without a length (default
            `batch_size * 1000`).
        seed: seed of this generator's random generator (None: fresh).

    Example:
    >>> gen = Generator(train_data, batch_size=32)
    >>> model.fit(gen.forfit(), steps_per_epoch=len(gen), epochs=3)
    """

    def __init__(self, data, batch_size=32, buffer_size=None, seed=None):
        if int(batch_size) < 1:
            raise ValueError("DataGenerator(batch_size=...): must be >= 1, got %r" % (batch_size,))
        self.data = data
        self.batch_size = int(batch_size)
        self.buffer_size = int(buffer_size or self.batch_size * 1000)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._set_steps()

    def _set_steps(self):
        if hasattr(self.data, "__len__"):
            self.steps = -(-len(self.data) // self.batch_size)
        else:
            self.steps = None

    def __len__(self):
        if self.steps is None:
            raise TypeError(
                "len(DataGenerator): the data (%s) has no length; pass steps_per_epoch yourself"
                % type(self.data).__name__
            )
        return self.steps

    def sample(self, random=False):
        """Yield `(is_end, item)` over the data, shuffled when `random`."""
        if random:
            if hasattr(self.data, "__len__") and hasattr(self.data, "__getitem__"):
                data = (self.data[i] for i in self.rng.permutation(len(self.data)))
            else:
                data = self._buffer_shuffle()
        else:
            data = iter(self.data)
        try:
            current = next(data)
        except StopIteration:
            return
        for item in data:
            yield False, current
            current = item
        yield True, current

    def _buffer_shuffle(self):
        cache = []
        for item in self.data:
            cache.append(item)
            if len(cache) >= self.buffer_size:
                yield cache.pop(self.rng.integers(len(cache)))
        while cache:
            yield cache.pop(self.rng.integers(len(cache)))

    def __iter__(self, random=False):
        raise NotImplementedError("DataGenerator subclasses must implement __iter__(self, random=False)")

    def forfit(self, random=True):
        """Endless stream of batches for `model.fit(..., steps_per_epoch=len(gen))`."""
        while True:
            produced = False
            for d in self.__iter__(random):
                produced = True
                yield d
            if not produced:
                raise ValueError("DataGenerator.forfit: __iter__ yielded nothing (empty data?)")

    def fortest(self, random=False):
        """Endless stream of the inputs (first element) of each batch."""
        for d in self.forfit(random):
            yield d[0]

    # -- tf.data ---------------------------------------------------------------
    def _shard(self, worker, workers, epoch_seed, random):
        """A copy of this generator over the `worker`-th of `workers` shards.

        All workers of one epoch draw the same permutation (same seed), so
        the shards are disjoint and together cover the data exactly once.
        """
        shard = copy.copy(self)
        shard.rng = np.random.default_rng([epoch_seed, worker])
        if workers == 1:
            return shard
        if hasattr(self.data, "__len__") and hasattr(self.data, "__getitem__"):
            order = np.arange(len(self.data))
            if random:
                np.random.default_rng(epoch_seed).shuffle(order)
            shard.data = [self.data[i] for i in order[worker::workers]]
        else:
            shard.data = _Strided(self.data, worker, workers)
        shard._set_steps()
        return shard

    def to_dataset(
        self,
        types=None,
        shapes=None,
        names=None,
        padded_batch=False,
        batched=False,
        workers=1,
        random=True,
        repeat=False,
        prefetch=2,
        seed=None,
    ):
        """A `tf.data.Dataset` over this generator, for `model.fit` on any backend.

        By default `__iter__` is taken to yield single samples, which the
        dataset batches (`batch`, or `padded_batch` for ragged samples). One
        pass over the dataset is one epoch, reshuffled each time, so
        `model.fit(ds, epochs=n)` needs no `steps_per_epoch` (Keras counts
        the steps of the first epoch and warns once that the input "ran out
        of data"); with `repeat=True` it is endless, as in bert4keras, and
        needs `steps_per_epoch`.

        With `workers > 1`, that many copies of the generator run in parallel
        (tf.data interleave), each over a disjoint shard of one shared
        per-epoch permutation, so every sample appears exactly once per
        epoch. Each copy has its own random generator; subclasses that keep
        other mutable state should keep it per instance.

        Args:
            types: dtypes of one item, nested like it (e.g. `('int32',
                'int32')`); default inferred from the first item.
            shapes: shapes of one item (use None for variable dims); default
                all dims unknown.
            names: wrap items into dicts: a string, a sequence of strings, or
                a sequence of sequences (one dict per element).
            padded_batch: batch with padding (to the longest in the batch).
            batched: `__iter__` already yields batches; do not batch again.
            workers: number of parallel generator copies.
            random: shuffle each epoch.
            repeat: repeat forever.
            prefetch: batches to prefetch (0 for none).
            seed: base seed of the per-epoch shuffles.

        Returns:
            A `tf.data.Dataset`.

        Example:
        >>> ds = gen.to_dataset(types=("int32", "int32"), shapes=([None], [None]),
        ...                     names=("Input-Token", "Input-Segment"), padded_batch=True)
        """
        import tensorflow as tf

        workers = int(workers)
        if workers < 1:
            raise ValueError("to_dataset(workers=...): must be >= 1, got %r" % (workers,))
        if padded_batch and batched:
            raise ValueError("to_dataset: padded_batch and batched are exclusive")

        first = None
        if types is None or shapes is None:
            for item in self.__iter__(False):
                first = item
                break
            if first is None:
                raise ValueError("to_dataset: __iter__ yielded nothing, cannot infer types/shapes")
        structure = _to_tuples(types) if types is not None else _infer_structure(first)
        if types is None:
            types = _map_structure(structure, lambda leaf: _leaf_dtype(leaf), first)
        types = _to_tuples(types)
        if shapes is None:
            shapes = _map_structure(structure, lambda leaf: [None] * np.ndim(leaf), first)
        shapes = _to_tuples(shapes, leaf_is_list=True)

        dtypes = [tf.as_dtype(t).as_numpy_dtype for t in _flatten_up_to(structure, types)]
        wrap = _make_wrapper(names)
        if names is not None:
            types, shapes = wrap(types), wrap(shapes)

        signature = _zip_structure(
            types, shapes, lambda t, s: tf.TensorSpec(shape=list(s), dtype=tf.as_dtype(t))
        )

        if seed is None:
            seed = int(self.rng.integers(2**31))

        def generator(worker, epoch_seed):
            shard = self._shard(int(worker), workers, int(epoch_seed) & 0xFFFFFFFFFFFF, random)
            for item in shard.__iter__(random):
                item = _flatten_up_to(structure, item)
                item = _pack(structure, [np.asarray(x, dtype=d) for x, d in zip(item, dtypes)])
                yield wrap(item) if names is not None else item

        def from_worker(worker, epoch_seed):
            return tf.data.Dataset.from_generator(
                generator, output_signature=signature, args=(worker, epoch_seed)
            )

        # One seed per pass over the dataset, drawn inside tf.data and handed
        # to every worker of that pass: all shards then cut the same
        # permutation, even if Keras opens and drops an iterator to peek at
        # the first batch.
        epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        dataset = epoch_seeds.flat_map(
            lambda s: tf.data.Dataset.range(workers).map(lambda w: (w, s))
        ).interleave(
            from_worker, cycle_length=workers, block_length=1,
            num_parallel_calls=workers if workers > 1 else None, deterministic=False,
        )
        if padded_batch:
            padded_shapes = _zip_structure(types, shapes, lambda t, s: list(s))
            dataset = dataset.padded_batch(self.batch_size, padded_shapes=padded_shapes)
        elif not batched:
            dataset = dataset.batch(self.batch_size)
        if repeat:
            dataset = dataset.repeat()
        if prefetch:
            dataset = dataset.prefetch(prefetch)
        return dataset


class _Strided:
    """Every `workers`-th item of an iterable, starting at `worker`."""

    def __init__(self, data, worker, workers):
        self.data, self.worker, self.workers = data, worker, workers

    def __iter__(self):
        return itertools.islice(iter(self.data), self.worker, None, self.workers)


# -- small structure helpers for to_dataset (tuples and dicts are structure,
# everything else is a leaf) ------------------------------------------------------
def _to_tuples(x, leaf_is_list=False):
    if isinstance(x, dict):
        return {k: _to_tuples(v, leaf_is_list) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        if leaf_is_list and all(v is None or isinstance(v, (int, np.integer)) for v in x):
            return list(x)  # a shape
        return tuple(_to_tuples(v, leaf_is_list) for v in x)
    return x


def _is_structure_seq(x):
    if isinstance(x, tuple):
        return True
    if isinstance(x, list):
        # A list of arrays/lists/tuples is a structure ([x1, x2], y); a list of
        # numbers is one leaf.
        # Ambiguous for a nested list meant as one 2-D leaf: such leaves
        # should be NumPy arrays, or `types` should be given.
        return len(x) > 0 and all(isinstance(v, (list, tuple, dict, np.ndarray)) for v in x)
    return False


def _infer_structure(item):
    if isinstance(item, dict):
        return {k: _infer_structure(v) for k, v in item.items()}
    if _is_structure_seq(item):
        return tuple(_infer_structure(v) for v in item)
    return None


def _map_structure(structure, fn, item):
    if isinstance(structure, dict):
        return {k: _map_structure(structure[k], fn, item[k]) for k in structure}
    if isinstance(structure, tuple):
        if len(structure) != len(item):
            raise ValueError("to_dataset: item has %d parts, types describe %d" % (len(item), len(structure)))
        return tuple(_map_structure(s, fn, x) for s, x in zip(structure, item))
    return fn(item)


def _flatten_up_to(structure, item):
    out = []

    def walk(s, x):
        if isinstance(s, dict):
            for k in s:
                walk(s[k], x[k])
        elif isinstance(s, tuple):
            if len(s) != len(x):
                raise ValueError(
                    "DataGenerator item has %d parts where types/shapes describe %d" % (len(x), len(s))
                )
            for a, b in zip(s, x):
                walk(a, b)
        else:
            out.append(x)

    walk(structure, item)
    return out


def _pack(structure, flat):
    it = iter(flat)

    def build(s):
        if isinstance(s, dict):
            return {k: build(s[k]) for k in s}
        if isinstance(s, tuple):
            return tuple(build(v) for v in s)
        return next(it)

    return build(structure)


def _zip_structure(types, shapes, fn):
    if isinstance(types, dict):
        return {k: _zip_structure(types[k], shapes[k], fn) for k in types}
    if isinstance(types, tuple):
        return tuple(_zip_structure(t, s, fn) for t, s in zip(types, shapes))
    return fn(types, shapes)


def _leaf_dtype(leaf):
    dtype = np.asarray(leaf).dtype
    if dtype == np.float64:
        return "float32"
    if dtype == np.int64:
        return "int32"
    if dtype.kind in "US":
        return "string"
    return dtype.name


def _make_wrapper(names):
    if names is None:
        return lambda v: v
    if is_string(names):
        return lambda v: {names: v}
    names = _to_tuples(names)
    if all(is_string(n) for n in names):
        return lambda v: dict(zip(names, v))
    return lambda v: tuple(dict(zip(n, x)) if not is_string(n) else {n: x} for n, x in zip(names, v))


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
            raise ValueError("ViterbiDecoder(trans=...): expected a square matrix, got shape %s" % (self.trans.shape,))
        self.num_labels = self.trans.shape[0]
        self.non_starts = self._complement(starts, "starts")
        self.non_ends = self._complement(ends, "ends")

    def _complement(self, allowed, name):
        if allowed is None:
            return []
        allowed = set(int(i) for i in allowed)
        bad = [i for i in allowed if not 0 <= i < self.num_labels]
        if bad:
            raise ValueError("ViterbiDecoder(%s=...): tags %s outside 0..%d" % (name, bad, self.num_labels - 1))
        return [i for i in range(self.num_labels) if i not in allowed]

    def decode(self, nodes):
        """Best path for `nodes` of shape `[seq_len, num_labels]` (not modified).

        Returns:
            An int array of `seq_len` tag ids.
        """
        nodes = np.array(nodes, dtype=np.float64)
        if nodes.ndim != 2 or nodes.shape[1] != self.num_labels:
            raise ValueError(
                "ViterbiDecoder.decode(nodes=...): expected shape [seq_len, %d], got %s"
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
