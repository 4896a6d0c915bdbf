"""Google BERT's character classes (CJK, punctuation, control), and the
regular expressions compiled from them once per process."""
import functools
import re
import sys
import unicodedata


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
