"""ELECTRA: a BERT encoder with the replaced-token discriminator head."""
import keras

from bert4keras.backend import get_activation
from bert4keras.checkpoints import dense_variables
from bert4keras.models.base import register
from bert4keras.models.bert import BERT, block_variables, embedding_variables, head_variables


@register("electra")
class ELECTRA(BERT):
    """ELECTRA's encoder, from Google's `electra/...` or HF `electra.*` names.

    An encoder only: `application` other than 'encoder' raises.

    Args:
        with_discriminator: add the discriminator head
            (`Discriminator-Dense`, `Discriminator-Prediction`): True returns
            each token's replaced-token probability (sigmoid), 'linear' its
            logit, shape (batch, length, 1).
        **kwargs: see `Transformer`. `with_mlm` is the generator's MLM head
            (`generator_predictions/*`), for generator checkpoints.
            `with_pool` adds a pooler that released checkpoints lack: it
            starts from its initialiser, like a task head.
    """

    model_type = "electra"
    hf_prefix = "electra."
    applications = ("encoder",)

    def __init__(self, *args, with_discriminator=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.with_discriminator = with_discriminator

    def apply_final_layers(self, x):
        outputs = super().apply_final_layers(x)
        if not self.with_discriminator:
            return outputs
        outputs = outputs if isinstance(outputs, list) else [outputs]
        return outputs + [self.head("discriminator", x)]

    def apply_discriminator_head(self, x):
        x = self.apply(x, keras.layers.Dense, "Discriminator-Dense", units=self.hidden_size,
                       activation=get_activation(self.hidden_act), kernel_initializer=self.initializer)
        activation = "sigmoid" if self.with_discriminator is True else self.with_discriminator
        return self.apply(x, keras.layers.Dense, "Discriminator-Prediction", units=1,
                          activation=activation, kernel_initializer=self.initializer, dtype="float32")

    def mlm_activation(self):
        # The generator head's activation is the exact GELU whatever
        # `hidden_act` says (transformers' ElectraGeneratorPredictions).
        return get_activation("gelu")

    def variable_mapping(self):
        g, h = "electra/", "electra."
        table = embedding_variables(self, g + "embeddings/", h + "embeddings.",
                                    g + "embeddings_project", h + "embeddings_project")
        for i in range(self.num_hidden_layers):
            table += block_variables(self, i, g + "encoder/layer_%d/" % i, h + "encoder.layer.%d." % i)
        table += head_variables(
            self, pooler=(g + "pooler/dense", h + "pooler.dense"),
            mlm_dense=("generator_predictions/dense", "generator_predictions.dense"),
            mlm_norm=("generator_predictions/LayerNorm", "generator_predictions.LayerNorm"),
            mlm_bias=("generator_predictions/output_bias", "generator_lm_head.bias"),
            optional_pooler=True,
        )
        p = self.prefix
        table += dense_variables(p + "Discriminator-Dense", "", "discriminator_predictions/dense",
                                 "discriminator_predictions.dense")
        table += dense_variables(p + "Discriminator-Prediction", "", "discriminator_predictions/dense_1",
                                 "discriminator_predictions.dense_prediction")
        return self.present(table)
