"""A task example data-parallel over 2 logical CPU devices (`--devices 2`):
`tf.distribute.MirroredStrategy` under TensorFlow, `keras.distribution.DataParallel`
under JAX (`XLA_FLAGS=--xla_force_host_platform_device_count=2`). It runs in a
fresh process, since the devices are fixed when a backend starts."""
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.mark.slow
def test_sentiment_quick_on_two_devices():
    backend = keras.backend.backend()
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if backend == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    script = os.path.join(ROOT, "examples", "task_sentiment_classification.py")
    proc = subprocess.run([sys.executable, script, "--quick", "--devices", "2"], env=env, capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    kind = "MirroredStrategy" if backend == "tensorflow" else "DataParallel"
    assert f"data-parallel over 2 devices ({kind})" in proc.stdout
    assert "test accuracy (EMA weights of the best valid epoch" in proc.stdout
