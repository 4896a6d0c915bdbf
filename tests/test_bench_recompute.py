"""bench/bench_recompute.py: its model variants compute the plain model's
gradients, and its step measurements run on the current backend."""
import importlib.util
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _load_bench():
    path = os.path.join(ROOT, "bench", "bench_recompute.py")
    spec = importlib.util.spec_from_file_location("bench_recompute", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
BLOCK_PATHS = [  # plain layer name -> the bench's whole-block sublayer path
    (r"^Transformer-(\d+)-MultiHeadSelfAttention-Norm/", r"Transformer-\1/attention_norm/"),
    (r"^Transformer-(\d+)-MultiHeadSelfAttention/", r"Transformer-\1/attention/"),
    (r"^Transformer-(\d+)-FeedForward-Norm/", r"Transformer-\1/feed_forward_norm/"),
    (r"^Transformer-(\d+)-FeedForward/", r"Transformer-\1/feed_forward/"),
]


def _args(*extra):
    return bench.parse_args(["--tiny", "--dropout", "0", *extra])


def _copy_weights(source, target):
    """Assign `source`'s weights to `target` by (translated) path, never by position."""
    by_path = {w.path: w for w in target.weights}
    assert len(by_path) == len(source.weights)
    for w in source.weights:
        path = w.path
        for pattern, replacement in BLOCK_PATHS:
            if path not in by_path:
                path = re.sub(pattern, replacement, path)
        by_path[path].assign(keras.ops.convert_to_numpy(w))


def _gradients(model, batch):
    """Gradients of the mean token cross-entropy, in a tf.function on TensorFlow."""
    ids, segs, labels = batch
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def grads():
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model([ids, segs], training=True))
            return tape.gradient(loss, model.trainable_variables)

        return [keras.ops.convert_to_numpy(tf.convert_to_tensor(g)) for g in grads()]
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable):
        logits, _ = model.stateless_call(trainable, non_trainable, [ids, segs], training=True)
        return loss_fn(labels, logits)

    return [np.asarray(g) for g in jax.jit(jax.grad(loss))(trainable)]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["layers", "layers+small", "block"])
def test_variants_match_plain_gradients(variant):
    args = _args()
    batch = bench.make_batch(args)
    classes = bench.transformer_classes()
    plain = bench.build_model(args, "none", classes)
    remat = bench.build_model(args, variant, classes)
    _copy_weights(plain, remat)
    expected = _gradients(plain, batch)
    got = _gradients(remat, batch)
    assert [g.shape for g in got] == [g.shape for g in expected]
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b, a, atol=1e-5)


@pytest.mark.slow
def test_block_dropout_masks_survive_recompute():
    """Masks drawn outside the remat: the recomputation uses the same ones."""
    args = _args("--dropout", "0.3")
    batch = bench.make_batch(args)
    classes = bench.transformer_classes()
    keras.utils.set_random_seed(1)  # the same dropout seeds in both models
    plain = bench.build_model(args, "block", classes, recompute=False)
    keras.utils.set_random_seed(1)
    remat = bench.build_model(args, "block", classes, recompute=True)
    _copy_weights(plain, remat)
    expected = _gradients(plain, batch)
    got = _gradients(remat, batch)
    no_dropout = bench.build_model(_args(), "block", classes, recompute=False)
    _copy_weights(plain, no_dropout)
    # Dropout is really active, so the equality below is not vacuous.
    assert not np.allclose(_gradients(no_dropout, batch)[-2], expected[-2], atol=1e-5)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b, a, atol=1e-5)


@pytest.mark.slow
def test_step_measurements():
    # Large enough for TF's CPU allocator statistics (they skip small blocks).
    args = bench.parse_args(["--layers", "2", "--hidden", "64", "--intermediate", "128", "--vocab", "200",
                             "--seq", "64", "--batch", "4", "--heads", "4"])
    mode = "jax" if keras.backend.backend() == "jax" else "tf-graph"
    batch = bench.make_batch(args)
    measured = {}
    for variant in ("none", "layers"):
        step = bench.make_step(mode, bench.build_model(args, variant), batch)
        step.compile()
        assert np.isfinite(step.run())
        measured[variant] = (step.memory_counter(), step.matmul_count()[0])
    assert measured["none"][0] > 0 and measured["layers"][0] > 0
    if mode == "tf-graph":
        # The recomputed forward adds products, and the step peak drops.
        assert measured["layers"][1] > measured["none"][1]
        assert measured["layers"][0] < measured["none"][0]


def test_bad_arguments_name_the_flag(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", "tf-graph,gpu"])
    assert "--modes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--variants", "none,everything"])
    assert "--variants" in capsys.readouterr().err
    with pytest.raises(ValueError, match="variant"):
        bench.build_model(_args(), "all")


@pytest.mark.slow
def test_cli_tiny_run():
    cmd = [sys.executable, os.path.join(ROOT, "bench", "bench_recompute.py"), "--tiny", "--modes", "tf-graph",
           "--variants", "none,layers", "--rounds", "1", "--no-hlo"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("none ", "layers "))]
    assert len(rows) == 2 and not any("FAILED" in r for r in rows), proc.stdout
