"""Layer normalization, optionally conditioned on an extra input."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras")
class LayerNormalization(keras.layers.Layer):
    """Layer normalization over the last axis, computed in float32.

    With `conditional=True` the layer takes `[x, condition]`: two Dense maps of
    the condition vector (zero-initialised, so a freshly built model matches
    the unconditioned checkpoint exactly) shift gamma and beta, as in
    bert4keras' conditional LayerNorm (e.g. conditional text generation).
    With `zero_mean=False` no mean is subtracted: `x / sqrt(mean(x^2) + eps)`
    (RMS normalization, as in RoFormer-v2 with neither scale nor offset).

    Args:
        epsilon: added to the variance; take it from the model config
            (BERT uses 1e-12, not Keras' 1e-3 default).
        center: learn an offset `beta`.
        scale: learn a gain `gamma`.
        zero_mean: subtract the mean (False: RMS normalization).
        conditional: accept `[x, condition]`.
        condition_hidden_units: if set, first map the condition to this size.
        condition_hidden_activation: activation of that map.
        condition_hidden_initializer: initializer of that map.

    Example:
    ```python
    y = LayerNormalization(epsilon=1e-12, name="Embedding-Norm")(x)
    y = LayerNormalization(epsilon=1e-12, conditional=True)([x, cond])
    ```
    """

    def __init__(
        self,
        epsilon=1e-12,
        center=True,
        scale=True,
        conditional=False,
        condition_hidden_units=None,
        condition_hidden_activation="linear",
        condition_hidden_initializer="glorot_uniform",
        zero_mean=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.zero_mean = zero_mean
        self.conditional = conditional
        self.condition_hidden_units = condition_hidden_units
        self.condition_hidden_activation = keras.activations.get(condition_hidden_activation)
        self.condition_hidden_initializer = keras.initializers.get(condition_hidden_initializer)

    def build(self, input_shape):
        if self.conditional:
            if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
                    and isinstance(input_shape[0], (list, tuple))):
                raise ValueError(
                    f"Layer {self.name!r}: the input must be [x, condition] (the layer "
                    f"is conditional), got input shape {input_shape}"
                )
            x_shape, cond_shape = input_shape
        else:
            x_shape = input_shape
        dim = x_shape[-1]
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        if self.conditional:
            cond_dim = cond_shape[-1]
            if self.condition_hidden_units:
                self.hidden_dense = keras.layers.Dense(
                    self.condition_hidden_units,
                    activation=self.condition_hidden_activation,
                    use_bias=False,
                    kernel_initializer=self.condition_hidden_initializer,
                    name="condition_hidden",
                    dtype=self.dtype_policy,
                )
                self.hidden_dense.build(cond_shape)
                cond_dim = self.condition_hidden_units
            if self.scale:
                self.gamma_dense = keras.layers.Dense(
                    dim, use_bias=False, kernel_initializer="zeros", name="gamma_dense",
                    dtype=self.dtype_policy,
                )
                self.gamma_dense.build((None, cond_dim))
            if self.center:
                self.beta_dense = keras.layers.Dense(
                    dim, use_bias=False, kernel_initializer="zeros", name="beta_dense",
                    dtype=self.dtype_policy,
                )
                self.beta_dense.build((None, cond_dim))

    def call(self, inputs):
        if self.conditional:
            x, cond = inputs
            if self.condition_hidden_units:
                cond = self.hidden_dense(cond)
            # A (batch, dim) condition applies to every position.
            for _ in range(len(x.shape) - len(cond.shape)):
                cond = ops.expand_dims(cond, 1)
        else:
            x = inputs
        out_dtype = x.dtype
        x = ops.cast(x, "float32")
        if self.zero_mean:
            x = x - ops.mean(x, axis=-1, keepdims=True)  # two-pass variance: no cancellation
        var = ops.mean(ops.square(x), axis=-1, keepdims=True)
        y = x * ops.rsqrt(var + self.epsilon)
        if self.scale:
            gamma = ops.cast(self.gamma, "float32")
            if self.conditional:
                gamma = gamma + ops.cast(self.gamma_dense(cond), "float32")
            y = y * gamma
        if self.center:
            beta = ops.cast(self.beta, "float32")
            if self.conditional:
                beta = beta + ops.cast(self.beta_dense(cond), "float32")
            y = y + beta
        return ops.cast(y, out_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0] if self.conditional else input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            zero_mean=self.zero_mean,
            conditional=self.conditional,
            condition_hidden_units=self.condition_hidden_units,
            condition_hidden_activation=keras.activations.serialize(
                self.condition_hidden_activation
            ),
            condition_hidden_initializer=keras.initializers.serialize(
                self.condition_hidden_initializer
            ),
        )
        return config
