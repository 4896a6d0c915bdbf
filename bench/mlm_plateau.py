"""How fast a small model leaves the unigram plateau of MLM pretraining.

Trains the pretraining model of `pretraining.model` on records built by
`examples/pretrain_chinese_small.py` with plain Adam (no warm-up, clipping or
weight decay, so only the family differs) and prints, every 100 updates, the
loss, the top-1 accuracy on the positions that show `[MASK]` (the 10% kept
and 10% random positions left out: the kept ones are solved by copying the
input) and the accuracy over all masked positions.

    python bench/mlm_plateau.py --model bert
    python bench/mlm_plateau.py --model roformer

On the plateau the `[MASK]` accuracy stays at the frequency of the most common
character (about 0.05 on this corpus) while the model learns to copy.
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bert4keras.models import build_transformer_model, model_names  # noqa: E402

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "pretrained",
                           "chinese_small")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe-dir", default=DEFAULT_DIR,
                        help="output directory of pretrain_chinese_small.py (its records/ and bert_config.json)")
    parser.add_argument("--model", default="bert", choices=model_names())
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import tensorflow as tf

    from pretraining import data as records
    from pretraining.model import build_pretraining_model, masked_lm_loss

    meta, files = records.read_meta(os.path.join(args.recipe_dir, "records"))
    with open(os.path.join(args.recipe_dir, "bert_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config.update(hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)
    with tempfile.TemporaryDirectory() as tmp:
        config_path = os.path.join(tmp, "bert_config.json")
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        keras.utils.set_random_seed(args.seed)
        builder = build_transformer_model(config_path, model=args.model, with_mlm="linear",
                                          return_keras_model=False)
    model = build_pretraining_model(builder, meta["max_predictions_per_seq"])
    optimizer = keras.optimizers.Adam(args.lr)
    variables = model.trainable_variables
    optimizer.build(variables)
    batches = iter(records.make_dataset(files, meta, args.batch_size, seed=args.seed))

    @tf.function(jit_compile=True)
    def step(batch):
        with tf.GradientTape() as tape:
            logits = model([batch["token_ids"], batch["segment_ids"], batch["masked_positions"]], training=True)
            loss_sum, count, correct = masked_lm_loss(batch["masked_ids"], logits, batch["masked_weights"])
            loss = loss_sum / count
        optimizer.apply(tape.gradient(loss, variables), variables)
        shown = tf.gather(batch["token_ids"], batch["masked_positions"], batch_dims=1)
        at_mask = tf.cast(shown == meta["mask_id"], tf.float32) * batch["masked_weights"]
        right = tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == batch["masked_ids"], tf.float32)
        return loss, tf.reduce_sum(right * at_mask) / tf.reduce_sum(at_mask), correct / count

    print(f"{args.model}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, Adam {args.lr}, "
          f"dropout {args.dropout}, batch {args.batch_size} x {meta['seq_len']}")
    began, history = time.time(), []
    for i in range(args.steps):
        history.append([float(v) for v in step(next(batches))])
        if (i + 1) % 100 == 0 or i + 1 == args.steps:
            loss, at_mask, overall = np.mean(history[-100:], axis=0)
            print(f"{args.model} update {i + 1}: loss {loss:.3f}, [MASK] accuracy {at_mask:.3f}, "
                  f"all masked {overall:.3f} ({time.time() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
