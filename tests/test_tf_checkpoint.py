"""The numpy checkpoint bundle reader/writer: round trips, TensorFlow parity, corruption."""
import ast
import glob
import os
import re
import shlex
import struct
import subprocess
import sys

import keras
import ml_dtypes
import numpy as np
import pytest

from bert4keras import tf_checkpoint
from bert4keras.tf_checkpoint import BundleReader, data_filename, write_bundle

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

DTYPES = ["float32", "float16", "bfloat16", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128"]


def sample(dtype, shape, seed=0):
    """Random values of `dtype`, extremes and signed zeros included for floats."""
    rng = np.random.RandomState(seed)
    dtype = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    if dtype == np.bool_:
        return np.asarray(rng.rand(*shape) > 0.5)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.asarray(rng.randint(-(2 ** 31), 2 ** 31 - 1, size=shape, dtype=np.int64))
        values = values.astype(dtype)
        flat = values.reshape(-1)
        flat[:2] = [info.min, info.max][: flat.size]
        return values
    values = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)
    if dtype.kind == "c":
        values = values + (1j * np.asarray(rng.standard_normal(shape))).astype(dtype)
    flat = values.reshape(-1)
    flat[:4] = np.array([-0.0, np.inf, -np.inf, 1e-3]).astype(dtype)[: flat.size]
    return values


def same(a, b):
    """Bit-identical arrays: same dtype, shape and bytes."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_as_tf(ours, theirs):
    """`same`, with strings (object arrays here, bytes from TF) compared by value."""
    if ours.dtype == object:
        return ours.shape == theirs.shape and ours.tolist() == theirs.tolist()
    return same(ours, theirs)


def tensors_of_every_dtype():
    tensors = {}
    for i, dtype in enumerate(DTYPES):
        tensors[f"model/{dtype}/matrix"] = sample(dtype, (7, 5), seed=i)
        tensors[f"model/{dtype}/scalar"] = sample(dtype, (), seed=i)
        tensors[f"model/{dtype}/empty"] = sample(dtype, (0, 3), seed=i)
    tensors["model/float32/3d"] = sample("float32", (2, 3, 4))
    return tensors


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype(tmp_path, dtype):
    tensors = {"a/" + dtype: sample(dtype, (33, 17)), "scalar": sample(dtype, ()),
               "empty": sample(dtype, (4, 0, 2)), "vector": sample(dtype, (5,))}
    prefix = write_bundle(str(tmp_path / "model.ckpt"), tensors)
    reader = BundleReader(prefix)
    assert reader.names == set(tensors)
    for name, value in tensors.items():
        assert reader.shape(name) == value.shape
        assert reader.dtype(name) == value.dtype
        assert same(reader.get(name), value), name
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]


def test_arrays_returned_are_fresh_and_writable(tmp_path):
    prefix = write_bundle(str(tmp_path / "m"), {"w": np.arange(6.0, dtype="float32")})
    reader = BundleReader(prefix)
    a = reader.get("w")
    a[0] = 42
    assert reader.get("w")[0] == 0


def test_bfloat16_without_ml_dtypes_upcasts_exactly(tmp_path, monkeypatch):
    value = sample("bfloat16", (9, 4))
    prefix = write_bundle(str(tmp_path / "m"), {"w": value})
    monkeypatch.setattr(tf_checkpoint, "_bfloat16", lambda: None)
    reader = BundleReader(prefix)
    assert reader.dtype("w") == np.float32
    assert same(reader.get("w"), value.astype(np.float32))


def test_many_variables_span_blocks_and_restart_points(tmp_path):
    # Long shared prefixes exercise key compression; 2000 entries fill many
    # index data blocks, each with several restart points.
    tensors = {"bert/encoder/layer_%d/attention/self/query/kernel/adam_%s" % (i, s):
               np.full((2,), i, dtype="int32") for i in range(1000) for s in "mv"}
    prefix = write_bundle(str(tmp_path / "m"), tensors)
    assert os.path.getsize(prefix + ".index") > 10 * tf_checkpoint._BLOCK_SIZE
    reader = BundleReader(prefix)
    assert reader.names == set(tensors)
    for name in list(tensors)[::97]:
        assert same(reader.get(name), tensors[name])


def test_non_ascii_names_and_data_order(tmp_path):
    tensors = {"z/last": np.ones(3, "float32"), "词/嵌入": np.zeros(2, "int64"), "a": np.int32(7)}
    prefix = write_bundle(str(tmp_path / "m"), tensors)
    reader = BundleReader(prefix)
    assert reader.names == set(tensors)
    assert all(same(reader.get(n), v) for n, v in tensors.items())
    # Data follows the dict's order; the index is sorted by key bytes.
    assert reader._entries["z/last"].offset == 0


def test_sharded_round_trip(tmp_path):
    tensors = {"w%d" % i: sample("float32", (64, 16), seed=i) for i in range(5)}  # 4 KiB each
    tensors["big"] = sample("float32", (64, 64))  # 16 KiB, over the limit: a shard of its own
    prefix = write_bundle(str(tmp_path / "m"), tensors, max_shard_bytes=9000)
    files = sorted(os.path.basename(p) for p in glob.glob(prefix + ".data-*"))
    assert files == ["m.data-%05d-of-00004" % i for i in range(4)]
    reader = BundleReader(prefix)
    assert reader.num_shards == 4
    assert [reader._entries["w%d" % i].shard for i in range(5)] == [0, 0, 1, 1, 2]
    assert reader._entries["big"].shard == 3
    assert all(same(reader.get(n), v) for n, v in tensors.items())


def test_write_errors_name_the_variable(tmp_path):
    prefix = str(tmp_path / "m")
    with pytest.raises(ValueError, match=r"'words' has dtype <U3"):
        write_bundle(prefix, {"ok": np.ones(2), "words": np.array(["abc"])})
    with pytest.raises(ValueError, match="variable names must be non-empty strings"):
        write_bundle(prefix, {"": np.ones(2)})
    with pytest.raises(ValueError, match="`max_shard_bytes` must be a positive"):
        write_bundle(prefix, {"a": np.ones(2)}, max_shard_bytes=0)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_files(tmp_path, monkeypatch):
    old = write_bundle(str(tmp_path / "m"), {"w": np.ones(3, "float32")})

    def fail(items):
        raise OSError("disk full")

    monkeypatch.setattr(tf_checkpoint, "_build_table", fail)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(old, {"w": np.zeros(3, "float32")})
    assert sorted(os.listdir(tmp_path)) == ["m.data-00000-of-00001", "m.index"]
    assert same(BundleReader(old).get("w"), np.ones(3, "float32"))  # the old checkpoint intact


# --------------------------------------------------------------- corruption
@pytest.fixture
def small_bundle(tmp_path):
    tensors = {"bert/embeddings/word_embeddings": sample("float32", (50, 8)),
               "bert/pooler/dense/bias": sample("float32", (8,)), "global_step": np.int64(3)}
    return write_bundle(str(tmp_path / "bert_model.ckpt"), tensors), tensors


def test_flipped_data_byte_names_the_variable_and_file(small_bundle):
    prefix, tensors = small_bundle
    reader = BundleReader(prefix)
    entry = reader._entries["bert/pooler/dense/bias"]
    path = data_filename(prefix, 0, 1)
    with open(path, "r+b") as f:
        f.seek(entry.offset + 5)
        byte = f.read(1)
        f.seek(entry.offset + 5)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(ValueError, match=r"checksum mismatch for variable "
                                         r"'bert/pooler/dense/bias' in data file .*"
                                         r"bert_model\.ckpt\.data-00000-of-00001"):
        BundleReader(prefix).get("bert/pooler/dense/bias")
    # The other variables are untouched and still read.
    assert same(reader.get("bert/embeddings/word_embeddings"),
                tensors["bert/embeddings/word_embeddings"])


def test_truncated_data_file_fails_at_open(small_bundle):
    prefix, _ = small_bundle
    path = data_filename(prefix, 0, 1)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 3)
    with pytest.raises(ValueError, match=r"data file .*data-00000-of-00001' is truncated: "
                                         r"variable '.*' needs bytes up to \d+, the file has"):
        BundleReader(prefix)


def test_data_file_shrinking_after_open_is_caught(small_bundle):
    prefix, _ = small_bundle
    reader = BundleReader(prefix)
    with open(data_filename(prefix, 0, 1), "r+b") as f:
        f.truncate(10)
    with pytest.raises(ValueError, match="is truncated inside variable 'bert/embeddings"):
        reader.get("bert/embeddings/word_embeddings")


def test_every_truncation_of_the_index_is_refused(small_bundle):
    prefix, _ = small_bundle
    data = open(prefix + ".index", "rb").read()
    for length in range(len(data)):
        with open(prefix + ".index", "wb") as f:
            f.write(data[:length])
        with pytest.raises(ValueError, match=r"corrupt checkpoint index '.*bert_model\.ckpt\.index'"):
            BundleReader(prefix)


def test_every_flipped_index_byte_is_refused(small_bundle):
    prefix, _ = small_bundle
    data = open(prefix + ".index", "rb").read()
    # Everything but the footer's zero padding is covered by a checksum or
    # the magic number (TensorFlow ignores the padding too).
    footer = len(data) - 48
    padding = range(footer + len(_handles(data)), len(data) - 8)
    for i in range(len(data)):
        if i in padding:
            continue
        corrupt = bytearray(data)
        corrupt[i] ^= 0x01
        with open(prefix + ".index", "wb") as f:
            f.write(corrupt)
        with pytest.raises(ValueError, match="corrupt checkpoint index"):
            BundleReader(prefix)


def _handles(index):
    """The bytes of the footer's two block handles (four varints)."""
    footer, pos = index[-48:], 0
    for _ in range(4):
        pos = tf_checkpoint._read_varint(footer, pos)[1]
    return footer[:pos]


def test_missing_shard_names_the_file(tmp_path):
    tensors = {"a": np.ones(1000, "float32"), "b": np.ones(1000, "float32")}
    prefix = write_bundle(str(tmp_path / "m"), tensors, max_shard_bytes=4000)
    os.remove(data_filename(prefix, 1, 2))
    with pytest.raises(FileNotFoundError, match=r"data shard .*m\.data-00001-of-00002' of "
                                                r"checkpoint .* is missing"):
        BundleReader(prefix)


def test_missing_index(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint index not found: .*nothing\.index"):
        BundleReader(str(tmp_path / "nothing"))


def test_unknown_variable_is_a_key_error(small_bundle):
    with pytest.raises(KeyError, match="'cls/predictions/output_bias' is not in checkpoint"):
        BundleReader(small_bundle[0]).get("cls/predictions/output_bias")


def _rewrite_block_trailer(data, kind):
    """`data` (an index) with its first block's type byte set to `kind`, crc fixed."""
    # The first block starts at 0; its size comes from the index block's first handle.
    index_offset, pos = tf_checkpoint._read_varint(data[-48:], 0)
    index_offset, pos = tf_checkpoint._read_varint(data[-48:], pos)
    index_offset, pos = tf_checkpoint._read_varint(data[-48:], pos)
    index_size, _ = tf_checkpoint._read_varint(data[-48:], pos)
    index_block = tf_checkpoint._read_block(data, index_offset, index_size)
    _, handle = next(tf_checkpoint._block_items(index_block))
    offset, pos = tf_checkpoint._read_varint(handle, 0)
    size, _ = tf_checkpoint._read_varint(handle, pos)
    out = bytearray(data)
    out[offset + size] = kind
    crc = tf_checkpoint._crc32c().value(bytes(out[offset:offset + size + 1]))
    out[offset + size + 1:offset + size + 5] = struct.pack("<I", tf_checkpoint._mask(crc))
    return bytes(out)


def test_compressed_block_gives_a_clear_error(small_bundle):
    prefix, _ = small_bundle
    data = open(prefix + ".index", "rb").read()
    with open(prefix + ".index", "wb") as f:
        f.write(_rewrite_block_trailer(data, 1))
    with pytest.raises(ValueError, match="snappy-compressed, which this reader does not support"):
        BundleReader(prefix)
    with open(prefix + ".index", "wb") as f:
        f.write(_rewrite_block_trailer(data, 7))
    with pytest.raises(ValueError, match="unknown block compression type 7"):
        BundleReader(prefix)


def test_masked_crc_matches_the_published_vectors():
    # crc32c("123456789") = 0xE3069283 (RFC 3720); masking rotates right by
    # 15 bits and adds 0xA282EAD8.
    crc = tf_checkpoint._crc32c().value(b"123456789")
    assert crc == 0xE3069283
    assert tf_checkpoint._mask(crc) == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert tf_checkpoint._mask(0) == 0xA282EAD8


def test_corrupt_model_checkpoint_loads_nothing(tmp_path):
    from bert4keras.models import build_transformer_model

    tiny = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=48, max_position=40, with_mlm=True, return_keras_model=False)
    prefix = build_transformer_model(**tiny).save_weights_as_checkpoint(str(tmp_path / "b.ckpt"))
    # Flip a byte of the variable written (and read) last, so the others read fine first.
    entries = BundleReader(prefix)._entries
    name = max(entries, key=lambda n: entries[n].offset)
    with open(data_filename(prefix, 0, 1), "r+b") as f:
        f.seek(entries[name].offset)
        byte = f.read(1)
        f.seek(entries[name].offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    keras.utils.set_random_seed(99)
    fresh = build_transformer_model(**tiny)
    before = [keras.ops.convert_to_numpy(w.value) for w in fresh.model.weights]
    with pytest.raises(ValueError, match=r"checksum mismatch for variable '%s' in data file "
                                         r"'.*b\.ckpt\.data-00000-of-00001'" % re.escape(name)):
        fresh.load_weights_from_checkpoint(prefix)
    after = [keras.ops.convert_to_numpy(w.value) for w in fresh.model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


# ----------------------------------------------------- TensorFlow's own files
def _tf_arrays(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {name: np.asarray(reader.get_tensor(name))
            for name in reader.get_variable_to_shape_map()}


@pytest.mark.tf_only
@pytest.mark.parametrize("max_shard_bytes", [None, 300])
def test_tensorflow_reads_our_files_bit_identically(tmp_path, max_shard_bytes):
    tensors = tensors_of_every_dtype()
    prefix = write_bundle(str(tmp_path / "m.ckpt"), tensors, max_shard_bytes=max_shard_bytes)
    if max_shard_bytes:
        assert len(glob.glob(prefix + ".data-*")) >= 5
    theirs = _tf_arrays(prefix)
    assert set(theirs) == set(tensors)
    for name, value in tensors.items():
        assert same(theirs[name], value), name


@pytest.mark.tf_only
def test_we_read_savev2_files_bit_identically(tmp_path):
    import tensorflow as tf

    tensors = tensors_of_every_dtype()
    prefix = str(tmp_path / "tf.ckpt")
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
    reader, theirs = BundleReader(prefix), _tf_arrays(prefix)
    assert reader.names == set(theirs) == set(tensors)
    for name in names:
        assert reader.shape(name) == theirs[name].shape
        assert same(reader.get(name), theirs[name]) and same(reader.get(name), tensors[name]), name


@pytest.mark.tf_only
def test_we_read_a_tf_train_checkpoint_with_its_object_graph(tmp_path):
    import tensorflow as tf

    variables = {"kernel": tf.Variable(sample("float32", (6, 4))),
                 "half": tf.Variable(sample("float16", (3,))),
                 "bf16": tf.Variable(sample("bfloat16", (2, 2))),
                 "step": tf.Variable(np.int64(12))}
    prefix = tf.train.Checkpoint(**variables).write(str(tmp_path / "obj"))
    reader, theirs = BundleReader(prefix), _tf_arrays(prefix)
    assert reader.names == set(theirs)
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in reader.names
    assert reader.get("_CHECKPOINTABLE_OBJECT_GRAPH").dtype == object
    for name, value in theirs.items():
        assert same_as_tf(reader.get(name), value), name


@pytest.mark.tf_only
def test_we_read_tf_sharded_checkpoints(tmp_path):
    import tensorflow as tf

    # The sharding policy of tf.train.Checkpoint, and a merge of two SaveV2
    # bundles (what a sharded tf.compat.v1 Saver writes, one per device).
    variables = {"v%d" % i: tf.Variable(sample("float32", (32, 8), seed=i)) for i in range(6)}
    options = tf.train.CheckpointOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(2048))
    prefix = tf.train.Checkpoint(**variables).write(str(tmp_path / "policy"), options=options)
    assert len(glob.glob(prefix + ".data-*")) > 1
    reader, theirs = BundleReader(prefix), _tf_arrays(prefix)
    assert reader.num_shards > 1 and reader.names == set(theirs)
    for name, value in theirs.items():
        assert same_as_tf(reader.get(name), value), name

    parts = []
    for i in range(2):
        part = str(tmp_path / ("part%d" % i))
        tf.raw_ops.SaveV2(prefix=part, tensor_names=["a%d" % i, "b%d" % i], shape_and_slices=["", ""],
                          tensors=[tf.constant(sample("float32", (5, 3), seed=i)),
                                   tf.constant(np.arange(i + 2))])
        parts.append(part)
    merged = str(tmp_path / "merged")
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=merged)
    reader, theirs = BundleReader(merged), _tf_arrays(merged)
    assert reader.num_shards == 2 and reader.names == set(theirs) == {"a0", "b0", "a1", "b1"}
    assert {reader._entries[n].shard for n in reader.names} == {0, 1}
    assert all(same(reader.get(n), v) for n, v in theirs.items())


@pytest.mark.tf_only
def test_adam_slot_google_checkpoint_matches_tensorflow(tmp_path, minilm_dir):
    from safetensors.numpy import load_file

    from helpers import write_google_checkpoint

    arrays = load_file(os.path.join(minilm_dir, "model.safetensors"))
    prefix = write_google_checkpoint(arrays, str(tmp_path / "bert_model.ckpt"))
    reader, theirs = BundleReader(prefix), _tf_arrays(prefix)
    assert reader.names == set(theirs)
    assert "global_step" in reader.names and any(n.endswith("/adam_v") for n in reader.names)
    for name, value in theirs.items():
        assert same(reader.get(name), value), name


@pytest.mark.tf_only
def test_partitioned_variables_are_refused_by_name(tmp_path):
    import tensorflow as tf

    prefix = str(tmp_path / "p")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["whole", "part", "part"],
                      shape_and_slices=["", "4 3 0,2:-", "4 3 2,2:-"],
                      tensors=[tf.constant([1.0, 2.0]), tf.constant(np.ones((2, 3), "float32")),
                               tf.constant(np.zeros((2, 3), "float32"))])
    reader = BundleReader(prefix)
    assert reader.names == {"whole", "part"}
    assert reader.shape("part") == (4, 3)
    assert same(reader.get("whole"), np.array([1.0, 2.0], "float32"))
    with pytest.raises(ValueError, match="'part' .* partitioned variables are not supported"):
        reader.get("part")


# ------------------------------------------------- JAX with no TensorFlow at all
NO_TF_SCRIPT = r'''
import importlib.abc
import os
import sys


class NoTensorFlow(importlib.abc.MetaPathFinder):
    """Makes `import tensorflow` fail as on a machine without it."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError("No module named %r (blocked by the test)" % name, name=name)
        return None


sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
import bert4keras.checkpoints, bert4keras.generation, bert4keras.layers, bert4keras.models
import bert4keras.optimizers, bert4keras.snippets, bert4keras.tf_checkpoint, bert4keras.tokenizers
import keras
from safetensors.numpy import load_file

from bert4keras.generation import Seq2SeqDecoder
from bert4keras.models import build_transformer_model
from bert4keras.tf_checkpoint import BundleReader, write_bundle
from helpers import hf_to_google_name

assert keras.backend.backend() == "jax"
minilm, roformer, out = sys.argv[1:4]


def google_checkpoint(folder, prefix, model_prefix):
    """The HF weights of `folder` under Google names, with Adam slots."""
    tensors = {}
    for hf_name, array in sorted(load_file(os.path.join(folder, "model.safetensors")).items()):
        converted = hf_to_google_name(hf_name, model_prefix)
        if converted is not None:
            name, transpose = converted
            tensors[name] = array.T if transpose else array
            tensors[name + "/adam_m"] = np.zeros_like(array)
    tensors["global_step"] = np.int64(1000)
    return write_bundle(prefix, tensors)


def max_err(a, b, valid):
    return float(np.abs(np.asarray(a) - b)[valid].max())


ref = dict(np.load(sys.argv[4]))
prefix = google_checkpoint(minilm, os.path.join(out, "minilm", "bert_model.ckpt"), "bert")
bert = build_transformer_model(os.path.join(minilm, "config.json"), prefix, with_pool=True)
ids, segs = ref["token_ids"], ref["segment_ids"]
seq, pooled = bert.predict([ids, segs], verbose=0)
assert max_err(seq, ref["sequence_output"], ids > 0) < 1e-4
assert np.abs(pooled - ref["pooled_output"]).max() < 1e-4

ref = dict(np.load(os.path.join(roformer, "reference.npz")))
prefix = google_checkpoint(roformer, os.path.join(out, "roformer", "roformer.ckpt"), "roformer")
config = os.path.join(roformer, "config.json")
builder = build_transformer_model(config, prefix, model="roformer", with_mlm="linear",
                                  return_keras_model=False)
model = builder.model
ids, segs = ref["token_ids"], ref["segment_ids"]
seq, logits = model.predict([ids, segs], verbose=0)
assert max_err(seq, ref["sequence_output"], ids > 0) < 1e-4
assert max_err(logits, ref["mlm_logits"], ids > 0) < 5e-4

# Cached UniLM decoding on the loaded weights, then a checkpoint written back.
unilm = build_transformer_model(config, prefix, model="roformer", application="unilm",
                                with_mlm=True)
prefixes = [[2, 5, 9, 11, 3], [2, 7, 3]]
segments = [[0] * len(p) for p in prefixes]
cached = Seq2SeqDecoder(unilm, end_id=3, maxlen=6, use_cache=True).beam_search(
    [prefixes, segments], topk=2)
full = Seq2SeqDecoder(unilm, end_id=3, maxlen=6, use_cache=False).beam_search(
    [prefixes, segments], topk=2)
assert [c.tolist() for c in cached] == [f.tolist() for f in full]

written = os.path.join(out, "resaved", "roformer.ckpt")
builder.save_weights_as_checkpoint(written)
again = build_transformer_model(config, written, model="roformer", with_mlm="linear")
np.testing.assert_array_equal(again.predict([ids, segs], verbose=0)[1], logits)
assert BundleReader(written).names <= BundleReader(prefix).names

leaked = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
assert not leaked, leaked
print("NO-TF OK")
'''


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="runs once, in the JAX pass (it starts its own JAX process)")
def test_jax_without_tensorflow_loads_decodes_and_writes(tmp_path, minilm_dir):
    """A fresh JAX process where `import tensorflow` fails does the whole round."""
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    result = subprocess.run(
        [sys.executable, "-c", NO_TF_SCRIPT, minilm_dir, os.path.join(HERE, "data", "roformer_tiny"),
         str(tmp_path), os.path.join(HERE, "data", "reference_minilm.npz")],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0 and "NO-TF OK" in result.stdout, result.stderr[-4000:]


def test_readme_jax_only_install_is_setup_py_minus_tensorflow():
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    (core,) = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
               and getattr(node.targets[0], "id", None) == "CORE_REQUIRES"]
    assert not any(r.startswith("tensorflow") for r in core)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        section = f.read().split("### JAX-only machines", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    requirements, library = command.split(" && ")
    assert shlex.split(requirements) == ["pip", "install", *core, "jax"]
    assert library == "pip install --no-deps ."
