"""Test helpers independent of the library's own name maps."""
import re

import numpy as np


def hf_to_google_name(name, model_prefix="bert"):
    """Google TF1 name (and whether to transpose) for an HF parameter name.

    Written from Google's published naming with plain string rules, so the
    loader's explicit map is checked against an independent translation.
    Returns None for parameters Google checkpoints do not hold.
    """
    if name.startswith(model_prefix + "."):
        name = name[len(model_prefix) + 1:]
    if name.endswith("position_ids") or name.startswith("cls.predictions.decoder") \
            or name.startswith("encoder.embed_positions"):
        return None
    if name == "cls.predictions.bias":
        return "cls/predictions/output_bias", False
    if name.startswith("cls.seq_relationship."):
        leaf = "output_weights" if name.endswith("weight") else "output_bias"
        return "cls/seq_relationship/" + leaf, False
    if name.startswith("embeddings_project."):
        name = name.replace("embeddings_project", "encoder.embedding_hidden_mapping_in")
    transpose = False
    if re.search(r"LayerNorm\.weight$", name):
        name = name[: -len("weight")] + "gamma"
    elif re.search(r"LayerNorm\.bias$", name):
        name = name[: -len("bias")] + "beta"
    elif name.endswith("_embeddings.weight"):
        name = name[: -len(".weight")]
    elif name.endswith(".weight"):
        name = name[: -len("weight")] + "kernel"
        transpose = True
    name = re.sub(r"layer\.(\d+)", r"layer_\1", name).replace(".", "/")
    if not name.startswith("cls/"):
        name = "bert/" + name
    return name, transpose


def write_google_checkpoint(arrays, prefix, model_prefix="bert", optimizer_slots=True):
    """Write HF-named numpy arrays as a Google TF1 checkpoint at `prefix`."""
    import tensorflow as tf

    names, tensors = [], []
    for hf_name, array in sorted(arrays.items()):
        converted = hf_to_google_name(hf_name, model_prefix)
        if converted is None:
            continue
        name, transpose = converted
        value = np.ascontiguousarray(array.T if transpose else array)
        names.append(name)
        tensors.append(tf.constant(value))
        if optimizer_slots:  # Adam slots as Google's pretraining leaves them
            for slot in ("adam_m", "adam_v"):
                names.append(name + "/" + slot)
                tensors.append(tf.constant(np.zeros_like(value)))
    if optimizer_slots:
        names.append("global_step")
        tensors.append(tf.constant(np.int64(1000)))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=tensors)
    return prefix
