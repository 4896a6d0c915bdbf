"""MLM pretraining for bert4keras models.

- `pretraining.data`: plain text -> sharded TFRecords (whole-word masking,
  80/10/10, packing, static or dynamic masks) and the `tf.data` input;
  `python -m pretraining.data --help`.
- `pretraining.model`: the pretraining model (MLM head on the masked
  positions only) and the float32 MLM loss; any Keras backend.
- `pretraining.pretrain`: the training entry point on `tf.distribute`;
  `python -m pretraining.pretrain --help`.

Importing this package imports nothing heavy.
"""
