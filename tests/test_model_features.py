"""Recompute, conditional LayerNorm wiring and intermediate outputs."""
import functools

import keras
import numpy as np
import pytest

from bert4keras.layers import FeedForward, MultiHeadAttention
from bert4keras.models import attention_model, build_transformer_model, hidden_states_model

TINY = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=48, max_position=40)
IDS = np.array([[5, 9, 3, 7, 2, 0, 0], [4, 8, 8, 1, 0, 0, 0]], dtype="int32")
SEGS = np.array([[0, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0, 0]], dtype="int32")


def _gradients(model, inputs):
    """Gradients of a scalar loss w.r.t. every trainable weight, per backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.sum(keras.ops.square(model(inputs, training=True)))
        return [keras.ops.convert_to_numpy(tf.convert_to_tensor(g)) for g in tape.gradient(loss, model.trainable_variables)]
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss_fn(trainable):
        out, _ = model.stateless_call(trainable, non_trainable, inputs, training=True)
        return (out ** 2).sum()

    return [np.asarray(g) for g in jax.grad(loss_fn)(trainable)]


@pytest.mark.parametrize("model_name", ["bert", "roformer"])
def test_recompute_gradients_equal(model_name):
    plain = build_transformer_model(model=model_name, application="unilm", **TINY)
    remat = build_transformer_model(model=model_name, application="unilm", recompute=True, **TINY)
    remat.set_weights(plain.get_weights())
    inputs = [IDS, SEGS]
    for a, b in zip(_gradients(plain, inputs), _gradients(remat, inputs)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _compiled_gradients(model, inputs):
    """`_gradients` inside `tf.function` / `jax.jit`, as in `model.fit`."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def grads():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model(inputs, training=True)))
            return tape.gradient(loss, model.trainable_variables)

        return [np.asarray(tf.convert_to_tensor(g)) for g in grads()]
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def grads(trainable, non_trainable):
        def loss_fn(t):
            out, _ = model.stateless_call(t, non_trainable, inputs, training=True)
            return (out ** 2).sum()

        return jax.grad(loss_fn)(trainable)

    return [np.asarray(g) for g in grads(trainable, non_trainable)]


@pytest.mark.parametrize("model_name", ["bert", "roformer"])
def test_recompute_compiled_with_dropout_gradients_equal(model_name):
    """Compiled gradients (tf.function / jax.jit) with hidden and attention
    dropout: the rematerialised blocks reuse the forward's dropout masks, so
    both models draw the same masks from the same seeds and agree exactly."""
    dropout = dict(dropout_rate=0.1, attention_dropout_rate=0.3)
    models = {}
    for recompute in (False, True):
        keras.utils.set_random_seed(11)
        models[recompute] = build_transformer_model(
            model=model_name, application="unilm", recompute=recompute, **dropout, **TINY
        )
    models[True].set_weights(models[False].get_weights())
    plain = _compiled_gradients(models[False], [IDS, SEGS])
    remat = _compiled_gradients(models[True], [IDS, SEGS])
    keras.utils.set_random_seed(12)
    reference = build_transformer_model(model=model_name, application="unilm", **dropout, **TINY)
    reference.set_weights(models[False].get_weights())
    other_masks = _compiled_gradients(reference, [IDS, SEGS])
    assert len(plain) == len(remat) == len(other_masks)
    for a, b in zip(plain, remat):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # The dropout is real: other seeds give other gradients.
    assert max(np.abs(a - c).max() for a, c in zip(plain, other_masks)) > 1e-3


def test_recompute_fit_step_matches_plain():
    """`model.fit` with recompute=True (compiled train step on either backend)
    takes the same SGD step as the plain model."""
    weights = {}
    for recompute in (False, True):
        keras.utils.set_random_seed(5)
        encoder = build_transformer_model(
            recompute=recompute, dropout_rate=0.1, attention_dropout_rate=0.2, **TINY
        )
        logits = keras.layers.Dense(3, name="tags")(encoder.output)
        model = keras.Model(encoder.inputs, logits)
        if recompute:
            model.set_weights(weights[False][0])
        model.compile(
            keras.optimizers.SGD(0.5),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        before = [np.array(w) for w in model.get_weights()]
        labels = (IDS % 3).astype("int32")
        model.fit([IDS, SEGS], labels, batch_size=2, epochs=1, verbose=0, shuffle=False)
        weights[recompute] = (before, model.get_weights())
    (before, plain), (_, remat) = weights[False], weights[True]
    assert max(np.abs(a - b).max() for a, b in zip(before, plain)) > 1e-3  # it trained
    for a, b in zip(plain, remat):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_recompute_really_rematerialises(monkeypatch):
    """The block layers' forward work is recomputed in the backward pass.

    TensorFlow (`tf.recompute_grad`) runs the Python call again during the
    backward pass, so we count calls. JAX traces once and records the
    recomputation as a remat/checkpoint primitive in the gradient's jaxpr.
    """
    model = build_transformer_model(recompute=True, **TINY)
    ffn = model.get_layer("Transformer-0-FeedForward")
    # Only the block layers are rematerialised, not their Dense sublayers.
    assert ffn.rematerialized_call(ffn.call) is not ffn.call
    assert ffn.i0.rematerialized_call(ffn.i0.call) == ffn.i0.call
    layers = TINY["num_hidden_layers"]
    if keras.backend.backend() == "jax":
        import jax

        plain = build_transformer_model(**TINY)

        def primitives(m):
            trainable = [v.value for v in m.trainable_variables]

            def loss_fn(t):
                out, _ = m.stateless_call(t, [], [IDS, SEGS], training=True)
                return (out ** 2).sum()

            jaxpr = jax.make_jaxpr(jax.grad(loss_fn))(trainable)
            return [e.primitive.name for e in jaxpr.jaxpr.eqns]

        assert not any("remat" in p or "checkpoint" in p for p in primitives(plain))
        remats = [p for p in primitives(model) if "remat" in p or "checkpoint" in p]
        assert len(remats) >= 2 * layers
        return
    calls = {"attention": 0, "ffn": 0}
    attention_call, ffn_call = MultiHeadAttention.call, FeedForward.call

    @functools.wraps(attention_call)  # Keras reads call's signature
    def counted_attention(self, *args, **kwargs):
        calls["attention"] += 1
        return attention_call(self, *args, **kwargs)

    @functools.wraps(ffn_call)
    def counted_ffn(self, *args, **kwargs):
        calls["ffn"] += 1
        return ffn_call(self, *args, **kwargs)

    monkeypatch.setattr(MultiHeadAttention, "call", counted_attention)
    monkeypatch.setattr(FeedForward, "call", counted_ffn)
    counts = {}
    for recompute in (False, True):
        m = build_transformer_model(recompute=recompute, **TINY)
        calls.update(attention=0, ffn=0)
        _gradients(m, [IDS, SEGS])
        counts[recompute] = dict(calls)
    assert counts[False] == {"attention": layers, "ffn": layers}
    assert counts[True] == {"attention": 2 * layers, "ffn": 2 * layers}


def test_layer_norm_condition_int_input():
    model = build_transformer_model(
        layer_norm_cond=6, layer_norm_cond_hidden_size=4, layer_norm_cond_hidden_act="tanh",
        with_mlm=True, **TINY
    )
    assert [t.name for t in model.inputs] == ["Input-Token", "Input-Segment", "Input-LayerNorm-Condition"]
    plain = build_transformer_model(with_mlm=True, **TINY)
    # Zero-initialised condition maps: loading plain weights gives plain outputs.
    by_path = {w.path: w for w in model.weights}
    for w in plain.weights:
        by_path[w.path].assign(keras.ops.convert_to_numpy(w))  # a copy, not a shared buffer
    cond = np.random.RandomState(0).randn(2, 6).astype("float32")
    expected = plain.predict([IDS, SEGS], verbose=0)
    got = model.predict([IDS, SEGS, cond], verbose=0)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(a, b, atol=1e-5)
    norm = model.get_layer("Transformer-1-FeedForward-Norm")
    assert norm.conditional
    norm.gamma_dense.kernel.assign(np.ones((4, 32)))
    changed = model.predict([IDS, SEGS, cond], verbose=0)[0]
    other = model.predict([IDS, SEGS, -cond], verbose=0)[0]
    assert np.abs(changed - other).max() > 1e-3  # the condition now matters


def test_layer_norm_condition_keras_input_and_bad_value():
    cond = keras.Input(shape=(5,), name="my-condition")
    model = build_transformer_model(layer_norm_cond=cond, **TINY)
    assert model.inputs[-1].name == "my-condition"
    with pytest.raises(ValueError, match="layer_norm_cond must be an int"):
        build_transformer_model(layer_norm_cond="big", **TINY)


def test_hidden_states_and_attention_probabilities():
    model = build_transformer_model(application="unilm", **TINY)
    states = hidden_states_model(model).predict([IDS, SEGS], verbose=0)
    assert len(states) == TINY["num_hidden_layers"] + 1
    np.testing.assert_array_equal(states[-1], model.predict([IDS, SEGS], verbose=0))
    probs = attention_model(model, 1).predict([IDS, SEGS], verbose=0)
    assert probs.shape == (2, 4, 7, 7)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # UniLM: source token 0 never attends to target tokens 3, 4 or padding.
    assert probs[0, :, 0, 3:].max() == 0.0
    assert probs[0, :, 3, :4].min() > 0.0 and probs[0, :, 3, 4].max() == 0.0  # causal in target
    with pytest.raises(ValueError, match="block index in \\[0, 2\\).*got 9"):
        attention_model(model, 9)


def test_attention_probabilities_layer_round_trip(tmp_path):
    model = build_transformer_model(**TINY)
    probe = attention_model(model, 0)
    expected = probe.predict([IDS, SEGS], verbose=0)
    path = str(tmp_path / "probe.keras")
    probe.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict([IDS, SEGS], verbose=0), expected, atol=1e-6)


def test_recompute_warns_where_xla_undoes_it(monkeypatch):
    """JAX on CPU without the barrier flag: a warning naming the flag;
    with the flag, or on TensorFlow, none."""
    import warnings

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_transformer_model(recompute=True, **TINY)
    relevant = [w for w in caught if "recompute" in str(w.message)]
    messages = [str(w.message) for w in relevant]
    if keras.backend.backend() == "jax":
        import jax

        assert jax.default_backend() == "cpu"  # the CI machines
        assert len(messages) == 1 and "cse_barrier_expander" in messages[0]
        assert relevant[0].filename == __file__  # points at the caller
        monkeypatch.setenv("XLA_FLAGS", "--xla_disable_hlo_passes=cse_barrier_expander")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_transformer_model(recompute=True, **TINY)
        assert not [w for w in caught if "recompute" in str(w.message)]
    else:
        assert messages == []
