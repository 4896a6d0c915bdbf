"""Checkpoint readers and writers with explicit name maps.

Every Keras weight of a model is declared as a `Variable`: its Keras layer and
weight name, its name in Google's TF1 checkpoints, its name in HF
checkpoints, and whether the array is transposed on the way. Loading
validates every variable (presence and shape) before assigning any, so a bad
checkpoint never half-loads. Optimizer slots (`adam_m`, `adam_v`,
`global_step`) are never requested, hence silently ignored.

The name table comes from the model's family (`bert4keras.models`); this
module knows no family. Supported inputs: a Google checkpoint prefix
(`bert_model.ckpt`, read and written by `bert4keras.tf_checkpoint` in numpy,
no TensorFlow), a `.safetensors` file, a sharded
`model.safetensors.index.json`, or an HF model directory holding either.
Pickled PyTorch files are refused.
"""
import json
import os
from typing import NamedTuple, Optional, Union

import keras
import numpy as np


class Variable(NamedTuple):
    """One Keras weight and its names in Google and HF checkpoints.

    Attributes:
        layer: Keras layer name (with the builder's prefix).
        weight: weight name inside the layer, e.g. 'q_dense/kernel'.
        google: Google TF1 variable name, or None if the format lacks it; a
            tuple lists candidates, the first found is loaded and the first
            is the one written.
        hf: HF variable name (model prefix included), or None; a tuple
            lists candidates as for `google`.
        google_transpose: the Google array is the transpose of the Keras one.
        hf_transpose: the HF array is the transpose (torch Linear layout).
        kind: 'vocab' (rows follow the vocabulary: keep_tokens and
            compound_tokens apply), 'position' (rows may be truncated to
            max_position) or None.
        optional: a head that released checkpoints of the family lack (e.g.
            a pooler on ELECTRA): loaded when present, else left as
            initialised, like any new task head; always written.
    """

    layer: str
    weight: str
    google: Union[str, tuple, None]
    hf: Union[str, tuple, None]
    google_transpose: bool = False
    hf_transpose: bool = False
    kind: Optional[str] = None
    optional: bool = False

    @property
    def path(self):
        return f"{self.layer}/{self.weight}"


class NameTable(NamedTuple):
    """Everything the loader and writer need to know about one model.

    Attributes:
        variables: the `Variable` entries, one per Keras weight.
        hf_prefix: the model prefix of HF names (e.g. 'bert.'); bare saves
            that drop it (sentence-transformers, `BertModel`) load too.
        vocab_size: rows of 'vocab' variables in the checkpoint.
        keep_tokens: checkpoint rows to keep, in order (None: all).
        compound_tokens: lists of checkpoint rows whose mean makes each extra
            row appended after the kept vocabulary.
        max_position: 'position' variables are cut to this many rows.
        description: how errors name the model, e.g. "'bert' model 'bert'".
    """

    variables: list
    hf_prefix: str = ""
    vocab_size: Optional[int] = None
    keep_tokens: Optional[list] = None
    compound_tokens: Optional[list] = None
    max_position: Optional[int] = None
    description: str = "model"


def dense_variables(layer, weight_prefix, google, hf, google_transpose=False, bias=True):
    """Kernel (and bias) entries of a Dense layer (HF stores kernels transposed).

    `google` and `hf` are the variable scopes ('.../kernel' and '.weight' are
    appended); either may be None when the format lacks the layer.
    """
    w = weight_prefix + "/" if weight_prefix else ""
    table = [Variable(layer, w + "kernel", google and google + "/kernel", hf and hf + ".weight",
                      google_transpose, True)]
    if bias:
        table.append(Variable(layer, w + "bias", google and google + "/bias", hf and hf + ".bias"))
    return table


def norm_variables(layer, google, hf):
    """Gamma and beta entries of a LayerNorm (`google`/`hf` scopes may be None)."""
    return [
        Variable(layer, "gamma", google and google + "/gamma", hf and hf + ".weight"),
        Variable(layer, "beta", google and google + "/beta", hf and hf + ".bias"),
    ]


# ------------------------------------------------------------------- readers
class CheckpointReader:
    """Uniform read access: `names`, `shape(name)`, `get(name)`, `source`, `format`."""

    format = None

    def __init__(self, source):
        self.source = source

    def resolve(self, name, hf_prefix=""):
        """The stored name for `name`, or None when absent."""
        return name if name in self.names else None


class GoogleCheckpointReader(CheckpointReader):
    """A TF1 checkpoint written by Google's BERT code (or `save_checkpoint`)."""

    format = "google"

    def __init__(self, prefix):
        super().__init__(prefix)
        from bert4keras.tf_checkpoint import BundleReader  # numpy only, no TensorFlow

        self._reader = BundleReader(prefix)  # errors name the file (and variable)
        self.names = self._reader.names

    def shape(self, name):
        return self._reader.shape(name)

    def get(self, name):
        return self._reader.get(name)


class SafetensorsReader(CheckpointReader):
    """One or several (sharded) `.safetensors` files in HF naming."""

    format = "hf"

    def __init__(self, path):
        super().__init__(path)
        from safetensors import safe_open

        if path.endswith(".index.json"):
            with open(path, encoding="utf-8") as f:
                try:
                    weight_map = json.load(f)["weight_map"]
                except (json.JSONDecodeError, KeyError) as e:
                    raise ValueError(
                        f"safetensors index {path!r}: the file must be JSON with a "
                        f"'weight_map', got {type(e).__name__}: {e}; re-download or "
                        "rewrite the index"
                    ) from None
            folder = os.path.dirname(path)
            files = {name: os.path.join(folder, shard) for name, shard in weight_map.items()}
        else:
            files = None
        self._handles = {}
        self._file_of = {}
        for file in sorted(set(files.values())) if files else [path]:
            try:
                handle = safe_open(file, framework="numpy")
            except Exception as e:  # noqa: BLE001 - the library raises several types
                raise ValueError(
                    f"safetensors file {file!r} must be readable, got: {e}; check that "
                    "it is complete (re-download or re-convert it)"
                ) from None
            self._handles[file] = handle
            for name in handle.keys():
                self._file_of[name] = file
        self.names = set(self._file_of)

    def resolve(self, name, hf_prefix=""):
        """The stored name for `name`, trying the usual HF naming variants.

        Bare saves (sentence-transformers, `BertModel`) drop the model prefix
        `hf_prefix`; older checkpoints name LayerNorm parameters gamma/beta.
        """
        candidates = [name]
        if hf_prefix and name.startswith(hf_prefix) and not any(
                n.startswith(hf_prefix) for n in self.names):
            candidates.append(name[len(hf_prefix):])
        for candidate in list(candidates):
            if "LayerNorm.weight" in candidate:
                candidates.append(candidate.replace("LayerNorm.weight", "LayerNorm.gamma"))
            if "LayerNorm.bias" in candidate:
                candidates.append(candidate.replace("LayerNorm.bias", "LayerNorm.beta"))
        for candidate in candidates:
            if candidate in self.names:
                return candidate
        return None

    def shape(self, name):
        return tuple(self._handles[self._file_of[name]].get_slice(name).get_shape())

    def get(self, name):
        return self._handles[self._file_of[name]].get_tensor(name)


def open_checkpoint(path):
    """Open `path` as a Google or safetensors checkpoint, with clear errors."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for candidate in ("model.safetensors", "model.safetensors.index.json"):
            if os.path.isfile(os.path.join(path, candidate)):
                return SafetensorsReader(os.path.join(path, candidate))
        indexes = sorted(f for f in os.listdir(path) if f.endswith(".ckpt.index"))
        if len(indexes) == 1:
            return GoogleCheckpointReader(os.path.join(path, indexes[0][: -len(".index")]))
        pickles = [f for f in os.listdir(path) if f.endswith((".bin", ".pt", ".pth"))]
        hint = (
            f" It holds {pickles}: pickled PyTorch files are never loaded; convert "
            "them to safetensors first." if pickles else ""
        )
        raise FileNotFoundError(
            f"`checkpoint_path` must be a directory holding model.safetensors, "
            f"model.safetensors.index.json or a single *.ckpt.index, got {path!r}, "
            f"which holds none of them.{hint}"
        )
    if path.endswith((".safetensors", ".safetensors.index.json")):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"`checkpoint_path` must be an existing file, got {path!r}, which does "
                "not exist; check the path"
            )
        return SafetensorsReader(path)
    if path.endswith((".bin", ".pt", ".pth", ".pkl")):
        raise ValueError(
            f"`checkpoint_path` must be a safetensors file or a Google checkpoint, got "
            f"{path!r}; refusing to load it: pickled PyTorch files can run arbitrary "
            "code. Convert the weights to safetensors."
        )
    if path.endswith(".index"):
        path = path[: -len(".index")]
    if not os.path.isfile(path + ".index"):
        raise FileNotFoundError(
            f"`checkpoint_path` must be a Google checkpoint prefix (with "
            f"{path + '.index'!r}), a .safetensors file or an HF model directory, got "
            f"{path!r}, which is none of them; check the path"
        )
    return GoogleCheckpointReader(path)


# ------------------------------------------------------------------ loading
def _transformed_shape(table, var, shape):
    """Shape of a stored array after `_transform`."""
    if var.kind == "vocab":
        rows = len(table.keep_tokens) if table.keep_tokens is not None else shape[0]
        return (rows + len(table.compound_tokens or []),) + shape[1:]
    if var.kind == "position" and table.max_position is not None:
        return (min(shape[0], table.max_position),) + shape[1:]
    return shape


def _transform(table, var, array):
    if var.kind == "vocab":
        full = array
        if table.keep_tokens is not None:
            array = full[table.keep_tokens]
        if table.compound_tokens:
            extra = np.stack([full[ids].mean(axis=0) for ids in table.compound_tokens])
            array = np.concatenate([array, extra.astype(array.dtype)], axis=0)
    elif var.kind == "position" and table.max_position is not None:
        array = array[: table.max_position]
    return array


def _candidates(names):
    if names is None:
        return ()
    return (names,) if isinstance(names, str) else tuple(names)


def _weights_by_path(model):
    return {w.path: w for w in model.weights}


def load_checkpoint(model, table, checkpoint_path):
    """Load every variable of `table` into `model`'s weights.

    Args:
        model: the Keras model holding the weights named in `table`.
        table: a `NameTable`.
        checkpoint_path: a path for `open_checkpoint`, or an open reader.

    All variables are read and checked first; nothing is assigned unless all
    of them are present with the right shapes. A missing or misfit variable
    is named, with its expected shape and the file.
    """
    reader = checkpoint_path if isinstance(checkpoint_path, CheckpointReader) \
        else open_checkpoint(checkpoint_path)
    weights = _weights_by_path(model)
    missing, problems, values = [], [], []
    for var in table.variables:
        if var.path not in weights:
            raise RuntimeError(
                f"{table.description}: the name table's Keras weights must exist in the "
                f"model, got {var.path!r}, which does not; fix the family's name table"
            )
        target = weights[var.path]
        wanted = _candidates(var.google if reader.format == "google" else var.hf)
        name = next((n for n in (reader.resolve(w, table.hf_prefix) for w in wanted) if n), None)
        if name is None:
            if var.optional:
                continue
            shown = " or ".join(wanted) if wanted else "(no name in this format)"
            missing.append(f"{shown} -> {var.path} {tuple(target.shape)}")
            continue
        transpose = var.google_transpose if reader.format == "google" else var.hf_transpose
        stored = reader.shape(name)
        if transpose:
            stored = stored[::-1]
        if var.kind == "vocab" and table.vocab_size is not None and stored[0] != table.vocab_size:
            problems.append(
                f"variable {name!r} has {stored[0]} vocabulary rows, but the config "
                f"says vocab_size={table.vocab_size}"
            )
            continue
        stored = _transformed_shape(table, var, tuple(stored))
        if tuple(stored) != tuple(target.shape):
            problems.append(
                f"variable {name!r} has shape {reader.shape(name)}"
                f"{' (as Keras weight: ' + str(tuple(stored)) + ')' if transpose else ''}, "
                f"but Keras weight {var.path} expects {tuple(target.shape)}"
            )
            continue
        values.append((target, var, name, transpose))
    if missing or problems:
        lines = []
        if missing:
            lines.append(f"{len(missing)} variable(s) missing:")
            lines += ["  " + m for m in missing[:20]]
            if len(missing) > 20:
                lines.append(f"  ... and {len(missing) - 20} more")
        if problems:
            lines.append(f"{len(problems)} variable(s) do not fit:")
            lines += ["  " + m for m in problems[:20]]
        raise ValueError(
            f"`checkpoint_path` must hold every variable of {table.description} in "
            f"its shape, got {reader.source!r}, which does not; nothing was loaded. "
            "Pass the checkpoint and config of this family and size.\n" + "\n".join(lines)
        )
    arrays = []
    for target, var, name, transpose in values:
        array = reader.get(name)
        if transpose:
            array = array.T
        arrays.append((target, _transform(table, var, array)))
    for target, array in arrays:
        target.assign(array.astype(target.dtype))
    return model


# ------------------------------------------------------------------ writing
def checkpoint_arrays(model, table):
    """`{google_name: array}` of `model`'s weights, as `save_checkpoint` writes them.

    A name that several Keras weights map to (a shared block loaded into
    separate layers) must hold equal arrays, else a `ValueError` names it.
    """
    weights = _weights_by_path(model)
    arrays = {}
    for var in table.variables:
        names = _candidates(var.google)
        if not names:
            continue
        array = np.asarray(keras.ops.convert_to_numpy(weights[var.path].value))
        if var.google_transpose:
            array = array.T
        name = names[0]
        if name in arrays and not np.array_equal(arrays[name], array):
            raise ValueError(
                f"checkpoint variable {name!r}: the Keras weights it stands for must be "
                f"equal, got different arrays (one of them is {var.path}); this layout "
                "cannot store them, so tie the weights or save with another table"
            )
        arrays[name] = np.ascontiguousarray(array)
    return arrays


def save_checkpoint(model, table, checkpoint_path):
    """Write `model`'s weights under the Google names of `table`.

    The files are `checkpoint_path + '.index'` and `.data-00000-of-00001`,
    readable by `tf.train.load_checkpoint`, Google's code and `load_checkpoint`.
    """
    from bert4keras.tf_checkpoint import write_bundle  # numpy only, no TensorFlow

    return write_bundle(checkpoint_path, checkpoint_arrays(model, table))
