"""Reference checkpoints and outputs from the original bert4keras 0.11.5 (tf.keras).

Run outside the repo's environment, in a venv with the original library
($B4K_ENV is any directory for it):

    python -m venv $B4K_ENV
    $B4K_ENV/bin/pip install tensorflow-cpu tf-keras
    $B4K_ENV/bin/pip install --no-deps bert4keras==0.11.5
    TF_KERAS=1 TF_USE_LEGACY_KERAS=1 $B4K_ENV/bin/python tests/data/make_family_reference_b4k.py

It writes tests/data/families/<case>/ for the cases albert_b4k, nezha_b4k,
electra_b4k and roformer_v2_b4k, each with:

- config.json: the Google/bert4keras-style config the model was built from;
- model.ckpt.index, model.ckpt.data-00000-of-00001: a Google-format TF
  checkpoint written by the builder's own save_weights_as_checkpoint (so the
  variable names are exactly those of variable_mapping());
- variables.json: variable_mapping() (keras layer name -> checkpoint names),
  the part of it that applies to the built model, and the (name, shape) list
  of the written checkpoint;
- reference.npz: token_ids, segment_ids (int32, (3, length)) and float32
  outputs, computed by FRESH models built from config.json + model.ckpt (so
  bert4keras' own checkpoint loading is exercised).

Weights are random and large on purpose (normal(0, 0.2); LayerNorm gamma
1 + normal(0, 0.1), beta normal(0, 0.1)), so attention is far from uniform
and position handling shows in the outputs.

NEZHA's relative positions in bert4keras 0.11.5: a non-trainable
RelativePositionEmbedding layer 'Embedding-Relative-Position' of
2 * 64 + 1 = 129 rows and attention_key_size (here 8) columns, initialised
with bert4keras' 'Sinusoidal' initializer: row r (r = 0..128) is
[sin(r w_0), cos(r w_0), sin(r w_1), cos(r w_1), ...] with
w_i = 10000 ** (-2 i / key_size), interleaved sin/cos. For query i and key j
it gathers row clip(j - i, -64, 64) + 64 (the clip at 64 is hard-coded). It
is shared by all layers and heads, used on both the keys
(scores += q_i . R_ij) and the values (o_i += sum_j A_ij R_ij), and it is NOT
in the checkpoint (it is not in variable_mapping()).

The compatibility shims below (tf.Session, tf.train.Saver) only live in this
script: bert4keras 0.11.5's save_weights_as_checkpoint uses TF1 names.
"""
import json
import os
import shutil
import sys

os.environ.setdefault('TF_KERAS', '1')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import tensorflow as tf

# bert4keras 0.11.5 writes checkpoints with TF1 symbols that TF2 only keeps in compat.v1.
if not hasattr(tf, 'Session'):
    tf.Session = tf.compat.v1.Session
if not hasattr(tf.train, 'Saver'):
    tf.train.Saver = tf.compat.v1.train.Saver
# ... and it reads the weights through the Keras session, so run in graph mode as on TF1.
tf.compat.v1.disable_eager_execution()

import bert4keras
from bert4keras.layers import LayerNormalization
from bert4keras.models import build_transformer_model

assert bert4keras.__version__ == '0.11.5', bert4keras.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'families')

TINY = dict(
    vocab_size=97,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=96,
    type_vocab_size=2,
    hidden_act='gelu',
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def make_inputs(rng, vocab_size, length, valid):
    """(3, length) int32 token/segment ids: right padding with 0, two segments per row."""
    token_ids = np.zeros((3, length), dtype=np.int32)
    segment_ids = np.zeros((3, length), dtype=np.int32)
    for r, n in enumerate(valid):
        token_ids[r, :n] = rng.randint(1, vocab_size, size=n)
        split = int(round(n * 0.55))
        segment_ids[r, split:n] = 1
    return token_ids, segment_ids


def randomize(keras_model, rng):
    """Random weights on every layer with trainable weights; non-trainable kept."""
    stats = {}
    for layer in keras_model.layers:
        if not layer.trainable_weights:
            continue
        trainable = set(id(w) for w in layer.trainable_weights)
        values = []
        for w, v in zip(layer.weights, layer.get_weights()):
            if id(w) not in trainable:
                values.append(v)
                continue
            name = w.name.split('/')[-1].split(':')[0]
            is_norm = isinstance(layer, LayerNormalization)
            if is_norm and name == 'gamma':
                new = 1.0 + rng.normal(0.0, 0.1, v.shape)
            elif is_norm and name == 'beta':
                new = rng.normal(0.0, 0.1, v.shape)
            else:
                new = rng.normal(0.0, 0.2, v.shape)
            values.append(new.astype(v.dtype))
            stats[w.name] = float(np.std(new)) if new.size > 1 else None
        layer.set_weights(values)
    return stats


def check_covered(builder):
    """Every trainable weight of the model has a checkpoint name."""
    mapping = {k: v for k, v in builder.variable_mapping().items() if k in builder.layers}
    for layer in builder.model.layers:
        n = len(layer.trainable_weights)
        if n:
            assert layer.name in mapping, layer.name
            assert len(mapping[layer.name]) == n, (layer.name, mapping[layer.name], n)
    return mapping


def run_case(case, model, config, length, valid, seed, outputs, save_kwargs, notes, also_check=()):
    """Build (with all heads), randomize, save, rebuild from checkpoint, compute outputs.

    outputs: list of (npz key, build kwargs) for the fresh reference models.
    also_check: (model name, npz key) pairs: other model classes that must
    reproduce a saved output from the same checkpoint (nothing is saved).
    """
    print('==', case, flush=True)
    d = os.path.join(OUT, case)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    config_path = os.path.join(d, 'config.json')
    with open(config_path, 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write('\n')
    ckpt = os.path.join(d, 'model.ckpt')

    rng = np.random.RandomState(seed)
    builder = build_transformer_model(config_path, model=model, return_keras_model=False, **save_kwargs)
    stats = randomize(builder.model, rng)
    used = check_covered(builder)
    builder.save_weights_as_checkpoint(ckpt)
    # tf.train.Saver also writes a 'checkpoint' pointer file and a model.ckpt.meta graph;
    # neither is needed to read the variables from the model.ckpt prefix, so drop them.
    for extra in ('checkpoint', 'model.ckpt.meta'):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    for extra in os.listdir(d):
        assert extra in ('config.json', 'model.ckpt.index', 'model.ckpt.data-00000-of-00001'), extra
    saved_values = {}
    for layer, names in used.items():
        values = tf.keras.backend.batch_get_value(builder.layers[layer].trainable_weights)
        saved_values.update(zip(names, values))
    tf.keras.backend.clear_session()

    reader = tf.train.load_checkpoint(ckpt)
    shapes = reader.get_variable_to_shape_map()
    ckpt_vars = sorted((name, list(shape)) for name, shape in shapes.items())
    print('checkpoint variables:', len(ckpt_vars))
    for name, shape in ckpt_vars:
        value = reader.get_tensor(name)
        want = saved_values[name].T if name == 'cls/seq_relationship/output_weights' else saved_values[name]
        np.testing.assert_array_equal(value, want)
        print('  %-70s %-12s std %.3f' % (name, shape, value.std()))
    assert set(shapes) == set(saved_values), set(shapes) ^ set(saved_values)
    weight_std = [s for s in stats.values() if s is not None]

    token_ids, segment_ids = make_inputs(rng, config['vocab_size'], length, valid)
    arrays = {'token_ids': token_ids, 'segment_ids': segment_ids}
    for key, kwargs in outputs:
        fresh = build_transformer_model(config_path, ckpt, model=model, return_keras_model=False, **kwargs)
        for layer, names in check_covered(fresh).items():
            values = tf.keras.backend.batch_get_value(fresh.layers[layer].trainable_weights)
            for name, value in zip(names, values):
                np.testing.assert_array_equal(value, saved_values[name])
        y = fresh.model.predict([token_ids, segment_ids], verbose=0)
        y = np.asarray(y, dtype=np.float32)
        if key == 'discriminator_probs':
            y = y[..., 0]
        assert np.all(np.isfinite(y)), key
        arrays[key] = y
        print('  %-18s %s' % (key, y.shape))
        tf.keras.backend.clear_session()

    for other, key in also_check:
        fresh = build_transformer_model(config_path, ckpt, model=other, return_keras_model=False)
        y = fresh.model.predict([token_ids, segment_ids], verbose=0)
        err = max(np.abs(y[r, :n] - arrays[key][r, :n]).max() for r, n in enumerate(valid))
        print('  %s reproduces %s: max err %.2e' % (other, key, err))
        assert err < 1e-5, (other, key, err)
        tf.keras.backend.clear_session()

    enc = arrays['encoder']
    for r, n in enumerate(valid):
        rows = enc[r, :n]
        # Not degenerate: positions differ and the rows do not collapse to one vector.
        spread = np.min([np.abs(rows[i] - rows[j]).max() for i in range(n) for j in range(i)])
        assert spread > 1e-2, (case, r, spread)
    np.savez(os.path.join(d, 'reference.npz'), **arrays)

    with open(os.path.join(d, 'variables.json'), 'w') as f:
        json.dump({
            'bert4keras_version': bert4keras.__version__,
            'model': model,
            'build_kwargs_for_checkpoint': save_kwargs,
            'variable_mapping': builder.variable_mapping(),
            'variable_mapping_used': used,
            'checkpoint_variables': ckpt_vars,
            'outputs': {key: kwargs for key, kwargs in outputs},
            'notes': notes,
        }, f, indent=1)
        f.write('\n')
    print('  weight std min %.3f max %.3f' % (min(weight_std), max(weight_std)))
    return arrays


def main():
    cases = sys.argv[1:] or ['albert_b4k', 'nezha_b4k', 'electra_b4k', 'roformer_v2_b4k']
    if 'albert_b4k' in cases:
        config = dict(TINY, embedding_size=16, num_hidden_layers=3)
        run_case(
            'albert_b4k', 'albert', config, length=12, valid=[12, 8, 9], seed=101,
            save_kwargs=dict(with_mlm=True, with_pool=True),
            outputs=[
                ('encoder', {}),
                ('mlm_probs', dict(with_mlm=True)),
                ('pooled', dict(with_pool=True)),
            ],
            also_check=[('albert_unshared', 'encoder')],
            notes=[
                'One shared block (Transformer-MultiHeadSelfAttention, -Norm, Transformer-FeedForward, '
                '-Norm) applied num_hidden_layers=3 times; post-LN.',
                'Embedding-Norm (LayerNorm over embedding_size=16) comes before Embedding-Mapping '
                '(bert/encoder/embedding_hidden_mapping_in, 16 -> 32).',
                'LayerNorm epsilon: Embedding-Norm and MLM-Norm 1e-12; the two norms of the shared block '
                'pass no epsilon, so K.epsilon() = 1e-7 (albert_unshared uses 1e-12 there; the difference '
                'is far below what these data resolve).',
                'MLM head: MLM-Dense (hidden -> embedding_size, hidden_act) -> MLM-Norm -> tied '
                'Embedding-Token (transposed) -> MLM-Bias (cls/predictions/output_bias) -> softmax.',
                'Pooler: tanh(Dense(encoder[:, 0])).',
                'albert_unshared built from this checkpoint reproduces encoder (checked, not saved).',
            ],
        )
    if 'nezha_b4k' in cases:
        # A smaller vocabulary keeps the two (3, 80, vocab) probability arrays small.
        config = dict(TINY, vocab_size=53, num_hidden_layers=2)
        run_case(
            'nezha_b4k', 'nezha', config, length=80, valid=[80, 55, 30], seed=202,
            save_kwargs=dict(with_mlm=True),
            outputs=[
                ('encoder', {}),
                ('mlm_probs', dict(with_mlm=True)),
                ('unilm_mlm_probs', dict(with_mlm=True, application='unilm')),
            ],
            notes=[
                'No absolute position embedding: Embedding-Token + Embedding-Segment -> Embedding-Norm.',
                'Relative positions: non-trainable Embedding-Relative-Position, 129 x key_size (8), row r = '
                'interleaved [sin(r w_0), cos(r w_0), ...], w_i = 10000^(-2i/key_size); query i, key j use row '
                'clip(j - i, -64, 64) + 64 (so distance d uses the sinusoid of d + 64). Shared by all layers and '
                'heads. scores = (q_i.k_j + q_i.R_ij) / sqrt(key_size); o_i = sum_j A_ij (v_j + R_ij). '
                'Not in the checkpoint.',
                'LayerNorm epsilon: Embedding-Norm and the transformer norms pass none (K.epsilon() = 1e-7); '
                'MLM-Norm (inherited from BERT) 1e-12.',
                'length 80 > 64, so the clipping matters (an unclipped table changes encoder by ~0.15).',
                'unilm: key j visible to query i iff cumsum(segment_ids)[j] <= cumsum(segment_ids)[i] '
                '(and j is not padding).',
            ],
        )
    if 'electra_b4k' in cases:
        config = dict(TINY, embedding_size=16, num_hidden_layers=2)
        run_case(
            'electra_b4k', 'electra', config, length=12, valid=[12, 8, 9], seed=303,
            save_kwargs=dict(with_discriminator=True),
            outputs=[
                ('encoder', {}),
                ('discriminator_probs', dict(with_discriminator=True)),
            ],
            notes=[
                'BERT body with electra/ names; all LayerNorm epsilons 1e-12.',
                'electra/embeddings/LayerNorm over embedding_size=16, then electra/embeddings_project (16 -> 32).',
                'Discriminator: Discriminator-Dense (discriminator_predictions/dense, hidden -> hidden, '
                'hidden_act) -> Discriminator-Prediction (discriminator_predictions/dense_1, hidden -> 1, '
                'sigmoid). discriminator_probs is that sigmoid, squeezed to (batch, length).',
                'bert4keras ELECTRA has no MLM (generator) head: with_mlm/with_pool are removed from its '
                'arguments, and application unilm/lm raises.',
            ],
        )
    if 'roformer_v2_b4k' in cases:
        config = dict(TINY, num_hidden_layers=2)
        run_case(
            'roformer_v2_b4k', 'roformer_v2', config, length=16, valid=[16, 11, 12], seed=404,
            save_kwargs=dict(with_mlm=True),
            outputs=[
                ('encoder', {}),
                ('mlm_probs', dict(with_mlm=True)),
                ('unilm_mlm_probs', dict(with_mlm=True, application='unilm')),
            ],
            notes=[
                'No biases anywhere and no norm parameters: the checkpoint holds only word/token_type '
                'embeddings and the q/k/v/o and two FFN kernels per layer (see checkpoint_variables).',
                'Norm (Embedding-Norm and both norms per layer): x / sqrt(mean(x^2, -1) + 1e-7) '
                '(LayerNormalization(zero_mean=False, scale=False, offset=False), K.epsilon() = 1e-7, '
                'tf.math.divide_no_nan). Post-norm: x = norm(x + attn(x)); x = norm(x + ffn(x)).',
                'Embeddings: token + segment -> dropout -> norm (no absolute positions).',
                'Rotary (Embedding-Rotary-Position): per head on q and k, positions 0..n-1, pairs (2i, 2i+1) '
                'rotated by angle pos * 10000^(-2i/key_size): q * cos + [-q1, q0, -q3, q2, ...] * sin.',
                'MLM head: logits = encoder @ word_embeddings^T (no dense, no norm, no bias) -> softmax. '
                '(Output-Mapping, used only when embedding_size != hidden_size, is not in variable_mapping.)',
            ],
        )


if __name__ == '__main__':
    main()
