"""Reading a BERT-base-size Google checkpoint: our numpy reader vs TensorFlow's.

The checkpoint holds random float32 arrays with bert-base-chinese's Google
variable names and shapes (about 410 MB), written by TensorFlow's SaveV2 when
TensorFlow is importable, else by `write_bundle`. Both readers then open the
bundle and read every variable into numpy arrays, checksums verified (TF
verifies them too), in interleaved rounds in this one process with the files
in the page cache. The import times are measured apart, each in a fresh
interpreter: `import bert4keras.tf_checkpoint` against `import tensorflow`.

Usage: python bench/bench_tf_checkpoint.py [--rounds 5] [--layers 12] [--dir DIR]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bert4keras.tf_checkpoint import BundleReader, write_bundle  # noqa: E402


def bert_base_arrays(layers, vocab=21128, hidden=768, inner=3072, positions=512):
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    arrays = {"bert/embeddings/word_embeddings": r(vocab, hidden),
              "bert/embeddings/token_type_embeddings": r(2, hidden),
              "bert/embeddings/position_embeddings": r(positions, hidden),
              "bert/embeddings/LayerNorm/gamma": r(hidden),
              "bert/embeddings/LayerNorm/beta": r(hidden)}
    for i in range(layers):
        p = "bert/encoder/layer_%d/" % i
        for name in ("query", "key", "value"):
            arrays[p + "attention/self/%s/kernel" % name] = r(hidden, hidden)
            arrays[p + "attention/self/%s/bias" % name] = r(hidden)
        arrays[p + "attention/output/dense/kernel"] = r(hidden, hidden)
        arrays[p + "attention/output/dense/bias"] = r(hidden)
        arrays[p + "intermediate/dense/kernel"] = r(hidden, inner)
        arrays[p + "intermediate/dense/bias"] = r(inner)
        arrays[p + "output/dense/kernel"] = r(inner, hidden)
        arrays[p + "output/dense/bias"] = r(hidden)
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            arrays[p + norm + "/gamma"] = r(hidden)
            arrays[p + norm + "/beta"] = r(hidden)
    arrays["bert/pooler/dense/kernel"] = r(hidden, hidden)
    arrays["bert/pooler/dense/bias"] = r(hidden)
    return arrays


def import_seconds(module, repeats=3):
    code = "import time; t = time.perf_counter(); import %s; print(time.perf_counter() - t)" % module
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if out.returncode:
            return None
        times.append(float(out.stdout.split()[-1]))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--dir", default=None, help="where to write the checkpoint (default: a temp dir)")
    args = parser.parse_args()

    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
    except ImportError:
        tf = None
        print("note: TensorFlow is not importable; timing our reader alone")

    arrays = bert_base_arrays(args.layers)
    nbytes = sum(a.nbytes for a in arrays.values())
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        prefix = os.path.join(folder, "bert_model.ckpt")
        if tf is not None:
            names = list(arrays)
            tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                              tensors=[tf.constant(arrays[n]) for n in names])
            writer = "TensorFlow SaveV2"
        else:
            write_bundle(prefix, arrays)
            writer = "write_bundle"
        del arrays

        def ours():
            reader = BundleReader(prefix)
            return {n: reader.get(n) for n in reader.names}

        def theirs():
            reader = tf.train.load_checkpoint(prefix)
            return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}

        peers = [("ours (numpy)", ours)] + ([("TF load_checkpoint", theirs)] if tf else [])
        times = {name: [] for name, _ in peers}
        check = {}
        for round_ in range(args.rounds + 1):  # round 0 warms the page cache
            for name, fn in peers:
                t0 = time.perf_counter()
                result = fn()
                elapsed = time.perf_counter() - t0
                if round_:
                    times[name].append(elapsed)
                else:
                    check[name] = result
        if tf is not None:
            a, b = check["ours (numpy)"], check["TF load_checkpoint"]
            assert set(a) == set(b) and all(a[n].tobytes() == b[n].tobytes() for n in a)
        del check

    print(f"checkpoint: {nbytes / 1e6:.0f} MB float32, {args.layers} layers, written by {writer}; "
          f"median of {args.rounds} interleaved rounds (open + read every variable)")
    ours_s = statistics.median(times["ours (numpy)"])
    print(f"{'reader':<22}{'seconds':>10}{'MB/s':>10}{'peer/ours':>12}")
    for name, _ in peers:
        s = statistics.median(times[name])
        print(f"{name:<22}{s:>10.3f}{nbytes / 1e6 / s:>10.0f}{s / ours_s:>11.2f}x")

    ours_import = import_seconds("bert4keras.tf_checkpoint")
    tf_import = import_seconds("tensorflow")
    print(f"\n{'import':<30}{'seconds':>10}")
    print(f"{'bert4keras.tf_checkpoint':<30}{ours_import:>10.3f}")
    if tf_import is not None:
        print(f"{'tensorflow':<30}{tf_import:>10.3f}")
        print(f"import time saved: {tf_import - ours_import:.2f} s "
              f"(import speed-up: {tf_import / ours_import:.1f}x)")


if __name__ == "__main__":
    main()
