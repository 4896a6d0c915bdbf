"""Composition: the one list of extensions, the `extend_with_*` factories,
and the serialization that rebuilds a composed class from its config.

A composed class saves the config of its base optimizer plus
`base_optimizer` and `extensions`, under the one registered name
`bert4keras>ExtendedOptimizer` (the loader). Keras resolves a registered
name by table lookup only, so a name per composed class would not load in a
process that has not composed that class; the loader rebuilds any of them
from the recorded extensions, which are the class's stable identity.
"""

import keras

from bert4keras.optimizers.accumulation import _GradientAccumulation
from bert4keras.optimizers.clipping import _GradientClipping, _GradientTransform
from bert4keras.optimizers.decay import _LayerAdaptation, _WeightDecay
from bert4keras.optimizers.ema import _ExponentialMovingAverage
from bert4keras.optimizers.learning_rates import (
    _LayerwiseLR,
    _ParameterWiseLR,
    _PiecewiseLinearLR,
)
from bert4keras.optimizers.lookahead import _Lookahead
from bert4keras.optimizers.pipeline import OptimizerPipeline

_REGISTERED_NAME = "ExtendedOptimizer"
_PACKAGE = "bert4keras"
# Composed classes are reached through the package, wherever they are built.
_PUBLIC_MODULE = "bert4keras.optimizers"

# Every extension, once. Each mixin carries its `_extension_name` (recorded
# in saved configs, so never rename one), its class-name `_suffix` and its
# `_family` (two extensions of a family may not be stacked).
EXTENSIONS = (
    _WeightDecay,
    _LayerAdaptation,
    _PiecewiseLinearLR,
    _LayerwiseLR,
    _ParameterWiseLR,
    _GradientAccumulation,
    _GradientClipping,
    _GradientTransform,
    _Lookahead,
    _ExponentialMovingAverage,
)
_MIXINS = {m._extension_name: m for m in EXTENSIONS}


class ExtendedOptimizer(OptimizerPipeline):
    """Shared base of every `extend_with_*` class (not used on its own): the
    pipeline of `OptimizerPipeline`, saved and loaded with its extensions."""

    def get_config(self):
        config = super().get_config()
        base = self._base_optimizer
        config["base_optimizer"] = {
            "module": base.__module__,
            "class_name": base.__name__,
            "registered_name": keras.saving.get_registered_name(base),
        }
        config["extensions"] = list(self._extensions)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "base_optimizer" not in config or "extensions" not in config:
            raise ValueError(
                "`config` must have 'base_optimizer' and 'extensions' (an "
                f"ExtendedOptimizer config), got keys {sorted(config)}"
            )
        klass = _resolve_base(config.pop("base_optimizer"), custom_objects)
        for extension in config.pop("extensions"):
            if extension not in _MIXINS:
                raise ValueError(
                    f"`extensions` must be among {sorted(_MIXINS)}, "
                    f"got {extension!r}"
                )
            klass = _extend(klass, _MIXINS[extension])
        return super(ExtendedOptimizer, klass).from_config(
            config, custom_objects=custom_objects
        )



# Deserialization resolves every composed class through this one registered
# name; `from_config` then rebuilds the class from the recorded extensions.
keras.saving.register_keras_serializable(_PACKAGE, _REGISTERED_NAME)(
    ExtendedOptimizer
)

def _resolve_base(spec, custom_objects=None):
    registered = spec.get("registered_name")
    klass = None
    if custom_objects and registered in custom_objects:
        klass = custom_objects[registered]
    if klass is None and registered:
        klass = keras.saving.get_registered_object(registered)
    if klass is None and str(spec.get("module", "")).startswith("keras"):
        klass = getattr(keras.optimizers, spec.get("class_name", ""), None)
    if not (isinstance(klass, type) and issubclass(klass, keras.Optimizer)):
        raise TypeError(
            "`base_optimizer` must name a Keras optimizer class, got "
            f"{spec!r}; register it with "
            "`keras.saving.register_keras_serializable` or pass it in "
            "`custom_objects`."
        )
    return klass


def _extend(base, mixin, name=None):
    if not (isinstance(base, type) and issubclass(base, keras.Optimizer)):
        raise TypeError(
            "`BaseOptimizer` must be a keras.optimizers.Optimizer subclass "
            f"(e.g. keras.optimizers.Adam), got {base!r}"
        )
    if issubclass(base, keras.optimizers.LossScaleOptimizer):
        raise TypeError(
            "`BaseOptimizer` must not be a LossScaleOptimizer, got "
            f"{base.__name__}; extend the inner optimizer class, then wrap "
            "the instance in keras.optimizers.LossScaleOptimizer."
        )
    if issubclass(base, ExtendedOptimizer):
        core = base
        for existing in base._extensions:
            if _MIXINS[existing]._family == mixin._family:
                raise ValueError(
                    f"{base.__name__} already has the extension {existing!r}"
                )
    else:
        core = type(
            base.__name__,
            (ExtendedOptimizer, base),
            {"__module__": _PUBLIC_MODULE, "_base_optimizer": base, "_extensions": ()},
        )
    name = name or f"{base.__name__}{mixin._suffix}"
    cls = type(
        name,
        (mixin, core),
        {
            "__module__": _PUBLIC_MODULE,
            "__qualname__": name,
            "__doc__": (mixin.__doc__ or "") + f"\n    Base: {base.__name__}.\n",
            "_extensions": core._extensions + (mixin._extension_name,),
        },
    )
    keras.saving.register_keras_serializable(_PACKAGE, _REGISTERED_NAME)(cls)
    # Registering `cls` also points the name at it; point it back at the
    # loader, so that looking the name up does not depend on which class was
    # composed last.
    keras.saving.register_keras_serializable(_PACKAGE, _REGISTERED_NAME)(
        ExtendedOptimizer
    )
    return cls


def extend_with_weight_decay(BaseOptimizer, name=None):
    """Adds decoupled weight decay (`weight_decay_rate`,
    `exclude_from_weight_decay`). Returns a subclass of `BaseOptimizer`.

    Example:
    >>> AdamW = extend_with_weight_decay(keras.optimizers.Adam, "AdamW")
    >>> opt = AdamW(learning_rate=1e-3, weight_decay_rate=0.01,
    ...             exclude_from_weight_decay=["Norm", "bias"])
    """
    return _extend(BaseOptimizer, _WeightDecay, name)


def extend_with_layer_adaptation(BaseOptimizer, name=None):
    """Adds a LAMB-style trust ratio (`exclude_from_layer_adaptation`).

    Example:
    >>> Lamb = extend_with_layer_adaptation(
    ...     extend_with_weight_decay(keras.optimizers.Adam))
    >>> opt = Lamb(learning_rate=1e-3, exclude_from_layer_adaptation=["Norm"])
    """
    return _extend(BaseOptimizer, _LayerAdaptation, name)


def extend_with_piecewise_linear_lr(BaseOptimizer, name=None):
    """Adds a piecewise linear lr multiplier (`lr_schedule={step: mult}`).

    Example:
    >>> Opt = extend_with_piecewise_linear_lr(keras.optimizers.Adam)
    >>> opt = Opt(learning_rate=1e-3, lr_schedule={1000: 1.0, 10000: 0.1})
    """
    return _extend(BaseOptimizer, _PiecewiseLinearLR, name)


def extend_with_layerwise_lr(BaseOptimizer, name=None):
    """Adds per-variable lr multipliers (`lr_multipliers={pattern: mult}`).

    Example:
    >>> Opt = extend_with_layerwise_lr(keras.optimizers.Adam)
    >>> opt = Opt(learning_rate=1e-3, lr_multipliers={"CRF": 100.0})
    """
    return _extend(BaseOptimizer, _LayerwiseLR, name)


def extend_with_parameter_wise_lr(BaseOptimizer, name=None):
    """bert4keras-compatible alias of `extend_with_layerwise_lr` whose
    argument is `paramwise_lr_schedule={pattern: multiplier}`.

    Example:
    >>> Opt = extend_with_parameter_wise_lr(keras.optimizers.Adam)
    >>> opt = Opt(learning_rate=1e-3, paramwise_lr_schedule={"CRF": 100.0})
    """
    return _extend(BaseOptimizer, _ParameterWiseLR, name)


def extend_with_gradient_accumulation(BaseOptimizer, name=None):
    """Adds gradient accumulation (`grad_accum_steps`).

    Example:
    >>> Opt = extend_with_gradient_accumulation(keras.optimizers.Adam)
    >>> opt = Opt(learning_rate=1e-3, grad_accum_steps=4)
    """
    return _extend(BaseOptimizer, _GradientAccumulation, name)


def extend_with_gradient_clipping(BaseOptimizer, name=None):
    """Adds clipping of the applied gradient (`clip_norm_rules`,
    `clip_value_rules`, `clip_global_norm`).

    Example:
    >>> Opt = extend_with_gradient_clipping(keras.optimizers.Adam)
    >>> opt = Opt(clip_norm_rules={"Embedding-": 1.0}, clip_global_norm=5.0)
    """
    return _extend(BaseOptimizer, _GradientClipping, name)


def extend_with_gradient_transform(BaseOptimizer, name=None):
    """Adds a user function of the applied gradients (`gradient_transform`).

    Example:
    >>> Opt = extend_with_gradient_transform(keras.optimizers.SGD)
    >>> opt = Opt(gradient_transform=lambda gs, vs: [g * 0.5 for g in gs])
    """
    return _extend(BaseOptimizer, _GradientTransform, name)


def extend_with_lookahead(BaseOptimizer, name=None):
    """Adds Lookahead (`steps_per_slow_update`, `slow_step_size`).

    Example:
    >>> Opt = extend_with_lookahead(keras.optimizers.Adam)
    >>> opt = Opt(steps_per_slow_update=5, slow_step_size=0.5)
    """
    return _extend(BaseOptimizer, _Lookahead, name)


def extend_with_exponential_moving_average(BaseOptimizer, name=None):
    """Adds a float32 EMA of the weights (`ema_momentum`) with
    `apply_ema_weights()`, `reset_old_weights()` and `ema_weights()`.

    Example:
    >>> Opt = extend_with_exponential_moving_average(keras.optimizers.Adam)
    >>> opt = Opt(learning_rate=1e-3, ema_momentum=0.999)
    """
    return _extend(BaseOptimizer, _ExponentialMovingAverage, name)
