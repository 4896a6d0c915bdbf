"""MLM pretraining of BERT / RoFormer on `tf.distribute`.

```
python -m pretraining.pretrain --data records/ --config bert_config.json \\
    --output-dir runs/bert --batch-size 256 --train-steps 100000 \\
    --strategy mirrored --mixed-precision bf16 --xla
```

The loop is a plain custom training loop: `strategy.run` of one step inside
a `tf.function` that runs `--steps-per-execution` updates per call. Every
`--save-every` steps it writes a `tf.train.CheckpointManager` checkpoint
(model weights, dropout seed state, optimizer slots, step), keeping the last
`--keep-checkpoints`. Running the same command again restores the latest one
and continues the data stream where it stopped, so a killed run resumes and,
with `--deterministic`, produces the same losses as a run that was never
interrupted. A NaN/Inf loss stops the run before anything is saved, so the
latest checkpoint stays the last good one. At the end the weights are
exported as a Google-format checkpoint (`export/bert_model.ckpt` and
`bert_config.json`, loadable by `build_transformer_model`) and as a Keras
file (`export/model.keras`).

Run `python -m pretraining.pretrain --help` for every option.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from pretraining import data as data_lib

CRITICAL_ARGS = ("model", "batch_size", "grad_accum_steps", "seed", "mixed_precision", "optimizer")


class NonFiniteLossError(FloatingPointError):
    """The loss (or the weights about to be saved) became NaN or Inf."""


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def configure_cpu_devices(count):
    """Split the host CPU into `count` logical devices; returns their names.

    This must happen before TensorFlow runs its first op, unless the process
    already split its CPU into at least `count` devices.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < count:
            raise RuntimeError(f"--cpu-devices {count}: TensorFlow is already initialized with {have} "
                               "CPU device(s); split the CPU before running any TensorFlow op") from None
    return ["/cpu:%d" % i for i in range(count)]


def make_strategy(name, tpu=None, devices=None):
    """A `tf.distribute` strategy by name.

    Args:
        name: 'default' (one device), 'mirrored' (all local GPUs, or
            `devices`), 'multiworker' (`MultiWorkerMirroredStrategy`, cluster
            from the `TF_CONFIG` environment variable) or 'tpu'.
        tpu: TPU name or address (`grpc://...`) for 'tpu'; defaults to the
            `TPU_NAME` environment variable, else 'local' (a TPU VM).
        devices: device list for 'mirrored'.
    """
    import tensorflow as tf

    if name == "tpu":
        address = tpu or os.environ.get("TPU_NAME") or "local"
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multiworker reads the cluster from the TF_CONFIG "
                             "environment variable, which is not set")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(
        f"--strategy must be default, mirrored, multiworker or tpu, got {name!r} "
        "(unknown strategy)"
    )


def worker_role(strategy):
    """`(is_chief, task_id)` of this process in the strategy's cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if task_type is None or task_type == "chief":
        return True, task_id
    if task_type == "worker":
        has_chief = "chief" in (resolver.cluster_spec().as_dict() if resolver else {})
        return (not has_chief and task_id == 0), task_id
    return False, task_id


# ---------------------------------------------------------------------------
# Model and optimizer
# ---------------------------------------------------------------------------


def make_optimizer(optimizer="adamw", learning_rate=1e-4, weight_decay=0.01, warmup_steps=0,
                   train_steps=None, end_lr_ratio=0.0, grad_accum_steps=1, clip_norm=1.0,
                   beta_1=0.9, beta_2=0.999, epsilon=1e-6):
    """AdamW or LAMB from `bert4keras.optimizers`, with linear warmup/decay.

    The learning rate rises linearly over `warmup_steps` updates, then falls
    linearly to `learning_rate * end_lr_ratio` at `train_steps`. LayerNorm
    weights and biases get neither weight decay nor layer adaptation.
    """
    import keras

    from bert4keras import optimizers as bo

    if optimizer not in ("adamw", "lamb"):
        raise ValueError(f"optimizer must be 'adamw' or 'lamb', got {optimizer!r}")
    klass = bo.extend_with_weight_decay(keras.optimizers.Adam)
    if optimizer == "lamb":
        klass = bo.extend_with_layer_adaptation(klass)
    klass = bo.extend_with_piecewise_linear_lr(klass)
    kwargs = {}
    if grad_accum_steps > 1:
        klass = bo.extend_with_gradient_accumulation(klass)
        kwargs["grad_accum_steps"] = grad_accum_steps
    if clip_norm:
        klass = bo.extend_with_gradient_clipping(klass)
        kwargs["clip_global_norm"] = clip_norm
    if optimizer == "lamb":
        kwargs["exclude_from_layer_adaptation"] = ["Norm", "bias"]
    return klass(
        learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
        weight_decay_rate=weight_decay, exclude_from_weight_decay=["Norm", "bias"],
        lr_schedule=lr_schedule(warmup_steps, train_steps, end_lr_ratio), **kwargs)


def lr_schedule(warmup_steps, train_steps, end_lr_ratio):
    """`{step: multiplier}` for `extend_with_piecewise_linear_lr`."""
    schedule = {}
    if warmup_steps:
        schedule[int(warmup_steps)] = 1.0
    else:
        schedule[0] = 1.0
    if train_steps and train_steps > (warmup_steps or 0):
        schedule[int(train_steps)] = float(end_lr_ratio)
    return schedule


def schedule_value(step, schedule):
    """The multiplier of `lr_schedule` at `step`, for logging: the value of
    the optimizer's own `piecewise_linear`."""
    import keras

    from bert4keras.optimizers import piecewise_linear

    return float(keras.ops.convert_to_numpy(piecewise_linear(step, schedule)))


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _checkpoint_variables(model):
    """`{unique name: variable}` of every model variable (seed states too)."""
    out = {}
    for variable in model.variables:
        name = variable.path.replace("/", "|")
        base, k = name, 1
        while name in out:
            k += 1
            name = f"{base}#{k}"
        out[name] = variable
    return out


def _log(message, enabled=True):
    if enabled:
        print(message, flush=True)


class _Run:
    """What the steps of `run` share: the arguments, then each step's results."""

    def __init__(self, args):
        self.args = args


def run(args, strategy=None):
    """Train as `args` (the parsed command line) says; returns a summary dict.

    `strategy` replaces the one `args.strategy` names. Pass one when training
    several times in one process: two strategies over the same devices in a
    process may mix up their collective operations.

    The steps: strategy, checks of the inputs, build, state (checkpoint and
    resume), the training loop, export.
    """
    r = _Run(args)
    _setup_strategy(r, strategy)
    _check_inputs(r)
    _build(r)
    _restore_state(r)
    _compile_steps(r)
    _train_loop(r)
    return _export(r)


def _setup_strategy(r, strategy):
    args = r.args
    if args.cpu_devices:
        devices = configure_cpu_devices(args.cpu_devices)
        if args.strategy != "mirrored":
            raise ValueError(
                f"--cpu-devices must go with --strategy mirrored, got --strategy {args.strategy}"
            )
    else:
        devices = None
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("pretraining.pretrain runs on tf.distribute and needs KERAS_BACKEND=tensorflow, "
                           f"not {keras.backend.backend()!r}")
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(args.seed)

    if strategy is None:
        strategy = make_strategy(args.strategy, tpu=args.tpu, devices=devices)
    r.strategy = strategy
    r.is_chief, r.task_id = worker_role(strategy)
    r.replicas = strategy.num_replicas_in_sync
    if args.batch_size % r.replicas:
        raise ValueError(
            f"--batch-size must be divisible by the {r.replicas} replicas, got {args.batch_size}"
        )


def _check_inputs(r):
    """The records against the expected shapes and the model config."""
    args = r.args
    r.meta, r.files = data_lib.check_records(args.data, seq_len=args.seq_len,
                                             max_predictions=args.max_predictions)
    r.seq_len, r.max_predictions = r.meta["seq_len"], r.meta["max_predictions_per_seq"]
    model_config = _read_model_config(args.config)
    if r.meta["vocab_size"] != model_config.get("vocab_size"):
        raise data_lib.DataError(
            f"records in {args.data!r} use a vocabulary of {r.meta['vocab_size']} tokens, but "
            f"{args.config!r} has vocab_size={model_config.get('vocab_size')}")

    from bert4keras.models import MODELS

    positions = model_config.get("max_position")
    if MODELS[args.model].absolute_positions and positions is not None and positions < r.seq_len:
        raise ValueError(f"records have seq_len={r.seq_len} but {args.config!r} has only "
                         f"max_position_embeddings={positions}")

    r.output_dir = args.output_dir
    r.ckpt_dir = os.path.join(r.output_dir, "checkpoints")
    os.makedirs(r.output_dir, exist_ok=True)
    if r.is_chief:
        _check_run_config(r.output_dir, args)


def _build(r):
    """The model and its optimizer, built under the strategy and the precision policy."""
    import keras

    from bert4keras.models import build_transformer_model
    from pretraining.model import build_pretraining_model

    args = r.args
    r.policy = {"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[args.mixed_precision]
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(r.policy)
    try:
        with r.strategy.scope():
            r.builder = build_transformer_model(
                args.config, args.init_checkpoint, model=args.model, with_mlm="linear",
                with_pool=not args.no_pooler, return_keras_model=False)
            r.model = build_pretraining_model(r.builder, max_predictions=r.max_predictions)
            optimizer = make_optimizer(
                args.optimizer, args.learning_rate, args.weight_decay, args.warmup_steps,
                args.train_steps, args.end_lr_ratio, args.grad_accum_steps, args.clip_norm)
            if args.mixed_precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(r.model.trainable_variables)
            r.optimizer = optimizer
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _restore_state(r):
    """The checkpoint (weights, seed states, optimizer, step); resumes from the latest."""
    import tensorflow as tf

    args = r.args
    r.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    r.checkpoint = tf.train.Checkpoint(model=_checkpoint_variables(r.builder.model),
                                       optimizer=r.optimizer, step=r.step)
    r.save_dir = r.ckpt_dir if r.is_chief else os.path.join(r.ckpt_dir, f"workertemp_{r.task_id}")
    r.manager = tf.train.CheckpointManager(r.checkpoint, r.save_dir, max_to_keep=args.keep_checkpoints,
                                           checkpoint_name="ckpt")
    latest = tf.train.latest_checkpoint(r.ckpt_dir)
    if latest:
        r.checkpoint.restore(latest).assert_existing_objects_matched()
        _log(f"resumed from {latest} at step {int(r.step.numpy())}", r.is_chief)
    r.start = int(r.step.numpy())
    _log(f"{type(r.strategy).__name__} with {r.replicas} replica(s); global batch {args.batch_size} x "
         f"{args.grad_accum_steps} accumulation x {r.meta['seq_len']} tokens; {r.meta['masking']} masking; "
         f"precision {r.policy}{'; XLA' if args.xla else ''}", r.is_chief)


def _compile_steps(r):
    """The distributed input and the compiled training step."""
    import tensorflow as tf

    from pretraining.model import masked_lm_loss

    args, strategy, optimizer, model = r.args, r.strategy, r.optimizer, r.model
    replicas, files, meta, start = r.replicas, r.files, r.meta, r.start
    accum = args.grad_accum_steps

    def dataset_fn(context):
        pipelines = context.num_input_pipelines
        per_replica = context.get_per_replica_batch_size(args.batch_size)
        local = replicas // pipelines
        return data_lib.make_dataset(
            files, meta, per_replica * local, seed=args.seed, shuffle_buffer=args.shuffle_buffer,
            skip_batches=start * accum, mask_prob=args.mask_prob, num_shards=pipelines,
            shard_index=context.input_pipeline_id, split=local)

    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    r.iterator = iter(dataset)
    variables = r.variables = model.trainable_variables
    fp16 = args.mixed_precision == "fp16"
    # Under a strategy (even of one replica) the optimizer's cross-replica
    # updates go through merge_call, which XLA cannot compile; the default
    # strategy has none, so the whole step compiles.
    full_xla = args.xla and strategy is tf.distribute.get_strategy()

    def gradients(batch, global_count):
        with tf.GradientTape() as tape:
            logits = model([batch["token_ids"], batch["segment_ids"], batch["masked_positions"]],
                           training=True)
            loss_sum, count, correct = masked_lm_loss(batch["masked_ids"], logits, batch["masked_weights"])
            loss = loss_sum / tf.maximum(global_count, 1.0)
            if fp16:
                loss = optimizer.scale_loss(loss)
        return tape.gradient(loss, variables), loss_sum, count, correct

    if args.xla and not full_xla and args.strategy != "tpu":
        # With several replicas the optimizer's cross-replica updates stay
        # outside XLA; the forward and backward pass is compiled.
        gradients = tf.function(gradients, jit_compile=True, reduce_retracing=True)

    def replica_step(batch):
        context = tf.distribute.get_replica_context()
        global_count = context.all_reduce("sum", tf.reduce_sum(batch["masked_weights"]))
        grads, loss_sum, count, correct = gradients(batch, global_count)
        if fp16 and replicas > 1:
            # LossScaleOptimizer decides to skip a step from the first
            # replica's gradients only; make every replica see an overflow.
            values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
            bad = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(v), tf.float32)) for v in values])
            bad = context.all_reduce("sum", bad)
            poison = tf.where(bad > 0, float("nan"), 0.0)
            grads = [_add_to_gradient(g, poison) for g in grads]
        optimizer.apply(grads, variables)
        return tf.stack([loss_sum, count, correct])

    if full_xla:
        replica_step = tf.function(replica_step, jit_compile=True, reduce_retracing=True)

    @tf.function
    def train_chunk(iterator, num_steps):
        out = tf.TensorArray(tf.float32, size=num_steps)
        for i in tf.range(num_steps):
            values = strategy.run(replica_step, args=(next(iterator),))
            out = out.write(i, strategy.reduce("sum", values, axis=None))
        return out.stack()

    @tf.function
    def weights_finite():
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])

    r.train_chunk, r.weights_finite = train_chunk, weights_finite


def _train_loop(r):
    """Runs the updates from `r.start` to `--train-steps`: logs, checkpoints, stops on NaN."""
    import tensorflow as tf

    args, is_chief, ckpt_dir = r.args, r.is_chief, r.ckpt_dir
    output_dir, start, accum, seq_len = r.output_dir, r.start, args.grad_accum_steps, r.seq_len
    fp16 = args.mixed_precision == "fp16"
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs")) if is_chief else None
    log_path = os.path.join(output_dir, "train_log.jsonl")
    if is_chief:
        _truncate_log(log_path, start)
    total = args.train_steps
    tokens_per_update = args.batch_size * accum * seq_len
    progress = None
    if is_chief and args.progress:
        from tqdm import tqdm

        progress = tqdm(total=total, initial=start, unit="step", desc="pretraining", dynamic_ncols=True)
    say = progress.write if progress is not None else print
    schedule = lr_schedule(args.warmup_steps, args.train_steps, args.end_lr_ratio)
    r.rates, r.history = [], []
    current = start
    try:
        while current < total:
            next_save = (current // args.save_every + 1) * args.save_every
            n = min(args.steps_per_execution, total - current, next_save - current)
            began = time.perf_counter()
            try:
                out = r.train_chunk(r.iterator, tf.constant(n * accum, tf.int32)).numpy()
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
                # Only a full scan tells a bad record from another error.
                bad = data_lib.find_bad_file(r.files, r.meta["masking"], seq_len, r.max_predictions)
                if bad is not None:
                    raise bad from e
                raise
            elapsed = time.perf_counter() - began
            out = out.reshape(n, accum, 3).sum(axis=1)
            losses = out[:, 0] / np.maximum(out[:, 1], 1.0)
            accuracy = out[:, 2] / np.maximum(out[:, 1], 1.0)
            tokens_per_sec = n * tokens_per_update / elapsed
            bad_steps = np.nonzero(~np.isfinite(losses))[0]
            if bad_steps.size:
                first = current + int(bad_steps[0]) + 1
                raise NonFiniteLossError(
                    f"loss is {losses[bad_steps[0]]} at step {first}; stopping without saving. "
                    f"{_last_good(ckpt_dir)} Lower --learning-rate, raise --warmup-steps or set "
                    "--clip-norm, then re-run the same command to resume from it.")
            r.step.assign(current + n)
            if current > start:  # the first call of a process includes tracing
                r.rates.append(tokens_per_sec)
            records = []
            for k in range(n):
                s = current + k + 1
                records.append({"step": s, "loss": float(losses[k]), "accuracy": float(accuracy[k]),
                                "learning_rate": args.learning_rate * schedule_value(s - 1, schedule),
                                "tokens_per_sec": tokens_per_sec})
            r.history.extend(records)
            if is_chief:
                with open(log_path, "a", encoding="utf-8") as f:
                    for rec in records:
                        f.write(json.dumps(rec) + "\n")
                with writer.as_default():
                    for rec in records:
                        for key in ("loss", "accuracy", "learning_rate"):
                            _scalar("train/" + key, rec[key], rec["step"])
                    _scalar("train/tokens_per_sec", tokens_per_sec, current + n)
                    if fp16:
                        _scalar("train/loss_scale", float(r.optimizer.dynamic_scale.numpy()), current + n)
                writer.flush()
            current += n
            if progress is not None:
                progress.update(n)
                progress.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{accuracy[-1]:.3f}",
                                     tok_s=f"{tokens_per_sec:,.0f}")
            elif is_chief and (current % args.log_every == 0 or current == total):
                _log(f"step {current}/{total} loss {losses[-1]:.4f} acc {accuracy[-1]:.3f} "
                     f"tokens/s {tokens_per_sec:,.0f}")
            if current % args.save_every == 0 or current == total:
                if not bool(r.weights_finite().numpy()):
                    raise NonFiniteLossError(
                        f"weights became NaN or Inf at step {current}; stopping without saving. "
                        f"{_last_good(ckpt_dir)}")
                path = r.manager.save(checkpoint_number=current)
                if not is_chief:
                    shutil.rmtree(r.save_dir, ignore_errors=True)
                if is_chief:
                    say(f"checkpoint saved: step {current} {path}")
                    sys.stdout.flush()
    finally:
        if progress is not None:
            progress.close()
    r.current = current


def _export(r):
    """The summary; the chief also exports the Google checkpoint and the Keras file."""
    import tensorflow as tf

    summary = {"start_step": r.start, "step": r.current, "history": r.history,
               "tokens_per_sec": float(np.median(r.rates)) if r.rates else None,
               "num_replicas": r.replicas, "checkpoint": tf.train.latest_checkpoint(r.ckpt_dir)}
    if r.is_chief and not r.args.no_export:
        summary.update(export(r.builder, os.path.join(r.output_dir, "export"), r.args.vocab))
        _log(f"exported {summary['google_checkpoint']} and {summary['keras_model']}")
    digest = hashlib.sha256()
    for v in r.variables:
        digest.update(np.ascontiguousarray(v.numpy()).tobytes())
    summary["weights_sha256"] = digest.hexdigest()
    return summary


def _add_to_gradient(gradient, value):
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values + tf.cast(value, gradient.dtype), gradient.indices,
                                gradient.dense_shape)
    return gradient + tf.cast(value, gradient.dtype)


def export(builder, export_dir, vocab=None):
    """Write the Google checkpoint + config (+ vocab) and the Keras model."""
    os.makedirs(export_dir, exist_ok=True)
    prefix = os.path.join(export_dir, "bert_model.ckpt")
    config_path = os.path.join(export_dir, "bert_config.json")
    builder.save_weights_as_checkpoint(prefix, config_path=config_path)
    keras_path = os.path.join(export_dir, "model.keras")
    builder.model.save(keras_path)
    out = {"google_checkpoint": prefix, "config": config_path, "keras_model": keras_path}
    if vocab:
        shutil.copyfile(vocab, os.path.join(export_dir, "vocab.txt"))
        out["vocab"] = os.path.join(export_dir, "vocab.txt")
    return out


def _truncate_log(path, step):
    """Drop the log lines of updates after `step` (redone after a resume)."""
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # a line cut short by a kill
    if len(kept) != len(lines):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)


def _scalar(tag, value, step):
    """A TensorBoard scalar, written without needing the tensorboard package."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)


def _last_good(ckpt_dir):
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest is None:
        return "No checkpoint was saved yet."
    return f"The last good checkpoint is {latest}."


def _read_model_config(path):
    """`bert4keras.models.read_config`, with errors that name the flag."""
    from bert4keras.models import read_config

    try:
        return read_config(path)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"--config: {e}") from None


def _check_run_config(output_dir, args):
    """Refuse to resume a run with settings that change the data stream."""
    path = os.path.join(output_dir, "run_config.json")
    current = {k: getattr(args, k) for k in CRITICAL_ARGS}
    current["data"] = os.path.abspath(args.data)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        changed = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
        if changed and os.path.isdir(os.path.join(output_dir, "checkpoints")):
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"{output_dir!r} holds a run with other settings ({details}); "
                             "use a new --output-dir or the same settings to resume")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(current, f, indent=1)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def build_parser():
    p = argparse.ArgumentParser(prog="python -m pretraining.pretrain",
                                description="MLM pretraining of any bert4keras encoder family on tf.distribute.")
    g = p.add_argument_group("data and model")
    g.add_argument("--data", required=True, help="records directory from `python -m pretraining.data`")
    g.add_argument("--config", required=True, help="bert_config.json (Google or HF key names)")
    from bert4keras.models import model_names

    g.add_argument("--model", choices=model_names(), default="bert",
                   help="a registered family of bert4keras.models (default: bert)")
    g.add_argument("--init-checkpoint", help="warm start from this checkpoint (Google, safetensors, HF dir)")
    g.add_argument("--vocab", help="vocab.txt to copy next to the exported checkpoint")
    g.add_argument("--no-pooler", action="store_true",
                   help="leave out the [CLS] pooler (by default it is exported untrained, so that "
                        "with_pool=True loads the checkpoint); needed to warm-start from a checkpoint "
                        "without one")
    g.add_argument("--output-dir", required=True, help="checkpoints, logs and the export go here")
    g.add_argument("--seq-len", type=int, help="expected seq_len of the records (checked)")
    g.add_argument("--max-predictions", type=int, help="expected max_predictions_per_seq (checked)")
    g.add_argument("--mask-prob", type=float, help="masking rate of dynamic-masking records")
    g.add_argument("--shuffle-buffer", type=int, default=10000)
    g = p.add_argument_group("optimization")
    g.add_argument("--batch-size", type=int, default=256, help="global batch size per micro-step")
    g.add_argument("--train-steps", type=int, required=True, help="optimizer updates")
    g.add_argument("--optimizer", choices=("adamw", "lamb"), default="adamw")
    g.add_argument("--learning-rate", type=float, default=1e-4)
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--warmup-steps", type=int, default=0)
    g.add_argument("--end-lr-ratio", type=float, default=0.0,
                   help="learning rate at --train-steps, relative to --learning-rate")
    g.add_argument("--grad-accum-steps", type=int, default=1)
    g.add_argument("--clip-norm", type=float, default=1.0, help="global gradient norm (0: off)")
    g = p.add_argument_group("execution")
    g.add_argument("--strategy", choices=("default", "mirrored", "multiworker", "tpu"), default="default")
    g.add_argument("--tpu", help="TPU name or grpc:// address (default: $TPU_NAME, else 'local')")
    g.add_argument("--cpu-devices", type=int, default=0,
                   help="split the CPU into this many logical devices and mirror over them "
                        "(for trying --strategy mirrored without GPUs)")
    g.add_argument("--mixed-precision", choices=("off", "bf16", "fp16"), default="off")
    g.add_argument("--xla", action="store_true", help="compile the step with XLA (jit_compile)")
    g.add_argument("--steps-per-execution", type=int, default=1,
                   help="updates per tf.function call (fewer host round trips)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--deterministic", action="store_true",
                   help="tf.config.experimental.enable_op_determinism (reproducible, slower)")
    g = p.add_argument_group("checkpoints and logs")
    g.add_argument("--save-every", type=int, default=1000, help="checkpoint every N updates")
    g.add_argument("--keep-checkpoints", type=int, default=5)
    g.add_argument("--log-every", type=int, default=100, help="print every N updates without tqdm")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bar")
    g.add_argument("--no-export", action="store_true", help="skip the final export")
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("batch_size", "train_steps", "grad_accum_steps", "steps_per_execution", "save_every",
                 "keep_checkpoints", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.learning_rate <= 0:
        parser.error("--learning-rate must be > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = run(args)
    except (NonFiniteLossError, data_lib.DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    rate = f", median {summary['tokens_per_sec']:,.0f} tokens/s" if summary["tokens_per_sec"] else ""
    _log(f"done: step {summary['step']}{rate}, weights sha256 {summary['weights_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
