"""Helpers shared by the optimizer modules: variable paths and reads, and
the validators of constructor arguments."""

import re
import warnings

import keras
import numpy as np
from keras import ops


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


def _check_pattern(arg_name, pattern):
    """Raises unless `pattern` is a string that compiles as a regex."""
    if not isinstance(pattern, str):
        raise TypeError(
            f"`{arg_name}` patterns must be strings, got {pattern!r}"
        )
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(
            f"`{arg_name}` patterns must be regular expressions, got {pattern!r}: {e}"
        ) from None


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
        _check_pattern(arg_name, pattern)
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
        _check_pattern(arg_name, pattern)
    return patterns


def _first_match(patterns, path):
    for pattern in patterns:
        if re.search(pattern, path):
            return pattern
    return None


def _warn_unmatched(arg_name, patterns, paths, stacklevel=4):
    for pattern in patterns:
        if not any(re.search(pattern, path) for path in paths):
            warnings.warn(
                f"`{arg_name}`: pattern {pattern!r} matches no variable of "
                "this optimizer; check the spelling against the variable "
                "paths (e.g. 'Transformer-0-FeedForward/i0/kernel').",
                stacklevel=stacklevel,
            )


def _not_excluded(arg_name, patterns, var_list):
    """One bool per variable: True where no pattern matches its path."""
    paths = [_variable_path(v) for v in var_list]
    _warn_unmatched(arg_name, patterns, paths, stacklevel=5)
    return [_first_match(patterns, p) is None for p in paths]


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

