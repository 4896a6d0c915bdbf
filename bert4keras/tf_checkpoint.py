"""TensorFlow checkpoint bundles (format V2) in numpy, with no TensorFlow.

A bundle at `prefix` is an index, `prefix.index`, and data shards,
`prefix.data-00000-of-00001` and so on. The index is a LevelDB-style sorted
table (blocks of prefix-compressed keys with restart points, a 5-byte block
trailer holding the compression type and a masked crc32c, and a 48-byte
footer ending in the table magic number). Its first entry, under the empty
key, is a `BundleHeaderProto` (number of shards, endianness, version); every
other entry maps a variable name to a `BundleEntryProto` (dtype, shape,
shard, offset, size and the masked crc32c of the tensor's bytes). The
protobuf messages are small, so they are encoded and decoded here by hand.

`BundleReader` verifies every checksum: the index blocks when it opens the
bundle, each tensor's bytes when it reads it. `write_bundle` writes files
that `tf.train.load_checkpoint` reads. Both handle float16/32/64, bfloat16,
bool, int8/16/32/64, uint8/16/32/64 and complex64/128; the reader also reads
string tensors (the object graph of `tf.train.Checkpoint` files).

numpy has no bfloat16. The reader returns bfloat16 tensors as
`ml_dtypes.bfloat16` arrays when `ml_dtypes` is importable (JAX and
TensorFlow both install it), else upcast exactly to float32; `dtype(name)`
says which. The writer takes `ml_dtypes.bfloat16` arrays. Bundles are little-endian, as TensorFlow writes
them on every platform it ships for; big-endian ones are refused.

Example:

```python
from bert4keras.tf_checkpoint import BundleReader, write_bundle

write_bundle("/tmp/model.ckpt", {"dense/kernel": np.ones((2, 3), "float32")})
reader = BundleReader("/tmp/model.ckpt")
reader.names                      # {'dense/kernel'}
reader.shape("dense/kernel")      # (2, 3)
reader.get("dense/kernel")        # numpy array, checksum verified
```
"""
import os
import struct
import uuid
from typing import NamedTuple

import numpy as np

__all__ = ["BundleReader", "write_bundle", "data_filename"]

_MAGIC = 0xDB4775248B80FB57  # LevelDB's table magic number, shared by TensorFlow
_FOOTER_SIZE = 48  # two block handles padded to 2 x 20 bytes, then the magic
_TRAILER_SIZE = 5  # compression type byte + masked crc32c
_NO_COMPRESSION, _SNAPPY = 0, 1
_BLOCK_SIZE = 4096  # target size of a data block of the index table
_RESTART_INTERVAL = 16  # keys between full (uncompressed) keys in a data block
_CHUNK = 4 << 20  # tensor bytes are copied and checksummed in chunks this size
_BUNDLE_VERSION = 1  # TensorFlow's kTensorBundleVersion

# TensorFlow's DataType enum (types.proto) for the types whose bytes are the
# numpy buffer; 14 is bfloat16 and 7 is string, both handled apart.
_DT_STRING, _DT_BFLOAT16 = 7, 14
_NUMPY_OF_ENUM = {
    1: np.dtype("float32"), 2: np.dtype("float64"), 3: np.dtype("int32"),
    4: np.dtype("uint8"), 5: np.dtype("int16"), 6: np.dtype("int8"),
    8: np.dtype("complex64"), 9: np.dtype("int64"), 10: np.dtype("bool"),
    17: np.dtype("uint16"), 18: np.dtype("complex128"), 19: np.dtype("float16"),
    22: np.dtype("uint32"), 23: np.dtype("uint64"),
}
_ENUM_OF_NUMPY = {dtype: enum for enum, dtype in _NUMPY_OF_ENUM.items()}
_ENUM_NAMES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
    7: "string", 8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8",
    13: "qint32", 14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16",
    18: "complex128", 19: "float16", 20: "resource", 21: "variant", 22: "uint32",
    23: "uint64",
}


def data_filename(prefix, shard, num_shards):
    """Path of data shard `shard` of `num_shards`, as TensorFlow names it."""
    return "%s.data-%05d-of-%05d" % (prefix, shard, num_shards)


_REDO = "; re-download or re-copy the checkpoint"


def _crc32c():
    try:
        import google_crc32c
    except ImportError:
        raise ImportError(
            "reading or writing TensorFlow checkpoints needs the package google-crc32c "
            "(a dependency of bert4keras): pip install google-crc32c"
        ) from None
    return google_crc32c


def _mask(crc):
    """TensorFlow's (and LevelDB's) masked crc32c, as stored in files."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _bfloat16():
    """numpy's dtype for bfloat16 (from ml_dtypes), or None without ml_dtypes."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


class _FormatError(ValueError):
    """A malformed index or entry; callers add the file and variable names."""


# ------------------------------------------------------------------ protobuf
def _read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _FormatError("varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _FormatError("varint longer than 10 bytes")


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf):
    """(field number, value) pairs of a serialized protobuf message.

    Varints come as ints, fixed32 as ints, length-delimited fields as bytes;
    fixed64 fields (none in these messages) as raw bytes.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
            if wire == 5 and len(value) == 4:
                value = struct.unpack("<I", value)[0]
        else:
            raise _FormatError(f"protobuf wire type {wire} in field {number}")
        if pos > end:
            raise _FormatError(f"protobuf field {number} runs past the end of its message")
        yield number, value


def _int64(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _field(number, wire, payload):
    return _varint(number << 3 | wire) + payload


def _varint_field(number, value):
    """A varint field, left out when zero as proto3 does."""
    return _field(number, 0, _varint(value)) if value else b""


def _bytes_field(number, payload):
    return _field(number, 2, _varint(len(payload)) + payload)


class _Entry(NamedTuple):
    """A decoded BundleEntryProto."""

    dtype: int
    shape: tuple
    shard: int
    offset: int
    size: int
    crc32c: int
    sliced: bool


def _decode_shape(buf):
    dims = []
    for number, value in _fields(buf):
        if number == 2:  # Dim {int64 size = 1; string name = 2}
            size = 0
            for dim_number, dim_value in _fields(value):
                if dim_number == 1:
                    size = _int64(dim_value)
            if size < 0:
                raise _FormatError(f"negative dimension {size}")
            dims.append(size)
        elif number == 3 and value:
            raise _FormatError("shape of unknown rank")
    return tuple(dims)


def _decode_entry(buf):
    fields = {"dtype": 0, "shape": (), "shard": 0, "offset": 0, "size": 0, "crc32c": 0,
              "sliced": False}
    names = {1: "dtype", 3: "shard", 4: "offset", 5: "size", 6: "crc32c"}
    for number, value in _fields(buf):
        if number == 2:
            fields["shape"] = _decode_shape(value)
        elif number == 7:
            fields["sliced"] = True
        elif number in names:
            fields[names[number]] = value
    for key in ("offset", "size"):
        if _int64(fields[key]) < 0:
            raise _FormatError(f"negative {key} {_int64(fields[key])}")
    return _Entry(**fields)


def _encode_entry(dtype, shape, shard, offset, size, crc32c):
    dims = b"".join(_bytes_field(2, _varint_field(1, d)) for d in shape)
    return (_varint_field(1, dtype) + _bytes_field(2, dims) + _varint_field(3, shard)
            + _varint_field(4, offset) + _varint_field(5, size)
            + _field(6, 5, struct.pack("<I", crc32c)))


def _decode_header(buf):
    header = {"num_shards": 0, "endianness": 0, "min_consumer": 0, "bad_consumers": []}
    for number, value in _fields(buf):
        if number == 1:
            header["num_shards"] = value
        elif number == 2:
            header["endianness"] = value
        elif number == 3:  # VersionDef {producer = 1; min_consumer = 2; bad_consumers = 3}
            for v_number, v_value in _fields(value):
                if v_number == 2:
                    header["min_consumer"] = v_value
                elif v_number == 3 and isinstance(v_value, int):
                    header["bad_consumers"].append(v_value)
                elif v_number == 3:  # packed repeated
                    pos = 0
                    while pos < len(v_value):
                        item, pos = _read_varint(v_value, pos)
                        header["bad_consumers"].append(item)
    return header


def _encode_header(num_shards):
    # Little-endian (0) is the default and so not written, as TensorFlow does.
    return _varint_field(1, num_shards) + _bytes_field(3, _varint_field(1, _BUNDLE_VERSION))


# --------------------------------------------------------------------- table
def _read_block(data, offset, size):
    """Contents of the table block at `offset`, its trailer checked."""
    end = offset + size + _TRAILER_SIZE
    if end > len(data):
        raise _FormatError(f"block at offset {offset} ({size} bytes) runs past the end "
                           f"of the file ({len(data)} bytes): the file is truncated")
    contents = data[offset:offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if _mask(_crc32c().value(data[offset:offset + size + 1])) != stored:
        raise _FormatError(f"checksum mismatch in the block at offset {offset}: the file is corrupt")
    if kind == _SNAPPY:
        raise _FormatError(
            f"the block at offset {offset} is snappy-compressed, which this reader does not "
            "support (TensorFlow writes checkpoint indexes uncompressed); re-save it with "
            "TensorFlow or bert4keras"
        )
    if kind != _NO_COMPRESSION:
        raise _FormatError(f"unknown block compression type {kind} at offset {offset}")
    return contents


def _block_items(block):
    """(key, value) pairs of a table block."""
    if len(block) < 4:
        raise _FormatError("block shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 * (num_restarts + 1)
    if limit < 0:
        raise _FormatError(f"block of {len(block)} bytes claims {num_restarts} restart points")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _read_varint(block, pos)
        own, pos = _read_varint(block, pos)
        length, pos = _read_varint(block, pos)
        if shared > len(key) or pos + own + length > limit:
            raise _FormatError(f"bad key or value length in a block at byte {pos}")
        key = key[:shared] + block[pos:pos + own]
        pos += own
        yield key, block[pos:pos + length]
        pos += length


def _read_table(data):
    """All (key, value) pairs of a sorted table, in order, checksums checked."""
    if len(data) < _FOOTER_SIZE:
        raise _FormatError(f"{len(data)} bytes is too short for a checkpoint index "
                           f"(the footer alone is {_FOOTER_SIZE}): the file is truncated")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)[0] != _MAGIC:
        raise _FormatError("bad magic number: not a checkpoint index, or truncated")
    handles, pos = [], 0
    for _ in range(4):
        value, pos = _read_varint(footer, pos)
        handles.append(value)
    meta_offset, meta_size, index_offset, index_size = handles
    _read_block(data, meta_offset, meta_size)  # empty in bundles, but checked
    items = []
    for _, handle in _block_items(_read_block(data, index_offset, index_size)):
        offset, pos = _read_varint(handle, 0)
        size, _ = _read_varint(handle, pos)
        for key, value in _block_items(_read_block(data, offset, size)):
            if items and key <= items[-1][0]:
                raise _FormatError(f"keys out of order at {key!r}")
            items.append((key, value))
    return items


class _BlockBuilder:
    """A table block: prefix-compressed keys with a full key every `interval`."""

    def __init__(self, interval):
        self.interval = interval
        self.buffer = bytearray()
        self.restarts = [0]
        self.count = 0
        self.last = b""

    def add(self, key, value):
        shared = 0
        if self.count < self.interval:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.count = 0
        self.buffer += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        self.buffer += key[shared:] + value
        self.last = key
        self.count += 1

    def finish(self):
        restarts = struct.pack("<%dI" % len(self.restarts), *self.restarts)
        return bytes(self.buffer) + restarts + struct.pack("<I", len(self.restarts))


def _build_table(items):
    """A sorted table holding `items` ((key, value) pairs in key order)."""
    out = bytearray()

    def write_block(block):
        handle = _varint(len(out)) + _varint(len(block))
        out.extend(block)
        out.append(_NO_COMPRESSION)
        out.extend(struct.pack("<I", _mask(_crc32c().value(block + bytes([_NO_COMPRESSION])))))
        return handle

    index = _BlockBuilder(1)
    block = _BlockBuilder(_RESTART_INTERVAL)
    for i, (key, value) in enumerate(items):
        block.add(key, value)
        if len(block.buffer) >= _BLOCK_SIZE or i == len(items) - 1:
            # The block's last key separates it from the next block.
            index.add(key, write_block(block.finish()))
            block = _BlockBuilder(_RESTART_INTERVAL)
    metaindex = write_block(_BlockBuilder(_RESTART_INTERVAL).finish())
    footer = (metaindex + write_block(index.finish())).ljust(_FOOTER_SIZE - 8, b"\0")
    return bytes(out) + footer + struct.pack("<Q", _MAGIC)


# -------------------------------------------------------------------- reader
class BundleReader:
    """Reads a TensorFlow V2 checkpoint (`prefix.index` + data shards).

    Opening parses and checks the whole index, checks that every data shard
    exists and is long enough for its tensors, and reads no tensor data.
    `get` reads one tensor and verifies its crc32c, so a corrupt file raises
    before any of its values is used.

    Args:
        prefix: the checkpoint prefix, e.g. 'bert_model.ckpt' for
            'bert_model.ckpt.index' and 'bert_model.ckpt.data-00000-of-00001'.

    Attributes:
        prefix: the prefix given.
        names: set of the variable names in the bundle.
        num_shards: number of data files.

    Raises:
        FileNotFoundError: the index or a data shard is missing.
        ValueError: the index is truncated or corrupt, a data shard is too
            short, or the bundle is big-endian. The message names the file.
    """

    def __init__(self, prefix):
        self.prefix = os.fspath(prefix)
        index_path = self.prefix + ".index"
        try:
            with open(index_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"checkpoint index not found: {index_path!r}; the checkpoint path must be "
                "a TF checkpoint prefix (the path without .index), with its .index file there"
            ) from None
        entries = {}
        key = None
        try:
            items = _read_table(data)
            if not items or items[0][0] != b"":
                raise _FormatError("no header entry (the empty key)")
            header = _decode_header(items[0][1])
            for key, value in items[1:]:
                if key.startswith(b"\0"):  # a slice of a partitioned variable
                    continue
                entries[key.decode("utf-8")] = _decode_entry(value)
            key = None
        except (_FormatError, UnicodeDecodeError) as e:
            where = f" (entry {key!r})" if key is not None else ""
            raise ValueError(
                f"corrupt checkpoint index {index_path!r}{where}: {e}{_REDO}"
            ) from None
        if header["endianness"] != 0:
            raise ValueError(
                f"checkpoint {index_path!r} must be little-endian, got a big-endian "
                "bundle; re-save it on a little-endian machine"
            )
        if header["min_consumer"] > _BUNDLE_VERSION or _BUNDLE_VERSION in header["bad_consumers"]:
            raise ValueError(
                f"checkpoint {index_path!r} must be in bundle format version "
                f"{_BUNDLE_VERSION}, got one that needs a reader of version "
                f"{header['min_consumer']}; read it with tf.train.load_checkpoint"
            )
        self.num_shards = header["num_shards"]
        self._entries = entries
        self.names = set(entries)
        self._check_shards()

    def _check_shards(self):
        sizes = {}
        for shard in range(self.num_shards):
            path = data_filename(self.prefix, shard, self.num_shards)
            try:
                sizes[shard] = os.path.getsize(path)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"data shard {path!r} of checkpoint {self.prefix!r} is missing "
                    f"(its index lists {self.num_shards} shard(s)); copy every data "
                    "shard next to the index"
                ) from None
        for name, entry in self._entries.items():
            if entry.sliced:
                continue
            if entry.shard not in sizes:
                raise ValueError(f"corrupt checkpoint index {self.prefix + '.index'!r}: variable "
                                 f"{name!r} is in shard {entry.shard} of {self.num_shards}{_REDO}")
            if entry.offset + entry.size > sizes[entry.shard]:
                path = data_filename(self.prefix, entry.shard, self.num_shards)
                raise ValueError(
                    f"data file {path!r} is truncated: variable {name!r} needs bytes up to "
                    f"{entry.offset + entry.size}, the file has {sizes[entry.shard]}{_REDO}"
                )

    def __contains__(self, name):
        return name in self._entries

    def _entry(self, name):
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"variable {name!r} is not in checkpoint {self.prefix!r}; its names are "
                "in the reader's `names`"
            ) from None

    def shape(self, name):
        """The shape of variable `name`, a tuple."""
        return self._entry(name).shape

    def dtype(self, name):
        """The numpy dtype `get(name)` returns (object for strings).

        bfloat16 is `ml_dtypes.bfloat16` when ml_dtypes is importable, else
        float32 (the values upcast exactly).
        """
        enum = self._entry(name).dtype
        if enum == _DT_BFLOAT16:
            return _bfloat16() or np.dtype("float32")
        if enum == _DT_STRING:
            return np.dtype(object)
        if enum not in _NUMPY_OF_ENUM:
            raise ValueError(f"variable {name!r} of checkpoint {self.prefix!r} has dtype "
                             f"{_ENUM_NAMES.get(enum, enum)!r}, which cannot be read; convert "
                             "it with TensorFlow to a numeric dtype")
        return _NUMPY_OF_ENUM[enum]

    def get(self, name):
        """Variable `name` as a new numpy array, its crc32c verified.

        Raises:
            KeyError: no such variable.
            ValueError: the stored bytes do not match their checksum, the data
                file is truncated, or the variable is partitioned.
        """
        entry = self._entry(name)
        if entry.sliced:
            raise ValueError(f"variable {name!r} of checkpoint {self.prefix!r} is partitioned "
                             "(saved in slices); partitioned variables are not supported: "
                             "re-save it unpartitioned")
        dtype = self.dtype(name)
        path = data_filename(self.prefix, entry.shard, self.num_shards)
        count = int(np.prod(entry.shape, dtype=np.int64))
        if entry.dtype != _DT_STRING:
            itemsize = 2 if entry.dtype == _DT_BFLOAT16 else dtype.itemsize
            if entry.size != count * itemsize:
                raise ValueError(
                    f"corrupt checkpoint index {self.prefix + '.index'!r}: variable {name!r} "
                    f"of shape {entry.shape} has {entry.size} bytes, expected {count * itemsize}"
                    f"{_REDO}"
                )
        crc32c = _crc32c()
        raw = np.empty(entry.size, np.uint8)
        crc = 0
        with open(path, "rb") as f:
            f.seek(entry.offset)
            for start in range(0, entry.size, _CHUNK):
                chunk = f.read(min(_CHUNK, entry.size - start))
                if start + len(chunk) < min(start + _CHUNK, entry.size):
                    raise ValueError(f"data file {path!r} is truncated inside variable {name!r}{_REDO}")
                crc = crc32c.extend(crc, chunk)
                raw[start:start + len(chunk)] = np.frombuffer(chunk, np.uint8)
        if entry.dtype == _DT_STRING:
            return self._strings(name, path, raw, entry)
        if _mask(crc) != entry.crc32c:
            raise ValueError(f"checksum mismatch for variable {name!r} in data file {path!r}: "
                             f"the file is corrupt{_REDO}")
        if entry.dtype == _DT_BFLOAT16 and dtype == np.float32:
            return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(entry.shape)
        return raw.view(dtype).reshape(entry.shape)

    def _strings(self, name, path, raw, entry):
        """A string tensor: varint lengths, their masked crc32c, then the bytes.

        The entry's checksum covers each length as a little-endian uint32 (a
        uint64 past 4 GiB), the stored length checksum, and the bytes.
        """
        crc32c = _crc32c()
        buf = raw.tobytes()
        count = int(np.prod(entry.shape, dtype=np.int64))
        lengths, pos, crc = [], 0, 0
        try:
            for _ in range(count):
                length, pos = _read_varint(buf, pos)
                lengths.append(length)
                crc = crc32c.extend(crc, struct.pack("<I" if length < 1 << 32 else "<Q", length))
        except _FormatError:
            lengths = None
        if lengths is None or pos + 4 + sum(lengths) != len(buf) or \
                _mask(crc) != struct.unpack_from("<I", buf, pos)[0]:
            raise ValueError(f"checksum mismatch for variable {name!r} in data file {path!r}: "
                             f"the file is corrupt{_REDO}")
        crc = crc32c.extend(crc, buf[pos:pos + 4])
        pos += 4
        values = np.empty(count, dtype=object)
        for i, length in enumerate(lengths):
            values[i] = buf[pos:pos + length]
            pos += length
        crc = crc32c.extend(crc, buf[pos - sum(lengths):pos])
        if _mask(crc) != entry.crc32c:
            raise ValueError(f"checksum mismatch for variable {name!r} in data file {path!r}: "
                             f"the file is corrupt{_REDO}")
        return values.reshape(entry.shape)


# -------------------------------------------------------------------- writer
def _dtype_enum(dtype, name):
    if dtype.name == "bfloat16":
        return _DT_BFLOAT16
    enum = _ENUM_OF_NUMPY.get(dtype.newbyteorder("="))
    if enum is None:
        raise ValueError(f"variable {name!r} has dtype {dtype}, which a checkpoint cannot hold "
                         f"here; supported: bfloat16, {', '.join(sorted(map(str, _ENUM_OF_NUMPY)))}")
    return enum


def write_bundle(prefix, tensors, max_shard_bytes=None):
    """Write `tensors` as a TensorFlow V2 checkpoint at `prefix`.

    Writes `prefix.index` and `prefix.data-00000-of-0000N`, readable by
    `tf.train.load_checkpoint`, `BundleReader` and Google's BERT code. The
    files appear whole or not at all: each is written under a temporary name
    and renamed at the end, the index last.

    Args:
        prefix: checkpoint prefix; its folder is created if needed.
        tensors: dict of variable name to array (numpy, or anything
            `np.asarray` takes; `ml_dtypes.bfloat16` for bfloat16). Data is
            written in the dict's order.
        max_shard_bytes: start a new data shard when the current one would
            grow past this many bytes (a tensor larger than it gets a shard
            of its own). None writes a single shard.

    Returns:
        `prefix`.
    """
    prefix = os.fspath(prefix)
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise ValueError(f"`max_shard_bytes` must be a positive number of bytes or None, "
                         f"got {max_shard_bytes!r}")
    shards, size = [[]], 0
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name.startswith("\0"):
            raise ValueError(f"variable names must be non-empty strings not starting with "
                             f"a NUL character, got {name!r}")
        array = np.asarray(value)
        enum = _dtype_enum(array.dtype, name)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        if not array.flags.c_contiguous:  # (np.ascontiguousarray makes scalars 1-d)
            array = array.copy(order="C")
        if max_shard_bytes is not None and shards[-1] and size + array.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, enum, array))
        size += array.nbytes

    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    tag = ".tempstate" + uuid.uuid4().hex
    finals = [data_filename(prefix, i, len(shards)) for i in range(len(shards))]
    finals.append(prefix + ".index")
    temps = [path + tag for path in finals]
    crc32c = _crc32c()
    entries = {}
    try:
        for shard, (items, temp) in enumerate(zip(shards, temps)):
            offset = 0
            with open(temp, "wb") as f:
                for name, enum, array in items:
                    raw = array.reshape(-1).view(np.uint8)
                    crc = 0
                    for start in range(0, raw.size, _CHUNK):
                        chunk = raw[start:start + _CHUNK].tobytes()
                        crc = crc32c.extend(crc, chunk)
                        f.write(chunk)
                    entries[name.encode("utf-8")] = _encode_entry(
                        enum, array.shape, shard, offset, raw.size, _mask(crc))
                    offset += raw.size
        table = [(b"", _encode_header(len(shards)))] + sorted(entries.items())
        with open(temps[-1], "wb") as f:
            f.write(_build_table(table))
        for temp, final in zip(temps, finals):
            os.replace(temp, final)
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)
    return prefix
