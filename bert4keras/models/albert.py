"""ALBERT: factorised embeddings and one block shared by every layer."""
from bert4keras.models.base import register
from bert4keras.models.bert import BERT, block_variables, embedding_variables, head_variables

GOOGLE_SHARED = "bert/encoder/transformer/group_0/inner_group_0/"
GOOGLE_BLOCK = {
    "q": "attention_1/self/query", "k": "attention_1/self/key", "v": "attention_1/self/value",
    "o": "attention_1/output/dense", "attention_norm": "LayerNorm",
    "i": "ffn_1/intermediate/dense", "out": "ffn_1/intermediate/output/dense", "ffn_norm": "LayerNorm_1",
}
HF_SHARED = "albert.encoder.albert_layer_groups.0.albert_layers.0."
HF_BLOCK = {
    "q": "attention.query", "k": "attention.key", "v": "attention.value",
    "o": "attention.dense", "attention_norm": "attention.LayerNorm",
    "i": "ffn", "out": "ffn_output", "ffn_norm": "full_layer_layer_norm",
}


@register("albert")
class ALBERT(BERT):
    """ALBERT: the embeddings (`embedding_size` wide) are mapped to the hidden
    size, and one block (`Transformer-MultiHeadSelfAttention`, ...) runs
    `num_hidden_layers` times.

    Loads Google's and brightmart's `albert_model.ckpt` and HF `AlbertModel`
    / `AlbertForMaskedLM` (`predictions.*` head). Only the released layout
    with one group of one layer (`num_hidden_groups = inner_group_num = 1`)
    is supported. Under `layerwise_lr_decay` the shared block gets the
    multiplier of the top block.
    """

    model_type = "albert"
    hf_prefix = "albert."
    config_keys = {"num_hidden_groups": "num_hidden_groups", "inner_group_num": "inner_group_num"}

    def __init__(self, *args, num_hidden_groups=1, inner_group_num=1, **kwargs):
        if num_hidden_groups != 1 or inner_group_num != 1:
            raise ValueError(
                "num_hidden_groups and inner_group_num must be 1 (the released ALBERT layout), "
                f"got {num_hidden_groups} and {inner_group_num}"
            )
        super().__init__(*args, **kwargs)
        self.num_hidden_groups = num_hidden_groups
        self.inner_group_num = inner_group_num

    def block_name(self, index, part):
        return "Transformer-%s" % part

    def shared_block_variables(self, index):
        return block_variables(self, index, GOOGLE_SHARED, HF_SHARED, GOOGLE_BLOCK, HF_BLOCK)

    def variable_mapping(self):
        table = embedding_variables(self, "bert/embeddings/", "albert.embeddings.",
                                    "bert/encoder/embedding_hidden_mapping_in",
                                    "albert.encoder.embedding_hidden_mapping_in")
        table += self.shared_block_variables(0)
        table += head_variables(
            self, pooler=("bert/pooler/dense", "albert.pooler"),
            mlm_dense=("cls/predictions/transform/dense", "predictions.dense"),
            mlm_norm=("cls/predictions/transform/LayerNorm", "predictions.LayerNorm"),
            mlm_bias=("cls/predictions/output_bias", "predictions.bias"),
        )
        return self.present(table)

    def check_checkpoint(self, reader):
        # BERT's refusal of shared-block names does not apply here.
        super(BERT, self).check_checkpoint(reader)


@register("albert_unshared")
class ALBERTUnshared(ALBERT):
    """ALBERT's checkpoint loaded into separate per-layer weights (BERT names).

    Every layer starts from the shared block, and can then be fine-tuned on
    its own. `save_weights_as_checkpoint` writes per-layer BERT names
    (`bert/encoder/layer_%d/...`), which this family (and `model='bert'`
    with the same sizes) loads back.
    """

    model_type = "albert_unshared"

    def block_name(self, index, part):
        return BERT.block_name(self, index, part)

    def shared_block_variables(self, index):
        return []

    def variable_mapping(self):
        table = super().variable_mapping()
        for i in range(self.num_hidden_layers):
            per_layer = block_variables(self, i, "bert/encoder/layer_%d/" % i, None)
            shared = block_variables(self, i, GOOGLE_SHARED, HF_SHARED, GOOGLE_BLOCK, HF_BLOCK)
            table += [v._replace(google=(v.google, s.google), hf=s.hf) for v, s in zip(per_layer, shared)]
        return table
