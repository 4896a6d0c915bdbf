"""ALBERT, NEZHA, ELECTRA and RoFormer-v2: parity with independent implementations,
cached decoding, the structure-driven helpers and round trips, on every family.

The reference arrays in tests/data/families come from bojone's bert4keras 0.11.5
(Google-format checkpoints) and from transformers (safetensors); see the
README there. Weights are drawn at std 0.2, so attention is far from uniform.
"""
import os

import keras
import numpy as np
import pytest

from bert4keras.generation import Seq2SeqDecoder
from bert4keras.models import (
    attention_model,
    build_transformer_model,
    hidden_states_model,
    model_names,
    structure_of,
)
from bert4keras.optimizers import extend_with_layerwise_lr, layerwise_lr_decay

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = os.path.join(HERE, "data", "families")
HIDDEN_TOL, OUTPUT_TOL = 1e-4, 5e-4
NEW_FAMILIES = ["albert", "albert_unshared", "nezha", "electra", "roformer_v2"]
ALL_FAMILIES = ["bert", "roformer"] + NEW_FAMILIES


def case(name):
    folder = os.path.join(FAMILIES, name)
    reference = dict(np.load(os.path.join(folder, "reference.npz")))
    checkpoint = os.path.join(folder, "model.ckpt")
    if not os.path.exists(checkpoint + ".index"):
        checkpoint = folder
    return os.path.join(folder, "config.json"), checkpoint, reference


def max_error(ours, reference, token_ids):
    ours = np.asarray(ours, "float32").reshape(reference.shape)
    return float(np.abs(ours - reference)[token_ids > 0].max())


def inputs(reference):
    return [reference["token_ids"], reference["segment_ids"]]


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize("model_name", ["albert", "albert_unshared"])
def test_albert_matches_bert4keras_google_checkpoint(model_name):
    config, checkpoint, ref = case("albert_b4k")
    model = build_transformer_model(config, checkpoint, model=model_name, with_pool=True, with_mlm=True)
    sequence, pooled, probs = model.predict(inputs(ref), verbose=0)
    ids = ref["token_ids"]
    assert max_error(sequence, ref["encoder"], ids) < HIDDEN_TOL
    assert np.abs(pooled - ref["pooled"]).max() < HIDDEN_TOL
    assert max_error(probs, ref["mlm_probs"], ids) < OUTPUT_TOL


def test_albert_matches_transformers_safetensors():
    _, folder, ref = case("albert_hf")
    model = build_transformer_model(checkpoint_path=folder, model="albert", with_mlm="linear")
    sequence, logits = model.predict(inputs(ref), verbose=0)
    assert max_error(sequence, ref["encoder"], ref["token_ids"]) < HIDDEN_TOL
    assert max_error(logits, ref["mlm_logits"], ref["token_ids"]) < OUTPUT_TOL


def test_albert_unshared_equals_albert_and_has_separate_weights():
    config, checkpoint, ref = case("albert_b4k")
    shared = build_transformer_model(config, checkpoint, model="albert")
    unshared = build_transformer_model(config, checkpoint, model="albert_unshared")
    np.testing.assert_allclose(shared.predict(inputs(ref), verbose=0),
                               unshared.predict(inputs(ref), verbose=0), atol=1e-6)
    assert len(unshared.weights) > len(shared.weights)
    kernels = [unshared.get_layer("Transformer-%d-FeedForward" % i).o.kernel for i in range(3)]
    kernels[0].assign(kernels[0] + 1.0)  # layers can now move apart
    assert np.abs(np.asarray(kernels[0]) - np.asarray(kernels[1])).min() > 0.5


@pytest.mark.parametrize("application,key", [("encoder", "mlm_probs"), ("unilm", "unilm_mlm_probs")])
@pytest.mark.parametrize("model_name", ["nezha", "roformer_v2"])
def test_matches_bert4keras_as_encoder_and_unilm(model_name, application, key):
    config, checkpoint, ref = case(model_name + "_b4k")
    model = build_transformer_model(config, checkpoint, model=model_name, application=application,
                                    with_mlm=True)
    sequence, probs = model.predict(inputs(ref), verbose=0)
    if application == "encoder":
        assert max_error(sequence, ref["encoder"], ref["token_ids"]) < HIDDEN_TOL
    assert max_error(probs, ref[key], ref["token_ids"]) < OUTPUT_TOL


def test_nezha_relative_positions_are_clipped():
    # Rows of 80 tokens: without the clipping at 64 the outputs move by ~0.1.
    config, checkpoint, ref = case("nezha_b4k")
    unclipped = build_transformer_model(config, checkpoint, model="nezha", max_relative_position=128)
    error = max_error(unclipped.predict(inputs(ref), verbose=0), ref["encoder"], ref["token_ids"])
    assert error > 1e-2


def test_electra_matches_bert4keras_google_checkpoint():
    config, checkpoint, ref = case("electra_b4k")
    model = build_transformer_model(config, checkpoint, model="electra", with_discriminator=True)
    sequence, probs = model.predict(inputs(ref), verbose=0)
    assert max_error(sequence, ref["encoder"], ref["token_ids"]) < HIDDEN_TOL
    assert max_error(probs, ref["discriminator_probs"], ref["token_ids"]) < OUTPUT_TOL


def test_electra_matches_transformers_discriminator_and_generator():
    _, folder, ref = case("electra_hf")
    model = build_transformer_model(checkpoint_path=folder, model="electra", with_discriminator="linear")
    sequence, logits = model.predict(inputs(ref), verbose=0)
    assert max_error(sequence, ref["encoder"], ref["token_ids"]) < HIDDEN_TOL
    assert max_error(logits, ref["discriminator_logits"], ref["token_ids"]) < OUTPUT_TOL
    _, folder, ref = case("electra_hf_generator")
    model = build_transformer_model(checkpoint_path=folder, model="electra", with_mlm="linear")
    sequence, logits = model.predict(inputs(ref), verbose=0)
    assert max_error(sequence, ref["encoder"], ref["token_ids"]) < HIDDEN_TOL
    assert max_error(logits, ref["mlm_logits"], ref["token_ids"]) < OUTPUT_TOL


def test_electra_is_an_encoder_only():
    config, _, _ = case("electra_b4k")
    for application in ("lm", "unilm"):
        with pytest.raises(ValueError, match="application must be one of \\['encoder'\\] for model 'electra'"):
            build_transformer_model(config, model="electra", application=application)


def test_wrong_family_checkpoints_are_refused():
    _, folder, _ = case("albert_hf")
    sizes = dict(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                 intermediate_size=64, embedding_size=16, max_position=96)
    with pytest.raises(ValueError, match="holds a 'albert' model.*pass model='albert'"):
        build_transformer_model(None, os.path.join(folder, "model.safetensors"), model="electra", **sizes)
    config, checkpoint, _ = case("albert_b4k")
    with pytest.raises(ValueError, match="ALBERT names.*pass model='albert'"):
        build_transformer_model(config, checkpoint, model="bert")
    config, checkpoint, _ = case("nezha_b4k")
    with pytest.raises(ValueError, match="RoFormer \\(v1\\) checkpoint.*pass model='roformer'"):
        build_transformer_model(config, checkpoint, model="roformer_v2")


def test_registry_names():
    assert set(ALL_FAMILIES + ["roberta"]) <= set(model_names())


# ------------------------------------------------------- cached decoding
@pytest.mark.parametrize("application", ["unilm", "lm"])
@pytest.mark.parametrize("model_name", ["nezha", "roformer_v2", "albert"])
def test_cached_decoding_equals_uncached(model_name, application):
    config, checkpoint, ref = case(model_name + "_b4k")
    model = build_transformer_model(config, checkpoint, model=model_name, application=application,
                                    with_mlm=True)
    ids = ref["token_ids"]
    lengths = [9, 5, 3]
    prefixes = [ids[r, :n] for r, n in enumerate(lengths)]
    segments = [np.zeros(n, "int32") for n in lengths]
    cached = Seq2SeqDecoder(model, end_id=3, maxlen=8, minlen=5, use_cache=True)
    full = Seq2SeqDecoder(model, end_id=3, maxlen=8, minlen=5, use_cache=False)
    for search in (lambda d: d.greedy([prefixes, segments]),
                   lambda d: d.beam_search([prefixes, segments], topk=3)):
        a, b = search(cached), search(full)
        assert len(a) == 3 and all(len(x) >= 5 for x in a)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # The cached log-probabilities themselves follow the full model.
    logprobs, _ = cached.cache.prefill(ids[:, :6], np.zeros_like(ids[:, :6]), 12)
    probs = model.predict([ids[:, :6], np.zeros_like(ids[:, :6])], verbose=0)[1][:, -1]
    np.testing.assert_allclose(np.exp(np.asarray(logprobs)), probs, atol=1e-5)


# -------------------------------------------------- structure-driven helpers
def tiny(model_name, **kwargs):
    sizes = dict(vocab_size=40, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                 intermediate_size=24, max_position=24)
    if model_name.startswith("albert"):
        sizes["embedding_size"] = 8
    return build_transformer_model(model=model_name, return_keras_model=False, **dict(sizes, **kwargs))


def randomise(model, seed=0):
    rng = np.random.RandomState(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.2, w.shape).astype("float32") + (1.0 if w.path.endswith("gamma") else 0.0))


TOKENS = np.array([[2, 5, 7, 9, 11, 13, 0, 0], [4, 6, 8, 10, 12, 14, 16, 18]], "int32")
SEGMENTS = np.array([[0, 0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]], "int32")


@pytest.mark.parametrize("model_name", ALL_FAMILIES)
def test_hidden_states_and_attention_probes(model_name):
    builder = tiny(model_name, application="encoder")
    randomise(builder.model)
    model = builder.model
    sequence = model.predict([TOKENS, SEGMENTS], verbose=0)
    sequence = sequence[0] if isinstance(sequence, list) else sequence
    states = hidden_states_model(model).predict([TOKENS, SEGMENTS], verbose=0)
    assert len(states) == 4
    np.testing.assert_array_equal(states[-1], sequence)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(states, states[1:]))  # each block moves
    for index in range(3):
        probs = attention_model(model, index).predict([TOKENS, SEGMENTS], verbose=0)
        assert probs.shape == (2, 2, 8, 8)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        assert probs[0, :, :, 6:].max() == 0.0  # padded keys get no attention


@pytest.mark.parametrize("model_name", ALL_FAMILIES)
def test_layerwise_decay_from_structure(model_name):
    builder = tiny(model_name, with_pool=True, with_mlm=True)
    model, decay, blocks = builder.model, 0.5, 3
    multipliers = layerwise_lr_decay(model, decay)
    variables = model.trainable_variables
    opt = extend_with_layerwise_lr(keras.optimizers.SGD)(learning_rate=1.0, lr_multipliers=multipliers)
    before = [np.asarray(v).copy() for v in variables]
    opt.apply([keras.ops.ones(v.shape) for v in variables], variables)
    shared = model_name == "albert"
    for v, w0 in zip(variables, before):
        layer = v.path.split("/")[0]
        # Expected depth written from the family's documented layout, not from the structure.
        if layer.startswith("Embedding-"):
            depth = 0
        elif layer.startswith("Transformer-"):
            depth = blocks if shared else int(layer.split("-")[1]) + 1
        else:
            depth = blocks + 1
        expected = decay ** (blocks + 1 - depth)
        np.testing.assert_allclose(w0 - np.asarray(v), expected, rtol=1e-6, err_msg=v.path)
    if shared:
        assert sorted(set(multipliers.values())) == [decay ** 4, decay]
    # A task model on top of the encoder finds the same structure.
    task = keras.Model(model.inputs, keras.layers.Dense(2, name="Task")(model.outputs[0]))
    assert layerwise_lr_decay(task, decay) == multipliers


@pytest.mark.parametrize("model_name", ALL_FAMILIES)
def test_recompute_gradients_equal(model_name):
    application = "encoder" if model_name == "electra" else "unilm"
    plain = tiny(model_name, application=application, with_mlm=True)
    randomise(plain.model)
    with pytest.warns(UserWarning) if keras.backend.backend() == "jax" else _nothing():
        remat = tiny(model_name, application=application, with_mlm=True, recompute=True)
    remat.model.set_weights(plain.model.get_weights())
    grads = [_mlm_gradients(b.model) for b in (plain, remat)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-5)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def _mlm_gradients(model):
    """Gradients of a fixed MLM loss, backend-agnostic."""
    x = [keras.ops.convert_to_tensor(TOKENS), keras.ops.convert_to_tensor(SEGMENTS)]
    variables = model.trainable_variables

    def loss_fn(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            probs = model(x, training=True)[-1]
        return keras.ops.sum(keras.ops.log(keras.ops.take_along_axis(
            probs, keras.ops.convert_to_tensor(TOKENS)[..., None], axis=-1)))

    values = [v.value for v in variables]
    if keras.backend.backend() == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(loss_fn)(values)]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(values)
        loss = loss_fn(values)
    return [np.asarray(tf.convert_to_tensor(g)) for g in tape.gradient(loss, values)]


@pytest.mark.parametrize("model_name", ALL_FAMILIES)
def test_pretraining_model_is_the_mlm_head_on_gathered_positions(model_name):
    from pretraining.model import build_pretraining_model

    builder = tiny(model_name, with_mlm="linear")
    randomise(builder.model)
    pretraining = build_pretraining_model(builder, max_predictions=3)
    positions = np.array([[1, 4, 0], [7, 2, 3]], "int32")
    logits = pretraining.predict([TOKENS, SEGMENTS, positions], verbose=0)
    full = builder.model.predict([TOKENS, SEGMENTS], verbose=0)[-1]
    full = full[..., 0] if full.ndim == 4 else full
    expected = np.take_along_axis(full, positions[..., None], axis=1)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert {w.path for w in pretraining.weights} <= {w.path for w in builder.model.weights}


# ---------------------------------------------------- round trips and options
@pytest.mark.parametrize("model_name", ALL_FAMILIES)
def test_keras_file_round_trip(model_name, tmp_path):
    application = "encoder" if model_name == "electra" else "unilm"
    extra = {"with_discriminator": True} if model_name == "electra" else {}
    builder = tiny(model_name, application=application, with_pool=True, with_mlm=True, **extra)
    randomise(builder.model)
    expected = builder.model.predict([TOKENS, SEGMENTS], verbose=0)
    path = str(tmp_path / "model.keras")
    builder.model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(expected, loaded.predict([TOKENS, SEGMENTS], verbose=0)):
        np.testing.assert_array_equal(a, b)
    # The reloaded model gets a builder over its own layers: the helpers still work.
    states = hidden_states_model(loaded).predict([TOKENS, SEGMENTS], verbose=0)
    np.testing.assert_array_equal(states[-1], expected[0])
    assert layerwise_lr_decay(loaded, 0.5) == layerwise_lr_decay(builder.model, 0.5)
    if model_name in ("albert", "nezha"):  # decoding after reload; all families decode above
        prefix = [TOKENS[:, :4], SEGMENTS[:, :4]]
        ours = Seq2SeqDecoder(builder.model, end_id=3, maxlen=4).greedy(prefix)
        theirs = Seq2SeqDecoder(loaded, end_id=3, maxlen=4).greedy(prefix)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model_name", ALL_FAMILIES)
def test_google_checkpoint_round_trip(model_name, tmp_path):
    application = "encoder" if model_name == "electra" else "unilm"
    extra = {"with_discriminator": True} if model_name == "electra" else {}
    builder = tiny(model_name, application=application, with_pool=True, with_mlm=True, **extra)
    randomise(builder.model)
    expected = builder.model.predict([TOKENS, SEGMENTS], verbose=0)
    prefix, config = str(tmp_path / "model.ckpt"), str(tmp_path / "config.json")
    builder.save_weights_as_checkpoint(prefix, config_path=config)
    reloaded = build_transformer_model(config, prefix, model=model_name, application=application,
                                       with_pool=True, with_mlm=True, **extra)
    for a, b in zip(expected, reloaded.predict([TOKENS, SEGMENTS], verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_albert_unshared_saves_per_layer_names_that_bert_layout_loads(tmp_path):
    config, checkpoint, ref = case("albert_b4k")
    builder = build_transformer_model(config, checkpoint, model="albert_unshared", return_keras_model=False)
    layer = builder.model.get_layer("Transformer-2-FeedForward")
    layer.o.kernel.assign(layer.o.kernel + 0.5)  # fine-tuned apart from the shared start
    expected = builder.model.predict(inputs(ref), verbose=0)
    prefix = str(tmp_path / "unshared.ckpt")
    builder.save_weights_as_checkpoint(prefix)
    for model_name in ("albert_unshared", "bert"):
        reloaded = build_transformer_model(config, prefix, model=model_name)
        np.testing.assert_array_equal(reloaded.predict(inputs(ref), verbose=0), expected)
    with pytest.raises(ValueError, match="cannot store them"):  # the shared layout can't hold it
        from bert4keras import checkpoints

        albert = build_transformer_model(config, model="albert", return_keras_model=False)
        table = albert.name_table()._replace(variables=builder.variable_mapping())
        checkpoints.checkpoint_arrays(builder.model, table._replace(variables=[
            v._replace(google=v.google[1]) if isinstance(v.google, tuple) else v for v in table.variables]))


@pytest.mark.parametrize("model_name", NEW_FAMILIES)
def test_keep_and_compound_tokens(model_name, tmp_path):
    builder = tiny(model_name, with_mlm=True)
    randomise(builder.model)
    prefix, config = str(tmp_path / "model.ckpt"), str(tmp_path / "config.json")
    builder.save_weights_as_checkpoint(prefix, config_path=config)
    keep, compound = [0, 5, 7, 9], [[5, 7], [9]]
    small = build_transformer_model(config, prefix, model=model_name, with_mlm=True, keep_tokens=keep,
                                    compound_tokens=compound)
    table = np.asarray(builder.model.get_layer("Embedding-Token").embeddings)
    ours = np.asarray(small.get_layer("Embedding-Token").embeddings)
    np.testing.assert_array_equal(ours[:4], table[keep])
    np.testing.assert_allclose(ours[4], table[[5, 7]].mean(0), atol=1e-6)
    assert small.predict([TOKENS % 6, SEGMENTS], verbose=0)[-1].shape == (2, 8, 6)


@pytest.mark.parametrize("model_name", NEW_FAMILIES)
def test_mixed_precision_and_jit_compile(model_name):
    builder = tiny(model_name, with_mlm=True)
    randomise(builder.model)
    expected = builder.model.predict([TOKENS, SEGMENTS], verbose=0)
    builder.model.compile(jit_compile=True)
    for a, b in zip(expected, builder.model.predict([TOKENS, SEGMENTS], verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    weights = builder.model.get_weights()
    keras.config.set_dtype_policy("mixed_bfloat16")
    low = tiny(model_name, with_mlm=True).model
    low.set_weights(weights)
    outputs = low.predict([TOKENS, SEGMENTS], verbose=0)
    assert str(outputs[0].dtype) == "bfloat16" and outputs[-1].dtype == np.float32
    np.testing.assert_allclose(outputs[-1].sum(-1), 1.0, atol=1e-4)
    valid = TOKENS > 0
    assert np.abs(outputs[0].astype("float32") - expected[0])[valid].max() < 0.3


def test_structure_lists_each_family_once():
    builder = tiny("albert", with_pool=True, with_mlm=True)
    structure = structure_of(builder.model)
    assert structure.blocks[0] == structure.blocks[2]  # one shared block
    assert structure.attention == ["Transformer-MultiHeadSelfAttention"] * 3
    assert set(structure.heads) == {"pool", "mlm"}
    assert "Embedding-Mapping" in structure.embeddings
