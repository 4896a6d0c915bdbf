"""FGM and gradient penalty (bert4keras.adversarial) against numpy.

A tiny model (token embedding -> mean over tokens -> softmax) has gradients
that numpy writes by hand, so one SGD step through `model.fit` is checked
against a hand-computed two-pass step (FGM) and against finite differences
of the penalised objective (gradient penalty). A small BERT checks the
`extend_with_*` optimizers, mixed precision (loss scaling) and 2 devices.
"""
import contextlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from bert4keras.adversarial import AdversarialModel, adversarial_training, fgm_perturbation, gradient_penalty
from bert4keras.optimizers import extend_with_exponential_moving_average, extend_with_piecewise_linear_lr

VOCAB, DIM, CLASSES, BATCH, LENGTH = 7, 3, 2, 4, 5
LR, EPSILON = 0.5, 0.7


def tiny_model():
    ids = keras.Input((LENGTH,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, DIM, name="Embedding-Token")(ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    probs = keras.layers.Dense(CLASSES, activation="softmax", name="Out")(x)
    model = keras.Model(ids, probs)
    rng = np.random.default_rng(0)
    model.get_layer("Embedding-Token").set_weights([rng.normal(0, 0.5, (VOCAB, DIM)).astype("float32")])
    model.get_layer("Out").set_weights([rng.normal(0, 0.8, (DIM, CLASSES)).astype("float32"),
                                        rng.normal(0, 0.2, CLASSES).astype("float32")])
    return model


def tiny_data():
    rng = np.random.default_rng(1)
    return rng.integers(0, VOCAB, (BATCH, LENGTH)).astype("int32"), np.array([0, 1, 1, 0], "int32")


def numpy_loss_and_grads(E, W, b, ids, y):
    """Cross-entropy (batch mean) and its gradients, by hand."""
    h = E[ids].mean(1)
    z = h @ W + b
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    dz = (p - np.eye(CLASSES)[y]) / len(y)
    dE = np.zeros_like(E)
    np.add.at(dE, ids, (dz @ W.T)[:, None, :] / ids.shape[1])
    return loss, dE, h.T @ dz, dz.sum(0)


def fit_one_step(model, optimizer, jit_compile=False):
    model.compile(optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    ids, y = tiny_data()
    history = model.fit(ids, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return {k: v[0] for k, v in history.history.items()}


def fgm_expected():
    E, W, b = (w.astype("float64") for w in tiny_model().get_weights())
    ids, y = tiny_data()
    loss, gE, gW, gb = numpy_loss_and_grads(E, W, b, ids, y)
    delta = EPSILON * gE / np.linalg.norm(gE)
    adv_loss, aE, aW, ab = numpy_loss_and_grads(E + delta, W, b, ids, y)
    # The second pass matters: a step with twice the clean gradient is far off.
    assert np.abs(aW - gW).max() > 0.05 * np.abs(gW).max()
    weights = [E - LR * (gE + aE), W - LR * (gW + aW), b - LR * (gb + ab)]
    return weights, {"loss": loss, "adversarial_loss": adv_loss}


def gradient_penalty_expected():
    weights = [w.astype("float64") for w in tiny_model().get_weights()]
    ids, y = tiny_data()

    def objective(ws):
        loss, gE, _, _ = numpy_loss_and_grads(*ws, ids, y)
        return loss + 0.5 * EPSILON * (gE ** 2).sum()

    # Central finite differences of the penalised objective, in float64.
    gradient = []
    for i, w in enumerate(weights):
        g = np.zeros_like(w)
        for j in np.ndindex(w.shape):
            plus = [v.copy() for v in weights]
            minus = [v.copy() for v in weights]
            plus[i][j] += 1e-6
            minus[i][j] -= 1e-6
            g[j] = (objective(plus) - objective(minus)) / 2e-6
        gradient.append(g)
    loss, gE, _, _ = numpy_loss_and_grads(*weights, ids, y)
    # The penalty's own gradient is not negligible in this check.
    assert np.abs(gradient[0] - gE).max() > 1e-3
    updated = [w - LR * g for w, g in zip(weights, gradient)]
    return updated, {"loss": loss, "gradient_penalty": 0.5 * EPSILON * (gE ** 2).sum()}


EXPECTED = {"fgm": fgm_expected, "gradient_penalty": gradient_penalty_expected}


def extended_sgd(learning_rate):
    """SGD through the extension pipeline (a flat schedule, an EMA): the same step as SGD."""
    Optimizer = extend_with_exponential_moving_average(extend_with_piecewise_linear_lr(keras.optimizers.SGD))
    return Optimizer(learning_rate=learning_rate, lr_schedule={0: 1.0, 100: 1.0}, ema_momentum=0.9)


@pytest.mark.parametrize("method,jit_compile,optimizer", [
    ("fgm", False, "sgd"), ("fgm", True, "extended"), ("gradient_penalty", True, "sgd"),
    ("gradient_penalty", False, "extended"),
])
def test_step_equals_numpy(method, jit_compile, optimizer):
    """FGM: the hand-computed two-pass step (perturbation eps * g / ||g||);
    gradient penalty: finite differences of L + eps / 2 * ||dL/dE||^2; and
    the logged loss and regulariser."""
    weights, logs = EXPECTED[method]()
    base = tiny_model()
    model = AdversarialModel(base, "Embedding-Token", epsilon=EPSILON, method=method)
    got = fit_one_step(model, keras.optimizers.SGD(LR) if optimizer == "sgd" else extended_sgd(LR), jit_compile)
    for value, want in zip(base.get_weights(), weights):
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)
    for key, want in logs.items():
        assert got[key] == pytest.approx(want, rel=1e-4), key


@pytest.mark.parametrize("method", ["fgm", "gradient_penalty"])
def test_mixed_float16_with_loss_scaling(method):
    weights, logs = EXPECTED[method]()
    keras.config.set_dtype_policy("mixed_float16")
    base = tiny_model()
    model = AdversarialModel(base, "Embedding-Token", epsilon=EPSILON, method=method)
    got = fit_one_step(model, keras.optimizers.SGD(LR))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.scale_loss(1.0) > 1000  # the scale is really there
    for value, want in zip(base.get_weights(), weights):
        np.testing.assert_allclose(value, want, rtol=1e-2, atol=2e-3)
    for key, want in logs.items():
        assert got[key] == pytest.approx(want, rel=1e-2), key


def test_fgm_perturbation_formula():
    g = np.random.default_rng(2).normal(0, 0.3, (VOCAB, DIM)).astype("float32")
    got = keras.ops.convert_to_numpy(fgm_perturbation(g, EPSILON))
    np.testing.assert_allclose(got, EPSILON * g / np.sqrt((g.astype("float64") ** 2).sum()), rtol=1e-6)
    assert not keras.ops.convert_to_numpy(fgm_perturbation(np.zeros((2, 2), "float32"), 1.0)).any()


@pytest.mark.parametrize("method", ["fgm", "gradient_penalty"])
def test_embedding_is_restored_exactly(method):
    base = tiny_model()
    before = base.get_weights()
    model = AdversarialModel(base, "Embedding-Token", epsilon=EPSILON, method=method)
    fit_one_step(model, keras.optimizers.SGD(0.0))
    for got, want in zip(base.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_keras_file_round_trip(tmp_path):
    """Saved after a step and loaded: same class, settings, outputs and optimizer state."""
    model = adversarial_training(tiny_model(), epsilon=0.3)
    fit_one_step(model, keras.optimizers.SGD(0.1))
    model.save(str(tmp_path / "adversarial.keras"))
    restored = keras.saving.load_model(str(tmp_path / "adversarial.keras"))
    assert isinstance(restored, AdversarialModel)
    assert (restored.embedding_name, restored.epsilon, restored.method) == ("Embedding-Token", 0.3, "fgm")
    assert int(restored.optimizer.iterations.numpy()) == 1
    ids, _ = tiny_data()
    np.testing.assert_array_equal(restored.predict_on_batch(ids), model.predict_on_batch(ids))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`embedding_name` must name a layer.*Embedding-Token"):
        adversarial_training(tiny_model(), "Embedding-Tokens")
    with pytest.raises(ValueError, match="`epsilon` must be a number >= 0, got -1"):
        gradient_penalty(tiny_model(), epsilon=-1)
    with pytest.raises(ValueError, match="`method` must be one of"):
        AdversarialModel(tiny_model(), method="pgd")
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        AdversarialModel("model")


def _two_device_worker():
    """Both methods' one-step checks on 2 devices (run in a fresh process)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        scope = strategy.scope
    else:
        devices = keras.distribution.list_devices()[:2]
        assert len(devices) == 2, devices
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        scope = contextlib.nullcontext
    for method in ("fgm", "gradient_penalty"):
        weights, logs = EXPECTED[method]()
        with scope():
            base = tiny_model()
            model = AdversarialModel(base, "Embedding-Token", epsilon=EPSILON, method=method)
            got = fit_one_step(model, extended_sgd(LR))
        for value, want in zip(base.get_weights(), weights):
            np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)
        for key, want in logs.items():
            assert got[key] == pytest.approx(want, rel=1e-4), (method, key, got[key], want)
    print("two-device steps equal numpy")


@pytest.mark.slow
def test_two_devices_equal_numpy():
    """Under MirroredStrategy (TF) or DataParallel (JAX) on 2 CPU devices, the
    step is still the single-device numpy step: the embedding gradient that
    sets the perturbation (or the penalty) is that of the whole batch."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(),
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "two-device steps equal numpy" in proc.stdout


if __name__ == "__main__":
    _two_device_worker()
