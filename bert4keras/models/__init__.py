"""Transformer builders, one module per family, and the structure-driven helpers.

`build_transformer_model(config, checkpoint, model=NAME)` builds any
registered family (`model_names()`); a new family is one module with a
`Transformer` subclass registered with `@register(name)`.
"""
from bert4keras.models.base import (
    APPLICATIONS,
    MODELS,
    Structure,
    Transformer,
    TransformerModel,
    build_transformer_model,
    builder_of,
    model_names,
    register,
    structure_of,
)
from bert4keras.models.config import CONFIG_KEYS, read_config
from bert4keras.models.probes import AttentionProbabilities, attention_model, hidden_states_model
from bert4keras.models.bert import BERT
from bert4keras.models.roformer import RoFormer
from bert4keras.models.albert import ALBERT, ALBERTUnshared
from bert4keras.models.nezha import NEZHA
from bert4keras.models.electra import ELECTRA
from bert4keras.models.roformer_v2 import RoFormerV2
from bert4keras.models.gpt2 import GPT2, GPT2ML
from bert4keras.models.t5 import MT5, T5, T5v1_0

__all__ = [
    "APPLICATIONS", "CONFIG_KEYS", "MODELS", "AttentionProbabilities", "Structure", "Transformer",
    "TransformerModel", "attention_model", "build_transformer_model", "builder_of",
    "hidden_states_model", "model_names", "read_config", "register", "structure_of",
    "BERT", "RoFormer", "ALBERT", "ALBERTUnshared", "NEZHA", "ELECTRA", "RoFormerV2",
    "GPT2", "GPT2ML", "T5", "MT5", "T5v1_0",
]
