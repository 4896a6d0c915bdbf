"""Sequence-labelling output layers: linear-chain CRF and a bidirectional MEMM.

Both layers pass the emission scores through and mark padded positions by
setting their whole row to `-inf`. The losses and metrics read the mask back
from that sentinel, so no state travels between the layer and the loss and
`model.compile(loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])` works
with `model.fit` on every backend. A row is padding when *all* its entries are
`-inf`; a valid row may still hold `-inf` for labels you want to forbid.
"""
import keras
import numpy as np
from keras import ops

from bert4keras import backend

_NEG_INF = float("-inf")
# Finite stand-in for -inf inside the float32 recursions, so that 0 * x and
# x - x never produce NaN.
_NEG_BIG = -1e30


def _scaled_glorot(scale):
    glorot = keras.initializers.GlorotUniform()

    def init(shape, dtype=None):
        return glorot(shape, dtype=dtype) * scale

    return init


def _check_emissions(y_pred, num_labels, where):
    shape = tuple(y_pred.shape)
    if len(shape) != 3:
        raise ValueError(
            f"{where}: y_pred must be emissions of shape (batch, length, "
            f"num_labels={num_labels}), got shape {shape}"
        )
    if shape[-1] is not None and shape[-1] != num_labels:
        raise ValueError(
            f"{where}: y_pred must have as many labels as the transition matrix, "
            f"got {shape[-1]} labels in its last axis for a {num_labels}x{num_labels} "
            f"matrix (y_pred shape {shape}); build the CRF with that many labels"
        )


def _sparse_labels(y_true, y_pred, where):
    """int32 (batch, length) labels, with static shapes checked."""
    shape = tuple(y_true.shape)
    if len(shape) == 3 and shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
        shape = shape[:2]
    if len(shape) != 2:
        raise ValueError(
            f"{where}: y_true must be integer label ids of shape (batch, "
            f"length) (or (batch, length, 1)) matching y_pred "
            f"{tuple(y_pred.shape)}, got shape {shape}. For one-hot labels "
            f"use dense_loss / dense_accuracy."
        )
    if backend.dims_differ(shape, tuple(y_pred.shape)[:2]):
        raise ValueError(
            f"{where}: y_true shape {shape} must match y_pred shape "
            f"{tuple(y_pred.shape)} in (batch, length); pass one label per position"
        )
    return ops.cast(y_true, "int32")


def _dense_labels(y_true, y_pred, where):
    shape, pshape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(shape) != 3 or backend.dims_differ(shape, pshape):
        raise ValueError(
            f"{where}: y_true must be one-hot labels with the shape of y_pred "
            f"{pshape} (batch, length, num_labels), got shape {shape}. For "
            f"integer ids use sparse_loss / sparse_accuracy."
        )
    return ops.cast(y_true, "float32")


def _label_range_flags(labels, mask, num_labels, where):
    """Per-row flag of out-of-range ids at valid positions.

    Raises a ValueError when the values are concrete (eager call); inside a
    compiled graph the flag is returned so the caller can turn the row's loss
    into NaN instead of silently reading a wrong label.
    """
    labels_np, mask_np = backend.concrete_numpy(labels), backend.concrete_numpy(mask)
    if labels_np is not None and mask_np is not None:
        bad = mask_np.astype(bool) & ((labels_np < 0) | (labels_np >= num_labels))
        if bad.any():
            at = [tuple(int(i) for i in p) for p in np.argwhere(bad)[:5]]
            raise ValueError(
                f"{where}: y_true label ids must be in [0, {num_labels}) at unpadded "
                f"positions, got ids outside [0, {num_labels}), e.g. "
                f"{labels_np[bad][:5].tolist()} at (batch, position) {at}"
            )
    out = mask & ((labels < 0) | (labels >= num_labels))
    return ops.any(out, axis=1)


def _valid_mask(y_pred):
    """(batch, length) bool: a position is padding iff its row is all -inf."""
    return ops.any(ops.not_equal(y_pred, _NEG_INF), axis=-1)


def _mask_emissions(inputs, mask):
    if mask is None:
        return inputs
    mask = ops.cast(mask, "bool")[..., None]
    return ops.where(mask, inputs, ops.cast(_NEG_INF, inputs.dtype))


def _prepare(y_pred, mask=None):
    """float32 emissions with padded rows zeroed and -inf clamped, and mask."""
    y_pred = ops.cast(y_pred, "float32")
    valid = _valid_mask(y_pred)
    if mask is not None:
        valid = ops.logical_and(valid, ops.cast(mask, "bool"))
    emissions = ops.where(valid[..., None], ops.maximum(y_pred, _NEG_BIG), 0.0)
    return emissions, valid


def _length(x, axis):
    """Size of `axis`: a Python int when static (always under JAX)."""
    size = x.shape[axis]
    return size if size is not None else ops.shape(x)[axis]


def _time_loop(body, init, length):
    """`carry = body(t, carry)` for t in range(length).

    Reverse-differentiable on every backend and compilable by XLA on
    TensorFlow. `keras.ops.scan` and `fori_loop` become a `tf.while_loop`
    without `maximum_iterations` on TensorFlow, whose gradient XLA rejects,
    while JAX's `while_loop` has no reverse-mode gradient; so JAX takes
    `fori_loop` (a scan for static bounds) and the others a bounded
    `while_loop`.
    """
    if keras.backend.backend() == "jax":
        return ops.fori_loop(0, length, body, init)
    _, carry = ops.while_loop(
        lambda t, carry: t < length,
        lambda t, carry: (t + 1, body(t, carry)),
        (0, init),
        maximum_iterations=length,
    )
    return carry


def crf_log_likelihood(emissions, tags, mask, trans):
    """Log-likelihood of one-hot `tags` under a linear-chain CRF (float32).

    Padded positions are skipped: the chain links consecutive *valid*
    positions, so right, left or inner padding all give the likelihood of the
    unpadded sequence. A row with no valid position has log-likelihood 0.

    Args:
        emissions: (batch, length, K) float32 scores.
        tags: (batch, length, K) one-hot (or soft) float32 labels.
        mask: (batch, length) bool.
        trans: (K, K) float32; `trans[i, j]` scores label i followed by j.

    Returns:
        (batch,) float32 log p(tags | emissions).
    """
    batch = ops.shape(emissions)[0]
    num_labels = ops.shape(trans)[0]
    emissions = ops.transpose(emissions, (1, 0, 2))  # time-major
    tags = ops.transpose(tags, (1, 0, 2))
    mask = ops.transpose(mask, (1, 0))
    zeros_bk = ops.zeros((batch, num_labels), "float32")
    init = (
        zeros_bk,  # alpha: log-sum of path scores ending in each label
        ops.zeros((batch,), "bool"),  # started: a valid position was seen
        zeros_bk,  # one-hot label at the previous valid position
        ops.zeros((batch,), "float32"),  # score of the target path
    )

    def step(t, carry):
        alpha, started, prev_tag, score = carry
        e_t, y_t, m_t = emissions[t], tags[t], mask[t]
        moved = ops.logsumexp(alpha[:, :, None] + trans[None], axis=1)
        new_alpha = ops.where(started[:, None], moved, 0.0) + e_t
        pair = ops.sum(ops.matmul(prev_tag, trans) * y_t, axis=-1)
        gain = ops.sum(y_t * e_t, axis=-1) + ops.where(started, pair, 0.0)
        return (
            ops.where(m_t[:, None], new_alpha, alpha),
            ops.logical_or(started, m_t),
            ops.where(m_t[:, None], y_t, prev_tag),
            score + ops.where(m_t, gain, 0.0),
        )

    alpha, started, _, score = _time_loop(step, init, _length(mask, 0))
    log_z = ops.logsumexp(alpha, axis=-1)
    return ops.where(started, score - log_z, 0.0)


def viterbi_decode(emissions, mask, trans):
    """Best label path of a linear-chain CRF, in-graph (int32, (batch, length)).

    Padded positions are skipped by the chain and get label 0 in the output.
    """
    batch = ops.shape(emissions)[0]
    num_labels = ops.shape(trans)[0]
    length = _length(emissions, 1)
    identity = ops.broadcast_to(
        ops.arange(num_labels, dtype="int32")[None], (batch, num_labels)
    )
    emissions = ops.transpose(emissions, (1, 0, 2))  # time-major
    time_mask = ops.transpose(mask, (1, 0))
    init = (
        ops.zeros((batch, num_labels), "float32"),
        ops.zeros((batch,), "bool"),
        ops.zeros((length, batch, num_labels), "int32"),  # back-pointers
    )

    def forward(t, carry):
        alpha, started, pointers = carry
        e_t, m_t = emissions[t], time_mask[t]
        scores = alpha[:, :, None] + trans[None]
        best = ops.max(scores, axis=1)
        argbest = ops.cast(ops.argmax(scores, axis=1), "int32")
        new_alpha = ops.where(started[:, None], best, 0.0) + e_t
        # Where nothing links back (padding, or the first valid position) the
        # back-pointer is the identity, so backtracking passes straight through.
        link = ops.logical_and(m_t, started)
        ptr = ops.where(link[:, None], argbest, identity)
        return (
            ops.where(m_t[:, None], new_alpha, alpha),
            ops.logical_or(started, m_t),
            ops.slice_update(pointers, (t, 0, 0), ptr[None]),
        )

    alpha, _, pointers = _time_loop(forward, init, length)
    last = ops.cast(ops.argmax(alpha, axis=-1), "int32")

    def backward(i, carry):
        cur, path = carry
        t = length - 1 - i
        path = ops.slice_update(path, (t, 0), cur[None])
        prev = ops.take_along_axis(pointers[t], cur[:, None], axis=1)[:, 0]
        return prev, path

    _, path = _time_loop(backward, (last, ops.zeros((length, batch), "int32")), length)
    path = ops.transpose(path, (1, 0))
    return ops.where(mask, path, 0)


def _check_lr_multiplier(lr_multiplier):
    if not isinstance(lr_multiplier, (int, float)) or not lr_multiplier > 0:
        raise ValueError(f"lr_multiplier must be a positive number, got {lr_multiplier!r}")


def _num_labels(layer, input_shape):
    if len(input_shape) != 3 or input_shape[-1] is None:
        raise ValueError(
            f"{layer.name}: the input must be emissions of shape (batch, length, "
            f"num_labels) with a known num_labels, got {input_shape}"
        )
    return int(input_shape[-1])


class _EmissionAccuracy:
    """The accuracy metrics of the CRF and the MEMM."""

    def sparse_accuracy(self, y_true, y_pred):
        """Per-token accuracy of the emission argmax on valid tokens (scalar).

        As in bert4keras this ignores the transitions: metrics cannot read
        model variables during `fit` on JAX (bert4keras 0.x's MEMM used the
        teacher-forced local softmax, which needs them). For path accuracy,
        compare `decode(...)` with the labels.
        """
        return _emission_accuracy(
            y_true, y_pred, self.num_labels if self.built else None,
            f"{self.name}.sparse_accuracy",
        )

    def dense_accuracy(self, y_true, y_pred):
        """As `sparse_accuracy`, with one-hot y_true."""
        labels = ops.argmax(_dense_labels(y_true, y_pred, "dense_accuracy"), -1)
        return self.sparse_accuracy(labels, y_pred)


@keras.saving.register_keras_serializable(package="bert4keras")
class ConditionalRandomField(_EmissionAccuracy, keras.layers.Layer):
    """Linear-chain CRF head: holds the transitions, passes emissions through.

    The layer returns its input unchanged except at padded positions (from a
    Keras mask or an explicit `mask=`), whose rows become `-inf`. Use
    `sparse_loss` / `dense_loss` as the loss (per-sequence negative
    log-likelihood, shape (batch,), which `compile` averages over the batch)
    and `sparse_accuracy` / `dense_accuracy` (per-token accuracy of the
    emission argmax, as in bert4keras) as metrics; they read padding from
    the `-inf` rows. The
    log-partition and Viterbi run as `keras.ops.scan` in float32 whatever the
    dtype policy.

    `lr_multiplier` (reparameterisation): the variable stores
    `trans / lr_multiplier` and the layer uses `lr_multiplier * variable`, so
    the gradient reaching the variable is `lr_multiplier` times larger and the
    effective matrix moves `lr_multiplier` times the variable's step:
    - SGD (plain or momentum): effective updates scale by `lr_multiplier**2`.
    - Adam and other per-parameter scale-invariant optimizers: the variable's
      step barely depends on the gradient scale (exactly so up to epsilon), so
      effective updates scale by `lr_multiplier`.
    - Decoupled weight decay shrinks the effective matrix at the usual rate.
    With BERT encoders at lr ~2e-5 and Adam, multipliers of 100-1000 let the
    transitions learn at a useful speed.

    Weights: `trans` (property) is the effective (K, K) matrix, `trans[i, j]`
    scoring label i followed by label j. `get_weights()` / `set_weights()` and
    `.keras` files hold the stored variable, i.e. `trans / lr_multiplier`
    (as in bert4keras 0.x); use `set_trans(matrix)` to assign an effective
    matrix.

    Decoding: `crf.decode(emissions, mask=None)` returns the best path as int32
    (batch, length), with 0 at padded positions; calling the layer with
    `decode=True` does the same inside a functional model, so an exported
    model can serve paths.

    Args:
        lr_multiplier: positive float, learning-rate multiplier of `trans`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Example:
    ```python
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(100, 16, mask_zero=True)(x)
    emissions = keras.layers.Dense(5)(h)
    crf = ConditionalRandomField(lr_multiplier=100)
    model = keras.Model(x, crf(emissions))
    model.compile("adam", loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])
    serving = keras.Model(x, crf(emissions, decode=True))  # (batch, length)
    ```
    """

    def __init__(self, lr_multiplier=1, **kwargs):
        super().__init__(**kwargs)
        _check_lr_multiplier(lr_multiplier)
        self.lr_multiplier = lr_multiplier
        self.supports_masking = True

    def build(self, input_shape):
        self.num_labels = _num_labels(self, input_shape)
        self._trans = self.add_weight(
            name="trans",
            shape=(self.num_labels, self.num_labels),
            initializer=_scaled_glorot(1.0 / self.lr_multiplier),
            # Transitions stay float32 even inside a mixed-precision call.
            autocast=False,
        )

    def _require_built(self):
        if not self.built:
            raise ValueError(
                f"{self.name}: the layer must be built before its losses or decode are "
                f"used, got a layer not built yet; call it on emissions "
                f"(batch, length, num_labels) first"
            )

    @property
    def trans(self):
        """Effective (K, K) float32 transition matrix."""
        self._require_built()
        return ops.cast(self._trans, "float32") * float(self.lr_multiplier)

    def set_trans(self, value):
        """Assign an effective transition matrix (stored / lr_multiplier)."""
        self._require_built()
        value = np.asarray(value, dtype="float32")
        if value.shape != (self.num_labels, self.num_labels):
            raise ValueError(
                f"{self.name}.set_trans: `value` must have shape "
                f"{(self.num_labels, self.num_labels)}, got {value.shape}"
            )
        self._trans.assign(value / self.lr_multiplier)

    def call(self, inputs, mask=None, decode=False):
        if decode:
            return self.decode(inputs, mask)
        return _mask_emissions(inputs, mask)

    def compute_mask(self, inputs, mask=None):
        # The mask travels as -inf rows; a Keras mask would be re-applied by
        # the loss as sample weights of a per-sequence loss, which is wrong.
        return None

    def compute_output_spec(self, inputs, mask=None, decode=False):
        if decode:
            return keras.KerasTensor(inputs.shape[:2], dtype="int32")
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)

    def decode(self, emissions, mask=None):
        """Viterbi path, int32 (batch, length); padded positions get 0.

        Padding is the explicit/Keras `mask` and any all-`-inf` row, so the
        layer's own output can be decoded directly.
        """
        self._require_built()
        _check_emissions(emissions, self.num_labels, f"{self.name}.decode")
        emissions, valid = _prepare(emissions, mask)
        return viterbi_decode(emissions, valid, self.trans)

    def log_likelihood(self, y_true, y_pred, sparse=True):
        """Per-sequence log p(y_true | y_pred), float32 (batch,)."""
        self._require_built()
        where = f"{self.name}.{'sparse' if sparse else 'dense'}_loss"
        _check_emissions(y_pred, self.num_labels, where)
        emissions, valid = _prepare(y_pred)
        bad = None
        if sparse:
            labels = _sparse_labels(y_true, y_pred, where)
            bad = _label_range_flags(labels, valid, self.num_labels, where)
            labels = ops.clip(labels, 0, self.num_labels - 1)
            tags = ops.one_hot(labels, self.num_labels, dtype="float32")
        else:
            tags = _dense_labels(y_true, y_pred, where)
        ll = crf_log_likelihood(emissions, tags, valid, self.trans)
        if bad is not None:
            ll = ops.where(bad, float("nan"), ll)
        return ll

    def sparse_loss(self, y_true, y_pred):
        """Negative log-likelihood per sequence; y_true: int ids (batch, length).

        Ids at padded positions are ignored. An id outside [0, num_labels) at a
        valid position raises ValueError in eager calls; inside a compiled
        graph that sequence's loss is NaN.
        """
        return -self.log_likelihood(y_true, y_pred, sparse=True)

    def dense_loss(self, y_true, y_pred):
        """Negative log-likelihood per sequence; y_true: one-hot like y_pred."""
        return -self.log_likelihood(y_true, y_pred, sparse=False)

    def get_config(self):
        config = super().get_config()
        config.update({"lr_multiplier": self.lr_multiplier})
        return config


def _emission_accuracy(y_true, y_pred, num_labels, where):
    if num_labels is None:
        num_labels = y_pred.shape[-1]
    _check_emissions(y_pred, num_labels, where)
    labels = _sparse_labels(y_true, y_pred, where)
    valid = _valid_mask(ops.cast(y_pred, "float32"))
    # Out-of-range ids raise when eager; in a graph they count as misses.
    _label_range_flags(labels, valid, num_labels, where)
    pred = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    hits = ops.cast(ops.logical_and(ops.equal(pred, labels), valid), "float32")
    count = ops.sum(ops.cast(valid, "float32"))
    return ops.sum(hits) / ops.maximum(count, 1.0)


def _compact_order(mask, reverse):
    """Per-row permutation putting valid positions first (kept in order, or
    reversed when `reverse`), followed by padding; and the valid counts."""
    length = ops.shape(mask)[1]
    pos = ops.arange(length, dtype="int32")[None]
    key = ops.where(mask, pos, pos + length)
    order = ops.cast(ops.argsort(key, axis=1), "int32")
    count = ops.sum(ops.cast(mask, "int32"), axis=1, keepdims=True)
    if reverse:
        flipped = ops.where(pos < count, count - 1 - pos, pos)
        order = ops.take_along_axis(order, flipped, axis=1)
    return order


@keras.saving.register_keras_serializable(package="bert4keras")
class MaximumEntropyMarkovModel(_EmissionAccuracy, keras.layers.Layer):
    """Bidirectional maximum-entropy Markov model head (locally normalised).

    A lighter alternative to the CRF with the same interface. Going forward,
    label t is predicted by `softmax((e_t + trans[y_{t-1}]) / 2)` (the first
    valid position uses `softmax(e_0)`); going backward the same is done on
    the reversed sequence with `trans` transposed. The loss is the mean of
    the two directions' negative log-likelihoods, summed over the valid
    positions of each sequence: shape (batch,), like the CRF's. (bert4keras
    0.x returned the token mean over the whole batch instead; the gradients
    differ by the average length.) Padding travels as all-`-inf` rows as in
    `ConditionalRandomField`; padded positions are skipped, so the chain links
    consecutive valid positions.

    `sparse_accuracy` is the per-token accuracy of the emission argmax (see
    its docstring). For decoding, pass `trans` to a Viterbi decoder as
    bert4keras does.

    `lr_multiplier` is a reparameterisation exactly as in
    `ConditionalRandomField` (SGD: effective updates x lr_multiplier**2, Adam:
    x lr_multiplier); with `hidden_dim` it applies to each factor.
    `get_weights()` hold the stored (divided) variables.

    Args:
        lr_multiplier: positive float, learning-rate multiplier of the
            transition parameters.
        hidden_dim: None for a full (K, K) transition matrix, or an int to
            factor it as `l_trans @ r_trans.T` with (K, hidden_dim) factors.
        **kwargs: standard layer arguments.

    Example:
    ```python
    memm = MaximumEntropyMarkovModel(lr_multiplier=100)
    outputs = memm(keras.layers.Dense(5)(hidden))
    model.compile("adam", loss=memm.sparse_loss, metrics=[memm.sparse_accuracy])
    ```
    """

    def __init__(self, lr_multiplier=1, hidden_dim=None, **kwargs):
        super().__init__(**kwargs)
        _check_lr_multiplier(lr_multiplier)
        if hidden_dim is not None and (
            not isinstance(hidden_dim, int) or hidden_dim < 1
        ):
            raise ValueError(
                f"hidden_dim must be None or a positive int, got {hidden_dim!r}"
            )
        self.lr_multiplier = lr_multiplier
        self.hidden_dim = hidden_dim
        self.supports_masking = True

    def build(self, input_shape):
        self.num_labels = _num_labels(self, input_shape)
        init = _scaled_glorot(1.0 / self.lr_multiplier)
        if self.hidden_dim is None:
            self._trans = self.add_weight(
                name="trans", shape=(self.num_labels,) * 2,
                initializer=init, autocast=False,
            )
        else:
            shape = (self.num_labels, self.hidden_dim)
            self._l_trans = self.add_weight(
                name="l_trans", shape=shape, initializer=init, autocast=False
            )
            self._r_trans = self.add_weight(
                name="r_trans", shape=shape, initializer=init, autocast=False
            )

    _require_built = ConditionalRandomField._require_built

    @property
    def trans(self):
        """Effective (K, K) float32 transition scores."""
        self._require_built()
        m = float(self.lr_multiplier)
        if self.hidden_dim is None:
            return ops.cast(self._trans, "float32") * m
        left = ops.cast(self._l_trans, "float32") * m
        right = ops.cast(self._r_trans, "float32") * m
        return ops.matmul(left, ops.transpose(right))

    def call(self, inputs, mask=None):
        return _mask_emissions(inputs, mask)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs, mask=None):
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)

    def _local_logits(self, labels, emissions, valid, reverse):
        """Logits of each local softmax, in the direction's compacted order."""
        order = _compact_order(valid, reverse)
        labels = ops.take_along_axis(labels, order, axis=1)
        emissions = ops.take_along_axis(emissions, order[..., None], axis=1)
        valid = ops.take_along_axis(valid, order, axis=1)
        trans = self.trans
        if reverse:
            trans = ops.transpose(trans)
        history = ops.take(trans, labels[:, :-1], axis=0)
        logits = (emissions[:, 1:] + history) / 2.0
        logits = ops.concatenate([emissions[:, :1], logits], axis=1)
        return logits, labels, valid

    def sparse_loss(self, y_true, y_pred):
        """Per-sequence NLL (mean of both directions); y_true int (batch, length).

        Out-of-range ids at valid positions: ValueError in eager calls, NaN
        loss for that sequence inside compiled graphs.
        """
        self._require_built()
        where = f"{self.name}.sparse_loss"
        _check_emissions(y_pred, self.num_labels, where)
        labels = _sparse_labels(y_true, y_pred, where)
        emissions, valid = _prepare(y_pred)
        bad = _label_range_flags(labels, valid, self.num_labels, where)
        labels = ops.clip(labels, 0, self.num_labels - 1)
        loss = 0.0
        for reverse in (False, True):
            logits, tags, keep = self._local_logits(labels, emissions, valid, reverse)
            picked = ops.take_along_axis(logits, tags[..., None], axis=-1)[..., 0]
            token = ops.logsumexp(logits, axis=-1) - picked
            loss = loss + ops.sum(ops.where(keep, token, 0.0), axis=1) / 2.0
        return ops.where(bad, float("nan"), loss)

    def dense_loss(self, y_true, y_pred):
        """As `sparse_loss`, with one-hot y_true of y_pred's shape."""
        labels = ops.argmax(_dense_labels(y_true, y_pred, "dense_loss"), -1)
        return self.sparse_loss(labels, y_pred)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"lr_multiplier": self.lr_multiplier, "hidden_dim": self.hidden_dim}
        )
        return config
