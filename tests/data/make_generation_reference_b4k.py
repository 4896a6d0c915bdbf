"""GPT2-ML reference checkpoint and outputs from the original bert4keras 0.11.5 (tf.keras).

    TF_KERAS=1 TF_USE_LEGACY_KERAS=1 $B4K_ENV/bin/python tests/data/make_generation_reference_b4k.py

(the environment of make_family_reference_b4k.py, whose helpers it uses). It
writes tests/data/families/gpt2_ml_b4k/ with config.json (bert4keras key
names, as GPT2-ML ships its config), a TF checkpoint written by the builder's
own save_weights_as_checkpoint (`newslm/...` names), variables.json and
reference.npz: token_ids (3, 16) int32, right-padded with 0 (16 / 11 / 5
valid), and `lm_probs` (3, 16, 97), the softmax output of a FRESH model built
from config.json + model.ckpt. bert4keras' GPT2_ML: Embedding-Token +
Embedding-Position -> Embedding-Norm; per block h = x + attention(x),
x = norm1(h + ffn(norm0(h))) (all norms epsilon 1e-5, hard-coded); no final
norm; output tied to Embedding-Token; hidden_act 'gelu' is the erf form.
Weights: normal(0, 0.2), LayerNorm gamma 1 + normal(0, 0.1), beta normal(0, 0.1).
"""
import json
import os
import shutil

from make_family_reference_b4k import OUT, check_covered, randomize  # sets up TF1 graph mode

import numpy as np
import tensorflow as tf
from bert4keras.models import build_transformer_model


def main():
    d = os.path.join(OUT, 'gpt2_ml_b4k')
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    config = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, hidden_act='gelu', max_position_embeddings=64,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_path = os.path.join(d, 'config.json')
    with open(config_path, 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write('\n')
    ckpt = os.path.join(d, 'model.ckpt')
    rng = np.random.RandomState(1203)
    builder = build_transformer_model(config_path, model='gpt2_ml', return_keras_model=False)
    randomize(builder.model, rng)
    used = check_covered(builder)
    builder.save_weights_as_checkpoint(ckpt)
    for extra in ('checkpoint', 'model.ckpt.meta'):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    tf.keras.backend.clear_session()
    reader = tf.train.load_checkpoint(ckpt)
    ckpt_vars = sorted((n, list(s)) for n, s in reader.get_variable_to_shape_map().items())
    for name, shape in ckpt_vars:
        print('  %-56s %-12s std %.3f' % (name, shape, reader.get_tensor(name).std()))

    token_ids = np.zeros((3, 16), np.int32)
    for r, n in enumerate([16, 11, 5]):
        token_ids[r, :n] = rng.randint(1, 97, size=n)
    fresh = build_transformer_model(config_path, ckpt, model='gpt2_ml', return_keras_model=False)
    probs = np.asarray(fresh.model.predict(token_ids, verbose=0), np.float32)
    assert probs.shape == (3, 16, 97) and np.all(np.isfinite(probs))
    print('  lm_probs', probs.shape, 'max prob', probs.max())
    np.savez(os.path.join(d, 'reference.npz'), token_ids=token_ids, lm_probs=probs)
    with open(os.path.join(d, 'variables.json'), 'w') as f:
        json.dump({'variable_mapping_used': used, 'checkpoint_variables': ckpt_vars}, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
