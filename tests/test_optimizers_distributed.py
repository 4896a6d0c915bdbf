"""bert4keras.optimizers under tf.distribute.MirroredStrategy on 2 CPU devices.

Logical devices must be configured before TensorFlow runs any op, which the
test process has long done; so the checks run in a fresh subprocess (this file
run as a script), which prints its measured differences as JSON.

References are plain Keras optimizers on one device with the whole batch,
so they share no code with the extensions under test.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOL = 2e-6  # max |difference| of weights, float32, weights of size ~1


def _run_worker(case, backend="tensorflow"):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), case],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"worker {case} failed (rc={proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.tf_only
@pytest.mark.slow
@pytest.mark.parametrize("base", ["SGD", "Adam"])
def test_accumulation_mirrored_equals_big_batch(base):
    out = _run_worker("accumulation-" + base)
    assert out["num_replicas"] == 2
    # k=2 micro-steps of 8 samples on 2 replicas == 1 step of 16 on 1 device.
    assert out["max_abs_diff"] < TOL, out
    # and the weights moved (the check is not vacuous)
    assert out["max_abs_change"] > 1e-3, out
    assert out["iterations"] == out["expected_iterations"], out


@pytest.mark.tf_only
@pytest.mark.slow
def test_global_norm_clipping_sees_summed_gradient():
    out = _run_worker("clipping")
    assert out["num_replicas"] == 2
    assert out["clipping_active"], out  # the global norm exceeded the limit
    assert out["max_abs_diff"] < TOL, out
    # Keras' own global_clipnorm on 2 replicas clips each replica's half:
    # it must NOT match, else this test could not tell the difference.
    assert out["keras_builtin_max_abs_diff"] > 1e-4, out


@pytest.mark.tf_only
@pytest.mark.slow
def test_full_stack_mirrored_matches_single_device():
    out = _run_worker("full-stack")
    assert out["num_replicas"] == 2
    assert out["max_abs_diff"] < TOL, out
    assert out["ema_max_abs_diff"] < TOL, out
    assert out["max_abs_change"] > 1e-3, out
    assert out["distributed_change"] > 1e-3, out
    assert out["iterations"] == 2, out
    assert out["ema_swap_all_replicas"] and out["ema_restore_bit_exact"], out


@pytest.mark.tf_only
@pytest.mark.slow
def test_loss_scale_mixed_float16_mirrored():
    out = _run_worker("loss-scale")
    assert out["num_replicas"] == 2
    assert out["iterations"] == 2, out
    assert out["slot_dtypes"] == ["float32"], out
    assert out["max_abs_change"] > 1e-2, out
    # float16 forward/backward vs float32: agreement to float16 precision
    assert out["max_abs_diff"] < 5e-3, out


@pytest.mark.slow
def test_jax_data_parallel_full_stack_matches_single_device():
    out = _run_worker("jax-data-parallel", backend="jax")
    assert out["num_devices"] == 2
    assert out["max_abs_diff"] < TOL, out
    assert out["max_abs_change"] > 1e-3, out
    assert out["iterations"] == 2, out


# ----------------------------------------------------------------------------
# Worker (runs in the subprocess)
# ----------------------------------------------------------------------------


def _jax_worker():
    import jax
    import keras
    import numpy as np

    from bert4keras import optimizers as bo

    rng = np.random.RandomState(0)
    x = rng.randn(32, 6).astype("float32")
    y = rng.randn(32, 2).astype("float32")

    def make_model():
        inputs = keras.Input((6,))
        h = keras.layers.Dense(8, activation="tanh", name="Transformer-0-FeedForward")(inputs)
        outputs = keras.layers.Dense(2, name="Pooler-Dense")(h)
        return keras.Model(inputs, outputs)

    keras.utils.set_random_seed(1)
    init = make_model().get_weights()
    Stack = bo.extend_with_exponential_moving_average(
        bo.extend_with_gradient_accumulation(
            bo.extend_with_layerwise_lr(
                bo.extend_with_gradient_clipping(keras.optimizers.Adam)
            )
        )
    )
    kwargs = dict(
        learning_rate=0.01,
        lr_multipliers={"Pooler": 2.0},
        grad_accum_steps=2,
        clip_global_norm=0.5,
        ema_momentum=0.9,
    )
    results = []
    for parallel in (False, True):
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices()) if parallel else None
        )
        model = make_model()
        model.set_weights(init)
        opt = Stack(**kwargs)
        model.compile(opt, "mse")
        for i in range(4):
            model.train_on_batch(x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8])
        results.append((model.get_weights(), int(opt.iterations.numpy())))
    keras.distribution.set_distribution(None)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(results[0][0], results[1][0]))
    change = max(float(np.max(np.abs(a - b))) for a, b in zip(results[0][0], init))
    out = {
        "num_devices": len(jax.devices()),
        "max_abs_diff": diff,
        "max_abs_change": change,
        "iterations": results[1][1],
    }
    print("RESULT " + json.dumps(out), flush=True)


def _worker(case):
    if case == "jax-data-parallel":
        return _jax_worker()
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu,
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )
    import keras
    import numpy as np

    from bert4keras import optimizers as bo

    rng = np.random.RandomState(0)
    x = rng.randn(16, 6).astype("float32")
    y = rng.randn(16, 2).astype("float32")

    def make_model():
        inputs = keras.Input((6,))
        h = keras.layers.Dense(8, activation="tanh", name="Transformer-0-FeedForward")(
            inputs
        )
        h = keras.layers.Dense(8, activation="tanh", name="Transformer-1-FeedForward")(h)
        outputs = keras.layers.Dense(2, name="Pooler-Dense")(h)
        return keras.Model(inputs, outputs)

    keras.utils.set_random_seed(1)
    init = [w.copy() for w in make_model().get_weights()]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def train(optimizer_fn, batches, distributed, jit_compile=False):
        scope = strategy.scope() if distributed else _nullcontext()
        with scope:
            model = make_model()
            model.set_weights(init)
            optimizer = optimizer_fn()
            model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
        for xb, yb in batches:
            model.train_on_batch(xb, yb)
        return model, optimizer

    def max_diff(a, b):
        return float(
            max(np.max(np.abs(np.asarray(u) - np.asarray(v))) for u, v in zip(a, b))
        )

    result = {"num_replicas": strategy.num_replicas_in_sync}
    halves = [(x[:8], y[:8]), (x[8:], y[8:])]
    if case.startswith("accumulation-"):
        base = getattr(keras.optimizers, case.split("-")[1])
        lr = 0.1 if base is keras.optimizers.SGD else 0.01
        Accum = bo.extend_with_gradient_accumulation(base)
        # 2 updates: 4 micro-batches of 8 (4 per replica) vs 2 steps of 16.
        x2 = np.concatenate([x, x[::-1]])
        y2 = np.concatenate([y, y[::-1]])
        micro = [(x2[i : i + 8], y2[i : i + 8]) for i in range(0, 32, 8)]
        big = [(x2[:16], y2[:16]), (x2[16:], y2[16:])]
        model, opt = train(
            lambda: Accum(learning_rate=lr, grad_accum_steps=2), micro, True
        )
        ref, _ = train(lambda: base(learning_rate=lr), big, False)
        result["max_abs_diff"] = max_diff(model.get_weights(), ref.get_weights())
        result["max_abs_change"] = max_diff(ref.get_weights(), init)
        result["iterations"] = int(opt.iterations.numpy())
        result["expected_iterations"] = 2
    elif case == "clipping":
        Clip = bo.extend_with_gradient_clipping(keras.optimizers.SGD)
        batches = [(x, y)]
        model, _ = train(
            lambda: Clip(learning_rate=0.5, clip_global_norm=0.05), batches, True
        )
        ref, _ = train(
            lambda: keras.optimizers.SGD(learning_rate=0.5, global_clipnorm=0.05),
            batches,
            False,
        )
        keras_dist, _ = train(
            lambda: keras.optimizers.SGD(learning_rate=0.5, global_clipnorm=0.05),
            batches,
            True,
        )
        plain, _ = train(lambda: keras.optimizers.SGD(learning_rate=0.5), batches, False)
        result["max_abs_diff"] = max_diff(model.get_weights(), ref.get_weights())
        result["keras_builtin_max_abs_diff"] = max_diff(
            keras_dist.get_weights(), ref.get_weights()
        )
        result["clipping_active"] = max_diff(plain.get_weights(), ref.get_weights()) > 1e-3
    elif case == "full-stack":
        Full = bo.extend_with_exponential_moving_average(
            bo.extend_with_gradient_accumulation(
                bo.extend_with_layerwise_lr(
                    bo.extend_with_weight_decay(
                        bo.extend_with_gradient_clipping(keras.optimizers.Adam)
                    )
                )
            )
        )
        kwargs = dict(
            learning_rate=0.01,
            weight_decay_rate=0.1,
            exclude_from_weight_decay=["bias"],
            lr_multipliers={"Transformer-0": 0.5, "Pooler": 2.0},
            grad_accum_steps=2,
            ema_momentum=0.9,
            clip_global_norm=0.5,
        )
        x2 = np.concatenate([x, x[::-1]])
        y2 = np.concatenate([y, y[::-1]])
        micro = [(x2[i : i + 8], y2[i : i + 8]) for i in range(0, 32, 8)]
        model, opt = train(lambda: Full(**kwargs), micro, True)
        ref, ref_opt = train(lambda: Full(**kwargs), micro, False)
        result["max_abs_diff"] = max_diff(model.get_weights(), ref.get_weights())
        result["ema_max_abs_diff"] = max_diff(
            [v.numpy() for v in opt.ema_variables],
            [v.numpy() for v in ref_opt.ema_variables],
        )
        result["max_abs_change"] = max_diff(ref.get_weights(), init)
        result["distributed_change"] = max_diff(model.get_weights(), init)
        result["iterations"] = int(opt.iterations.numpy())
        # EMA swap on mirrored variables: every replica gets the averages,
        # and the trained weights come back bit-exactly.
        trained = [v.numpy().copy() for v in model.trainable_variables]
        with opt.ema_weights():
            swapped = all(
                np.array_equal(
                    np.asarray(component.numpy()), np.asarray(avg.numpy())
                )
                for v, avg in zip(model.trainable_variables, opt.ema_variables)
                for component in v.value.values
            )
        restored = all(
            np.asarray(component.numpy()).tobytes() == t.tobytes()
            for v, t in zip(model.trainable_variables, trained)
            for component in v.value.values
        )
        result["ema_swap_all_replicas"] = bool(swapped)
        result["ema_restore_bit_exact"] = bool(restored)
    elif case == "loss-scale":
        # mixed_float16 under MirroredStrategy: compile wraps the stack in a
        # LossScaleOptimizer; compare with float32 on one device (loose: the
        # forward pass runs in float16).
        Stack = bo.extend_with_exponential_moving_average(
            bo.extend_with_gradient_accumulation(
                bo.extend_with_gradient_clipping(keras.optimizers.SGD)
            )
        )
        kwargs = dict(learning_rate=0.1, grad_accum_steps=2, clip_global_norm=0.5)
        x2 = np.concatenate([x, x[::-1]])
        y2 = np.concatenate([y, y[::-1]])
        micro = [(x2[i : i + 8], y2[i : i + 8]) for i in range(0, 32, 8)]
        keras.config.set_dtype_policy("mixed_float16")
        with strategy.scope():
            model = make_model()
            model.set_weights(init)
            inner = Stack(**kwargs)
            model.compile(
                keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**8),
                loss="mse",
            )
        for xb, yb in micro:
            model.train_on_batch(xb, yb)
        keras.config.set_dtype_policy("float32")
        ref, _ = train(lambda: Stack(**kwargs), micro, False)
        result["max_abs_diff"] = max_diff(model.get_weights(), ref.get_weights())
        result["max_abs_change"] = max_diff(ref.get_weights(), init)
        result["iterations"] = int(inner.iterations.numpy())
        result["slot_dtypes"] = sorted({str(v.dtype) for v in inner.ema_variables + list(inner._accumulators)})
    else:
        raise SystemExit(f"unknown case {case}")
    print("RESULT " + json.dumps(result), flush=True)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


if __name__ == "__main__":
    _worker(sys.argv[1])
