"""The staged update pipeline shared by every `extend_with_*` class, and
its `tf.distribute` plumbing (TensorFlow backend only)."""

import warnings

import keras
import numpy as np
from keras import ops

from bert4keras.optimizers._common import _dtype, _is_low_precision, _read, _variable_path
from bert4keras.optimizers._keras import (
    built_variables,
    check_variables_are_known,
    clip_gradients,
    iterations_variable,
    learning_rate_argument,
    uses_weight_decay,
    variable_index,
)


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



class OptimizerPipeline:
    """The update pipeline of every `extend_with_*` class (not used on its own).

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
        lr = learning_rate_argument(self)
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
            bool(self.weight_decay) and uses_weight_decay(self, v)
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
            trainable_variables = list(built_variables(self))
            if len(grads) != len(trainable_variables):
                raise ValueError(
                    "`grads` must have one gradient per variable the optimizer "
                    f"was built on ({len(trainable_variables)}), got {len(grads)}"
                )
        else:
            trainable_variables = list(trainable_variables)
            if len(grads) != len(trainable_variables):
                raise ValueError(
                    "`grads` must have one gradient per variable "
                    f"({len(trainable_variables)}), got {len(grads)}"
                )
            if not self.built:
                with keras.name_scope(self.name, caller=self):
                    self.build(trainable_variables)
                self.built = True
            check_variables_are_known(self, trainable_variables)

        with keras.name_scope(self.name, caller=self):
            pairs = [(g, v) for g, v in zip(grads, trainable_variables)]
            missing = [_variable_path(v) for g, v in pairs if g is None]
            pairs = [(g, v) for g, v in pairs if g is not None]
            if not pairs:
                raise ValueError("`grads` must not all be None, got only None")
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
            multiplier = self._variable_lr_multiplier(variable_index(self, v))
            lrs.append(lr if multiplier == 1.0 else lr * multiplier)
        # Scalars shared by all variables are computed once per update, not
        # once per variable (which costs real time in graph mode without XLA).
        step = self._step_values()
        self._for_each_variable(
            self._apply_to_variable, variables, grads, lrs, [step] * len(lrs)
        )
        iterations_variable(self).assign_add(1)

    def _step_values(self):
        """Dict of scalar tensors for this update, shared by all variables."""
        return {}

    def _apply_to_variable(self, variable, gradient, learning_rate, step):
        index = variable_index(self, variable)
        old = _read(variable) if self._needs_old_value(index) else None
        self._update_variable(variable, gradient, learning_rate)
        self._adapt_update(variable, old, learning_rate, index)
        if self._has_constraint[index]:
            constraint = built_variables(self)[index].constraint
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
        return list(clip_gradients(self, grads))

    def _learning_rate_for_update(self):
        return self.learning_rate

    def _update_variable(self, variable, gradient, learning_rate):
        if self._keras_decay[variable_index(self, variable)]:
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
        for v in list(built_variables(self)) + list(self.variables):
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

