"""`SpTokenizer`: SentencePiece models behind the `Tokenizer` interface
(needs the optional `sentencepiece` package)."""
from bert4keras.tokenizers.base import TokenizerBase, _check_text


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
            raise OSError(
                "SpTokenizer: `sp_model_path` must be a SentencePiece .model file, "
                "got %r (%s)" % (sp_model_path, e)
            ) from None
        if ok is False:
            raise OSError(
                "SpTokenizer: `sp_model_path` must be a SentencePiece .model file, "
                "got %r, which does not load" % (sp_model_path,)
            )
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
                    "SpTokenizer: `token_%s` must be a piece of the SentencePiece model, got %r; "
                    "pass one of its pieces, or None" % (name, token)
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
