"""Reading a family's config: Google `bert_config.json` or HF `config.json`
into builder arguments, and checking those arguments."""
import json
import os

# Config keys every family reads from Google `bert_config.json` or HF
# `config.json`, mapped to builder arguments. A family adds its own in
# `Transformer.config_keys`.
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
}
REQUIRED_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)

def read_config(config_path, model_class=None):
    """Read a Google or HF config file into builder arguments.

    Keys of `CONFIG_KEYS` and of `model_class.config_keys` are kept; others
    are ignored. Raises a `ValueError` naming the file for unreadable JSON,
    and the key for missing or invalid values.
    """
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"`config_path` must be an existing file, got {config_path!r}, which does not "
            "exist; check the path"
        )
    try:
        with open(config_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"config file {config_path!r} must be JSON, got a file that is not valid JSON: "
            f"{e}; fix or re-download it"
        ) from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"config file {config_path!r} must hold a JSON object, got {type(raw).__name__}"
        )
    keys = dict(CONFIG_KEYS)
    if model_class is not None:
        keys.update(model_class.config_keys)
    config = {keys[k]: v for k, v in raw.items() if k in keys and v is not None}
    config["_source"] = config_path
    config["_model_type"] = raw.get("model_type")
    return config


def check_config(config, source):
    """Raise a `ValueError` naming the key (and `source`, the config file) for a
    missing or invalid builder argument."""
    where = f" in config {source!r}" if source else ""
    for key in REQUIRED_KEYS:
        if key not in config:
            raise ValueError(
                f"key {key!r}{where} must be given, got a config without it; add it to "
                f"the config or pass {key}=..."
            )
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
            f"hidden_size{where} must be a multiple of num_attention_heads, got "
            f"{config['hidden_size']} and {config['num_attention_heads']} (not divisible)"
        )
