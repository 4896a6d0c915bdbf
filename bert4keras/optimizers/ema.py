"""Exponential moving average of the weights, and a callback that
evaluates with it."""

import contextlib

import keras
from keras import ops

from bert4keras.optimizers._common import _dtype, _read, _unit_float
from bert4keras.optimizers._keras import built_variables, iterations_variable


class _ExponentialMovingAverage:
    """Exponential moving average of the weights, kept in float32.

    After every update `avg = m * avg + (1 - m) * w`; the first update sets
    `avg = w` (Keras' convention). Swap the averages in for evaluation with
    `apply_ema_weights()` / `reset_old_weights()`, the `ema_weights()` context
    manager, or the `EMAEvaluationCallback` callback.

    Args:
        ema_momentum: float in [0, 1] (m).
    """

    _extension_name = "exponential_moving_average"
    _suffix = "WithEMA"
    _family = "exponential_moving_average"

    def __init__(self, *args, ema_momentum=0.999, **kw):
        super().__init__(*args, **kw)
        self.ema_momentum = _unit_float("ema_momentum", ema_momentum)
        self._old_weights = None

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._ema_average = [self._add_slot(v, "ema") for v in var_list]

    def _step_values(self):
        values = super()._step_values()
        # Momentum 0 on the first update: the average starts at w_1.
        values["ema_momentum"] = self.ema_momentum * ops.cast(
            iterations_variable(self) > 0, "float32"
        )
        return values

    def _ema_update(self, variable, index, step):
        super()._ema_update(variable, index, step)
        average = self._ema_average[index]
        m = step["ema_momentum"]
        value = ops.cast(_read(variable), _dtype(average))
        self.assign(average, m * _read(average) + (1.0 - m) * value)

    @property
    def ema_variables(self):
        """The float32 averages, one per trainable variable."""
        self._check_built("ema_variables")
        return list(self._ema_average)

    def _check_built(self, what):
        if not self.built:
            raise ValueError(
                f"`{what}`: the optimizer has not been built yet (train for a "
                "step or call `optimizer.build(model.trainable_variables)`)."
            )

    def apply_ema_weights(self):
        """Copies the averages into the model, keeping the trained weights
        so that `reset_old_weights()` can put them back bit-exactly."""
        self._check_built("apply_ema_weights")
        if self._old_weights is not None:
            raise ValueError(
                "EMA weights are already applied; call `reset_old_weights()` "
                "first."
            )
        variables = built_variables(self)
        self._old_weights = [ops.convert_to_numpy(v.value) for v in variables]
        if int(ops.convert_to_numpy(iterations_variable(self))) == 0:
            return  # no update yet: the average of nothing is the weights
        for variable, average in zip(variables, self._ema_average):
            # A numpy copy, so that the model variable never shares a buffer
            # with the average (JAX donates model buffers in fit/evaluate).
            dtype = _dtype(variable)
            if dtype == _dtype(average):
                value = ops.convert_to_numpy(average.value).copy()
            else:
                value = ops.cast(average.value, dtype)
            variable.assign(value)

    def reset_old_weights(self):
        """Restores the weights saved by `apply_ema_weights()`."""
        if self._old_weights is None:
            raise ValueError(
                "`reset_old_weights()` called without `apply_ema_weights()`."
            )
        for variable, value in zip(built_variables(self), self._old_weights):
            variable.assign(value)
        self._old_weights = None

    @contextlib.contextmanager
    def ema_weights(self):
        """Context manager: EMA weights inside, trained weights after.

        Example:
        >>> with optimizer.ema_weights():  # doctest: +SKIP
        ...     model.evaluate(x_val, y_val)
        """
        self.apply_ema_weights()
        try:
            yield self
        finally:
            self.reset_old_weights()

    def get_config(self):
        config = super().get_config()
        config["ema_momentum"] = self.ema_momentum
        return config


class EMAEvaluationCallback(keras.callbacks.Callback):
    """Evaluates with the EMA weights at the end of each epoch.

    The trained weights are restored bit-exactly afterwards, so training
    continues from them. Metrics are added to the epoch logs with `prefix`.

    Args:
        validation_data: what `model.evaluate` takes as `x` (a dataset, or a
            tuple `(x, y)` / `(x, y, sample_weight)`).
        optimizer: the optimizer with EMA; defaults to the model's (inside a
            `LossScaleOptimizer` if there is one).
        prefix: prefix of the logged metric names.
        **evaluate_kwargs: passed to `model.evaluate` (e.g. `batch_size`).

    Example:
    >>> cb = EMAEvaluationCallback((x_val, y_val))  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3, callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(self, validation_data, optimizer=None, prefix="ema_", **evaluate_kwargs):
        super().__init__()
        self.validation_data = validation_data
        self.optimizer = optimizer
        self.prefix = prefix
        self.evaluate_kwargs = evaluate_kwargs
        self.history = []

    def _ema_optimizer(self):
        optimizer = self.optimizer or self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if not hasattr(optimizer, "apply_ema_weights"):
            raise ValueError(
                "EMAEvaluationCallback needs an optimizer built with "
                f"extend_with_exponential_moving_average, got {optimizer!r}"
            )
        return optimizer

    def on_epoch_end(self, epoch, logs=None):
        data = self.validation_data
        if isinstance(data, tuple):
            x, y = data[0], data[1] if len(data) > 1 else None
            kwargs = dict(self.evaluate_kwargs)
            if len(data) > 2:
                kwargs["sample_weight"] = data[2]
        else:
            x, y, kwargs = data, None, dict(self.evaluate_kwargs)
        with self._ema_optimizer().ema_weights():
            results = self.model.evaluate(
                x, y, verbose=0, return_dict=True, **kwargs
            )
        results = {self.prefix + k: float(v) for k, v in results.items()}
        self.history.append(results)
        if logs is not None:
            logs.update(results)
