"""Decoupled weight decay and LAMB-style layer adaptation."""

import numpy as np
from keras import ops

from bert4keras.optimizers._common import (
    _check_pattern_list,
    _dtype,
    _norm,
    _not_excluded,
    _read,
)
from bert4keras.optimizers._keras import variable_index


class _WeightDecay:
    """Decoupled weight decay: `w -= lr * weight_decay_rate * w` each update.

    Args:
        weight_decay_rate: float >= 0.
        exclude_from_weight_decay: list of regular expressions; variables
            whose path matches one are not decayed (e.g. `["Norm", "bias"]`).
    """

    _extension_name = "weight_decay"
    _suffix = "WithWeightDecay"
    _family = "weight_decay"

    def __init__(
        self, *args, weight_decay_rate=0.01, exclude_from_weight_decay=None, **kw
    ):
        super().__init__(*args, **kw)
        rate = float(weight_decay_rate)
        if not np.isfinite(rate) or rate < 0:
            raise ValueError(
                f"`weight_decay_rate` must be a number >= 0, got {rate}"
            )
        self.weight_decay_rate = rate
        self.exclude_from_weight_decay = _check_pattern_list(
            "exclude_from_weight_decay", exclude_from_weight_decay
        )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        included = _not_excluded(
            "exclude_from_weight_decay", self.exclude_from_weight_decay, var_list
        )
        self._decay_mask = [self.weight_decay_rate > 0 and i for i in included]

    def _update_variable(self, variable, gradient, learning_rate):
        if self._decay_mask[variable_index(self, variable)]:
            decay = ops.cast(learning_rate * self.weight_decay_rate, _dtype(variable))
            self.assign_sub(variable, _read(variable) * decay)
        super()._update_variable(variable, gradient, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["weight_decay_rate"] = self.weight_decay_rate
        config["exclude_from_weight_decay"] = list(self.exclude_from_weight_decay)
        return config


class _LayerAdaptation:
    """LAMB-style trust ratio on each variable's update.

    The whole update `dw` of a variable (the base optimizer's step plus
    weight decay) is rescaled to `dw * ||w|| / ||dw / lr||`, so each layer
    moves by `lr * ||w||`, where `lr` includes any layer-wise multiplier.

    Args:
        exclude_from_layer_adaptation: list of regular expressions for
            variables that keep the plain update (e.g. `["Norm", "bias"]`).
    """

    _extension_name = "layer_adaptation"
    _suffix = "WithLayerAdaptation"
    _family = "layer_adaptation"

    def __init__(self, *args, exclude_from_layer_adaptation=None, **kw):
        super().__init__(*args, **kw)
        self.exclude_from_layer_adaptation = _check_pattern_list(
            "exclude_from_layer_adaptation", exclude_from_layer_adaptation
        )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._adapt_mask = _not_excluded(
            "exclude_from_layer_adaptation",
            self.exclude_from_layer_adaptation,
            var_list,
        )

    def _needs_old_value(self, index):
        return self._adapt_mask[index] or super()._needs_old_value(index)

    def _adapt_update(self, variable, old, learning_rate, index):
        super()._adapt_update(variable, old, learning_rate, index)
        if not self._adapt_mask[index]:
            return
        delta = ops.cast(_read(variable), "float32") - ops.cast(old, "float32")
        w_norm = _norm(old)
        d_norm = _norm(delta)
        lr = ops.cast(learning_rate, "float32")
        ok = ops.logical_and(w_norm > 0, d_norm > 0)
        ratio = ops.where(
            ok, w_norm * lr / ops.where(ok, d_norm, ops.ones_like(d_norm)), 1.0
        )
        new = ops.cast(old, "float32") + delta * ratio
        self.assign(variable, ops.cast(new, _dtype(variable)))

    def get_config(self):
        config = super().get_config()
        config["exclude_from_layer_adaptation"] = list(
            self.exclude_from_layer_adaptation
        )
        return config
