"""GlobalPointer span scoring heads (Su Jianlin, kexue.fm/archives/8373, 8877).

Each head scores every (start, end) pair of a sequence, so nested and
overlapping spans come out of one matrix. Train them with
`bert4keras.losses.global_pointer_crossentropy`; predict spans where the score
is > 0.
"""
import math

import keras
from keras import ops

from bert4keras.backend import apply_rotary, rotary_sin_cos

MASKED_SCORE = -1e12
"""Score given to padded and lower-triangle (start > end) pairs (float32)."""


def _check_input_shape(layer, input_shape):
    if len(input_shape) != 3 or input_shape[-1] is None:
        raise ValueError(
            f"{layer.name}: the input must have shape (batch, length, hidden) with a "
            f"known hidden size, got {input_shape}"
        )


@keras.saving.register_keras_serializable(package="bert4keras")
class GlobalPointer(keras.layers.Layer):
    """Scores every (start, end) span for `heads` span types.

    `scores[b, h, i, j] = <q_h(x_i), k_h(x_j)> / sqrt(head_size)`, with q and k
    from one Dense projection (per head, the first `head_size` units are q and
    the next `head_size` are k, the bert4keras weight layout) and, with
    `RoPE=True`, rotary position embeddings on interleaved pairs
    `(2i, 2i+1)` at absolute positions 0..length-1 (as in RoFormer), which
    makes the score depend on the relative offset `j - i`.

    Masking: pairs whose start or end is padded, and with `tril_mask=True`
    pairs with start > end, get `MASKED_SCORE` (-1e12). Padding comes from a
    Keras mask on the input (e.g. an `Embedding(mask_zero=True)` upstream) or
    from an explicit `mask=` (batch, length) argument, which wins when both
    are present. The output does not carry a Keras mask.

    Dtype: the projection runs in the layer's compute dtype, the scores are
    returned in float32 under any policy (the masked value and the losses need
    float32 range).

    Args:
        heads: number of span types.
        head_size: size of each q and k vector (even when `RoPE=True`).
        RoPE: apply rotary position embeddings to q and k.
        use_bias: use a bias in the projection.
        tril_mask: mask spans with start > end.
        kernel_initializer: initializer of the projection kernel.
        **kwargs: standard layer arguments.

    Input shape: (batch, length, hidden). Output: (batch, heads, length,
    length) float32.

    Example:
    ```python
    hidden = keras.Input((None, 32))
    scores = GlobalPointer(heads=3, head_size=16)(hidden)
    model = keras.Model(hidden, scores)
    model.compile("adam", loss=bert4keras.losses.global_pointer_crossentropy)
    ```
    """

    def __init__(
        self,
        heads,
        head_size,
        RoPE=True,
        use_bias=True,
        tril_mask=True,
        kernel_initializer="lecun_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (("heads", heads), ("head_size", head_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        if RoPE and head_size % 2:
            raise ValueError(
                f"head_size must be even when RoPE=True, got {head_size}"
            )
        self.heads = heads
        self.head_size = head_size
        self.RoPE = RoPE
        self.use_bias = use_bias
        self.tril_mask = tril_mask
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        self._make_projections()

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _make_projections(self):
        self.dense = self._dense(self.heads * self.head_size * 2, "dense")

    def build(self, input_shape):
        _check_input_shape(self, input_shape)
        self.dense.build(input_shape)

    def _rotate(self, *tensors):
        """RoPE on (batch, length, ..., head_size) tensors."""
        if not self.RoPE:
            return tensors
        length = ops.shape(tensors[0])[1]
        sin, cos = rotary_sin_cos(
            ops.arange(length), self.head_size, dtype=tensors[0].dtype
        )
        out = []
        for x in tensors:
            if len(x.shape) == 3:  # no heads axis
                out.append(apply_rotary(x, sin[:, :, 0], cos[:, :, 0]))
            else:
                out.append(apply_rotary(x, sin, cos))
        return out

    def _scores(self, inputs):
        x = self.dense(inputs)
        x = ops.reshape(
            x, ops.shape(x)[:2] + (self.heads, 2 * self.head_size)
        )
        q, k = x[..., : self.head_size], x[..., self.head_size :]
        q, k = self._rotate(q, k)
        scores = ops.einsum("bmhd,bnhd->bhmn", q, k)
        return ops.cast(scores, "float32") / math.sqrt(self.head_size)

    def call(self, inputs, mask=None):
        scores = self._scores(inputs)
        length = ops.shape(scores)[-1]
        keep = None
        if mask is not None:
            valid = ops.cast(mask, "bool")
            keep = ops.logical_and(
                valid[:, None, :, None], valid[:, None, None, :]
            )
        if self.tril_mask:
            pos = ops.arange(length)
            upper = (pos[None, :] >= pos[:, None])[None, None]
            keep = upper if keep is None else ops.logical_and(keep, upper)
        if keep is None:
            return scores
        return ops.where(keep, scores, MASKED_SCORE)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs, mask=None):
        b, n = inputs.shape[0], inputs.shape[1]
        return keras.KerasTensor((b, self.heads, n, n), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "heads": self.heads,
                "head_size": self.head_size,
                "RoPE": self.RoPE,
                "use_bias": self.use_bias,
                "tril_mask": self.tril_mask,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bert4keras")
class EfficientGlobalPointer(GlobalPointer):
    """Parameter-efficient GlobalPointer: one shared q/k, per-head biases.

    `p_dense` projects the input to 2 * head_size units; q takes the even
    units and k the odd ones (bert4keras layout), both rotated by RoPE, and
    `s(i, j) = <q_i, k_j> / sqrt(head_size)` is shared by all heads. `q_dense`
    maps the projection to 2 * heads units; per head h, unit 2h (halved) is
    added for the end position j and unit 2h + 1 (halved) for the start i:
    `scores[b, h, i, j] = s(i, j) + (u[b, j, 2h] + u[b, i, 2h+1]) / 2`.
    Arguments, masking and dtypes are as in `GlobalPointer`.

    Example:
    ```python
    scores = EfficientGlobalPointer(heads=3, head_size=16)(hidden)
    ```
    """

    def _make_projections(self):
        self.p_dense = self._dense(self.head_size * 2, "p_dense")
        self.q_dense = self._dense(self.heads * 2, "q_dense")

    def build(self, input_shape):
        _check_input_shape(self, input_shape)
        self.p_dense.build(input_shape)
        self.q_dense.build(tuple(input_shape[:2]) + (self.head_size * 2,))

    def _scores(self, inputs):
        x = self.p_dense(inputs)
        q, k = self._rotate(x[..., ::2], x[..., 1::2])
        shared = ops.einsum("bmd,bnd->bmn", q, k)
        shared = ops.cast(shared, "float32") / math.sqrt(self.head_size)
        bias = ops.cast(self.q_dense(x), "float32") / 2.0
        bias = ops.transpose(bias, (0, 2, 1))  # (batch, 2 * heads, length)
        return (
            shared[:, None]
            + bias[:, ::2, None, :]  # end position
            + bias[:, 1::2, :, None]  # start position
        )
