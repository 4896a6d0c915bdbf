"""T5.1.1 / mT5.1.1: parity with transformers' MT5ForConditionalGeneration (untied
lm_head) from safetensors and from a mesh-TF checkpoint written by a converter
local to this file, round trips, cached generation equal to the full decoder,
config reading and bad input.

Reference data: tests/data/families/mt5_hf (make_generation_reference_hf.py),
weights at std 0.2, heads * d_kv (24) != d_model (32), 8 buckets up to
distance 16 on length-20 inputs (so the logarithmic buckets are used).
"""
import json
import os
import re

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file

from bert4keras.generation import EncoderDecoderCache, EncoderDecoderGenerator, Seq2SeqDecoder
from bert4keras.layers import CausalMask, PaddedStates, RelativePositionBias
from bert4keras.models import build_transformer_model, structure_of
from bert4keras.tf_checkpoint import BundleReader, write_bundle
from decoding_checks import assert_cached_equals_uncached

FAMILIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "families")
MT5 = os.path.join(FAMILIES, "mt5_hf")
VALID_DECODER = [9, 6, 4]


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(os.path.join(MT5, "reference.npz")))


@pytest.fixture(scope="module")
def mt5():
    return build_transformer_model(checkpoint_path=MT5, model="mt5.1.1", return_keras_model=False)


def decoder_valid(ref):
    valid = np.zeros(ref["decoder_ids"].shape, bool)
    for r, n in enumerate(VALID_DECODER):
        valid[r, :n] = True
    return valid


def check_parity(builder, ref):
    """Encoder states to 1e-4, decoder probabilities (`.decoder` and `.model`) to 5e-4."""
    enc, dec = ref["encoder_ids"], ref["decoder_ids"]
    states = builder.encoder.predict(enc, verbose=0)
    assert np.abs(states - ref["encoder"])[enc > 0].max() < 1e-4
    assert np.all(states[enc == 0] == 0)  # padded states are zero: the decoder's cross mask
    valid = decoder_valid(ref)
    expected = ref["decoder_logits"].astype("float64")
    expected = np.exp(expected - expected.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    for probs in (builder.decoder.predict([states, dec], verbose=0), builder.model.predict([enc, dec], verbose=0)):
        assert np.abs(probs - expected)[valid].max() < 5e-4


def hf_to_mesh(arrays):
    """Mesh-TF names for HF T5 names (mT5 naming: rms_norm), from the published layout.

    Written with plain string rules, independently of the library's name
    table. Torch Linear weights and relative_attention_bias are transposed.
    """
    mesh = {}
    for name, array in arrays.items():
        if name == "shared.weight":
            mesh["shared/embedding"] = array
            continue
        if name == "lm_head.weight":
            mesh["decoder/logits/kernel"] = array.T
            continue
        stack, rest = name.split(".", 1)
        if rest == "final_layer_norm.weight":
            mesh[stack + "/rms_norm/scale"] = array
            continue
        block, layer, module = re.match(r"block\.(\d+)\.layer\.(\d+)\.(.*)\.weight$", rest).groups()
        scope = "%s/block_%03d/layer_%03d/" % (stack, int(block), int(layer))
        if module == "layer_norm":
            mesh[scope + "rms_norm/scale"] = array
        elif module.startswith("DenseReluDense."):
            mesh[scope + module.replace(".", "/") + "/kernel"] = array.T
        else:  # SelfAttention.q, EncDecAttention.o, SelfAttention.relative_attention_bias
            mesh[scope + module.replace(".", "/")] = array.T
    # Adafactor slots, as mesh-TF training leaves them: never requested.
    mesh["shared/embedding_slot_vr"] = np.zeros(arrays["shared.weight"].shape[0], "float32")
    mesh["global_step"] = np.array(1000, "int64")
    return mesh


@pytest.fixture(scope="module")
def mesh_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mesh")
    prefix = str(folder / "model.ckpt")
    write_bundle(prefix, hf_to_mesh(load_file(os.path.join(MT5, "model.safetensors"))))
    return prefix


# ------------------------------------------------------------------ parity
def test_mt5_matches_transformers_from_safetensors(mt5, ref):
    check_parity(mt5, ref)
    logits = build_transformer_model(checkpoint_path=MT5, model="mt5.1.1", with_lm="linear")
    valid = decoder_valid(ref)
    error = np.abs(logits.predict([ref["encoder_ids"], ref["decoder_ids"]], verbose=0) - ref["decoder_logits"])
    assert error[valid].max() < 5e-4
    assert mt5.encoder.inputs[0].name == "Encoder-Input-Token"
    assert [t.name for t in mt5.decoder.inputs] == ["Input-Context", "Decoder-Input-Token"]
    structure = structure_of(mt5.model)
    assert len(structure.blocks) == 4 and structure.heads == {"lm": ["Decoder-Output-LM", "Decoder-Output-LM-Activation"]}


def test_mt5_matches_transformers_from_mesh_checkpoint(ref, mesh_checkpoint):
    builder = build_transformer_model(os.path.join(MT5, "config.json"), mesh_checkpoint, model="mt5.1.1",
                                      return_keras_model=False)
    check_parity(builder, ref)


# ------------------------------------------------------------- round trips
def test_mesh_checkpoint_round_trip(mt5, ref, mesh_checkpoint, tmp_path):
    enc, dec = ref["encoder_ids"], ref["decoder_ids"]
    expected = mt5.model.predict([enc, dec], verbose=0)
    prefix, config = str(tmp_path / "model.ckpt"), str(tmp_path / "config.json")
    mt5.save_weights_as_checkpoint(prefix, config_path=config)
    written, converted = BundleReader(prefix), BundleReader(mesh_checkpoint)
    mesh_names = {n for n in converted.names if "_slot_" not in n and n != "global_step"}
    assert set(written.names) == mesh_names
    for name in mesh_names:
        np.testing.assert_array_equal(written.get(name), converted.get(name), err_msg=name)
    reloaded = build_transformer_model(config, prefix, model="mt5.1.1")
    np.testing.assert_array_equal(reloaded.predict([enc, dec], verbose=0), expected)
    # T5.1.1 writes layer_norm in blocks and final_layer_norm after a stack (and reads both).
    t5 = build_transformer_model(config, prefix, model="t5.1.1", return_keras_model=False)
    t5.save_weights_as_checkpoint(str(tmp_path / "t5.ckpt"))
    assert set(BundleReader(str(tmp_path / "t5.ckpt")).names) == {
        n.replace("/rms_norm/", "/layer_norm/") if "block_" in n else n.replace("rms_norm", "final_layer_norm")
        for n in mesh_names}


def test_keras_file_round_trip(mt5, ref, tmp_path):
    enc, dec = ref["encoder_ids"], ref["decoder_ids"]
    expected = mt5.model.predict([enc, dec], verbose=0)
    path = str(tmp_path / "t5.keras")
    mt5.model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict([enc, dec], verbose=0), expected)
    assert loaded.builder is not None and loaded.builder.encoder is not None
    np.testing.assert_array_equal(loaded.builder.encoder.predict(enc, verbose=0), mt5.encoder.predict(enc, verbose=0))
    # The rebound builder's decoding methods run on the loaded layers.
    assert EncoderDecoderCache(loaded).cross_attention[0] is loaded.get_layer(
        "Decoder-Transformer-0-MultiHeadCrossAttention")


# -------------------------------------------------------- cached decoding
@pytest.fixture(scope="module")
def generators(mt5):
    return (EncoderDecoderGenerator(mt5, end_id=1, maxlen=8, minlen=3),
            EncoderDecoderGenerator(mt5, end_id=1, maxlen=8, minlen=3, use_cache=False))


def test_cached_generation_equals_uncached_and_rows_decode_alone(generators, ref):
    enc = ref["encoder_ids"]
    assert_cached_equals_uncached(*generators, enc, [enc[r:r + 1] for r in range(3)], minlen=3)


def test_cached_step_logprobs_follow_the_full_model(generators, ref, mt5):
    cache = generators[0].cache
    enc, dec = ref["encoder_ids"], ref["decoder_ids"]
    probs = mt5.model.predict([enc, dec], verbose=0).astype("float64")
    _, cross_mask, cross = cache.encode(enc)
    self_cache = cache.new_cache(3, 9)  # as the generator makes it: maxlen + 1 slots
    valid, worst = decoder_valid(ref), 0.0
    for t in range(dec.shape[1]):
        logprobs, self_cache = cache.step(self_cache, cross, cross_mask, dec[:, t], t)
        live = valid[:, t]
        worst = max(worst, np.abs(np.asarray(logprobs)[live] - np.log(probs[live, t])).max())
    assert worst < 1e-4, worst
    with pytest.raises(ValueError, match="slot must be in \\[0, 9\\)"):
        cache.step(self_cache, cross, cross_mask, dec[:, 0], 9)


# ----------------------------------------------------------- configs, layers
def test_configs_and_variants(tmp_path):
    hf = build_transformer_model(os.path.join(MT5, "config.json"), model="mt5.1.1", return_keras_model=False)
    assert (hf.attention_head_size, hf.num_decoder_layers, hf.relative_attention_buckets) == (6, 2, 8)
    assert hf.gated and hf.hidden_act == "gelu_new" and not hf.tie_word_embeddings
    # T5-PEGASUS ships a bert4keras-style config: BERT key names, 'gelu' meaning the erf form.
    pegasus = {"hidden_act": ["gelu", "linear"], "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02,
               "intermediate_size": 48, "num_attention_heads": 4, "attention_head_size": 6,
               "num_hidden_layers": 2, "vocab_size": 50, "relative_attention_num_buckets": 8,
               "attention_scale": False, "is_dropout": True}
    path = str(tmp_path / "config.json")
    with open(path, "w") as f:
        json.dump(pegasus, f)
    b4k = build_transformer_model(path, model="mt5.1.1", return_keras_model=False)
    assert (b4k.attention_head_size, b4k.dropout_rate, b4k.hidden_act, b4k.gated) == (6, 0.1, "gelu", True)
    assert b4k.layers["Encoder-Transformer-0-FeedForward"].i1 is not None
    # T5.1.0: ReLU, tied output scaled by d_model ** -0.5 (written against the formula).
    v10 = build_transformer_model(path, model="t5", hidden_act="relu", dropout_rate=0.0, return_keras_model=False)
    assert not v10.gated and v10.tie_word_embeddings and v10.hidden_act == "relu"
    rng = np.random.RandomState(3)
    for w in v10.model.weights:
        w.assign(rng.normal(0, 0.2, w.shape) + (1.0 if w.path.endswith("gamma") else 0.0))
    enc, dec = np.array([[5, 6, 7, 0]]), np.array([[0, 3, 4]])
    hidden = build_transformer_model(path, model="t5", hidden_act="relu", dropout_rate=0.0, with_lm=False)
    hidden.set_weights(v10.model.get_weights())
    h = hidden.predict([enc, dec], verbose=0).astype("float64")
    logits = h @ np.asarray(v10.layers["Embedding-Token"].embeddings, "float64").T * 32 ** -0.5
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(v10.model.predict([enc, dec], verbose=0), expected / expected.sum(-1, keepdims=True),
                               atol=1e-5)


def test_relative_buckets_against_mesh_tf_formula():
    # mesh-TF's _relative_position_bucket, written out in numpy (float64 log).
    def buckets(relative, num_buckets, max_distance, bidirectional):
        n, ret = -relative, 0
        if bidirectional:
            num_buckets //= 2
            ret += (n < 0) * num_buckets
            n = np.abs(n)
        else:
            n = np.maximum(n, 0)
        exact = num_buckets // 2
        large = exact + (np.log(np.maximum(n, 1) / exact) / np.log(max_distance / exact)
                         * (num_buckets - exact)).astype("int64")
        return ret + np.where(n < exact, n, np.minimum(large, num_buckets - 1))

    from bert4keras.layers.encoder_decoder import relative_position_buckets

    relative = np.arange(-300, 301)[None]
    for bidirectional in (True, False):
        ours = keras.ops.convert_to_numpy(relative_position_buckets(relative, 32, 128, bidirectional))
        np.testing.assert_array_equal(ours, buckets(relative, 32, 128, bidirectional))


def test_encoder_decoder_layers_serialize_and_keep_float32_bias():
    layer = RelativePositionBias(heads=2, num_buckets=8, max_distance=16, bidirectional=False,
                                 embeddings_initializer="random_normal")
    x = np.zeros((2, 5, 4), "float32")
    bias = np.asarray(layer(x))
    clone = RelativePositionBias.from_config(layer.get_config())
    clone.build(None)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), bias)
    step = np.asarray(layer([np.array([[3]]), np.arange(5)[None]]))
    np.testing.assert_array_equal(step[0, :, 0], bias[0, :, 3])  # a cached step sees the same row
    assert np.all(bias[0, :, 0, 1:] == bias[0, :, 0, 1:2])  # future keys all share bucket 0
    mixed = RelativePositionBias(heads=2, num_buckets=8, max_distance=16, dtype="mixed_bfloat16")
    assert keras.backend.standardize_dtype(mixed(x.astype("bfloat16")).dtype) == "float32"
    states = np.ones((1, 3, 4), "float32")
    zeroed = PaddedStates()([states, np.array([[4, 5, 0]])])
    assert np.asarray(PaddedStates()(zeroed, key_mask=True)).tolist() == [[[[True, True, False]]]]
    assert PaddedStates.from_config(PaddedStates().get_config()) is not None
    assert np.asarray(CausalMask()(np.zeros((1, 3)))).sum() == 6


def test_padding_does_not_change_valid_outputs(mt5, ref):
    enc, dec = ref["encoder_ids"][:, :14], ref["decoder_ids"][:, :6]
    padded_enc = np.pad(enc, ((0, 0), (0, 6)))
    padded_dec = np.pad(dec, ((0, 0), (0, 3)))
    a = mt5.model.predict([enc, dec], verbose=0)
    b = mt5.model.predict([padded_enc, padded_dec], verbose=0)[:, :6]
    np.testing.assert_allclose(a, b, atol=1e-5)


# --------------------------------------------------------------- bad input
def test_foreign_checkpoints_and_decoders_are_refused(mt5, mesh_checkpoint):
    sizes = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
    for checkpoint in (os.path.join(MT5, "model.safetensors"), mesh_checkpoint):
        with pytest.raises(ValueError, match="holds a 'mt5.1.1' model.*pass model='mt5.1.1'"):
            build_transformer_model(None, checkpoint, model="bert", **sizes)
    with pytest.raises(ValueError, match="config .* is for model_type"):
        build_transformer_model(os.path.join(FAMILIES, "gpt2_hf", "config.json"), model="t5.1.1")
    bert_checkpoint = os.path.join(FAMILIES, "nezha_b4k", "model.ckpt")
    with pytest.raises(ValueError, match="is not a T5 checkpoint \\(no 'shared/embedding'\\)"):
        build_transformer_model(None, bert_checkpoint, model="mt5.1.1", **sizes)
    with pytest.raises(ValueError, match="is an encoder-decoder \\('mt5.1.1'\\).*EncoderDecoderGenerator"):
        Seq2SeqDecoder(mt5.model, end_id=1, maxlen=4)
    bert = build_transformer_model(model="bert", application="unilm", with_mlm=True, **sizes)
    with pytest.raises(ValueError, match="needs an encoder-decoder model.*use Seq2SeqDecoder"):
        EncoderDecoderCache(bert)
