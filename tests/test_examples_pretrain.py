"""examples/pretrain_chinese_small.py: no held-out text in its corpus, and the
recipe end to end in --quick mode, its export fine-tuned by a task example
through --pretrained-small.

The held-out texts are rebuilt here the way each example script splits its
data (not with the recipe's own code), from valid and test splits alike.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import _corpora  # noqa: E402
import _options  # noqa: E402
import _runner  # noqa: E402
import pretrain_chinese_small as recipe  # noqa: E402
import task_sequence_labeling_cws_crf as cws_example  # noqa: E402
import task_sequence_labeling_ner_crf as ner_example  # noqa: E402

from bert4keras.snippets import text_segmentate  # noqa: E402

LONG = 20  # a held-out run of this many characters may not be in the corpus


def held_out_texts():
    """Every valid and test text of every example, at split seed 0."""
    texts = set()
    _, valid, test, _ = _corpora.load_ner(126, seed=0)  # both NER scripts
    texts |= {t for t, _ in valid + test}
    sentences, _ = _corpora.load_people_daily()
    _, valid, test = _options.split_data(sentences, seed=0)  # task_seq2seq.py: whole lines
    texts |= {"".join(w for w, _ in s) for s in valid + test}
    pieces = []  # basic_masked_language_model.py: pieces, split after cutting
    for s in sentences:
        pieces += text_segmentate("".join(w for w, _ in s), 64 - 2, "。！？；，")
    _, valid, test = _options.split_data(pieces, seed=0)
    texts |= set(valid + test)
    reviews, _ = _corpora.load_sentiment()
    _, valid, test = _options.split_data(reviews, seed=0)
    texts |= {t for t, _ in valid + test}
    segmented, _ = _corpora.load_bmes()
    _, valid, test = _options.split_data(segmented, seed=0)
    texts |= {"".join(p) for s in valid + test for p in cws_example.split_words(s, 126)}
    return texts


def leaks(corpus_lines, held_out):
    """Corpus lines equal to a held-out text or sharing LONG characters with one."""
    runs = set()
    for text in held_out:
        runs.update(text[i:i + LONG] for i in range(len(text) - LONG + 1))
    return [line for line in corpus_lines
            if line in held_out or any(line[i:i + LONG] in runs for i in range(len(line) - LONG + 1))]


def read_corpus(folder):
    lines = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".txt"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                lines += [line.rstrip("\n") for line in f]
    return lines


@pytest.mark.slow
@pytest.mark.tf_only  # pure Python: once is enough
def test_full_corpus_has_no_held_out_text(tmp_path):
    paths, report = recipe.build_corpus(str(tmp_path))
    lines = read_corpus(str(tmp_path))
    held_out = held_out_texts()
    assert len(lines) > 20000 and len(held_out) > 8000
    assert leaks(lines, held_out) == []
    # The check has teeth: a held-out line and a long run of one are caught.
    sample = sorted(t for t in held_out if len(t) > 3 * LONG)[0]
    assert leaks([sample, "前" + sample[LONG:2 * LONG + 1] + "后"], held_out) == [
        sample, "前" + sample[LONG:2 * LONG + 1] + "后"]
    assert report["people_daily"]["dropped_near_held_out"] > 0


@pytest.mark.slow
@pytest.mark.tf_only
def test_recipe_quick_then_fine_tune_with_pretrained_small(tmp_path, capsys):
    out = str(tmp_path / "small")
    result = recipe.main(["--quick", "--output-dir", out, "--no-progress", "--workers", "1"])
    assert result["steps"] == 4 and 0 <= result["final_mlm_accuracy"] <= 1
    export = os.path.join(out, "export")
    for name in ("bert_model.ckpt.index", "bert_config.json", "vocab.txt", "model.keras", "recipe.json"):
        assert os.path.exists(os.path.join(export, name)), name
    assert read_corpus(os.path.join(out, "corpus"))  # its leaks: test_full_corpus_has_no_held_out_text
    # A second run reuses every step.
    capsys.readouterr()
    again = recipe.main(["--quick", "--output-dir", out, "--no-progress", "--workers", "1"])
    text = capsys.readouterr().out
    assert "corpus: reusing" in text and "records: reusing" in text and "pretraining: reusing" in text
    assert again["final_mlm_accuracy"] == result["final_mlm_accuracy"]
    # A task example fine-tunes from the export.
    scores = ner_example.main(["--quick", "--pretrained-small", out])
    assert set(scores) == {"PER", "LOC", "ORG", "all"}
    args = _runner.parse(ner_example._ner.arguments(ner_example.__doc__), ["--pretrained-small", out])
    assert (args.config, args.checkpoint, args.vocab, args.split_seed, args.model) == (
        os.path.join(export, "bert_config.json"), os.path.join(export, "bert_model.ckpt"),
        os.path.join(export, "vocab.txt"), 0, "roformer")  # the recipe's default family
    with pytest.raises(SystemExit, match="--pretrained-small"):
        ner_example.main(["--quick", "--pretrained-small", str(tmp_path / "missing")])
