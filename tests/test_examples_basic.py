"""The README's main job: examples/basic_extract_features.py."""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import basic_extract_features  # noqa: E402


def test_extract_features_matches_reference(capsys, minilm_dir):
    reference = np.load(os.path.join(HERE, "data", "example_embeddings.npz"))
    assert list(reference["sentences"]) == basic_extract_features.SENTENCES
    similarity = basic_extract_features.main([])
    expected = reference["embeddings"] @ reference["embeddings"].T
    assert np.abs(similarity - expected).max() < 1e-4
    out = capsys.readouterr().out
    assert "[CLS] a man is playing a guitar . [SEP]" in out
    assert "Cosine similarity" in out


def test_extract_features_custom_sentences(minilm_dir):
    similarity = basic_extract_features.main(["hello world", "hello there world", "tax law"])
    assert similarity.shape == (3, 3)
    assert similarity[0, 1] > similarity[0, 2]
