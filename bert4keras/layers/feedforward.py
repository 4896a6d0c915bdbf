"""Position-wise feed-forward block."""
import keras

from bert4keras import backend
from bert4keras.layers.remat import StaticArgumentsRemat


@keras.saving.register_keras_serializable(package="bert4keras")
class FeedForward(StaticArgumentsRemat, keras.layers.Layer):
    """Two dense maps, `units` wide in the middle: `o(act(i0(x)))`.

    With `gated=True` a third, linear map gates the activation:
    `o(act(i0(x)) * i1(x))` (T5.1.1's gated-GELU, `wi_0`, `wi_1`, `wo`).

    Args:
        units: the intermediate size.
        activation: a config activation name (`'gelu'` is the exact erf form,
            see `bert4keras.backend.get_activation`) or a callable.
        use_bias: whether the maps have biases.
        kernel_initializer: initializer of the kernels.
        gated: add the linear gate `i1`.

    Example:
    ```python
    y = FeedForward(3072, activation="gelu", name="Transformer-0-FeedForward")(x)
    ```
    """

    def __init__(
        self, units, activation="gelu", use_bias=True, kernel_initializer="glorot_uniform", gated=False,
        **kwargs
    ):
        super().__init__(**kwargs)
        self.gated = bool(gated)
        self.units = int(units)
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.i0 = keras.layers.Dense(
            self.units,
            activation=backend.get_activation(activation),
            use_bias=use_bias,
            kernel_initializer=self.kernel_initializer,
            name="i0",
            dtype=self.dtype_policy,
        )
        self.o = None
        self.i1 = None
        if self.gated:
            self.i1 = keras.layers.Dense(self.units, use_bias=use_bias, kernel_initializer=self.kernel_initializer,
                                         name="i1", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.o = keras.layers.Dense(
            input_shape[-1],
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            name="o",
            dtype=self.dtype_policy,
        )
        self.i0.build(input_shape)
        if self.i1 is not None:
            self.i1.build(input_shape)
        self.o.build(tuple(input_shape[:-1]) + (self.units,))

    def call(self, inputs):
        if self.i1 is not None:
            return self.o(self.i0(inputs) * self.i1(inputs))
        return self.o(self.i0(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        activation = self.activation
        if callable(activation):
            activation = keras.saving.serialize_keras_object(activation)
        config.update(
            units=self.units,
            activation=activation,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        if self.gated:  # configs of earlier files stay the same
            config["gated"] = True
        return config
