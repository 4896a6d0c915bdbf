"""The steps every task script shares, so that each script reads as its task.

    args = _runner.parse(parser, argv)          # options, devices, seed, clock
    tokenizer, keep_tokens = _runner.vocabulary(args, train_texts)
    with _runner.scope(args):                   # the tf.distribute scope, if any
        model = ...                             # built from _options.model_config
        model.compile(_runner.adam(args, steps), loss)
        _runner.fit(args, model, generator, types, shapes, epochs)
    _runner.finish(args)                        # wall and CPU time

`--devices N` trains data-parallel: under TensorFlow with
`tf.distribute.MirroredStrategy` (over N GPUs, or the CPU split into N
logical devices), under JAX with `keras.distribution.DataParallel` (on a CPU,
start Python with `XLA_FLAGS=--xla_force_host_platform_device_count=N`).
`--pretrained-small` points `--config/--checkpoint/--vocab` at the export of
`pretrain_chinese_small.py`.
"""
import contextlib
import json
import os
import time

import keras
import numpy as np

from _location import chinese_vocab_file
from _options import corpus_vocab

from bert4keras.snippets import DataGenerator, sequence_padding


def parse(parser, argv=None):
    """Parse the command line, then set up the devices, the seed and the clock."""
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error(f"--devices must be >= 1, got {args.devices}")
    if args.pretrained_small:
        _use_pretrained_small(parser, args)
    elif args.split_seed is None:
        args.split_seed = args.seed
    args.strategy = setup_devices(args.devices)
    keras.utils.set_random_seed(args.seed)
    args.clock = (time.time(), time.process_time())
    return args


def _use_pretrained_small(parser, args):
    if args.config or args.checkpoint or args.vocab:
        parser.error("--pretrained-small sets --config/--checkpoint/--vocab; pass one or the other")
    if args.split_seed not in (None, 0):
        parser.error(f"--split-seed must be 0 with --pretrained-small, got {args.split_seed}: the recipe's "
                     "corpus leaves out the held-out lines of split 0 only, other splits would test on "
                     "pretraining text")
    args.split_seed = 0
    export = os.path.join(args.pretrained_small, "export")
    paths = {name: os.path.join(export, file) for name, file in
             (("config", "bert_config.json"), ("checkpoint", "bert_model.ckpt"), ("vocab", "vocab.txt"))}
    for name, path in paths.items():
        if not os.path.exists(path if name != "checkpoint" else path + ".index"):
            raise SystemExit(f"--pretrained-small: {path!r} is missing; run `python examples/pretrain_chinese_small.py` "
                             "first (or pass its --output-dir to --pretrained-small)")
        setattr(args, name, path)
    recipe = os.path.join(export, "recipe.json")
    if os.path.exists(recipe):
        with open(recipe, encoding="utf-8") as f:
            args.model = json.load(f).get("model", args.model)


def setup_devices(count):
    """The `tf.distribute` strategy for `count` devices (TensorFlow), or None.

    Under JAX, more than one device sets a global `DataParallel` distribution.
    """
    if count == 1:
        return None
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) >= count:
            devices = [f"/gpu:{i}" for i in range(count)]
        else:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")][:count]
            print(f"--devices {count}: {len(gpus)} GPU(s), so the CPU is split into {count} logical devices")
        print(f"data-parallel over {count} devices (MirroredStrategy): {', '.join(devices)}")
        return tf.distribute.MirroredStrategy(devices)
    if backend == "jax":
        devices = keras.distribution.list_devices()
        if len(devices) < count:
            raise SystemExit(f"--devices {count}: JAX sees {len(devices)} device(s); on a CPU, start Python with "
                             f"XLA_FLAGS=--xla_force_host_platform_device_count={count}")
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices[:count]))
        print(f"data-parallel over {count} devices (DataParallel): {', '.join(map(str, devices[:count]))}")
        return None
    raise SystemExit(f"--devices > 1 needs the tensorflow or jax backend, not {backend!r}")


def scope(args):
    """The strategy's scope (build and compile the models in it), or nothing."""
    return args.strategy.scope() if args.strategy is not None else contextlib.nullcontext()


def vocabulary(args, texts, min_count=1):
    """bert-base-chinese's vocabulary (or `--vocab`) reduced to the tokens of
    `texts`: `(tokenizer, keep_tokens)`, see `_options.corpus_vocab`."""
    from bert4keras.tokenizers import Tokenizer

    token_dict, keep_tokens = corpus_vocab(args.vocab or chinese_vocab_file(), texts, min_count=min_count)
    print(f"vocabulary: {len(token_dict)} tokens")
    return Tokenizer(token_dict, do_lower_case=True), keep_tokens


def learning_rate(args, pretrained_small=1e-3):
    """`--lr`, else 1e-3 from scratch, `pretrained_small` from the small
    self-pretrained model (by default the same rate, so that only the start
    differs; the short one-epoch tasks undertrain at 1e-4), and 2e-5 from
    another checkpoint (BERT-base sizes)."""
    if args.lr:
        return args.lr
    if args.pretrained_small:
        return pretrained_small
    return 2e-5 if args.checkpoint else 1e-3


def warmup_then_decay(steps):
    """The piecewise-linear schedule of every task: 10% warm-up, then linear decay to 0."""
    return {max(steps // 10, 1): 1.0, steps: 0.0}


def adam(args, steps):
    """Adam with `warmup_then_decay(steps)` at `learning_rate(args)`."""
    from bert4keras.optimizers import extend_with_piecewise_linear_lr

    return extend_with_piecewise_linear_lr(keras.optimizers.Adam)(
        learning_rate=learning_rate(args), lr_schedule=warmup_then_decay(steps))


def fit(args, model, generator, types, shapes, epochs, callbacks=(), verbose=0):
    """`model.fit` on a tf.data pipeline over `generator` (it shuffles; works
    on every backend), one epoch being `len(generator)` batches; the declared
    shapes let every batch have its own length."""
    dataset = generator.to_dataset(types=types, shapes=shapes, batched=True, repeat=True)
    devices = _data_parallel_devices()
    if devices > 1:
        import tensorflow as tf

        # JAX shards a batch evenly over the devices: leave out an uneven last batch.
        dataset = dataset.filter(lambda x, *rest: tf.shape(tf.nest.flatten(x)[0])[0] % devices == 0)
    return model.fit(dataset, steps_per_epoch=len(generator), epochs=epochs, callbacks=list(callbacks),
                     shuffle=False, verbose=verbose)


def _data_parallel_devices():
    distribution = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    return int(np.prod(distribution.device_mesh.shape)) if distribution is not None else 1


def predict(model, inputs):
    """`model.predict_on_batch(inputs)` as numpy; under a JAX data-parallel
    distribution a batch is padded to a multiple of the devices first."""
    devices = _data_parallel_devices()
    rows = len(inputs[0]) if isinstance(inputs, (list, tuple)) else len(inputs)
    extra = -rows % devices
    if extra:
        pad = lambda a: np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])  # noqa: E731
        inputs = type(inputs)(pad(a) for a in inputs) if isinstance(inputs, (list, tuple)) else pad(inputs)
    outputs = model.predict_on_batch(inputs)
    return keras.ops.convert_to_numpy(outputs)[:rows]


class PaddedGenerator(DataGenerator):
    """Batches of (token ids, segment ids) and targets of `(text, target)`
    items, padded to a multiple of `pad_multiple` (few shapes to compile).
    Subclasses give `encode(text, target) -> (ids, target)`,
    `collate(targets, length)` and `target_shape` (the dataset's declared
    target shape)."""

    target_shape = [None, None]
    pad_multiple = 16

    def __init__(self, data, tokenizer, maxlen, **kwargs):
        super().__init__(data, **kwargs)
        self.tokenizer, self.maxlen = tokenizer, maxlen

    def __iter__(self, random=False):
        batch_ids, batch_targets = [], []
        for is_end, (text, target) in self.sample(random):
            ids, target = self.encode(text, target)
            batch_ids.append(ids)
            batch_targets.append(target)
            if len(batch_ids) == self.batch_size or is_end:
                length = -(-max(map(len, batch_ids)) // self.pad_multiple) * self.pad_multiple
                batch_ids = sequence_padding(batch_ids, length=length)
                yield (batch_ids, np.zeros_like(batch_ids)), self.collate(batch_targets, length)
                batch_ids, batch_targets = [], []


def finish(args):
    wall, cpu = time.time() - args.clock[0], time.process_time() - args.clock[1]
    print(f"wall time: {wall:.0f} s (CPU time {cpu:.0f} s)")
