"""GPT-2 (HF / OpenAI layout) and GPT2-ML (`newslm/...` names): causal decoders.

Both take `[token_ids]` (token id 0 is padding, as everywhere in this
library: OpenAI's vocabulary has '!' there, which prompts therefore cannot
contain; GPT2-ML's BERT vocabulary has [PAD]) and return next-token
probabilities, or logits with
`with_lm='linear'`, through the output tied to the token embedding. They
decode with `Seq2SeqDecoder` and its key/value cache.
"""
import json

import keras
import numpy as np

from bert4keras import checkpoints
from bert4keras.checkpoints import CheckpointReader, Variable, norm_variables
from bert4keras.layers import Embedding, FeedForward, PositionEmbedding
from bert4keras.models.base import Transformer, register


class SplitReader(CheckpointReader):
    """A reader that also serves parts of stored arrays under derived names.

    `name#q`, `name#k`, `name#v` are the first, second and third of three
    equal slices of `name`'s last axis (a fused query/key/value projection);
    `name#1x1` is `name` without its leading axis of size 1 (OpenAI's
    `conv1d` kernels, shape (1, in, out)); `name#1x1.q` does both. `join`
    turns `{derived name: array}` back into the stored arrays.

    Args:
        reader: the `CheckpointReader` to wrap.
    """

    def __init__(self, reader):
        super().__init__(reader.source)
        self.reader = reader
        self.format = reader.format
        self.names = reader.names

    @staticmethod
    def _split(name):
        stored, _, part = name.partition("#")
        squeeze = part.startswith("1x1")
        return stored, squeeze, part[4:] if squeeze else part

    def resolve(self, name, hf_prefix=""):
        stored, _, part = name.partition("#")
        found = self.reader.resolve(stored, hf_prefix)
        return None if found is None else found + ("#" + part if part else "")

    def _derive(self, name, array):
        _, squeeze, part = self._split(name)
        if squeeze:
            if array.shape[0] != 1:
                raise ValueError(f"variable {name!r} in {self.source!r}: expected a leading axis of "
                                 f"size 1 (a 1x1 conv kernel), got shape {array.shape}")
            array = array[0]
        if part:
            if array.shape[-1] % 3:
                raise ValueError(f"variable {name!r} in {self.source!r}: a fused query/key/value "
                                 f"array needs a last axis divisible by 3, got shape {array.shape}")
            size = array.shape[-1] // 3
            array = array[..., "qkv".index(part) * size:("qkv".index(part) + 1) * size]
        return array

    def shape(self, name):
        stored = self._split(name)[0]
        if stored == name:
            return self.reader.shape(name)
        return self._derive(name, np.zeros(self.reader.shape(stored), "int8")).shape

    def get(self, name):
        stored = self._split(name)[0]
        array = self.reader.get(stored)
        return array if stored == name else self._derive(name, array)

    @classmethod
    def join(cls, arrays):
        """`{derived or stored name: array}` -> `{stored name: array}`."""
        joined, parts = {}, {}
        for name, array in arrays.items():
            stored, squeeze, part = cls._split(name)
            parts.setdefault(stored, {})[part] = (squeeze, array)
        for stored, pieces in parts.items():
            squeeze = next(iter(pieces.values()))[0]
            if "" in pieces:
                array = pieces[""][1]
            else:
                array = np.concatenate([pieces[p][1] for p in "qkv"], axis=-1)
            joined[stored] = np.ascontiguousarray(array[None] if squeeze else array)
        return joined


@register("gpt2")
class GPT2(Transformer):
    """OpenAI's GPT-2: learned positions, pre-LayerNorm blocks, a final norm
    (`Output-Norm`) and the output tied to the token embedding.

    Loads HF `GPT2LMHeadModel` / `GPT2Model` safetensors (the fused
    `c_attn` projection is split into query, key and value) and OpenAI's
    original TF checkpoints (`model/h0/attn/c_attn/w`, ...), which
    `save_weights_as_checkpoint` writes. HF config keys (`n_embd`,
    `n_layer`, `n_head`, `n_inner`, `n_positions`, `activation_function`,
    `layer_norm_epsilon`) are read; `n_inner` defaults to `4 * n_embd`.

    Args:
        with_lm: True (default) returns next-token probabilities, 'linear'
            logits, False the final hidden states.
        **kwargs: see `Transformer`; `application` is always 'lm'.

    Example:
    ```python
    gpt2 = build_transformer_model(checkpoint_path="gpt2_dir", model="gpt2")
    decoder = Seq2SeqDecoder(gpt2, end_id=eos, maxlen=32)
    outputs = decoder.beam_search([prompt_ids], topk=4)
    ```
    """

    model_type = "gpt2"
    hf_prefix = "transformer."
    applications = ("lm",)
    default_application = "lm"
    default_layer_norm_eps = 1e-5
    config_keys = {
        "n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
        "n_inner": "intermediate_size", "n_positions": "max_position", "activation_function": "hidden_act",
        "layer_norm_epsilon": "layer_norm_eps", "resid_pdrop": "dropout_rate",
        "attn_pdrop": "attention_dropout_rate",
    }

    def __init__(self, *args, with_lm=True, hidden_act="gelu_new", segment_vocab_size=0, **kwargs):
        if kwargs.get("with_mlm"):
            raise ValueError(f"with_mlm is not an argument of model={self.model_type!r}; "
                             "use with_lm=True or 'linear'")
        kwargs.pop("with_mlm", None)
        if kwargs.get("with_pool") or kwargs.get("with_nsp"):
            raise ValueError(f"model={self.model_type!r} has no pooler; with_pool and with_nsp must be False")
        # Segment ids do not exist here (`type_vocab_size` in a config is ignored).
        super().__init__(*args, hidden_act=hidden_act, segment_vocab_size=0, with_mlm=with_lm, **kwargs)
        self.with_lm = with_lm

    @classmethod
    def check_config(cls, config, source):
        if "hidden_size" in config and config.get("intermediate_size") is None:
            config["intermediate_size"] = 4 * config["hidden_size"]
        super().check_config(config, source)

    @classmethod
    def recognizes(cls, reader):
        names = reader.names
        if reader.format == "hf":
            return "transformer.wte.weight" in names or "wte.weight" in names
        return "model/wte" in names

    def check_checkpoint(self, reader):
        super().check_checkpoint(reader)
        if not type(self).recognizes(reader):
            raise ValueError(
                f"checkpoint {reader.source!r} is not a {self.model_type!r} checkpoint (no "
                f"{self.checkpoint_marker(reader.format)!r}); pass the model= it was saved from"
            )

    @classmethod
    def checkpoint_marker(cls, format):
        """A variable every checkpoint of the family holds in `format`."""
        return "transformer.wte.weight" if format == "hf" else "model/wte"

    def get_inputs(self):
        if self.layer_norm_cond is not None:
            raise ValueError(f"layer_norm_cond is not supported by model={self.model_type!r}")
        return [keras.Input(shape=(self.sequence_length,), dtype="int32", name=self.prefix + "Input-Token")]

    def apply_embeddings(self, inputs, position_ids=None):
        # The KV cache passes [token_ids, segment_ids]; segments are unused.
        x = self.apply(inputs[0], Embedding, "Embedding-Token", input_dim=self.vocab_size,
                       output_dim=self.embedding_size, embeddings_initializer=self.initializer)
        x = self.apply(x, PositionEmbedding, "Embedding-Position",
                       arguments=None if position_ids is None else {"position_ids": position_ids},
                       input_dim=self.max_position, output_dim=self.embedding_size, merge_mode="add",
                       embeddings_initializer=self.initializer)
        x = self.apply_embedding_norm(x)
        return self.apply(x, keras.layers.Dropout, "Embedding-Dropout", rate=self.dropout_rate)

    def apply_embedding_norm(self, x):
        return x

    def apply_main_layers(self, x, index, attention_mask, cache=None, position_ids=None):
        """One pre-LN block: `x + attention(norm(x))`, then `x + ffn(norm(x))`."""
        name = self.block_name(index, "MultiHeadSelfAttention")
        y = self.norm(x, name + "-Norm")
        y, cache = self.apply_attention(y, index, attention_mask, cache, position_ids)
        x = self.add(x, y, name)
        name = self.block_name(index, "FeedForward")
        y = self.apply_feedforward(self.norm(x, name + "-Norm"), index)
        return self.add(x, y, name), cache

    def apply_feedforward(self, x, index):
        return self.apply(x, FeedForward, self.block_name(index, "FeedForward"), units=self.intermediate_size,
                          activation=self.hidden_act, kernel_initializer=self.initializer)

    def add(self, x, y, name):
        """Dropout on the branch `y`, then the residual sum (no norm)."""
        y = self.apply(y, keras.layers.Dropout, name + "-Dropout", rate=self.dropout_rate)
        return self.apply([x, y], keras.layers.Add, name + "-Add")

    def apply_final_norm(self, x):
        return self.norm(x, "Output-Norm")

    def apply_final_layers(self, x):
        return self.head("lm", x) if self.with_lm else x

    def apply_lm_head(self, x):
        activation = "softmax" if self.with_lm is True else self.with_lm
        return self.apply(self.mlm_logits(x), keras.layers.Activation, "LM-Activation",
                          activation=activation, dtype="float32")

    def mlm_logits(self, x):
        """The tied output: hidden states times the transposed token embedding."""
        return self.apply(x, Embedding, "Embedding-Token", arguments={"reverse": True})

    # ------------------------------------------------------------ checkpoints
    def variable_mapping(self):
        p, h = self.prefix, self.hf_prefix
        table = [
            Variable(p + "Embedding-Token", "embeddings", "model/wte", h + "wte.weight", kind="vocab"),
            Variable(p + "Embedding-Position", "embeddings", "model/wpe", h + "wpe.weight", kind="position"),
        ]
        for i in range(self.num_hidden_layers):
            g, f = "model/h%d/" % i, h + "h.%d." % i
            attention = p + self.block_name(i, "MultiHeadSelfAttention")
            ffn = p + self.block_name(i, "FeedForward")
            for part in "qkv":  # OpenAI/HF Conv1D weights are (in, out): no transpose
                table += [
                    Variable(attention, part + "_dense/kernel", g + "attn/c_attn/w#1x1." + part,
                             f + "attn.c_attn.weight#" + part),
                    Variable(attention, part + "_dense/bias", g + "attn/c_attn/b#" + part,
                             f + "attn.c_attn.bias#" + part),
                ]
            for layer, weight, scope in ((attention, "o_dense", "attn/c_proj"), (ffn, "i0", "mlp/c_fc"),
                                         (ffn, "o", "mlp/c_proj")):
                torch_scope = f + scope.replace("/", ".")
                table += [Variable(layer, weight + "/kernel", g + scope + "/w#1x1", torch_scope + ".weight"),
                          Variable(layer, weight + "/bias", g + scope + "/b", torch_scope + ".bias")]
            table += self._norm_variables(attention + "-Norm", g + "ln_1", f + "ln_1")
            table += self._norm_variables(ffn + "-Norm", g + "ln_2", f + "ln_2")
        table += self._norm_variables(p + "Output-Norm", "model/ln_f", h + "ln_f")
        return self.present(table)

    @staticmethod
    def _norm_variables(layer, google, hf):
        return [Variable(layer, "gamma", google + "/g", hf + ".weight"),
                Variable(layer, "beta", google + "/b", hf + ".bias")]

    def load_weights_from_checkpoint(self, checkpoint_path):
        reader = SplitReader(checkpoints.open_checkpoint(checkpoint_path))
        self.check_checkpoint(reader)
        checkpoints.load_checkpoint(self.model, self.name_table(), reader)

    def save_weights_as_checkpoint(self, checkpoint_path, config_path=None):
        """Write OpenAI's TF checkpoint names (query/key/value fused into `c_attn`)."""
        from bert4keras.tf_checkpoint import write_bundle  # numpy only

        arrays = SplitReader.join(checkpoints.checkpoint_arrays(self.model, self.name_table()))
        write_bundle(checkpoint_path, arrays)
        if config_path is not None:
            with open(config_path, "w", encoding="utf-8") as f:
                json.dump(self.google_config(), f, indent=2)
        return checkpoint_path

    def google_config(self):
        config = super().google_config()
        config.pop("type_vocab_size", None)
        return config


@register("gpt2_ml")
class GPT2ML(GPT2):
    """GPT2-ML (imcaspar/gpt2-ml, Grover's code): learned positions, a norm
    after the embeddings (`Embedding-Norm`), then per block
    `h = x + attention(x)`, `x = norm1(h + ffn(norm0(h)))`; no final norm;
    the output is tied to the token embedding. Norm epsilon 1e-5.

    Loads and writes the release's TF checkpoint names
    (`newslm/embeddings/word_embed`, `newslm/layer00/query_layer/kernel`,
    ...); the config uses BERT key names, as the release ships it.

    Args:
        with_lm: see `GPT2`.
        **kwargs: see `Transformer`.
    """

    model_type = "gpt2_ml"
    hf_prefix = ""
    config_keys = {}

    def __init__(self, *args, hidden_act="gelu", **kwargs):
        super().__init__(*args, hidden_act=hidden_act, **kwargs)

    @classmethod
    def recognizes(cls, reader):
        return reader.format == "google" and "newslm/embeddings/word_embed" in reader.names

    @classmethod
    def checkpoint_marker(cls, format):
        return "newslm/embeddings/word_embed"

    def apply_embedding_norm(self, x):
        return self.norm(x, "Embedding-Norm")

    def apply_main_layers(self, x, index, attention_mask, cache=None, position_ids=None):
        name = self.block_name(index, "MultiHeadSelfAttention")
        y, cache = self.apply_attention(x, index, attention_mask, cache, position_ids)
        x = self.add(x, y, name)
        name = self.block_name(index, "FeedForward")
        y = self.apply_feedforward(self.norm(x, name + "-Norm-0"), index)
        return self.norm(self.add(x, y, name), name + "-Norm-1"), cache

    def apply_final_norm(self, x):
        return x

    def variable_mapping(self):
        p, n = self.prefix, "newslm/"
        table = [
            Variable(p + "Embedding-Token", "embeddings", n + "embeddings/word_embed", None, kind="vocab"),
            Variable(p + "Embedding-Position", "embeddings", n + "embeddings/pos_embed", None, kind="position"),
        ]
        table += norm_variables(p + "Embedding-Norm", n + "embeddings/LayerNorm_embed_norm", None)
        for i in range(self.num_hidden_layers):
            g = n + "layer%02d/" % i
            attention = p + self.block_name(i, "MultiHeadSelfAttention")
            ffn = p + self.block_name(i, "FeedForward")
            for layer, weight, scope in ((attention, "q_dense", "query_layer"), (attention, "k_dense", "key_layer"),
                                         (attention, "v_dense", "value_layer"),
                                         (attention, "o_dense", "context_projection_layer"),
                                         (ffn, "i0", "intermediate"), (ffn, "o", "output")):
                table += [Variable(layer, weight + "/kernel", g + scope + "/kernel", None),
                          Variable(layer, weight + "/bias", g + scope + "/bias", None)]
            table += norm_variables(ffn + "-Norm-0", g + "LayerNorm_mlp_ln0", None)
            table += norm_variables(ffn + "-Norm-1", g + "LayerNorm_mlp_ln1", None)
        return self.present(table)
