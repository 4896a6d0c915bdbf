"""Reading corpus lines robustly: a bad line is skipped and counted (with the
first few reasons) in a `LoadReport`, never fatal."""
import collections
import os


class LoadReport:
    """Counts of the lines a loader read, kept and skipped (with reasons)."""

    def __init__(self, path):
        self.path = path
        self.read = 0
        self.kept = 0
        self.skipped = 0
        self.duplicates = 0
        self.reasons = collections.Counter()
        self.examples = []  # first few (line number, reason)

    def skip(self, lineno, reason):
        self.skipped += 1
        self.reasons[reason] += 1
        if len(self.examples) < 3:
            self.examples.append((lineno, reason))

    def __str__(self):
        text = f"{os.path.basename(self.path)}: {self.read} lines, {self.kept} kept"
        if self.duplicates:
            text += f", {self.duplicates} duplicates dropped"
        if self.skipped:
            reasons = ", ".join(f"{n} {r}" for r, n in self.reasons.most_common())
            first = "; ".join(f"line {n}: {r}" for n, r in self.examples)
            text += f", {self.skipped} skipped ({reasons}; first: {first})"
        return text


def read_lines(path, report):
    """Yield `(line_number, stripped_text)` for every non-blank line.

    Lines that are not valid UTF-8 are skipped and counted, blank lines are
    skipped silently (they separate nothing in these corpora).
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            report.read += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.skip(lineno, "not UTF-8")
                continue
            line = line.strip().lstrip("\ufeff")
            if not line:
                report.read -= 1
                continue
            yield lineno, line


def parse_lines(path, parse):
    """`(items, report)`: `parse(line)` of every line of `path`; a line whose
    parse raises `ValueError(reason, ...)` is skipped and counted."""
    report, items = LoadReport(path), []
    for lineno, line in read_lines(path, report):
        try:
            items.append(parse(line))
        except ValueError as e:
            report.skip(lineno, e.args[0])
            continue
        report.kept += 1
    return items, report
