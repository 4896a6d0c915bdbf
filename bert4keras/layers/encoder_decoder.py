"""Layers of encoder-decoder models (T5): bucketed relative position bias and
the padding of encoder states that the decoder's cross-attention reads."""
import math

import keras
from keras import ops

from bert4keras import backend


def relative_position_buckets(relative, num_buckets, max_distance, bidirectional):
    """T5's bucket of each relative position `key - query` (int tensor in, int32 out).

    Distances below half the buckets (of each direction, when
    bidirectional) get a bucket each; longer ones share logarithmically
    wider buckets up to `max_distance`, beyond which all share the last.
    """
    relative = ops.cast(relative, "int32")
    buckets = 0
    if bidirectional:
        num_buckets //= 2
        buckets = ops.cast(ops.greater(relative, 0), "int32") * num_buckets
        distance = ops.abs(relative)
    else:
        distance = -ops.minimum(relative, 0)
    exact = num_buckets // 2
    # float32 as in mesh-TF and transformers, so the same distances share a bucket.
    ratio = ops.log(ops.cast(ops.maximum(distance, 1), "float32") / exact) / math.log(max_distance / exact)
    large = exact + ops.cast(ratio * (num_buckets - exact), "int32")
    large = ops.minimum(large, num_buckets - 1)
    return buckets + ops.where(ops.less(distance, exact), distance, large)


@keras.saving.register_keras_serializable(package="bert4keras")
class RelativePositionBias(keras.layers.Layer):
    """T5's learned attention bias per head and bucket of `key - query`.

    Called on a hidden-state tensor (batch, length, ...), it returns the
    (1, heads, length, length) bias of positions `arange(length)`; called on
    `[query_positions, key_positions]` ((batch or 1, q) and (batch or 1, k)
    ints, a decoding step), the (batch or 1, heads, q, k) bias of those.
    The bias is float32 (it is added to float32 attention logits).

    Args:
        heads: number of attention heads.
        num_buckets: number of buckets (`relative_attention_num_buckets`).
        max_distance: distance from which all positions share the last
            bucket (`relative_attention_max_distance`).
        bidirectional: buckets for both directions (encoder) or only for
            keys before the query (decoder).
        embeddings_initializer: initializer of the (buckets, heads) table.

    Example:
    ```python
    bias = RelativePositionBias(heads=4, num_buckets=32, name="Encoder-Embedding-Relative-Position")(x)
    y = attention([x, x, x], attention_bias=bias)
    ```
    """

    def __init__(self, heads, num_buckets=32, max_distance=128, bidirectional=True,
                 embeddings_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.heads = int(heads)
        self.num_buckets = int(num_buckets)
        self.max_distance = int(max_distance)
        self.bidirectional = bool(bidirectional)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        if self.num_buckets < (4 if bidirectional else 2) or self.max_distance <= self.num_buckets // 4:
            raise ValueError(
                f"num_buckets must be >= 4 (2 one-directional) and max_distance above a quarter of it, "
                f"got num_buckets={num_buckets}, max_distance={max_distance}"
            )

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.num_buckets, self.heads),
                                          initializer=self.embeddings_initializer)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            q_positions, k_positions = inputs
        else:
            q_positions = k_positions = ops.arange(ops.shape(inputs)[1], dtype="int32")[None]
        relative = ops.cast(k_positions, "int32")[:, None, :] - ops.cast(q_positions, "int32")[:, :, None]
        buckets = relative_position_buckets(relative, self.num_buckets, self.max_distance, self.bidirectional)
        bias = ops.take(ops.cast(self.embeddings, "float32"), buckets, axis=0)  # (b, q, k, heads)
        return ops.transpose(bias, (0, 3, 1, 2))

    def compute_output_spec(self, inputs):
        if isinstance(inputs, (list, tuple)):
            q, k = inputs
            return keras.KerasTensor((q.shape[0], self.heads, q.shape[1], k.shape[1]), dtype="float32")
        return keras.KerasTensor((1, self.heads, inputs.shape[1], inputs.shape[1]), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(heads=self.heads, num_buckets=self.num_buckets, max_distance=self.max_distance,
                      bidirectional=self.bidirectional,
                      embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer))
        return config


@keras.saving.register_keras_serializable(package="bert4keras")
class PaddedStates(keras.layers.Layer):
    """Marks padding in encoder states so that a decoder can find it.

    `layer([states, token_ids])` sets the states of padded tokens (id 0) to
    zero; `layer(states, key_mask=True)` returns the boolean
    (batch, 1, 1, length) mask of non-zero states, the keys a
    cross-attention may see. So a decoder given encoder states alone
    (`[states, decoder_ids]`) masks padded encoder positions.

    Example:
    ```python
    states = PaddedStates(name="Encoder-Output-Mask")([states, token_ids])
    cross_mask = PaddedStates(name="Decoder-Context-Mask")(context, key_mask=True)
    ```
    """

    def call(self, inputs, key_mask=False):
        if key_mask:
            valid = ops.any(ops.not_equal(inputs, 0), axis=-1)
            return valid[:, None, None, :]
        states, token_ids = inputs
        return states * ops.cast(ops.greater(token_ids, 0), states.dtype)[..., None]

    def compute_output_spec(self, inputs, key_mask=False):
        if key_mask:
            return keras.KerasTensor((inputs.shape[0], 1, 1, inputs.shape[1]), dtype="bool")
        return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)


@keras.saving.register_keras_serializable(package="bert4keras")
class CausalMask(keras.layers.Layer):
    """The boolean (1, 1, length, length) causal mask of a sequence, padding ignored.

    For decoders whose start token is id 0 (T5): their inputs are right
    padded, so a causal mask alone keeps padding away from valid positions.

    Example:
    ```python
    mask = CausalMask(name="Decoder-Attention-Mask")(decoder_ids)
    ```
    """

    def call(self, inputs):
        return backend.causal_mask(ops.shape(inputs)[1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((1, 1, inputs.shape[1], inputs.shape[1]), dtype="bool")
