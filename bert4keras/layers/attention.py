"""Multi-head attention and the attention-mask layer."""
import math

import keras
import numpy as np
from keras import ops

from bert4keras import backend
from bert4keras.layers.remat import StaticArgumentsRemat

_MASK_MODES = ("bidirectional", "causal", "unilm")


def _use_fused_attention():
    """Whether `ops.dot_product_attention` is the faster path here.

    It pays off where the backend has fused kernels (JAX on GPU/TPU, torch).
    TensorFlow has none: its version is the same einsum/softmax graph as the
    explicit path plus a full-size mask, and JAX's on CPU moves more memory
    (XLA cost analysis: 944 vs 793 MB for MiniLM at 8 x 128). On those, the
    explicit path is used. JAX on CPU also cannot lower float16 attention with
    float32 accumulation, which its fused op requests.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return False
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    return True


@keras.saving.register_keras_serializable(package="bert4keras")
class AttentionMask(keras.layers.Layer):
    """Builds the boolean attention mask from `[token_ids, segment_ids]`.

    Padded keys (token id 0) are always masked (the inputs may also be
    `[token_ids]` alone, except for 'unilm'). On top of that:
    - 'bidirectional': nothing else (BERT encoder), shape (batch, 1, 1, keys);
    - 'causal': query i sees keys j <= i (language model);
    - 'unilm': query i sees key j when `cumsum(segment_ids)[j] <=
      cumsum(segment_ids)[i]` (UniLM seq2seq).

    Args:
        mode: one of 'bidirectional', 'causal', 'unilm'.
    """

    def __init__(self, mode="bidirectional", **kwargs):
        super().__init__(**kwargs)
        if mode not in _MASK_MODES:
            raise ValueError(f"`mode` must be one of {_MASK_MODES}, got {mode!r}")
        self.mode = mode

    def call(self, inputs):
        # `[token_ids]` alone suffices for 'bidirectional' and 'causal' (GPT-2).
        token_ids, segment_ids = inputs if len(inputs) == 2 else (inputs[0], None)
        mask = backend.padding_mask(token_ids)
        if self.mode == "causal":
            mask = ops.logical_and(mask, backend.causal_mask(ops.shape(token_ids)[1]))
        elif self.mode == "unilm":
            mask = ops.logical_and(mask, backend.unilm_mask(segment_ids))
        return mask

    def compute_output_spec(self, inputs):
        token_ids = inputs[0]
        batch, length = token_ids.shape[0], token_ids.shape[1]
        q = 1 if self.mode == "bidirectional" else length
        return keras.KerasTensor((batch, 1, q, length), dtype="bool")

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config


@keras.saving.register_keras_serializable(package="bert4keras")
class MultiHeadAttention(StaticArgumentsRemat, keras.layers.Layer):
    """Multi-head scaled dot-product attention with an explicit boolean mask.

    The call takes `[q, k, v]` (or one tensor for self-attention) and an
    optional `attention_mask` broadcastable to (batch, heads, q_len, k_len),
    True where attention is allowed. With `rotary=True` the queries and keys
    (and values with `rotary_value=True`) get RoFormer's rotary position
    embedding on interleaved pairs. With `max_relative_position=M` (NEZHA) the
    computed relative position features of `clip(j - i, -M, M)` are added to
    the keys and the values of each query i / key j pair
    (`backend.relative_position_table`).

    With `cache` the call is one incremental decoding step, through the same
    code as the full call: the new keys/values (rotated when rotary) are
    written into the cache buffers at `cache["slot"]`, the queries attend
    over the whole buffers, and the call returns `(output, new_cache)`. A
    cache is a dict of `k` (batch, capacity, heads, key_size), `v` (batch,
    capacity, heads, head_size), `positions` (batch, capacity) int32 and the
    int `slot`; `attention_mask` then has `capacity` keys.

    Where the backend has fused attention kernels (JAX on GPU/TPU, torch) the
    call goes through `keras.ops.dot_product_attention`; otherwise, and when
    attention probabilities are requested or attention dropout is active, an
    explicit einsum/softmax path runs (compiled by XLA on TF). Both compute
    the softmax in float32.

    Args:
        heads: number of heads.
        head_size: size of each head's values (and keys unless `key_size`).
        out_dim: output size; defaults to the query input's last axis.
        key_size: size of each head's queries/keys; defaults to `head_size`.
        use_bias: whether the projections have biases.
        attention_dropout: dropout rate on the attention probabilities.
        rotary: apply rotary position embedding to queries and keys.
        rotary_value: also rotate the values (some RoFormer variants).
        max_relative_position: NEZHA's functional relative positions, clipped
            at this distance (None: none).
        kernel_initializer: initializer of the projection kernels.
        attention_scale: multiplies the query-key logits; None (default)
            means `1 / sqrt(key_size)`. T5 uses 1.0 (its scale is folded into
            the query weights).

    The call also takes `attention_bias`, added to the float32 logits
    (broadcastable to (batch, heads, q_len, k_len); T5's relative position
    bias). A cache without a `slot` holds fixed keys/values (T5's
    cross-attention over the encoder, from `key_values`): the call then
    projects only the queries.

    Example:
    ```python
    mha = MultiHeadAttention(heads=4, head_size=8, name="Attention")
    y = mha([x, x, x], attention_mask=mask)                  # (batch, len, 32)
    y, probs = mha([x, x, x], return_attention_scores=True)   # probs: (b, 4, len, len)
    ```
    """

    def __init__(
        self,
        heads,
        head_size,
        out_dim=None,
        key_size=None,
        use_bias=True,
        attention_dropout=0.0,
        rotary=False,
        rotary_value=False,
        max_relative_position=None,
        kernel_initializer="glorot_uniform",
        attention_scale=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.attention_scale = None if attention_scale is None else float(attention_scale)
        if max_relative_position is not None and (
            isinstance(max_relative_position, bool) or int(max_relative_position) < 1
        ):
            raise ValueError(
                f"max_relative_position must be a positive integer or None, got {max_relative_position!r}"
            )
        self.max_relative_position = None if max_relative_position is None else int(max_relative_position)
        self.heads = int(heads)
        self.head_size = int(head_size)
        self.out_dim = out_dim
        self.key_size = int(key_size or head_size)
        self.use_bias = use_bias
        self.attention_dropout = float(attention_dropout)
        self.rotary = rotary
        self.rotary_value = rotary_value
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if (rotary and self.key_size % 2) or (rotary_value and self.head_size % 2):
            raise ValueError(
                "key_size (rotary) and head_size (rotary_value) must be even for rotary "
                f"position embeddings, got {self.key_size} and {self.head_size}"
            )
        if self.max_relative_position is not None and self.key_size != self.head_size:
            raise ValueError(
                "max_relative_position adds the same features to keys and values, so key_size "
                f"must equal head_size, got {self.key_size} and {self.head_size}"
            )


        def dense(units, name):
            return keras.layers.Dense(
                units,
                use_bias=use_bias,
                kernel_initializer=self.kernel_initializer,
                name=name,
                dtype=self.dtype_policy,
            )

        self.q_dense = dense(self.heads * self.key_size, "q_dense")
        self.k_dense = dense(self.heads * self.key_size, "k_dense")
        self.v_dense = dense(self.heads * self.head_size, "v_dense")
        self._out_dense_factory = dense
        self.o_dense = None
        self.dropout = keras.layers.Dropout(self.attention_dropout, dtype=self.dtype_policy)

    @staticmethod
    def _unpack(inputs):
        """`x`, `[x]`, `[q, kv]` or `[q, k, v]` -> (q, k, v)."""
        if not isinstance(inputs, (list, tuple)):
            return inputs, inputs, inputs
        if len(inputs) == 1:
            return inputs[0], inputs[0], inputs[0]
        if len(inputs) == 2:
            return inputs[0], inputs[1], inputs[1]
        return tuple(inputs)

    @staticmethod
    def _split_shapes(input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
            input_shape[0], (list, tuple)
        ):
            shapes = list(input_shape)
            while len(shapes) < 3:
                shapes.append(shapes[-1])
            return shapes
        return [input_shape] * 3

    def build(self, input_shape):
        q_shape, k_shape, v_shape = self._split_shapes(input_shape)
        out_dim = self.out_dim or q_shape[-1]
        self.o_dense = self._out_dense_factory(out_dim, "o_dense")
        self.q_dense.build(q_shape)
        self.k_dense.build(k_shape)
        self.v_dense.build(v_shape)
        self.o_dense.build(tuple(q_shape[:-1]) + (self.heads * self.head_size,))

    def project(self, q, k, v, position_ids=None, k_position_ids=None):
        """Project inputs into (batch, length, heads, size) queries, keys, values.

        Rotary embedding is applied here, so a key/value cache stores rotated
        keys. `position_ids` default to `arange(q_len)`; `k_position_ids`
        default to `position_ids` when lengths match, else `arange(k_len)`.
        """
        qw = self._heads(self.q_dense(q), self.key_size)
        kw = self._heads(self.k_dense(k), self.key_size)
        vw = self._heads(self.v_dense(v), self.head_size)
        if self.rotary:
            q_pos = ops.arange(ops.shape(q)[1]) if position_ids is None else position_ids
            if k_position_ids is None:
                k_position_ids = q_pos if k is q else ops.arange(ops.shape(k)[1])
            qw = self._rotate(qw, q_pos)
            kw = self._rotate(kw, k_position_ids)
            if self.rotary_value:
                vw = self._rotate(vw, k_position_ids)
        return qw, kw, vw

    def key_values(self, k, v):
        """Projected (batch, length, heads, size) keys and values of `k` and `v`.

        A cache of these (`{"k": ..., "v": ...}`, no `slot`) serves every
        later call over the same keys (cross-attention while decoding).
        """
        if self.rotary or self.max_relative_position is not None:
            raise ValueError(
                f"{self.name}: fixed keys/values must go to an attention without positions, "
                "got one with rotary or relative positions; cache keys/values per step instead"
            )
        return self._heads(self.k_dense(k), self.key_size), self._heads(self.v_dense(v), self.head_size)

    def _rotate(self, x, positions):
        sin, cos = backend.rotary_sin_cos(positions, x.shape[-1], dtype=x.dtype)
        return backend.apply_rotary(x, sin, cos)

    def _heads(self, x, size):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.heads, size))

    def attend(
        self,
        qw,
        kw,
        vw,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        dropout_keep=None,
        q_positions=None,
        k_positions=None,
        attention_bias=None,
    ):
        """Attention over projected (batch, length, heads, size) tensors.

        Returns the merged (batch, q_len, heads * head_size) context, and the
        float32 attention probabilities when `return_attention_scores`.
        `dropout_keep` is a boolean (batch, heads, q_len, k_len) mask of the
        attention probabilities to keep; when training with attention dropout
        and none is given, one is drawn (`dropout_keep_mask`). `q_positions`
        and `k_positions` ((batch, length) int) place queries and keys for
        relative positions; by default both are `arange(length)`.
        """
        scale = 1.0 / math.sqrt(self.key_size) if self.attention_scale is None else self.attention_scale
        use_dropout = bool(training) and self.attention_dropout > 0
        relative = self._relative_features(qw, kw, q_positions, k_positions)
        if (not return_attention_scores and not use_dropout and relative is None
                and attention_bias is None and _use_fused_attention()):
            context = ops.dot_product_attention(qw, kw, vw, mask=attention_mask, scale=scale)
            if attention_mask is not None:  # as below: a query that sees no key gets 0
                visible = ops.transpose(ops.any(attention_mask, axis=-1), (0, 2, 1))
                context = ops.where(visible[..., None], context, 0.0)
            probs = None
        else:
            logits = ops.einsum("btnh,bsnh->bnts", qw, kw)
            if relative is not None:
                logits = logits + self._relative_logits(qw, relative)
            logits = ops.cast(logits, "float32") * scale
            if attention_bias is not None:
                logits = logits + ops.cast(attention_bias, "float32")
            if attention_mask is not None:
                logits = ops.where(attention_mask, logits, -backend.large_value("float32"))
            probs = ops.softmax(logits, axis=-1)
            if attention_mask is not None:
                # Masked keys already weigh exactly 0 (exp underflows), so this
                # changes nothing but a query that sees no key at all, whose
                # context becomes 0 instead of the mean of the values. It keeps
                # the probabilities a tensor of their own: XLA on JAX's CPU
                # otherwise fuses the whole softmax into the second matmul,
                # which made MiniLM 10% slower there (bench/bench_peers.py).
                probs = ops.where(attention_mask, probs, 0.0)
            dropped = probs
            if use_dropout:
                if dropout_keep is None:
                    dropout_keep = self.dropout_keep_mask(qw, kw)
                dropped = ops.where(dropout_keep, probs / (1.0 - self.attention_dropout), 0.0)
            dropped = ops.cast(dropped, vw.dtype)
            context = ops.einsum("bnts,bsnh->btnh", dropped, vw)
            if relative is not None:
                context = context + self._relative_context(dropped, relative)
        shape = ops.shape(context)
        context = ops.reshape(context, (shape[0], shape[1], self.heads * self.head_size))
        return context, probs

    def _relative_features(self, qw, kw, q_positions, k_positions):
        """(q_len, k_len, key_size) or (batch, q_len, k_len, key_size) features."""
        if self.max_relative_position is None:
            return None
        q_len, k_len = qw.shape[1], kw.shape[1]
        if q_positions is None and k_positions is None and isinstance(q_len, int) and isinstance(k_len, int):
            relative = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
        elif q_positions is None and k_positions is None:
            relative = ops.arange(ops.shape(kw)[1])[None, :] - ops.arange(ops.shape(qw)[1])[:, None]
        else:
            if q_positions is None:
                q_positions = ops.arange(ops.shape(qw)[1])[None]
            if k_positions is None:
                k_positions = ops.arange(ops.shape(kw)[1])[None]
            q_positions = ops.cast(q_positions, "int32")
            k_positions = ops.cast(k_positions, "int32")
            relative = k_positions[:, None, :] - q_positions[:, :, None]
        table = backend.relative_position_table(relative, self.key_size, self.max_relative_position)
        return ops.cast(table, qw.dtype)

    @staticmethod
    def _relative_logits(qw, relative):
        """(batch, heads, q_len, k_len) query-feature products.

        Shared (q, k, d) features go through one matmul batched over the
        query axis, whose layout XLA on JAX runs faster than the einsum
        (7% of a NEZHA MiniLM forward on CPU; TF's XLA chose it already).
        Per-row (batch, q, k, d) features, as in cached decoding, use the
        einsum.
        """
        if len(relative.shape) == 4:
            return ops.einsum("btnh,btsh->bnts", qw, relative)
        b, t, n, h = ops.shape(qw)
        q = ops.reshape(ops.transpose(qw, (1, 0, 2, 3)), (t, b * n, h))
        y = ops.matmul(q, ops.transpose(relative, (0, 2, 1)))  # (t, b * n, k_len)
        return ops.transpose(ops.reshape(y, (t, b, n, -1)), (1, 2, 0, 3))

    @staticmethod
    def _relative_context(probs, relative):
        """(batch, q_len, heads, size) probability-weighted features; see `_relative_logits`."""
        if len(relative.shape) == 4:
            return ops.einsum("bnts,btsh->btnh", probs, relative)
        b, n, t, k = ops.shape(probs)
        p = ops.reshape(ops.transpose(probs, (2, 0, 1, 3)), (t, b * n, k))
        y = ops.matmul(p, relative)  # (t, b * n, size)
        return ops.transpose(ops.reshape(y, (t, b, n, -1)), (1, 0, 2, 3))

    def dropout_keep_mask(self, q, k):
        """A random boolean (batch, heads, q_len, k_len) mask of kept probabilities.

        `q` and `k` are the query and key tensors (any trailing axes); the
        draw advances the layer's seed generator.
        """
        q_shape, k_shape = ops.shape(q), ops.shape(k)
        shape = (q_shape[0], self.heads, q_shape[1], k_shape[1])
        noise = keras.random.uniform(shape, seed=self.dropout.seed_generator)
        return noise >= self.attention_dropout

    def remat_outside_arguments(self, inputs, training=None, **kwargs):
        """Draws the attention-dropout mask outside the rematerialised call.

        The recomputation in the backward pass then reuses the forward's
        mask, so gradients are exact, and JAX's checkpoint never sees the
        seed generator's update.
        """
        if not training or self.attention_dropout <= 0:
            return {}
        q, k, _ = self._unpack(inputs)
        return {"dropout_keep": self.dropout_keep_mask(q, k)}

    def call(
        self,
        inputs,
        attention_mask=None,
        position_ids=None,
        return_attention_scores=False,
        training=None,
        dropout_keep=None,
        cache=None,
        attention_bias=None,
    ):
        q, k, v = self._unpack(inputs)
        if cache is not None and "slot" not in cache:  # fixed keys/values (cross-attention)
            qw = self._heads(self.q_dense(q), self.key_size)
            context, _ = self.attend(qw, cache["k"], cache["v"], attention_mask, training=training,
                                     attention_bias=attention_bias)
            return self.o_dense(context), cache
        if cache is not None and position_ids is None:
            raise ValueError(
                f"{self.name}: `position_ids` must be given with a `cache`, got None; pass "
                "the positions of the new tokens"
            )
        qw, kw, vw = self.project(
            q, k, v, position_ids=position_ids,
            k_position_ids=position_ids if cache is not None else None,
        )
        q_positions = k_positions = position_ids
        if cache is not None:
            slot = cache["slot"]
            kw = ops.slice_update(cache["k"], (0, slot, 0, 0), ops.cast(kw, cache["k"].dtype))
            vw = ops.slice_update(cache["v"], (0, slot, 0, 0), ops.cast(vw, cache["v"].dtype))
            k_positions = ops.slice_update(
                cache["positions"], (0, slot), ops.cast(position_ids, cache["positions"].dtype)
            )
            cache = dict(cache, k=kw, v=vw, positions=k_positions)
        context, probs = self.attend(
            qw,
            kw,
            vw,
            attention_mask,
            return_attention_scores,
            training=training,
            dropout_keep=dropout_keep,
            q_positions=q_positions,
            k_positions=k_positions,
            attention_bias=attention_bias,
        )
        output = self.o_dense(context)
        if cache is not None:
            return output, cache
        if return_attention_scores:
            return output, probs
        return output

    def compute_output_spec(self, inputs, return_attention_scores=False, **kwargs):
        q, k, _ = self._unpack(inputs)
        out_dim = self.out_dim or q.shape[-1]
        output = keras.KerasTensor(tuple(q.shape[:-1]) + (out_dim,), dtype=self.compute_dtype)
        if return_attention_scores:
            probs = keras.KerasTensor(
                (q.shape[0], self.heads, q.shape[1], k.shape[1]), dtype="float32"
            )
            return output, probs
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            heads=self.heads,
            head_size=self.head_size,
            out_dim=self.out_dim,
            key_size=self.key_size,
            use_bias=self.use_bias,
            attention_dropout=self.attention_dropout,
            rotary=self.rotary,
            rotary_value=self.rotary_value,
            max_relative_position=self.max_relative_position,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        if self.attention_scale is not None:  # configs of earlier files stay the same
            config["attention_scale"] = self.attention_scale
        return config
