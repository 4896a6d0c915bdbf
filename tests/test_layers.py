"""Core layers against numpy, plus serialization, padding and dtype checks."""
import math

import keras
import numpy as np
import pytest
from keras import ops

from bert4keras import backend
from bert4keras.layers import (
    AttentionMask,
    BiasAdd,
    Embedding,
    FeedForward,
    LayerNormalization,
    MultiHeadAttention,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
    TokenSlice,
)

rng = np.random.RandomState(0)


def np_layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_rotary(x):
    """Rotate interleaved pairs of x (batch, length, heads, dim), loop by loop."""
    out = np.empty_like(x)
    dim = x.shape[-1]
    for pos in range(x.shape[1]):
        for k in range(dim // 2):
            theta = pos * 10000.0 ** (-2.0 * k / dim)
            c, s = math.cos(theta), math.sin(theta)
            a, b = x[:, pos, :, 2 * k], x[:, pos, :, 2 * k + 1]
            out[:, pos, :, 2 * k] = a * c - b * s
            out[:, pos, :, 2 * k + 1] = b * c + a * s
    return out


def np_attention(layer, x, mask, rotary=False):
    """Brute-force multi-head attention with the layer's weights."""
    heads, size = layer.heads, layer.head_size

    def proj(dense):
        w, b = (np.asarray(v) for v in dense.weights)
        return (x @ w + b).reshape(x.shape[0], x.shape[1], heads, -1)

    q, k, v = proj(layer.q_dense), proj(layer.k_dense), proj(layer.v_dense)
    if rotary:
        q, k = np_rotary(q), np_rotary(k)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(size)
    logits = np.where(mask, logits, -1e30)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(x.shape[0], x.shape[1], -1)
    w, b = (np.asarray(v) for v in layer.o_dense.weights)
    return context @ w + b, probs


def loop_mask(ids, segs, mode):
    b, n = ids.shape
    mask = np.zeros((b, 1, n, n), bool)
    for r in range(b):
        cum = np.cumsum(segs[r])
        for i in range(n):
            for j in range(n):
                ok = ids[r, j] > 0
                if mode == "causal":
                    ok = ok and j <= i
                if mode == "unilm":
                    ok = ok and cum[j] <= cum[i]
                mask[r, 0, i, j] = ok
    return mask


IDS = np.array([[5, 3, 8, 2, 9, 0, 0], [4, 4, 1, 0, 0, 0, 0]], dtype="int32")
SEGS = np.array([[0, 0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0, 0]], dtype="int32")


@pytest.mark.parametrize("mode", ["bidirectional", "causal", "unilm"])
def test_attention_mask_matches_loops(mode):
    got = np.asarray(AttentionMask(mode)([IDS, SEGS]))
    expected = loop_mask(IDS, SEGS, mode)
    np.testing.assert_array_equal(np.broadcast_to(got, expected.shape), expected)


@pytest.mark.parametrize("rotary", [False, True])
def test_attention_matches_numpy(rotary):
    x = rng.randn(2, 7, 16).astype("float32")
    layer = MultiHeadAttention(heads=4, head_size=4, rotary=rotary)
    mask = loop_mask(IDS, SEGS, "unilm")
    out, probs = layer([x, x, x], attention_mask=mask, return_attention_scores=True)
    fast = layer([x, x, x], attention_mask=mask)
    expected, expected_probs = np_attention(layer, x, mask, rotary)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fast), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(probs), expected_probs, atol=1e-6)
    assert np.asarray(probs)[~np.broadcast_to(mask, probs.shape)].max() == 0.0



@pytest.mark.parametrize("fused", [False, True])
def test_attention_query_without_visible_keys_gets_zero_context(fused, monkeypatch):
    # Sample 1 is all padding, so its queries see no key: its context is 0 and the
    # output is the o_dense bias alone; sample 0 still matches numpy. `fused`: the
    # `ops.dot_product_attention` path (GPU/TPU, torch) run here on the CPU.
    from bert4keras.layers import attention

    monkeypatch.setattr(attention, "_use_fused_attention", lambda: fused)
    x = rng.randn(2, 5, 16).astype("float32")
    ids = np.array([[3, 4, 5, 0, 0], [0, 0, 0, 0, 0]], dtype="int32")
    layer = MultiHeadAttention(heads=4, head_size=4)
    mask = loop_mask(ids, np.zeros_like(ids), "bidirectional")
    out = np.asarray(layer([x, x, x], attention_mask=mask))
    expected, _ = np_attention(layer, x[:1], mask[:1], False)
    np.testing.assert_allclose(out[:1], expected, atol=1e-5)
    bias = np.asarray(layer.o_dense.weights[1])
    np.testing.assert_array_equal(out[1], np.broadcast_to(bias, (5, 16)))
    _, probs = layer([x, x, x], attention_mask=mask, return_attention_scores=True)
    assert np.abs(np.asarray(probs)[1]).max() == 0.0


def test_rotary_matches_loops():
    x = rng.randn(2, 6, 3, 8).astype("float32")
    sin, cos = backend.rotary_sin_cos(ops.arange(6), 8)
    np.testing.assert_allclose(np.asarray(backend.apply_rotary(x, sin, cos)), np_rotary(x), atol=1e-5)


def test_rotary_is_relative():
    """q.k after rotation depends only on the position difference."""
    q = rng.randn(1, 1, 1, 8).astype("float32")
    k = rng.randn(1, 1, 1, 8).astype("float32")

    def score(i, j):
        sq, cq = backend.rotary_sin_cos(ops.convert_to_tensor([i]), 8)
        sk, ck = backend.rotary_sin_cos(ops.convert_to_tensor([j]), 8)
        return float(np.sum(np.asarray(backend.apply_rotary(q, sq, cq)) * np.asarray(backend.apply_rotary(k, sk, ck))))

    assert abs(score(7, 3) - score(14, 10)) < 1e-4
    assert abs(score(7, 3) - score(7, 5)) > 1e-4


def test_layer_norm_matches_numpy():
    x = (rng.randn(2, 5, 8) * 3 + 1).astype("float32")
    layer = LayerNormalization(epsilon=1e-12)
    layer.build(x.shape)
    layer.gamma.assign(rng.randn(8))
    layer.beta.assign(rng.randn(8))
    expected = np_layer_norm(x, np.asarray(layer.gamma), np.asarray(layer.beta), 1e-12)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)


def test_conditional_layer_norm_starts_as_plain_and_learns_shift():
    x = rng.randn(2, 5, 8).astype("float32")
    cond = rng.randn(2, 3).astype("float32")
    plain = LayerNormalization()
    conditional = LayerNormalization(conditional=True, condition_hidden_units=4)
    np.testing.assert_allclose(np.asarray(conditional([x, cond])), np.asarray(plain(x)), atol=1e-6)
    conditional.gamma_dense.kernel.assign(rng.randn(4, 8))
    conditional.beta_dense.kernel.assign(rng.randn(4, 8))
    h = np.asarray(conditional.hidden_dense(cond))
    gamma = 1 + h @ np.asarray(conditional.gamma_dense.kernel)
    beta = h @ np.asarray(conditional.beta_dense.kernel)
    expected = np_layer_norm(x, gamma[:, None], beta[:, None], 1e-12)
    np.testing.assert_allclose(np.asarray(conditional([x, cond])), expected, atol=1e-5)


def test_feedforward_exact_gelu():
    x = rng.randn(2, 3, 8).astype("float32")
    layer = FeedForward(16, activation="gelu")
    y = np.asarray(layer(x))
    w1, b1 = (np.asarray(v) for v in layer.i0.weights)
    w2, b2 = (np.asarray(v) for v in layer.o.weights)
    h = x @ w1 + b1
    from math import erf

    gelu = h * 0.5 * (1 + np.vectorize(erf)(h / math.sqrt(2)))
    np.testing.assert_allclose(y, gelu @ w2 + b2, atol=1e-5)
    tanh_layer = FeedForward(16, activation="gelu_new")
    assert tanh_layer.i0.activation is backend.gelu_tanh


def test_embedding_reverse_and_positions():
    emb = Embedding(11, 6)
    ids = np.array([[1, 2, 10]])
    h = np.asarray(emb(ids))
    table = np.asarray(emb.embeddings)
    np.testing.assert_allclose(h, table[ids], atol=0)
    np.testing.assert_allclose(np.asarray(emb(h, reverse=True)), h @ table.T, atol=1e-5)
    pos = PositionEmbedding(5, 6, embeddings_initializer="random_normal")
    out = np.asarray(pos(h))
    np.testing.assert_allclose(out, h + np.asarray(pos.embeddings)[None, :3], atol=1e-6)
    with pytest.raises(ValueError, match="exceeds the 5 positions"):
        pos(np.zeros((1, 6, 6), "float32"))
    sin = np.asarray(SinusoidalPositionEmbedding(6)(h))
    expected = np.array([[math.sin(p * 10000 ** (-2 * k / 6)) for k in range(3)]
                         + [math.cos(p * 10000 ** (-2 * k / 6)) for k in range(3)] for p in range(3)])
    np.testing.assert_allclose(sin[0], expected, atol=1e-5)


def test_activation_table():
    assert backend.get_activation("gelu") is backend.gelu_erf
    with pytest.raises(ValueError, match="hidden_act"):
        backend.get_activation("no_such_act")


# ------------------------------------------------------------------------
# Every layer: serialization round trip, padding invariance, mixed precision.
def _cases():
    x = rng.randn(2, 7, 16).astype("float32")
    mask = loop_mask(IDS, SEGS, "unilm")
    return [
        ("Embedding", lambda: Embedding(12, 16), lambda layer: layer(IDS)),
        ("PositionEmbedding", lambda: PositionEmbedding(20, 16, embeddings_initializer="random_normal"),
         lambda layer: layer(x)),
        ("SinusoidalPositionEmbedding", lambda: SinusoidalPositionEmbedding(16, merge_mode="add"),
         lambda layer: layer(x)),
        ("BiasAdd", BiasAdd, lambda layer: layer(x)),
        ("TokenSlice", lambda: TokenSlice(0), lambda layer: layer(x)),
        ("LayerNormalization", lambda: LayerNormalization(epsilon=1e-12), lambda layer: layer(x)),
        ("ConditionalLayerNormalization", lambda: LayerNormalization(conditional=True),
         lambda layer: layer([x, x[:, 0, :4]])),
        ("FeedForward", lambda: FeedForward(24), lambda layer: layer(x)),
        ("MultiHeadAttention", lambda: MultiHeadAttention(4, 4, rotary=True),
         lambda layer: layer([x, x, x], attention_mask=mask)),
        ("RelativeAttention", lambda: MultiHeadAttention(4, 4, max_relative_position=3, use_bias=False),
         lambda layer: layer([x, x, x], attention_mask=mask)),
        ("RMSNormalization", lambda: LayerNormalization(epsilon=1e-7, zero_mean=False, center=False, scale=False),
         lambda layer: layer(x)),
        ("AttentionMask", lambda: AttentionMask("unilm"), lambda layer: layer([IDS, SEGS])),
    ]


@pytest.mark.parametrize("name,make,run", _cases(), ids=[c[0] for c in _cases()])
def test_serialization_round_trip(name, make, run):
    layer = make()
    out = run(layer)
    clone = layer.__class__.from_config(layer.get_config())
    run(clone)  # builds it
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(run(clone)), np.asarray(out))
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)


@pytest.mark.parametrize("options", [{"rotary": True}, {"max_relative_position": 2}])
def test_attention_padding_invariance(options):
    """Extra padded keys change nothing at the valid positions."""
    x = rng.randn(2, 7, 16).astype("float32")
    layer = MultiHeadAttention(4, 4, **options)
    for mode in ("bidirectional", "causal", "unilm"):
        out = np.asarray(layer([x, x, x], attention_mask=AttentionMask(mode)([IDS, SEGS])))
        ids = np.pad(IDS, ((0, 0), (0, 5)))
        segs = np.pad(SEGS, ((0, 0), (0, 5)))
        xp = np.pad(x, ((0, 0), (0, 5), (0, 0))) + rng.randn(2, 12, 16).astype("float32") * (ids == 0)[..., None]
        padded = np.asarray(layer([xp, xp, xp], attention_mask=AttentionMask(mode)([ids, segs])))
        valid = IDS > 0
        assert np.abs(out - padded[:, :7])[valid].max() < 1e-5


def np_relative_table(length, dim, max_distance):
    """NEZHA's (q, k, dim) features from loops: row clip(j - i) + max_distance."""
    table = np.zeros((length, length, dim))
    for i in range(length):
        for j in range(length):
            r = min(max(j - i, -max_distance), max_distance) + max_distance
            for k in range(dim // 2):
                theta = r / 10000.0 ** (2.0 * k / dim)
                table[i, j, 2 * k], table[i, j, 2 * k + 1] = math.sin(theta), math.cos(theta)
    return table


def test_relative_attention_matches_loops():
    x = rng.randn(2, 7, 16).astype("float32")
    mask = loop_mask(IDS, SEGS, "bidirectional")
    layer = MultiHeadAttention(4, 4, max_relative_position=2)
    out, probs = layer([x, x, x], attention_mask=mask, return_attention_scores=True)
    heads = 4

    def proj(dense):
        w, b = (np.asarray(v) for v in dense.weights)
        return (x @ w + b).reshape(2, 7, heads, -1)

    q, k, v = proj(layer.q_dense), proj(layer.k_dense), proj(layer.v_dense)
    rel = np_relative_table(7, 4, 2)
    logits = (np.einsum("bqhd,bkhd->bhqk", q, k) + np.einsum("bqhd,qkd->bhqk", q, rel)) / 2.0
    logits = np.where(mask, logits, -1e30)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    context = np.einsum("bhqk,bkhd->bqhd", expected, v) + np.einsum("bhqk,qkd->bqhd", expected, rel)
    w, b = (np.asarray(t) for t in layer.o_dense.weights)
    np.testing.assert_allclose(np.asarray(probs), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out), context.reshape(2, 7, -1) @ w + b, atol=1e-4)
    with pytest.raises(ValueError, match="key_size must equal head_size"):
        MultiHeadAttention(4, 4, key_size=8, max_relative_position=2)
    with pytest.raises(ValueError, match="max_relative_position must be a positive integer"):
        MultiHeadAttention(4, 4, max_relative_position=0)


def test_rms_normalization_matches_numpy():
    x = rng.randn(2, 5, 16).astype("float32")
    y = LayerNormalization(epsilon=1e-7, zero_mean=False, center=False, scale=False)(x)
    expected = x / np.sqrt((x.astype("float64") ** 2).mean(-1, keepdims=True) + 1e-7)
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5)


def test_position_wise_layers_padding_invariance():
    x = rng.randn(2, 7, 16).astype("float32")
    xp = np.concatenate([x, rng.randn(2, 4, 16).astype("float32")], axis=1)
    for layer in (LayerNormalization(), FeedForward(24), PositionEmbedding(20, 16, embeddings_initializer="random_normal"),
                  BiasAdd(), SinusoidalPositionEmbedding(16, merge_mode="add")):
        np.testing.assert_allclose(np.asarray(layer(xp))[:, :7], np.asarray(layer(x)), atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name,make,run", _cases(), ids=[c[0] for c in _cases()])
def test_mixed_precision_dtypes(policy, name, make, run, monkeypatch):
    keras.config.set_dtype_policy(policy)
    layer = make()
    out = run(layer)
    compute = policy.split("_")[1]
    if name == "AttentionMask":
        assert keras.backend.standardize_dtype(out.dtype) == "bool"
        return
    assert keras.backend.standardize_dtype(out.dtype) == compute
    assert all(w.dtype == "float32" for w in layer.weights)  # float32 master weights
    assert np.isfinite(np.asarray(ops.cast(out, "float32"))).all()


def test_attention_scores_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    x = (rng.randn(1, 5, 16) * 30).astype("float32")  # large logits would overflow a float16 softmax
    layer = MultiHeadAttention(2, 8)
    _, probs = layer([x, x, x], return_attention_scores=True)
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5)
    norm = LayerNormalization()
    y = norm(np.full((1, 2, 16), 300.0, "float32") + np.arange(16, dtype="float32"))
    assert np.isfinite(np.asarray(ops.cast(y, "float32"))).all()
