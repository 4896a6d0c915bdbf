"""BERT (and RoBERTa weights in BERT layout): learned absolute positions, post-LN.

Also the BERT checkpoint naming that other families reuse with other scopes
(`embedding_variables`, `block_variables`, `head_variables`).
"""
import keras

from bert4keras.checkpoints import Variable, dense_variables, norm_variables
from bert4keras.layers import Embedding, PositionEmbedding
from bert4keras.models.base import Transformer, register

# Sub-scopes of one block in Google's and HF's BERT checkpoints.
GOOGLE_BLOCK = {
    "q": "attention/self/query", "k": "attention/self/key", "v": "attention/self/value",
    "o": "attention/output/dense", "attention_norm": "attention/output/LayerNorm",
    "i": "intermediate/dense", "out": "output/dense", "ffn_norm": "output/LayerNorm",
}
HF_BLOCK = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "o": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
    "i": "intermediate.dense", "out": "output.dense", "ffn_norm": "output.LayerNorm",
}


def _scoped(scope, names, key):
    return scope + names[key] if scope is not None else None


def block_variables(builder, index, google, hf, google_names=GOOGLE_BLOCK, hf_names=HF_BLOCK,
                    bias=True, norms=True):
    """Name table of block `index` (attention, FFN and their norms).

    `google` and `hf` are the block's scopes (e.g. 'bert/encoder/layer_0/'),
    either None when the format lacks it; `*_names` give the sub-scopes.
    """
    p = builder.prefix
    attention = p + builder.block_name(index, "MultiHeadSelfAttention")
    ffn = p + builder.block_name(index, "FeedForward")
    g = lambda key: _scoped(google, google_names, key)  # noqa: E731
    h = lambda key: _scoped(hf, hf_names, key)  # noqa: E731
    table = []
    for sub, key in (("q_dense", "q"), ("k_dense", "k"), ("v_dense", "v"), ("o_dense", "o")):
        table += dense_variables(attention, sub, g(key), h(key), bias=bias)
    if norms:
        table += norm_variables(attention + "-Norm", g("attention_norm"), h("attention_norm"))
    table += dense_variables(ffn, "i0", g("i"), h("i"), bias=bias)
    table += dense_variables(ffn, "o", g("out"), h("out"), bias=bias)
    if norms:
        table += norm_variables(ffn + "-Norm", g("ffn_norm"), h("ffn_norm"))
    return table


def embedding_variables(builder, google, hf, google_mapping, hf_mapping):
    """Name table of the embedding stage; `google`/`hf` scope the embeddings."""
    p = builder.prefix
    table = [
        Variable(p + "Embedding-Token", "embeddings", google + "word_embeddings",
                 hf + "word_embeddings.weight", kind="vocab"),
        Variable(p + "Embedding-Segment", "embeddings", google + "token_type_embeddings",
                 hf + "token_type_embeddings.weight"),
        Variable(p + "Embedding-Position", "embeddings", google + "position_embeddings",
                 hf + "position_embeddings.weight", kind="position"),
    ]
    table += norm_variables(p + "Embedding-Norm", google + "LayerNorm", hf + "LayerNorm")
    table += dense_variables(p + "Embedding-Mapping", "", google_mapping, hf_mapping)
    return table


def head_variables(builder, pooler=("bert/pooler/dense", "bert.pooler.dense"),
                   mlm_dense=("cls/predictions/transform/dense", "cls.predictions.transform.dense"),
                   mlm_norm=("cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm"),
                   mlm_bias=("cls/predictions/output_bias", "cls.predictions.bias"),
                   optional_pooler=False):
    """Name table of the pooler, NSP and MLM heads; each scope is a (Google, HF) pair."""
    p = builder.prefix
    table = dense_variables(p + "Pooler-Dense", "", *pooler)
    if optional_pooler:
        table = [v._replace(optional=True) for v in table]
    table += [
        Variable(p + "NSP-Proba", "kernel", "cls/seq_relationship/output_weights",
                 "cls.seq_relationship.weight", True, True),
        Variable(p + "NSP-Proba", "bias", "cls/seq_relationship/output_bias", "cls.seq_relationship.bias"),
    ]
    table += dense_variables(p + "MLM-Dense", "", *mlm_dense)
    table += norm_variables(p + "MLM-Norm", *mlm_norm)
    table.append(Variable(p + "MLM-Bias", "bias", *mlm_bias, kind="vocab"))
    return table


def refuse_absolute_positions(builder, reader):
    """For families without a position table: refuse a BERT checkpoint."""
    if reader.format == "hf":
        found = reader.resolve("bert.embeddings.position_embeddings.weight", "bert.") is not None
    else:
        found = "bert/embeddings/position_embeddings" in reader.names
    if found:
        raise ValueError(
            f"checkpoint {reader.source!r} has absolute position embeddings, so it is a BERT "
            f"checkpoint, not {type(builder).__name__}; pass model='bert'"
        )


@register("bert", "roberta")
class BERT(Transformer):
    """BERT (and RoBERTa-style weights in BERT layout): learned positions."""

    model_type = "bert"
    hf_prefix = "bert."

    def apply_embeddings(self, inputs, position_ids=None):
        token_ids, segment_ids = inputs
        x = self.apply(
            token_ids,
            Embedding,
            "Embedding-Token",
            input_dim=self.vocab_size,
            output_dim=self.embedding_size,
            embeddings_initializer=self.initializer,
        )
        if self.segment_vocab_size > 0:
            s = self.apply(
                segment_ids,
                Embedding,
                "Embedding-Segment",
                input_dim=self.segment_vocab_size,
                output_dim=self.embedding_size,
                embeddings_initializer=self.initializer,
            )
            x = self.apply([x, s], keras.layers.Add, "Embedding-Token-Segment")
        x = self.apply_position_embeddings(x, position_ids)
        x = self.norm(x, "Embedding-Norm")
        x = self.apply(x, keras.layers.Dropout, "Embedding-Dropout", rate=self.dropout_rate)
        return self.apply_embedding_mapping(x)

    def apply_embedding_mapping(self, x, **kwargs):
        if self.embedding_size == self.hidden_size:
            return x
        return self.apply(x, keras.layers.Dense, "Embedding-Mapping", units=self.hidden_size,
                          kernel_initializer=self.initializer, **kwargs)

    def apply_position_embeddings(self, x, position_ids=None):
        return self.apply(
            x,
            PositionEmbedding,
            "Embedding-Position",
            arguments=None if position_ids is None else {"position_ids": position_ids},
            input_dim=self.max_position,
            output_dim=self.embedding_size,
            merge_mode="add",
            embeddings_initializer=self.initializer,
        )

    def variable_mapping(self):
        g, h = "bert/", self.hf_prefix
        table = embedding_variables(self, g + "embeddings/", h + "embeddings.",
                                    g + "encoder/embedding_hidden_mapping_in", h + "embeddings_project")
        for i in range(self.num_hidden_layers):
            table += block_variables(self, i, g + "encoder/layer_%d/" % i, h + "encoder.layer.%d." % i)
        table += head_variables(self, pooler=(g + "pooler/dense", h + "pooler.dense"))
        return self.present(table)

    def check_checkpoint(self, reader):
        super().check_checkpoint(reader)
        if reader.format == "google" and any(n.startswith("bert/encoder/transformer/") for n in reader.names):
            raise ValueError(
                f"checkpoint {reader.source!r} holds one shared block (ALBERT names "
                "'bert/encoder/transformer/...'); pass model='albert' or 'albert_unshared'"
            )
