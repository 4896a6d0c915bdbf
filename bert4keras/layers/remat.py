"""Rematerialisation support shared by the transformer block layers."""
import keras


def _bound_outside(value):
    """Whether a keyword argument is bound outside the rematerialised function.

    Python values (flags, numbers, strings, None) must stay static; tensors
    that are not floating point (boolean masks, integer position ids) need no
    gradient, and TensorFlow's `recompute_grad` cannot take them as
    differentiable inputs.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (dict, list, tuple)):  # e.g. a decoding cache: inference only
        return True
    if not hasattr(value, "dtype"):
        return False
    dtype = keras.backend.standardize_dtype(value.dtype)
    return not dtype.startswith(("float", "bfloat", "complex"))


class StaticArgumentsRemat:
    """Makes Keras' remat work for layers called with keyword arguments.

    Two backend restrictions are worked around, while the remat itself stays
    Keras' (`super().rematerialized_call`, i.e. `tf.recompute_grad` or
    `jax.checkpoint`):

    - `jax.checkpoint` turns every argument into a tracer, so `training=True`
      could no longer drive Python control flow;
    - in a `tf.function` (so in `model.fit`), `tf.recompute_grad` accepts no
      keyword arguments at all, and adds a zero to every argument, which
      fails for a boolean mask.

    Python values and non-floating tensors are therefore bound outside the
    rematerialised function (closed over), and floating tensor keyword
    arguments are passed positionally and rebound by name inside.

    A layer may define `remat_outside_arguments(*args, **kwargs)`, returning
    extra keyword arguments computed outside the rematerialised function,
    such as random dropout masks, so the recomputation reuses them.
    """

    def rematerialized_call(self, layer_call, *args, **kwargs):
        outside = {k: v for k, v in kwargs.items() if _bound_outside(v)}
        inside = [k for k in kwargs if k not in outside]

        def bound(*values):
            n = len(values) - len(inside)
            return layer_call(*values[:n], **dict(zip(inside, values[n:])), **outside)

        remat_call = super().rematerialized_call(bound, *args)
        if remat_call is bound:  # this layer is not rematerialised
            return layer_call
        prepare = getattr(self, "remat_outside_arguments", None)
        if prepare is not None:  # `bound` reads `outside` when it runs
            outside.update(prepare(*args, **kwargs))

        def call(*a, **kw):
            extra = set(kw) - set(inside) - set(outside)
            if extra:
                raise TypeError(
                    f"{self.name}: keyword arguments must be the wrapped call's own, "
                    f"got unexpected {sorted(extra)}"
                )
            return remat_call(*a, *(kw[k] for k in inside))

        return call
