"""Reference checkpoints and outputs for GPT-2 and mT5.1.1 from transformers (separate env).

    $HF_ENV/bin/python tests/data/make_generation_reference_hf.py  (the env of make_family_reference_hf.py)

It writes tests/data/families/<case>/ with config.json and model.safetensors as
save_pretrained writes them (tied copies left out), and reference.npz with
float32 outputs computed under torch.no_grad() by a copy reloaded with
from_pretrained (eager attention):

- gpt2_hf: GPT2LMHeadModel (output tied to wte), vocab 97, n_embd 32, 2
  layers, 4 heads, n_inner None (128), gelu_new, layer_norm_epsilon 1e-5.
  token_ids (3, 16), right-padded with 0 (16 / 11 / 5 valid), attention_mask
  = token_ids > 0. Outputs: `hidden` (after ln_f, (3, 16, 32)), `logits`
  (3, 16, 97).
- mt5_hf: MT5ForConditionalGeneration with an untied lm_head (the released
  mT5.1.1 layout; transformers 5 ties it, so it is untied by hand and the
  state dict written with safetensors.torch.save_file), vocab 97, d_model 32, d_kv 6 (so heads * d_kv = 24 is not
  d_model), 4 heads, d_ff 48, 2 + 2 layers, 8 buckets, max_distance 16,
  gated-gelu (gelu_new), layer_norm_epsilon 1e-6. encoder_ids (3, 20) with
  20 / 14 / 7 valid, attention_mask = encoder_ids > 0; decoder_ids (3, 9):
  the start token 0, then 8 / 5 / 3 tokens, right-padded with 0 (the decoder
  is causal, so its padding is never seen by a valid position). Outputs:
  `encoder` (3, 20, 32), `decoder_logits` (3, 9, 97).

Every parameter is redrawn from a fixed numpy seed: normal(0, 0.2); norm
weights 1 + normal(0, 0.1), LayerNorm biases normal(0, 0.1); tied
parameters are drawn once.
"""
import json
import os
import shutil

import numpy as np
import safetensors.torch
import torch
import transformers
from make_family_reference_hf import randomize as family_randomize
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'families')


def randomize(model, rng):
    """make_family_reference_hf's draw, then T5's RMS norm weights (not torch LayerNorms) redrawn."""
    family_randomize(model, rng)
    with torch.no_grad():
        for name, module in model.named_modules():
            if type(module).__name__.endswith('LayerNorm') and not isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(torch.tensor(1.0 + rng.normal(0.0, 0.1, tuple(module.weight.shape))))
                print('  %-64s norm weight 1 + normal(0, 0.1)' % name)


def ids(rng, vocab_size, length, valid, first=None):
    out = np.zeros((len(valid), length), dtype=np.int32)
    for r, n in enumerate(valid):
        out[r, :n] = rng.randint(2, vocab_size, size=n)
        if first is not None:
            out[r, 0] = first
    return out


def save(case, cls, config, rng):
    print('==', case, flush=True)
    d = os.path.join(OUT, case)
    if os.path.isdir(d):
        shutil.rmtree(d)
    model = cls(config)
    randomize(model, rng)
    model.eval()
    model.save_pretrained(d)
    assert sorted(os.listdir(d)) == ['config.json', 'generation_config.json', 'model.safetensors'] or \
        sorted(os.listdir(d)) == ['config.json', 'model.safetensors'], os.listdir(d)
    if os.path.exists(os.path.join(d, 'generation_config.json')):
        os.remove(os.path.join(d, 'generation_config.json'))
    fresh = cls.from_pretrained(d, attn_implementation='eager')
    fresh.eval()
    state = model.state_dict()
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    print('  safetensors keys:', sorted(load_file(os.path.join(d, 'model.safetensors'))))
    return d, fresh


def finish(d, arrays):
    for k, v in arrays.items():
        assert np.all(np.isfinite(v)), k
        print('  %-16s %s %s' % (k, v.shape, v.dtype))
    np.savez(os.path.join(d, 'reference.npz'), **arrays)


def gpt2():
    rng = np.random.RandomState(1201)
    config = transformers.GPT2Config(
        vocab_size=97, n_embd=32, n_layer=2, n_head=4, n_positions=64, n_inner=None,
        activation_function='gelu_new', layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=1, eos_token_id=1)
    d, model = save('gpt2_hf', transformers.GPT2LMHeadModel, config, rng)
    token_ids = ids(rng, 97, 16, [16, 11, 5])
    with torch.no_grad():
        out = model(input_ids=torch.tensor(token_ids, dtype=torch.long),
                    attention_mask=torch.tensor(token_ids > 0, dtype=torch.long), output_hidden_states=True)
    finish(d, {'token_ids': token_ids, 'hidden': out.hidden_states[-1].numpy().astype(np.float32),
               'logits': out.logits.numpy().astype(np.float32)})


def mt5():
    rng = np.random.RandomState(1202)
    config = transformers.MT5Config(
        vocab_size=97, d_model=32, d_kv=6, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        layer_norm_epsilon=1e-6, feed_forward_proj='gated-gelu', tie_word_embeddings=False,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    print('== mt5_hf', flush=True)
    d = os.path.join(OUT, 'mt5_hf')
    if os.path.isdir(d):
        shutil.rmtree(d)
    model = transformers.MT5ForConditionalGeneration(config)
    # transformers 5 always ties MT5's lm_head to the shared embedding (and
    # never rescales); the released mT5.1.1 checkpoints hold a separate
    # lm_head, so it is untied here by hand and the file written directly.
    model.lm_head.weight = torch.nn.Parameter(torch.zeros(97, 32))
    assert model.lm_head.weight is not model.shared.weight
    randomize(model, rng)
    model.eval()
    os.makedirs(d)
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if k not in ('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight')}
    safetensors.torch.save_file(state, os.path.join(d, 'model.safetensors'), metadata={'format': 'pt'})
    saved = config.to_dict()
    saved['tie_word_embeddings'] = False  # as the released mT5.1.1 configs say
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump({k: saved[k] for k in sorted(saved) if not k.startswith('_')}, f, indent=2)
    print('  safetensors keys:', len(state))
    encoder_ids = ids(rng, 97, 20, [20, 14, 7])
    decoder_ids = ids(rng, 97, 9, [9, 6, 4], first=0)
    with torch.no_grad():
        out = model(input_ids=torch.tensor(encoder_ids, dtype=torch.long),
                    attention_mask=torch.tensor(encoder_ids > 0, dtype=torch.long),
                    decoder_input_ids=torch.tensor(decoder_ids, dtype=torch.long))
    finish(d, {'encoder_ids': encoder_ids, 'decoder_ids': decoder_ids,
               'encoder': out.encoder_last_hidden_state.numpy().astype(np.float32),
               'decoder_logits': out.logits.numpy().astype(np.float32)})


if __name__ == '__main__':
    print('transformers', transformers.__version__, 'torch', torch.__version__)
    gpt2()
    mt5()
