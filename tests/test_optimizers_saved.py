"""`.keras` files saved before the optimizers package split still load.

tests/data/optimizer_stack_v1.keras was written by the single-module
`bert4keras/optimizers.py` (see tests/data/make_optimizer_keras.py); its
config names the one loader `bert4keras>ExtendedOptimizer`.
optimizer_stack_v1_keras310.keras is the same, written under Keras 3.10.0
(the floor in setup.py), so that the floor step of CI loads an old file too.
"""
import json
import os
import zipfile

import keras
import numpy as np
import pytest

import bert4keras.optimizers  # noqa: F401  (registers the loader)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FILE = os.path.join(DATA, "optimizer_stack_v1.keras")


def _version(text):
    return tuple(int(part) for part in text.split(".")[:2])


def _saved_by():
    with zipfile.ZipFile(FILE) as z:
        return json.loads(z.read("metadata.json"))["keras_version"]


@pytest.mark.skipif(
    _version(keras.__version__) < _version(_saved_by()),
    reason="Keras cannot load layer configs written by a newer Keras (e.g. Dense's quantization_config)",
)
def test_file_saved_before_the_split_loads_and_trains_on_identically():
    _check_loads_and_trains_on("optimizer_stack_v1")


def test_file_saved_by_keras_3_10_before_the_split_loads_and_trains_on_identically():
    _check_loads_and_trains_on("optimizer_stack_v1_keras310")


def _check_loads_and_trains_on(stem):
    expected = np.load(os.path.join(DATA, f"{stem}_expected.npz"))
    model = keras.saving.load_model(os.path.join(DATA, f"{stem}.keras"))
    optimizer = model.optimizer
    assert list(type(optimizer)._extensions) == list(expected["extensions"])
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.lr_schedule == {2: 1.0, 10: 0.5}
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 2
    for x, y in zip(expected["x"], expected["y"]):
        model.train_on_batch(x, y)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == int(expected["iterations"])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, expected[f"weight_{i}"], atol=1e-6, rtol=1e-5)
    for i, v in enumerate(optimizer.ema_variables):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(v.value), expected[f"ema_{i}"], atol=1e-6, rtol=1e-5
        )
