"""GPT-2 and GPT2-ML: parity with transformers and bert4keras 0.11.5, checkpoint
and `.keras` round trips, and cached decoding equal to the full model.

Reference data: tests/data/families/gpt2_hf (make_generation_reference_hf.py)
and gpt2_ml_b4k (make_generation_reference_b4k.py); weights at std 0.2.
"""
import os

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file

from bert4keras.generation import KVCache, Seq2SeqDecoder, _log_softmax
from bert4keras.models import build_transformer_model, hidden_states_model, structure_of
from bert4keras.tf_checkpoint import BundleReader
from decoding_checks import assert_cached_equals_uncached

FAMILIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "families")
GPT2 = os.path.join(FAMILIES, "gpt2_hf")
GPT2_ML = os.path.join(FAMILIES, "gpt2_ml_b4k")


def reference(folder):
    return dict(np.load(os.path.join(folder, "reference.npz")))


def max_error(ours, expected, token_ids):
    return float(np.abs(np.asarray(ours, "float32") - expected)[token_ids > 0].max())


@pytest.fixture(scope="module")
def gpt2():
    return build_transformer_model(checkpoint_path=GPT2, model="gpt2", return_keras_model=False)


@pytest.fixture(scope="module")
def gpt2_ml():
    return build_transformer_model(os.path.join(GPT2_ML, "config.json"), os.path.join(GPT2_ML, "model.ckpt"),
                                   model="gpt2_ml", return_keras_model=False)


# ------------------------------------------------------------------ parity
def test_gpt2_matches_transformers(gpt2):
    ref = reference(GPT2)
    ids = ref["token_ids"]
    probs = gpt2.model.predict(ids, verbose=0)
    logits = build_transformer_model(checkpoint_path=GPT2, model="gpt2", with_lm="linear").predict(ids, verbose=0)
    hidden = build_transformer_model(checkpoint_path=GPT2, model="gpt2", with_lm=False).predict(ids, verbose=0)
    assert max_error(hidden, ref["hidden"], ids) < 1e-4
    assert max_error(logits, ref["logits"], ids) < 5e-4
    expected = np.exp(_log_softmax(ref["logits"].astype("float64")))
    assert max_error(probs, expected, ids) < 5e-4
    assert structure_of(gpt2.model).final_norm == ["Output-Norm"]
    assert gpt2.application == "lm" and [t.name for t in gpt2.model.inputs] == ["Input-Token"]


def test_gpt2_ml_matches_bert4keras(gpt2_ml):
    ref = reference(GPT2_ML)
    probs = gpt2_ml.model.predict(ref["token_ids"], verbose=0)
    assert max_error(probs, ref["lm_probs"], ref["token_ids"]) < 5e-4


# ------------------------------------------------------------- round trips
def test_gpt2_openai_checkpoint_round_trip(gpt2, tmp_path):
    ids = reference(GPT2)["token_ids"]
    expected = gpt2.model.predict(ids, verbose=0)
    prefix, config = str(tmp_path / "model.ckpt"), str(tmp_path / "config.json")
    gpt2.save_weights_as_checkpoint(prefix, config_path=config)
    # OpenAI's names and layouts, checked against the HF file directly.
    stored, hf = BundleReader(prefix), load_file(os.path.join(GPT2, "model.safetensors"))
    np.testing.assert_array_equal(stored.get("model/h1/attn/c_attn/w"), hf["transformer.h.1.attn.c_attn.weight"][None])
    np.testing.assert_array_equal(stored.get("model/h0/mlp/c_proj/b"), hf["transformer.h.0.mlp.c_proj.bias"])
    np.testing.assert_array_equal(stored.get("model/ln_f/g"), hf["transformer.ln_f.weight"])
    assert len(stored.names) == 2 + 2 * 12 + 2
    reloaded = build_transformer_model(config, prefix, model="gpt2")
    np.testing.assert_array_equal(reloaded.predict(ids, verbose=0), expected)


def test_gpt2_ml_checkpoint_round_trip(gpt2_ml, tmp_path):
    ids = reference(GPT2_ML)["token_ids"]
    expected = gpt2_ml.model.predict(ids, verbose=0)
    prefix, config = str(tmp_path / "model.ckpt"), str(tmp_path / "config.json")
    gpt2_ml.save_weights_as_checkpoint(prefix, config_path=config)
    assert set(BundleReader(prefix).names) == set(BundleReader(os.path.join(GPT2_ML, "model.ckpt")).names)
    reloaded = build_transformer_model(config, prefix, model="gpt2_ml")
    np.testing.assert_array_equal(reloaded.predict(ids, verbose=0), expected)


@pytest.mark.parametrize("family", ["gpt2", "gpt2_ml"])
def test_keras_file_round_trip(family, gpt2, gpt2_ml, tmp_path):
    builder = gpt2 if family == "gpt2" else gpt2_ml
    ids = reference(GPT2)["token_ids"]
    expected = builder.model.predict(ids, verbose=0)
    path = str(tmp_path / "model.keras")
    builder.model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), expected)
    np.testing.assert_array_equal(hidden_states_model(loaded).predict(ids, verbose=0)[-1],
                                  hidden_states_model(builder.model).predict(ids, verbose=0)[-1])
    assert KVCache(loaded).attention[0] is loaded.get_layer("Transformer-0-MultiHeadSelfAttention")


# -------------------------------------------------------- cached decoding
PREFIX_LENGTHS = [7, 4, 2]


def prefixes(ids):
    return [ids[r, :n] for r, n in enumerate(PREFIX_LENGTHS)]


def test_cached_generation_equals_uncached_and_rows_decode_alone(gpt2):
    rows = prefixes(reference(GPT2)["token_ids"])
    alone = np.zeros((len(rows), 1, max(PREFIX_LENGTHS)), "int32")
    for r, row in enumerate(rows):
        alone[r, 0, :len(row)] = row
    assert_cached_equals_uncached(Seq2SeqDecoder(gpt2.model, end_id=1, maxlen=8, minlen=3),
                                  Seq2SeqDecoder(gpt2.model, end_id=1, maxlen=8, minlen=3, use_cache=False),
                                  rows, alone, minlen=3)


@pytest.mark.parametrize("family", ["gpt2", "gpt2_ml"])
def test_cached_step_logprobs_follow_the_full_model(family, gpt2, gpt2_ml):
    builder = gpt2 if family == "gpt2" else gpt2_ml
    ids = reference(GPT2)["token_ids"]
    valid = (ids > 0).sum(axis=1)
    full = np.log(builder.model.predict(ids, verbose=0).astype("float64"))
    cache_model = KVCache(builder)
    zeros = np.zeros_like(ids)
    logprobs, cache = cache_model.prefill(ids[:, :3], zeros[:, :3], capacity=ids.shape[1])
    worst = np.abs(np.asarray(logprobs) - full[:, 2]).max()
    key_valid = np.zeros(ids.shape, bool)
    key_valid[:, :3] = True
    for t in range(3, ids.shape[1]):
        key_valid[:, t] = True
        logprobs, cache = cache_model.step(cache, ids[:, t], zeros[:, t], np.full(3, t), t, key_valid)
        live = valid > t
        worst = max(worst, np.abs(np.asarray(logprobs)[live] - full[live, t]).max())
    assert worst < 1e-4, worst


# --------------------------------------------------------------- bad input
def test_foreign_checkpoints_are_refused():
    sizes = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position=64)
    with pytest.raises(ValueError, match="holds a 'gpt2' model.*pass model='gpt2'"):
        build_transformer_model(None, os.path.join(GPT2, "model.safetensors"), model="bert", **sizes)
    with pytest.raises(ValueError, match="holds a 'gpt2' model.*pass model='gpt2'"):
        build_transformer_model(None, os.path.join(GPT2, "model.safetensors"), model="gpt2_ml", **sizes)
    with pytest.raises(ValueError, match="holds a 'gpt2_ml' model.*pass model='gpt2_ml'"):
        build_transformer_model(None, os.path.join(GPT2_ML, "model.ckpt"), model="gpt2", **sizes)
    bert_checkpoint = os.path.join(FAMILIES, "nezha_b4k", "model.ckpt")
    with pytest.raises(ValueError, match="is not a 'gpt2_ml' checkpoint \\(no 'newslm/embeddings/word_embed'\\)"):
        build_transformer_model(None, bert_checkpoint, model="gpt2_ml", **dict(sizes, vocab_size=53))
    with pytest.raises(ValueError, match="config .* is for model_type 'gpt2'.*pass model='gpt2'"):
        build_transformer_model(checkpoint_path=GPT2, model="roberta")
    with pytest.raises(ValueError, match="application must be one of \\['lm'\\] for model 'gpt2'"):
        build_transformer_model(checkpoint_path=GPT2, model="gpt2", application="unilm")


def test_cache_capacity_and_positions_are_checked(gpt2):
    ids = reference(GPT2)["token_ids"]
    cache_model = KVCache(gpt2)
    with pytest.raises(ValueError, match="capacity 4 is shorter than the prefix"):
        cache_model.prefill(ids[:, :6], np.zeros_like(ids[:, :6]), capacity=4)
    _, cache = cache_model.prefill(ids[:, :3], np.zeros_like(ids[:, :3]), capacity=4)
    with pytest.raises(ValueError, match="slot must be in \\[0, 4\\)"):
        cache_model.step(cache, ids[:, 4], np.zeros(3), np.full(3, 4), 4, np.ones((3, 4), bool))
    decoder = Seq2SeqDecoder(gpt2.model, end_id=1, maxlen=60)
    with pytest.raises(ValueError, match="maxlen must leave room in the model's 64 positions"):
        decoder.greedy([[ids[0, :7]]])
