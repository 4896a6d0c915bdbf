"""`Tokenizer`: BERT WordPiece with Google's exact semantics, in fast Python
(character classes compiled into regexes, WordPiece results cached per word),
with `decode` and `rematch`."""
import os
import unicodedata
from itertools import chain

from bert4keras.tokenizers._unicode import (
    _is_cjk,
    _is_cjk_like,
    _is_control,
    _is_punctuation,
    _tables,
)
from bert4keras.tokenizers.base import TokenizerBase, _check_text
from bert4keras.tokenizers.vocab import _is_redundant, _stem, load_vocab


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
                "Tokenizer: `token_dict` must be a dict or a vocab file path, got %s"
                % type(token_dict).__name__
            )
        if not token_dict:
            raise ValueError("Tokenizer: `token_dict` must hold at least one token, got an empty vocabulary")
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
                    "Tokenizer: `token_%s` must be in the vocabulary, got %r; pass one of "
                    "its tokens, or None" % (name, token)
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
                raise KeyError(
                    "token_to_id: `token` must be in the vocabulary, which has no [UNK], "
                    "got %r" % (token,)
                )
            return self._unk_id
        return i

    def id_to_token(self, i):
        """Token of id `i`."""
        try:
            return self._token_dict_inv[int(i)]
        except (KeyError, TypeError, ValueError):
            raise KeyError(
                "id_to_token: `i` must be an id in [0, %d), got %r, which is outside the "
                "vocabulary" % (self._vocab_size, i)
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
                raise KeyError(
                    "`text` must have only known words when the vocabulary has no [UNK], "
                    "got an unknown word; add [UNK] to the vocabulary"
                )
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
        return _stem(token)

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
        return _is_redundant(token)


def _span_indices(mapping, a, b):
    if a >= b:
        return []
    lo, hi = mapping[a], mapping[b - 1]
    return list(range(lo, hi + 1))


# Punctuation that attaches to the previous token / the next token when
# decoding; CJK text is joined without spaces.
_GLUE_LEFT = set(".,;:!?)]}%'\u2019\u201d") | set("-/_@~^&=+*#\\|")
_GLUE_RIGHT = set("([{$'\u2018\u201c") | set("-/_@~^=+*#\\|")


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
