"""Composition: the one list of extensions, the `extend_with_*` factories,
and the serialization that rebuilds a composed class from its config.

Names. Each composed class has its own registered name, derived from its
base optimizer and its ordered extensions only (so the same composition
gets the same name in every process, whatever the class is called):
`bert4keras>Adam+weight_decay+exponential_moving_average`. Keras'
registry resolves that name to the class (`keras.saving.
get_registered_object`), and a config loaded in a process that composed
the same stack rebuilds an instance of that very class.

Saved configs record the loader's name, `bert4keras>ExtendedOptimizer`,
plus `base_optimizer` and `extensions`. Keras resolves a registered name by
exact table lookup (and imports modules only for its own packages), so a
per-class name in a file would not load in a process that has not composed
that class; the loader rebuilds any composition from the recorded
extensions, which is also how files written before the per-class names
load.
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

_LOADER_NAME = "ExtendedOptimizer"
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
    pipeline of `OptimizerPipeline`, saved and loaded with its extensions.
    `registered_name` is each composed class's own name in Keras' registry."""

    registered_name = f"{_PACKAGE}>{_LOADER_NAME}"

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
        base = _resolve_base(config.pop("base_optimizer"), custom_objects)
        extensions = tuple(config.pop("extensions"))
        for extension in extensions:
            if extension not in _MIXINS:
                raise ValueError(
                    f"`extensions` must be among {sorted(_MIXINS)}, "
                    f"got {extension!r}"
                )
        # A class this process composed with the same stack, else a new one.
        klass = keras.saving.get_registered_object(registered_name_of(base, extensions))
        if not (
            isinstance(klass, type)
            and issubclass(klass, ExtendedOptimizer)
            and klass._base_optimizer is base
            and klass._extensions == extensions
        ):
            klass = base
            for extension in extensions:
                klass = _extend(klass, _MIXINS[extension])
        return super(ExtendedOptimizer, klass).from_config(
            config, custom_objects=custom_objects
        )


# Saved configs name the loader; `from_config` rebuilds the class from the
# recorded extensions.
keras.saving.register_keras_serializable(_PACKAGE, _LOADER_NAME)(ExtendedOptimizer)


def registered_name_of(base, extensions):
    """The registered name of the composition of `extensions` (in order) on
    the optimizer class `base`, e.g. `bert4keras>Adam+weight_decay`.

    Example:
    >>> registered_name_of(keras.optimizers.Adam, ["weight_decay"])
    'bert4keras>Adam+weight_decay'
    """
    base_name = keras.saving.get_registered_name(base).replace(">", ".")
    return f"{_PACKAGE}>" + "+".join((base_name,) + tuple(extensions))


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
                    f"`BaseOptimizer` must not have a {mixin._family} extension "
                    f"yet, got {base.__name__}, which already has the extension "
                    f"{existing!r}; add each extension once."
                )
    else:
        core = _known(base, (), base.__name__, ExtendedOptimizer) or _register(
            type(
                base.__name__,
                (ExtendedOptimizer, base),
                {
                    "__module__": _PUBLIC_MODULE,
                    "_base_optimizer": base,
                    "_extensions": (),
                    "registered_name": registered_name_of(base, ()),
                },
            )
        )
    name = name or f"{base.__name__}{mixin._suffix}"
    extensions = core._extensions + (mixin._extension_name,)
    known = _known(core._base_optimizer, extensions, name, core)
    if known is not None:
        return known  # the same composition of the same classes: the same class
    return _register(
        type(
            name,
            (mixin, core),
            {
                "__module__": _PUBLIC_MODULE,
                "__qualname__": name,
                "__doc__": (mixin.__doc__ or "") + f"\n    Base: {base.__name__}.\n",
                "_extensions": extensions,
                "registered_name": registered_name_of(core._base_optimizer, extensions),
            },
        )
    )


def _known(base, extensions, name, parent):
    """The registered class `name` of this composition on `parent`, if any."""
    known = keras.saving.get_registered_object(registered_name_of(base, extensions))
    if known is not None and known.__name__ == name and parent in known.__bases__:
        return known
    return None


def _register(cls):
    # Looked up by its own name; the last class composed with a stack wins.
    keras.saving.get_custom_objects()[cls.registered_name] = cls
    # Serialized under the loader's name (see the module docstring). Keras
    # sets a class's serialized name only together with that name's lookup
    # entry, so point the entry back at the loader afterwards.
    keras.saving.register_keras_serializable(_PACKAGE, _LOADER_NAME)(cls)
    keras.saving.register_keras_serializable(_PACKAGE, _LOADER_NAME)(ExtendedOptimizer)
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
