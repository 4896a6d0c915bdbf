"""GlobalPointer / EfficientGlobalPointer and the multi-label losses vs numpy."""
import os

import keras
import numpy as np
import pytest
from keras import ops

from bert4keras import losses
from bert4keras.layers import EfficientGlobalPointer, GlobalPointer
from bert4keras.layers.global_pointer import MASKED_SCORE as _MASKED


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Layer initialisers draw from Keras' global RNG, whose state otherwise
    depends on which tests ran before; seed it so each test is reproducible."""
    keras.utils.set_random_seed(1234)


MASKED_SCORE = np.float32(_MASKED)  # the value as float32 scores hold it

B, L, HIDDEN, HEADS, HEAD_SIZE = 3, 6, 8, 2, 4
MASK = np.array(
    [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=bool
)


# ---------------------------------------------------------------- references
def np_rope(x):
    """Rotate pairs (2i, 2i+1) of x (batch, length, [heads,] d) by pos * theta_i."""
    d = x.shape[-1]
    theta = 10000.0 ** (-2.0 * np.arange(d // 2) / d)
    angle = np.arange(x.shape[1])[:, None] * theta[None]  # (length, d/2)
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 3) + (d // 2,)
    cos, sin = np.cos(angle).reshape(shape), np.sin(angle).reshape(shape)
    out = np.empty_like(x)
    even, odd = x[..., 0::2], x[..., 1::2]
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def np_pair_mask(mask, tril):
    keep = mask[:, None, :, None] & mask[:, None, None, :]
    if tril:
        keep = keep & np.triu(np.ones((mask.shape[1],) * 2, bool))[None, None]
    return np.broadcast_to(keep, (mask.shape[0], HEADS) + keep.shape[2:])


def np_global_pointer(x, kernel, bias, rope):
    h = x.astype(np.float64) @ kernel + bias
    h = h.reshape(x.shape[0], x.shape[1], HEADS, 2 * HEAD_SIZE)
    q, k = h[..., :HEAD_SIZE], h[..., HEAD_SIZE:]
    if rope:
        q, k = np_rope(q), np_rope(k)
    return np.einsum("bmhd,bnhd->bhmn", q, k) / np.sqrt(HEAD_SIZE)


def np_efficient_global_pointer(x, p_kernel, p_bias, q_kernel, q_bias, rope):
    h = x.astype(np.float64) @ p_kernel + p_bias
    q, k = h[..., 0::2], h[..., 1::2]
    if rope:
        q, k = np_rope(q), np_rope(k)
    shared = np.einsum("bmd,bnd->bmn", q, k) / np.sqrt(HEAD_SIZE)
    u = h @ q_kernel + q_bias  # (batch, length, 2 * heads)
    out = np.empty((x.shape[0], HEADS, x.shape[1], x.shape[1]))
    for head in range(HEADS):
        end_bias = u[:, None, :, 2 * head] / 2  # indexed by end j
        start_bias = u[:, :, None, 2 * head + 1] / 2  # indexed by start i
        out[:, head] = shared + end_bias + start_bias
    return out


def np_mcce(pos_scores, neg_scores):
    """log(1 + sum_neg e^s) + log(1 + sum_pos e^-s) in float64."""
    neg = np.logaddexp.reduce(np.concatenate([[0.0], neg_scores]))
    pos = np.logaddexp.reduce(np.concatenate([[0.0], -pos_scores]))
    return neg + pos


def np_sparse_gp_loss(pairs, scores):
    """Per-sample loss of span pairs (batch, heads, n, 2); (0, 0) is padding."""
    b, h, n, _ = scores.shape
    out = np.zeros(b)
    for i in range(b):
        for j in range(h):
            flat = scores[i, j].reshape(-1).astype(np.float64)
            ids = {int(s) * n + int(e) for s, e in pairs[i, j]} - {0}
            neg = [c for c in range(1, n * n) if c not in ids]
            out[i] += np_mcce(flat[sorted(ids)], flat[neg])
    return out


def value_and_grads(fn, *args):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        args = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        return value.numpy(), [g.numpy() for g in tape.gradient(value, args)]
    import jax

    value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
    return np.asarray(value), [np.asarray(g) for g in grads]


def random_inputs(seed=0, batch=B, length=L):
    return np.random.default_rng(seed).normal(size=(batch, length, HIDDEN)).astype(
        "float32"
    )


def random_pairs(seed=0, max_spans=3, scores_mask=MASK):
    """Unique valid (start <= end) spans per head, padded with (0, 0)."""
    rng = np.random.default_rng(seed)
    pairs = np.zeros((len(scores_mask), HEADS, max_spans, 2), "int32")
    for i, m in enumerate(scores_mask):
        n = int(m.sum())
        cands = [(s, e) for s in range(n) for e in range(s, n) if (s, e) != (0, 0)]
        for h in range(HEADS):
            k = rng.integers(0, min(max_spans, len(cands)) + 1)
            for j, c in enumerate(rng.permutation(len(cands))[:k]):
                pairs[i, h, j] = cands[c]
    return pairs


# ----------------------------------------------------------- layer numerics
@pytest.mark.parametrize("rope,tril", [(True, True), (False, False), (True, False)])
def test_global_pointer_matches_numpy(rope, tril):
    x = random_inputs()
    layer = GlobalPointer(HEADS, HEAD_SIZE, RoPE=rope, tril_mask=tril)
    layer.build(x.shape)
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(HIDDEN, HEADS * 2 * HEAD_SIZE)).astype("float32")
    bias = rng.normal(size=(HEADS * 2 * HEAD_SIZE,)).astype("float32")
    layer.set_weights([kernel, bias])
    scores = np.asarray(layer(x, mask=MASK))
    assert scores.shape == (B, HEADS, L, L) and scores.dtype == np.float32
    expected = np_global_pointer(x, kernel, bias, rope)
    keep = np_pair_mask(MASK, tril)
    np.testing.assert_allclose(scores[keep], expected[keep], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(scores[~keep], MASKED_SCORE)
    # Without a mask only the triangle is masked.
    unmasked = np.asarray(layer(x))
    keep_all = np_pair_mask(np.ones_like(MASK), tril)
    np.testing.assert_allclose(unmasked[keep_all], expected[keep_all], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(unmasked[~keep_all], MASKED_SCORE)


@pytest.mark.parametrize("rope", [True, False])
def test_efficient_global_pointer_matches_numpy(rope):
    x = random_inputs(2)
    layer = EfficientGlobalPointer(HEADS, HEAD_SIZE, RoPE=rope)
    layer.build(x.shape)
    rng = np.random.default_rng(3)
    weights = [
        rng.normal(size=(HIDDEN, 2 * HEAD_SIZE)),
        rng.normal(size=(2 * HEAD_SIZE,)),
        rng.normal(size=(2 * HEAD_SIZE, 2 * HEADS)),
        rng.normal(size=(2 * HEADS,)),
    ]
    weights = [w.astype("float32") for w in weights]
    layer.set_weights(weights)
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        "p_dense/kernel", "p_dense/bias", "q_dense/kernel", "q_dense/bias"
    ]
    scores = np.asarray(layer(x, mask=MASK))
    expected = np_efficient_global_pointer(x, *weights, rope)
    keep = np_pair_mask(MASK, True)
    np.testing.assert_allclose(scores[keep], expected[keep], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(scores[~keep], MASKED_SCORE)


def test_rope_makes_scores_relative():
    """With identical tokens everywhere, RoPE scores depend on j - i only."""
    x = np.tile(random_inputs(4, batch=1, length=1), (1, L, 1))
    for cls in (GlobalPointer, EfficientGlobalPointer):
        scores = np.asarray(cls(HEADS, HEAD_SIZE, tril_mask=False)(x))[0]
        for offset in range(-L + 1, L):
            diag = np.diagonal(scores, offset=offset, axis1=1, axis2=2)
            np.testing.assert_allclose(diag, diag[:, :1].repeat(diag.shape[1], 1), atol=1e-4)


@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_keras_mask_equals_explicit_mask_and_padding_invariance(cls):
    token_ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(30, HIDDEN, mask_zero=True)(token_ids)
    layer = cls(HEADS, HEAD_SIZE)
    model = keras.Model(token_ids, layer(hidden))
    embed = keras.Model(token_ids, hidden)
    rng = np.random.default_rng(0)
    tokens = np.where(MASK, rng.integers(1, 30, size=MASK.shape), 0).astype("int32")
    scores = np.asarray(model(tokens))
    explicit = np.asarray(layer(embed(tokens), mask=MASK))
    np.testing.assert_array_equal(scores, explicit)
    longer = np.pad(tokens, ((0, 0), (0, 3)))
    long_scores = np.asarray(model(longer))
    np.testing.assert_allclose(long_scores[..., :L, :L], scores, rtol=1e-6, atol=1e-6)
    assert (long_scores[..., L:, :] == MASKED_SCORE).all()
    pairs = random_pairs(5)
    np.testing.assert_allclose(
        np.asarray(losses.global_pointer_crossentropy(pairs, long_scores)),
        np.asarray(losses.global_pointer_crossentropy(pairs, scores)),
        rtol=1e-6,
    )


# ----------------------------------------------------------------- losses
def test_multilabel_categorical_crossentropy_matches_numpy():
    rng = np.random.default_rng(0)
    y_pred = (rng.normal(size=(4, 7)) * 3).astype("float32")
    y_true = (rng.random((4, 7)) < 0.3).astype("float32")
    y_true[3] = 0  # no positives
    y_pred[2, :3] = -np.inf  # excluded classes (negatives)
    y_true[2, :3] = 0
    loss = np.asarray(losses.multilabel_categorical_crossentropy(y_true, y_pred))
    assert loss.dtype == np.float32 and loss.shape == (4,)
    for i in range(4):
        pos, neg = y_pred[i][y_true[i] == 1], y_pred[i][y_true[i] == 0]
        np.testing.assert_allclose(loss[i], np_mcce(pos, neg), rtol=1e-6, atol=1e-6)

    def total(p):
        return ops.sum(losses.multilabel_categorical_crossentropy(y_true, p))

    _, (grad,) = value_and_grads(total, y_pred)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[2, :3], 0)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_sparse_multilabel_categorical_crossentropy_matches_numpy(mask_zero):
    rng = np.random.default_rng(1)
    y_pred = (rng.normal(size=(2, 3, 9)) * 2).astype("float32")
    if mask_zero:  # 0 to 3 unique positives from 1..8, padded with 0
        ids = np.zeros((2, 3, 3), "int32")
        for idx in np.ndindex(2, 3):
            k = rng.integers(0, 4)
            ids[idx][:k] = rng.permutation(np.arange(1, 9))[:k]
    else:  # exactly 2 unique positives from 0..8, class 0 included
        ids = np.stack(
            [rng.permutation(9)[:2] for _ in range(6)]
        ).reshape(2, 3, 2).astype("int32")
    loss = np.asarray(
        losses.sparse_multilabel_categorical_crossentropy(ids, y_pred, mask_zero)
    )
    assert loss.dtype == np.float32 and loss.shape == (2, 3)
    for idx in np.ndindex(2, 3):
        scores = y_pred[idx].astype(np.float64)
        pos = set(ids[idx].tolist()) - ({0} if mask_zero else set())
        neg = [c for c in range(9) if c not in pos and not (mask_zero and c == 0)]
        expected = np_mcce(scores[sorted(pos)], scores[neg])
        np.testing.assert_allclose(loss[idx], expected, rtol=1e-5, atol=1e-5)
    # Dense and sparse forms agree when class 0 is not special.
    if not mask_zero:
        dense = np.zeros_like(y_pred)
        np.put_along_axis(dense, ids, 1.0, axis=-1)
        np.testing.assert_allclose(
            loss,
            np.asarray(losses.multilabel_categorical_crossentropy(dense, y_pred)),
            rtol=1e-5,
            atol=1e-5,
        )


def test_global_pointer_losses_and_f1_match_numpy():
    x = random_inputs(6)
    layer = GlobalPointer(HEADS, HEAD_SIZE)
    scores = np.asarray(layer(x, mask=MASK)) * 5  # spread scores around 0
    scores = np.where(scores < -1e11, MASKED_SCORE, scores).astype("float32")
    pairs = random_pairs(7)
    pairs[0, 1] = 0  # a head with no spans at all
    loss = np.asarray(losses.global_pointer_crossentropy(pairs, scores))
    assert loss.dtype == np.float32 and loss.shape == (B,)
    expected = np_sparse_gp_loss(pairs, scores)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)

    dense = np.zeros_like(scores)
    for b, h, j in np.ndindex(*pairs.shape[:3]):
        s, e = pairs[b, h, j]
        if (s, e) != (0, 0):
            dense[b, h, s, e] = 1
    dense_loss = np.asarray(losses.dense_global_pointer_crossentropy(dense, scores))
    ref = np.zeros(B)
    for b, h in np.ndindex(B, HEADS):
        flat, t = scores[b, h].reshape(-1), dense[b, h].reshape(-1)
        ref[b] += np_mcce(flat[t == 1], flat[t == 0])
    np.testing.assert_allclose(dense_loss, ref, rtol=1e-5, atol=1e-5)

    pred = scores > 0
    tp = (pred & (dense == 1)).sum()
    f1_ref = 2 * tp / (pred.sum() + dense.sum())
    f1 = float(losses.global_pointer_f1_score(dense, scores))
    assert abs(f1 - f1_ref) < 1e-6
    # Sparse F1 ignores the span (0, 0) on both sides.
    pred[:, :, 0, 0] = False
    tp = (pred & (dense == 1)).sum()
    sparse_ref = 2 * tp / (pred.sum() + dense.sum())
    assert abs(float(losses.sparse_global_pointer_f1_score(pairs, scores)) - sparse_ref) < 1e-6


def test_loss_gradients_are_finite():
    x = random_inputs(8)
    scores = np.asarray(GlobalPointer(HEADS, HEAD_SIZE)(x, mask=MASK))
    pairs = random_pairs(9)
    pairs[2] = 0  # sample whose every head has no span

    def sparse_total(s):
        return ops.sum(losses.global_pointer_crossentropy(pairs, s))

    def dense_total(s):
        dense = np.zeros(scores.shape, "float32")
        dense[0, 0, 1, 2] = 1
        return ops.sum(losses.dense_global_pointer_crossentropy(dense, s))

    for fn in (sparse_total, dense_total):
        value, (grad,) = value_and_grads(fn, scores)
        assert np.isfinite(value) and np.isfinite(grad).all()
        np.testing.assert_array_equal(grad[scores == MASKED_SCORE], 0)


# -------------------------------------------- serialization, dtype, training
@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_config_round_trip(cls):
    layer = cls(
        heads=3, head_size=6, RoPE=False, use_bias=False, tril_mask=False,
        kernel_initializer="zeros", name="gp",
    )
    config = layer.get_config()
    for key, value in [("heads", 3), ("head_size", 6), ("RoPE", False),
                       ("use_bias", False), ("tril_mask", False)]:
        assert config[key] == value
    clone = cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is cls and restored.get_config() == config


@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_model_saves_and_reloads(tmp_path, cls):
    hidden = keras.Input((None, HIDDEN))
    mask = keras.Input((None,), dtype="bool")
    model = keras.Model([hidden, mask], cls(HEADS, HEAD_SIZE)(hidden, mask=mask))
    model.compile(
        "adam", loss=losses.global_pointer_crossentropy,
        metrics=[losses.sparse_global_pointer_f1_score],
    )
    model.optimizer.build(model.trainable_variables)
    x, pairs = random_inputs(10), random_pairs(11)
    before = model.predict([x, MASK], verbose=0)
    path = os.path.join(tmp_path, "gp.keras")
    model.save(path)
    keras.utils.clear_session()
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict([x, MASK], verbose=0), before)
    # The registered loss and metric come back with the compiled model.
    np.testing.assert_allclose(
        loaded.evaluate([x, MASK], pairs, verbose=0),
        model.evaluate([x, MASK], pairs, verbose=0),
        rtol=1e-5,
    )


@pytest.mark.slow
@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_fit_learns_spans(cls):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 20, size=(32, L)).astype("int32")
    tokens[::3, 4:] = 0
    # Head 0: spans (i, i + 1) starting at token 7 (needs the relative offset
    # that RoPE gives); head 1: single tokens 3.
    pairs = np.zeros((32, HEADS, L, 2), "int32")
    for b in range(32):
        n = int((tokens[b] > 0).sum())
        spans = [[(i, i + 1) for i in range(n - 1) if tokens[b, i] == 7],
                 [(i, i) for i in range(1, n) if tokens[b, i] == 3]]
        for h in range(HEADS):
            for j, span in enumerate(spans[h]):
                pairs[b, h, j] = span
    token_ids = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(20, 16, mask_zero=True)(token_ids)
    h = keras.layers.Dense(16, activation="tanh")(h)
    model = keras.Model(token_ids, cls(HEADS, 8)(h))
    model.compile(
        keras.optimizers.Adam(0.02), loss=losses.global_pointer_crossentropy,
        metrics=[losses.sparse_global_pointer_f1_score], jit_compile=True,
    )
    before, _ = model.evaluate(tokens, pairs, verbose=0)
    reps = (8, 1)
    hist = model.fit(
        np.tile(tokens, reps), np.tile(pairs, reps + (1, 1)), epochs=3,
        batch_size=16, verbose=0,
    ).history
    assert np.isfinite(hist["loss"]).all()
    after, f1 = model.evaluate(tokens, pairs, verbose=0)
    assert after < before / 10 and f1 > 0.9, (before, after, f1)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_mixed_precision(policy, cls):
    x = random_inputs(12)
    ref_layer = cls(HEADS, HEAD_SIZE)
    reference = np.asarray(ref_layer(x, mask=MASK))
    keras.config.set_dtype_policy(policy)
    layer = cls(HEADS, HEAD_SIZE)
    layer.build(x.shape)
    layer.set_weights(ref_layer.get_weights())
    scores = layer(x, mask=MASK)
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    assert keras.backend.standardize_dtype(layer.weights[0].dtype) == "float32"
    scores = np.asarray(scores)
    keep = np_pair_mask(MASK, True)
    np.testing.assert_array_equal(scores[~keep], MASKED_SCORE)
    tol = 0.05 if policy == "mixed_bfloat16" else 0.01
    scale = max(1.0, np.abs(reference[keep]).max())
    assert np.abs(scores[keep] - reference[keep]).max() < tol * scale
    loss = losses.global_pointer_crossentropy(random_pairs(13), scores)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert np.isfinite(np.asarray(loss)).all()


# ---------------------------------------------------------------- bad input
def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="head_size must be even"):
        GlobalPointer(2, 5)
    GlobalPointer(2, 5, RoPE=False)  # odd sizes are fine without RoPE
    with pytest.raises(ValueError, match="heads must be a positive int"):
        GlobalPointer(0, 4)
    with pytest.raises(ValueError, match=r"\(batch, length, hidden\).*\(2, 8\)"):
        EfficientGlobalPointer(2, 4)(np.zeros((2, 8), "float32"))


def test_bad_labels_raise_clear_errors():
    scores = np.zeros((B, HEADS, L, L), "float32")
    with pytest.raises(ValueError, match=r"y_true.*\(batch, heads, max_spans, 2\).*dense"):
        losses.global_pointer_crossentropy(np.zeros((B, HEADS, L, L)), scores)
    with pytest.raises(ValueError, match=r"y_true.*\(3, 2, 4\)"):
        losses.global_pointer_crossentropy(np.zeros((B, HEADS, 4)), scores)
    with pytest.raises(ValueError, match=r"y_true.*\(3, 5, 4, 2\)"):
        losses.global_pointer_crossentropy(np.zeros((B, 5, 4, 2)), scores)
    with pytest.raises(ValueError, match=r"y_pred.*\(3, 2, 6\)"):
        losses.global_pointer_crossentropy(np.zeros((B, HEADS, 4, 2)), scores[..., 0])
    with pytest.raises(ValueError, match=r"in \[0, 6\).*\[6\]"):
        bad = np.zeros((B, HEADS, 2, 2), "int32")
        bad[1, 0, 1] = (2, 6)
        losses.global_pointer_crossentropy(bad, scores)
    with pytest.raises(ValueError, match=r"\[0, 6\).*\[-1\]"):
        bad = np.zeros((B, HEADS, 2, 2), "int32")
        bad[0, 1, 0] = (-1, 3)
        losses.sparse_global_pointer_f1_score(bad, scores)
    with pytest.raises(ValueError, match=r"y_pred's shape.*\(3, 2, 6, 5\)"):
        losses.dense_global_pointer_crossentropy(scores[..., :5], scores)
    with pytest.raises(ValueError, match=r"must equal y_pred shape"):
        losses.multilabel_categorical_crossentropy(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"leading axes.*\(2, 4\).*\(3, 1\)"):
        losses.sparse_multilabel_categorical_crossentropy(
            np.zeros((3, 1), "int32"), np.zeros((2, 4), "float32")
        )
    with pytest.raises(ValueError, match=r"\[0, 4\).*\[4\]"):
        losses.sparse_multilabel_categorical_crossentropy(
            np.array([[4]]), np.zeros((1, 4), "float32")
        )


def test_out_of_range_spans_in_compiled_graph_give_nan():
    hidden = keras.Input((L, HIDDEN))
    model = keras.Model(hidden, GlobalPointer(HEADS, HEAD_SIZE)(hidden))
    model.compile("sgd", loss=losses.global_pointer_crossentropy)
    x, pairs = random_inputs(14), random_pairs(15, scores_mask=np.ones_like(MASK))
    assert np.isfinite(model.evaluate(x, pairs, verbose=0))
    pairs[1, 0, 0] = (0, L + 2)
    assert np.isnan(model.evaluate(x, pairs, verbose=0))
