"""Every access to a private member of Keras' optimizer, in one place.

`OptimizerPipeline.apply` replaces `keras.optimizers.Optimizer.apply` (so
that clipping sees the summed, accumulated gradient) and needs state that
Keras keeps private. If a Keras release renames one of these, this module
is the only one to change. Each was checked in Keras 3.0.0, 3.10.0 (the
floor in setup.py) and 3.15.1; `_iterations` replaced the `iterations`
attribute in between (now `iterations` is a property that divides by
Keras' own `gradient_accumulation_steps`, which this package refuses).
"""


def variable_index(optimizer, variable):
    """Position of `variable` in the list the optimizer was built on, which
    indexes every per-variable slot and mask (`_get_variable_index`, 3.0+)."""
    return optimizer._get_variable_index(variable)


def iterations_variable(optimizer):
    """The update counter as the variable itself, to increment it
    (`_iterations`: in 3.10 and 3.15; 3.0 had only the attribute
    `iterations`)."""
    return optimizer._iterations


def built_variables(optimizer):
    """The variables the optimizer was built on, in order (for `apply`
    without variables, constraints and the EMA swap; `_trainable_variables`,
    3.0+)."""
    return optimizer._trainable_variables


def clip_gradients(optimizer, grads):
    """Keras' `clipnorm` / `clipvalue` / `global_clipnorm`
    (`_clip_gradients`, 3.0+)."""
    return optimizer._clip_gradients(grads)


def check_variables_are_known(optimizer, variables):
    """Raises if `variables` are not those the optimizer was built on
    (`_check_variables_are_known`, 3.0+)."""
    optimizer._check_variables_are_known(variables)


def learning_rate_argument(optimizer):
    """The stored `learning_rate`: a variable, or a schedule / callable
    (`_learning_rate`, 3.0+); the public property evaluates schedules."""
    return optimizer._learning_rate


def uses_weight_decay(optimizer, variable):
    """Whether Keras' own `weight_decay` applies to `variable`, honouring
    `exclude_from_weight_decay` (`_use_weight_decay`, 3.0+)."""
    return optimizer._use_weight_decay(variable)
