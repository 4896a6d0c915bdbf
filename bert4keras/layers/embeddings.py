"""Token, position and bias layers."""
import keras
from keras import ops

from bert4keras import backend


@keras.saving.register_keras_serializable(package="bert4keras")
class Embedding(keras.layers.Embedding):
    """Token embedding that can also act as the tied output projection.

    `layer(ids)` looks ids up; `layer(hidden, reverse=True)` multiplies hidden
    states by the transposed table, giving vocabulary logits (the MLM head's
    tied decoder). When ids have a concrete value (eager calls), ids outside
    `[0, input_dim)` raise a `ValueError` naming the layer; inside compiled
    graphs the backend's own gather check applies (TensorFlow on CPU raises,
    JAX clamps), so validate inputs before compiled prediction.

    Args:
        input_dim: vocabulary size.
        output_dim: embedding size.
        **kwargs: any `keras.layers.Embedding` argument.

    Example:
    ```python
    emb = Embedding(100, 16, name="Embedding-Token")
    h = emb(np.array([[2, 5, 0]]))             # (1, 3, 16)
    logits = emb(h, reverse=True)               # (1, 3, 100)
    ```
    """

    def call(self, inputs, reverse=False):
        if reverse:
            kernel = ops.cast(self.embeddings, self.compute_dtype)
            return ops.matmul(ops.cast(inputs, self.compute_dtype), ops.transpose(kernel))
        values = backend.concrete_numpy(inputs)
        if values is not None and values.size:
            low, high = int(values.min()), int(values.max())
            if low < 0 or high >= self.input_dim:
                raise ValueError(
                    f"Layer {self.name!r}: token ids must be in [0, {self.input_dim}) "
                    f"(the vocabulary size), got values from {low} to {high}. "
                    "Check the vocab file against the model config."
                )
        return super().call(inputs)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return tuple(input_shape[:-1]) + (self.input_dim,)
        return super().compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, reverse=False):
        shape = self.compute_output_shape(inputs.shape, reverse=reverse)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        # Masks are built explicitly from token ids by the model; Keras' implicit
        # mask propagation is not used.
        return None


@keras.saving.register_keras_serializable(package="bert4keras")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding added to (or returned for) a sequence.

    Args:
        input_dim: maximum number of positions.
        output_dim: embedding size (must equal the input's last axis for 'add').
        merge_mode: 'add' returns `inputs + positions`; 'zero' returns the
            position embeddings alone, broadcast over the batch.
        embeddings_initializer: initializer of the table.

    Example:
    ```python
    x = PositionEmbedding(512, 16, name="Embedding-Position")(x)
    ```
    """

    def __init__(
        self, input_dim, output_dim, merge_mode="add", embeddings_initializer="zeros", **kwargs
    ):
        super().__init__(**kwargs)
        if merge_mode not in ("add", "zero"):
            raise ValueError(f"merge_mode must be 'add' or 'zero', got {merge_mode!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.merge_mode = merge_mode
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        length = input_shape[1]
        if length is not None and length > self.input_dim:
            raise ValueError(
                f"Layer {self.name!r}: sequence length {length} exceeds the "
                f"{self.input_dim} positions of the model (max_position); inputs must be "
                "at most that long, so truncate them (maxlen)."
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
        )

    def call(self, inputs, position_ids=None):
        if position_ids is None:
            length = ops.shape(inputs)[1]
            if isinstance(length, int) and length > self.input_dim:
                raise ValueError(
                    f"Layer {self.name!r}: sequence length {length} exceeds the "
                    f"{self.input_dim} positions of the model (max_position); inputs must "
                    "be at most that long, so truncate them (maxlen)."
                )
            pos = ops.cast(self.embeddings[None, :length], self.compute_dtype)
        else:
            pos = ops.cast(ops.take(self.embeddings, position_ids, axis=0), self.compute_dtype)
        if self.merge_mode == "add":
            return inputs + pos
        return ops.broadcast_to(pos, ops.shape(inputs)[:2] + (self.output_dim,))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            merge_mode=self.merge_mode,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="bert4keras")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sinusoidal position features of shape (batch or 1, length, output_dim).

    Sines fill the first half of the features and cosines the second, with
    frequency `10000^(-2k/output_dim)` for pair k. With `merge_mode='add'` the
    features are added to the input instead.

    Args:
        output_dim: even feature size.
        merge_mode: 'add' or 'zero' (return the features alone).
    """

    def __init__(self, output_dim, merge_mode="zero", **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in ("add", "zero"):
            raise ValueError(f"merge_mode must be 'add' or 'zero', got {merge_mode!r}")
        if output_dim % 2:
            raise ValueError(f"output_dim must be even, got {output_dim}")
        self.output_dim = int(output_dim)
        self.merge_mode = merge_mode

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        table = backend.sinusoidal_table(ops.arange(length), self.output_dim)[None]
        table = ops.cast(table, self.compute_dtype)
        if self.merge_mode == "add":
            return inputs + table
        return table

    def compute_output_shape(self, input_shape):
        if self.merge_mode == "add":
            return tuple(input_shape)
        return (1, input_shape[1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(output_dim=self.output_dim, merge_mode=self.merge_mode)
        return config


@keras.saving.register_keras_serializable(package="bert4keras")
class BiasAdd(keras.layers.Layer):
    """Adds a learned bias over the last axis (the MLM head's output bias)."""

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="bert4keras")
class TokenSlice(keras.layers.Layer):
    """Picks the hidden state at one position, e.g. `[CLS]` for the pooler.

    Args:
        index: position to take along axis 1.
    """

    def __init__(self, index=0, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, inputs):
        return inputs[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update(index=self.index)
        return config
