"""build_transformer_model: parity with transformers, round trips, bad input."""
import json
import os

import keras
import numpy as np
import pytest

from bert4keras.models import build_transformer_model
from helpers import write_google_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
ROFORMER_DIR = os.path.join(HERE, "data", "roformer_tiny")
TOL = 1e-4

TINY = dict(
    vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=48, max_position=40,
)


def _load_safetensors(folder):
    from safetensors.numpy import load_file

    return load_file(os.path.join(folder, "model.safetensors"))


@pytest.fixture(scope="module")
def minilm_ref():
    return dict(np.load(os.path.join(HERE, "data", "reference_minilm.npz")))


@pytest.fixture(scope="module")
def roformer_ref():
    return dict(np.load(os.path.join(ROFORMER_DIR, "reference.npz")))


def _max_err(a, b, valid):
    return float(np.abs(np.asarray(a) - b)[valid].max())


def tiny_inputs(batch=3, length=10, seed=0, vocab=60):
    rng = np.random.RandomState(seed)
    ids = rng.randint(1, vocab, size=(batch, length)).astype("int32")
    segs = np.zeros_like(ids)
    if batch >= 3:
        ids[1, 6:] = 0
        ids[2, 3:] = 0
        segs[0, 5:] = 1
        segs[1, 3:6] = 1
    return ids, segs


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize("application,key", [
    ("encoder", "sequence_output"),
    ("unilm", "unilm_sequence_output"),
    ("lm", "lm_sequence_output"),
])
def test_minilm_parity_safetensors(minilm_dir, minilm_ref, application, key):
    model = build_transformer_model(
        checkpoint_path=minilm_dir, application=application, with_pool=True
    )
    ids, segs = minilm_ref["token_ids"], minilm_ref["segment_ids"]
    seq, pooled = model.predict([ids, segs], verbose=0)
    valid = ids > 0
    assert _max_err(seq, minilm_ref[key], valid) < TOL
    if application == "encoder":
        assert np.abs(pooled - minilm_ref["pooled_output"]).max() < TOL
    else:  # the reference really differs between masks, so the check has teeth
        assert _max_err(minilm_ref[key], minilm_ref["sequence_output"], valid) > 1e-2


@pytest.mark.tf_only
def test_minilm_parity_google_checkpoint(minilm_dir, minilm_ref, tmp_path):
    prefix = write_google_checkpoint(_load_safetensors(minilm_dir), str(tmp_path / "bert_model.ckpt"))
    model = build_transformer_model(
        os.path.join(minilm_dir, "config.json"), prefix, with_pool=True
    )
    ids, segs = minilm_ref["token_ids"], minilm_ref["segment_ids"]
    seq, pooled = model.predict([ids, segs], verbose=0)
    assert _max_err(seq, minilm_ref["sequence_output"], ids > 0) < TOL
    assert np.abs(pooled - minilm_ref["pooled_output"]).max() < TOL


def test_roformer_mlm_parity(roformer_ref):
    model = build_transformer_model(
        checkpoint_path=ROFORMER_DIR, model="roformer", with_mlm="linear"
    )
    ids, segs = roformer_ref["token_ids"], roformer_ref["segment_ids"]
    seq, logits = model.predict([ids, segs], verbose=0)
    valid = ids > 0
    assert _max_err(seq, roformer_ref["sequence_output"], valid) < TOL
    assert _max_err(logits, roformer_ref["mlm_logits"], valid) < 5e-4
    probs = build_transformer_model(
        checkpoint_path=ROFORMER_DIR, model="roformer", with_mlm=True
    ).predict([ids, segs], verbose=0)[1]
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.tf_only
def test_roformer_parity_google_checkpoint(roformer_ref, tmp_path):
    prefix = write_google_checkpoint(
        _load_safetensors(ROFORMER_DIR), str(tmp_path / "roformer.ckpt"), model_prefix="roformer"
    )
    model = build_transformer_model(
        os.path.join(ROFORMER_DIR, "config.json"), prefix, model="roformer", with_mlm="linear"
    )
    ids, segs = roformer_ref["token_ids"], roformer_ref["segment_ids"]
    seq, logits = model.predict([ids, segs], verbose=0)
    assert _max_err(seq, roformer_ref["sequence_output"], ids > 0) < TOL
    assert _max_err(logits, roformer_ref["mlm_logits"], ids > 0) < 5e-4


# --------------------------------------------------------- padding / masks
# ELECTRA is an encoder only (its error for lm/unilm is tested in test_families).
@pytest.mark.parametrize("model_name,application", [
    (name, application) for name in ["bert", "roformer", "albert", "nezha", "electra", "roformer_v2"]
    for application in ["encoder", "lm", "unilm"] if name != "electra" or application == "encoder"])
def test_padding_invariance(model_name, application):
    model = build_transformer_model(model=model_name, application=application, with_mlm=True, **TINY)
    for w in model.weights:  # std 0.2: attention far from uniform
        w.assign(np.random.RandomState(1).normal(0, 0.2, w.shape).astype("float32"))
    ids, segs = tiny_inputs()
    out = model.predict([ids, segs], verbose=0)
    pad = ((0, 0), (0, 7))
    out_padded = model.predict([np.pad(ids, pad), np.pad(segs, pad)], verbose=0)
    valid = ids > 0
    for a, b in zip(out, out_padded):
        assert np.abs(a - b[:, : ids.shape[1]])[valid].max() < 1e-5


def test_masks_are_what_they_claim():
    """A token never influences outputs it must not see."""
    ids, segs = tiny_inputs(batch=1, length=8)
    segs[0] = [0, 0, 0, 1, 1, 1, 1, 1]
    changed = ids.copy()
    changed[0, 5] = (ids[0, 5] % 50) + 1
    for application, unaffected in [("lm", slice(0, 5)), ("unilm", slice(0, 5)), ("encoder", slice(0, 0))]:
        model = build_transformer_model(application=application, **TINY)
        a = model.predict([ids, segs], verbose=0)
        b = model.predict([changed, segs], verbose=0)
        np.testing.assert_allclose(a[0, unaffected], b[0, unaffected], atol=1e-6)
        assert np.abs(a[0, 5:] - b[0, 5:]).max() > 1e-4


# ----------------------------------------------------------------- outputs
def test_outputs_and_builder():
    builder = build_transformer_model(
        with_pool=True, with_nsp=True, with_mlm=True, return_keras_model=False, **TINY
    )
    model = builder.model
    assert isinstance(model, keras.Model)
    ids, segs = tiny_inputs()
    seq, nsp, mlm = model.predict([ids, segs], verbose=0)
    assert seq.shape == (3, 10, 32) and nsp.shape == (3, 2) and mlm.shape == (3, 10, 60)
    np.testing.assert_allclose(nsp.sum(-1), 1.0, atol=1e-5)
    names = {layer.name for layer in model.layers}
    for expected in ["Embedding-Token", "Embedding-Segment", "Embedding-Position", "Embedding-Norm",
                     "Transformer-1-MultiHeadSelfAttention", "Transformer-1-MultiHeadSelfAttention-Norm",
                     "Transformer-1-FeedForward", "Transformer-1-FeedForward-Norm", "Pooler-Dense",
                     "MLM-Dense", "MLM-Norm", "MLM-Bias", "NSP-Proba"]:
        assert expected in names
    assert [t.name for t in model.inputs] == ["Input-Token", "Input-Segment"]
    # Weights exist after construction, without a forward pass.
    fresh = build_transformer_model(**TINY)
    assert len(fresh.weights) == 5 + 2 * 16


def test_mlm_output_tied_to_token_embedding():
    model = build_transformer_model(with_mlm="linear", **TINY)
    emb = model.get_layer("Embedding-Token").embeddings
    before = model.predict(list(tiny_inputs()), verbose=0)[1]
    emb.assign(np.asarray(emb) * 2.0)
    after = model.predict(list(tiny_inputs()), verbose=0)[1]
    assert np.abs(before - after).max() > 1e-3
    mlm_weights = [w.path for w in model.get_layer("MLM-Bias").weights]
    assert mlm_weights == ["MLM-Bias/bias"]


def test_prefix_two_encoders_in_one_graph(minilm_dir, minilm_ref):
    a = build_transformer_model(checkpoint_path=minilm_dir, prefix="A-")
    b = build_transformer_model(checkpoint_path=minilm_dir, prefix="B-")
    assert a.get_layer("A-Embedding-Token") is not None
    joint = keras.Model(a.inputs + b.inputs, [a.outputs[0], b.outputs[0]])
    ids, segs = minilm_ref["token_ids"], minilm_ref["segment_ids"]
    out_a, out_b = joint.predict([ids, segs, ids, segs], verbose=0)
    assert _max_err(out_a, minilm_ref["sequence_output"], ids > 0) < TOL
    np.testing.assert_allclose(out_a, out_b, atol=1e-6)


def test_keep_and_compound_tokens(minilm_dir):
    arrays = _load_safetensors(minilm_dir)
    table = arrays["embeddings.word_embeddings.weight"]
    keep = [0, 100, 101, 102, 103, 2000, 7592]
    compound = [[2088, 2154], [7592]]
    model = build_transformer_model(checkpoint_path=minilm_dir, keep_tokens=keep, compound_tokens=compound)
    got = np.asarray(model.get_layer("Embedding-Token").embeddings)
    expected = np.concatenate([table[keep], table[[2088, 2154]].mean(0, keepdims=True), table[[7592]]])
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_sequence_length_and_max_position_override(minilm_dir):
    model = build_transformer_model(checkpoint_path=minilm_dir, sequence_length=16, max_position=64)
    assert tuple(model.inputs[0].shape) == (None, 16)
    assert model.get_layer("Embedding-Position").embeddings.shape == (64, 384)
    with pytest.raises(ValueError, match="exceeds the 8 positions"):
        build_transformer_model(sequence_length=16, **dict(TINY, max_position=8))


def test_kwargs_override_config(tmp_path, minilm_dir):
    model = build_transformer_model(
        os.path.join(minilm_dir, "config.json"), num_hidden_layers=2, dropout_rate=0.3,
        attention_dropout_rate=0.2,
    )
    assert model.get_layer("Embedding-Dropout").rate == 0.3
    assert model.get_layer("Transformer-0-MultiHeadSelfAttention").attention_dropout == 0.2
    assert "Transformer-2-FeedForward" not in {layer.name for layer in model.layers}


# -------------------------------------------------------------- round trips
def test_keras_and_h5_round_trip(tmp_path):
    model = build_transformer_model(model="roformer", application="unilm", with_pool=True, with_mlm=True, **TINY)
    ids, segs = tiny_inputs()
    expected = model.predict([ids, segs], verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(expected, loaded.predict([ids, segs], verbose=0)):
        np.testing.assert_array_equal(a, b)
    weights = str(tmp_path / "model.weights.h5")
    model.save_weights(weights)
    fresh = build_transformer_model(model="roformer", application="unilm", with_pool=True, with_mlm=True, **TINY)
    fresh.load_weights(weights)
    for a, b in zip(expected, fresh.predict([ids, segs], verbose=0)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.tf_only
@pytest.mark.parametrize("model_name", ["bert", "roformer"])
def test_google_checkpoint_round_trip(tmp_path, model_name):
    import tensorflow as tf

    builder = build_transformer_model(
        model=model_name, with_pool=True, with_nsp=True, with_mlm=True, return_keras_model=False,
        embedding_size=24, **TINY,
    )
    ids, segs = tiny_inputs()
    expected = builder.model.predict([ids, segs], verbose=0)
    prefix = str(tmp_path / "bert_model.ckpt")
    config = str(tmp_path / "bert_config.json")
    builder.save_weights_as_checkpoint(prefix, config_path=config)
    names = dict(tf.train.list_variables(prefix))
    assert names["bert/encoder/layer_1/attention/self/query/kernel"] == [32, 32]
    assert names["cls/seq_relationship/output_weights"] == [2, 32]
    assert names["bert/encoder/embedding_hidden_mapping_in/kernel"] == [24, 32]
    reloaded = build_transformer_model(config, prefix, model=model_name, with_pool=True, with_nsp=True, with_mlm=True)
    for a, b in zip(expected, reloaded.predict([ids, segs], verbose=0)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- bad input
def test_malformed_config(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        build_transformer_model(str(bad))
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"hidden_size": 32, "num_hidden_layers": 2}))
    with pytest.raises(ValueError, match="vocab_size.*missing.json"):
        build_transformer_model(str(missing))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(dict(vocab_size=10, hidden_size="32", num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=8)))
    with pytest.raises(ValueError, match="hidden_size.*wrong.json.*positive integer"):
        build_transformer_model(str(wrong))
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        build_transformer_model(str(tmp_path / "nowhere.json"))


def _copy_roformer_with(tmp_path, drop=None, reshape=None):
    from safetensors.numpy import save_file

    arrays = _load_safetensors(ROFORMER_DIR)
    if drop:
        del arrays[drop]
    if reshape:
        arrays[reshape] = arrays[reshape][:, :-1]
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file(arrays, str(folder / "model.safetensors"))
    with open(os.path.join(ROFORMER_DIR, "config.json")) as f:
        (folder / "config.json").write_text(f.read())
    return str(folder)


def test_missing_variable_is_named_and_nothing_loads(tmp_path):
    name = "roformer.encoder.layer.1.attention.self.key.weight"
    folder = _copy_roformer_with(tmp_path, drop=name)
    builder = build_transformer_model(os.path.join(folder, "config.json"), model="roformer", return_keras_model=False)
    before = [np.array(w) for w in builder.model.weights]
    with pytest.raises(ValueError) as info:
        builder.load_weights_from_checkpoint(folder)
    message = str(info.value)
    assert name in message and "model.safetensors" in message and "(32, 32)" in message
    for a, w in zip(before, builder.model.weights):  # never a half-load
        np.testing.assert_array_equal(a, np.asarray(w))


def test_shape_mismatch_names_both_shapes(tmp_path):
    name = "roformer.encoder.layer.0.intermediate.dense.weight"
    folder = _copy_roformer_with(tmp_path, reshape=name)
    with pytest.raises(ValueError) as info:
        build_transformer_model(checkpoint_path=folder, model="roformer")
    message = str(info.value)
    assert name in message and "(64, 31)" in message and "(32, 64)" in message


def _google_style_config(minilm_dir, tmp_path):
    """The MiniLM config without HF's model_type key, as Google ships configs."""
    with open(os.path.join(minilm_dir, "config.json")) as f:
        config = json.load(f)
    del config["model_type"]
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(config))
    return str(path)


def test_wrong_model_type(minilm_dir, tmp_path):
    with pytest.raises(ValueError, match="model_type 'roformer'.*pass model='roformer'"):
        build_transformer_model(checkpoint_path=ROFORMER_DIR, model="bert")
    with pytest.raises(ValueError, match="model_type 'bert'.*pass model='bert'"):
        build_transformer_model(checkpoint_path=minilm_dir, model="roformer")
    config = _google_style_config(minilm_dir, tmp_path)
    with pytest.raises(ValueError, match="BERT checkpoint, not RoFormer"):
        build_transformer_model(config, minilm_dir, model="roformer")
    with open(os.path.join(ROFORMER_DIR, "config.json")) as f:
        sizes = {k: v for k, v in json.load(f).items() if k in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "embedding_size")}
    with pytest.raises(ValueError, match="holds a 'roformer' model.*pass model='roformer'"):
        build_transformer_model(None, os.path.join(ROFORMER_DIR, "model.safetensors"), model="bert", **sizes)


@pytest.mark.tf_only
def test_wrong_model_type_google(minilm_dir, tmp_path):
    prefix = write_google_checkpoint(_load_safetensors(minilm_dir), str(tmp_path / "bert_model.ckpt"))
    with pytest.raises(ValueError, match="BERT checkpoint, not RoFormer"):
        build_transformer_model(_google_style_config(minilm_dir, tmp_path), prefix, model="roformer")


def test_nonexistent_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        build_transformer_model(checkpoint_path=str(tmp_path / "nothing_here" / "bert_model.ckpt"), **TINY)
    with pytest.raises(FileNotFoundError, match="x.safetensors"):
        build_transformer_model(checkpoint_path=str(tmp_path / "x.safetensors"), **TINY)
    (tmp_path / "torch_dir").mkdir()
    (tmp_path / "torch_dir" / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(FileNotFoundError, match="pickled PyTorch files are never loaded"):
        build_transformer_model(checkpoint_path=str(tmp_path / "torch_dir"), **TINY)
    with pytest.raises(ValueError, match="refusing to load"):
        build_transformer_model(checkpoint_path=str(tmp_path / "torch_dir" / "pytorch_model.bin"), **TINY)


def test_bad_arguments():
    with pytest.raises(ValueError, match="application"):
        build_transformer_model(application="decoder", **TINY)
    with pytest.raises(ValueError, match="keep_tokens"):
        build_transformer_model(keep_tokens=[0, 99], **TINY)
    with pytest.raises(TypeError, match="unknown arguments.*with_poll"):
        build_transformer_model(with_poll=True, **TINY)
    with pytest.raises(ValueError, match="not divisible"):
        build_transformer_model(**dict(TINY, num_attention_heads=5))


# ------------------------------------------------------- precision and XLA
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    ids, segs = tiny_inputs()
    reference = build_transformer_model(with_mlm=True, **TINY)
    expected = reference.predict([ids, segs], verbose=0)
    weights = reference.get_weights()
    keras.config.set_dtype_policy(policy)
    model = build_transformer_model(with_mlm=True, **TINY)
    model.set_weights(weights)
    seq, probs = model.predict([ids, segs], verbose=0)
    assert model.get_layer("Embedding-Token").embeddings.dtype == "float32"  # fp32 master weights
    assert str(seq.dtype) in ("float16", "bfloat16")
    assert probs.dtype == np.float32  # softmax head in float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    tol = 0.05 if policy == "mixed_float16" else 0.3
    assert np.abs(seq.astype("float32") - expected[0])[ids > 0].max() < tol
    assert np.isfinite(seq.astype("float32")).all()


def test_jit_compile_matches_eager(minilm_dir, minilm_ref):
    model = build_transformer_model(checkpoint_path=minilm_dir, with_pool=True)
    model.compile(jit_compile=True)
    ids, segs = minilm_ref["token_ids"], minilm_ref["segment_ids"]
    seq, pooled = model.predict([ids, segs], verbose=0)
    assert _max_err(seq, minilm_ref["sequence_output"], ids > 0) < TOL


def test_training_step_runs_with_dropout():
    model = build_transformer_model(with_mlm=True, dropout_rate=0.1, attention_dropout_rate=0.1, **TINY)
    model.compile(optimizer="adam", loss=[None, "sparse_categorical_crossentropy"])
    ids, segs = tiny_inputs()
    before = np.asarray(model.get_layer("Transformer-0-FeedForward").i0.kernel).copy()
    history = model.fit([ids, segs], [np.zeros((3, 10, 32)), ids], epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.abs(before - np.asarray(model.get_layer("Transformer-0-FeedForward").i0.kernel)).max() > 0
