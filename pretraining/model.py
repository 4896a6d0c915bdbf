"""The MLM pretraining model and loss (Keras 3, any backend).

The pretraining model shares every layer with a bert4keras builder built with
`with_mlm='linear'`, so training it trains the builder's model, and
`builder.save_weights_as_checkpoint` writes the trained weights (MLM head
included) in Google's format. It differs from `builder.model` in one way: the
MLM head runs only on the masked positions (gathered first), so the vocabulary
projection costs `max_predictions_per_seq` rows per sample instead of
`seq_len`, as in Google's BERT and keras-hub's `MaskedLMHead`.
"""
import keras
from keras import ops



@keras.saving.register_keras_serializable(package="bert4keras")
class GatherPositions(keras.layers.Layer):
    """Gathers the vectors at given positions of a sequence.

    `layer([sequence, positions])` with `sequence` of shape (batch, length,
    dim) and int `positions` of shape (batch, count) returns (batch, count,
    dim).

    Example:
    ```python
    masked = GatherPositions()([sequence_output, masked_positions])
    ```
    """

    def call(self, inputs):
        sequence, positions = inputs
        positions = ops.cast(positions, "int32")
        return ops.take_along_axis(sequence, positions[:, :, None], axis=1)

    def compute_output_shape(self, input_shape):
        sequence_shape, positions_shape = input_shape
        return (sequence_shape[0], positions_shape[1], sequence_shape[2])


def build_pretraining_model(builder, max_predictions=None, name="mlm_pretraining"):
    """A model from `[token_ids, segment_ids, masked_positions]` to MLM logits.

    Args:
        builder: a bert4keras `Transformer` builder of any family (e.g. from
            `build_transformer_model(..., with_mlm='linear',
            return_keras_model=False)`) whose model has the MLM head; its
            `mlm_logits` runs on the gathered positions.
        max_predictions: static number of masked positions per sample
            (`max_predictions_per_seq`), or None.
        name: the returned model's name.

    Returns:
        A `keras.Model` whose output is float32 logits of shape
        (batch, max_predictions, vocab_size). It shares all weights with
        `builder.model`.

    Example:
    ```python
    builder = build_transformer_model("bert_config.json", with_mlm="linear",
                                      return_keras_model=False)
    model = build_pretraining_model(builder, max_predictions=20)
    logits = model([token_ids, segment_ids, masked_positions])
    ```
    """
    if not builder.with_mlm:
        raise ValueError(
            f"builder model {builder.model.name!r} has no MLM head; build it with with_mlm='linear'"
        )
    if builder.layer_norm_cond is not None:
        raise ValueError(
            f"builder model {builder.model.name!r} must have no conditional LayerNorm for "
            "pretraining, got layer_norm_cond; build it without layer_norm_cond"
        )
    inputs = list(builder.model.inputs[:2])
    sequence = builder.structure.sequence_output
    positions = keras.Input(
        shape=(max_predictions,), dtype="int32", name=builder.prefix + "Input-Masked-Positions"
    )
    x = GatherPositions(name=builder.prefix + "MLM-Gather")([sequence, positions])
    # The builder's own MLM head code, on the gathered positions only.
    x = builder.mlm_logits(x)
    # Logits leave the model in float32 so the softmax of the loss is float32
    # under mixed_float16 / mixed_bfloat16.
    logits = keras.layers.Activation("linear", dtype="float32", name=builder.prefix + "MLM-Logits")(x)
    return keras.Model(inputs + [positions], logits, name=name)


def masked_lm_loss(labels, logits, weights):
    """Sums of the MLM cross-entropy over the masked positions, in float32.

    Args:
        labels: int (batch, count) original token ids at the masked positions.
        logits: (batch, count, vocab) logits (cast to float32 here).
        weights: (batch, count) 1.0 for real masked positions, 0.0 for padding.

    Returns:
        `(loss_sum, weight_sum, correct_sum)`: float32 scalars; the mean loss
        is `loss_sum / weight_sum` and the accuracy `correct_sum / weight_sum`.
        Padding positions (weight 0) contribute nothing, whatever their label.
    """
    logits = ops.cast(logits, "float32")
    weights = ops.cast(weights, "float32")
    labels = ops.cast(labels, "int32")
    log_z = ops.logsumexp(logits, axis=-1)
    label_logits = ops.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    nll = log_z - label_logits
    # `where`, not a product: a masked-out position's nll may be inf/nan (any
    # label at all) and 0 * inf would poison the sum.
    loss_sum = ops.sum(ops.where(weights > 0, nll * weights, 0.0))
    correct = ops.cast(ops.equal(ops.argmax(logits, axis=-1), labels), "float32")
    correct_sum = ops.sum(correct * weights)
    return loss_sum, ops.sum(weights), correct_sum
