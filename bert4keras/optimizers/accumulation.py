"""Gradient accumulation over micro-steps."""

from keras import ops

from bert4keras.optimizers._common import _dtype, _positive_int, _read
from bert4keras.optimizers._keras import variable_index


class _GradientAccumulation:
    """Gradient accumulation: one update every `grad_accum_steps` calls.

    The applied gradient is the mean of the accumulated micro-batch
    gradients, so with equal micro-batches the update equals one step on
    the concatenated batch. `optimizer.iterations` counts updates.
    Accumulators are float32 for float16/bfloat16 variables and follow the
    variable dtype otherwise.

    Args:
        grad_accum_steps: int >= 1.
    """

    _extension_name = "gradient_accumulation"
    _suffix = "WithGradientAccumulation"
    _family = "gradient_accumulation"

    def __init__(self, *args, grad_accum_steps=2, **kw):
        super().__init__(*args, **kw)
        self.grad_accum_steps = _positive_int("grad_accum_steps", grad_accum_steps)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if self.grad_accum_steps > 1:
            self._accumulators = [
                self._add_slot(v, "accumulated_grad") for v in var_list
            ]
            self._micro_step = self.add_variable(
                shape=(),
                dtype="int",
                initializer="zeros",
                aggregation="only_first_replica",
                name="micro_step",
            )

    def _apply_aggregated(self, grads, variables):
        steps = self.grad_accum_steps
        if steps == 1:
            return super()._apply_aggregated(grads, variables)
        accumulators = [
            self._accumulators[variable_index(self, v)] for v in variables
        ]

        def accumulate(grads):
            self._for_each_variable(_add_to, accumulators, grads)
            self._micro_step.assign_add(1)

        def update(grads):
            total = [
                (_read(acc) + ops.cast(g, acc.dtype)) / float(steps)
                for g, acc in zip(grads, accumulators)
            ]
            self._for_each_variable(_reset, accumulators)
            self._micro_step.assign(0)
            super(_GradientAccumulation, self)._apply_aggregated(total, variables)

        self._cond(
            lambda: ops.greater_equal(self._micro_step + 1, steps),
            update,
            accumulate,
            (list(grads),),
        )

    def get_config(self):
        config = super().get_config()
        config["grad_accum_steps"] = self.grad_accum_steps
        return config


def _add_to(accumulator, gradient):
    accumulator.assign_add(ops.cast(gradient, _dtype(accumulator)))


def _reset(accumulator):
    accumulator.assign(ops.zeros(accumulator.shape, _dtype(accumulator)))
