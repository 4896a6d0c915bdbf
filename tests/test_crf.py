"""ConditionalRandomField and MaximumEntropyMarkovModel against brute force."""
import itertools
import os

import keras
import numpy as np
import pytest
from keras import ops

from bert4keras.layers.crf import ConditionalRandomField, MaximumEntropyMarkovModel

K = 3  # labels: 3**5 = 243 paths per sequence keeps enumeration instant

# Rows: full, right-padded, length 1, fully masked, left-padded, inner hole.
MASKS = np.array(
    [
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1],
        [1, 1, 0, 1, 1],
    ],
    dtype=bool,
)


# ---------------------------------------------------------------- references
def path_score(e, trans, path):
    return e[np.arange(len(path)), path].sum() + sum(
        trans[a, b] for a, b in zip(path[:-1], path[1:])
    )


def brute_crf(e, trans, labels, mask):
    """Log-likelihood, best path and marginals over the valid positions."""
    e = e[mask].astype(np.float64)
    n = len(e)
    if n == 0:
        return 0.0, np.zeros(0, int), np.zeros((0, trans.shape[0]))
    paths = np.array(list(itertools.product(range(trans.shape[0]), repeat=n)))
    scores = np.array([path_score(e, trans, p) for p in paths])
    log_z = np.logaddexp.reduce(scores)
    probs = np.exp(scores - log_z)
    marginals = np.zeros((n, trans.shape[0]))
    for p, w in zip(paths, probs):
        marginals[np.arange(n), p] += w
    ll = path_score(e, trans, labels[mask]) - log_z
    return ll, paths[np.argmax(scores)], marginals


def numpy_memm(e, trans, labels, mask):
    """Bidirectional MEMM negative log-likelihood over the valid positions."""

    def direction(e, y, tr):
        nll = 0.0
        for t in range(len(y)):
            logits = e[t] if t == 0 else (e[t] + tr[y[t - 1]]) / 2
            nll += np.logaddexp.reduce(logits) - logits[y[t]]
        return nll

    e, y = e[mask].astype(np.float64), labels[mask]
    return (direction(e, y, trans) + direction(e[::-1], y[::-1], trans.T)) / 2


def value_and_grads(fn, *args):
    """Value of scalar `fn(*args)` and its gradients, on the active backend."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        args = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        grads = tape.gradient(value, args)
        return value.numpy(), [g.numpy() for g in grads]
    import jax

    value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
    return np.asarray(value), [np.asarray(g) for g in grads]


def make_case(seed, lr_multiplier=1.0, mask=MASKS):
    rng = np.random.default_rng(seed)
    b, t = mask.shape
    e = rng.normal(size=(b, t, K)).astype("float32") * 2
    labels = rng.integers(0, K, size=(b, t))
    crf = ConditionalRandomField(lr_multiplier=lr_multiplier)
    crf.build((None, None, K))
    crf.set_trans(rng.normal(size=(K, K)))
    return crf, e, labels


# ------------------------------------------------------------------ CRF math
@pytest.mark.parametrize("seed,lr_multiplier", [(0, 1.0), (1, 7.0), (2, 0.5)])
def test_crf_loss_matches_brute_force(seed, lr_multiplier):
    crf, e, labels = make_case(seed, lr_multiplier)
    trans = np.asarray(crf.trans)
    y_pred = crf(e, mask=MASKS)
    sparse = np.asarray(crf.sparse_loss(labels, y_pred))
    dense = np.asarray(crf.dense_loss(np.eye(K)[labels], y_pred))
    expected = np.array(
        [-brute_crf(e[i], trans, labels[i], MASKS[i])[0] for i in range(len(e))]
    )
    assert sparse.shape == (len(e),) and sparse.dtype == np.float32
    np.testing.assert_allclose(sparse, expected, atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(dense, expected, atol=1e-5, rtol=1e-6)
    # Labels at padded positions are ignored whatever their value.
    junk = np.where(MASKS, labels, 99)
    np.testing.assert_allclose(np.asarray(crf.sparse_loss(junk, y_pred)), sparse)


def test_viterbi_matches_brute_force():
    for seed in range(3):
        crf, e, labels = make_case(seed)
        trans = np.asarray(crf.trans)
        y_pred = crf(e, mask=MASKS)
        path = np.asarray(crf.decode(y_pred))  # mask read from -inf rows
        assert path.dtype == np.int32 and path.shape == MASKS.shape
        np.testing.assert_array_equal(path, np.asarray(crf.decode(e, MASKS)))
        np.testing.assert_array_equal(path[~MASKS], 0)
        for i in range(len(e)):
            best = brute_crf(e[i], trans, labels[i], MASKS[i])[1]
            np.testing.assert_array_equal(path[i][MASKS[i]], best)
        # The accuracy metric scores the emission argmax on valid tokens.
        acc = float(crf.sparse_accuracy(labels, y_pred))
        expected = (e.argmax(-1) == labels)[MASKS].mean()
        assert abs(acc - expected) < 1e-6
        acc_dense = float(crf.dense_accuracy(np.eye(K)[labels], y_pred))
        assert abs(acc_dense - expected) < 1e-6


def test_forbidden_labels_as_partial_minus_inf_rows():
    """-inf on some labels of a valid row forbids them; it is not padding."""
    crf, e, labels = make_case(6)
    trans = np.asarray(crf.trans)
    e[:, 1:, 2] = -np.inf  # label 2 only allowed at the first position
    labels = np.where(np.arange(5) >= 1, labels % 2, labels)
    y_pred = crf(e, mask=MASKS)
    loss = np.asarray(crf.sparse_loss(labels, y_pred))
    path = np.asarray(crf.decode(y_pred))
    for i in range(len(e)):
        ll, best, _ = brute_crf(e[i], trans, labels[i], MASKS[i])
        np.testing.assert_allclose(loss[i], -ll, atol=1e-5)
        np.testing.assert_array_equal(path[i][MASKS[i]], best)
    assert (path[:, 1:] != 2).all()


def test_viterbi_decoder_snippet_agrees_with_brute_force():
    from bert4keras.snippets import ViterbiDecoder

    crf, e, labels = make_case(5, mask=MASKS[:3])
    trans = np.asarray(crf.trans)
    decoder = ViterbiDecoder(trans)
    graph_paths = np.asarray(crf.decode(e, MASKS[:3]))
    for i in range(3):
        valid = e[i][MASKS[i]]
        best = brute_crf(e[i], trans, labels[i], MASKS[i])[1]
        np.testing.assert_array_equal(np.asarray(decoder.decode(valid)), best)
        np.testing.assert_array_equal(graph_paths[i][MASKS[i]], best)


def test_gradients_finite_and_equal_to_marginals():
    """d(NLL)/d(emission) = marginal - one_hot, also for length 1 and no tokens."""
    crf, e, labels = make_case(3)
    trans = np.asarray(crf.trans)
    stored = np.asarray(crf._trans)

    def loss(emissions, stored_trans):
        with keras.StatelessScope(state_mapping=[(crf._trans, stored_trans)]):
            out = crf(emissions, mask=MASKS)
            return ops.sum(crf.sparse_loss(labels, out))

    _, (g_e, g_t) = value_and_grads(loss, e, stored)
    assert np.isfinite(g_e).all() and np.isfinite(g_t).all()
    for i in range(len(e)):
        _, _, marginals = brute_crf(e[i], trans, labels[i], MASKS[i])
        expected = np.zeros_like(e[i], dtype=np.float64)
        expected[MASKS[i]] = marginals - np.eye(K)[labels[i][MASKS[i]]]
        np.testing.assert_allclose(g_e[i], expected, atol=1e-5)
    np.testing.assert_array_equal(g_e[3], 0)  # fully masked row
    # Loss of the fully masked row is exactly zero.
    assert float(crf.sparse_loss(labels, crf(e, mask=MASKS))[3]) == 0.0


@pytest.mark.parametrize("optimizer,expected_ratio", [("sgd", 100.0), ("adam", 10.0)])
def test_lr_multiplier_scales_effective_update(optimizer, expected_ratio):
    """SGD: effective step x m**2; Adam: effective step x m (m = 10)."""
    rng = np.random.default_rng(0)
    e = rng.normal(size=(4, 6, K)).astype("float32")
    labels = rng.integers(0, K, size=(4, 6))
    start = rng.normal(size=(K, K)).astype("float32") * 0.1
    steps = {}
    for m in (1.0, 10.0):
        keras.utils.clear_session()
        crf = ConditionalRandomField(lr_multiplier=m)
        inputs = keras.Input((6, K))
        model = keras.Model(inputs, crf(inputs))
        crf.set_trans(start)
        np.testing.assert_allclose(np.asarray(crf.trans), start, rtol=1e-6)
        opt = (
            keras.optimizers.SGD(1e-3)
            if optimizer == "sgd"
            else keras.optimizers.Adam(1e-4)  # default epsilon 1e-7
        )
        model.compile(opt, loss=crf.sparse_loss)
        model.train_on_batch(e, labels)
        steps[m] = np.asarray(crf.trans) - start
    ratio = np.abs(steps[10.0]).sum() / np.abs(steps[1.0]).sum()
    assert abs(ratio / expected_ratio - 1) < 1e-3, ratio
    # Same direction: only the size changes.
    cos = (steps[10.0] * steps[1.0]).sum() / (
        np.linalg.norm(steps[10.0]) * np.linalg.norm(steps[1.0])
    )
    assert cos > 0.9999


def test_weights_hold_stored_value_and_initial_scale():
    crf = ConditionalRandomField(lr_multiplier=100)
    crf.build((None, None, 4))
    (stored,) = crf.get_weights()
    np.testing.assert_allclose(np.asarray(crf.trans), stored * 100, rtol=1e-6)
    limit = np.sqrt(6 / 8)  # glorot_uniform on the effective matrix
    assert np.abs(np.asarray(crf.trans)).max() <= limit + 1e-6
    crf.set_weights([np.ones((4, 4), "float32")])
    np.testing.assert_allclose(np.asarray(crf.trans), 100.0)


# ---------------------------------------------------------------------- MEMM
@pytest.mark.parametrize("hidden_dim,lr_multiplier", [(None, 1), (2, 5)])
def test_memm_matches_numpy(hidden_dim, lr_multiplier):
    rng = np.random.default_rng(4)
    e = rng.normal(size=MASKS.shape + (K,)).astype("float32")
    labels = rng.integers(0, K, size=MASKS.shape)
    memm = MaximumEntropyMarkovModel(lr_multiplier=lr_multiplier, hidden_dim=hidden_dim)
    y_pred = memm(e, mask=MASKS)
    if hidden_dim is None:
        stored = rng.normal(size=(K, K)).astype("float32")
        memm.set_weights([stored])
        trans = stored * lr_multiplier
    else:
        left, right = (rng.normal(size=(K, hidden_dim)).astype("float32") for _ in "lr")
        memm.set_weights([left, right])
        trans = (left * lr_multiplier) @ (right * lr_multiplier).T
    np.testing.assert_allclose(np.asarray(memm.trans), trans, rtol=1e-5, atol=1e-6)
    loss = np.asarray(memm.sparse_loss(labels, y_pred))
    dense = np.asarray(memm.dense_loss(np.eye(K)[labels], y_pred))
    ref = [numpy_memm(e[i], trans, labels[i], MASKS[i]) for i in range(len(e))]
    np.testing.assert_allclose(loss, ref, atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(dense, loss, atol=1e-6)
    acc = float(memm.sparse_accuracy(labels, y_pred))
    assert abs(acc - (e.argmax(-1) == labels)[MASKS].mean()) < 1e-6

    def total(emissions):
        return ops.sum(memm.sparse_loss(labels, memm(emissions, mask=MASKS)))

    _, (grad,) = value_and_grads(total, e)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[3], 0)


# ------------------------------------------------- Keras integration checks
def tagger(head, vocab=20, hidden=8):
    token_ids = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(vocab, hidden, mask_zero=True)(token_ids)
    emissions = keras.layers.Dense(K)(h)
    return token_ids, emissions, keras.Model(token_ids, head(emissions))


def token_batch(seed=0, lengths=(5, 3, 1)):
    rng = np.random.default_rng(seed)
    tokens = np.zeros((len(lengths), max(lengths)), "int32")
    for i, n in enumerate(lengths):
        tokens[i, :n] = rng.integers(1, 20, size=n)
    labels = rng.integers(0, K, size=tokens.shape)
    return tokens, labels


@pytest.mark.parametrize("cls", [ConditionalRandomField, MaximumEntropyMarkovModel])
def test_config_round_trip(cls):
    layer = cls(lr_multiplier=50, name="head")
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.lr_multiplier == 50
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is cls and restored.get_config() == layer.get_config()


def test_crf_model_saves_and_reloads(tmp_path):
    crf = ConditionalRandomField(lr_multiplier=10)
    token_ids, emissions, model = tagger(crf)
    serving = keras.Model(token_ids, [crf(emissions), crf(emissions, decode=True)])
    crf.set_trans(np.random.default_rng(1).normal(size=(K, K)))
    tokens, labels = token_batch()
    before = serving.predict(tokens, verbose=0)
    path = os.path.join(tmp_path, "crf.keras")
    serving.save(path)
    keras.utils.clear_session()
    loaded = keras.saving.load_model(path)
    after = loaded.predict(tokens, verbose=0)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    new_crf = [l for l in loaded.layers if isinstance(l, ConditionalRandomField)][0]
    np.testing.assert_array_equal(np.asarray(new_crf.trans), np.asarray(crf.trans))
    np.testing.assert_allclose(
        np.asarray(new_crf.sparse_loss(labels, after[0])),
        np.asarray(crf.sparse_loss(labels, before[0])),
    )
    # In-graph paths equal brute force on the unpadded tokens.
    valid = tokens > 0
    for i in range(len(tokens)):
        best = brute_crf(before[0][i], np.asarray(crf.trans), labels[i], valid[i])[1]
        np.testing.assert_array_equal(after[1][i][valid[i]], best)


def test_compiled_loss_is_mean_sequence_nll():
    crf = ConditionalRandomField(lr_multiplier=4)
    _, _, model = tagger(crf)
    crf.set_trans(np.random.default_rng(2).normal(size=(K, K)))
    tokens, labels = token_batch(3, lengths=(5, 2, 1, 4))
    model.compile("sgd", loss=crf.sparse_loss)
    e = model.predict(tokens, verbose=0)
    trans, valid = np.asarray(crf.trans), tokens > 0
    nll = [-brute_crf(e[i], trans, labels[i], valid[i])[0] for i in range(len(e))]
    np.testing.assert_allclose(
        model.evaluate(tokens, labels, verbose=0), np.mean(nll), rtol=1e-5
    )
    weights = np.array([1.0, 0.0, 2.0, 1.0])
    np.testing.assert_allclose(
        model.evaluate(tokens, labels, sample_weight=weights, verbose=0),
        np.sum(weights * nll) / len(nll), rtol=1e-5,
    )


@pytest.mark.tf_only
def test_exported_saved_model_serves_viterbi_paths(tmp_path):
    import tensorflow as tf

    crf = ConditionalRandomField()
    token_ids, emissions, _ = tagger(crf)
    serving = keras.Model(token_ids, crf(emissions, decode=True))
    crf.set_trans(np.random.default_rng(3).normal(size=(K, K)))
    tokens, labels = token_batch(4, lengths=(6, 4, 2))
    expected = serving.predict(tokens, verbose=0)
    path = os.path.join(tmp_path, "serving")
    serving.export(path, format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(path)
    np.testing.assert_array_equal(reloaded.serve(tf.constant(tokens)).numpy(), expected)
    e = keras.Model(token_ids, emissions).predict(tokens, verbose=0)
    valid = tokens > 0
    for i in range(len(tokens)):
        best = brute_crf(e[i], np.asarray(crf.trans), labels[i], valid[i])[1]
        np.testing.assert_array_equal(expected[i][valid[i]], best)


def test_explicit_mask_input_in_functional_model():
    emissions = keras.Input((None, K))
    mask = keras.Input((None,), dtype="bool")
    crf = ConditionalRandomField()
    model = keras.Model([emissions, mask], crf(emissions, mask=mask))
    e = np.random.default_rng(0).normal(size=(2, 4, K)).astype("float32")
    m = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], bool)
    out = model.predict([e, m], verbose=0)
    assert np.isneginf(out[~m]).all()
    np.testing.assert_array_equal(out[m], e[m])


@pytest.mark.parametrize("cls", [ConditionalRandomField, MaximumEntropyMarkovModel])
def test_padding_invariance(cls):
    head = cls()
    _, _, model = tagger(head)
    tokens, labels = token_batch()
    longer = np.pad(tokens, ((0, 0), (0, 4)))
    longer_labels = np.pad(labels, ((0, 0), (0, 4)), constant_values=2)
    short_out = model(tokens)
    long_out = model(longer)
    valid = tokens > 0
    np.testing.assert_allclose(
        np.asarray(long_out)[:, : tokens.shape[1]][valid], np.asarray(short_out)[valid],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        np.asarray(head.sparse_loss(longer_labels, long_out)),
        np.asarray(head.sparse_loss(labels, short_out)),
        atol=1e-5,
    )
    if cls is ConditionalRandomField:
        short_path = np.asarray(head.decode(short_out))
        long_path = np.asarray(head.decode(long_out))
        np.testing.assert_array_equal(long_path[:, : tokens.shape[1]], short_path)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [ConditionalRandomField, MaximumEntropyMarkovModel])
def test_fit_runs_and_learns(cls):
    """A compiled model trains through the -inf mask on this backend."""
    head = cls(lr_multiplier=10)
    _, _, model = tagger(head)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 20, size=(32, 6)).astype("int32")
    tokens[::2, 4:] = 0
    labels = tokens % K  # learnable from the token alone
    model.compile(
        keras.optimizers.Adam(0.05), loss=head.sparse_loss,
        metrics=[head.sparse_accuracy], jit_compile=True,
    )
    hist = model.fit(tokens, labels, epochs=15, batch_size=16, verbose=0).history
    assert np.isfinite(hist["loss"]).all()
    assert hist["loss"][-1] < hist["loss"][0] / 3
    assert hist["sparse_accuracy"][-1] > 0.9


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    crf = ConditionalRandomField(lr_multiplier=3)
    _, _, model = tagger(crf)
    tokens, labels = token_batch()
    out = model(tokens)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    assert keras.backend.standardize_dtype(crf._trans.dtype) == "float32"
    loss = crf.sparse_loss(labels, out)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    # Same value as brute force on the (half-precision) emissions in float64.
    e = np.asarray(ops.cast(out, "float32"))
    valid = tokens > 0
    trans = np.asarray(crf.trans)
    expected = [-brute_crf(e[i], trans, labels[i], valid[i])[0] for i in range(3)]
    np.testing.assert_allclose(np.asarray(loss), expected, atol=1e-5)
    path = np.asarray(crf.decode(out))
    for i in range(3):
        best = brute_crf(e[i], trans, labels[i], valid[i])[1]
        np.testing.assert_array_equal(path[i][valid[i]], best)
    model.compile("sgd", loss=crf.sparse_loss)
    assert np.isfinite(model.train_on_batch(tokens, labels))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_memm_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    memm = MaximumEntropyMarkovModel(lr_multiplier=3)
    _, _, model = tagger(memm)
    tokens, labels = token_batch()
    out = model(tokens)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    loss = memm.sparse_loss(labels, out)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    e, trans, valid = np.asarray(ops.cast(out, "float32")), np.asarray(memm.trans), tokens > 0
    expected = [numpy_memm(e[i], trans, labels[i], valid[i]) for i in range(3)]
    np.testing.assert_allclose(np.asarray(loss), expected, atol=1e-5)
    model.compile("sgd", loss=memm.sparse_loss)
    assert np.isfinite(model.train_on_batch(tokens, labels))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cls", [ConditionalRandomField, MaximumEntropyMarkovModel])
def test_bad_labels_raise_clear_errors(cls):
    head = cls()
    e = np.zeros((2, 4, K), "float32")
    y_pred = head(e)
    with pytest.raises(ValueError, match=r"y_true.*\(2, 4, 3, 1\)"):
        head.sparse_loss(np.zeros((2, 4, 3, 1)), y_pred)
    with pytest.raises(ValueError, match=r"y_true shape \(2, 5\).*\(2, 4, 3\)"):
        head.sparse_loss(np.zeros((2, 5)), y_pred)
    with pytest.raises(ValueError, match=r"one-hot.*\(2, 4, 3\).*\(2, 4\)"):
        head.dense_loss(np.zeros((2, 4)), y_pred)
    with pytest.raises(ValueError, match=r"y_pred.*4 labels.*3x3"):
        head.sparse_loss(np.zeros((2, 4)), np.zeros((2, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"y_pred.*\(2, 12\)"):
        head.sparse_loss(np.zeros((2, 12)), np.zeros((2, 12), "float32"))
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*\[3\].*\(1, 2\)"):
        head.sparse_loss(np.array([[0, 1, 2, 0], [0, 0, 3, 0]]), y_pred)
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*\[-1\]"):
        head.sparse_accuracy(np.array([[0, 1, 2, 0], [0, 0, -1, 0]]), y_pred)


@pytest.mark.parametrize("cls", [ConditionalRandomField, MaximumEntropyMarkovModel])
def test_out_of_range_ids_in_compiled_graph_and_eagerly(cls):
    """Compiled: that sequence's loss is NaN. Eager (run_eagerly): ValueError."""
    head = cls()
    _, _, model = tagger(head)
    tokens, labels = token_batch()
    model.compile("sgd", loss=head.sparse_loss)
    assert np.isfinite(model.evaluate(tokens, labels, verbose=0))
    bad = labels.copy()
    bad[0, 0] = K + 5
    assert np.isnan(model.evaluate(tokens, bad, verbose=0))
    bad[0, 0] = 0
    bad[1, 4] = -7  # padded position (row 1 has 3 tokens): ignored
    assert np.isfinite(model.evaluate(tokens, bad, verbose=0))
    model.compile("sgd", loss=head.sparse_loss, run_eagerly=True)
    bad[1, 0] = -7
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*\[-7\].*\(1, 0\)"):
        model.evaluate(tokens, bad, verbose=0)


def test_unbuilt_and_bad_arguments():
    crf = ConditionalRandomField()
    with pytest.raises(ValueError, match="not built"):
        crf.sparse_loss(np.zeros((1, 2)), np.zeros((1, 2, K), "float32"))
    with pytest.raises(ValueError, match="lr_multiplier"):
        ConditionalRandomField(lr_multiplier=0)
    with pytest.raises(ValueError, match="hidden_dim"):
        MaximumEntropyMarkovModel(hidden_dim=0)
    with pytest.raises(ValueError, match="num_labels"):
        ConditionalRandomField()(np.zeros((2, 3), "float32"))
    built = ConditionalRandomField()
    built.build((None, None, K))
    with pytest.raises(ValueError, match=r"set_trans.*\(3, 3\).*\(2, 2\)"):
        built.set_trans(np.zeros((2, 2)))
