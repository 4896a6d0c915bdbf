"""Masked-language-model corruption and a short MLM training loop
(basic_masked_language_model.py, and the warm-up of
task_sentiment_classification.py)."""
import numpy as np


def mask_tokens(token_ids, rng, mask_id, vocab_size, rate=0.15, first_id=5, bert_mix=True):
    """BERT masking: pick `rate` of the real tokens as targets; replace 80% of
    them by [MASK], 10% by a random token, keep 10% (all by [MASK] when not
    `bert_mix`). Returns the corrupted ids and the targets (0 where nothing is
    predicted)."""
    ids = np.array(token_ids)
    real = np.arange(1, len(ids) - 1)  # never [CLS] / [SEP]
    picked = real[rng.random(len(real)) < rate]
    if len(picked) == 0 and len(real):
        picked = rng.choice(real, 1)
    targets = np.zeros_like(ids)
    targets[picked] = ids[picked]
    draw = rng.random(len(picked)) if bert_mix else np.zeros(len(picked))
    ids[picked[draw < 0.8]] = mask_id
    random_slots = picked[(draw >= 0.8) & (draw < 0.9)]
    ids[random_slots] = rng.integers(first_id, vocab_size, len(random_slots))
    return ids, targets


def masked_lm_generator(texts, tokenizer, maxlen, pad_multiple=16, **kwargs):
    """A `DataGenerator` of BERT-masked `texts`: inputs (ids, segments), the
    original ids as targets, weighted only where a token was picked. Batches
    are padded to a multiple of `pad_multiple` (few shapes to compile)."""
    from bert4keras.snippets import DataGenerator, sequence_padding

    class MaskedGenerator(DataGenerator):
        def __iter__(self, random=False):
            batch_ids, batch_targets = [], []
            mask_id = tokenizer.token_to_id("[MASK]")
            for is_end, text in self.sample(random):
                ids = tokenizer.encode(text, maxlen=maxlen)[0]
                ids, targets = mask_tokens(ids, self.rng, mask_id, tokenizer.vocab_size)
                batch_ids.append(ids)
                batch_targets.append(targets)
                if len(batch_ids) == self.batch_size or is_end:
                    length = -(-max(map(len, batch_ids)) // pad_multiple) * pad_multiple
                    ids = sequence_padding(batch_ids, length=length)
                    targets = sequence_padding(batch_targets, length=length)
                    yield (ids, np.zeros_like(ids)), targets, (targets > 0).astype("float32")
                    batch_ids, batch_targets = [], []

    return MaskedGenerator(texts, **kwargs)


def train_mlm(model, generator, steps, learning_rate, verbose=2):
    """Train `model`'s MLM head (its last output, probabilities) on
    `generator` for `steps` batches: Adam, 10% warm-up then linear decay to 0.
    Returns the final loss."""
    import keras

    from bert4keras.optimizers import extend_with_piecewise_linear_lr

    optimizer = extend_with_piecewise_linear_lr(keras.optimizers.Adam)(
        learning_rate=learning_rate, lr_schedule={max(steps // 10, 1): 1.0, steps: 0.0}
    )
    trainer = keras.Model(model.inputs, model.outputs[-1])
    trainer.compile(optimizer, loss="sparse_categorical_crossentropy")
    # A tf.data pipeline over the generator (it shuffles); the declared
    # shapes let every batch have its own length.
    dataset = generator.to_dataset(
        types=(("int32", "int32"), "int32", "float32"),
        shapes=(([None, None], [None, None]), [None, None], [None, None]),
        batched=True, repeat=True,
    )
    epochs = max(1, -(-steps // 500))
    history = trainer.fit(dataset, steps_per_epoch=-(-steps // epochs), epochs=epochs, shuffle=False,
                          verbose=verbose)
    return history.history["loss"][-1]
