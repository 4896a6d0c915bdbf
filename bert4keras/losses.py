"""Losses and metrics for multi-label and GlobalPointer span outputs.

The multi-label cross-entropy (kexue.fm/archives/7359) scores each positive
class against a fixed threshold of 0 and the negatives likewise,
`log(1 + sum_neg e^s) + log(1 + sum_pos e^-s)`, so no sigmoid/softmax goes on
the logits and classes with score > 0 are predicted. Everything computes in
float32 whatever the inputs' dtype. Functions that return one value per
sample let `compile` average over the batch and honour `sample_weight`.
"""
import keras
import numpy as np
from keras import ops

from bert4keras import backend


_NEG_INF = float("-inf")


def _check_index_range(idx, limit, where, what, ignore_zero=False):
    """Raise on out-of-range ids when values are concrete; else return flags.

    Returns a bool tensor shaped like `idx` marking the bad entries, so a
    compiled graph can turn the affected losses into NaN.
    """
    bad = ops.logical_or(idx < 0, idx >= limit)
    values = backend.concrete_numpy(idx)
    if values is not None:
        bad_np = (values < 0) | (values >= limit)
        if bad_np.any():
            raise ValueError(
                f"{where}: {what} must lie in [0, {limit}), got "
                f"{values[bad_np][:5].tolist()} at index "
                f"{[tuple(int(i) for i in p) for p in np.argwhere(bad_np)[:5]]}"
            )
    return bad


@keras.saving.register_keras_serializable(package="bert4keras")
def multilabel_categorical_crossentropy(y_true, y_pred):
    """Multi-label cross-entropy with dense targets, reduced over the last axis.

    Args:
        y_true: targets of y_pred's shape, 1 for positive classes and 0 for
            negative ones (values in between act as soft labels).
        y_pred: logits (..., num_classes), no activation; `-inf` entries are
            excluded (a `-inf` positive gives an infinite loss).

    Returns:
        float32 loss of shape y_pred.shape[:-1].
    """
    tshape, pshape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(tshape) != len(pshape) or backend.dims_differ(tshape, pshape):
        raise ValueError(
            "multilabel_categorical_crossentropy: y_true shape "
            f"{tshape} must equal y_pred shape {pshape}"
        )
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    # The unselected branches may be -inf or NaN-free infinities; `where`
    # keeps them out of both the value and the gradient.
    y_neg = ops.where(y_true < 1, y_pred + ops.log(1.0 - y_true), _NEG_INF)
    y_pos = ops.where(y_true > 0, -y_pred + ops.log(y_true), _NEG_INF)
    zeros = ops.zeros_like(y_pred[..., :1])
    neg = ops.logsumexp(ops.concatenate([y_neg, zeros], axis=-1), axis=-1)
    pos = ops.logsumexp(ops.concatenate([y_pos, zeros], axis=-1), axis=-1)
    return neg + pos


@keras.saving.register_keras_serializable(package="bert4keras")
def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False):
    """Multi-label cross-entropy with the positive classes given as ids.

    Args:
        y_true: int ids (..., num_positive) of the positive classes, with the
            leading axes of y_pred. Ids must be unique within a row (a
            repeated id is counted twice).
        y_pred: logits (..., num_classes), no activation.
        mask_zero: if True, class 0 is ignored everywhere (neither positive
            nor negative), so id 0 can pad rows with fewer positives.

    The negative part uses `log(1 + sum_all e^s - sum_pos e^s)` with the
    remainder clipped at `keras.config.epsilon()`, as in bert4keras, so no
    (..., num_positive, num_classes) one-hot is built.

    Ids outside [0, num_classes) raise ValueError when the values are known
    (eager); inside compiled graphs the affected rows get a NaN loss.

    Returns:
        float32 loss of shape y_pred.shape[:-1].
    """
    where = "sparse_multilabel_categorical_crossentropy"
    tshape, pshape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(tshape) != len(pshape) or backend.dims_differ(tshape[:-1], pshape[:-1]):
        raise ValueError(
            f"{where}: y_true must be ids of shape (..., num_positive) with "
            f"the leading axes of y_pred {pshape}, got shape {tshape}"
        )
    y_pred = ops.cast(y_pred, "float32")
    idx = ops.cast(y_true, "int32")
    num_classes = ops.shape(y_pred)[-1]
    limit = pshape[-1] if pshape[-1] is not None else num_classes
    bad = ops.any(_check_index_range(idx, limit, where, "y_true ids"), axis=-1)
    idx = ops.clip(idx, 0, num_classes - 1)
    is_pos = ops.not_equal(idx, 0) if mask_zero else ops.ones_like(idx, "bool")

    zeros = ops.zeros_like(y_pred[..., :1])
    if mask_zero:
        y_pred = ops.concatenate([zeros + _NEG_INF, y_pred[..., 1:]], axis=-1)
    pos_scores = ops.take_along_axis(y_pred, idx, axis=-1)
    pos_terms = ops.where(is_pos, -pos_scores, _NEG_INF)
    pos_loss = ops.logsumexp(ops.concatenate([pos_terms, zeros], -1), axis=-1)

    full = ops.concatenate([y_pred, zeros], axis=-1)
    all_loss = ops.logsumexp(full, axis=-1)
    # Share of the positives in (1 + sum_all e^s), from a softmax so that no
    # logsumexp over an empty (all -inf) set appears in the gradient.
    probs = ops.softmax(full, axis=-1)
    pos_share = ops.sum(
        ops.where(is_pos, ops.take_along_axis(probs, idx, axis=-1), 0.0), -1
    )
    rest = ops.clip(1.0 - pos_share, keras.config.epsilon(), 1.0)
    loss = pos_loss + all_loss + ops.log(rest)
    return ops.where(bad, float("nan"), loss)


def _check_scores(y_pred, where):
    shape = tuple(y_pred.shape)
    if len(shape) != 4 or (
        shape[2] is not None and shape[3] is not None and shape[2] != shape[3]
    ):
        raise ValueError(
            f"{where}: y_pred must be GlobalPointer scores of shape (batch, "
            f"heads, length, length), got shape {shape}"
        )


def _sparse_span_ids(y_true, y_pred, where):
    """Flat ids start * length + end, (batch, heads, max_spans), and flags."""
    _check_scores(y_pred, where)
    tshape, pshape = tuple(y_true.shape), tuple(y_pred.shape)
    if (
        len(tshape) != 4
        or tshape[-1] != 2
        or backend.dims_differ(tshape[:2], pshape[:2])
    ):
        raise ValueError(
            f"{where}: y_true must be (start, end) pairs of shape (batch, "
            f"heads, max_spans, 2) matching y_pred {pshape} in (batch, heads), "
            f"got shape {tshape}. For dense (batch, heads, length, length) "
            f"targets use dense_global_pointer_crossentropy."
        )
    pairs = ops.cast(y_true, "int32")
    length = ops.shape(y_pred)[-1]
    limit = pshape[-1] if pshape[-1] is not None else length
    bad = _check_index_range(pairs, limit, where, "span (start, end) positions")
    bad = ops.any(ops.any(bad, axis=-1), axis=-1)  # (batch, heads)
    pairs = ops.clip(pairs, 0, length - 1)
    flat = pairs[..., 0] * length + pairs[..., 1]
    scores = ops.reshape(
        ops.cast(y_pred, "float32"), ops.shape(y_pred)[:2] + (-1,)
    )
    return flat, scores, bad


@keras.saving.register_keras_serializable(package="bert4keras")
def global_pointer_crossentropy(y_true, y_pred):
    """GlobalPointer loss with sparse span targets (bert4keras' GPLinker form).

    Args:
        y_true: int (batch, heads, max_spans, 2) of (start, end) token
            positions per head; rows are padded with (0, 0), which is ignored
            (so the span (0, 0), normally [CLS], can never be a target). Spans
            must be unique per head.
        y_pred: (batch, heads, length, length) scores from `GlobalPointer`.

    Returns:
        float32 (batch,): the multi-label cross-entropy summed over heads
        (`compile` then averages over the batch, as bert4keras did).
        Out-of-range positions raise ValueError when eager; NaN in graphs.
    """
    where = "global_pointer_crossentropy"
    flat, scores, bad = _sparse_span_ids(y_true, y_pred, where)
    loss = sparse_multilabel_categorical_crossentropy(flat, scores, mask_zero=True)
    return ops.sum(ops.where(bad, float("nan"), loss), axis=1)


@keras.saving.register_keras_serializable(package="bert4keras")
def dense_global_pointer_crossentropy(y_true, y_pred):
    """GlobalPointer loss with dense 0/1 targets of y_pred's shape.

    Args:
        y_true: (batch, heads, length, length), 1 at target spans (start, end).
        y_pred: (batch, heads, length, length) scores from `GlobalPointer`.

    Returns:
        float32 (batch,): multi-label cross-entropy over all length**2 pairs,
        summed over heads. (bert4keras' CLUENER example averaged over heads
        instead: a constant factor of `heads`.)
    """
    where = "dense_global_pointer_crossentropy"
    _check_scores(y_pred, where)
    tshape, pshape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(tshape) != 4 or backend.dims_differ(tshape, pshape):
        raise ValueError(
            f"{where}: y_true must have y_pred's shape {pshape}, got {tshape}. "
            f"For (start, end) pairs use global_pointer_crossentropy."
        )
    shape = ops.shape(y_pred)[:2] + (-1,)
    loss = multilabel_categorical_crossentropy(
        ops.reshape(ops.cast(y_true, "float32"), shape),
        ops.reshape(ops.cast(y_pred, "float32"), shape),
    )
    return ops.sum(loss, axis=1)


def _f1(true_positive, predicted, actual):
    return 2.0 * true_positive / ops.maximum(predicted + actual, 1.0)


@keras.saving.register_keras_serializable(package="bert4keras")
def global_pointer_f1_score(y_true, y_pred):
    """Span F1 over the batch with dense targets: `2 TP / (#pred + #true)`.

    A span is predicted when its score is > 0. Returns a float32 scalar (0
    when there are neither predicted nor true spans).
    """
    _check_scores(y_pred, "global_pointer_f1_score")
    y_true = ops.cast(y_true, "float32")
    pred = ops.cast(ops.cast(y_pred, "float32") > 0, "float32")
    return _f1(ops.sum(y_true * pred), ops.sum(pred), ops.sum(y_true))


@keras.saving.register_keras_serializable(package="bert4keras")
def sparse_global_pointer_f1_score(y_true, y_pred):
    """Span F1 with the sparse targets of `global_pointer_crossentropy`.

    Padding pairs (0, 0) are ignored and the span (0, 0) is never counted as
    predicted, matching the loss. Spans must be unique per head.
    """
    flat, scores, _ = _sparse_span_ids(y_true, y_pred, "sparse_global_pointer_f1_score")
    real = ops.not_equal(flat, 0)
    hit = ops.logical_and(real, ops.take_along_axis(scores, flat, axis=-1) > 0)
    predicted = ops.sum(ops.cast(scores[..., 1:] > 0, "float32"))
    return _f1(
        ops.sum(ops.cast(hit, "float32")),
        predicted,
        ops.sum(ops.cast(real, "float32")),
    )
