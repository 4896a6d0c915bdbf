"""Probes over a built model, driven by its `Structure`: every block's hidden
states (`hidden_states_model`) and one block's attention probabilities
(`attention_model`). They share the model's layers and weights."""
import keras

from bert4keras.models.base import builder_of


def hidden_states_model(model, prefix=None):
    """A model returning the embedding output and every block's output.

    It shares layers and weights with `model` (nothing is rebuilt or
    copied), and works for every family, shared blocks included (ALBERT).
    `prefix` is accepted for compatibility and unused: the model's
    structure knows its layer names.

    Example:
    ```python
    states = hidden_states_model(bert).predict([token_ids, segment_ids])
    # states[0]: embeddings; states[i + 1]: output of block i
    ```
    """
    builder = builder_of(model)
    structure = builder.structure
    outputs = [structure.embedding_output] + list(structure.block_outputs)
    return keras.Model(builder.model.inputs, outputs, name=builder.model.name + "-hidden-states")


@keras.saving.register_keras_serializable(package="bert4keras")
class AttentionProbabilities(keras.layers.Layer):
    """Returns the attention probabilities of a wrapped `MultiHeadAttention`.

    Shares the wrapped layer (and its weights); used by `attention_model`.
    A layer of its own because a Keras layer's number of outputs is fixed by
    its first call.

    Args:
        attention: the `MultiHeadAttention` layer to probe.
    """

    def __init__(self, attention, **kwargs):
        super().__init__(**kwargs)
        if isinstance(attention, dict):
            attention = keras.saving.deserialize_keras_object(attention)
        self.attention = attention

    def call(self, inputs, attention_mask=None):
        return self.attention(inputs, attention_mask=attention_mask, return_attention_scores=True)[1]

    def compute_output_spec(self, inputs, attention_mask=None):
        return self.attention.compute_output_spec(inputs, return_attention_scores=True)[1]

    def get_config(self):
        config = super().get_config()
        config.update(attention=keras.saving.serialize_keras_object(self.attention))
        return config


def attention_model(model, index, prefix=None):
    """A model returning block `index`'s attention probabilities (float32).

    The output has shape (batch, heads, query_length, key_length); it shares
    the attention layer and its weights with `model`. `prefix` is accepted
    for compatibility and unused.

    Example:
    ```python
    probs = attention_model(bert, 3).predict([token_ids, segment_ids])
    ```
    """
    builder = builder_of(model)
    structure = builder.structure
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(structure.attention):
        raise ValueError(
            f"index must be a block index in [0, {len(structure.attention)}) of model "
            f"{builder.model.name!r}, got {index!r}"
        )
    if structure.attention[index] is None:
        raise ValueError(
            f"`index` must be a block with a MultiHeadAttention layer, got {index}: block "
            f"{index} of model {builder.model.name!r} has none"
        )
    layer = builder.layers[structure.attention[index]]
    inputs, arguments = structure.attention_calls[index]
    name = f"{builder.model.name}-Attention-{index}-Probabilities"
    probs = AttentionProbabilities(layer, name=name)(inputs, attention_mask=arguments.get("attention_mask"))
    return keras.Model(builder.model.inputs, probs, name=builder.model.name + "-attention-%d" % index)
