"""bench/bench_peers.py: its FLOP counts and ratios on hand-computed inputs,
and a tiny run on the current backend without the bert4keras 0.11.5 peer."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "bench"))  # bench_peers imports its sibling scripts

import bench_peers as bench  # noqa: E402


def _spec(model="bert", task="inference", **extra):
    kwargs = dict(vocab_size=10, hidden_size=4, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8,
                  **extra)
    return {"model": model, "task": task, "kwargs": kwargs}


def test_flops_by_hand():
    # B=2, L=3 -> 6 tokens; per layer 6 * (8*4*4 + 4*4*8) = 1536 projection and FFN FLOPs,
    # 4 * 6 * 3 * 4 = 288 for scores and weighted values; 2 layers.
    assert bench.inference_flops(_spec(), 2, 3) == 2 * (1536 + 288)  # 3648
    # NEZHA doubles the attention part (relative features on keys and values).
    assert bench.inference_flops(_spec("nezha"), 2, 3) == 2 * (1536 + 576)  # 4224
    # ALBERT adds the embedding mapping, 2 * 6 tokens * e=2 * h=4.
    assert bench.inference_flops(_spec("albert", embedding_size=2), 2, 3) == 3648 + 96
    # Training: 3 x (forward + MLM dense 2*4*4 and tied decoder 2*4*10 on all 6 tokens).
    assert bench.step_flops(_spec(task="train"), 2, 3) == 3 * (3648 + 6 * (32 + 80))  # 12960
    assert bench.step_flops(_spec(), 2, 3) == 3648


def test_ratios_and_fraction_of_peak():
    assert bench.peer_ratios({"ours": 2.0, "keras-hub": 3.0, "b4k": 1.0}) == {"keras-hub": 1.5, "b4k": 0.5}
    assert bench.peer_ratios({"keras-hub": 3.0}) == {}
    assert bench.achieved(2e9, 0.5, 8e9) == (4.0, 0.5)
    stats = bench.summary([0.001, 0.002, 0.003, 0.004, 0.005])
    assert stats["calls"] == 5 and stats["best_ms"] == pytest.approx(1.0)
    assert stats["median_ms"] == pytest.approx(3.0)
    assert (stats["q1_ms"], stats["q3_ms"]) == (pytest.approx(1.5), pytest.approx(4.5))



def test_paired_ratio_by_hand():
    # Each round's peer call over our call of the same round: 2, 2, 2 -> 2 exactly, and every
    # bootstrap draw of the median is 2 too.
    assert bench.paired_ratio([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == (2.0, 2.0, 2.0, "faster")
    assert bench.paired_ratio([2.0, 2.0], [1.0, 1.0])[3] == "slower"
    # Ratios 0.5, 1, 2 per round: median 1, and the interval spans 1 -> a tie.
    median, low, high, verdict = bench.paired_ratio([1.0, 1.0, 1.0], [0.5, 1.0, 2.0])
    assert median == 1.0 and low < 1.0 < high and verdict == "tie"
    # iters=2: each round's median call; rounds (1, 3) -> 2 and (2, 2) -> 2 against 4 and 4.
    assert bench.paired_ratio([1.0, 3.0, 2.0, 2.0], [4.0, 4.0, 4.0, 4.0], iters=2)[0] == 2.0
    # The interval is the 2.5-97.5 percentiles of the bootstrap medians, drawn as numpy would.
    ours, peer = [1.0] * 5, [0.9, 1.0, 1.1, 1.2, 1.3]
    draws = np.random.default_rng(0).integers(0, 5, size=(2000, 5))
    expected = np.percentile(
        np.median(np.array(peer)[draws], axis=1), [2.5, 97.5])
    assert bench.paired_ratio(ours, peer)[1:3] == pytest.approx(tuple(expected))
    with pytest.raises(ValueError, match="no complete round"):
        bench.paired_ratio([1.0], [1.0], iters=2)


def test_default_rows_are_the_issue_sizes():
    rows = bench.row_specs()
    assert rows["base"]["kwargs"]["hidden_size"] == 768 and rows["base"]["kwargs"]["num_hidden_layers"] == 12
    assert rows["train"]["kwargs"]["vocab_size"] == 21128 and rows["train"]["task"] == "train"
    assert rows["albert-base"]["kwargs"]["embedding_size"] == 128
    # BERT-base at 8 x 128: about 179 GFLOP per forward pass.
    assert bench.inference_flops(rows["base"], 8, 128) / 1e9 == pytest.approx(178.8, abs=0.1)


@pytest.mark.slow
def test_tiny_run_without_the_b4k_interpreter(tmp_path):
    missing = str(tmp_path / "no-such-python")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_peers.py"), "--tiny", "--rows", "minilm,nezha-minilm,train",
         "--batch", "2", "--length", "8", "--rounds", "2", "--iters", "1", "--warmup", "1", "--no-keras-hub",
         "--b4k-python", missing],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert f"note: no bert4keras 0.11.5 interpreter at {missing}" in out
    assert "matmul peak (2048^3 fp32" in out
    assert out.count("  ours ") == 3 and out.count("1.000x") == 3
    assert "bert4keras 0.11.5  " not in out and "keras-hub 0" not in out
