"""`DataGenerator`, bert4keras' batch generator template, and its bridge to
`tf.data` (re-exported by `bert4keras.snippets`).

Plain Python and NumPy; TensorFlow is imported only inside
`DataGenerator.to_dataset`, which builds a `tf.data.Dataset` (usable by
`model.fit` on every Keras backend).
"""

import copy
import itertools

import numpy as np

__all__ = ["DataGenerator"]


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
            raise ValueError("DataGenerator: `batch_size` must be >= 1, got %r" % (batch_size,))
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
        import keras
        import tensorflow as tf

        workers = int(workers)
        if workers < 1:
            raise ValueError("DataGenerator.to_dataset: `workers` must be >= 1, got %r" % (workers,))
        if padded_batch and batched:
            raise ValueError("DataGenerator.to_dataset: `padded_batch` and `batched` must not both be True; pass one")

        first = None
        if types is None or shapes is None:
            for item in self.__iter__(False):
                first = item
                break
            if first is None:
                raise ValueError("DataGenerator.to_dataset: `types` and `shapes` must be given when __iter__ yields nothing")
        structure = _to_tuples(types) if types is not None else _infer_structure(first)
        if types is None:
            types = _up_to(structure, _leaf_dtype, first)
        types = _to_tuples(types)
        if shapes is None:
            shapes = _up_to(structure, lambda leaf: [None] * np.ndim(leaf), first)
        shapes = _to_tuples(shapes, leaf_is_list=True)

        dtypes = [tf.as_dtype(t).as_numpy_dtype for t in _flatten_up_to(structure, types)]
        wrap = _make_wrapper(names)
        if names is not None:
            types, shapes = wrap(types), wrap(shapes)

        signature = _up_to(
            types, lambda t, s: tf.TensorSpec(shape=list(s), dtype=tf.as_dtype(t)), types, shapes
        )

        if seed is None:
            seed = int(self.rng.integers(2**31))

        def generator(worker, epoch_seed):
            shard = self._shard(int(worker), workers, int(epoch_seed) & 0xFFFFFFFFFFFF, random)
            for item in shard.__iter__(random):
                item = _flatten_up_to(structure, item)
                item = keras.tree.pack_sequence_as(
                    structure, [np.asarray(x, dtype=d) for x, d in zip(item, dtypes)]
                )
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
            padded_shapes = _up_to(types, lambda t, s: list(s), types, shapes)
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


# -- structure helpers for to_dataset (tuples and dicts are structure, a list is
# a shape or a leaf); the walking itself is keras.tree's ------------------------
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


_LEAF = "leaf"  # a placeholder leaf (keras.tree treats None as no leaf in `up_to`)


def _infer_structure(item):
    if isinstance(item, dict):
        return {k: _infer_structure(v) for k, v in item.items()}
    if _is_structure_seq(item):
        return tuple(_infer_structure(v) for v in item)
    return _LEAF


def _up_to(structure, fn, *items):
    """`keras.tree.map_structure_up_to`: the leaves of `structure` may be
    nested deeper in `items` (a shape list, a ragged sample)."""
    import keras

    try:
        return keras.tree.map_structure_up_to(structure, fn, *items)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(
            "DataGenerator.to_dataset: `types` and `shapes` must have the nesting "
            f"of each item (tuples, dicts), got types {structure!r} for an item "
            f"{items[-1]!r:.200}; pass `types`/`shapes` that describe each part"
        ) from e


def _flatten_up_to(structure, item):
    flat = []
    _up_to(structure, flat.append, item)
    return flat


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
    if isinstance(names, str):
        return lambda v: {names: v}
    names = _to_tuples(names)
    if all(isinstance(n, str) for n in names):
        return lambda v: dict(zip(names, v))
    return lambda v: tuple(dict(zip(n, x)) if not isinstance(n, str) else {n: x} for n, x in zip(names, v))
