"""Composable optimizer extensions in the style of bert4keras.

Each `extend_with_*` factory takes a Keras optimizer class and returns a
subclass with one more feature; the factories compose in any order:

```python
AdamEMA = extend_with_exponential_moving_average(
    extend_with_gradient_accumulation(
        extend_with_layerwise_lr(extend_with_weight_decay(keras.optimizers.Adam))
    )
)
optimizer = AdamEMA(
    learning_rate=1e-4,
    weight_decay_rate=0.01,
    exclude_from_weight_decay=["Norm", "bias"],
    lr_multipliers=layerwise_lr_decay(model, 0.8),
    grad_accum_steps=4,
    ema_momentum=0.999,
)
```

All extensions share one update pipeline (see `apply`):

1. gradients are summed across replicas first (under `tf.distribute`);
2. they are accumulated for `grad_accum_steps` micro-steps;
3. the accumulated gradient is clipped / transformed;
4. each variable gets its update (learning-rate multipliers, weight decay,
   layer adaptation, the base optimizer's `update_step`, lookahead, EMA).

So clipping always sees the gradient that is actually applied, and
`optimizer.iterations` (and so every learning-rate schedule) counts update
steps, not micro-steps.

A composed class serializes to a config that records the base optimizer
and the list of extensions; loading it (also inside a saved `.keras` model)
rebuilds the same class, so no class has to be registered by hand.
"""

import contextlib
import re
import warnings

import keras
import numpy as np
from keras import ops

_REGISTERED_NAME = "ExtendedOptimizer"
_PACKAGE = "bert4keras"


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


def _variable_path(variable):
    return getattr(variable, "path", None) or variable.name


def _dtype(variable):
    return keras.backend.standardize_dtype(variable.dtype)


def _read(variable):
    """A snapshot tensor of the variable's value.

    On TensorFlow `keras.Variable.value` is the live `tf.Variable` (and
    `ops.convert_to_tensor` passes it through), which would follow later
    in-place updates; `read_value()` reads it now.
    """
    if isinstance(variable, keras.Variable):
        variable = variable.value
    read_value = getattr(variable, "read_value", None)
    if read_value is not None:
        return read_value()
    return ops.convert_to_tensor(variable)


def _norm(x):
    return ops.sqrt(ops.sum(ops.square(ops.cast(x, "float32"))))


def _is_low_precision(dtype):
    return dtype in ("float16", "bfloat16")


def _check_patterns(arg_name, patterns):
    """Validates `{pattern: number}` mappings and compiles the patterns."""
    if patterns is None:
        return {}
    if not isinstance(patterns, dict):
        raise TypeError(
            f"`{arg_name}` must be a dict {{pattern: number}}, "
            f"got {type(patterns).__name__}: {patterns!r}"
        )
    out = {}
    for pattern, value in patterns.items():
        if not isinstance(pattern, str):
            raise TypeError(
                f"`{arg_name}`: patterns must be strings, got {pattern!r}"
            )
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(
                f"`{arg_name}`: invalid regular expression {pattern!r}: {e}"
            ) from None
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"`{arg_name}[{pattern!r}]` must be a number, got {value!r}"
            ) from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(
                f"`{arg_name}[{pattern!r}]` must be a finite number >= 0, "
                f"got {value}"
            )
        out[pattern] = value
    return out


def _check_pattern_list(arg_name, patterns):
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns)
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(
                f"`{arg_name}`: patterns must be strings, got {pattern!r}"
            )
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(
                f"`{arg_name}`: invalid regular expression {pattern!r}: {e}"
            ) from None
    return patterns


def _first_match(patterns, path):
    for pattern in patterns:
        if re.search(pattern, path):
            return pattern
    return None


def _warn_unmatched(arg_name, patterns, paths):
    for pattern in patterns:
        if not any(re.search(pattern, path) for path in paths):
            warnings.warn(
                f"`{arg_name}`: pattern {pattern!r} matches no variable of "
                "this optimizer; check the spelling against the variable "
                "paths (e.g. 'Transformer-0-FeedForward/i0/kernel').",
                stacklevel=4,
            )


def _positive_int(arg_name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{arg_name}` must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{arg_name}` must be >= {minimum}, got {value}")
    return int(value)


def _unit_float(arg_name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{arg_name}` must be a number in [0, 1], got {value!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{arg_name}` must be in [0, 1], got {value}")
    return value


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


# ----------------------------------------------------------------------------
# tf.distribute plumbing (TensorFlow backend only)
# ----------------------------------------------------------------------------


def _distribution_mode():
    """None (no strategy), "replica" or "cross" (tf.distribute contexts)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return None
    if tf.distribute.in_cross_replica_context():
        return "cross"
    return "replica"


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


# ----------------------------------------------------------------------------
# The shared core
# ----------------------------------------------------------------------------


class ExtendedOptimizer:
    """Shared core of every `extend_with_*` class (not used on its own).

    It replaces `apply` with a pipeline of fixed stages, each overridden
    by at most one extension, so the result does not depend on the order in
    which the factories were composed:

    - `_apply_aggregated(grads, variables)`: one call per `apply`, with the
      gradients summed over replicas (gradient accumulation);
    - `_transform_gradients(grads, variables)`: the gradients about to be
      applied, pure computation (clipping, user transforms);
    - `_learning_rate_for_update()`: the global learning rate of this update
      (piecewise linear schedule);
    - `_variable_lr_multiplier(index)`: a per-variable factor (layer-wise lr);
    - then, for each variable (once per device under `tf.distribute`):
      `_update_variable` (weight decay, the base optimizer's `update_step`),
      `_adapt_update` (layer adaptation), `_lookahead_update`, `_ema_update`.
    """

    _extensions = ()
    _base_optimizer = None

    def __init__(self, *args, **kwargs):
        for arg, alternative in (
            ("use_ema", "extend_with_exponential_moving_average"),
            ("gradient_accumulation_steps", "extend_with_gradient_accumulation"),
        ):
            if kwargs.get(arg):
                raise ValueError(
                    f"`{arg}` (Keras' built-in) is not supported by "
                    f"{type(self).__name__}; use bert4keras.optimizers."
                    f"{alternative} instead."
                )
        super().__init__(*args, **kwargs)
        lr = self._learning_rate
        if isinstance(lr, keras.Variable):
            lr = float(keras.ops.convert_to_numpy(lr))
            if not np.isfinite(lr) or lr < 0:
                raise ValueError(
                    f"`learning_rate` must be a finite number >= 0, got {lr}"
                )

    # -- building ------------------------------------------------------------

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Keras' own `weight_decay` (e.g. AdamW) is applied in
        # `_update_variable` so that it uses the per-variable learning rate.
        self._keras_decay = [
            bool(self.weight_decay) and self._use_weight_decay(v)
            for v in var_list
        ]
        self._has_constraint = [
            getattr(v, "constraint", None) is not None for v in var_list
        ]

    def _add_slot(self, variable, name, float32=True):
        """A zero-initialized optimizer variable shaped like `variable`.

        Low-precision variables get float32 slots when `float32` is True.
        Slots start at zero rather than from the variable's value because
        Keras may build the optimizer inside an XLA-compiled function, where
        a variable initializer may not read another variable.
        """
        initializer = "zeros"
        dtype = _dtype(variable)
        if float32 and _is_low_precision(dtype):
            return self.add_variable(
                shape=variable.shape,
                initializer=initializer,
                dtype="float32",
                name=f"{_variable_path(variable).replace('/', '_')}_{name}",
            )
        return self.add_variable_from_reference(
            variable, name=name, initializer=initializer
        )

    # -- the pipeline ----------------------------------------------------------

    def apply(self, grads, trainable_variables=None):
        """Applies `grads` to `trainable_variables` (see the module docstring
        for the order of the steps); builds the optimizer on first use."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `trainable_variables`, the "
                    "optimizer must already be built; call "
                    "`optimizer.build(trainable_variables)` first."
                )
            trainable_variables = list(self._trainable_variables)
            if len(grads) != len(trainable_variables):
                raise ValueError(
                    f"Got {len(grads)} gradients for an optimizer built on "
                    f"{len(trainable_variables)} variables."
                )
        else:
            trainable_variables = list(trainable_variables)
            if len(grads) != len(trainable_variables):
                raise ValueError(
                    f"Got {len(grads)} gradients for "
                    f"{len(trainable_variables)} variables."
                )
            if not self.built:
                with keras.name_scope(self.name, caller=self):
                    self.build(trainable_variables)
                self.built = True
            self._check_variables_are_known(trainable_variables)

        with keras.name_scope(self.name, caller=self):
            pairs = [(g, v) for g, v in zip(grads, trainable_variables)]
            missing = [_variable_path(v) for g, v in pairs if g is None]
            pairs = [(g, v) for g, v in pairs if g is not None]
            if not pairs:
                raise ValueError("No gradients provided for any variable.")
            if missing:
                warnings.warn(
                    f"Gradients do not exist for variables {missing} when "
                    "minimizing the loss.",
                    stacklevel=2,
                )
            # Float8 scaling variables take their "gradient" as new value.
            for g, v in pairs:
                if getattr(v, "overwrite_with_gradient", False):
                    v.assign(g)
            pairs = [
                (g, v)
                for g, v in pairs
                if not getattr(v, "overwrite_with_gradient", False)
            ]
            if not pairs:
                return
            grads = [g for g, _ in pairs]
            variables = [v for _, v in pairs]
            if self.loss_scale_factor is not None:
                grads = [g / self.loss_scale_factor for g in grads]
            grads = self._sum_over_replicas(grads)
            self._apply_aggregated(grads, variables)

    def _sum_over_replicas(self, grads):
        # Keras' TF optimizer sums gradients only inside the final update, so
        # its clipping sees one replica's gradient; summing here first makes
        # every later step (accumulation, clipping) see the global gradient.
        if _distribution_mode() != "replica":
            return grads
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        return list(context.all_reduce(tf.distribute.ReduceOp.SUM, grads))

    def _apply_aggregated(self, grads, variables):
        grads = self._transform_gradients(list(grads), list(variables))
        lr = ops.convert_to_tensor(self._learning_rate_for_update())
        lrs = []
        for v in variables:
            multiplier = self._variable_lr_multiplier(self._get_variable_index(v))
            lrs.append(lr if multiplier == 1.0 else lr * multiplier)
        # Scalars shared by all variables are computed once per update, not
        # once per variable (which costs real time in graph mode without XLA).
        step = self._step_values()
        self._for_each_variable(
            self._apply_to_variable, variables, grads, lrs, [step] * len(lrs)
        )
        self._iterations.assign_add(1)

    def _step_values(self):
        """Dict of scalar tensors for this update, shared by all variables."""
        return {}

    def _apply_to_variable(self, variable, gradient, learning_rate, step):
        index = self._get_variable_index(variable)
        old = _read(variable) if self._needs_old_value(index) else None
        self._update_variable(variable, gradient, learning_rate)
        self._adapt_update(variable, old, learning_rate, index)
        if self._has_constraint[index]:
            constraint = self._trainable_variables[index].constraint
            self.assign(variable, constraint(_read(variable)))
        self._lookahead_update(variable, old, index, step)
        self._ema_update(variable, index, step)

    def _variable_lr_multiplier(self, index):
        return 1.0

    def _needs_old_value(self, index):
        return False

    def _adapt_update(self, variable, old, learning_rate, index):
        pass

    def _lookahead_update(self, variable, old, index, step):
        pass

    def _ema_update(self, variable, index, step):
        pass

    def _transform_gradients(self, grads, variables):
        # Keras' clipnorm / clipvalue / global_clipnorm, applied to the
        # summed (and accumulated) gradient.
        return list(self._clip_gradients(grads))

    def _learning_rate_for_update(self):
        return self.learning_rate

    def _update_variable(self, variable, gradient, learning_rate):
        if self._keras_decay[self._get_variable_index(variable)]:
            dtype = _dtype(variable)
            decay = ops.cast(learning_rate * self.weight_decay, dtype)
            self.assign_sub(variable, _read(variable) * decay)
        self.update_step(gradient, variable, learning_rate)

    # -- execution helpers -----------------------------------------------------

    def _for_each_variable(self, fn, variables, *per_variable_args):
        """Calls `fn(variable, *args_i)`; once per device under tf.distribute."""
        mode = _distribution_mode()
        if mode is None:
            for i, variable in enumerate(variables):
                fn(variable, *(args[i] for args in per_variable_args))
            return
        import tensorflow as tf

        def merge_fn(strategy, *lists):
            for i, variable in enumerate(variables):
                strategy.extended.update(
                    _tf_variable(variable),
                    fn,
                    args=tuple(args[i] for args in lists),
                    group=False,
                )

        if mode == "replica":
            tf.distribute.get_replica_context().merge_call(
                merge_fn, args=per_variable_args
            )
        else:
            merge_fn(tf.distribute.get_strategy(), *per_variable_args)

    def _cond(self, pred_fn, true_fn, false_fn, args):
        """Runs `true_fn(*args)` or `false_fn(*args)`; both write variables.

        TensorFlow runs a real `cond` (inside one cross-replica `merge_call`
        under tf.distribute, since replica-context conds may not contain
        merge calls). JAX cannot write state inside `lax.cond`, so each branch
        runs in a `StatelessScope` and returns the new variable values.
        """
        mode = _distribution_mode()
        if mode == "replica":
            import tensorflow as tf

            def merge_fn(strategy, *merged_args):
                def branch(fn):
                    def run():
                        strategy.extended.call_for_each_replica(
                            fn, args=merged_args
                        )

                    return run

                ops.cond(pred_fn(), branch(true_fn), branch(false_fn))

            tf.distribute.get_replica_context().merge_call(merge_fn, args=args)
            return
        if keras.backend.backend() == "jax":
            self._stateless_cond(pred_fn(), true_fn, false_fn, args)
            return

        def call(fn):
            def run():
                fn(*args)

            return run

        ops.cond(pred_fn(), call(true_fn), call(false_fn))

    def _stateless_cond(self, pred, true_fn, false_fn, args):
        variables, seen = [], set()
        for v in list(self._trainable_variables) + list(self.variables):
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)

        def branch(fn):
            def run():
                mapping = [(v, v.value) for v in variables]
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    fn(*args)
                return [scope.get_current_value(v) for v in variables]

            return run

        values = ops.cond(pred, branch(true_fn), branch(false_fn))
        for variable, value in zip(variables, values):
            variable.assign(value)

    # -- serialization ---------------------------------------------------------

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
                "An ExtendedOptimizer config needs 'base_optimizer' and "
                f"'extensions'; got keys {sorted(config)}"
            )
        klass = _resolve_base(config.pop("base_optimizer"), custom_objects)
        for extension in config.pop("extensions"):
            if extension not in _FACTORIES:
                raise ValueError(
                    f"Unknown optimizer extension {extension!r}; known: "
                    f"{sorted(_FACTORIES)}"
                )
            klass = _FACTORIES[extension](klass)
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
            f"Cannot find the base optimizer class {spec!r}; register it with "
            "`keras.saving.register_keras_serializable` or pass it in "
            "`custom_objects`."
        )
    return klass


def _extend(base, mixin, name):
    if not (isinstance(base, type) and issubclass(base, keras.Optimizer)):
        raise TypeError(
            "extend_with_* expects a keras.optimizers.Optimizer subclass "
            f"(e.g. keras.optimizers.Adam), got {base!r}"
        )
    if issubclass(base, keras.optimizers.LossScaleOptimizer):
        raise TypeError(
            "Extend the inner optimizer class, then wrap the instance in "
            "keras.optimizers.LossScaleOptimizer."
        )
    if issubclass(base, ExtendedOptimizer):
        core = base
        for existing in base._extensions:
            if _FAMILY[existing] == _FAMILY[mixin._extension_name]:
                raise ValueError(
                    f"{base.__name__} already has the extension {existing!r}"
                )
    else:
        core = type(
            base.__name__,
            (ExtendedOptimizer, base),
            {"__module__": __name__, "_base_optimizer": base, "_extensions": ()},
        )
    name = name or f"{base.__name__}{mixin._suffix}"
    cls = type(
        name,
        (mixin, core),
        {
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": (mixin.__doc__ or "") + f"\n    Base: {base.__name__}.\n",
            "_extensions": core._extensions + (mixin._extension_name,),
        },
    )
    return keras.saving.register_keras_serializable(_PACKAGE, _REGISTERED_NAME)(
        cls
    )


# ----------------------------------------------------------------------------
# Extensions
# ----------------------------------------------------------------------------


class _WeightDecay:
    """Decoupled weight decay: `w -= lr * weight_decay_rate * w` each update.

    Args:
        weight_decay_rate: float >= 0.
        exclude_from_weight_decay: list of regular expressions; variables
            whose path matches one are not decayed (e.g. `["Norm", "bias"]`).
    """

    _extension_name = "weight_decay"
    _suffix = "WithWeightDecay"

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
        paths = [_variable_path(v) for v in var_list]
        _warn_unmatched(
            "exclude_from_weight_decay", self.exclude_from_weight_decay, paths
        )
        self._decay_mask = [
            self.weight_decay_rate > 0
            and _first_match(self.exclude_from_weight_decay, p) is None
            for p in paths
        ]

    def _update_variable(self, variable, gradient, learning_rate):
        if self._decay_mask[self._get_variable_index(variable)]:
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

    def __init__(self, *args, exclude_from_layer_adaptation=None, **kw):
        super().__init__(*args, **kw)
        self.exclude_from_layer_adaptation = _check_pattern_list(
            "exclude_from_layer_adaptation", exclude_from_layer_adaptation
        )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        paths = [_variable_path(v) for v in var_list]
        _warn_unmatched(
            "exclude_from_layer_adaptation",
            self.exclude_from_layer_adaptation,
            paths,
        )
        self._adapt_mask = [
            _first_match(self.exclude_from_layer_adaptation, p) is None
            for p in paths
        ]

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
            self._iterations, self.lr_schedule
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
            self._accumulators[self._get_variable_index(v)] for v in variables
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


class _GradientClipping:
    """Gradient clipping of the applied gradient (after the cross-replica
    sum and after accumulation).

    Args:
        clip_norm_rules: dict `{pattern: max_norm}`; each matching variable's
            gradient is rescaled to norm at most `max_norm`.
        clip_value_rules: dict `{pattern: max_abs}`; each matching variable's
            gradient is clipped elementwise to `[-max_abs, max_abs]`.
        clip_global_norm: float or None; after the per-variable rules, all
            gradients are rescaled together to global norm at most this.
        For each variable the first matching pattern of each dict applies.
    """

    _extension_name = "gradient_clipping"
    _suffix = "WithGradientClipping"

    def __init__(
        self,
        *args,
        clip_norm_rules=None,
        clip_value_rules=None,
        clip_global_norm=None,
        **kw,
    ):
        super().__init__(*args, **kw)
        self.clip_norm_rules = _check_patterns("clip_norm_rules", clip_norm_rules)
        self.clip_value_rules = _check_patterns(
            "clip_value_rules", clip_value_rules
        )
        if clip_global_norm is not None:
            clip_global_norm = float(clip_global_norm)
            if not clip_global_norm > 0:
                raise ValueError(
                    f"`clip_global_norm` must be > 0, got {clip_global_norm}"
                )
        self.clip_global_norm = clip_global_norm

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        paths = [_variable_path(v) for v in var_list]
        _warn_unmatched("clip_norm_rules", list(self.clip_norm_rules), paths)
        _warn_unmatched("clip_value_rules", list(self.clip_value_rules), paths)

        def lookup(rules, path):
            pattern = _first_match(rules, path)
            return None if pattern is None else rules[pattern]

        self._clip_norm = [lookup(self.clip_norm_rules, p) for p in paths]
        self._clip_value = [lookup(self.clip_value_rules, p) for p in paths]

    def _transform_gradients(self, grads, variables):
        grads = super()._transform_gradients(grads, variables)
        out = []
        for g, v in zip(grads, variables):
            index = self._get_variable_index(v)
            max_norm = self._clip_norm[index]
            if max_norm is not None:
                g = ops.convert_to_tensor(g)
                norm = _norm(g)
                scale = max_norm / ops.maximum(norm, max_norm)
                g = g * ops.cast(scale, g.dtype)
            max_abs = self._clip_value[index]
            if max_abs is not None:
                g = ops.clip(g, -max_abs, max_abs)
            out.append(g)
        if self.clip_global_norm is not None:
            out = _clip_by_global_norm(out, self.clip_global_norm)
        return out

    def get_config(self):
        config = super().get_config()
        config["clip_norm_rules"] = dict(self.clip_norm_rules)
        config["clip_value_rules"] = dict(self.clip_value_rules)
        config["clip_global_norm"] = self.clip_global_norm
        return config


def _clip_by_global_norm(grads, max_norm):
    grads = [ops.convert_to_tensor(g) for g in grads]
    total = ops.sqrt(
        ops.sum(ops.stack([ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads]))
    )
    scale = max_norm / ops.maximum(total, max_norm)
    return [g * ops.cast(scale, g.dtype) for g in grads]


class _GradientTransform:
    """An arbitrary function of the applied gradients.

    Args:
        gradient_transform: callable `(grads, variables) -> grads`, called on
            the summed, accumulated gradient list and the matching variables.
            To save the optimizer, make it a registered function
            (`keras.saving.register_keras_serializable`).
    """

    _extension_name = "gradient_transform"
    _suffix = "WithGradientTransform"

    def __init__(self, *args, gradient_transform=None, **kw):
        super().__init__(*args, **kw)
        if isinstance(gradient_transform, (dict, str)):
            gradient_transform = keras.saving.deserialize_keras_object(
                gradient_transform
            )
        if gradient_transform is not None and not callable(gradient_transform):
            raise TypeError(
                "`gradient_transform` must be a callable (grads, variables) -> "
                f"grads, got {gradient_transform!r}"
            )
        self.gradient_transform = gradient_transform

    def _transform_gradients(self, grads, variables):
        grads = super()._transform_gradients(grads, variables)
        if self.gradient_transform is None:
            return grads
        out = list(self.gradient_transform(list(grads), list(variables)))
        if len(out) != len(grads):
            raise ValueError(
                f"`gradient_transform` returned {len(out)} gradients for "
                f"{len(grads)} variables"
            )
        return out

    def get_config(self):
        config = super().get_config()
        fn = self.gradient_transform
        config["gradient_transform"] = (
            None if fn is None else keras.saving.serialize_keras_object(fn)
        )
        return config


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
        values["lookahead_first"] = ops.equal(self._iterations, 0)
        done = self._iterations + 1  # updates including this one
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
            self._iterations > 0, "float32"
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
        variables = self._trainable_variables
        self._old_weights = [ops.convert_to_numpy(v.value) for v in variables]
        if int(ops.convert_to_numpy(self._iterations)) == 0:
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
        for variable, value in zip(self._trainable_variables, self._old_weights):
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


# Extension name -> mixin; names appear in saved configs, so never rename.
_MIXINS = {
    m._extension_name: m
    for m in (
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
}
# Extensions that may not be stacked together (same state or arguments).
_FAMILY = {name: name for name in _MIXINS}
_FAMILY["parameter_wise_lr"] = "layerwise_lr"


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


_FACTORIES = {
    "weight_decay": extend_with_weight_decay,
    "layer_adaptation": extend_with_layer_adaptation,
    "piecewise_linear_lr": extend_with_piecewise_linear_lr,
    "layerwise_lr": extend_with_layerwise_lr,
    "parameter_wise_lr": extend_with_parameter_wise_lr,
    "gradient_accumulation": extend_with_gradient_accumulation,
    "gradient_clipping": extend_with_gradient_clipping,
    "gradient_transform": extend_with_gradient_transform,
    "lookahead": extend_with_lookahead,
    "exponential_moving_average": extend_with_exponential_moving_average,
}


# ----------------------------------------------------------------------------
# Helpers around the optimizers
# ----------------------------------------------------------------------------


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
