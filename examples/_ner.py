"""People's Daily NER (PER / LOC / ORG): what the CRF and the GlobalPointer
scripts share, from the pieces of text to the entity-level scores.

A script supplies its head (`build`), its `Generator` (a
`_runner.PaddedGenerator`: token ids and its targets) and a recognizer (token
predictions back to character spans); `run` does the rest: data, vocabulary,
model, training with a valid F1 after each epoch, and test scores.
"""
import keras
import numpy as np

import _runner
from _corpora import load_ner
from _options import model_arguments, model_config

from bert4keras.models import build_transformer_model
from bert4keras.snippets import sequence_padding

TYPES = ["PER", "LOC", "ORG"]
SMALL = dict(
    hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
    max_position=160, dropout_rate=0.1, attention_dropout_rate=0.1,
)
QUICK = dict(SMALL, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)


def entity_scores(predicted, gold, types=("PER", "LOC", "ORG")):
    """Entity-level precision, recall and F1 per type and overall (micro).

    `predicted` and `gold` are lists (one per text) of sets of
    `(start, end, type)`; an entity counts only with exact boundaries and type.
    Returns `{type: (precision, recall, f1, support)}` with an 'all' entry.
    """
    scores = {}
    for kind in list(types) + ["all"]:
        right = n_pred = n_gold = 0
        for p, g in zip(predicted, gold):
            if kind != "all":
                p = {e for e in p if e[2] == kind}
                g = {e for e in g if e[2] == kind}
            right += len(set(p) & set(g))
            n_pred += len(p)
            n_gold += len(g)
        precision, recall = right / max(n_pred, 1), right / max(n_gold, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        scores[kind] = (precision, recall, f1, n_gold)
    return scores


def print_entity_scores(scores, title):
    print(title)
    print(f"  {'type':5s} {'precision':>9s} {'recall':>7s} {'F1':>7s} {'entities':>9s}")
    for kind, (p, r, f, n) in scores.items():
        print(f"  {kind:5s} {p:9.4f} {r:7.4f} {f:7.4f} {n:9d}")




def token_edges(tokenizer, text, maxlen):
    """Tokens of `text`, and for each character that starts (ends) a token,
    that token's index: `(tokens, starts, ends)`. An entity whose edge is
    not in them falls inside a token (or was truncated away): it cannot be a
    target, and still counts as a miss in evaluation."""
    tokens = tokenizer.tokenize(text, maxlen=maxlen)
    mapping = tokenizer.rematch(text, tokens)
    starts = {chars[0]: i for i, chars in enumerate(mapping) if chars}
    ends = {chars[-1]: i for i, chars in enumerate(mapping) if chars}
    return tokens, starts, ends


def predict_texts(model, tokenizer, texts, maxlen, batch_size=64):
    """Yield `(text, tokens, output)` for each text, predicting batch by batch
    (padded to a multiple of 16: few shapes to compile)."""
    for i in range(0, len(texts), batch_size):
        chunk = texts[i:i + batch_size]
        tokens = [tokenizer.tokenize(t, maxlen=maxlen) for t in chunk]
        ids = [tokenizer.tokens_to_ids(t) for t in tokens]
        ids = sequence_padding(ids, length=-(-max(map(len, ids)) // 16) * 16)
        yield from zip(chunk, tokens, _runner.predict(model, (ids, np.zeros_like(ids))))


def arguments(doc):
    """The options of both NER scripts (add the head's own)."""
    parser = model_arguments(doc.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=126, help="characters per piece of text")
    parser.add_argument("--lr", type=float, default=None,
                        help="default 1e-3 from scratch and with --pretrained-small, 2e-5 from other checkpoints")
    return parser


def run(args, build, Generator):
    """Train and score one NER model; returns the test F1 per type and 'all'.

    `build(args, bert, tokenizer) -> (model, loss, metrics, recognize)`, with
    `recognize(texts)` giving a set of `(start, end, type)` per text.
    """
    if args.quick:
        args.maxlen = 30
    train, valid, test, report = load_ner(args.maxlen, seed=args.split_seed)
    print(report)
    if args.quick:
        train, valid, test = train[:400], valid[:50], test[:100]
        args.epochs = 1
    print(f"pieces of at most {args.maxlen} characters: train {len(train)}, valid {len(valid)}, test {len(test)}")
    tokenizer, keep_tokens = _runner.vocabulary(args, [t for t, _ in train], min_count=1)

    with _runner.scope(args):
        bert = build_transformer_model(**model_config(args, QUICK if args.quick else SMALL, keep_tokens))
        model, loss, metrics, recognize = build(args, bert, tokenizer)
        generator = Generator(train, tokenizer, args.maxlen + 2, batch_size=args.batch_size, seed=args.seed)
        model.compile(_runner.adam(args, len(generator) * args.epochs), loss=loss, metrics=metrics)

        def scores(split):
            return entity_scores(recognize([t for t, _ in split]), [set(e) for _, e in split], TYPES)

        class Evaluate(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                print(f"epoch {epoch + 1}: loss {logs['loss']:.3f}, valid entity F1 {scores(valid)['all'][2]:.4f}")

        _runner.fit(args, model, generator, types=(("int32", "int32"), "int32"),
                    shapes=(([None, None], [None, None]), generator.target_shape), epochs=args.epochs,
                    callbacks=[Evaluate()])
        test_scores = scores(test)
    print_entity_scores(test_scores, "test, entity level (exact span and type):")
    _runner.finish(args)
    return {kind: v[2] for kind, v in test_scores.items()}
