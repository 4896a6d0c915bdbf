"""Vocabulary files: `load_vocab` (with bert4keras' simplified vocabulary)
and `save_vocab`."""
import os

from bert4keras.tokenizers._unicode import _is_cjk, _is_punctuation


def load_vocab(dict_path, encoding="utf-8", simplified=False, startswith=None):
    """Read a BERT `vocab.txt` into a `{token: id}` dict.

    Ids are line numbers, as in Google's and transformers' loaders. A line's
    token is the line without its line break; a line of the form
    `token<TAB>count` (or `token count`) keeps only its first field. Lines
    that are only whitespace are tokens as they stand, so vocabularies with
    whitespace tokens (bert-base-chinese's line 344 is U+2028) load whole.

    Args:
        dict_path: path of the vocabulary file, one token per line.
        encoding: file encoding.
        simplified: if True, drop tokens that WordPiece can never produce
            (multi-character tokens containing a CJK character or a
            punctuation mark, such as `##中`, `##，` or `[unused1]`) and
            return `(token_dict, keep_tokens)`.
        startswith: tokens placed first in the simplified vocabulary, in this
            order (for example `['[PAD]', '[UNK]', '[CLS]', '[SEP]']`).

    Returns:
        `token_dict`, or `(token_dict, keep_tokens)` when `simplified`, where
        `keep_tokens[i]` is the original id of new id `i`; pass it to
        `build_transformer_model(keep_tokens=...)`.

    Raises:
        ValueError: two lines give the same token (compared after the
            normalisation above). A dict keeps one id per token, so the
            other line's id would be lost and the ids would no longer
            match the checkpoint's embedding rows.

    Example:
    >>> token_dict, keep_tokens = load_vocab(
    ...     "vocab.txt", simplified=True,
    ...     startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    """
    token_dict = _read_vocab(dict_path, encoding)
    if not simplified:
        return token_dict

    new_token_dict, keep_tokens = {}, []
    for t in startswith or []:
        if t not in token_dict:
            raise KeyError(
                "load_vocab: `startswith` tokens must be in the vocabulary %r, got %r; "
                "list only tokens of that file" % (dict_path, t)
            )
        if t not in new_token_dict:
            new_token_dict[t] = len(new_token_dict)
            keep_tokens.append(token_dict[t])
    for t, i in sorted(token_dict.items(), key=lambda s: s[1]):
        if t not in new_token_dict and not _is_redundant(t):
            new_token_dict[t] = len(new_token_dict)
            keep_tokens.append(i)
    return new_token_dict, keep_tokens


def _read_vocab(dict_path, encoding="utf-8"):
    token_dict = {}
    with open(dict_path, encoding=encoding) as reader:
        for index, line in enumerate(reader):
            token = line.rstrip("\r\n")
            if (" " in token or "\t" in token) and token.strip():
                token = token.split()[0]
            first = token_dict.setdefault(token, index)
            if first != index:
                raise ValueError(
                    "vocabulary file %r must hold each token once, got %r on lines %d "
                    "and %d; ids are line numbers, so one of them would be lost and the "
                    "ids would shift against the checkpoint's rows. Remove or rename one "
                    "of the two lines." % (os.fspath(dict_path), token, first + 1, index + 1)
                )
    return token_dict


def save_vocab(dict_path, token_dict, encoding="utf-8"):
    """Write `{token: id}` to a vocab file, one token per line in id order.

    Args:
        dict_path: output path.
        token_dict: mapping from token to consecutive ids starting at 0.
        encoding: file encoding.
    """
    items = sorted(token_dict.items(), key=lambda s: s[1])
    for expected, (token, i) in enumerate(items):
        if i != expected:
            raise ValueError(
                "save_vocab: `token_dict` ids must be 0..%d without gaps, got id %r "
                "for token %r; renumber the ids consecutively" % (len(items) - 1, i, token)
            )
    with open(dict_path, "w", encoding=encoding) as writer:
        for token, _ in items:
            writer.write(token + "\n")


def _stem(token):
    return token[2:] if token[:2] == "##" else token


def _is_redundant(token):
    """True for tokens WordPiece can never output (see `load_vocab`)."""
    if len(token) > 1:
        for ch in _stem(token):
            if _is_cjk(ch) or _is_punctuation(ch):
                return True
    return False
