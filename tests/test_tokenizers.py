"""Tokenizer: parity with Google's tokenization, offsets, robustness."""
import importlib.util
import json
import lzma
import os
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert4keras.tokenizers import SpTokenizer, Tokenizer, load_vocab, save_vocab

DATA = os.path.join(os.path.dirname(__file__), "data")


def _load_generator_module():
    path = os.path.join(DATA, "make_tokenizer_reference.py")
    spec = importlib.util.spec_from_file_location("make_tokenizer_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(DATA, "tokenizer_reference.json.xz"), "rb") as f:
        return json.loads(lzma.decompress(f.read()))


@pytest.fixture(scope="module")
def zh(zh_vocab_path):
    return Tokenizer(zh_vocab_path, do_lower_case=True)


@pytest.fixture(scope="module")
def en(en_vocab_path):
    return Tokenizer(en_vocab_path, do_lower_case=True)


@pytest.fixture(scope="module")
def en_cased(en_vocab_path):
    return Tokenizer(en_vocab_path, do_lower_case=False)


# ---------------------------------------------------------------------------
# An independent, literal re-implementation of Google's BasicTokenizer +
# WordpieceTokenizer (character by character, no regexes, no caches).
# ---------------------------------------------------------------------------
def _g_is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _g_is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _g_is_punct(ch):
    cp = ord(ch)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(ch).startswith("P")


def _g_is_cjk(cp):
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


def google_tokenize(text, vocab, lower):
    cleaned = []
    for ch in text:
        if ord(ch) in (0, 0xFFFD) or _g_is_control(ch):
            continue
        cleaned.append(" " if _g_is_whitespace(ch) else ch)
    spaced = "".join(" %s " % ch if _g_is_cjk(ord(ch)) else ch for ch in cleaned)
    pieces = []
    for token in spaced.strip().split():
        if lower:
            token = token.lower()
            token = "".join(
                c for c in unicodedata.normalize("NFD", token) if unicodedata.category(c) != "Mn"
            )
        current = []
        for ch in token:
            if _g_is_punct(ch):
                if current:
                    pieces.append("".join(current))
                    current = []
                pieces.append(ch)
            else:
                current.append(ch)
        if current:
            pieces.append("".join(current))
    output = []
    for word in " ".join(pieces).strip().split():
        if len(word) > 100:
            output.append("[UNK]")
            continue
        start, subs, bad = 0, [], False
        while start < len(word):
            end, found = len(word), None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                bad = True
                break
            subs.append(found)
            start = end
        output.extend(["[UNK]"] if bad else subs)
    return output


def google_normalize(text, lower):
    """Per-character normalisation used to check rematch spans."""
    out = "".join(ch for ch in text if not (ord(ch) in (0, 0xFFFD) or _g_is_control(ch)))
    if lower:
        out = out.lower()
        out = "".join(c for c in unicodedata.normalize("NFD", out) if unicodedata.category(c) != "Mn")
    return "".join(out.split())


INTERESTING = list(
    "aZ é\u0301ΣσςΟΔΟΣİıßﬁ\u00a0\u3000\u2028\u2029\x85\x0b\x1c\t\n\r\x00\ufffd\u200b\u200d"
    "中文字符，。！？《》「」\uf900\ufa6c𠀀𪜀\U0002f800\U00030000"
    "😀👍🏽👨\u200d👩\u0300\u0301\u0327\u20dd\ue000\U000f0000"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿§«»…—–·•"
    "0123456789١٢٣Ωω\u212b\u2126Ǆǅǆ"
) + ["[CLS]", "[SEP]", "[UNK]", "##", "un", "##able", "x" * 101, "ab" * 60]

text_strategy = st.lists(
    st.one_of(st.characters(codec=None, exclude_categories=()), st.sampled_from(INTERESTING)),
    max_size=40,
).map("".join)


# ---------------------------------------------------------------------------
# Parity with transformers' Python BertTokenizer on real text
# ---------------------------------------------------------------------------
def test_reference_parity_real_text(reference, zh, en, capsys):
    tokenizers = {"zh": zh, "en": en}
    total = matched = 0
    report = []
    for s in reference["sets"]:
        tok = tokenizers[s["vocab"]]
        ok = sum(tok.encode(line)[0] == ids for line, ids in zip(s["lines"], s["ids"]))
        report.append("%s/%s: %d/%d" % (s["name"], s["vocab"], ok, len(s["lines"])))
        total += len(s["lines"])
        matched += ok
    with capsys.disabled():
        print("\ntokenizer parity vs %s: %s" % (reference["reference"], "; ".join(report)))
    assert total >= 8000
    assert matched == total, report


def test_reference_parity_every_code_point(reference, zh, en):
    if reference["unidata_version"] != unicodedata.unidata_version:
        pytest.fail(
            "tokenizer_reference.json.xz was built with Unicode %s but this Python has %s; "
            "rerun tests/data/make_tokenizer_reference.py"
            % (reference["unidata_version"], unicodedata.unidata_version)
        )
    gen = _load_generator_module()
    texts = gen.sweep_texts()
    assert len(texts) == len(reference["sweep"]["zh"])
    for name, tok in (("zh", zh), ("en", en)):
        bad = [
            i for i, (text, h) in enumerate(zip(texts, reference["sweep"][name]))
            if gen.ids_hash(tok.encode(text)[0]) != h
        ]
        assert not bad, "code point sweep differs for vocab %s in chunks %s" % (name, bad[:10])


@pytest.mark.slow
def test_every_code_point_alone_matches_literal_google(zh, en_cased):
    # The sweep above mixes 256 code points per text; this one checks each
    # assigned code point on its own (fast paths depend on the whole text).
    cps = [cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) not in ("Cn", "Co")]
    for tok in (zh, en_cased):
        vocab, lower = tok._token_dict, tok._do_lower_case
        bad = []
        for cp in cps:
            text = "A%sb %s" % (chr(cp), chr(cp))
            if tok.tokenize(text)[1:-1] != google_tokenize(text, vocab, lower):
                bad.append(hex(cp))
        assert not bad, bad[:20]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy)
def test_matches_literal_google_algorithm(text, zh, en, en_cased):
    for tok in (zh, en, en_cased):
        expected = google_tokenize(text, tok._token_dict, tok._do_lower_case)
        assert tok.tokenize(text)[1:-1] == expected


def test_known_examples(en, zh):
    assert en.tokenize("unaffable") == ["[CLS]", "una", "##ffa", "##ble", "[SEP]"]
    assert en.tokenize("Héllo, WORLD!") == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    assert zh.tokenize("语言模型") == ["[CLS]", "语", "言", "模", "型", "[SEP]"]
    assert en.tokenize("x" * 101) == ["[CLS]", "[UNK]", "[SEP]"]
    # Google does not recognise special-token strings inside text.
    assert en.tokenize("[CLS]")[1:-1] == ["[", "cl", "##s", "]"]


# ---------------------------------------------------------------------------
# encode / truncation
# ---------------------------------------------------------------------------
def _pop_truncate(maxlen, index, *seqs):
    """bert4keras' algorithm, one pop at a time, with clamped indices."""
    seqs = [s for s in seqs if s]
    while sum(map(len, seqs)) > maxlen:
        lengths = [len(s) for s in seqs]
        i = int(np.argmax(lengths))
        s = seqs[i]
        j = max(min(index, len(s) - 1), -len(s))
        s.pop(j)
    return seqs


def test_encode_pair_truncation_matches_pop_algorithm(zh):
    rng = np.random.default_rng(0)
    cls, sep = zh._token_start_id, zh._token_end_id
    for _ in range(300):
        a = "".join(rng.choice(list("一二三四五六七八九十"), size=rng.integers(0, 12)))
        b = "".join(rng.choice(list("甲乙丙丁戊己庚辛"), size=rng.integers(0, 12)))
        maxlen = int(rng.integers(3, 26))
        for truncate_from, index in (("right", -2), ("left", 1), (2, 2)):
            ids, segs = zh.encode(a, b, maxlen=maxlen, truncate_from=truncate_from)
            first = [cls] + zh.tokens_to_ids(list(a)) + [sep]
            second = [cls] + zh.tokens_to_ids(list(b)) + [sep]
            _pop_truncate(maxlen + 1, index, first, second)
            expected = first + second[1:]
            assert ids == expected, (a, b, maxlen, truncate_from)
            assert segs == [0] * len(first) + [1] * (len(second) - 1)
            assert len(ids) <= maxlen


def test_encode_single_and_tokenize_maxlen(zh):
    ids, segs = zh.encode("一二三四五六", maxlen=5)
    assert zh.ids_to_tokens(ids) == ["[CLS]", "一", "二", "三", "[SEP]"]
    ids, _ = zh.encode("一二三四五六", maxlen=5, truncate_from="left")
    assert zh.ids_to_tokens(ids) == ["[CLS]", "四", "五", "六", "[SEP]"]
    assert zh.tokenize("一二三四五六", maxlen=4) == ["[CLS]", "一", "二", "[SEP]"]
    assert segs == [0] * 5
    # an already tokenized input is accepted
    assert zh.encode(["[CLS]", "一", "[SEP]"])[0] == zh.encode("一")[0]


def test_maxlen_must_hold_the_special_tokens(zh, zh_vocab_path):
    # maxlen counts the special tokens, as in bert4keras; the smallest valid
    # value keeps exactly them.
    assert zh.ids_to_tokens(zh.encode("今天", maxlen=2)[0]) == ["[CLS]", "[SEP]"]
    ids, segs = zh.encode("今天", "好", maxlen=3)
    assert zh.ids_to_tokens(ids) == ["[CLS]", "[SEP]", "[SEP]"] and segs == [0, 0, 1]
    ids, segs = zh.encode("今天", "好", maxlen=4, pattern="S*ES*E")
    assert zh.ids_to_tokens(ids) == ["[CLS]", "[SEP]", "[CLS]", "[SEP]"] and segs == [0, 0, 1, 1]
    assert zh.tokenize("今天", maxlen=2) == ["[CLS]", "[SEP]"]
    cases = [
        (lambda m: zh.encode("今天", maxlen=m), 2, r"one text: its special tokens \(\[CLS\] \+ \[SEP\]\)"),
        (lambda m: zh.encode("今天", "好", maxlen=m), 3,
         r"a text pair: its special tokens \(\[CLS\] \+ \[SEP\] \+ \[SEP\]\)"),
        (lambda m: zh.encode("今天", "好", maxlen=m, pattern="S*ES*E"), 4, r"a text pair: .*\[SEP\] \+ \[CLS\]"),
        (lambda m: zh.encode(["[CLS]", "今", "[SEP]"], maxlen=m), 2, "one text"),
        (lambda m: zh.encode_batch(["今天"], ["好"], maxlen=m), 3, "a text pair"),
        (lambda m: zh.tokenize("今天", maxlen=m), 2, "one text"),
    ]
    for call, needed, detail in cases:
        for maxlen in range(needed):
            with pytest.raises(ValueError, match=r"maxlen must be at least %d for %s.* got "
                                                 r"maxlen=%d" % (needed, detail, maxlen)):
                call(maxlen)
        call(needed)  # the smallest valid value is accepted
    # Without special tokens any maxlen >= 0 fits.
    bare = Tokenizer(zh_vocab_path, token_start=None, token_end=None)
    assert bare.encode("今天", maxlen=0)[0] == []
    assert bare.encode("今天", "好", maxlen=1)[0] == [bare.token_to_id("好")]


def test_encode_batch_equals_encode(zh, reference):
    lines = reference["sets"][0]["lines"][:50]
    pairs = reference["sets"][1]["lines"][:50]
    ids, segs = zh.encode_batch(lines, pairs, maxlen=64)
    for i, (a, b) in enumerate(zip(lines, pairs)):
        assert (ids[i], segs[i]) == zh.encode(a, b, maxlen=64)
    with pytest.raises(ValueError, match="second_texts"):
        zh.encode_batch(lines, pairs[:3])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=text_strategy,
    second=st.one_of(st.none(), text_strategy),
    maxlen=st.integers(0, 8),
    truncate_from=st.sampled_from(["right", "left", 1, -1]),
    repeat=st.integers(1, 30),
)
def test_robust_on_arbitrary_unicode(first, second, maxlen, truncate_from, repeat, zh, en):
    first = first * repeat  # long inputs too
    for tok in (zh, en):
        if maxlen < (2 if second is None else 3):  # no room for [CLS]/[SEP]
            with pytest.raises(ValueError, match="maxlen must be at least"):
                tok.encode(first, second, maxlen=maxlen, truncate_from=truncate_from)
            maxlen = 3
        ids, segs = tok.encode(first, second, maxlen=maxlen, truncate_from=truncate_from)
        assert len(ids) == len(segs) <= maxlen
        assert all(0 <= i < tok.vocab_size for i in ids)
        full, _ = tok.encode(first, second)
        assert isinstance(tok.decode(full), str)
        assert isinstance(tok.decode(ids), str)
        tokens = tok.tokenize(first, maxlen=maxlen)
        assert len(tokens) <= maxlen
        assert len(tok.rematch(first, tok.tokenize(first))) == len(tok.tokenize(first))


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.one_of(st.integers(-5, 40000), st.just(10**30)), max_size=40))
def test_decode_never_raises_on_bad_ids(ids, zh):
    assert isinstance(zh.decode(ids), str)
    assert isinstance(zh.decode(np.array([i for i in ids if abs(i) < 2**31], dtype=np.int64)), str)


# ---------------------------------------------------------------------------
# decode
# ---------------------------------------------------------------------------
def test_decode_readable(zh, en):
    assert zh.decode(zh.encode("我爱北京天安门，Hello World!")[0]) == "我爱北京天安门，hello world!"
    assert zh.decode(zh.encode("《三体》是刘慈欣写的。价格：￥39.5元")[0]) == "《三体》是刘慈欣写的。价格：￥39.5元"
    text = "don't stop, it's 3.14 (approx) e-mail a/b \"quoted text\" 1,000 cats."
    assert en.decode(en.encode(text)[0]) == text


def test_decode_keeps_all_characters(reference, zh, en):
    tokenizers = {"zh": zh, "en": en}
    for s in reference["sets"]:
        tok = tokenizers[s["vocab"]]
        for line, ids in list(zip(s["lines"], s["ids"]))[:300]:
            if tok._unk_id in ids:
                continue
            decoded = tok.decode(ids)
            assert "".join(decoded.split()) == google_normalize(line, True)


# ---------------------------------------------------------------------------
# rematch
# ---------------------------------------------------------------------------
def _check_spans(tok, text, tokens, spans):
    """Each span is a contiguous run of original characters whose
    normalisation gives the token; a character that normalises to several
    characters (Hangul syllable -> jamo) may be shared by adjacent pieces."""
    assert len(spans) == len(tokens)
    real = [(t, s) for t, s in zip(tokens, spans) if t not in ("[CLS]", "[SEP]")]
    assert all(s == [] for t, s in zip(tokens, spans) if t in ("[CLS]", "[SEP]"))
    fold = lambda x: x.replace("ς", "σ")  # a cut-out span loses final-sigma context
    for k, (token, span) in enumerate(real):
        assert span, (text, token)
        assert span == list(range(span[0], span[-1] + 1))
        if k:
            assert span[0] >= real[k - 1][1][-1], (text, real[k - 1], token, span)
        piece = fold(google_normalize(text[span[0]:span[-1] + 1], tok._do_lower_case))
        if token == "[UNK]":
            assert tok.tokenize(piece)[1:-1] == ["[UNK]"], (text, piece)
            continue
        stem = fold(tok.stem(token))
        shared = (k and real[k - 1][1][-1] == span[0]) or (
            k + 1 < len(real) and real[k + 1][1] and real[k + 1][1][0] == span[-1])
        if shared:
            assert stem in piece, (text, token, piece)
        else:
            assert piece == stem, (text, token, piece)
    if all(t != "[UNK]" for t, _ in real):
        assert "".join(tok.stem(t) for t, _ in real) == google_normalize(text, tok._do_lower_case)


def test_rematch_on_real_text(reference, zh, en):
    tokenizers = {"zh": zh, "en": en}
    n = 0
    for s in reference["sets"]:
        tok = tokenizers[s["vocab"]]
        for line in s["lines"][:200]:
            tokens = tok.tokenize(line)
            _check_spans(tok, line, tokens, tok.rematch(line, tokens))
            n += 1
    assert n >= 1000


def test_rematch_examples(en, en_cased, zh):
    text = "Héllo  Wörld ΟΔΟΣ\x00 x" + "y" * 120
    tokens = en.tokenize(text)
    spans = en.rematch(text, tokens)
    _check_spans(en, text, tokens, spans)
    assert tokens[-2] == "[UNK]" and spans[-2] == list(range(len(text) - 121, len(text)))
    text = "e\u0301cole, İstanbul"
    _check_spans(en, text, en.tokenize(text), en.rematch(text, en.tokenize(text)))
    _check_spans(en_cased, text, en_cased.tokenize(text), en_cased.rematch(text, en_cased.tokenize(text)))
    text = "今天天气不错，Let's go!"
    tokens = zh.tokenize(text)
    assert zh.rematch(text, tokens)[1] == [0]


def test_rematch_after_truncation(zh):
    text = "一二三四五六七八九十"
    tokens = zh.tokenize(text, maxlen=6)
    assert zh.rematch(text, tokens) == [[], [0], [1], [2], [3], []]
    ids, _ = zh.encode(text, maxlen=6, truncate_from="left")
    tokens = zh.ids_to_tokens(ids)
    assert zh.rematch(text, tokens) == [[], [6], [7], [8], [9], []]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy)
def test_rematch_spans_reproduce_tokens(text, zh, en, en_cased):
    for tok in (zh, en, en_cased):
        tokens = tok.tokenize(text)
        _check_spans(tok, text, tokens, tok.rematch(text, tokens))


# ---------------------------------------------------------------------------
# vocabularies
# ---------------------------------------------------------------------------
def test_load_vocab_ids_are_line_numbers(zh_vocab_path):
    vocab = load_vocab(zh_vocab_path)
    with open(zh_vocab_path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f]
    assert len(vocab) == len(lines) == 21128
    for i in (0, 100, 101, 102, 103, 672, 8000, 21127):
        assert vocab[lines[i]] == i


def test_shipped_vocabularies_load_whole(zh_vocab_path, en_vocab_path, minilm_dir):
    for path, size in ((zh_vocab_path, 21128), (en_vocab_path, 30522),
                       (os.path.join(minilm_dir, "vocab.txt"), 30522)):
        vocab = load_vocab(path)
        assert len(vocab) == size and sorted(vocab.values()) == list(range(size)), path
    assert load_vocab(zh_vocab_path)["\u2028"] == 343  # line 344, a whitespace token


def test_duplicate_vocabulary_lines_are_refused(tmp_path):
    path = tmp_path / "vocab.txt"
    # Whitespace-only lines are tokens as they stand, all distinct.
    lines = ["[PAD]", " ", "\u2028", "\u3000", "\t", "", "a", "##a", "b\t5"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = lines[:-1] + ["b"]
    assert load_vocab(str(path)) == {t: i for i, t in enumerate(expected)}
    duplicates = [
        (["[PAD]", "x", "y", "x"], "'x' on lines 2 and 4"),
        (["[PAD]", "x\t12", "y", "x 7"], "'x' on lines 2 and 4"),  # `token count` lines
        (["[PAD]", "x", "x\r"], "'x' on lines 2 and 3"),  # CRLF endings are line breaks
        (["[PAD]", "", "y", ""], "'' on lines 2 and 4"),
        (["\u2028", "a", "\u2028"], r"'\\u2028' on lines 1 and 3"),
    ]
    for body, detail in duplicates:
        path.write_text("\n".join(body) + "\n", encoding="utf-8")
        message = r"vocabulary file '.*vocab\.txt' must hold each token once, got %s" % detail
        for load in (load_vocab, lambda p: load_vocab(p, simplified=True), Tokenizer):
            with pytest.raises(ValueError, match=message):
                load(str(path))


def test_simplified_vocab_keeps_tokenization(zh_vocab_path, zh, reference):
    start = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    full = load_vocab(zh_vocab_path)
    small, keep = load_vocab(zh_vocab_path, simplified=True, startswith=start)
    assert list(small)[:5] == start
    assert len(small) == len(keep) < len(full)
    inv_full = {i: t for t, i in full.items()}
    for token, new_id in small.items():
        assert inv_full[keep[new_id]] == token
    # dropped tokens are multi-char tokens with a CJK char or punctuation
    dropped = set(full) - set(small)
    assert "##中" in dropped and "[unused1]" in dropped and "中" in small and "##ing" in small
    for t in dropped:
        stem = t[2:] if t.startswith("##") else t
        assert len(t) > 1 and any(_g_is_cjk(ord(c)) or _g_is_punct(c) for c in stem), t
    # Tokenizing with the small vocabulary gives the same tokens.
    small_tok = Tokenizer(small, do_lower_case=True)
    for s in reference["sets"][:3]:
        for line, ids in list(zip(s["lines"], s["ids"]))[:300]:
            if s["vocab"] == "zh":
                assert [keep[i] for i in small_tok.encode(line)[0]] == ids
    with pytest.raises(KeyError, match="nope"):
        load_vocab(zh_vocab_path, simplified=True, startswith=["nope"])


def test_save_vocab_round_trip(tmp_path, zh_vocab_path):
    small, _ = load_vocab(zh_vocab_path, simplified=True, startswith=["[PAD]", "[UNK]"])
    path = str(tmp_path / "vocab.txt")
    save_vocab(path, small)
    assert load_vocab(path) == small
    with pytest.raises(ValueError, match="gaps"):
        save_vocab(path, {"a": 0, "b": 2})


# ---------------------------------------------------------------------------
# options and errors
# ---------------------------------------------------------------------------
def test_pre_tokenize_and_translate(zh_vocab_path):
    words = lambda text: [w for w in text.split("|")]
    tok = Tokenizer(zh_vocab_path, do_lower_case=True, pre_tokenize=words)
    assert tok.tokenize("今天|abc") == ["[CLS]", "今", "天", "abc", "[SEP]"]
    tok = Tokenizer(zh_vocab_path, do_lower_case=True, token_translate={"天": "[MASK]"})
    tokens = tok.tokenize("今天")
    assert tokens == ["[CLS]", "今", "[MASK]", "[SEP]"]
    assert tok.encode("今天")[0] == tok.tokens_to_ids(tokens)
    assert tok.decode(tok.encode("今天")[0]) == "今天"


def test_no_start_end_tokens(zh_vocab_path):
    tok = Tokenizer(zh_vocab_path, token_start=None, token_end=None)
    assert tok.encode("今天", maxlen=1)[0] == [tok.token_to_id("今")]
    assert tok.tokenize("今天") == ["今", "天"]


def test_clear_errors(zh_vocab_path, zh, tmp_path):
    with pytest.raises(TypeError, match="token_dict"):
        Tokenizer(123)
    with pytest.raises(FileNotFoundError):
        Tokenizer(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="token_start"):
        Tokenizer(zh_vocab_path, token_start="<s>")
    with pytest.raises(TypeError, match="first_text"):
        zh.encode(123)
    with pytest.raises(ValueError, match="maxlen"):
        zh.encode("a", maxlen=-1)
    with pytest.raises(ValueError, match="truncate_from"):
        zh.encode("a", maxlen=3, truncate_from="middle")
    with pytest.raises(KeyError, match="outside"):
        zh.id_to_token(10**6)
    assert zh.token_to_id("not-a-token") == zh._token_unk_id
    assert zh.id_to_token(zh.token_to_id("中")) == "中"


# ---------------------------------------------------------------------------
# SentencePiece
# ---------------------------------------------------------------------------
def test_sp_tokenizer_missing_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(ImportError, match="pip install sentencepiece"):
        SpTokenizer("model.model")


def test_sp_tokenizer(tmp_path, reference):
    if importlib.util.find_spec("sentencepiece") is None:
        # Without the optional extra the class must still fail clearly.
        with pytest.raises(ImportError, match="pip install sentencepiece"):
            SpTokenizer(str(tmp_path / "m.model"))
        return
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    lines = reference["sets"][2]["lines"][:800]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    prefix = str(tmp_path / "m")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=prefix, vocab_size=300, model_type="unigram",
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    tok = SpTokenizer(prefix + ".model")
    for line in lines[:50]:
        ids, segs = tok.encode(line)
        assert ids == sp.encode(line) + [sp.eos_id()]
        assert segs == [0] * len(ids)
        assert tok.decode(ids) == sp.decode(sp.encode(line))
        assert len(tok.encode(line, maxlen=5)[0]) <= 5
    ids, segs = tok.encode(lines[0], lines[1])
    assert ids[-1] == sp.eos_id() and 1 in segs
    assert tok.decode([10**6, -3, 5]) == sp.decode([5])
    with pytest.raises(OSError, match="missing"):
        SpTokenizer(str(tmp_path / "missing.model"))


def test_pickle_and_path_like(zh_vocab_path):
    import pathlib
    import pickle

    tok = Tokenizer(pathlib.Path(zh_vocab_path), do_lower_case=True)
    expected = tok.encode("你好 World")
    clone = pickle.loads(pickle.dumps(tok))  # e.g. for multiprocessing workers
    assert clone.encode("你好 World") == expected
    assert clone.encode("新的 words") == tok.encode("新的 words")


def test_tokenizer_import_loads_neither_keras_nor_tensorflow():
    """Data-preparation processes only tokenize: importing the tokenizer must
    not pay for Keras/TensorFlow (the decoders are re-exported lazily)."""
    import subprocess

    code = (
        "import sys, bert4keras.tokenizers, bert4keras.snippets; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from bert4keras import generation, snippets

    assert snippets.Seq2SeqDecoder is generation.Seq2SeqDecoder
    assert snippets.AutoRegressiveDecoder is generation.AutoRegressiveDecoder
    with pytest.raises(AttributeError, match="no_such_name"):
        snippets.no_such_name
