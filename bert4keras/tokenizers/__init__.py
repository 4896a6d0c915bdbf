"""Tokenizers: WordPiece with Google BERT's exact semantics, and SentencePiece.

`Tokenizer` reproduces Google's `tokenization.FullTokenizer` id for id
(control-character cleaning, whitespace and punctuation splitting, every CJK
character on its own, lower-casing with NFD accent stripping, greedy
longest-match-first WordPiece, `[UNK]` for words over 100 characters). It is
written for speed: the character classes are compiled into regular
expressions once, so the per-character work runs in C, and WordPiece results
are cached per word.

Modules: `wordpiece` (`Tokenizer`), `sentencepiece_tokenizer`
(`SpTokenizer`), `base` (`TokenizerBase`), `vocab` (`load_vocab`,
`save_vocab`) and `_unicode` (the character classes).
"""
from bert4keras.tokenizers.base import TokenizerBase
from bert4keras.tokenizers.sentencepiece_tokenizer import SpTokenizer
from bert4keras.tokenizers.vocab import load_vocab, save_vocab
from bert4keras.tokenizers.wordpiece import Tokenizer

__all__ = ["load_vocab", "save_vocab", "Tokenizer", "SpTokenizer", "TokenizerBase"]
