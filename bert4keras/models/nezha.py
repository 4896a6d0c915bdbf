"""NEZHA: BERT with functional relative positions in every attention."""
from bert4keras.models.base import register
from bert4keras.models.bert import BERT, refuse_absolute_positions


@register("nezha")
class NEZHA(BERT):
    """Huawei's NEZHA: no absolute position table; each attention adds
    computed sinusoidal features of the clipped distance `j - i` to its keys
    and values (`MultiHeadAttention(max_relative_position=...)`).

    Loads Huawei's `bert/...` checkpoints (which hold no position variable).

    Args:
        max_relative_position: distances are clipped at this value (config
            key `max_relative_position`, default 64 as in the release).
        **kwargs: see `Transformer`.
    """

    model_type = "nezha"
    hf_prefix = "nezha."
    config_keys = {"max_relative_position": "max_relative_position"}
    absolute_positions = False

    def __init__(self, *args, max_relative_position=64, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_relative_position = max_relative_position

    def apply_position_embeddings(self, x, position_ids=None):
        return x

    def attention_arguments(self):
        return {"max_relative_position": self.max_relative_position}

    def check_checkpoint(self, reader):
        super().check_checkpoint(reader)
        refuse_absolute_positions(self, reader)
