"""Lookahead slow weights."""

from keras import ops

from bert4keras.optimizers._common import _dtype, _positive_int, _read, _unit_float
from bert4keras.optimizers._keras import iterations_variable


class _Lookahead:
    """Lookahead (Zhang et al., 2019): slow weights that every
    `steps_per_slow_update` updates move `slow_step_size` of the way to the
    fast weights, which then restart from them. Slow weights are float32.

    Args:
        steps_per_slow_update: int >= 1 (k).
        slow_step_size: float in [0, 1] (alpha).
    """

    _extension_name = "lookahead"
    _suffix = "WithLookahead"
    _family = "lookahead"

    def __init__(self, *args, steps_per_slow_update=5, slow_step_size=0.5, **kw):
        super().__init__(*args, **kw)
        self.steps_per_slow_update = _positive_int(
            "steps_per_slow_update", steps_per_slow_update
        )
        self.slow_step_size = _unit_float("slow_step_size", slow_step_size)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._slow_weights = [self._add_slot(v, "slow") for v in var_list]

    def _needs_old_value(self, index):
        return True

    def _step_values(self):
        values = super()._step_values()
        values["lookahead_first"] = ops.equal(iterations_variable(self), 0)
        done = iterations_variable(self) + 1  # updates including this one
        values["lookahead_sync"] = ops.equal(done % self.steps_per_slow_update, 0)
        return values

    def _lookahead_update(self, variable, old, index, step):
        super()._lookahead_update(variable, old, index, step)
        slow = self._slow_weights[index]
        # The slow weights start from the weights before the first update.
        slow_value = ops.cond(
            step["lookahead_first"],
            lambda: ops.cast(old, _dtype(slow)),
            lambda: _read(slow),
        )
        sync = step["lookahead_sync"]
        fast = _read(variable)
        moved = slow_value + self.slow_step_size * (
            ops.cast(fast, slow_value.dtype) - slow_value
        )
        self.assign(slow, ops.where(sync, moved, slow_value))
        self.assign(variable, ops.where(sync, ops.cast(moved, fast.dtype), fast))

    def get_config(self):
        config = super().get_config()
        config["steps_per_slow_update"] = self.steps_per_slow_update
        config["slow_step_size"] = self.slow_step_size
        return config
