"""Padding, truncation and segmentation of token sequences and texts
(plain Python and NumPy; re-exported by `bert4keras.snippets`)."""

import numpy as np

__all__ = ["sequence_padding", "truncate_sequences", "text_segmentate"]


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
        raise ValueError('sequence_padding: `mode` must be "post" or "pre", got %r' % (mode,))
    seq_dims = int(seq_dims)
    if seq_dims < 1:
        raise ValueError("sequence_padding: `seq_dims` must be >= 1, got %r" % (seq_dims,))
    inputs = list(inputs)
    lengths, leaves = [0] * seq_dims, []
    for i, x in enumerate(inputs):
        if _is_leaf_scalar(x) or not hasattr(x, "__len__"):
            raise ValueError(
                "sequence_padding: `inputs` must hold sequences, got sample %d of type %r" % (i, type(x).__name__)
            )
        _nested_max(x, 0, seq_dims, lengths, leaves)
    if length is not None:
        if np.ndim(length) == 0:
            length = [length] * seq_dims
        length = [int(l) for l in length]
        if len(length) != seq_dims:
            raise ValueError(
                "sequence_padding: `length` must give %d lengths for seq_dims=%d, got %r"
                % (seq_dims, seq_dims, length)
            )
        if min(length) < 0:
            raise ValueError("sequence_padding: `length` must be >= 0, got %r" % (length,))
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
                "sequence_padding: `inputs` must share one trailing shape, got sample %d that does not fit %s: %s"
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
        raise ValueError("truncate_sequences: `maxlen` must be >= 0, got %r" % (maxlen,))
    if isinstance(indices, (list, tuple)):
        if len(indices) != len(sequences):
            raise ValueError(
                "truncate_sequences: `indices` must give one index per sequence, got %d for %d sequences"
                % (len(indices), len(sequences))
            )
        pairs = [(s, i) for s, i in zip(sequences, indices) if s]
    else:
        pairs = [(s, indices) for s in sequences if s]
    for s, _ in pairs:
        if not isinstance(s, list):
            raise TypeError("truncate_sequences: `sequences` must be lists, got %s" % type(s).__name__)
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
