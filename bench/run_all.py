"""Run every benchmark in bench/ and print one summary table of ratios.

Each `bench/bench_*.py` runs in its own subprocess (same interpreter, same
environment, so `KERAS_BACKEND=jax python bench/run_all.py` benchmarks JAX);
its output is kept whole in `--log-dir` and scanned for ratio lines:

- table rows under a header that names a ratio column (`peer/ours`,
  `ours/peer`, `ratio`, `speed-up`, `saving`, `overhead`): a value like
  `1.23x` or `+4.5%`, or under `peer/ours` / `ours/peer` the last number of
  a row that has more than one;
- free lines such as `cache speed-up: 2.31x` or `OVERHEAD ...: +3.1%`.

A benchmark that fails, times out or finds no peer is reported as such (its
`note:` lines are shown), and the others still run. The direction of every
ratio is the one its benchmark prints (the header or line it came from).

    python bench/run_all.py
    python bench/run_all.py --only decoding,tokenizer --timeout 600
    python bench/run_all.py --args "recompute=--tiny --modes tf-graph"
"""
import argparse
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RATIO_HEADER = re.compile(r"peer/ours|ours/peer|ratio|speed-?up|saving|overhead", re.I)
RATIO_VALUE = re.compile(r"(?<![\w.])([+-]?\d+(?:\.\d+)?)(x|%)(?![\w])")
NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?x?$")


def _name(line):
    """Leading label of a table row: text up to the first run of two spaces
    (or, without one, up to the first number)."""
    parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
    if len(parts) == 1:
        parts = re.split(r"(?<=\s)(?=[+-]?\d)", line.strip(), maxsplit=1)
    return parts[0].strip(" :")


def _ratio_columns(header):
    """The header's column titles that name a ratio, joined by ' / '."""
    titles = [t for t in re.split(r"\s{2,}", header.strip()) if RATIO_HEADER.search(t)]
    return " / ".join(titles) or header.strip()


def parse_ratios(text):
    """Ratio lines of one benchmark's output.

    Returns a list of dicts with `section` (the last title seen), `name`
    (row label or line prefix), `value` (as printed: '1.23x', '+4.5%', a
    plain number under a peer/ours header, or several joined by ' / ') and
    `column` (the ratio columns or the line it was read from, which tell
    its direction).
    """
    found = []
    section, header, major = "", None, False
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped:
            header = None
            continue
        if stripped.lower().startswith("note"):
            continue
        numbers = [t for t in stripped.split() if NUMBER.match(t)]
        values = ["".join(v) for v in RATIO_VALUE.findall(stripped)]
        if RATIO_HEADER.search(stripped) and not values and len(numbers) <= 1 and ":" not in stripped:
            header = stripped  # a table header naming a ratio column
            continue
        if header is not None:
            if not values and re.search(r"peer/ours|ours/peer", header) and len(numbers) > 1:
                values = numbers[-1:]
            if values:
                found.append({"section": section, "name": _name(stripped), "value": " / ".join(values),
                              "column": _ratio_columns(header)})
            continue
        if values and ":" in stripped and RATIO_HEADER.search(stripped.split(":")[0]):
            name, _, rest = stripped.partition(":")
            found.append({"section": section, "name": name.strip(), "value": values[0], "column": rest.strip()})
            continue
        if stripped.startswith("=="):  # a "== part ==" title outranks prose lines
            section, major = stripped.strip("=: "), True
        elif not values and "  " not in stripped and not major:
            section = stripped.strip(": ")
    return found


def run_benchmark(path, extra_args, timeout, log_dir):
    """Run one benchmark; returns (status, output, seconds)."""
    command = [sys.executable, path] + extra_args
    start = time.time()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=os.path.dirname(HERE))
        output = proc.stdout + ("\n" + proc.stderr if proc.returncode else "")
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = f"timed out after {timeout} s"
    seconds = time.time() - start
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        name = os.path.splitext(os.path.basename(path))[0]
        with open(os.path.join(log_dir, name + ".log"), "w", encoding="utf-8") as f:
            f.write(" ".join(shlex.quote(c) for c in command) + "\n\n" + output)
    return status, output, seconds


def summary_table(results):
    """Lines of the summary: one row per ratio, then per-benchmark status."""
    rows = [("benchmark", "section", "comparison", "value", "read under")]
    for name, (status, output, seconds) in results.items():
        for r in parse_ratios(output):
            rows.append((name, r["section"][:40], r["name"][:36], r["value"], r["column"][:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 10)
    lines.append("")
    for name, (status, output, seconds) in results.items():
        notes = [ln.strip() for ln in output.splitlines() if ln.strip().lower().startswith("note")]
        count = len(parse_ratios(output))
        line = f"{name}: {status}, {seconds:.0f} s, {count} ratio(s)"
        if status != "ok":
            tail = [ln for ln in output.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
            line += f"; last line: {tail[0][:120]}"
        lines.append(line)
        lines.extend(f"    {n[:150]}" for n in notes)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma list of benchmark names (e.g. decoding,tokenizer)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument("--args", action="append", default=[],
                        help="extra arguments for one benchmark, 'name=--flag value' (repeatable)")
    parser.add_argument("--log-dir", default=os.path.join(tempfile.gettempdir(), "bert4keras_bench_logs"),
                        help="full outputs go here ('' for none)")
    args = parser.parse_args(argv)

    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    names = {os.path.splitext(os.path.basename(s))[0][len("bench_"):]: s for s in scripts}
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {sorted(names)}")
    extra = {}
    for item in args.args:
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            parser.error(f"--args {item!r}: expected 'name=arguments' with name in {sorted(names)}")
        extra[name] = shlex.split(value)

    results = {}
    for name, path in names.items():
        if wanted and name not in wanted:
            continue
        print(f"running bench_{name}.py {' '.join(extra.get(name, []))}", flush=True)
        results[name] = run_benchmark(path, extra.get(name, []), args.timeout, args.log_dir)
        print(f"  {results[name][0]} in {results[name][2]:.0f} s", flush=True)
    print()
    print("\n".join(summary_table(results)))
    if args.log_dir:
        print(f"\nfull outputs: {args.log_dir}")
    return 0 if all(status == "ok" for status, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
