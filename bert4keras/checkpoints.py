"""Checkpoint readers and writers with explicit name maps.

Every Keras weight of a model is declared as a `Variable`: its Keras layer and
weight name, its name in Google's TF1 checkpoints, its name in HF
checkpoints, and whether the array is transposed on the way. Loading
validates every variable (presence and shape) before assigning any, so a bad
checkpoint never half-loads. Optimizer slots (`adam_m`, `adam_v`,
`global_step`) are never requested, hence silently ignored.

Supported inputs: a Google checkpoint prefix (`bert_model.ckpt`, read with
TensorFlow), a `.safetensors` file, a sharded `model.safetensors.index.json`,
or an HF model directory holding either. Pickled PyTorch files are refused.
"""
import json
import os
from typing import NamedTuple, Optional

import numpy as np


class Variable(NamedTuple):
    """One Keras weight and its names in Google and HF checkpoints.

    Attributes:
        layer: Keras layer name (with the builder's prefix).
        weight: weight name inside the layer, e.g. 'q_dense/kernel'.
        google: Google TF1 variable name, or None if the format lacks it.
        hf: HF variable name (model prefix included), or None.
        google_transpose: the Google array is the transpose of the Keras one.
        hf_transpose: the HF array is the transpose (torch Linear layout).
        kind: 'vocab' (rows follow the vocabulary: keep_tokens and
            compound_tokens apply), 'position' (rows may be truncated to
            max_position) or None.
    """

    layer: str
    weight: str
    google: Optional[str]
    hf: Optional[str]
    google_transpose: bool = False
    hf_transpose: bool = False
    kind: Optional[str] = None

    @property
    def path(self):
        return f"{self.layer}/{self.weight}"


def _dense(layer, weight_prefix, google, hf, google_transpose=False):
    """Kernel and bias entries of a Dense layer (HF stores kernels transposed)."""
    w = weight_prefix + "/" if weight_prefix else ""
    return [
        Variable(layer, w + "kernel", google and google + "/kernel", hf and hf + ".weight",
                 google_transpose, True),
        Variable(layer, w + "bias", google and google + "/bias", hf and hf + ".bias"),
    ]


def _norm(layer, google, hf):
    return [
        Variable(layer, "gamma", google + "/gamma", hf and hf + ".weight"),
        Variable(layer, "beta", google + "/beta", hf and hf + ".bias"),
    ]


def bert_variable_mapping(builder):
    """Name map of a BERT or RoFormer builder (only layers the model has)."""
    p = builder.prefix
    hp = builder.model_type + "."  # 'bert.' or 'roformer.'
    g = "bert/"
    table = [
        Variable(p + "Embedding-Token", "embeddings", g + "embeddings/word_embeddings",
                 hp + "embeddings.word_embeddings.weight", kind="vocab"),
        Variable(p + "Embedding-Segment", "embeddings", g + "embeddings/token_type_embeddings",
                 hp + "embeddings.token_type_embeddings.weight"),
        Variable(p + "Embedding-Position", "embeddings", g + "embeddings/position_embeddings",
                 hp + "embeddings.position_embeddings.weight", kind="position"),
    ]
    table += _norm(p + "Embedding-Norm", g + "embeddings/LayerNorm", hp + "embeddings.LayerNorm")
    table += _dense(p + "Embedding-Mapping", "", g + "encoder/embedding_hidden_mapping_in",
                    hp + "embeddings_project")
    for i in range(builder.num_hidden_layers):
        gl = g + "encoder/layer_%d/" % i
        hl = hp + "encoder.layer.%d." % i
        attention = p + "Transformer-%d-MultiHeadSelfAttention" % i
        for sub, gname, hname in (
            ("q_dense", "attention/self/query", "attention.self.query"),
            ("k_dense", "attention/self/key", "attention.self.key"),
            ("v_dense", "attention/self/value", "attention.self.value"),
            ("o_dense", "attention/output/dense", "attention.output.dense"),
        ):
            table += _dense(attention, sub, gl + gname, hl + hname)
        table += _norm(attention + "-Norm", gl + "attention/output/LayerNorm",
                       hl + "attention.output.LayerNorm")
        ffn = p + "Transformer-%d-FeedForward" % i
        table += _dense(ffn, "i0", gl + "intermediate/dense", hl + "intermediate.dense")
        table += _dense(ffn, "o", gl + "output/dense", hl + "output.dense")
        table += _norm(ffn + "-Norm", gl + "output/LayerNorm", hl + "output.LayerNorm")
    table += _dense(p + "Pooler-Dense", "", g + "pooler/dense", hp + "pooler.dense")
    table += _dense(p + "NSP-Proba", "", None, "cls.seq_relationship")
    table[-2:] = [
        table[-2]._replace(google="cls/seq_relationship/output_weights", google_transpose=True),
        table[-1]._replace(google="cls/seq_relationship/output_bias"),
    ]
    table += _dense(p + "MLM-Dense", "", "cls/predictions/transform/dense",
                    "cls.predictions.transform.dense")
    table += _norm(p + "MLM-Norm", "cls/predictions/transform/LayerNorm",
                   "cls.predictions.transform.LayerNorm")
    table.append(Variable(p + "MLM-Bias", "bias", "cls/predictions/output_bias",
                          "cls.predictions.bias", kind="vocab"))
    present = {layer.name for layer in builder.model.layers}
    return [v for v in table if v.layer in present]


# ------------------------------------------------------------------- readers
class CheckpointReader:
    """Uniform read access: `names`, `shape(name)`, `get(name)`, `source`, `format`."""

    format = None

    def __init__(self, source):
        self.source = source

    def resolve(self, name):
        """The stored name for `name`, or None when absent."""
        return name if name in self.names else None


class GoogleCheckpointReader(CheckpointReader):
    """A TF1 checkpoint written by Google's BERT code (or `save_checkpoint`)."""

    format = "google"

    def __init__(self, prefix):
        super().__init__(prefix)
        import tensorflow as tf  # TensorFlow is the point here: TF checkpoint format.

        try:
            self._reader = tf.train.load_checkpoint(prefix)
        except (tf.errors.OpError, ValueError) as e:
            raise ValueError(f"cannot read TensorFlow checkpoint {prefix!r}: {e}") from None
        self._shapes = self._reader.get_variable_to_shape_map()
        self.names = set(self._shapes)

    def shape(self, name):
        return tuple(self._shapes[name])

    def get(self, name):
        return np.asarray(self._reader.get_tensor(name))


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
                    raise ValueError(f"malformed safetensors index {path!r}: {e}") from None
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
                raise ValueError(f"cannot read safetensors file {file!r}: {e}") from None
            self._handles[file] = handle
            for name in handle.keys():
                self._file_of[name] = file
        self.names = set(self._file_of)
        self._prefix_fallback = {}
        # sentence-transformers and bare `BertModel` saves drop the model prefix.
        for model_prefix in ("bert.", "roformer."):
            if not any(n.startswith(model_prefix) for n in self.names):
                self._prefix_fallback[model_prefix] = ""

    def resolve(self, name):
        candidates = [name]
        for model_prefix, replacement in self._prefix_fallback.items():
            if name.startswith(model_prefix):
                candidates.append(replacement + name[len(model_prefix):])
        for candidate in list(candidates):
            # Older HF checkpoints name LayerNorm parameters gamma/beta.
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
            f"no checkpoint found in directory {path!r} (expected model.safetensors, "
            f"model.safetensors.index.json or a single *.ckpt.index).{hint}"
        )
    if path.endswith((".safetensors", ".safetensors.index.json")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint file not found: {path!r}")
        return SafetensorsReader(path)
    if path.endswith((".bin", ".pt", ".pth", ".pkl")):
        raise ValueError(
            f"refusing to load {path!r}: pickled PyTorch files can run arbitrary code. "
            "Convert the weights to safetensors."
        )
    if path.endswith(".index"):
        path = path[: -len(".index")]
    if not os.path.isfile(path + ".index"):
        raise FileNotFoundError(
            f"checkpoint not found: {path!r} (expected a Google checkpoint prefix with "
            f"{path + '.index'!r}, a .safetensors file or an HF model directory)"
        )
    return GoogleCheckpointReader(path)


# ------------------------------------------------------------------ loading
def _check_model_type(builder, reader):
    """Refuse checkpoints of another architecture before any variable lookup."""
    source, mt = reader.source, builder.model_type
    if reader.format == "hf":
        for other in ("bert", "roformer"):
            if other != mt and any(n.startswith(other + ".") for n in reader.names):
                raise ValueError(
                    f"checkpoint {source!r} holds a {other!r} model (variables "
                    f"'{other}.*'), but model={mt!r} was built; pass model={other!r}"
                )
        has_positions = reader.resolve("bert.embeddings.position_embeddings.weight") is not None
    else:
        has_positions = "bert/embeddings/position_embeddings" in reader.names
    if mt == "roformer" and has_positions:
        raise ValueError(
            f"checkpoint {source!r} has absolute position embeddings, so it is a BERT "
            "checkpoint, not RoFormer; pass model='bert'"
        )


def _transformed_shape(builder, var, shape):
    """Shape of a stored array after `_transform`."""
    if var.kind == "vocab":
        rows = len(builder.keep_tokens) if builder.keep_tokens is not None else shape[0]
        return (rows + len(builder.compound_tokens or []),) + shape[1:]
    if var.kind == "position":
        return (min(shape[0], builder.max_position),) + shape[1:]
    return shape


def _transform(builder, var, array):
    if var.kind == "vocab":
        full = array
        if builder.keep_tokens is not None:
            array = full[builder.keep_tokens]
        if builder.compound_tokens:
            extra = np.stack([full[ids].mean(axis=0) for ids in builder.compound_tokens])
            array = np.concatenate([array, extra.astype(array.dtype)], axis=0)
    elif var.kind == "position":
        array = array[: builder.max_position]
    return array


def load_checkpoint(builder, checkpoint_path):
    """Load every mapped weight of `builder.model` from `checkpoint_path`.

    All variables are read and checked first; nothing is assigned unless all
    of them are present with the right shapes.
    """
    reader = open_checkpoint(checkpoint_path)
    _check_model_type(builder, reader)
    weights = {w.path: w for w in builder.model.weights}
    mapping = builder.variable_mapping()
    missing, problems, values = [], [], []
    for var in mapping:
        if var.path not in weights:
            raise RuntimeError(f"name map refers to unknown Keras weight {var.path!r}")
        target = weights[var.path]
        wanted = var.google if reader.format == "google" else var.hf
        name = reader.resolve(wanted) if wanted else None
        if name is None:
            missing.append(f"{wanted or '(no name in this format)'} -> {var.path} {tuple(target.shape)}")
            continue
        transpose = var.google_transpose if reader.format == "google" else var.hf_transpose
        stored = reader.shape(name)
        if transpose:
            stored = stored[::-1]
        if var.kind == "vocab" and stored[0] != builder.checkpoint_vocab_size:
            problems.append(
                f"variable {name!r} has {stored[0]} vocabulary rows, but the config "
                f"says vocab_size={builder.checkpoint_vocab_size}"
            )
            continue
        stored = _transformed_shape(builder, var, tuple(stored))
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
            f"cannot load checkpoint {reader.source!r} into {builder.model_type!r} model "
            f"{builder.model.name!r}; nothing was loaded.\n" + "\n".join(lines)
        )
    arrays = []
    for target, var, name, transpose in values:
        array = reader.get(name)
        if transpose:
            array = array.T
        arrays.append((target, _transform(builder, var, array)))
    for target, array in arrays:
        target.assign(array.astype(target.dtype))
    return builder.model


# ------------------------------------------------------------------ writing
def save_checkpoint(builder, checkpoint_path, config_path=None):
    """Write `builder.model`'s weights under Google's variable names.

    The files are `checkpoint_path + '.index'` and `.data-00000-of-00001`,
    readable by `tf.train.load_checkpoint`, Google's BERT code and
    `build_transformer_model`. With `config_path`, the Google-style config is
    written there too.
    """
    import tensorflow as tf  # TensorFlow is the point here: TF checkpoint format.

    weights = {w.path: w for w in builder.model.weights}
    names, tensors = [], []
    for var in builder.variable_mapping():
        if var.google is None:
            continue
        array = np.asarray(weights[var.path].numpy() if hasattr(weights[var.path], "numpy")
                           else weights[var.path].value)
        if var.google_transpose:
            array = array.T
        names.append(var.google)
        tensors.append(tf.constant(np.ascontiguousarray(array)))
    folder = os.path.dirname(os.path.abspath(checkpoint_path))
    os.makedirs(folder, exist_ok=True)
    tf.raw_ops.SaveV2(
        prefix=checkpoint_path,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=tensors,
    )
    if config_path is not None:
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(builder.google_config(), f, indent=2)
    return checkpoint_path
