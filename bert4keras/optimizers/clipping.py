"""Clipping and user transforms of the applied gradient."""

import keras
from keras import ops

from bert4keras.optimizers._common import _check_patterns, _first_match, _norm, _variable_path, _warn_unmatched
from bert4keras.optimizers._keras import variable_index


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
    _family = "gradient_clipping"

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
            index = variable_index(self, v)
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
    _family = "gradient_transform"

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
