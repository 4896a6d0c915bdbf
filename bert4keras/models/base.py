"""The `Transformer` template, the family registry and `build_transformer_model`.

A family is one module of this package: a `Transformer` subclass registered
under its `model=` names, its checkpoint name table (`variable_mapping`) and
its extra config keys. The template builds a functional Keras model from
named layers (`apply` creates a layer once and reuses it by name) and
records what it built in a `Structure`: the embedding layers, each block's
layers in order, the final norm and each head. The helpers of the library
(KV-cache decoding, hidden states, attention probes, layer-wise learning
rates, the pretraining head) read that statement and parse no layer names.

The same methods run the model's forward pass in two ways: on Keras tensors
when the model is built, and on real tensors, with a key/value cache, when
`generation.KVCache` decodes. So a family cannot compute one thing in the
full model and another when cached.
"""
import contextlib
import dataclasses
import json
import os
import sys
import warnings
from typing import Optional

import keras
import numpy as np

from bert4keras import backend, checkpoints
from bert4keras.layers import (
    AttentionMask,
    BiasAdd,
    Embedding,
    FeedForward,
    LayerNormalization,
    MultiHeadAttention,
    TokenSlice,
)
from bert4keras.models.config import CONFIG_KEYS, read_config
from bert4keras.models.config import check_config as check_builder_config

APPLICATIONS = {"encoder": "bidirectional", "lm": "causal", "unilm": "unilm"}

# name -> Transformer subclass; filled by `register` as family modules import.
MODELS = {}


def register(*names):
    """Class decorator: make a `Transformer` subclass available as `model=name`."""

    def decorator(cls):
        for name in names:
            if name in MODELS and MODELS[name] is not cls:
                raise ValueError(
                    f"`name` must be a new model name, got {name!r}, which is already "
                    f"registered to {MODELS[name].__name__}; pick another name"
                )
            MODELS[name] = cls
        return cls

    return decorator


def model_names():
    """The registered `model=` names, sorted (for command-line choices)."""
    return sorted(MODELS)


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
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


@dataclasses.dataclass
class Structure:
    """What a builder built, recorded while it built it.

    Layer names are full names (the builder's prefix included); a layer
    shared by several blocks (ALBERT) appears in each of them. Tensors are
    the Keras tensors of the built model's graph.

    Attributes:
        embeddings: layer names of the embedding stage, in call order.
        blocks: per block, its layer names in call order.
        final_norm: layer names after the last block and before the heads
            (empty for post-LN families).
        heads: head name ('pool', 'mlm', 'discriminator', ...) -> layer names.
        attention: per block, the name of its self-attention layer.
        attention_calls: per block, `(inputs, arguments)` of that call.
        embedding_output: the embedding stage's output tensor.
        block_outputs: each block's output tensor.
        sequence_output: the tensor the heads read.
    """

    embeddings: list = dataclasses.field(default_factory=list)
    blocks: list = dataclasses.field(default_factory=list)
    final_norm: list = dataclasses.field(default_factory=list)
    heads: dict = dataclasses.field(default_factory=dict)
    attention: list = dataclasses.field(default_factory=list)
    attention_calls: list = dataclasses.field(default_factory=list)
    embedding_output: Optional[object] = None
    block_outputs: list = dataclasses.field(default_factory=list)
    sequence_output: Optional[object] = None


@keras.saving.register_keras_serializable(package="bert4keras")
class TransformerModel(keras.Model):
    """The functional model `build_transformer_model` returns.

    A plain Keras functional model that also checks its input arrays: token
    ids outside `[0, vocab_size)`, segment ids outside
    `[0, segment_vocab_size)` and sequences longer than `max_position` (for
    families with absolute positions) raise a `ValueError` naming the input,
    the offending value and the limit, wherever host arrays reach the model
    (`predict`, `fit`, `evaluate`, the `*_on_batch` methods and eager calls),
    before any backend sees them. Compiled graphs cannot raise (TensorFlow
    would trace an error, JAX clamps silently), hence the host-side check.
    Datasets and generators are not inspected.

    `input_limits` is stored in the model's config, so `.keras` files keep
    the checks. `builder` is the `Transformer` that built the model. For
    models from `build_transformer_model`, the family and its arguments are
    stored too (`builder_config`), and a `.keras` reload rebinds a builder to
    the loaded layers, so the structure-driven helpers keep working.
    """

    def __init__(self, *args, input_limits=None, builder_config=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_limits = dict(input_limits or {})
        self.builder = None
        self.builder_config = builder_config
        if builder_config is not None:
            self.builder = _rebind_builder(self, builder_config)

    def get_config(self):
        config = super().get_config()
        config["input_limits"] = dict(self.input_limits)
        if self.builder_config is not None:
            config["builder_config"] = self.builder_config
        return config

    # ------------------------------------------------------------ checking
    def _input_arrays(self, x):
        """(input name, array) of the host arrays in `x`, in input order."""
        names = [t.name for t in self.inputs]
        if isinstance(x, dict):
            items = [(n, x[n]) for n in names if n in x]
        elif isinstance(x, (list, tuple)):
            items = list(zip(names, x))
        else:
            items = [(names[0], x)]
        arrays = []
        for name, value in items:
            if isinstance(value, (list, np.ndarray)):
                try:
                    value = np.asarray(value)
                except ValueError:  # ragged lists: let Keras report them
                    continue
            elif hasattr(value, "shape") and hasattr(value, "dtype"):  # a tensor
                value = backend.concrete_numpy(value)
            else:  # datasets, generators: not inspected
                continue
            if value is not None and value.dtype.kind in "iub":
                arrays.append((name, value))
        return arrays

    def check_inputs(self, x):
        """Raise a `ValueError` for out-of-range ids or over-long sequences in `x`."""
        limits = self.input_limits
        for name, array in self._input_arrays(x):
            rule = limits.get(name)
            if rule is None or array.size == 0:
                continue
            what, limit = rule["what"], rule["limit"]
            low, high = int(array.min()), int(array.max())
            if low < 0 or high >= limit:
                bad = array < 0 if low < 0 else array >= limit
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"input {name!r}: {what} must be in [0, {limit}) ({rule['key']}={limit}), "
                    f"got {int(array[where])} at index {list(where)}"
                )
            max_length = rule.get("max_length")
            if max_length and array.ndim >= 2 and array.shape[1] > max_length:
                raise ValueError(
                    f"input {name!r}: sequence length {array.shape[1]} exceeds the model's "
                    f"{max_length} positions (max_position={max_length}); truncate the inputs"
                )

    def __call__(self, *args, **kwargs):
        if args:
            self.check_inputs(args[0])
        return super().__call__(*args, **kwargs)

    def fit(self, x=None, *args, **kwargs):
        self.check_inputs(x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self.check_inputs(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self.check_inputs(x)
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x, *args, **kwargs):
        self.check_inputs(x)
        return super().train_on_batch(x, *args, **kwargs)

    def test_on_batch(self, x, *args, **kwargs):
        self.check_inputs(x)
        return super().test_on_batch(x, *args, **kwargs)

    def predict_on_batch(self, x):
        self.check_inputs(x)
        return super().predict_on_batch(x)


def _builder_config(model_class, application, arguments):
    """What `_rebind_builder` needs, or None when it cannot be stored as JSON."""
    if MODELS.get(model_class.model_type) is not model_class:
        return None
    config = {"model": model_class.model_type,
              "arguments": dict(arguments, application=application, recompute=False)}
    try:
        json.dumps(config)
    except (TypeError, ValueError):  # e.g. a Keras tensor as layer_norm_cond
        return None
    return config


def _rebind_builder(model, config):
    """A builder over the layers of a reloaded model (sharing every weight).

    The builder replays its template with the loaded layers (found by name),
    giving it a structure over the same layers; None if that would need a
    layer the model lacks.
    """
    model_class = MODELS.get(config["model"])
    if model_class is None:
        return None
    builder = model_class(**config["arguments"])
    builder.layers = {layer.name: layer for layer in model.layers
                      if not isinstance(layer, keras.layers.InputLayer)}
    known = set(builder.layers)
    builder.build()
    if set(builder.layers) != known:
        return None
    return builder


def builder_of(model):
    """The `Transformer` builder behind `model` (a builder passes through).

    `model` is a model from `build_transformer_model`, or a model built on
    top of one (a task model sharing its layers): then the builder whose
    layers it uses is found, if there is exactly one. Raises a `ValueError`
    for models the library did not build, such as a hand-built functional
    model.
    """
    if isinstance(model, Transformer):
        return model
    builder = getattr(model, "builder", None)
    if isinstance(builder, Transformer):
        return builder
    found = []
    for layer in getattr(model, "layers", []):
        owner = getattr(layer, "_bert4keras_builder", None)
        if owner is not None and all(owner is not b for b in found):
            found.append(owner)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValueError(
            f"model {model.name!r} uses the layers of {len(found)} bert4keras models "
            f"({[b.model.name for b in found]}); pass the one you mean"
        )
    raise ValueError(
        f"model {getattr(model, 'name', model)!r} was not built by build_transformer_model, "
        "so it has no recorded structure; build it with build_transformer_model(...) and "
        "load the weights with load_weights()"
    )


def structure_of(model):
    """The `Structure` of a model built by `build_transformer_model` (or of a builder)."""
    return builder_of(model).structure


class Transformer:
    """Template for transformer models built from explicit Keras layers.

    Subclasses fill in the embeddings, the blocks and the heads, and declare
    how each Keras weight maps to checkpoint variables (`variable_mapping`).
    `apply_embeddings`, `apply_main_layers` and the head methods run both
    when the model is built (Keras tensors) and when a cache decodes (real
    tensors, `position_ids` and `cache` given).

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
    # Extra config-file keys of the family -> builder arguments.
    config_keys = {}
    # Applications the family supports.
    applications = tuple(APPLICATIONS)
    # Whether positions come from a learned absolute table (`max_position`
    # then limits the sequence length).
    absolute_positions = True
    # The model prefix of HF names ('bert.'), for bare saves that drop it.
    hf_prefix = ""
    # Default epsilon of the family's norms.
    default_layer_norm_eps = 1e-12
    # The application `build_transformer_model` uses when none is given.
    default_application = "encoder"
    # Config `model_type`s of other registered names this family also reads
    # (an HF 't5' config for model='t5.1.1').
    config_model_types = ()

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
        layer_norm_eps=None,
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
        recompute=False,
        layer_norm_cond=None,
        layer_norm_cond_hidden_size=None,
        layer_norm_cond_hidden_act=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: arguments must be the builder's own, got unknown "
                f"arguments {sorted(kwargs)}; check their spelling"
            )
        if application not in APPLICATIONS:
            raise ValueError(f"application must be one of {sorted(APPLICATIONS)}, got {application!r}")
        if application not in self.applications:
            raise ValueError(
                f"application must be one of {list(self.applications)} for model "
                f"{self.model_type!r}, got {application!r}"
            )
        if keep_tokens is not None:
            keep_tokens = [int(i) for i in keep_tokens]
            bad = [i for i in keep_tokens if not 0 <= i < vocab_size]
            if bad:
                raise ValueError(f"keep_tokens ids must be in [0, {vocab_size}), got {bad[:5]}")
        if compound_tokens is not None:
            compound_tokens = [[int(i) for i in ids] for ids in compound_tokens]
            if any(not ids for ids in compound_tokens):
                raise ValueError("each entry of compound_tokens must hold at least one token id, got an empty one")
            bad = [i for ids in compound_tokens for i in ids if not 0 <= i < vocab_size]
            if bad:
                raise ValueError(f"compound_tokens ids must be in [0, {vocab_size}), got {bad[:5]}")
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
        self.layer_norm_eps = self.default_layer_norm_eps if layer_norm_eps is None else layer_norm_eps
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
        self.recompute = recompute
        if recompute:
            _warn_if_remat_is_undone()
        self.layer_norm_cond = layer_norm_cond
        self.layer_norm_cond_hidden_size = layer_norm_cond_hidden_size
        self.layer_norm_cond_hidden_act = layer_norm_cond_hidden_act
        self.layers = {}
        self.model = None
        self.structure = None
        self._recording = None

    # ----------------------------------------------------------------- helpers
    @property
    def initializer(self):
        return keras.initializers.TruncatedNormal(stddev=self.initializer_range)

    def apply(self, inputs, layer_class, name, arguments=None, **kwargs):
        """Create (once) the layer called `prefix + name` and call it on `inputs`.

        Reusing a name reuses the layer, which is how the MLM head shares the
        token embedding and ALBERT shares one block.
        """
        full_name = self.prefix + name
        if full_name not in self.layers:
            if self.structure is not None:
                raise RuntimeError(
                    f"{type(self).__name__}: the built model must have the layer "
                    f"{full_name!r}, got none (a bug in the family's builder)"
                )
            if self.recompute and layer_class in (MultiHeadAttention, FeedForward):
                # Remat is fixed at construction; listing the block layer alone
                # keeps its Dense sublayers from being rematerialised twice.
                with keras.RematScope(mode="list_of_layers", layer_names=[full_name]):
                    self.layers[full_name] = layer_class(name=full_name, **kwargs)
            else:
                self.layers[full_name] = layer_class(name=full_name, **kwargs)
        if self._recording is not None:
            names, calls = self._recording
            if full_name not in names:
                names.append(full_name)
            calls.append((full_name, inputs, dict(arguments or {})))
        return self.layers[full_name](inputs, **(arguments or {}))

    def layer(self, name):
        return self.layers[self.prefix + name]

    @contextlib.contextmanager
    def _record(self):
        """Collect the names (and calls) of the layers applied inside."""
        outer, self._recording = self._recording, ([], [])
        try:
            yield self._recording
        finally:
            self._recording = outer

    # -------------------------------------------------------------- template
    def build(self):
        """Build `self.model` (a `TransformerModel`) and `self.structure`; returns the model."""
        structure = Structure()
        inputs = self.get_inputs()
        self.inputs = inputs
        self.condition = self.apply_layer_norm_condition(inputs)
        with self._record() as (names, _):
            x = self.apply_embeddings(inputs[:2])
        structure.embeddings, structure.embedding_output = names, x
        mask = self.apply(inputs[:2], AttentionMask, "Attention-Mask", mode=APPLICATIONS[self.application])
        self.mask_name = self.prefix + "Attention-Mask"
        for index in range(self.num_hidden_layers):
            with self._record() as (names, calls):
                x, _ = self.apply_main_layers(x, index, mask)
            # A block built of other layers (a custom subclass) has no attention to probe.
            attention = next((c for c in calls if isinstance(self.layers[c[0]], MultiHeadAttention)),
                             (None, None, None))
            structure.blocks.append(names)
            structure.attention.append(attention[0])
            structure.attention_calls.append(attention[1:])
            structure.block_outputs.append(x)
        with self._record() as (names, _):
            x = self.apply_final_norm(x)
        structure.final_norm, structure.sequence_output = names, x
        self._heads = {}
        outputs = self.apply_final_layers(x)
        structure.heads = self._heads
        self.model = TransformerModel(
            inputs, outputs, name=self.name or self.prefix + self.model_type,
            input_limits=self.input_limits(),
        )
        self.model.builder = self
        self.structure = structure
        for layer in self.layers.values():  # lets `builder_of` find us from a task model
            layer._bert4keras_builder = self
        return self.model

    def head(self, name, x):
        """Apply the head `apply_<name>_head` to `x`, recording its layers."""
        with self._record() as (names, _):
            y = getattr(self, f"apply_{name}_head")(x)
        if self._heads is not None and self.structure is None:
            self._heads[name] = names
        return y

    def input_limits(self):
        """The id ranges and length limit `TransformerModel` checks."""
        limits = {self.prefix + "Input-Token": {"what": "token ids", "limit": self.vocab_size,
                                                "key": "vocab_size"}}
        if self.segment_vocab_size:
            limits[self.prefix + "Input-Segment"] = {
                "what": "segment ids", "limit": self.segment_vocab_size, "key": "type_vocab_size"}
        if self.absolute_positions and self.max_position:
            limits[self.prefix + "Input-Token"]["max_length"] = self.max_position
        return limits

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

    def norm_arguments(self):
        """Constructor arguments of the family's norms."""
        return {"epsilon": self.layer_norm_eps}

    def norm(self, x, name):
        """The family's norm named `name`, conditional when a condition is wired in."""
        if self.condition is None:
            return self.apply(x, LayerNormalization, name, **self.norm_arguments())
        return self.apply([x, self.condition], LayerNormalization, name, conditional=True,
                          **self.norm_arguments())

    def apply_embeddings(self, inputs, position_ids=None):
        """Token ids and segment ids -> hidden states (batch, length, hidden).

        `position_ids` ((batch, length) int) place the tokens when decoding
        with a cache; None means `arange(length)`.
        """
        raise NotImplementedError

    def block_name(self, index, part):
        """Layer name of block `index`'s `part` ('MultiHeadSelfAttention', 'FeedForward')."""
        return "Transformer-%d-%s" % (index, part)

    def attention_arguments(self):
        """Extra constructor arguments of each block's MultiHeadAttention."""
        return {}

    def feedforward_arguments(self):
        """Extra constructor arguments of each block's FeedForward."""
        return {}

    def apply_attention(self, x, index, attention_mask, cache=None, position_ids=None):
        """Block `index`'s self-attention; returns `(output, cache)`."""
        arguments = {"attention_mask": attention_mask}
        if cache is not None:
            arguments.update(cache=cache, position_ids=position_ids)
        y = self.apply(
            [x, x, x],
            MultiHeadAttention,
            self.block_name(index, "MultiHeadSelfAttention"),
            arguments=arguments,
            heads=self.num_attention_heads,
            head_size=self.attention_head_size,
            out_dim=self.hidden_size,
            attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer,
            **self.attention_arguments(),
        )
        return y if cache is not None else (y, None)

    def apply_main_layers(self, x, index, attention_mask, cache=None, position_ids=None):
        """One post-LN block: attention, add & norm, FFN, add & norm.

        Returns `(x, cache)`; `cache` is None unless one was given (then the
        attention reads and extends it, see `MultiHeadAttention`).
        """
        y, cache = self.apply_attention(x, index, attention_mask, cache, position_ids)
        x = self.residual(x, y, self.block_name(index, "MultiHeadSelfAttention"))
        name = self.block_name(index, "FeedForward")
        y = self.apply(
            x,
            FeedForward,
            name,
            units=self.intermediate_size,
            activation=self.hidden_act,
            kernel_initializer=self.initializer,
            **self.feedforward_arguments(),
        )
        return self.residual(x, y, name), cache

    def residual(self, x, y, name):
        y = self.apply(y, keras.layers.Dropout, name + "-Dropout", rate=self.dropout_rate)
        x = self.apply([x, y], keras.layers.Add, name + "-Add")
        return self.norm(x, name + "-Norm")

    def apply_final_norm(self, x):
        """The norm after the last block (pre-LN families); identity here."""
        return x

    def apply_final_layers(self, x):
        """The heads: sequence output, then pooled/NSP output, then MLM output."""
        outputs = [x]
        if self.with_pool:
            outputs.append(self.head("pool", x))
        if self.with_mlm:
            outputs.append(self.head("mlm", x))
        return outputs[0] if len(outputs) == 1 else outputs

    def apply_pool_head(self, x):
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
        return pooled

    def apply_mlm_head(self, x):
        """The MLM head: probabilities, or logits with `with_mlm='linear'`.

        `mlm_logits` is the part before the final activation; the pretraining
        model and the KV cache call it on their own tensors.
        """
        activation = "softmax" if self.with_mlm is True else self.with_mlm
        return self.apply(
            self.mlm_logits(x), keras.layers.Activation, "MLM-Activation",
            activation=activation, dtype="float32",
        )

    def mlm_activation(self):
        """The activation of the MLM transform (`MLM-Dense`)."""
        return backend.get_activation(self.hidden_act)

    def mlm_logits(self, x):
        """BERT's MLM transform, then the tied token embedding, then a bias."""
        y = self.apply(
            x,
            keras.layers.Dense,
            "MLM-Dense",
            units=self.embedding_size,
            activation=self.mlm_activation(),
            kernel_initializer=self.initializer,
        )
        y = self.norm(y, "MLM-Norm")
        y = self.apply(y, Embedding, "Embedding-Token", arguments={"reverse": True})
        return self.apply(y, BiasAdd, "MLM-Bias")

    # ------------------------------------------------------------ checkpoints
    def variable_mapping(self):
        """List of `checkpoints.Variable` entries for every weight of the model."""
        raise NotImplementedError

    def present(self, table):
        """The entries of `table` whose layer this model has."""
        present = {layer.name for layer in self.model.layers}
        return [v for v in table if v.layer in present]

    def name_table(self):
        """The `checkpoints.NameTable` of this model."""
        return checkpoints.NameTable(
            variables=self.variable_mapping(),
            hf_prefix=self.hf_prefix,
            vocab_size=self.checkpoint_vocab_size,
            keep_tokens=self.keep_tokens,
            compound_tokens=self.compound_tokens,
            max_position=self.max_position if self.absolute_positions else None,
            description=f"{self.model_type!r} model {self.model.name!r}",
        )

    @classmethod
    def check_config(cls, config, source):
        """Validate (and complete) builder arguments read from a config; raises `ValueError`."""
        check_builder_config(config, source)

    @classmethod
    def recognizes(cls, reader):
        """Whether `reader` holds this family's variable names (False: unknown).

        Families whose names no `hf_prefix` identifies (T5, GPT-2) answer
        here, so other families refuse their checkpoints by name.
        """
        return False

    def check_checkpoint(self, reader):
        """Refuse a checkpoint of another registered family, before any lookup."""
        if not type(self).recognizes(reader):
            for name, cls in sorted(MODELS.items()):
                if cls is not type(self) and cls.recognizes(reader):
                    raise ValueError(
                        f"checkpoint {reader.source!r} holds a {name!r} model, but "
                        f"model={self.model_type!r} was built; pass model={name!r}"
                    )
        if reader.format != "hf" or not self.hf_prefix:
            return
        if any(n.startswith(self.hf_prefix) for n in reader.names):
            return
        for name, cls in sorted(MODELS.items()):
            other = cls.hf_prefix
            if other and cls is not type(self) and any(n.startswith(other) for n in reader.names):
                raise ValueError(
                    f"checkpoint {reader.source!r} holds a {name!r} model (variables "
                    f"'{other}*'), but model={self.model_type!r} was built; pass model={name!r}"
                )

    def load_weights_from_checkpoint(self, checkpoint_path):
        """Load a Google TF1 checkpoint, a `.safetensors` file or an HF directory."""
        reader = checkpoints.open_checkpoint(checkpoint_path)
        self.check_checkpoint(reader)
        checkpoints.load_checkpoint(self.model, self.name_table(), reader)

    def save_weights_as_checkpoint(self, checkpoint_path, config_path=None):
        """Write the weights as a Google-format TF checkpoint (and config)."""
        checkpoints.save_checkpoint(self.model, self.name_table(), checkpoint_path)
        if config_path is not None:
            with open(config_path, "w", encoding="utf-8") as f:
                json.dump(self.google_config(), f, indent=2)
        return checkpoint_path

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
        inverse = {v: k for k, v in self.config_keys.items()}
        for argument, key in inverse.items():
            if hasattr(self, argument):
                config[key] = getattr(self, argument)
        return config


def build_transformer_model(
    config_path=None,
    checkpoint_path=None,
    model="bert",
    application=None,
    return_keras_model=True,
    **kwargs,
):
    """Build a transformer model and optionally load pretrained weights.

    Args:
        config_path: a Google `bert_config.json` or HF `config.json` (either key
            naming), or None to give every size as a keyword argument. When
            None and `checkpoint_path` is an HF directory, its `config.json`
            is used.
        checkpoint_path: a Google TF1 checkpoint prefix (`bert_model.ckpt`), a
            `.safetensors` file, or an HF model directory.
        model: a registered name (`bert4keras.models.model_names()`: 'bert',
            'roberta', 'roformer', 'albert', 'albert_unshared', 'nezha',
            'electra', 'roformer_v2', 'gpt2', 'gpt2_ml', 't5.1.1', 'mt5.1.1',
            't5') or a `Transformer` subclass.
        application: 'encoder', 'lm' (causal mask) or 'unilm'; None: the
            family's default ('encoder'; 'lm' for GPT-2).
        return_keras_model: return the `keras.Model` (default) or the builder,
            which holds it as `.model`, its `.structure` and the checkpoint
            name table.
        **kwargs: override any config value (`hidden_size=...`,
            `dropout_rate=...`, `max_position=...`) and set the builder options
            `with_pool`, `with_nsp`, `with_mlm`, `keep_tokens`,
            `compound_tokens`, `sequence_length`, `prefix`, `name`, and the
            family's own (e.g. ELECTRA's `with_discriminator`).

    Returns:
        A `TransformerModel` taking `[token_ids, segment_ids]` (token id 0 is
        padding) and returning the sequence output, then the heads' outputs
        (a single tensor when there is only one).

    Example:
    ```python
    bert = build_transformer_model("bert_config.json", "bert_model.ckpt", with_pool=True)
    sequence, pooled = bert.predict([token_ids, segment_ids])
    ```
    """
    if isinstance(model, str):
        key = model.lower()
        if key not in MODELS:
            raise ValueError(f"model must be one of {model_names()}, got {model!r}")
        model_class = MODELS[key]
    elif isinstance(model, type) and issubclass(model, Transformer):
        model_class = model
    else:
        raise ValueError(f"model must be a name or a Transformer subclass, got {model!r}")

    if config_path is None and checkpoint_path and os.path.isdir(checkpoint_path):
        candidate = os.path.join(checkpoint_path, "config.json")
        if os.path.isfile(candidate):
            config_path = candidate
    config = read_config(config_path, model_class) if config_path is not None else {}
    source = config.pop("_source", None)
    config_model_type = config.pop("_model_type", None)
    if config_model_type and config_model_type in MODELS and config_model_type != model_class.model_type \
            and MODELS[config_model_type] is not model_class \
            and config_model_type not in model_class.config_model_types:
        raise ValueError(
            f"config {source!r} is for model_type {config_model_type!r}, but model={model!r} "
            f"was requested; pass model={config_model_type!r}"
        )
    # Keyword arguments may use either builder names or config key names.
    keys = dict(CONFIG_KEYS, **model_class.config_keys)
    for key, value in kwargs.items():
        config[keys.get(key, key)] = value
    model_class.check_config(config, source)
    if application is None:
        application = model_class.default_application

    builder = model_class(application=application, **config)
    builder.build()
    builder.model.builder_config = _builder_config(model_class, application, config)
    if checkpoint_path is not None:
        builder.load_weights_from_checkpoint(checkpoint_path)
    return builder.model if return_keras_model else builder
