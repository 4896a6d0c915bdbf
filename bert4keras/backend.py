"""Small backend-agnostic helpers built on `keras.ops`.

Activations, attention masks (padding, causal LM, UniLM), sequence masking and
the rotary position transform. Nothing here holds state.
"""
import math

import keras
import numpy as np
from keras import ops

_SQRT_HALF = 1.0 / math.sqrt(2.0)


@keras.saving.register_keras_serializable(package="bert4keras")
def gelu_erf(x):
    """Exact GELU, `x * Phi(x)`; what `hidden_act='gelu'` means in BERT configs.

    Written with `erf` rather than `ops.gelu(approximate=False)`: TensorFlow's
    version goes through `erfc`, which XLA expands into two rational
    approximations, an exponential and three divisions per element; `erf` is
    one polynomial ratio. On a MiniLM forward (8 x 128, TF + XLA, CPU) that is
    about 2% of the time. Both are exact GELU to float32 rounding.
    """
    return 0.5 * x * (1.0 + ops.erf(x * _SQRT_HALF))


@keras.saving.register_keras_serializable(package="bert4keras")
def gelu_tanh(x):
    """The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`)."""
    return ops.gelu(x, approximate=True)


_ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_erf": gelu_erf,
    "gelu_python": gelu_erf,
    "gelu_new": gelu_tanh,
    "gelu_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": "relu",
    "swish": "silu",
    "silu": "silu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "linear": "linear",
}


def get_activation(name):
    """Map a config's `hidden_act` to a Keras activation.

    Config strings follow BERT/HF meaning (`gelu` is the exact erf form), which
    differs from `keras.ops.gelu`'s tanh default; hence an explicit table.
    Callables and Keras activation names not in the table pass through.
    """
    if callable(name) or name is None:
        return name
    if isinstance(name, dict):  # a serialized callable from get_config
        return keras.saving.deserialize_keras_object(name)
    key = str(name).lower()
    if key in _ACTIVATIONS:
        return _ACTIVATIONS[key]
    try:
        return keras.activations.get(name)
    except ValueError:
        raise ValueError(
            f"`hidden_act` must be one of {sorted(_ACTIVATIONS)} or a Keras "
            f"activation name, got unknown activation {name!r}; fix the config"
        ) from None


def padding_mask(token_ids):
    """Boolean (batch, 1, 1, keys) mask: True where the key is a real token (id > 0)."""
    valid = ops.greater(token_ids, 0)
    return valid[:, None, None, :]


def causal_mask(length):
    """Boolean (1, 1, length, length) lower-triangular mask: query i sees keys j <= i."""
    idx = ops.arange(length)
    return (idx[None, :] <= idx[:, None])[None, None]


def unilm_mask(segment_ids):
    """Boolean (batch, 1, q, k) UniLM mask.

    Query i sees key j when `cumsum(segment_ids)[j] <= cumsum(segment_ids)[i]`:
    the source segment (segment 0) is bidirectional, the target (segment 1) is
    causal and sees the whole source.
    """
    seg = ops.cumsum(ops.cast(segment_ids, "int32"), axis=1)
    return (seg[:, None, :] <= seg[:, :, None])[:, None]


def sequence_masking(x, mask, value=0.0, axis=1):
    """Set the positions of `x` where `mask` is False to `value`.

    `mask` is (batch, length) along `axis` of `x`; `value` may be 'inf'/'-inf'
    for a large finite number of `x`'s dtype (safe for softmax and float16).
    """
    if mask is None:
        return x
    if isinstance(value, str):
        big = large_value(x.dtype)
        value = big if value == "inf" else -big
    mask = ops.cast(mask, "bool")
    if axis < 0:
        axis = len(x.shape) + axis
    for _ in range(axis - 1):
        mask = ops.expand_dims(mask, 1)
    while len(mask.shape) < len(x.shape):
        mask = ops.expand_dims(mask, -1)
    return ops.where(mask, x, ops.cast(value, x.dtype))


def large_value(dtype):
    """A large finite number representable in `dtype` (for masking logits)."""
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype == "float16":
        return 6e4
    if dtype == "bfloat16":
        return 1e30
    return 1e12


def sinusoidal_table(positions, dim):
    """Sinusoidal features of `positions` (any shape) -> (..., dim), float32.

    Column pair k uses frequency `10000^(-2k/dim)`; the first half holds the
    sines and the second half the cosines (the original Transformer/RoFormer
    layout before interleaving).
    """
    if dim % 2:
        raise ValueError(f"sinusoidal dimension must be even, got {dim}")
    positions = ops.cast(positions, "float32")
    freqs = ops.exp(
        ops.arange(dim // 2, dtype="float32") * (-2.0 * math.log(10000.0) / dim)
    )
    angles = ops.expand_dims(positions, -1) * freqs
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def relative_position_table(relative, dim, max_distance):
    """NEZHA's functional relative position features, float32.

    A relative distance `j - i` is clipped to `[-max_distance, max_distance]`
    and shifted by `max_distance` to a row index `r >= 0`, whose features are
    interleaved pairs `(sin(r * f_k), cos(r * f_k))` with `f_k =
    10000^(-2k/dim)`, as in Huawei's release (the table is computed, not
    learned, so checkpoints do not hold it).

    Args:
        relative: int tensor of distances `key_position - query_position`;
            a numpy array gives a numpy table (a constant when traced).
        dim: even feature size (the attention key size).
        max_distance: the clipping distance (`max_relative_position`).

    Returns:
        `relative.shape + (dim,)` features.
    """
    if isinstance(relative, np.ndarray):
        # Static distances: a numpy constant. On JAX, XLA would otherwise
        # evaluate sin/cos for every (query, key, feature) on each call.
        index = np.clip(relative, -max_distance, max_distance) + max_distance
        angles = index[..., None] * np.exp(np.arange(dim // 2) * (-2.0 * math.log(10000.0) / dim))
        return np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(relative.shape + (dim,)).astype("float32")
    index = ops.clip(relative, -max_distance, max_distance) + max_distance
    table = sinusoidal_table(index, dim)
    half = dim // 2
    pairs = ops.stack([table[..., :half], table[..., half:]], axis=-1)
    return ops.reshape(pairs, tuple(ops.shape(relative)) + (dim,))


def apply_rotary(x, sin, cos):
    """Rotate interleaved pairs `(x[2k], x[2k+1])` by the angles behind sin/cos.

    Args:
        x: (..., length, ..., dim) tensor.
        sin, cos: tensors broadcastable to `x`, with each frequency repeated
            twice along the last axis (`[s0, s0, s1, s1, ...]`).
    """
    even = x[..., ::2]
    odd = x[..., 1::2]
    rotated = ops.reshape(ops.stack([-odd, even], axis=-1), ops.shape(x))
    return x * cos + rotated * sin


def rotary_sin_cos(positions, dim, dtype="float32"):
    """Interleaved sin and cos tables for `apply_rotary`.

    Args:
        positions: (length,) or (batch, length) position indices.
        dim: the rotated (head) dimension, even.

    Returns:
        Two tensors of shape (1 or batch, length, 1, dim), so they broadcast
        over the heads axis of (batch, length, heads, dim) tensors.
    """
    if len(positions.shape) == 1:
        positions = positions[None]
    table = sinusoidal_table(positions, dim)
    half = dim // 2
    sin = ops.repeat(table[..., :half], 2, axis=-1)
    cos = ops.repeat(table[..., half:], 2, axis=-1)
    return ops.cast(sin[:, :, None, :], dtype), ops.cast(cos[:, :, None, :], dtype)


def dims_differ(shape_a, shape_b):
    """True if two shapes (zipped, so their common leading axes) have a known
    dimension that differs; None matches anything."""
    return any(a is not None and b is not None and a != b for a, b in zip(shape_a, shape_b))


def concrete_numpy(x):
    """`x` as a numpy array when its value is known now, else None.

    Symbolic tensors (functional graph building, `tf.function` tracing, `jax.jit`
    tracing) have no value; conversion fails on them and we return None.
    """
    if isinstance(x, np.ndarray):
        return x
    if keras.utils.is_keras_tensor(x):
        return None
    try:
        return ops.convert_to_numpy(x)
    except Exception:  # noqa: BLE001 - any tracer/graph tensor: no value yet
        return None
