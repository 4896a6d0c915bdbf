"""Reference checkpoints and outputs from transformers on PyTorch (separate env).

    python -m venv $HF_ENV
    $HF_ENV/bin/pip install torch==2.13.0 transformers safetensors numpy  # CPU torch
    $HF_ENV/bin/python tests/data/make_family_reference_hf.py

It writes tests/data/families/<case>/ for albert_hf (AlbertForMaskedLM),
electra_hf (ElectraForPreTraining, the discriminator) and
electra_hf_generator (ElectraForMaskedLM), each with config.json and
model.safetensors as save_pretrained writes them, and reference.npz with
token_ids, segment_ids (int32, (3, length)) and float32 outputs computed under
torch.no_grad() by a copy reloaded with from_pretrained (eager attention,
attention_mask = token_ids > 0, token_type_ids = segment_ids):

- albert_hf: encoder (last hidden state), mlm_logits;
- electra_hf: encoder, discriminator_logits ((3, length), before the sigmoid);
- electra_hf_generator: encoder, mlm_logits.

Every parameter is redrawn from a fixed numpy seed: normal(0, 0.2), and for
LayerNorm weight 1 + normal(0, 0.1), bias normal(0, 0.1); tied parameters
(decoder weight = word embeddings, ALBERT's decoder bias = predictions.bias)
are drawn once. transformers 5 always saves safetensors (its save_pretrained no
longer takes safe_serialization); tied copies are left out of the file.
"""
import json
import os
import shutil

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'families')


def make_inputs(rng, vocab_size, length, valid):
    """(3, length) int32 token/segment ids: right padding with 0, two segments per row."""
    token_ids = np.zeros((3, length), dtype=np.int32)
    segment_ids = np.zeros((3, length), dtype=np.int32)
    for r, n in enumerate(valid):
        token_ids[r, :n] = rng.randint(1, vocab_size, size=n)
        split = int(round(n * 0.55))
        segment_ids[r, split:n] = 1
    return token_ids, segment_ids


def randomize(model, rng):
    norms = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    drawn = []
    with torch.no_grad():
        for name, p in model.named_parameters():  # each shared parameter once
            shape = tuple(p.shape)
            if id(p) in norms:
                v = 1.0 + rng.normal(0.0, 0.1, shape)
            elif id(p) in norm_biases:
                v = rng.normal(0.0, 0.1, shape)
            else:
                v = rng.normal(0.0, 0.2, shape)
            p.copy_(torch.tensor(v, dtype=p.dtype))
            drawn.append((name, shape, float(v.std()) if v.size > 1 else None))
    return drawn


def run_case(case, cls, config, length, valid, seed, head):
    print('==', case, flush=True)
    d = os.path.join(OUT, case)
    if os.path.isdir(d):
        shutil.rmtree(d)
    rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    model = cls(config)
    drawn = randomize(model, rng)
    model.eval()
    model.save_pretrained(d)
    assert sorted(os.listdir(d)) == ['config.json', 'model.safetensors'], os.listdir(d)
    for name, shape, std in drawn:
        print('  %-70s %-16s std %s' % (name, shape, std))

    fresh = cls.from_pretrained(d, attn_implementation='eager')
    fresh.eval()
    state = model.state_dict()
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    saved = load_file(os.path.join(d, 'model.safetensors'))
    print('  safetensors keys (%d):' % len(saved))
    for k in sorted(saved):
        print('    %-68s %s' % (k, saved[k].shape))

    token_ids, segment_ids = make_inputs(rng, config.vocab_size, length, valid)
    with torch.no_grad():
        out = fresh(
            input_ids=torch.tensor(token_ids, dtype=torch.long),
            token_type_ids=torch.tensor(segment_ids, dtype=torch.long),
            attention_mask=torch.tensor(token_ids > 0, dtype=torch.long),
            output_hidden_states=True,
        )
    arrays = {'token_ids': token_ids, 'segment_ids': segment_ids}
    arrays['encoder'] = out.hidden_states[-1].numpy().astype(np.float32)
    arrays[head] = out.logits.numpy().astype(np.float32)
    for k, v in arrays.items():
        assert np.all(np.isfinite(v)), k
        print('  %-22s %s %s' % (k, v.shape, v.dtype))
    enc = arrays['encoder']
    for r, n in enumerate(valid):
        rows = enc[r, :n]
        spread = np.min([np.abs(rows[i] - rows[j]).max() for i in range(n) for j in range(i)])
        assert spread > 1e-2, (case, r, spread)
    np.savez(os.path.join(d, 'reference.npz'), **arrays)
    return sorted(saved)


def main():
    print('transformers', transformers.__version__, 'torch', torch.__version__)
    tiny = dict(
        vocab_size=97, embedding_size=16, hidden_size=32, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=96, type_vocab_size=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12,
    )
    albert = transformers.AlbertConfig(
        num_hidden_layers=3, num_hidden_groups=1, inner_group_num=1, hidden_act='gelu_new',
        classifier_dropout_prob=0.0, **tiny)
    run_case('albert_hf', transformers.AlbertForMaskedLM, albert, 12, [12, 8, 9], 505, 'mlm_logits')
    electra = transformers.ElectraConfig(num_hidden_layers=2, hidden_act='gelu', **tiny)
    run_case('electra_hf', transformers.ElectraForPreTraining, electra, 12, [12, 8, 9], 606,
             'discriminator_logits')
    run_case('electra_hf_generator', transformers.ElectraForMaskedLM, electra, 12, [12, 8, 9], 707,
             'mlm_logits')


if __name__ == '__main__':
    main()
