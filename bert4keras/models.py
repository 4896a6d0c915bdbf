"""Transformer builders: BERT, RoFormer, and their LM / UniLM applications.

`build_transformer_model` reads a Google or HF config, builds a functional
Keras model with bert4keras' layer names and optionally loads a checkpoint.
A new architecture is a small subclass of `Transformer` overriding one of
`apply_embeddings`, `apply_main_layers`, `apply_final_layers` or
`variable_mapping`.
"""
import json
import os
import sys
import warnings

import keras

from bert4keras import checkpoints
from bert4keras.layers import (
    AttentionMask,
    BiasAdd,
    Embedding,
    FeedForward,
    LayerNormalization,
    MultiHeadAttention,
    PositionEmbedding,
    TokenSlice,
)

# Config keys accepted from Google `bert_config.json` or HF `config.json`,
# mapped to builder arguments.
CONFIG_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "hidden_act": "hidden_act",
    "max_position_embeddings": "max_position",
    "type_vocab_size": "segment_vocab_size",
    "hidden_dropout_prob": "dropout_rate",
    "attention_probs_dropout_prob": "attention_dropout_rate",
    "layer_norm_eps": "layer_norm_eps",
    "embedding_size": "embedding_size",
    "initializer_range": "initializer_range",
    "rotary_value": "rotary_value",
}
REQUIRED_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)
APPLICATIONS = {"encoder": "bidirectional", "lm": "causal", "unilm": "unilm"}


def read_config(config_path):
    """Read a Google or HF config file into builder arguments.

    Raises a `ValueError` naming the file for unreadable JSON, and the key for
    missing or invalid values.
    """
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"config file not found: {config_path!r}")
    try:
        with open(config_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {config_path!r} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config file {config_path!r} must hold a JSON object")
    config = {CONFIG_KEYS[k]: v for k, v in raw.items() if k in CONFIG_KEYS and v is not None}
    config["_source"] = config_path
    config["_model_type"] = raw.get("model_type")
    return config


def _check_config(config, source):
    where = f" in config {source!r}" if source else ""
    for key in REQUIRED_KEYS:
        if key not in config:
            raise ValueError(f"missing required key {key!r}{where}")
    for key in REQUIRED_KEYS + ("max_position", "embedding_size"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"key {key!r}{where} must be a positive integer, got {value!r}")
    seg = config.get("segment_vocab_size")
    if seg is not None and (not isinstance(seg, int) or seg < 0):
        raise ValueError(f"key 'type_vocab_size'{where} must be a non-negative integer, got {seg!r}")
    for key in ("dropout_rate", "attention_dropout_rate"):
        value = config.get(key)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise ValueError(f"key {key!r}{where} must be in [0, 1), got {value!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValueError(
            f"hidden_size {config['hidden_size']} is not divisible by "
            f"num_attention_heads {config['num_attention_heads']}{where}"
        )


def _warn_if_remat_is_undone():
    """Warns when XLA would silently undo `recompute=True` (JAX on CPU).

    XLA:CPU drops the optimization barriers that `jax.checkpoint` puts around
    a recomputation (its `cse_barrier_expander` pass), after which the
    recomputation is merged back into the forward pass and saves no memory
    (measured in `bench/bench_recompute.py`). Disabling that pass keeps it.
    """
    if keras.backend.backend() != "jax":
        return
    import jax

    flags = os.environ.get("XLA_FLAGS", "")
    if jax.default_backend() == "cpu" and "cse_barrier_expander" not in flags:
        warnings.warn(
            "recompute=True on JAX's CPU backend: XLA:CPU removes jax.checkpoint's "
            "optimization barriers, so the recomputation saves no memory. Start the "
            "process with XLA_FLAGS=--xla_disable_hlo_passes=cse_barrier_expander "
            "to keep it (gradients are the same either way).",
            stacklevel=_caller_stacklevel(),
        )


def _caller_stacklevel():
    """The `warnings.warn` stacklevel of the first frame outside this package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


class Transformer:
    """Template for encoder models built from explicit Keras layers.

    Subclasses fill in the embeddings, per-layer block and heads, and declare
    how each Keras weight maps to checkpoint variables (`variable_mapping`).

    Args:
        vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
        intermediate_size: model sizes.
        hidden_act: activation of the feed-forward block ('gelu' = exact erf).
        dropout_rate, attention_dropout_rate: dropout on hidden states and on
            attention probabilities.
        embedding_size: token embedding size, if it differs from hidden_size
            (then an `Embedding-Mapping` dense layer follows the embeddings).
        max_position: number of learned positions.
        segment_vocab_size: number of segment ids (0 for none).
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal initializer.
        application: 'encoder', 'lm' (causal) or 'unilm'.
        with_pool: add the `[CLS]` pooler (True, or its activation).
        with_nsp: add the next-sentence head (implies the pooler).
        with_mlm: add the MLM head; True returns probabilities, 'linear' logits.
        keep_tokens: rows of the checkpoint's vocabulary to keep, in order.
        compound_tokens: lists of token ids whose mean embedding makes each new
            token appended after the kept vocabulary.
        sequence_length: fixed input length (None for variable).
        prefix: prepended to every layer name (two encoders in one graph).
        name: the Keras model's name.
        rotary_value: RoFormer only, also rotate the attention values.
        recompute: rematerialise each block's attention and feed-forward layers
            in the backward pass (Keras' own remat: `tf.recompute_grad` on
            TensorFlow, `jax.checkpoint` on JAX), trading compute for
            activation memory. Works eagerly, in `tf.function`/`jax.jit` and
            `model.fit`; attention-dropout masks are drawn outside the
            recomputed call, so gradients equal the plain model's. Not stored
            in `.keras` files.
        layer_norm_cond: make every LayerNorm conditional (bert4keras'
            conditional LayerNorm): an int adds an input
            'Input-LayerNorm-Condition' of that size; a Keras tensor is used
            as is (and added to the inputs if it is a `keras.Input`).
        layer_norm_cond_hidden_size: first map the condition through a shared
            Dense layer 'LayerNorm-Condition' of this size.
        layer_norm_cond_hidden_act: activation of that Dense layer.
    """

    model_type = None

    def __init__(
        self,
        vocab_size,
        hidden_size,
        num_hidden_layers,
        num_attention_heads,
        intermediate_size,
        hidden_act="gelu",
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        embedding_size=None,
        max_position=512,
        segment_vocab_size=2,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        application="encoder",
        with_pool=False,
        with_nsp=False,
        with_mlm=False,
        keep_tokens=None,
        compound_tokens=None,
        sequence_length=None,
        prefix=None,
        name=None,
        rotary_value=False,
        recompute=False,
        layer_norm_cond=None,
        layer_norm_cond_hidden_size=None,
        layer_norm_cond_hidden_act=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"unknown arguments for {type(self).__name__}: {sorted(kwargs)}")
        if application not in APPLICATIONS:
            raise ValueError(f"application must be one of {sorted(APPLICATIONS)}, got {application!r}")
        if keep_tokens is not None:
            keep_tokens = [int(i) for i in keep_tokens]
            bad = [i for i in keep_tokens if not 0 <= i < vocab_size]
            if bad:
                raise ValueError(f"keep_tokens has ids outside [0, {vocab_size}): {bad[:5]}")
        if compound_tokens is not None:
            compound_tokens = [[int(i) for i in ids] for ids in compound_tokens]
            if any(not ids for ids in compound_tokens):
                raise ValueError("each entry of compound_tokens needs at least one token id")
            bad = [i for ids in compound_tokens for i in ids if not 0 <= i < vocab_size]
            if bad:
                raise ValueError(f"compound_tokens has ids outside [0, {vocab_size}): {bad[:5]}")
        self.checkpoint_vocab_size = vocab_size
        self.vocab_size = len(keep_tokens) if keep_tokens is not None else vocab_size
        self.vocab_size += len(compound_tokens or [])
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.attention_head_size = hidden_size // num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.dropout_rate = dropout_rate or 0.0
        self.attention_dropout_rate = attention_dropout_rate or 0.0
        self.embedding_size = embedding_size or hidden_size
        self.max_position = max_position
        self.segment_vocab_size = segment_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.application = application
        self.with_pool = with_pool or with_nsp
        self.with_nsp = with_nsp
        self.with_mlm = with_mlm
        self.keep_tokens = keep_tokens
        self.compound_tokens = compound_tokens
        self.sequence_length = sequence_length
        self.prefix = prefix or ""
        self.name = name
        self.rotary_value = rotary_value
        self.recompute = recompute
        if recompute:
            _warn_if_remat_is_undone()
        self.layer_norm_cond = layer_norm_cond
        self.layer_norm_cond_hidden_size = layer_norm_cond_hidden_size
        self.layer_norm_cond_hidden_act = layer_norm_cond_hidden_act
        self.layers = {}
        self.model = None

    # ----------------------------------------------------------------- helpers
    @property
    def initializer(self):
        return keras.initializers.TruncatedNormal(stddev=self.initializer_range)

    def apply(self, inputs, layer_class, name, arguments=None, **kwargs):
        """Create (once) the layer called `prefix + name` and call it on `inputs`.

        Reusing a name reuses the layer, which is how the MLM head shares the
        token embedding.
        """
        full_name = self.prefix + name
        if full_name not in self.layers:
            if self.recompute and layer_class in (MultiHeadAttention, FeedForward):
                # Remat is fixed at construction; listing the block layer alone
                # keeps its Dense sublayers from being rematerialised twice.
                with keras.RematScope(mode="list_of_layers", layer_names=[full_name]):
                    self.layers[full_name] = layer_class(name=full_name, **kwargs)
            else:
                self.layers[full_name] = layer_class(name=full_name, **kwargs)
        return self.layers[full_name](inputs, **(arguments or {}))

    def layer(self, name):
        return self.layers[self.prefix + name]

    # -------------------------------------------------------------- template
    def build(self):
        """Build `self.model` (a functional keras.Model); returns it."""
        inputs = self.get_inputs()
        self.inputs = inputs
        self.condition = self.apply_layer_norm_condition(inputs)
        x = self.apply_embeddings(inputs[:2])
        mask = self.apply(inputs[:2], AttentionMask, "Attention-Mask", mode=APPLICATIONS[self.application])
        for index in range(self.num_hidden_layers):
            x = self.apply_main_layers(x, index, mask)
        outputs = self.apply_final_layers(x)
        self.model = keras.Model(inputs, outputs, name=self.name or self.prefix + self.model_type)
        return self.model

    def get_inputs(self):
        token_ids = keras.Input(shape=(self.sequence_length,), dtype="int32", name=self.prefix + "Input-Token")
        segment_ids = keras.Input(shape=(self.sequence_length,), dtype="int32", name=self.prefix + "Input-Segment")
        inputs = [token_ids, segment_ids]
        cond = self.layer_norm_cond
        if isinstance(cond, int) and not isinstance(cond, bool):
            inputs.append(keras.Input(shape=(cond,), name=self.prefix + "Input-LayerNorm-Condition"))
        elif cond is not None:
            history = getattr(cond, "_keras_history", None)
            if not keras.utils.is_keras_tensor(cond) or history is None \
                    or not isinstance(history.operation, keras.layers.InputLayer):
                raise ValueError(
                    "layer_norm_cond must be an int (the condition size) or a keras.Input; "
                    f"got {cond!r}. To condition on a computed tensor, build with an "
                    "int and feed that tensor to the 'Input-LayerNorm-Condition' input."
                )
            inputs.append(cond)
        return inputs

    def apply_layer_norm_condition(self, inputs):
        """The (optionally mapped) condition tensor of conditional LayerNorms."""
        if self.layer_norm_cond is None:
            return None
        cond = inputs[2]
        if self.layer_norm_cond_hidden_size:
            cond = self.apply(
                cond,
                keras.layers.Dense,
                "LayerNorm-Condition",
                units=self.layer_norm_cond_hidden_size,
                activation=self.layer_norm_cond_hidden_act,
                kernel_initializer=self.initializer,
            )
        return cond

    def norm(self, x, name):
        """LayerNorm named `name`, conditional when a condition is wired in."""
        if self.condition is None:
            return self.apply(x, LayerNormalization, name, epsilon=self.layer_norm_eps)
        return self.apply(
            [x, self.condition], LayerNormalization, name, epsilon=self.layer_norm_eps, conditional=True
        )

    def apply_embeddings(self, inputs):
        raise NotImplementedError

    def attention_arguments(self):
        """Extra constructor arguments of each layer's MultiHeadAttention."""
        return {}

    def apply_main_layers(self, x, index, attention_mask):
        """One post-LN transformer block: attention, add & norm, FFN, add & norm."""
        name = "Transformer-%d-MultiHeadSelfAttention" % index
        y = self.apply(
            [x, x, x],
            MultiHeadAttention,
            name,
            arguments={"attention_mask": attention_mask},
            heads=self.num_attention_heads,
            head_size=self.attention_head_size,
            out_dim=self.hidden_size,
            attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer,
            **self.attention_arguments(),
        )
        x = self.residual(x, y, name)
        name = "Transformer-%d-FeedForward" % index
        y = self.apply(
            x,
            FeedForward,
            name,
            units=self.intermediate_size,
            activation=self.hidden_act,
            kernel_initializer=self.initializer,
        )
        return self.residual(x, y, name)

    def residual(self, x, y, name):
        y = self.apply(y, keras.layers.Dropout, name + "-Dropout", rate=self.dropout_rate)
        x = self.apply([x, y], keras.layers.Add, name + "-Add")
        return self.norm(x, name + "-Norm")

    def apply_final_layers(self, x):
        outputs = [x]
        if self.with_pool:
            pooled = self.apply(x, TokenSlice, "Pooler", index=0)
            activation = "tanh" if self.with_pool is True else self.with_pool
            pooled = self.apply(
                pooled,
                keras.layers.Dense,
                "Pooler-Dense",
                units=self.hidden_size,
                activation=activation,
                kernel_initializer=self.initializer,
            )
            if self.with_nsp:
                pooled = self.apply(
                    pooled,
                    keras.layers.Dense,
                    "NSP-Proba",
                    units=2,
                    activation="softmax",
                    kernel_initializer=self.initializer,
                    dtype="float32",
                )
            outputs.append(pooled)
        if self.with_mlm:
            from bert4keras.backend import get_activation

            y = self.apply(
                x,
                keras.layers.Dense,
                "MLM-Dense",
                units=self.embedding_size,
                activation=get_activation(self.hidden_act),
                kernel_initializer=self.initializer,
            )
            y = self.norm(y, "MLM-Norm")
            y = self.apply(y, Embedding, "Embedding-Token", arguments={"reverse": True})
            y = self.apply(y, BiasAdd, "MLM-Bias")
            activation = "softmax" if self.with_mlm is True else self.with_mlm
            y = self.apply(y, keras.layers.Activation, "MLM-Activation", activation=activation, dtype="float32")
            outputs.append(y)
        return outputs[0] if len(outputs) == 1 else outputs

    # ------------------------------------------------------------ checkpoints
    def variable_mapping(self):
        """List of `checkpoints.Variable` entries for every weight of the model."""
        raise NotImplementedError

    def load_weights_from_checkpoint(self, checkpoint_path):
        """Load a Google TF1 checkpoint, a `.safetensors` file or an HF directory."""
        checkpoints.load_checkpoint(self, checkpoint_path)

    def save_weights_as_checkpoint(self, checkpoint_path, config_path=None):
        """Write the weights as a Google-format TF checkpoint (and config)."""
        checkpoints.save_checkpoint(self, checkpoint_path, config_path=config_path)

    def google_config(self):
        """The model's sizes under Google `bert_config.json` key names."""
        config = {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act if isinstance(self.hidden_act, str) else "gelu",
            "max_position_embeddings": self.max_position,
            "type_vocab_size": self.segment_vocab_size,
            "hidden_dropout_prob": self.dropout_rate,
            "attention_probs_dropout_prob": self.attention_dropout_rate,
            "layer_norm_eps": self.layer_norm_eps,
            "initializer_range": self.initializer_range,
        }
        if self.embedding_size != self.hidden_size:
            config["embedding_size"] = self.embedding_size
        return config


class BERT(Transformer):
    """BERT (and RoBERTa-style weights in BERT layout): learned positions."""

    model_type = "bert"

    def apply_embeddings(self, inputs):
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
        x = self.apply_position_embeddings(x)
        x = self.norm(x, "Embedding-Norm")
        x = self.apply(x, keras.layers.Dropout, "Embedding-Dropout", rate=self.dropout_rate)
        if self.embedding_size != self.hidden_size:
            x = self.apply(
                x,
                keras.layers.Dense,
                "Embedding-Mapping",
                units=self.hidden_size,
                kernel_initializer=self.initializer,
            )
        return x

    def apply_position_embeddings(self, x):
        return self.apply(
            x,
            PositionEmbedding,
            "Embedding-Position",
            input_dim=self.max_position,
            output_dim=self.embedding_size,
            merge_mode="add",
            embeddings_initializer=self.initializer,
        )

    def variable_mapping(self):
        return checkpoints.bert_variable_mapping(self)


class RoFormer(BERT):
    """RoFormer: BERT with rotary position embedding inside every attention.

    No absolute position embedding; queries and keys are rotated on
    interleaved pairs, as in the original RoFormer.
    """

    model_type = "roformer"

    def apply_position_embeddings(self, x):
        return x

    def attention_arguments(self):
        return {"rotary": True, "rotary_value": self.rotary_value}


MODELS = {"bert": BERT, "roberta": BERT, "roformer": RoFormer}


def build_transformer_model(
    config_path=None,
    checkpoint_path=None,
    model="bert",
    application="encoder",
    return_keras_model=True,
    **kwargs,
):
    """Build a BERT-family model and optionally load pretrained weights.

    Args:
        config_path: a Google `bert_config.json` or HF `config.json` (either key
            naming), or None to give every size as a keyword argument. When
            None and `checkpoint_path` is an HF directory, its `config.json`
            is used.
        checkpoint_path: a Google TF1 checkpoint prefix (`bert_model.ckpt`), a
            `.safetensors` file, or an HF model directory.
        model: 'bert' (alias 'roberta') or 'roformer', or a `Transformer`
            subclass.
        application: 'encoder', 'lm' (causal mask) or 'unilm'.
        return_keras_model: return the `keras.Model` (default) or the builder,
            which holds it as `.model` and knows the checkpoint mapping.
        **kwargs: override any config value (`hidden_size=...`,
            `dropout_rate=...`, `max_position=...`) and set the builder options
            `with_pool`, `with_nsp`, `with_mlm`, `keep_tokens`,
            `compound_tokens`, `sequence_length`, `prefix`, `name`.

    Returns:
        A `keras.Model` taking `[token_ids, segment_ids]` (token id 0 is
        padding) and returning the sequence output, then pooled/NSP output,
        then MLM output (a single tensor when there is only one).

    Example:
    ```python
    bert = build_transformer_model("bert_config.json", "bert_model.ckpt", with_pool=True)
    sequence, pooled = bert.predict([token_ids, segment_ids])
    ```
    """
    if isinstance(model, str):
        key = model.lower()
        if key not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
        model_class = MODELS[key]
    elif isinstance(model, type) and issubclass(model, Transformer):
        model_class = model
    else:
        raise ValueError(f"model must be a name or a Transformer subclass, got {model!r}")

    if config_path is None and checkpoint_path and os.path.isdir(checkpoint_path):
        candidate = os.path.join(checkpoint_path, "config.json")
        if os.path.isfile(candidate):
            config_path = candidate
    config = read_config(config_path) if config_path is not None else {}
    source = config.pop("_source", None)
    config_model_type = config.pop("_model_type", None)
    if config_model_type and config_model_type in MODELS and config_model_type != model_class.model_type \
            and MODELS[config_model_type] is not model_class:
        raise ValueError(
            f"config {source!r} is for model_type {config_model_type!r}, but model={model!r} "
            f"was requested; pass model={config_model_type!r}"
        )
    # Keyword arguments may use either builder names or config key names.
    for key, value in kwargs.items():
        config[CONFIG_KEYS.get(key, key)] = value
    _check_config(config, source)

    builder = model_class(application=application, **config)
    builder.build()
    if checkpoint_path is not None:
        builder.load_weights_from_checkpoint(checkpoint_path)
    return builder.model if return_keras_model else builder


def hidden_states_model(model, prefix=""):
    """A model returning the embedding output and every block's output.

    It shares layers and weights with `model` (nothing is rebuilt or copied).

    Example:
    ```python
    states = hidden_states_model(bert).predict([token_ids, segment_ids])
    # states[0]: embeddings; states[i + 1]: output of Transformer-i
    ```
    """
    names = {layer.name for layer in model.layers}
    first = prefix + ("Embedding-Mapping" if prefix + "Embedding-Mapping" in names else "Embedding-Dropout")
    outputs = [model.get_layer(first).output]
    index = 0
    while prefix + "Transformer-%d-FeedForward-Norm" % index in names:
        outputs.append(model.get_layer(prefix + "Transformer-%d-FeedForward-Norm" % index).output)
        index += 1
    return keras.Model(model.inputs, outputs, name=model.name + "-hidden-states")


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


def attention_model(model, index, prefix=""):
    """A model returning layer `index`'s attention probabilities (float32).

    The output has shape (batch, heads, query_length, key_length); it shares
    the attention layer and its weights with `model`.

    Example:
    ```python
    probs = attention_model(bert, 3).predict([token_ids, segment_ids])
    ```
    """
    name = prefix + "Transformer-%d-MultiHeadSelfAttention" % index
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {name!r}") from None
    mask = model.get_layer(prefix + "Attention-Mask").output
    # `layer.input` lists every tensor argument: [q, k, v] first, then the mask.
    probs = AttentionProbabilities(layer, name=name + "-Probabilities")(layer.input[:3], attention_mask=mask)
    return keras.Model(model.inputs, probs, name=model.name + "-attention-%d" % index)
