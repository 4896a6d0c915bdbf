"""examples/task_seq2seq_t5.py: its batches, and the --quick run end to end."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import task_seq2seq_t5 as t5_example  # noqa: E402
from task_seq2seq import lookup_baseline  # noqa: E402  (shared by both seq2seq examples)

from bert4keras.tokenizers import Tokenizer  # noqa: E402


def test_batches_shift_the_target_by_one():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[FILL]", "zhong", "guo", "中", "国"]
    tokenizer = Tokenizer({t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    generator = t5_example.Generator([("zhong guo", "中国"), ("guo", "国")], tokenizer, 4, batch_size=2)
    (sources, decoder_ids), targets, weights = next(iter(generator))
    assert sources.shape == (2, 6) and sources[0, :4].tolist() == [2, 5, 6, 3]
    assert decoder_ids[0, :3].tolist() == [2, 7, 8] and targets[0, :3].tolist() == [7, 8, 3]
    assert decoder_ids[1, :2].tolist() == [2, 8] and targets[1, :2].tolist() == [8, 3]
    np.testing.assert_array_equal(weights, targets > 0)
    assert decoder_ids.shape[1] % 8 == 0
    assert lookup_baseline([("zhong guo", "中国"), ("zhong", "钟"), ("zhong", "中")],
                           [("zhong guo", "中果")]) == 0.5


@pytest.mark.slow
def test_quick_seq2seq_t5(capsys):
    result = t5_example.main(["--quick"])
    assert all(np.isfinite(v) for v in result.values())
    assert result["tokens_per_second"] > 0 and 0 <= result["char_accuracy"] <= 1
    assert "cached encoder-decoder beam search" in capsys.readouterr().out
