"""T5.1.1 / mT5.1.1 (and T5.1.0) encoder-decoders, from mesh-TF or HF checkpoints.

The builder has three models over one set of layers: `.encoder` (token ids
-> encoder states, zero at padded positions), `.decoder` (`[encoder states,
decoder ids]` -> next-token probabilities, or logits with
`with_lm='linear'`) and `.model` (`[encoder ids, decoder ids]` -> the same,
for training). `generation.EncoderDecoderGenerator` decodes it with a
key/value cache through the same block methods.

Semantics follow mesh-TF and transformers: RMS norms (`rms_norm/scale`,
epsilon 1e-6) before each sub-layer and after each stack; no biases;
attention logits are not scaled (T5 folds `d_kv ** -0.5` into its query
weights); one bucketed relative position bias per stack, learned in block 0
and shared by its blocks; the cross-attention masks padded encoder
positions; the decoder's start token is id 0, so decoder inputs get a
causal mask only. The decoder output is scaled by `d_model ** -0.5` only
when the softmax shares the embedding (T5.1.0), never for the untied 1.1
layout.
"""
import keras

from bert4keras.checkpoints import Variable
from bert4keras.layers import (
    AttentionMask,
    CausalMask,
    Embedding,
    FeedForward,
    MultiHeadAttention,
    PaddedStates,
    RelativePositionBias,
)
from bert4keras.models.base import Structure, Transformer, TransformerModel, register
from bert4keras.models.config import check_config as check_builder_config



def feed_forward_activation(feed_forward_proj, hidden_act, default):
    """(gated, activation) of a T5 config, with transformers' meaning of names.

    `feed_forward_proj` ('gated-gelu', 'relu', ...) wins; 'gated-gelu' is the
    tanh GELU (`gelu_new`) as in transformers, while a `hidden_act` 'gelu'
    (bert4keras-style configs; `['gelu', 'linear']` there means gated) is
    the erf form.
    """
    if feed_forward_proj is None:
        if hidden_act is None:
            feed_forward_proj = default
        elif isinstance(hidden_act, (list, tuple)):  # bert4keras' ['gelu', 'linear']: gated
            if len(hidden_act) != 2 or hidden_act[1] != "linear":
                raise ValueError(f"hidden_act must be a name or [name, 'linear'] (gated), got {hidden_act!r}")
            return True, hidden_act[0]
        else:
            return default.startswith("gated-"), hidden_act
    parts = str(feed_forward_proj).split("-")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise ValueError(f"feed_forward_proj must be 'ACT' or 'gated-ACT' (e.g. 'gated-gelu'), "
                         f"got {feed_forward_proj!r}")
    gated, name = len(parts) == 2, parts[-1]
    if feed_forward_proj == "gated-gelu":
        name = "gelu_new"
    return gated, name


@register("t5.1.1")
class T5(Transformer):
    """Google's T5.1.1: gated-GELU feed-forward and an untied output layer.

    Loads mesh-TF checkpoints (`shared/embedding`,
    `encoder/block_000/layer_000/SelfAttention/q`, `.../relative_attention_bias`,
    `decoder/logits/kernel`, ...) with either norm naming (`layer_norm`,
    `final_layer_norm` as T5.1.1; `rms_norm` as mT5), and HF
    `T5ForConditionalGeneration` / `MT5ForConditionalGeneration` safetensors.
    `save_weights_as_checkpoint` writes mesh-TF names (and an HF-style
    config). Reads HF configs
    (`d_model`, `d_kv`, `d_ff`, `num_layers`, `num_decoder_layers`,
    `num_heads`, `relative_attention_num_buckets`,
    `relative_attention_max_distance`, `feed_forward_proj`,
    `tie_word_embeddings`, `layer_norm_epsilon`) and bert4keras-style T5
    configs (`hidden_size`, `attention_head_size`, `intermediate_size`,
    `num_hidden_layers`, `hidden_act`, as T5-PEGASUS ships them).

    Args:
        attention_head_size: size of each head (`d_kv`); heads * size need
            not equal hidden_size. Default hidden_size // heads.
        num_decoder_layers: decoder blocks (default num_hidden_layers).
        relative_attention_buckets: buckets of the position bias.
        relative_attention_max_distance: distance of the last bucket.
        feed_forward_proj: 'gated-gelu' (default here), 'relu', 'gated-silu', ...
        tie_word_embeddings: the output shares the token embedding (then
            scaled by `hidden_size ** -0.5`); default False here.
        with_lm: True (probabilities), 'linear' (logits) or False (the
            decoder's final hidden states).
        **kwargs: see `Transformer`.

    Example:
    ```python
    t5 = build_transformer_model(checkpoint_path="mt5_dir", model="mt5.1.1", return_keras_model=False)
    states = t5.encoder.predict(encoder_ids)
    probs = t5.decoder.predict([states, decoder_ids])
    ```
    """

    model_type = "t5.1.1"
    hf_prefix = ""
    absolute_positions = False
    default_layer_norm_eps = 1e-6
    config_model_types = ("t5", "mt5")
    applications = ("encoder",)
    is_encoder_decoder = True
    default_feed_forward_proj = "gated-gelu"
    default_tie_word_embeddings = False
    # Mesh-TF norm scopes this variant writes (both namings are read).
    norm_scope, final_norm_scope = "layer_norm", "final_layer_norm"
    config_keys = {
        "d_model": "hidden_size", "d_kv": "attention_head_size", "attention_head_size": "attention_head_size",
        "d_ff": "intermediate_size", "num_layers": "num_hidden_layers", "num_decoder_layers": "num_decoder_layers",
        "num_heads": "num_attention_heads", "relative_attention_num_buckets": "relative_attention_buckets",
        "relative_attention_max_distance": "relative_attention_max_distance",
        "feed_forward_proj": "feed_forward_proj", "tie_word_embeddings": "tie_word_embeddings",
        "layer_norm_epsilon": "layer_norm_eps", "dropout_rate": "dropout_rate",
    }

    def __init__(self, *args, attention_head_size=None, num_decoder_layers=None, relative_attention_buckets=32,
                 relative_attention_max_distance=128, feed_forward_proj=None, tie_word_embeddings=None,
                 with_lm=True, hidden_act=None, segment_vocab_size=0, max_position=None, **kwargs):
        for option in ("with_pool", "with_nsp", "with_mlm", "layer_norm_cond"):
            if kwargs.get(option):
                raise ValueError(f"{option} is not supported by model={self.model_type!r}")
        gated, activation = feed_forward_activation(feed_forward_proj, hidden_act, self.default_feed_forward_proj)
        super().__init__(*args, hidden_act=activation, segment_vocab_size=0, max_position=None, **kwargs)
        self.attention_head_size = attention_head_size or self.hidden_size // self.num_attention_heads
        self.num_decoder_layers = num_decoder_layers or self.num_hidden_layers
        self.relative_attention_buckets = relative_attention_buckets
        self.relative_attention_max_distance = relative_attention_max_distance
        self.gated = gated
        self.tie_word_embeddings = (self.default_tie_word_embeddings if tie_word_embeddings is None
                                    else bool(tie_word_embeddings))
        self.with_lm = with_lm
        self.encoder = self.decoder = None
        self.cross_attention = []

    @classmethod
    def check_config(cls, config, source):
        checked = dict(config)
        heads, size = config.get("num_attention_heads"), config.get("attention_head_size")
        if isinstance(heads, int) and isinstance(size, int) and size > 0:
            checked["hidden_size"] = heads * size  # d_model need not be heads * d_kv
            if "hidden_size" in config:
                check_builder_config(dict(config, num_attention_heads=1), source)
        check_builder_config(checked, source)

    @classmethod
    def recognizes(cls, reader):
        if reader.format == "hf":
            return "shared.weight" in reader.names and "encoder.block.0.layer.0.SelfAttention.q.weight" in reader.names
        return "shared/embedding" in reader.names

    def check_checkpoint(self, reader):
        super().check_checkpoint(reader)
        if not type(self).recognizes(reader):
            marker = "shared.weight" if reader.format == "hf" else "shared/embedding"
            raise ValueError(f"checkpoint {reader.source!r} is not a T5 checkpoint (no {marker!r}); "
                             "pass the model= it was saved from")

    def input_limits(self):
        rule = {"what": "token ids", "limit": self.vocab_size, "key": "vocab_size"}
        return {self.prefix + "Encoder-Input-Token": dict(rule), self.prefix + "Decoder-Input-Token": dict(rule)}

    def norm_arguments(self):
        return {"epsilon": self.layer_norm_eps, "zero_mean": False, "center": False, "scale": True}

    # -------------------------------------------------------------- template
    def build(self):
        """Build `.encoder`, `.decoder`, `.model` and the `Structure`; returns `.model`."""
        p = self.prefix
        self.condition = None
        self._heads = {}
        encoder_ids = keras.Input((self.sequence_length,), dtype="int32", name=p + "Encoder-Input-Token")
        decoder_ids = keras.Input((None,), dtype="int32", name=p + "Decoder-Input-Token")
        context = keras.Input((None, self.hidden_size), name=p + "Input-Context")
        self.inputs = [encoder_ids, decoder_ids]
        structure = Structure()
        states = self.apply_encoder(encoder_ids, structure)
        outputs = self.apply_decoder(states, decoder_ids, structure)
        alone = self.apply_decoder(context, decoder_ids)
        structure.heads = self._heads
        name = self.name or p + self.model_type
        self.encoder = keras.Model(encoder_ids, states, name=name + "-encoder")
        self.decoder = keras.Model([context, decoder_ids], alone, name=name + "-decoder")
        self.model = TransformerModel(self.inputs, outputs, name=name, input_limits=self.input_limits())
        self.model.builder = self
        self.structure = structure
        for layer in self.layers.values():
            layer._bert4keras_builder = self
        return self.model

    def _stage(self, structure, field, fn, *args):
        """Run `fn(*args)`, recording its layer names into `structure.<field>` when given."""
        with self._record() as (names, calls):
            result = fn(*args)
        if structure is not None:
            if field == "blocks":
                attention = next(c for c in calls if isinstance(self.layers[c[0]], MultiHeadAttention))
                structure.blocks.append(names)
                structure.attention.append(attention[0])
                structure.attention_calls.append(attention[1:])
                structure.block_outputs.append(result[0] if isinstance(result, tuple) else result)
            else:
                getattr(structure, field).extend(n for n in names if n not in getattr(structure, field))
        return result

    def apply_encoder(self, token_ids, structure=None):
        """Encoder ids -> final encoder states (zero at padded positions)."""
        x, bias = self._stage(structure, "embeddings", self.apply_encoder_embeddings, token_ids)
        if structure is not None:
            structure.embedding_output = x
        mask = self.apply([token_ids], AttentionMask, "Encoder-Attention-Mask", mode="bidirectional")
        for index in range(self.num_hidden_layers):
            x = self._stage(structure, "blocks", self.apply_encoder_block, x, index, mask, bias)
        return self._stage(structure, "final_norm", self.apply_encoder_final, x, token_ids)

    def apply_decoder(self, context, decoder_ids, structure=None):
        """`(encoder states, decoder ids)` -> the head's output (probabilities by default)."""
        cross_mask = self.apply_cross_mask(context)
        x, bias = self._stage(structure, "embeddings", self.apply_decoder_embeddings, decoder_ids)
        mask = self.apply(decoder_ids, CausalMask, "Decoder-Attention-Mask")
        for index in range(self.num_decoder_layers):
            x, _ = self._stage(structure, "blocks", self.apply_decoder_block, x, index, mask, bias, context,
                               cross_mask)
        x = self._stage(structure, "final_norm", self.apply_decoder_final, x)
        if structure is not None:
            structure.sequence_output = x
        return self.head("lm", x) if self.with_lm else x

    def apply_cross_mask(self, context):
        """The (batch, 1, 1, length) mask of valid (non-zero) encoder states."""
        return self.apply(context, PaddedStates, "Decoder-Context-Mask", arguments={"key_mask": True})

    def decoder_attention_layers(self):
        """Per decoder block, its (self-attention, cross-attention) layers."""
        name = self.prefix + "Decoder-Transformer-%d-MultiHead%sAttention"
        return [(self.layers[name % (i, "Self")], self.layers[name % (i, "Cross")])
                for i in range(self.num_decoder_layers)]

    def apply_encoder_embeddings(self, token_ids):
        x = self.apply_token_embedding(token_ids)
        x = self.apply(x, keras.layers.Dropout, "Encoder-Embedding-Dropout", rate=self.dropout_rate)
        return x, self.position_bias("Encoder", x, bidirectional=True)

    def apply_decoder_embeddings(self, token_ids, positions=None):
        """Decoder ids -> (hidden states, self-attention bias); `positions` =
        `(query positions, key positions)` for a cached step."""
        x = self.apply_token_embedding(token_ids)
        x = self.apply(x, keras.layers.Dropout, "Decoder-Embedding-Dropout", rate=self.dropout_rate)
        return x, self.position_bias("Decoder", x if positions is None else list(positions), bidirectional=False)

    def apply_token_embedding(self, token_ids):
        return self.apply(token_ids, Embedding, "Embedding-Token", input_dim=self.vocab_size,
                          output_dim=self.hidden_size, embeddings_initializer=self.initializer)

    def position_bias(self, stack, inputs, bidirectional):
        return self.apply(inputs, RelativePositionBias, stack + "-Embedding-Relative-Position",
                          heads=self.num_attention_heads, num_buckets=self.relative_attention_buckets,
                          max_distance=self.relative_attention_max_distance, bidirectional=bidirectional,
                          embeddings_initializer=self.initializer)

    def attention(self, inputs, name, arguments):
        return self.apply(inputs, MultiHeadAttention, name, arguments=arguments, heads=self.num_attention_heads,
                          head_size=self.attention_head_size, out_dim=self.hidden_size, use_bias=False,
                          attention_scale=1.0, attention_dropout=self.attention_dropout_rate,
                          kernel_initializer=self.initializer)

    def feedforward(self, x, name):
        return self.apply(x, FeedForward, name, units=self.intermediate_size, activation=self.hidden_act,
                          use_bias=False, gated=self.gated, kernel_initializer=self.initializer)

    def add(self, x, y, name):
        y = self.apply(y, keras.layers.Dropout, name + "-Dropout", rate=self.dropout_rate)
        return self.apply([x, y], keras.layers.Add, name + "-Add")

    def apply_encoder_block(self, x, index, mask, bias):
        name = "Encoder-Transformer-%d-MultiHeadSelfAttention" % index
        y = self.norm(x, name + "-Norm")
        x = self.add(x, self.attention([y, y, y], name, {"attention_mask": mask, "attention_bias": bias}), name)
        name = "Encoder-Transformer-%d-FeedForward" % index
        return self.add(x, self.feedforward(self.norm(x, name + "-Norm"), name), name)

    def apply_decoder_block(self, x, index, mask, bias, context, cross_mask, cache=None, position_ids=None,
                            cross_cache=None):
        """One decoder block; returns `(x, cache)`.

        With `cache` (and `position_ids`) the self-attention reads and
        extends it; with `cross_cache` (`key_values` of the encoder states)
        the cross-attention reuses those keys/values and `context` is unused.
        """
        name = "Decoder-Transformer-%d-MultiHeadSelfAttention" % index
        y = self.norm(x, name + "-Norm")
        arguments = {"attention_mask": mask, "attention_bias": bias}
        if cache is not None:
            arguments.update(cache=cache, position_ids=position_ids)
        y = self.attention([y, y, y], name, arguments)
        if cache is not None:
            y, cache = y
        x = self.add(x, y, name)
        name = "Decoder-Transformer-%d-MultiHeadCrossAttention" % index
        y = self.norm(x, name + "-Norm")
        if cross_cache is not None:
            y, _ = self.attention(y, name, {"attention_mask": cross_mask, "cache": cross_cache})
        else:
            y = self.attention([y, context, context], name, {"attention_mask": cross_mask})
        x = self.add(x, y, name)
        name = "Decoder-Transformer-%d-FeedForward" % index
        return self.add(x, self.feedforward(self.norm(x, name + "-Norm"), name), name), cache

    def apply_encoder_final(self, x, token_ids):
        x = self.norm(x, "Encoder-Output-Norm")
        x = self.apply(x, keras.layers.Dropout, "Encoder-Output-Dropout", rate=self.dropout_rate)
        return self.apply([x, token_ids], PaddedStates, "Encoder-Output-Mask")

    def apply_decoder_final(self, x):
        x = self.norm(x, "Decoder-Output-Norm")
        return self.apply(x, keras.layers.Dropout, "Decoder-Output-Dropout", rate=self.dropout_rate)

    def apply_lm_head(self, x):
        activation = "softmax" if self.with_lm is True else self.with_lm
        return self.apply(self.lm_logits(x), keras.layers.Activation, "Decoder-Output-LM-Activation",
                          activation=activation, dtype="float32")

    def lm_logits(self, x):
        """Vocabulary logits: the untied `Decoder-Output-LM`, or the shared
        embedding after scaling by `hidden_size ** -0.5` (T5.1.0)."""
        if self.tie_word_embeddings:
            x = self.apply(x, keras.layers.Rescaling, "Decoder-Output-Scale", scale=self.hidden_size ** -0.5)
            return self.apply(x, Embedding, "Embedding-Token", arguments={"reverse": True})
        return self.apply(x, Embedding, "Decoder-Output-LM", arguments={"reverse": True}, input_dim=self.vocab_size,
                          output_dim=self.hidden_size, embeddings_initializer=self.initializer)

    # ------------------------------------------------------------ checkpoints
    def variable_mapping(self):
        p = self.prefix
        norms = {"layer_norm": ("layer_norm", "rms_norm"), "final": ("final_layer_norm", "rms_norm")}
        if self.norm_scope == "rms_norm":
            norms = {"layer_norm": ("rms_norm", "layer_norm"), "final": ("rms_norm", "final_layer_norm")}

        def norm(layer, mesh_scope, hf_scope, final=False):
            mesh = tuple(mesh_scope + n + "/scale" for n in norms["final" if final else "layer_norm"])
            return [Variable(p + layer, "gamma", mesh, hf_scope + ".weight")]

        def attention(layer, mesh_scope, hf_scope):
            return [Variable(p + layer, part + "_dense/kernel", mesh_scope + part, hf_scope + part + ".weight",
                             False, True) for part in "qkvo"]

        def ffn(layer, mesh_scope, hf_scope):
            parts = (("i0", "wi_0"), ("i1", "wi_1"), ("o", "wo")) if self.gated else (("i0", "wi"), ("o", "wo"))
            return [Variable(p + layer, weight + "/kernel", mesh_scope + "DenseReluDense/%s/kernel" % part,
                             hf_scope + "DenseReluDense.%s.weight" % part, False, True) for weight, part in parts]

        table = [Variable(p + "Embedding-Token", "embeddings", "shared/embedding", "shared.weight", kind="vocab")]
        for stack, blocks in (("encoder", self.num_hidden_layers), ("decoder", self.num_decoder_layers)):
            Stack = stack.capitalize()
            table.append(Variable(p + Stack + "-Embedding-Relative-Position", "embeddings",
                                  stack + "/block_000/layer_000/SelfAttention/relative_attention_bias",
                                  stack + ".block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                  google_transpose=True))  # mesh-TF stores (heads, buckets)
            for i in range(blocks):
                mesh, hf = stack + "/block_%03d/" % i, stack + ".block.%d." % i
                name = Stack + "-Transformer-%d-" % i
                layers = [("MultiHeadSelfAttention", "SelfAttention")]
                if stack == "decoder":
                    layers.append(("MultiHeadCrossAttention", "EncDecAttention"))
                for j, (ours, theirs) in enumerate(layers):
                    scope_m, scope_h = mesh + "layer_%03d/" % j, hf + "layer.%d." % j
                    table += attention(name + ours, scope_m + theirs + "/", scope_h + theirs + ".")
                    table += norm(name + ours + "-Norm", scope_m, scope_h + "layer_norm")
                j = len(layers)
                table += ffn(name + "FeedForward", mesh + "layer_%03d/" % j, hf + "layer.%d." % j)
                table += norm(name + "FeedForward-Norm", mesh + "layer_%03d/" % j, hf + "layer.%d.layer_norm" % j)
            table += norm(Stack + "-Output-Norm", stack + "/", stack + ".final_layer_norm", final=True)
        if not self.tie_word_embeddings:  # mesh-TF stores (d_model, vocab), HF lm_head (vocab, d_model)
            table.append(Variable(p + "Decoder-Output-LM", "embeddings", "decoder/logits/kernel", "lm_head.weight",
                                  google_transpose=True, kind="vocab"))
        return self.present(table)

    def google_config(self):
        """The model's sizes under HF T5 config keys (what `save_weights_as_checkpoint`
        writes beside the mesh-TF checkpoint; `build_transformer_model` reads it)."""
        return {
            "model_type": "mt5" if self.norm_scope == "rms_norm" else "t5",
            "vocab_size": self.vocab_size, "d_model": self.hidden_size, "d_kv": self.attention_head_size,
            "d_ff": self.intermediate_size, "num_layers": self.num_hidden_layers,
            "num_decoder_layers": self.num_decoder_layers, "num_heads": self.num_attention_heads,
            "relative_attention_num_buckets": self.relative_attention_buckets,
            "relative_attention_max_distance": self.relative_attention_max_distance,
            "feed_forward_proj": self.feed_forward_proj_name(),
            "tie_word_embeddings": self.tie_word_embeddings, "layer_norm_epsilon": self.layer_norm_eps,
            "dropout_rate": self.dropout_rate,
        }

    def feed_forward_proj_name(self):
        """`feed_forward_proj` as transformers reads it ('gated-gelu' is tanh there)."""
        if self.hidden_act in ("gelu_new", "gelu_tanh") and self.gated:
            return "gated-gelu"
        name = "gelu_python" if self.hidden_act in ("gelu", "gelu_erf") else self.hidden_act
        return ("gated-" if self.gated else "") + name


@register("mt5.1.1")
class MT5(T5):
    """mT5.1.1 (and T5-PEGASUS): the T5.1.1 layout with mesh-TF `rms_norm` names."""

    model_type = "mt5.1.1"
    norm_scope, final_norm_scope = "rms_norm", "rms_norm"


@register("t5")
class T5v1_0(T5):
    """The original T5 (1.0): ReLU feed-forward (`DenseReluDense/wi`) and the
    output tied to the shared embedding, scaled by `d_model ** -0.5`."""

    model_type = "t5"
    default_feed_forward_proj = "relu"
    default_tie_word_embeddings = True
    config_model_types = ("mt5",)
