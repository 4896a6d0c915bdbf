"""RoFormer: BERT with rotary position embedding inside every attention."""
from bert4keras.models.base import register
from bert4keras.models.bert import BERT, refuse_absolute_positions


@register("roformer")
class RoFormer(BERT):
    """RoFormer: no absolute positions; queries and keys are rotated.

    Rotation is on interleaved pairs, as in the original RoFormer.

    Args:
        rotary_value: also rotate the attention values.
        **kwargs: see `Transformer`.
    """

    model_type = "roformer"
    hf_prefix = "roformer."
    config_keys = {"rotary_value": "rotary_value"}
    absolute_positions = False

    def __init__(self, *args, rotary_value=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.rotary_value = rotary_value

    def apply_position_embeddings(self, x, position_ids=None):
        return x

    def attention_arguments(self):
        return {"rotary": True, "rotary_value": self.rotary_value}

    def check_checkpoint(self, reader):
        super().check_checkpoint(reader)
        refuse_absolute_positions(self, reader)
