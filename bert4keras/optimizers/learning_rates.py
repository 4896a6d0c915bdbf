"""Learning rates: a piecewise linear schedule of the update step, and
per-variable (layer-wise) multipliers."""

import re

import numpy as np
from keras import ops

from bert4keras.optimizers._common import (
    _check_patterns,
    _first_match,
    _positive_int,
    _variable_path,
    _warn_unmatched,
)
from bert4keras.optimizers._keras import iterations_variable


def piecewise_linear(step, schedule, from_zero=True):
    """Piecewise linear function of `step` through the points of `schedule`.

    Args:
        step: scalar tensor (e.g. `optimizer.iterations`).
        schedule: dict `{step: value}`. Between two keys the value is
            interpolated linearly; after the last key it stays constant.
        from_zero: if True and `schedule` has no key 0, the curve starts at
            value 0 at step 0 (a warmup).

    Example:
    >>> float(piecewise_linear(50, {100: 1.0, 200: 0.1}))
    0.5
    """
    points = sorted((int(k), float(v)) for k, v in schedule.items())
    if from_zero and points[0][0] != 0:
        points = [(0, 0.0)] + points
    t = ops.cast(step, "float32")
    value = ops.ones_like(t) * points[0][1]
    for (t0, v0), (t1, v1) in zip(points[:-1], points[1:]):
        segment = v0 + (v1 - v0) * (t - t0) / float(t1 - t0)
        value = ops.where(t >= t0, segment, value)
    return ops.where(t >= points[-1][0], points[-1][1], value)


class _PiecewiseLinearLR:
    """Learning rate times a piecewise linear multiplier of the update step.

    Args:
        lr_schedule: dict `{step: multiplier}`; `{1000: 1.0, 10000: 0.1}`
            warms up linearly from 0 to 1 over 1000 update steps, then decays
            to 0.1 at step 10000 and stays there. Steps count updates (with
            gradient accumulation, one per `grad_accum_steps` micro-steps);
            the multiplier of an update is read at the number of updates done
            before it.
    """

    _extension_name = "piecewise_linear_lr"
    _suffix = "WithPiecewiseLinearLR"
    _family = "piecewise_linear_lr"

    def __init__(self, *args, lr_schedule=None, **kw):
        super().__init__(*args, **kw)
        if lr_schedule is None:
            lr_schedule = {0: 1.0}
        if not isinstance(lr_schedule, dict) or not lr_schedule:
            raise ValueError(
                "`lr_schedule` must be a non-empty dict {step: multiplier}, "
                f"got {lr_schedule!r}"
            )
        schedule = {}
        for step, mult in lr_schedule.items():
            try:
                step_int = int(step)
            except (TypeError, ValueError):
                raise ValueError(
                    f"`lr_schedule`: step {step!r} is not an integer"
                ) from None
            if step_int < 0 or str(step_int) != str(step).strip():
                raise ValueError(
                    f"`lr_schedule`: step {step!r} must be an integer >= 0"
                )
            if step_int in schedule:
                raise ValueError(f"`lr_schedule`: step {step_int} given twice")
            mult = float(mult)
            if not np.isfinite(mult) or mult < 0:
                raise ValueError(
                    f"`lr_schedule[{step_int}]` must be a number >= 0, got {mult}"
                )
            schedule[step_int] = mult
        self.lr_schedule = dict(sorted(schedule.items()))

    def _learning_rate_for_update(self):
        return super()._learning_rate_for_update() * piecewise_linear(
            iterations_variable(self), self.lr_schedule
        )

    def get_config(self):
        config = super().get_config()
        config["lr_schedule"] = dict(self.lr_schedule)
        return config


class _LayerwiseLR:
    """Per-variable learning-rate multipliers.

    Args:
        lr_multipliers: dict `{pattern: multiplier}`; a variable whose path
            (e.g. `'Transformer-3-FeedForward/i0/kernel'`) matches a regular
            expression (`re.search`) gets `lr * multiplier`. The first
            matching pattern, in dict order, wins; other variables keep `lr`.
            See `layerwise_lr_decay` for ELECTRA-style decay.
    """

    _extension_name = "layerwise_lr"
    _suffix = "WithLayerwiseLR"
    _family = "layerwise_lr"
    _arg_name = "lr_multipliers"

    def __init__(self, *args, lr_multipliers=None, **kw):
        super().__init__(*args, **kw)
        self.lr_multipliers = _check_patterns(self._arg_name, lr_multipliers)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        paths = [_variable_path(v) for v in var_list]
        _warn_unmatched(self._arg_name, list(self.lr_multipliers), paths)
        self._lr_multiplier = []
        for path in paths:
            pattern = _first_match(self.lr_multipliers, path)
            self._lr_multiplier.append(
                1.0 if pattern is None else self.lr_multipliers[pattern]
            )

    def _variable_lr_multiplier(self, index):
        return self._lr_multiplier[index] * super()._variable_lr_multiplier(index)

    def get_config(self):
        config = super().get_config()
        config[self._arg_name] = dict(self.lr_multipliers)
        return config


class _ParameterWiseLR(_LayerwiseLR):
    """bert4keras' name for `extend_with_layerwise_lr`.

    Args:
        paramwise_lr_schedule: dict `{pattern: multiplier}`, as
            `lr_multipliers` of `extend_with_layerwise_lr`.
    """

    _extension_name = "parameter_wise_lr"
    _suffix = "WithParameterWiseLR"
    _arg_name = "paramwise_lr_schedule"

    def __init__(self, *args, paramwise_lr_schedule=None, **kw):
        super().__init__(*args, lr_multipliers=None, **kw)
        self.lr_multipliers = _check_patterns(
            "paramwise_lr_schedule", paramwise_lr_schedule
        )

    @property
    def paramwise_lr_schedule(self):
        return self.lr_multipliers


def layerwise_lr_decay(model, decay, prefix=None, num_layers=None):
    """ELECTRA-style layer-wise learning-rate decay for a bert4keras model.

    Depths come from the model's published structure
    (`bert4keras.models.structure_of`), not from layer names: depth 0 is the
    embedding stage, depth `i + 1` is block i, and everything else (final
    norm, pooler, MLM head, task heads) is depth `L + 1`, where L is the
    number of blocks. A variable at depth d gets the multiplier
    `decay ** (L + 1 - d)`: the heads train at the full rate, the top block
    at `decay`, the embeddings at `decay ** (L + 1)`. A layer used at several
    depths gets the multiplier of the highest: ALBERT's shared block trains
    at the top block's `decay`, and the token embedding (also the tied MLM
    output) at the embeddings' rate.

    Args:
        model: a model built by `build_transformer_model` (or its builder).
        decay: float in (0, 1].
        prefix: unused; kept for compatibility (the structure knows it).
        num_layers: unused unless given; then it must equal L.

    Returns:
        dict `{pattern: multiplier}` for `lr_multipliers`, one pattern per
        layer with trainable weights (`'^<layer name>/'`).

    Example:
    >>> multipliers = layerwise_lr_decay(model, 0.8)  # doctest: +SKIP
    >>> opt = extend_with_layerwise_lr(keras.optimizers.Adam)(
    ...     learning_rate=1e-4, lr_multipliers=multipliers)  # doctest: +SKIP
    """
    from bert4keras.models import builder_of

    decay = float(decay)
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"`decay` must be in (0, 1], got {decay}")
    builder = builder_of(model)
    structure = builder.structure
    depth_count = len(structure.blocks)
    if num_layers is not None and _positive_int("num_layers", num_layers) != depth_count:
        raise ValueError(
            f"`num_layers` must equal the model's {depth_count} blocks, got {num_layers}"
        )
    depth = {}
    for name in structure.embeddings:
        depth[name] = 0
    for index, names in enumerate(structure.blocks):
        for name in names:
            depth[name] = index + 1  # later blocks overwrite: a shared layer gets the highest
    multipliers = {}
    for name, d in depth.items():
        if builder.layers[name].trainable_weights:
            multipliers["^" + re.escape(name) + "/"] = decay ** (depth_count + 1 - d)
    return multipliers
