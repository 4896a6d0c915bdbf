"""Writes optimizer_stack_v1.keras: a small model compiled with a stack of
eight extensions, saved mid-accumulation, plus the weights three more
training steps give (optimizer_stack_v1_expected.npz).

The file was written by the single-module `bert4keras/optimizers.py`
(before the package split), so tests/test_optimizers_saved.py checks that
files saved by that code still load and train on identically. Do not
regenerate it with newer code: that would defeat the test.

    python tests/data/make_optimizer_keras.py

`optimizer_stack_v1_keras310.keras` (and its `_expected.npz`) is the same
file written by that code under the oldest Keras setup.py allows, so that
CI's version-floor step checks old files too (a Keras cannot read files
written by a newer one):

    git archive 30abdb4 bert4keras | tar -x -C OLD
    PYTHONPATH=OLD python tests/data/make_optimizer_keras.py _keras310   # keras 3.10.0
"""
import os
import sys

import keras
import numpy as np

from bert4keras import optimizers as bo

HERE = os.path.dirname(os.path.abspath(__file__))


def main(suffix=""):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, name="Embedding-Mapping")(inputs)
    h = keras.layers.LayerNormalization(name="Embedding-Norm")(h)
    for i in range(2):
        h = keras.layers.Dense(4, activation="tanh", name=f"Transformer-{i}-FeedForward")(h)
        h = keras.layers.LayerNormalization(name=f"Transformer-{i}-FeedForward-Norm")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="Pooler-Dense")(h))
    cls = keras.optimizers.Adam
    for factory in (
        bo.extend_with_gradient_clipping,
        bo.extend_with_weight_decay,
        bo.extend_with_layer_adaptation,
        bo.extend_with_layerwise_lr,
        bo.extend_with_piecewise_linear_lr,
        bo.extend_with_lookahead,
        bo.extend_with_gradient_accumulation,
        bo.extend_with_exponential_moving_average,
    ):
        cls = factory(cls)
    model.compile(
        cls(
            learning_rate=0.01,
            weight_decay_rate=0.05,
            exclude_from_weight_decay=["Norm", "bias"],
            lr_multipliers={"Transformer-0": 0.5, "Pooler": 2.0},
            grad_accum_steps=2,
            ema_momentum=0.9,
            clip_norm_rules={"Pooler": 1.0},
            clip_global_norm=5.0,
            exclude_from_layer_adaptation=["Norm", "bias"],
            lr_schedule={2: 1.0, 10: 0.5},
            steps_per_slow_update=2,
        ),
        "mse",
    )
    rng = np.random.RandomState(0)
    x = rng.randn(8, 4, 3).astype("float32")
    y = rng.randn(8, 4, 2).astype("float32")
    for i in range(5):  # odd: saved mid-accumulation
        model.train_on_batch(x[i], y[i])
    model.save(os.path.join(HERE, f"optimizer_stack_v1{suffix}.keras"))
    for i in range(5, 8):
        model.train_on_batch(x[i], y[i])
    np.savez(
        os.path.join(HERE, f"optimizer_stack_v1{suffix}_expected.npz"),
        x=x[5:],
        y=y[5:],
        iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        extensions=np.array(type(model.optimizer)._extensions),
        **{f"weight_{i}": w for i, w in enumerate(model.get_weights())},
        **{
            f"ema_{i}": keras.ops.convert_to_numpy(v.value)
            for i, v in enumerate(model.optimizer.ema_variables)
        },
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
