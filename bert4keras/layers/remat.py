"""Rematerialisation support shared by the transformer block layers."""


class StaticArgumentsRemat:
    """Keeps Python-valued call arguments static under Keras' remat.

    Keras wraps a rematerialised call with `jax.checkpoint` on JAX, which turns
    every argument into a tracer, so `training=True` could no longer drive
    Python control flow. Non-tensor keyword arguments (booleans, numbers,
    strings, None) are bound outside the rematerialised function instead; the
    remat itself is still Keras' (`super().rematerialized_call`).
    """

    def rematerialized_call(self, layer_call, *args, **kwargs):
        static = {
            k: v for k, v in kwargs.items() if v is None or isinstance(v, (bool, int, float, str))
        }

        def bound(*a, **kw):
            return layer_call(*a, **kw, **static)

        remat_call = super().rematerialized_call(bound, *args, **kwargs)
        if remat_call is bound:  # this layer is not rematerialised
            return layer_call

        def call(*a, **kw):
            return remat_call(*a, **{k: v for k, v in kw.items() if k not in static})

        return call
