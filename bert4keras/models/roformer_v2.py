"""RoFormer-v2: RoFormer without biases and with parameter-free RMS norms."""
import keras

from bert4keras.checkpoints import Variable
from bert4keras.layers import Embedding
from bert4keras.models.base import register
from bert4keras.models.bert import block_variables, head_variables
from bert4keras.models.roformer import RoFormer


@register("roformer_v2")
class RoFormerV2(RoFormer):
    """Zhuiyi's RoFormer-v2: rotary attention, no bias anywhere, and norms
    `x / sqrt(mean(x^2) + eps)` with neither scale nor offset.

    The embeddings are dropped out before their norm. The MLM head is the
    tied token embedding alone (after `Output-Mapping` when
    `embedding_size != hidden_size`), with no transform and no bias.
    `layer_norm_eps` defaults to 1e-7, the value the release was trained
    with (bert4keras' `K.epsilon()`). A pooler, which the release lacks,
    starts from its initialiser.
    """

    model_type = "roformer_v2"
    hf_prefix = ""
    default_layer_norm_eps = 1e-7

    def norm_arguments(self):
        return {"epsilon": self.layer_norm_eps, "zero_mean": False, "center": False, "scale": False}

    def attention_arguments(self):
        return dict(super().attention_arguments(), use_bias=False)

    def feedforward_arguments(self):
        return {"use_bias": False}

    def apply_embeddings(self, inputs, position_ids=None):
        token_ids, segment_ids = inputs
        x = self.apply(token_ids, Embedding, "Embedding-Token", input_dim=self.vocab_size,
                       output_dim=self.embedding_size, embeddings_initializer=self.initializer)
        if self.segment_vocab_size > 0:
            s = self.apply(segment_ids, Embedding, "Embedding-Segment", input_dim=self.segment_vocab_size,
                           output_dim=self.embedding_size, embeddings_initializer=self.initializer)
            x = self.apply([x, s], keras.layers.Add, "Embedding-Token-Segment")
        x = self.apply(x, keras.layers.Dropout, "Embedding-Dropout", rate=self.dropout_rate)
        x = self.norm(x, "Embedding-Norm")
        return self.apply_embedding_mapping(x, use_bias=False)

    def apply_mlm_head(self, x):
        activation = "softmax" if self.with_mlm is True else self.with_mlm
        return self.apply(self.mlm_logits(x), keras.layers.Activation, "Output-MLM-Activation",
                          activation=activation, dtype="float32")

    def mlm_logits(self, x):
        if self.embedding_size != self.hidden_size:
            x = self.apply(x, keras.layers.Dense, "Output-Mapping", units=self.embedding_size,
                           use_bias=False, kernel_initializer=self.initializer)
        x = self.apply(x, keras.layers.Dropout, "Output-MLM-Dropout", rate=self.dropout_rate)
        return self.apply(x, Embedding, "Embedding-Token", arguments={"reverse": True})

    def variable_mapping(self):
        p = self.prefix
        table = [
            Variable(p + "Embedding-Token", "embeddings", "bert/embeddings/word_embeddings", None, kind="vocab"),
            Variable(p + "Embedding-Segment", "embeddings", "bert/embeddings/token_type_embeddings", None),
            Variable(p + "Embedding-Mapping", "kernel", "bert/encoder/embedding_hidden_mapping_in/kernel", None),
            Variable(p + "Output-Mapping", "kernel", "cls/predictions/transform/dense/kernel", None,
                     optional=True),
        ]
        for i in range(self.num_hidden_layers):
            table += block_variables(self, i, "bert/encoder/layer_%d/" % i, None, bias=False, norms=False)
        table += head_variables(self, pooler=("bert/pooler/dense", None), optional_pooler=True)
        return self.present(table)

    def check_checkpoint(self, reader):
        super().check_checkpoint(reader)
        if reader.format == "google" and "bert/encoder/layer_0/attention/self/query/bias" in reader.names:
            raise ValueError(
                f"checkpoint {reader.source!r} has attention biases, so it is a RoFormer (v1) "
                "checkpoint, not RoFormer-v2; pass model='roformer'"
            )
