"""Tests for bert4keras.optimizers.

Every numeric check compares against numpy brute force or a plain Keras
optimizer (code the extensions do not share), on synthetic gradients fed to
`optimizer.apply` or on real `train_on_batch` steps.
"""
import json
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

from bert4keras import optimizers as bo

ATOL = 2e-6
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def named_model(num_blocks=2, width=4):
    """A small functional model using bert4keras layer names."""
    inputs = keras.Input((3,))
    h = keras.layers.Dense(width, name="Embedding-Mapping")(inputs)
    h = keras.layers.LayerNormalization(name="Embedding-Norm")(h)
    for i in range(num_blocks):
        h = keras.layers.Dense(
            width, activation="tanh", name=f"Transformer-{i}-FeedForward"
        )(h)
        h = keras.layers.LayerNormalization(
            name=f"Transformer-{i}-FeedForward-Norm"
        )(h)
    outputs = keras.layers.Dense(2, name="Pooler-Dense")(h)
    return keras.Model(inputs, outputs)


def bert_like_model(num_layers=2, hidden=8, vocab=20, seq=5, prefix=""):
    """Hand-built model with every bert4keras layer name (no models.py)."""
    p = prefix
    token_ids = keras.Input((seq,), dtype="int32")
    segment_ids = keras.Input((seq,), dtype="int32")
    x = keras.layers.Embedding(vocab, hidden, name=p + "Embedding-Token")(token_ids)
    s = keras.layers.Embedding(2, hidden, name=p + "Embedding-Segment")(segment_ids)
    x = keras.layers.Add(name=p + "Embedding-Token-Segment")([x, s])
    x = keras.layers.Dense(hidden, name=p + "Embedding-Position")(x)
    x = keras.layers.LayerNormalization(name=p + "Embedding-Norm")(x)
    for i in range(num_layers):
        a = keras.layers.Dense(hidden, name=p + f"Transformer-{i}-MultiHeadSelfAttention")(x)
        x = keras.layers.LayerNormalization(
            name=p + f"Transformer-{i}-MultiHeadSelfAttention-Norm"
        )(x + a)
        f = keras.layers.Dense(hidden, name=p + f"Transformer-{i}-FeedForward")(x)
        x = keras.layers.LayerNormalization(name=p + f"Transformer-{i}-FeedForward-Norm")(
            x + f
        )
    m = keras.layers.Dense(hidden, name=p + "MLM-Dense")(x)
    m = keras.layers.LayerNormalization(name=p + "MLM-Norm")(m)
    pooled = keras.layers.Dense(hidden, name=p + "Pooler-Dense")(x[:, 0])
    return keras.Model([token_ids, segment_ids], [m, pooled])


def weights(variables):
    return [np.array(keras.ops.convert_to_numpy(v.value), dtype="float64") for v in variables]


def random_grads(variables, seed=0, scale=1.0):
    rng = np.random.RandomState(seed)
    return [(scale * rng.randn(*v.shape)).astype("float32") for v in variables]


def apply(opt, grads, variables):
    opt.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)


def assert_allclose(a, b, atol=ATOL, rtol=1e-5, msg=""):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol, err_msg=msg)


def layer_name(variable):
    return bo._variable_path(variable).split("/")[0]


FULL_STACK = [
    bo.extend_with_weight_decay,
    bo.extend_with_layerwise_lr,
    bo.extend_with_gradient_accumulation,
    bo.extend_with_exponential_moving_average,
]


def full_stack_class(base=keras.optimizers.Adam, factories=FULL_STACK):
    cls = base
    for f in factories:
        cls = f(cls)
    return cls


FULL_KWARGS = dict(
    learning_rate=0.01,
    weight_decay_rate=0.05,
    exclude_from_weight_decay=["Norm", "bias"],
    lr_multipliers={"Transformer-0": 0.5, "Pooler": 2.0},
    grad_accum_steps=2,
    ema_momentum=0.9,
)


def fit_modes():
    # run_eagerly / jit_compile pairs: eager, compiled graph, XLA (on JAX the
    # last two are both jitted). Compiling takes seconds: those are slow.
    return [
        ("eager", True, False),
        pytest.param(("graph", False, False), marks=pytest.mark.slow),
        pytest.param(("xla", False, True), marks=pytest.mark.slow),
    ]


# ----------------------------------------------------------------------------
# gradient accumulation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("base_name", ["SGD", "Adam"])
@pytest.mark.parametrize("mode", fit_modes(), ids=["eager", "graph", "xla"])
def test_accumulation_equals_one_big_batch_step(base_name, mode):
    _, run_eagerly, jit = mode
    base = getattr(keras.optimizers, base_name)
    lr = 0.1 if base_name == "SGD" else 0.01
    rng = np.random.RandomState(0)
    x = rng.randn(24, 3).astype("float32")
    y = rng.randn(24, 2).astype("float32")
    keras.utils.set_random_seed(3)
    init = named_model().get_weights()

    model = named_model()
    model.set_weights(init)
    Accum = bo.extend_with_gradient_accumulation(base)
    opt = Accum(learning_rate=lr, grad_accum_steps=3)
    model.compile(opt, "mse", run_eagerly=run_eagerly, jit_compile=jit)

    ref = named_model()
    ref.set_weights(init)
    ref.compile(base(learning_rate=lr), "mse", run_eagerly=run_eagerly, jit_compile=jit)

    for step in range(2):
        big = slice(12 * step, 12 * step + 12)
        for k in range(3):
            micro = slice(12 * step + 4 * k, 12 * step + 4 * k + 4)
            before = model.get_weights()
            model.train_on_batch(x[micro], y[micro])
            if k < 2:  # accumulating: weights must not move
                for a, b in zip(before, model.get_weights()):
                    np.testing.assert_array_equal(a, b)
        ref.train_on_batch(x[big], y[big])
        for a, b in zip(model.get_weights(), ref.get_weights()):
            assert_allclose(a, b)
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 2
    moved = max(np.abs(a - b).max() for a, b in zip(model.get_weights(), init))
    assert moved > 1e-3


def test_accumulation_sgd_matches_numpy_mean_gradient():
    model = named_model()
    variables = model.trainable_variables
    w0 = weights(variables)
    opt = bo.extend_with_gradient_accumulation(keras.optimizers.SGD)(
        learning_rate=0.5, grad_accum_steps=4
    )
    micro = [random_grads(variables, seed=s) for s in range(4)]
    for g in micro:
        apply(opt, g, variables)
    expected = [w - 0.5 * np.mean([m[i] for m in micro], axis=0) for i, w in enumerate(w0)]
    for w, e in zip(weights(variables), expected):
        assert_allclose(w, e)


def test_accumulation_steps_one_is_plain_optimizer():
    model = named_model()
    variables = model.trainable_variables
    w0 = weights(variables)
    opt = bo.extend_with_gradient_accumulation(keras.optimizers.SGD)(
        learning_rate=0.5, grad_accum_steps=1
    )
    g = random_grads(variables)
    apply(opt, g, variables)
    for w, w_0, gi in zip(weights(variables), w0, g):
        assert_allclose(w, w_0 - 0.5 * gi)
    assert len(opt.variables) == 2  # iteration + learning_rate: no accumulators


def test_accumulators_are_float32_for_low_precision_variables():
    inputs = keras.Input((3,))
    out = keras.layers.Dense(2, dtype="bfloat16", name="Pooler-Dense")(inputs)
    model = keras.Model(inputs, out)
    Opt = bo.extend_with_exponential_moving_average(
        bo.extend_with_gradient_accumulation(keras.optimizers.SGD)
    )
    opt = Opt(learning_rate=0.1, grad_accum_steps=2)
    opt.build(model.trainable_variables)
    assert all(v.dtype == "bfloat16" for v in model.trainable_variables)
    assert all(a.dtype == "float32" for a in opt._accumulators)
    assert all(a.dtype == "float32" for a in opt.ema_variables)
    g = [np.ones(v.shape, "float32") for v in model.trainable_variables]
    apply(opt, g, model.trainable_variables)
    assert_allclose(keras.ops.convert_to_numpy(opt._accumulators[0].value), g[0], atol=0)


# ----------------------------------------------------------------------------
# layer-wise learning rates
# ----------------------------------------------------------------------------


def test_layerwise_lr_sgd_update_is_lr_times_multiplier_times_grad():
    model = named_model()
    variables = model.trainable_variables
    multipliers = {"Transformer-0-": 0.5, "Transformer-1-FeedForward/": 3.0, "Pooler": 0.0}
    opt = bo.extend_with_layerwise_lr(keras.optimizers.SGD)(
        learning_rate=0.1, lr_multipliers=multipliers
    )
    w0 = weights(variables)
    g = random_grads(variables)
    apply(opt, g, variables)
    for v, w, w_0, gi in zip(variables, weights(variables), w0, g):
        name = layer_name(v)
        mult = {
            "Transformer-0-FeedForward": 0.5,
            "Transformer-0-FeedForward-Norm": 0.5,
            "Transformer-1-FeedForward": 3.0,
            "Pooler-Dense": 0.0,
        }.get(name, 1.0)
        assert_allclose(w, w_0 - 0.1 * mult * gi, msg=bo._variable_path(v))


def test_layerwise_lr_adam_update_scales_by_multiplier():
    keras.utils.set_random_seed(0)
    model = named_model()
    ref_model = named_model()
    ref_model.set_weights(model.get_weights())
    opt = bo.extend_with_layerwise_lr(keras.optimizers.Adam)(
        learning_rate=0.01, lr_multipliers={"Transformer-1": 0.25, "Embedding-": 4.0}
    )
    ref = keras.optimizers.Adam(learning_rate=0.01)
    w0 = weights(model.trainable_variables)
    for step in range(3):
        g = random_grads(model.trainable_variables, seed=step)
        apply(opt, g, model.trainable_variables)
        apply(ref, g, ref_model.trainable_variables)
    for v, w, r, w_0 in zip(
        model.trainable_variables,
        weights(model.trainable_variables),
        weights(ref_model.trainable_variables),
        w0,
    ):
        name = layer_name(v)
        mult = 0.25 if name.startswith("Transformer-1") else 4.0 if name.startswith("Embedding-") else 1.0
        assert_allclose(w - w_0, mult * (r - w_0), msg=name)


def test_parameter_wise_lr_alias():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_parameter_wise_lr(keras.optimizers.SGD)
    opt = Opt(learning_rate=0.1, paramwise_lr_schedule={"Pooler-Dense": 10.0})
    assert opt.paramwise_lr_schedule == {"Pooler-Dense": 10.0}
    assert opt.get_config()["paramwise_lr_schedule"] == {"Pooler-Dense": 10.0}
    w0 = weights(variables)
    g = random_grads(variables)
    apply(opt, g, variables)
    for v, w, w_0, gi in zip(variables, weights(variables), w0, g):
        mult = 10.0 if layer_name(v) == "Pooler-Dense" else 1.0
        assert_allclose(w, w_0 - 0.1 * mult * gi)
    with pytest.raises(ValueError, match="already has the extension"):
        bo.extend_with_layerwise_lr(Opt)


def expected_decay_multiplier(layer, decay, num_layers, prefix=""):
    """ELECTRA-style depth from the layer name, written independently."""
    if not layer.startswith(prefix):
        return 1.0
    name = layer[len(prefix):]
    if name.startswith("Embedding-"):
        depth = 0
    elif name.startswith("Transformer-"):
        depth = int(name.split("-")[1]) + 1
    else:
        depth = num_layers + 1
    return decay ** (num_layers + 1 - depth)


def check_layerwise_decay(model, decay, num_layers, prefix=""):
    multipliers = bo.layerwise_lr_decay(model, decay, prefix=prefix)
    variables = model.trainable_variables
    opt = bo.extend_with_layerwise_lr(keras.optimizers.SGD)(
        learning_rate=1.0, lr_multipliers=multipliers
    )
    w0 = weights(variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every pattern must match something
        apply(opt, [np.ones(v.shape, "float32") for v in variables], variables)
    seen = set()
    for v, w, w_0 in zip(variables, weights(variables), w0):
        layer = layer_name(v)
        expected = expected_decay_multiplier(layer, decay, num_layers, prefix)
        applied = w_0 - w  # SGD step with grad 1 and lr 1 = the multiplier
        assert_allclose(applied, np.full_like(applied, expected), atol=1e-6, msg=bo._variable_path(v))
        seen.add(round(expected, 12))
    return seen


def test_layerwise_lr_decay_twelve_blocks_and_prefix():
    # Transformer-1- must not catch Transformer-10-/11-; the prefix comes from the structure.
    from bert4keras.models import build_transformer_model

    keras.utils.set_random_seed(0)
    model = build_transformer_model(
        vocab_size=20, hidden_size=4, num_hidden_layers=12, num_attention_heads=1,
        intermediate_size=8, with_pool=True, with_mlm=True, prefix="Student-",
    )
    seen = check_layerwise_decay(model, 0.9, 12, prefix="Student-")
    assert len(seen) == 14
    with pytest.raises(ValueError, match="decay"):
        bo.layerwise_lr_decay(model, 1.5)
    with pytest.raises(ValueError, match="num_layers.*12 blocks"):
        bo.layerwise_lr_decay(model, 0.9, num_layers=3)


def test_layerwise_lr_decay_needs_a_built_structure():
    # Names alone are not parsed: a hand-built model with bert4keras names is refused.
    model = bert_like_model(num_layers=2)
    with pytest.raises(ValueError, match="not built by build_transformer_model"):
        bo.layerwise_lr_decay(model, 0.5)


def _build_tiny_bert():
    from bert4keras.models import build_transformer_model

    return build_transformer_model(
        config_path=None,
        model="bert",
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        with_mlm=True,
    )


def test_layerwise_lr_decay_on_built_bert():
    keras.utils.set_random_seed(0)
    model = _build_tiny_bert()
    paths = [bo._variable_path(v) for v in model.trainable_variables]
    assert any(p.startswith("Embedding-Token/") for p in paths), paths
    assert any(p.startswith("Transformer-1-") for p in paths), paths
    seen = check_layerwise_decay(model, 0.5, 2)
    assert {0.125, 0.25, 0.5} <= seen


# ----------------------------------------------------------------------------
# clipping and transforms
# ----------------------------------------------------------------------------


def test_per_variable_norm_and_value_clipping_only_touch_matches():
    model = named_model()
    variables = model.trainable_variables
    opt = bo.extend_with_gradient_clipping(keras.optimizers.SGD)(
        learning_rate=1.0,
        clip_norm_rules={"Transformer-0-FeedForward/kernel": 0.3},
        clip_value_rules={"Pooler-Dense/": 0.05},
    )
    w0 = weights(variables)
    g = random_grads(variables, scale=2.0)
    apply(opt, g, variables)
    for v, w, w_0, gi in zip(variables, weights(variables), w0, g):
        path = bo._variable_path(v)
        applied = w_0 - w
        gi = gi.astype("float64")
        if path == "Transformer-0-FeedForward/kernel":
            assert np.linalg.norm(gi) > 0.3
            expected = gi * 0.3 / np.linalg.norm(gi)
        elif path.startswith("Pooler-Dense/"):
            expected = np.clip(gi, -0.05, 0.05)
            assert not np.allclose(expected, gi)
        else:
            expected = gi
        assert_allclose(applied, expected, msg=path)


def test_global_norm_clipping_matches_numpy():
    model = named_model()
    variables = model.trainable_variables
    opt = bo.extend_with_gradient_clipping(keras.optimizers.SGD)(
        learning_rate=1.0, clip_global_norm=0.7
    )
    w0 = weights(variables)
    g = random_grads(variables)
    apply(opt, g, variables)
    total = np.sqrt(sum(np.sum(gi.astype("float64") ** 2) for gi in g))
    assert total > 0.7
    for w, w_0, gi in zip(weights(variables), w0, g):
        assert_allclose(w_0 - w, gi * 0.7 / total)


def test_clipping_sees_the_accumulated_gradient():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_gradient_accumulation(
        bo.extend_with_gradient_clipping(keras.optimizers.SGD)
    )
    opt = Opt(learning_rate=1.0, clip_global_norm=0.5, grad_accum_steps=2)
    w0 = weights(variables)
    g1 = random_grads(variables, seed=1)
    g2 = [-x + 0.01 for x in g1]  # mean gradient is tiny: no clipping due
    apply(opt, g1, variables)
    apply(opt, g2, variables)
    for w, w_0, a, b in zip(weights(variables), w0, g1, g2):
        assert_allclose(w_0 - w, (a.astype("float64") + b) / 2)


def test_keras_builtin_global_clipnorm_still_works():
    model = named_model()
    variables = model.trainable_variables
    opt = bo.extend_with_layerwise_lr(keras.optimizers.SGD)(
        learning_rate=1.0, global_clipnorm=0.2
    )
    w0 = weights(variables)
    g = random_grads(variables)
    apply(opt, g, variables)
    total = np.sqrt(sum(np.sum(gi.astype("float64") ** 2) for gi in g))
    for w, w_0, gi in zip(weights(variables), w0, g):
        assert_allclose(w_0 - w, gi * 0.2 / total)


@keras.saving.register_keras_serializable(package="bert4keras_tests")
def halve_biases(grads, variables):
    return [g * 0.5 if v.path.endswith("bias") else g for g, v in zip(grads, variables)]


def test_gradient_transform_user_function_and_serialization():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_gradient_transform(keras.optimizers.SGD)
    opt = Opt(learning_rate=1.0, gradient_transform=halve_biases)
    w0 = weights(variables)
    g = random_grads(variables)
    apply(opt, g, variables)
    for v, w, w_0, gi in zip(variables, weights(variables), w0, g):
        factor = 0.5 if v.path.endswith("bias") else 1.0
        assert_allclose(w_0 - w, factor * gi)
    clone = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(opt))))
    assert clone.gradient_transform is halve_biases
    with pytest.raises(TypeError, match="gradient_transform"):
        Opt(learning_rate=1.0, gradient_transform=3)


# ----------------------------------------------------------------------------
# weight decay, layer adaptation, lookahead
# ----------------------------------------------------------------------------


def test_weight_decay_sgd_matches_numpy_and_excludes():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_weight_decay(keras.optimizers.SGD)
    opt = Opt(learning_rate=0.1, weight_decay_rate=0.3, exclude_from_weight_decay=["Norm", "bias"])
    w0 = weights(variables)
    g = random_grads(variables)
    apply(opt, g, variables)
    for v, w, w_0, gi in zip(variables, weights(variables), w0, g):
        path = bo._variable_path(v)
        decayed = not re.search("Norm|bias", path)
        expected = w_0 - 0.1 * (gi + (0.3 * w_0 if decayed else 0))
        assert_allclose(w, expected, msg=path)


def test_layer_adaptation_sgd_matches_numpy_lamb_ratio():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_layer_adaptation(bo.extend_with_weight_decay(keras.optimizers.SGD))
    opt = Opt(
        learning_rate=0.01,
        weight_decay_rate=0.1,
        exclude_from_weight_decay=["bias", "Norm"],
        exclude_from_layer_adaptation=["bias", "Norm"],
    )
    w0 = weights(variables)
    g = random_grads(variables)
    apply(opt, g, variables)
    for v, w, w_0, gi in zip(variables, weights(variables), w0, g):
        path = bo._variable_path(v)
        if re.search("bias|Norm", path):
            expected = w_0 - 0.01 * gi
        else:
            u = gi + 0.1 * w_0
            expected = w_0 - 0.01 * np.linalg.norm(w_0) / np.linalg.norm(u) * u
        assert_allclose(w, expected, msg=path)


def test_lookahead_matches_numpy():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_lookahead(keras.optimizers.SGD)
    opt = Opt(learning_rate=0.1, steps_per_slow_update=3, slow_step_size=0.25)
    fast = weights(variables)
    slow = [w.copy() for w in fast]
    for step in range(7):
        g = random_grads(variables, seed=step)
        apply(opt, g, variables)
        fast = [f - 0.1 * gi for f, gi in zip(fast, g)]
        if (step + 1) % 3 == 0:
            slow = [s + 0.25 * (f - s) for s, f in zip(slow, fast)]
            fast = [s.copy() for s in slow]
        for w, f in zip(weights(variables), fast):
            assert_allclose(w, f)
    for s, var in zip(slow, opt._slow_weights):
        assert_allclose(keras.ops.convert_to_numpy(var.value), s)


# ----------------------------------------------------------------------------
# EMA
# ----------------------------------------------------------------------------


def test_ema_equals_hand_computed_average_of_trajectory():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_exponential_moving_average(keras.optimizers.Adam)
    opt = Opt(learning_rate=0.05, ema_momentum=0.8)
    average = None
    for step in range(6):
        apply(opt, random_grads(variables, seed=step), variables)
        w = weights(variables)
        average = w if average is None else [0.8 * a + 0.2 * x for a, x in zip(average, w)]
    for a, v in zip(average, opt.ema_variables):
        assert v.dtype == "float32"
        assert_allclose(keras.ops.convert_to_numpy(v.value), a)


def test_ema_apply_and_reset_are_bit_exact():
    model = named_model()
    variables = model.trainable_variables
    opt = bo.extend_with_exponential_moving_average(keras.optimizers.Adam)(
        learning_rate=0.05, ema_momentum=0.9
    )
    for step in range(3):
        apply(opt, random_grads(variables, seed=step), variables)
    trained = [keras.ops.convert_to_numpy(v.value).copy() for v in variables]
    averages = [keras.ops.convert_to_numpy(v.value).copy() for v in opt.ema_variables]
    opt.apply_ema_weights()
    for v, a, t in zip(variables, averages, trained):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v.value), a)
        assert not np.array_equal(a, t)
    with pytest.raises(ValueError, match="already applied"):
        opt.apply_ema_weights()
    opt.reset_old_weights()
    for v, t in zip(variables, trained):
        assert keras.ops.convert_to_numpy(v.value).tobytes() == t.tobytes()
    with opt.ema_weights():
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variables[0].value), averages[0])
    assert keras.ops.convert_to_numpy(variables[0].value).tobytes() == trained[0].tobytes()
    with pytest.raises(ValueError, match="without"):
        opt.reset_old_weights()


def test_ema_callback_evaluates_with_averages_and_restores():
    rng = np.random.RandomState(0)
    x = rng.randn(32, 3).astype("float32")
    y = rng.randn(32, 2).astype("float32")
    model = named_model()
    Opt = bo.extend_with_exponential_moving_average(keras.optimizers.Adam)
    model.compile(Opt(learning_rate=0.05, ema_momentum=0.5), "mse")
    callback = bo.EMAEvaluationCallback((x, y), batch_size=16)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert len(history.history["ema_loss"]) == 2
    trained = [w.copy() for w in model.get_weights()]
    logs = {}
    callback.on_epoch_end(5, logs)
    for a, b in zip(trained, model.get_weights()):
        assert a.tobytes() == b.tobytes()
    # Independent path: set the averages by hand and evaluate.
    averages = [keras.ops.convert_to_numpy(v.value) for v in model.optimizer.ema_variables]
    model.set_weights(averages)
    expected = model.evaluate(x, y, batch_size=16, verbose=0)
    model.set_weights(trained)
    assert abs(logs["ema_loss"] - expected) < 1e-6
    assert abs(logs["ema_loss"] - model.evaluate(x, y, verbose=0)) > 1e-6


# ----------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------


def test_piecewise_linear_function_matches_numpy_interp():
    schedule = {3: 1.0, 10: 0.2, 12: 0.5}
    xs, ys = [0, 3, 10, 12], [0.0, 1.0, 0.2, 0.5]
    for t in range(0, 16):
        got = float(keras.ops.convert_to_numpy(bo.piecewise_linear(t, schedule)))
        assert abs(got - np.interp(t, xs, ys)) < 1e-6, t
    # from_zero=False: constant before the first point
    got = float(keras.ops.convert_to_numpy(bo.piecewise_linear(1, {5: 2.0, 7: 1.0}, from_zero=False)))
    assert got == 2.0


@pytest.mark.parametrize("accum", [1, 3])
def test_warmup_multipliers_at_breakpoints_count_update_steps(accum):
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_piecewise_linear_lr(
        bo.extend_with_gradient_accumulation(keras.optimizers.SGD)
    )
    opt = Opt(learning_rate=0.5, lr_schedule={2: 1.0, 4: 0.25}, grad_accum_steps=accum)
    g = [np.ones(v.shape, "float32") for v in variables]
    for update in range(6):
        before = weights(variables)
        for _ in range(accum):
            apply(opt, g, variables)
        step = before[0] - weights(variables)[0]  # = lr * multiplier
        expected = 0.5 * np.interp(update, [0, 2, 4], [0.0, 1.0, 0.25])
        assert_allclose(step, np.full_like(step, expected), msg=f"update {update}")
        assert int(keras.ops.convert_to_numpy(opt.iterations)) == update + 1


def test_keras_schedule_counts_update_steps_with_accumulation():
    model = named_model()
    variables = model.trainable_variables
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1], [1.0, 0.1])
    opt = bo.extend_with_gradient_accumulation(keras.optimizers.SGD)(
        learning_rate=schedule, grad_accum_steps=2
    )
    g = [np.ones(v.shape, "float32") for v in variables]
    lrs = []
    for update in range(3):
        before = weights(variables)[0]
        apply(opt, g, variables)
        apply(opt, g, variables)
        lrs.append(float((before - weights(variables)[0]).mean()))
    assert_allclose(lrs, [1.0, 1.0, 0.1])  # boundary 1: lr changes after update 1


def test_lr_schedule_keys_survive_json_round_trip():
    Opt = bo.extend_with_piecewise_linear_lr(keras.optimizers.SGD)
    opt = Opt(learning_rate=0.1, lr_schedule={100: 1.0, 1000: 0.1})
    config = json.loads(json.dumps(keras.optimizers.serialize(opt)))
    clone = keras.optimizers.deserialize(config)
    assert clone.lr_schedule == {100: 1.0, 1000: 0.1}


# ----------------------------------------------------------------------------
# composition, serialization, mixed precision
# ----------------------------------------------------------------------------


def everything_class(base=keras.optimizers.Adam):
    return full_stack_class(
        base,
        [
            bo.extend_with_gradient_clipping,
            bo.extend_with_weight_decay,
            bo.extend_with_layer_adaptation,
            bo.extend_with_layerwise_lr,
            bo.extend_with_piecewise_linear_lr,
            bo.extend_with_gradient_transform,
            bo.extend_with_lookahead,
            bo.extend_with_gradient_accumulation,
            bo.extend_with_exponential_moving_average,
        ],
    )


EVERYTHING_KWARGS = dict(
    FULL_KWARGS,
    clip_norm_rules={"Pooler": 1.0},
    clip_global_norm=5.0,
    exclude_from_layer_adaptation=["Norm", "bias"],
    lr_schedule={2: 1.0, 10: 0.5},
    gradient_transform=halve_biases,
    steps_per_slow_update=2,
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "order",
    [
        FULL_STACK,
        FULL_STACK[::-1],
        [FULL_STACK[2], FULL_STACK[0], FULL_STACK[3], FULL_STACK[1]],
    ],
    ids=["issue-order", "reversed", "mixed"],
)
def test_composition_order_gives_same_result(order):
    # These four extensions commute: results must not depend on the order.
    rng = np.random.RandomState(0)
    x = rng.randn(16, 3).astype("float32")
    y = rng.randn(16, 2).astype("float32")
    keras.utils.set_random_seed(0)
    init = named_model().get_weights()
    results = []
    for factories in (FULL_STACK, order):
        model = named_model()
        model.set_weights(init)
        opt = full_stack_class(keras.optimizers.Adam, factories)(**FULL_KWARGS)
        model.compile(opt, "mse")
        for i in range(4):
            model.train_on_batch(x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4])
        results.append((model.get_weights(), weights(opt.ema_variables)))
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        assert_allclose(a, b, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("mode", fit_modes(), ids=["eager", "graph", "xla"])
def test_everything_stack_trains(mode):
    _, run_eagerly, jit = mode
    rng = np.random.RandomState(0)
    x = rng.randn(16, 3).astype("float32")
    y = rng.randn(16, 2).astype("float32")
    model = named_model()
    opt = everything_class()(**EVERYTHING_KWARGS)
    model.compile(opt, "mse", run_eagerly=run_eagerly, jit_compile=jit)
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 6
    assert model.evaluate(x, y, verbose=0) < first
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_config_round_trip_rebuilds_the_class():
    opt = everything_class()(**EVERYTHING_KWARGS)
    config = json.loads(json.dumps(keras.optimizers.serialize(opt)))
    assert config["registered_name"] == "bert4keras>ExtendedOptimizer"
    clone = keras.optimizers.deserialize(config)
    assert type(clone)._extensions == type(opt)._extensions
    assert clone.get_config() == opt.get_config()
    assert isinstance(clone, keras.optimizers.Adam)
    # from the plain config too
    clone2 = type(opt).from_config(opt.get_config())
    assert clone2.get_config() == opt.get_config()


def test_each_composed_class_has_its_own_stable_registered_name():
    # The name is spelled out by hand from the base and the ordered
    # extensions; the user's class name and composition history play no part.
    wd = bo.extend_with_weight_decay(keras.optimizers.Adam, "SomeName")
    wd_ema = bo.extend_with_exponential_moving_average(wd)
    ema_wd = bo.extend_with_weight_decay(bo.extend_with_exponential_moving_average(keras.optimizers.Adam))
    sgd_wd = bo.extend_with_weight_decay(keras.optimizers.SGD)
    expected = {
        wd: "bert4keras>Adam+weight_decay",
        wd_ema: "bert4keras>Adam+weight_decay+exponential_moving_average",
        ema_wd: "bert4keras>Adam+exponential_moving_average+weight_decay",
        sgd_wd: "bert4keras>SGD+weight_decay",
    }
    for cls, name in expected.items():
        assert cls.registered_name == name
        assert keras.saving.get_registered_object(name) is cls
    assert len({cls.registered_name for cls in expected}) == len(expected)
    # composing the same classes again gives the same class
    assert bo.extend_with_exponential_moving_average(wd) is wd_ema
    # files keep naming the loader, which still resolves to the loader
    loader = "bert4keras>ExtendedOptimizer"
    assert keras.saving.get_registered_object(loader) is bo.ExtendedOptimizer
    opt = wd_ema(learning_rate=0.1, weight_decay_rate=0.01, ema_momentum=0.9)
    config = json.loads(json.dumps(keras.optimizers.serialize(opt)))
    assert config["registered_name"] == loader
    # in a process that composed the stack, loading gives that very class
    assert type(keras.optimizers.deserialize(config)) is wd_ema
    # a foreign class with a clashing name is not mistaken for the stack
    keras.saving.get_custom_objects()[wd_ema.registered_name] = bo.ExtendedOptimizer
    try:
        clone = keras.optimizers.deserialize(config)
        assert type(clone) is not bo.ExtendedOptimizer
        assert type(clone)._extensions == wd_ema._extensions
    finally:
        keras.saving.get_custom_objects()[wd_ema.registered_name] = wd_ema


def _train_steps(model, steps, seed):
    rng = np.random.RandomState(seed)
    for _ in range(steps):
        model.train_on_batch(rng.randn(4, 3).astype("float32"), rng.randn(4, 2).astype("float32"))


@pytest.mark.slow
def test_saved_model_reloads_optimizer_and_continues_identically(tmp_path):
    model = named_model()
    model.compile(full_stack_class()(**FULL_KWARGS), "mse")
    _train_steps(model, 3, seed=0)  # odd: mid-accumulation state is saved too
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer)._extensions == type(model.optimizer)._extensions
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))
    _train_steps(model, 3, seed=1)
    _train_steps(loaded, 3, seed=1)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert_allclose(a, b, atol=1e-7)
    for a, b in zip(model.optimizer.ema_variables, loaded.optimizer.ema_variables):
        assert_allclose(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value), atol=1e-7)


@pytest.mark.slow
def test_saved_model_reloads_in_a_fresh_process(tmp_path):
    model = named_model()
    model.compile(full_stack_class()(**FULL_KWARGS), "mse")
    _train_steps(model, 2, seed=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    code = (
        "import json, sys, keras, bert4keras.optimizers\n"
        "m = keras.saving.load_model(sys.argv[1])\n"
        "print('RESULT ' + json.dumps({'cls': type(m.optimizer).__name__, "
        "'ext': list(type(m.optimizer)._extensions), "
        "'it': int(keras.ops.convert_to_numpy(m.optimizer.iterations))}))\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, env=env, timeout=300
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][7:])
    assert out["ext"] == list(type(model.optimizer)._extensions)
    assert out["cls"] == type(model.optimizer).__name__
    assert out["it"] == 1


def test_mixed_float16_inside_loss_scale_optimizer():
    keras.config.set_dtype_policy("mixed_float16")
    rng = np.random.RandomState(0)
    x = rng.randn(16, 3).astype("float32")
    y = rng.randn(16, 2).astype("float32")
    model = named_model()
    opt = full_stack_class()(**FULL_KWARGS)
    model.compile(opt, "mse")  # compile wraps it for mixed_float16
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.inner_optimizer is opt
    # A scale that does not overflow float16 here, so no step is skipped.
    model.compile(keras.optimizers.LossScaleOptimizer(opt, initial_scale=2.0**8), "mse")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 4
    assert all(a.dtype == "float32" for a in opt._accumulators)
    assert all(a.dtype == "float32" for a in opt.ema_variables)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    # the wrapped stack serializes and reloads
    config = json.loads(json.dumps(keras.optimizers.serialize(model.optimizer)))
    clone = keras.optimizers.deserialize(config)
    assert type(clone.inner_optimizer)._extensions == type(opt)._extensions


@pytest.mark.slow
def test_loss_scale_optimizer_accumulation_matches_float32():
    # Dynamic loss scaling divides by a power of two: exact in float32, so
    # the wrapped stack must match the unwrapped one closely.
    rng = np.random.RandomState(0)
    x = rng.randn(16, 3).astype("float32")
    y = rng.randn(16, 2).astype("float32")
    keras.utils.set_random_seed(0)
    init = named_model().get_weights()
    out = []
    for wrap in (False, True):
        model = named_model()
        model.set_weights(init)
        opt = full_stack_class()(**FULL_KWARGS)
        if wrap:
            opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=2.0**10)
        model.compile(opt, "mse")
        for i in range(4):
            model.train_on_batch(x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4])
        out.append(model.get_weights())
    for a, b in zip(*out):
        assert_allclose(a, b, atol=1e-6)


def test_adamw_builtin_weight_decay_uses_layerwise_lr():
    model = named_model()
    variables = model.trainable_variables
    Opt = bo.extend_with_layerwise_lr(keras.optimizers.AdamW)
    opt = Opt(learning_rate=0.1, weight_decay=0.5, lr_multipliers={"Pooler": 0.0})
    w0 = weights(variables)
    apply(opt, [np.zeros(v.shape, "float32") for v in variables], variables)
    for v, w, w_0 in zip(variables, weights(variables), w0):
        mult = 0.0 if layer_name(v) == "Pooler-Dense" else 1.0
        assert_allclose(w, w_0 * (1 - 0.1 * mult * 0.5))


# ----------------------------------------------------------------------------
# bad arguments
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, -2, 1.5, "2"])
def test_bad_grad_accum_steps(steps):
    Opt = bo.extend_with_gradient_accumulation(keras.optimizers.SGD)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        Opt(learning_rate=0.1, grad_accum_steps=steps)


def test_negative_learning_rate():
    Opt = bo.extend_with_weight_decay(keras.optimizers.Adam)
    with pytest.raises(ValueError, match="learning_rate"):
        Opt(learning_rate=-1e-3)


def test_unmatched_multiplier_pattern_warns_with_its_name():
    model = named_model()
    opt = bo.extend_with_layerwise_lr(keras.optimizers.SGD)(
        learning_rate=0.1, lr_multipliers={"Transformer-0": 0.5, "CRF-Tarnsitions": 100.0}
    )
    with pytest.warns(UserWarning, match="CRF-Tarnsitions") as record:
        opt.build(model.trainable_variables)
    assert not any("'Transformer-0'" in str(r.message) for r in record)


@pytest.mark.parametrize(
    "factory, kwargs, error, match",
    [
        (bo.extend_with_layerwise_lr, {"lr_multipliers": {"x": -1.0}}, ValueError, "lr_multipliers"),
        (bo.extend_with_layerwise_lr, {"lr_multipliers": ["x"]}, TypeError, "lr_multipliers"),
        (bo.extend_with_layerwise_lr, {"lr_multipliers": {"(": 1.0}}, ValueError, "regular expression"),
        (bo.extend_with_piecewise_linear_lr, {"lr_schedule": {-1: 1.0}}, ValueError, "lr_schedule"),
        (bo.extend_with_piecewise_linear_lr, {"lr_schedule": {"a": 1.0}}, ValueError, "lr_schedule"),
        (bo.extend_with_weight_decay, {"weight_decay_rate": -0.1}, ValueError, "weight_decay_rate"),
        (bo.extend_with_exponential_moving_average, {"ema_momentum": 1.5}, ValueError, "ema_momentum"),
        (bo.extend_with_lookahead, {"steps_per_slow_update": 0}, ValueError, "steps_per_slow_update"),
        (bo.extend_with_lookahead, {"slow_step_size": 2.0}, ValueError, "slow_step_size"),
        (bo.extend_with_gradient_clipping, {"clip_global_norm": 0.0}, ValueError, "clip_global_norm"),
        (bo.extend_with_weight_decay, {"use_ema": True}, ValueError, "extend_with_exponential"),
        (bo.extend_with_weight_decay, {"gradient_accumulation_steps": 2}, ValueError, "extend_with_gradient"),
    ],
)
def test_bad_extension_arguments(factory, kwargs, error, match):
    Opt = factory(keras.optimizers.SGD)
    with pytest.raises(error, match=match):
        Opt(learning_rate=0.1, **kwargs)


def test_bad_factory_inputs():
    with pytest.raises(TypeError, match="Optimizer subclass"):
        bo.extend_with_weight_decay(keras.layers.Dense)
    with pytest.raises(TypeError, match="LossScaleOptimizer"):
        bo.extend_with_weight_decay(keras.optimizers.LossScaleOptimizer)
    Opt = bo.extend_with_weight_decay(keras.optimizers.SGD, "SGDW")
    assert Opt.__name__ == "SGDW"
    with pytest.raises(ValueError, match="already has the extension"):
        bo.extend_with_weight_decay(Opt)
    config = Opt(learning_rate=0.1).get_config()
    config["extensions"] = ["no_such_extension"]
    with pytest.raises(ValueError, match="no_such_extension"):
        bo.ExtendedOptimizer.from_config(config)


@pytest.mark.tf_only
def test_sparse_embedding_gradients_accumulate_as_dense_gradient():
    # Embedding gradients are tf.IndexedSlices with repeated token ids. The
    # accumulated update must equal Adam on the dense big-batch gradient.
    # (Keras' Adam on IndexedSlices squares each slice before summing repeats,
    # so it is not the reference here.)
    import tensorflow as tf

    ids = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(30, 4, name="Embedding-Token")(ids)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(ids, keras.layers.Dense(2, name="Pooler-Dense")(h))
    rng = np.random.RandomState(0)
    x = rng.randint(0, 6, (8, 5)).astype("int32")  # many repeated ids
    y = rng.randn(8, 2).astype("float32")
    init = model.get_weights()

    Opt = bo.extend_with_gradient_accumulation(keras.optimizers.Adam)
    model.compile(Opt(learning_rate=0.01, grad_accum_steps=2), "mse", jit_compile=True)
    model.train_on_batch(x[:4], y[:4])
    model.train_on_batch(x[4:], y[4:])
    got = model.get_weights()

    model.set_weights(init)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.mean_squared_error(y, model(x)))
    grads = tape.gradient(loss, model.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)
    reference = keras.optimizers.Adam(learning_rate=0.01)
    reference.apply([tf.convert_to_tensor(g) for g in grads], model.trainable_variables)
    for a, b in zip(got, model.get_weights()):
        assert_allclose(a, b)
