"""`TokenizerBase`: special tokens, truncation, `encode` and batching,
shared by the WordPiece and SentencePiece tokenizers."""
from bert4keras.sequences import truncate_sequences


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
                "positions, got maxlen=%d; raise maxlen, or build the tokenizer with "
                "token_start/token_end=None" % (
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
                "encode: `pattern` must be 'S*E*E' or 'S*ES*E', got %r" % (pattern,)
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
                    "encode: `truncate_from` must be 'right', 'left' or an int (the "
                    "index to cut at), got %r" % (truncate_from,)
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
            "encode: `%s` must be a string or a list of tokens, got %s"
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
            raise TypeError(
                "encode_batch: `first_texts` must be a list of strings, got a string; "
                "wrap one text in a list"
            )
        if second_texts is None:
            pairs = ((t, None) for t in first_texts)
        else:
            first_texts = list(first_texts)
            second_texts = list(second_texts)
            if len(first_texts) != len(second_texts):
                raise ValueError(
                    "encode_batch: `second_texts` must have as many items as "
                    "`first_texts` (%d), got %d" % (len(first_texts), len(second_texts))
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
        raise TypeError("`%s` must be a string, got %s" % (name, type(text).__name__))


def _check_maxlen(maxlen):
    try:
        value = int(maxlen)
    except (TypeError, ValueError):
        raise TypeError("`maxlen` must be an int, got %r" % (maxlen,)) from None
    if value != maxlen or value < 0:
        raise ValueError("`maxlen` must be a non-negative int, got %r" % (maxlen,))
    return value
