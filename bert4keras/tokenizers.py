"""Tokenizers: WordPiece with Google BERT's exact semantics, and SentencePiece.

`Tokenizer` reproduces Google's `tokenization.FullTokenizer` id for id
(control-character cleaning, whitespace and punctuation splitting, every CJK
character on its own, lower-casing with NFD accent stripping, greedy
longest-match-first WordPiece, `[UNK]` for words over 100 characters). It is
written for speed: the character classes are compiled into regular
expressions once, so the per-character work runs in C, and WordPiece results
are cached per word.
"""
import functools
import os
import re
import sys
import unicodedata
from itertools import chain

from bert4keras.sequences import truncate_sequences

__all__ = ["load_vocab", "save_vocab", "Tokenizer", "SpTokenizer", "TokenizerBase"]

# Google's definition of "Chinese character": the CJK Unified Ideographs
# blocks, not Hangul, Hiragana or Katakana.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(ch):
    cp = ord(ch)
    for lo, hi in _CJK_RANGES:
        if lo <= cp <= hi:
            return True
    return False


def _is_punctuation(ch):
    """Google's punctuation: all non-alphanumeric ASCII, plus Unicode P*."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_control(ch):
    """Characters Google's `_clean_text` deletes."""
    if ch in "\t\n\r":
        return False
    cp = ord(ch)
    return cp == 0 or cp == 0xFFFD or unicodedata.category(ch).startswith("C")


def _char_class(codepoints):
    """A regex character class body for a sorted list of code points."""
    parts, start, prev = [], None, None
    for cp in codepoints:
        if start is None:
            start = prev = cp
        elif cp == prev + 1:
            prev = cp
        else:
            parts.append((start, prev))
            start = prev = cp
    if start is not None:
        parts.append((start, prev))

    def esc(cp):
        return "\\U%08x" % cp

    return "".join(
        esc(a) if a == b else "%s-%s" % (esc(a), esc(b)) for a, b in parts
    )


@functools.lru_cache(maxsize=None)
def _tables():
    """Compiled character-class regexes, built once from `unicodedata`.

    Deriving them from the running Python's Unicode database (rather than a
    hard-coded table) keeps us identical to a Python reference tokenizer on
    the same interpreter.

    `re` tests a character class with a bitmap for the BMP but walks the
    ranges above U+FFFF one by one, which costs ~0.7 us per character for
    classes as fragmented as "all C* categories". So the full patterns test
    the astral ranges only behind a lookahead for an astral character, and
    each class also exists restricted to the BMP as a plain class (fastest).
    `special` finds the texts that need the full patterns: any character
    above U+FFFF, any control or combining mark, and the few BMP characters
    whose lower-case form has a combining mark (U+0130) or whose lower-case
    NFD form leaves the BMP.
    """
    control, mark, punct, escapes = [], [], [], []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cp == 0xFFFD:
            if ch not in "\t\n\r":
                control.append(cp)
        elif cat == "Mn":
            mark.append(cp)
        elif cat[0] == "P":
            punct.append(cp)
        if 0x80 <= cp <= 0xFFFF:
            lower = ch.lower()
            if max(unicodedata.normalize("NFD", lower)) > "\uffff" or any(
                unicodedata.category(c) == "Mn" for c in lower
            ):
                escapes.append(cp)
    ascii_punct = [
        cp for cp in range(128)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
    ]
    punct = sorted(set(punct) | set(ascii_punct))

    cjk = [cp for lo, hi in _CJK_RANGES for cp in range(lo, hi + 1)]
    astral = "\\U00010000-\\U0010ffff"

    def bmp(cps):
        return _char_class([cp for cp in cps if cp <= 0xFFFF])

    def high(cps):
        return _char_class([cp for cp in cps if cp > 0xFFFF])

    def member(cps):
        return "(?:[%s]|(?=[%s])[%s])" % (bmp(cps), astral, high(cps))

    single = sorted(set(cjk) | set(punct))
    # One token per CJK char or punctuation char, otherwise a maximal run of
    # other non-space characters. `\s` is exactly str.split()'s whitespace,
    # which is what Google's `whitespace_tokenize` uses.
    split = "%s|(?:[^\\s%s%s]|(?![%s])[%s])+" % (member(single), bmp(single), astral, high(single), astral)
    bmp_split = "[%s]|[^\\s%s]+" % (bmp(single), bmp(single))

    special = sorted(set(cp for cp in control + mark if cp <= 0xFFFF) | set(escapes))
    return {
        "control": re.compile(member(control)),
        "mark": re.compile(member(mark)),
        "split": re.compile(split),
        "special": re.compile("[%s%s]" % (_char_class(special), astral)),
        "bmp_mark": re.compile("[%s]" % bmp(mark)),
        "bmp_split": re.compile(bmp_split),
        "ascii_control": re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]"),
        "ascii_split": re.compile("[!-/:-@\\[-`{-~]|[^\\s!-/:-@\\[-`{-~]+"),
    }


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
                "load_vocab(startswith=...): token %r is not in vocabulary %r"
                % (t, dict_path)
            )
        if t not in new_token_dict:
            new_token_dict[t] = len(new_token_dict)
            keep_tokens.append(token_dict[t])
    for t, i in sorted(token_dict.items(), key=lambda s: s[1]):
        if t not in new_token_dict and not Tokenizer._is_redundant(t):
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
                "save_vocab: token_dict ids must be 0..%d without gaps; "
                "token %r has id %r" % (len(items) - 1, token, i)
            )
    with open(dict_path, "w", encoding=encoding) as writer:
        for token, _ in items:
            writer.write(token + "\n")


class TokenizerBase:
    """Shared logic: special tokens, truncation, `encode` and batching.

    Args:
        token_start: token prepended to every sequence (None for none).
        token_end: token appended to every sequence (None for none).
        pre_tokenize: optional function `text -> list of words` applied
            before WordPiece; words found in the vocabulary are kept whole.
        token_translate: optional `{token: token}` map applied after
            tokenization (decode applies the inverse).
    """

    def __init__(
        self,
        token_start="[CLS]",
        token_end="[SEP]",
        pre_tokenize=None,
        token_translate=None,
    ):
        self._token_pad = "[PAD]"
        self._token_unk = "[UNK]"
        self._token_mask = "[MASK]"
        self._token_start = token_start
        self._token_end = token_end
        self._pre_tokenize = pre_tokenize
        self._token_translate = dict(token_translate or {})
        self._token_translate_inv = {v: k for k, v in self._token_translate.items()}

    # -- to be provided by subclasses ------------------------------------
    def _tokenize(self, text):
        raise NotImplementedError

    def _text_ids(self, text):
        """Ids of `text` without special tokens (after token_translate)."""
        return self.tokens_to_ids(self._translated_tokens(text))

    def token_to_id(self, token):
        raise NotImplementedError

    def id_to_token(self, i):
        raise NotImplementedError

    # -- shared ----------------------------------------------------------
    def _translated_tokens(self, text):
        if not self._token_translate:
            return self._tokenize(text)
        return [self._token_translate.get(t) or t for t in self._tokenize(text)]

    def tokens_to_ids(self, tokens):
        """Map tokens to ids (unknown tokens give the `[UNK]` id)."""
        return [self.token_to_id(t) for t in tokens]

    def ids_to_tokens(self, ids):
        """Map ids to tokens."""
        return [self.id_to_token(i) for i in ids]

    def _special_ids(self):
        start = None if self._token_start is None else self.token_to_id(self._token_start)
        end = None if self._token_end is None else self.token_to_id(self._token_end)
        return start, end

    def tokenize(self, text, maxlen=None):
        """Split `text` into tokens, with the start and end tokens added.

        Args:
            text: a string.
            maxlen: if given, drop tokens just before the end token until at
                most `maxlen` tokens remain; it must hold the start and end
                tokens, else ValueError.

        Returns:
            A list of token strings.
        """
        _check_text(text, "text")
        if maxlen is not None:
            maxlen = self._check_room(maxlen, pair=False, pattern="S*E*E")
        tokens = self._translated_tokens(text)
        if self._token_start is not None:
            tokens.insert(0, self._token_start)
        if self._token_end is not None:
            tokens.append(self._token_end)
        if maxlen is not None:
            index = -(int(self._token_end is not None) + 1)
            truncate_sequences(maxlen, index, tokens)
        return tokens

    def _check_room(self, maxlen, pair, pattern):
        """`maxlen` as an int, refused when the special tokens alone exceed it.

        Truncation removes text tokens only: a shorter `maxlen` could only be
        met by dropping `[CLS]` or `[SEP]`, giving sequences unlike any the
        model was trained on, silently.
        """
        maxlen = _check_maxlen(maxlen)
        start = [] if self._token_start is None else [self._token_start]
        end = [] if self._token_end is None else [self._token_end]
        specials = start + end
        if pair:
            specials += start + end if pattern == "S*ES*E" else end
        if maxlen < len(specials):
            raise ValueError(
                "maxlen must be at least %d for %s: its special tokens (%s) alone take %d "
                "positions, got maxlen=%d" % (
                    len(specials), "a text pair" if pair else "one text",
                    " + ".join(specials), len(specials), maxlen)
            )
        return maxlen

    def encode(
        self,
        first_text,
        second_text=None,
        maxlen=None,
        pattern="S*E*E",
        truncate_from="right",
    ):
        """Token ids and segment ids of a text or a text pair.

        Args:
            first_text: a string, or a list of tokens (already tokenized,
                including any start/end token).
            second_text: optional second string (or token list); its tokens
                get segment id 1. With the default pattern `S*E*E` the pair
                is `[CLS] first [SEP] second [SEP]`.
            maxlen: optional upper bound on the total length, special tokens
                included (as in bert4keras); text tokens are removed one at a
                time from the longer text. It must leave room for the special
                tokens (2 for one text, 3 for a pair with `S*E*E`, 4 with
                `S*ES*E`), else ValueError.
            pattern: `'S*E*E'` (second text without its start token) or
                `'S*ES*E'` (second text keeps it).
            truncate_from: `'right'` (drop the last real tokens), `'left'`
                (drop the first real tokens), or an int position to pop at.

        Returns:
            `(token_ids, segment_ids)`, two lists of ints.

        Example:
        >>> token_ids, segment_ids = tokenizer.encode("语言模型", maxlen=8)
        """
        if pattern not in ("S*E*E", "S*ES*E"):
            raise ValueError(
                "encode(pattern=...): expected 'S*E*E' or 'S*ES*E', got %r" % (pattern,)
            )
        if maxlen is not None:
            maxlen = self._check_room(maxlen, second_text is not None, pattern)
        start_id, end_id = self._special_ids()
        first = self._sequence_ids(first_text, "first_text", start_id, end_id)
        second = None
        if second_text is not None:
            second = self._sequence_ids(second_text, "second_text", start_id, end_id)

        drop_start = second is not None and pattern == "S*E*E" and start_id is not None
        if maxlen is not None:
            if truncate_from == "right":
                index = -int(end_id is not None) - 1
            elif truncate_from == "left":
                index = int(start_id is not None)
            elif isinstance(truncate_from, int) and not isinstance(truncate_from, bool):
                index = truncate_from
            else:
                raise ValueError(
                    "encode(truncate_from=...): expected 'right', 'left' or an int, "
                    "got %r" % (truncate_from,)
                )
            # The second text still carries its start token here and loses
            # it afterwards, as in bert4keras, hence the extra slot.
            truncate_sequences(maxlen + int(drop_start), index, first, second)

        if drop_start and second_text is not None:
            second = second[1:]
        if maxlen is not None:
            over = len(first) + len(second or ()) - maxlen
            if over > 0:  # only for token lists that lack the special tokens
                if second:
                    cut = min(over, len(second))
                    del second[len(second) - cut:]
                    over -= cut
                if over > 0:
                    del first[len(first) - over:]

        segment_ids = [0] * len(first)
        if second:
            first.extend(second)
            segment_ids.extend([1] * len(second))
        return first, segment_ids

    def _sequence_ids(self, text, name, start_id, end_id):
        if isinstance(text, str):
            ids = self._text_ids(text)
            if start_id is not None:
                ids.insert(0, start_id)
            if end_id is not None:
                ids.append(end_id)
            return ids
        if isinstance(text, (list, tuple)):
            return self.tokens_to_ids(text)
        raise TypeError(
            "encode(%s=...): expected a string or a list of tokens, got %s"
            % (name, type(text).__name__)
        )

    def encode_batch(
        self,
        first_texts,
        second_texts=None,
        maxlen=None,
        pattern="S*E*E",
        truncate_from="right",
    ):
        """`encode` over a list of texts (or text pairs).

        Args:
            first_texts: list of strings.
            second_texts: optional list of strings, same length.
            maxlen, pattern, truncate_from: as in `encode`.

        Returns:
            `(batch_token_ids, batch_segment_ids)`: two lists of lists; pad
            them with `bert4keras.snippets.sequence_padding`.
        """
        if isinstance(first_texts, str):
            raise TypeError("encode_batch(first_texts=...): expected a list of strings, got a string")
        if second_texts is None:
            pairs = ((t, None) for t in first_texts)
        else:
            first_texts = list(first_texts)
            second_texts = list(second_texts)
            if len(first_texts) != len(second_texts):
                raise ValueError(
                    "encode_batch: first_texts has %d items but second_texts has %d"
                    % (len(first_texts), len(second_texts))
                )
            pairs = zip(first_texts, second_texts)
        batch_token_ids, batch_segment_ids = [], []
        for a, b in pairs:
            token_ids, segment_ids = self.encode(
                a, b, maxlen=maxlen, pattern=pattern, truncate_from=truncate_from
            )
            batch_token_ids.append(token_ids)
            batch_segment_ids.append(segment_ids)
        return batch_token_ids, batch_segment_ids

    @property
    def vocab_size(self):
        return self._vocab_size


def _check_text(text, name):
    if not isinstance(text, str):
        raise TypeError("%s must be a string, got %s" % (name, type(text).__name__))


def _check_maxlen(maxlen):
    try:
        value = int(maxlen)
    except (TypeError, ValueError):
        raise TypeError("maxlen must be an int, got %r" % (maxlen,)) from None
    if value != maxlen or value < 0:
        raise ValueError("maxlen must be a non-negative int, got %r" % (maxlen,))
    return value


class _WordCache(dict):
    """`word -> tuple of ids`; computes misses on lookup so hits stay in C."""

    __slots__ = ("compute", "limit")

    def __init__(self, compute, limit):
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, word):
        value = self.compute(word)
        if len(self) >= self.limit:
            self.clear()
        self[word] = value
        return value


class Tokenizer(TokenizerBase):
    """BERT WordPiece tokenizer with Google's exact semantics, in fast Python.

    Args:
        token_dict: `{token: id}` dict or path of a `vocab.txt`.
        do_lower_case: lower-case and strip accents (NFD, drop `Mn`), as for
            uncased and Chinese BERT checkpoints.
        token_start: start token (default `[CLS]`; None for none).
        token_end: end token (default `[SEP]`; None for none).
        pre_tokenize: optional `text -> words` function run first (for
            example a word segmenter); words in the vocabulary stay whole.
        token_translate: optional `{token: token}` map applied to the output.
        max_input_chars_per_word: words longer than this become `[UNK]`.
        cache_size: number of distinct words whose WordPiece split is cached.

    Example:
    >>> tokenizer = Tokenizer("vocab.txt", do_lower_case=True)  # bert-base-chinese
    >>> tokenizer.tokenize("语言模型 Unaffable")
    ['[CLS]', '语', '言', '模', '型', 'u', '##na', '##ff', '##able', '[SEP]']
    >>> token_ids, segment_ids = tokenizer.encode("语言模型", "BERT")
    """

    def __init__(
        self,
        token_dict,
        do_lower_case=False,
        token_start="[CLS]",
        token_end="[SEP]",
        pre_tokenize=None,
        token_translate=None,
        max_input_chars_per_word=100,
        cache_size=200000,
    ):
        super().__init__(
            token_start=token_start,
            token_end=token_end,
            pre_tokenize=pre_tokenize,
            token_translate=token_translate,
        )
        if isinstance(token_dict, (str, os.PathLike)):
            token_dict = load_vocab(token_dict)
        elif not isinstance(token_dict, dict):
            raise TypeError(
                "Tokenizer(token_dict=...): expected a dict or a vocab file path, got %s"
                % type(token_dict).__name__
            )
        if not token_dict:
            raise ValueError("Tokenizer(token_dict=...): the vocabulary is empty")
        self._do_lower_case = bool(do_lower_case)
        self._token_dict = token_dict
        self._token_dict_inv = {v: k for k, v in token_dict.items()}
        self._vocab_size = len(token_dict)
        self._max_chars = int(max_input_chars_per_word)
        self._max_token_chars = max(len(t) for t in token_dict)
        for name in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, "_token_%s" % name)
            if token is not None and token in token_dict:
                setattr(self, "_token_%s_id" % name, token_dict[token])
        for name in ("start", "end"):
            token = getattr(self, "_token_%s" % name)
            if token is not None and token not in token_dict:
                raise ValueError(
                    "Tokenizer(token_%s=%r): token not in the vocabulary" % (name, token)
                )
        self._unk_id = token_dict.get(self._token_unk)
        t = _tables()
        self._re_control = t["control"]
        self._re_mark = t["mark"]
        self._re_split = t["split"]
        self._re_special = t["special"]
        self._re_bmp_mark = t["bmp_mark"]
        self._re_bmp_split = t["bmp_split"]
        self._re_ascii_control = t["ascii_control"]
        self._re_ascii_split = t["ascii_split"]
        self._cache = _WordCache(self._word_piece_ids, int(cache_size))
        translate = {
            token_dict[k]: self.token_to_id(v)
            for k, v in self._token_translate.items()
            if k in token_dict
        }
        self._id_translate = translate or None

    # -- vocabulary ------------------------------------------------------
    def token_to_id(self, token):
        """Id of `token`, or the `[UNK]` id if it is not in the vocabulary."""
        i = self._token_dict.get(token)
        if i is None:
            if self._unk_id is None:
                raise KeyError("token %r is not in the vocabulary, which has no [UNK]" % (token,))
            return self._unk_id
        return i

    def id_to_token(self, i):
        """Token of id `i`."""
        try:
            return self._token_dict_inv[int(i)]
        except (KeyError, TypeError, ValueError):
            raise KeyError(
                "id_to_token: id %r is outside the vocabulary (size %d)" % (i, self._vocab_size)
            ) from None

    def tokens_to_ids(self, tokens):
        """Map tokens to ids (unknown tokens give the `[UNK]` id)."""
        get = self._token_dict.get
        ids = [get(t) for t in tokens]
        if None in ids:
            ids = [self.token_to_id(t) for t in tokens]
        return ids

    # -- normalisation and splitting --------------------------------------
    def _normalize(self, text):
        """Cleaning, lower-casing and accent stripping of a whole text.

        Returns the text and the regex that splits it into words.
        """
        if text.isascii():
            if self._re_ascii_control.search(text):
                text = self._re_ascii_control.sub("", text)
            if self._do_lower_case:
                text = text.lower()
            return text, self._re_ascii_split
        if self._re_special.search(text) is None:
            # Common case: BMP only, no controls or combining marks, so the
            # cheap BMP-only classes are exact.
            if self._do_lower_case:
                text = text.lower()
                nfd = unicodedata.normalize("NFD", text)
                if nfd is not text:
                    text = self._re_bmp_mark.sub("", nfd)
            return text, self._re_bmp_split
        text = self._re_control.sub("", text)
        if self._do_lower_case:
            text = unicodedata.normalize("NFD", text.lower())
            text = self._re_mark.sub("", text)
        return text, self._re_split

    def _words(self, text):
        text, splitter = self._normalize(text)
        return splitter.findall(text)

    def _word_piece_ids(self, word):
        """Greedy longest-match-first WordPiece of one word, as ids."""
        vocab = self._token_dict
        n = len(word)
        if n > self._max_chars:
            return (self._unk_id,)
        i = vocab.get(word)
        if i is not None:
            return (i,)
        longest = self._max_token_chars
        ids, start = [], 0
        while start < n:
            end = min(n, start + longest)
            while end > start:
                piece = word[start:end]
                if start > 0:
                    piece = "##" + piece
                i = vocab.get(piece)
                if i is not None:
                    break
                end -= 1
            if end == start:
                return (self._unk_id,)
            ids.append(i)
            start = end
        return tuple(ids)

    def _text_ids(self, text):
        _check_text(text, "text")
        if self._pre_tokenize is not None:
            ids = self.tokens_to_ids(self._tokenize(text))
        else:
            ids = list(chain.from_iterable(map(self._cache.__getitem__, self._words(text))))
            if self._unk_id is None and None in ids:
                raise KeyError("text has an unknown word and the vocabulary has no [UNK]")
        if self._id_translate:
            ids = [self._id_translate.get(i, i) for i in ids]
        return ids

    def _tokenize(self, text, pre_tokenize=True):
        """Tokens of `text` without start/end tokens or token_translate."""
        if pre_tokenize and self._pre_tokenize is not None:
            text = self._normalize(text)[0]
            tokens = []
            for word in self._pre_tokenize(text):
                if word in self._token_dict:
                    tokens.append(word)
                else:
                    tokens.extend(self._tokenize(word, False))
            return tokens
        inv = self._token_dict_inv
        unk = self._token_unk
        ids = chain.from_iterable(map(self._cache.__getitem__, self._words(text)))
        return [unk if i is None else inv[i] for i in ids]

    # -- decoding --------------------------------------------------------
    def decode(self, ids, tokens=None):
        """Readable text from ids (or tokens): special tokens dropped, `##`
        pieces joined, no spaces between CJK characters.

        Never raises on bad ids: ids outside the vocabulary are skipped.

        Args:
            ids: sequence of ints.
            tokens: optional tokens to decode instead of `ids`.

        Returns:
            A string.
        """
        if tokens is None:
            inv = self._token_dict_inv
            tokens = []
            for i in ids if ids is not None else ():
                try:
                    t = inv.get(int(i))
                except (TypeError, ValueError, OverflowError):
                    t = None
                if t is not None:
                    tokens.append(t)
        if self._token_translate_inv:
            tokens = [self._token_translate_inv.get(t) or t for t in tokens]
        return _join_tokens([t for t in tokens if isinstance(t, str) and t and not self._is_special(t)])

    # -- offsets ---------------------------------------------------------
    def _normalize_with_mapping(self, text):
        """Normalised text plus, per normalised char, its original index."""
        kept = [(i, ch) for i, ch in enumerate(text) if not _is_control(ch)]
        if self._do_lower_case:
            # Lower-case the cleaned text as a whole: str.lower() applies the
            # context-dependent final-sigma rule, which a per-character
            # lower() would miss.
            lowered = "".join(ch for _, ch in kept).lower()
            pos = 0
        chars, mapping = [], []
        for i, ch in kept:
            if self._do_lower_case:
                n = len(ch.lower())
                piece = lowered[pos:pos + n]
                pos += n
                piece = unicodedata.normalize("NFD", piece)
                piece = self._re_mark.sub("", piece)
            else:
                piece = ch
            chars.append(piece)
            mapping.extend([i] * len(piece))
        return "".join(chars), mapping

    def _tokens_with_spans(self, text):
        """Our own tokenization of `text`, each token with its normalised span."""
        norm, mapping = self._normalize_with_mapping(text)
        out = []
        inv = self._token_dict_inv
        for m in self._re_split.finditer(norm):
            word = m.group()
            start = m.start()
            ids = self._cache[word]
            if len(ids) == 1 and ids[0] == self._unk_id and word not in self._token_dict:
                out.append((self._token_unk, start, m.end()))
                continue
            for i in ids:
                token = inv[i]
                n = len(token) - 2 if token.startswith("##") and start > m.start() else len(token)
                out.append((token, start, start + n))
                start += n
        return norm, mapping, out

    def rematch(self, text, tokens):
        """Map tokens back to character positions of the original text.

        Args:
            text: the original string.
            tokens: tokens of `text`, e.g. `tokenize(text, maxlen=...)`.

        Returns:
            A list with one entry per token: the list of indices into `text`
            of the characters that produced it (`[]` for special tokens).

        Example:
        >>> tokens = tokenizer.tokenize("Héllo 世界")
        >>> tokenizer.rematch("Héllo 世界", tokens)
        [[], [0, 1, 2, 3, 4], [6], [7], []]
        """
        _check_text(text, "text")
        norm, mapping, ours = self._tokens_with_spans(text)
        result, ptr, offset = [], 0, 0
        for token in tokens:
            if self._token_translate_inv:
                token = self._token_translate_inv.get(token) or token
            span = None
            if ptr < len(ours) and ours[ptr][0] == token:
                span = ours[ptr]
                ptr += 1
            elif not self._is_special(token):
                for j in range(ptr, len(ours)):
                    if ours[j][0] == token:
                        span, ptr = ours[j], j + 1
                        break
            if span is not None:
                _, a, b = span
                offset = b
                result.append(_span_indices(mapping, a, b))
                continue
            if self._is_special(token):
                result.append([])
                continue
            # Tokens we did not produce (e.g. from a pre_tokenize function):
            # search the normalised text from the current position.
            stem = self.stem(token)
            a = norm.find(stem, offset) if stem else -1
            if a < 0:
                result.append([])
            else:
                offset = a + len(stem)
                result.append(_span_indices(mapping, a, offset))
        return result

    # -- helpers kept for bert4keras compatibility ---------------------------
    @staticmethod
    def stem(token):
        """The token without a leading `##`."""
        return token[2:] if token[:2] == "##" else token

    @staticmethod
    def _is_space(ch):
        return ch in " \n\r\t" or unicodedata.category(ch) == "Zs"

    @staticmethod
    def _is_punctuation(ch):
        return _is_punctuation(ch)

    @staticmethod
    def _is_cjk_character(ch):
        return _is_cjk(ch)

    @staticmethod
    def _is_control(ch):
        return _is_control(ch)

    @staticmethod
    def _is_special(token):
        return bool(token) and token[0] == "[" and token[-1] == "]" and len(token) > 2

    @staticmethod
    def _is_redundant(token):
        """True for tokens WordPiece can never output (see `load_vocab`)."""
        if len(token) > 1:
            for ch in Tokenizer.stem(token):
                if _is_cjk(ch) or _is_punctuation(ch):
                    return True
        return False


def _span_indices(mapping, a, b):
    if a >= b:
        return []
    lo, hi = mapping[a], mapping[b - 1]
    return list(range(lo, hi + 1))


# Punctuation that attaches to the previous token / the next token when
# decoding; CJK text is joined without spaces.
_GLUE_LEFT = set(".,;:!?)]}%'\u2019\u201d") | set("-/_@~^&=+*#\\|")
_GLUE_RIGHT = set("([{$'\u2018\u201c") | set("-/_@~^=+*#\\|")


def _is_cjk_like(ch):
    if _is_cjk(ch):
        return True
    cp = ord(ch)
    # CJK symbols and punctuation, fullwidth forms, Hiragana/Katakana, Hangul.
    return (
        0x3000 <= cp <= 0x30FF
        or 0xFF00 <= cp <= 0xFFEF
        or 0xAC00 <= cp <= 0xD7AF
        or 0x2010 <= cp <= 0x2027 and cp not in (0x2018, 0x201C)
    )


def _join_tokens(tokens):
    out = []
    prev = ""
    quote_open = False
    for token in tokens:
        if token.startswith("##") and len(token) > 2 and out:
            piece, glue = token[2:], True
        else:
            piece = token
            glue = not out
            if not glue:
                if _is_cjk_like(piece[0]) or _is_cjk_like(prev[-1]):
                    glue = True
                elif piece in _GLUE_LEFT or prev in _GLUE_RIGHT:
                    glue = True
                elif piece == '"':
                    glue = quote_open
                elif prev == '"' and quote_open:
                    glue = True
                elif prev in ".," and len(out) >= 2 and out[-2][-1:].isdigit() and piece[:1].isdigit():
                    glue = True  # 3.14, 1,000
            if piece == '"':
                quote_open = not quote_open
        if not glue:
            out.append(" ")
        out.append(piece)
        prev = piece
    return "".join(out).strip()


class SpTokenizer(TokenizerBase):
    """SentencePiece tokenizer with the same interface as `Tokenizer`.

    Needs the optional `sentencepiece` package (`pip install sentencepiece`
    or `pip install bert4keras[sentencepiece]`).

    Args:
        sp_model_path: path of a SentencePiece `.model` file.
        token_start: start token (default None: most SentencePiece models,
            such as T5's, add none).
        token_end: end token (default `</s>`; None for none).
        pre_tokenize, token_translate: as in `Tokenizer`.

    Example:
    >>> tokenizer = SpTokenizer("spm.model")
    >>> token_ids, segment_ids = tokenizer.encode("hello world")
    """

    def __init__(self, sp_model_path, token_start=None, token_end="</s>", **kwargs):
        super().__init__(token_start=token_start, token_end=token_end, **kwargs)
        try:
            import sentencepiece as spm
        except ImportError:
            raise ImportError(
                "SpTokenizer needs the optional package 'sentencepiece'; install it with "
                "`pip install sentencepiece` (or `pip install bert4keras[sentencepiece]`)"
            ) from None
        self.sp_model = spm.SentencePieceProcessor()
        try:
            ok = self.sp_model.Load(str(sp_model_path))
        except (OSError, RuntimeError) as e:
            raise OSError("SpTokenizer: cannot load SentencePiece model %r: %s" % (sp_model_path, e)) from None
        if ok is False:
            raise OSError("SpTokenizer: cannot load SentencePiece model %r" % (sp_model_path,))
        self._vocab_size = self.sp_model.get_piece_size()
        self._token_pad = self.sp_model.id_to_piece(self.sp_model.pad_id()) if self.sp_model.pad_id() >= 0 else None
        self._token_unk = self.sp_model.id_to_piece(self.sp_model.unk_id())
        self._unk_id = self.sp_model.unk_id()
        for name in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, "_token_%s" % name)
            if token is not None:
                i = self.sp_model.piece_to_id(token)
                if i != self._unk_id or token == self._token_unk:
                    setattr(self, "_token_%s_id" % name, i)
        for name in ("start", "end"):
            token = getattr(self, "_token_%s" % name)
            if token is not None and not hasattr(self, "_token_%s_id" % name):
                raise ValueError(
                    "SpTokenizer(token_%s=%r): piece not in the SentencePiece model" % (name, token)
                )

    def token_to_id(self, token):
        """Id of a piece (the unknown id if absent)."""
        return self.sp_model.piece_to_id(token)

    def id_to_token(self, i):
        """Piece of an id ('' for ids outside the model)."""
        i = int(i)
        if 0 <= i < self._vocab_size:
            return self.sp_model.id_to_piece(i)
        return ""

    def _tokenize(self, text):
        if self._pre_tokenize is not None:
            text = " ".join(self._pre_tokenize(text))
        return self.sp_model.encode_as_pieces(text)

    def _text_ids(self, text):
        _check_text(text, "text")
        if self._pre_tokenize is None and not self._token_translate:
            return list(self.sp_model.encode_as_ids(text))
        return self.tokens_to_ids(self._translated_tokens(text))

    def _is_special(self, i):
        return (
            self.sp_model.is_control(i)
            or self.sp_model.is_unknown(i)
            or self.sp_model.is_unused(i)
        )

    def decode(self, ids):
        """Text of `ids`, skipping control/unknown pieces and bad ids."""
        pieces = []
        for i in ids:
            try:
                i = int(i)
            except (TypeError, ValueError, OverflowError):
                continue
            if 0 <= i < self._vocab_size and not self._is_special(i):
                piece = self.sp_model.id_to_piece(i)
                pieces.append(self._token_translate_inv.get(piece) or piece)
        return self.sp_model.decode_pieces(pieces)
