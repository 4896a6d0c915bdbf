"""Adversarial training (FGM) and gradient penalty on an embedding matrix.

bert4keras offered `adversarial_training(model, 'Embedding-Token', epsilon)`
for Keras 2 by rewriting the model's train function; these are the same two
regularisers as a Keras 3 model that trains through `model.fit` on
TensorFlow and JAX, with any optimizer (the `extend_with_*` ones included),
mixed precision (loss scaling too) and `jit_compile`:

- **FGM** (fast gradient method, Miyato et al. 2017): with `g` the gradient
  of the loss with respect to the embedding matrix `E`, a second forward and
  backward pass runs with `E + epsilon * g / ||g||`, and the update uses the
  sum of both passes' gradients (the objective `L(E) + L(E + r_adv)`). The
  perturbation is never written into the variable: the second pass reads
  `E + r_adv` as a value, so `E` stays exactly as it was.
- **Gradient penalty**: the loss becomes `L + epsilon / 2 * ||dL/dE||^2`,
  differentiated twice (double backpropagation).

In both cases the logged `loss` is the task loss of the unperturbed batch
(what plain training logs), and evaluation and prediction are unchanged.
Under `tf.distribute` the embedding gradient is summed over the replicas
before it is used, so a step on several devices does what one device does
with the whole batch; under JAX's `keras.distribution` the arrays are global
and this holds by construction.
"""
import keras
from keras import ops

FGM = "fgm"
GRADIENT_PENALTY = "gradient_penalty"
METHODS = (FGM, GRADIENT_PENALTY)


def _find_embedding(model, embedding_name):
    """The embedding matrix variable of the layer called `embedding_name`."""
    try:
        layer = model.get_layer(embedding_name)
    except ValueError:
        names = [layer.name for layer in model.layers if "Embedding" in layer.name]
        raise ValueError(
            f"`embedding_name` must name a layer of the model, got {embedding_name!r}; embedding "
            f"layers of {model.name!r}: {names or 'none'} (bert4keras' token embedding is 'Embedding-Token')"
        ) from None
    variable = getattr(layer, "embeddings", None)
    if variable is None:
        trainable = layer.trainable_weights
        if len(trainable) != 1:
            raise ValueError(
                f"`embedding_name` must name a layer with an `embeddings` matrix (or one trainable "
                f"weight), got {embedding_name!r}, a {type(layer).__name__} with {len(trainable)} "
                "trainable weights")
        variable = trainable[0]
    if not variable.trainable:
        raise ValueError(f"`embedding_name`: the embeddings of layer {embedding_name!r} are frozen "
                         "(trainable=False); unfreeze them, adversarial training perturbs them")
    return variable


def fgm_perturbation(gradient, epsilon):
    """`epsilon * g / ||g||` (Frobenius norm over the whole matrix), in float32.

    A zero gradient gives a zero perturbation. The direction does not depend
    on a loss scale, so a scaled gradient may be passed.
    """
    g = ops.cast(gradient, "float32")
    norm = ops.sqrt(ops.sum(ops.square(g)))
    return epsilon * g / ops.maximum(norm, 1e-12)


def gradient_penalty_term(gradient, epsilon):
    """`epsilon / 2 * ||g||^2`, in float32."""
    g = ops.cast(gradient, "float32")
    return 0.5 * epsilon * ops.sum(ops.square(g))


@keras.saving.register_keras_serializable(package="bert4keras")
class AdversarialModel(keras.Model):
    """A model trained with FGM or a gradient penalty on one embedding matrix.

    It wraps `model` (it owns the same layers and variables; calling it calls
    `model`) and changes only the training step. Build it with
    `adversarial_training` or `gradient_penalty`, then compile and fit it.

    Args:
        model: the Keras model to train (e.g. a classifier on
            `build_transformer_model`'s encoder).
        embedding_name: name of the layer whose embedding matrix is
            perturbed or penalised (`'Embedding-Token'` for every bert4keras
            model).
        epsilon: size of the perturbation (FGM) or weight of the penalty.
        method: `'fgm'` or `'gradient_penalty'`.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:
    ```python
    bert = build_transformer_model(config_path, checkpoint_path, with_pool=True)
    probs = keras.layers.Dense(2, activation="softmax")(bert.outputs[1])
    model = AdversarialModel(keras.Model(bert.inputs, probs), "Embedding-Token", epsilon=0.5)
    model.compile(keras.optimizers.Adam(2e-5), "sparse_categorical_crossentropy")
    model.fit(dataset, epochs=3)
    ```
    """

    def __init__(self, model, embedding_name="Embedding-Token", epsilon=1.0, method=FGM, **kwargs):
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model, got {type(model).__name__}")
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon >= 0:
            raise ValueError(f"`epsilon` must be a number >= 0, got {epsilon!r}")
        kwargs.setdefault("name", f"{model.name}_{method}")
        super().__init__(**kwargs)
        self.model = model
        self.embedding_name = embedding_name
        self.epsilon = float(epsilon)
        self.method = method
        self.embedding = _find_embedding(model, embedding_name)
        # Logged next to the loss: the second pass's loss (FGM) or the penalty.
        self.regularizer_tracker = keras.metrics.Mean(
            name="adversarial_loss" if method == FGM else "gradient_penalty")

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def build(self, input_shape=None):
        self.built = True

    def _embedding_index(self):
        for i, variable in enumerate(self.trainable_variables):
            if variable is self.embedding:
                return i
        raise ValueError(f"`embedding_name`: the embeddings of {self.embedding_name!r} are not among the "
                         "model's trainable variables; is the layer frozen?")

    def _loss_scale(self):
        """The optimizer's loss scale (1 without a LossScaleOptimizer)."""
        return ops.cast(self.optimizer.scale_loss(ops.ones((), "float32")), "float32")

    # -- TensorFlow: the training step, with tf.GradientTape -----------------

    def _tf_train_step(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        index = self._embedding_index()
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if self.method == GRADIENT_PENALTY:
            with tf.GradientTape() as tape:
                with tf.GradientTape() as inner:
                    y_pred = self(x, training=True)
                    loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                             training=True)
                    scaled = self.optimizer.scale_loss(loss)
                gradient = _cross_replica_sum(_dense(inner.gradient(scaled, self.embedding)))
                penalty = gradient_penalty_term(gradient / self._loss_scale(), self.epsilon)
                # Every replica adds its share; the optimizer sums the replicas.
                total = scaled + ops.cast(self.optimizer.scale_loss(penalty / replicas), scaled.dtype)
            gradients = tape.gradient(total, variables)
            extra = penalty
        else:
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
                scaled = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, variables)
            delta = tf.stop_gradient(fgm_perturbation(
                _cross_replica_sum(_dense(gradients[index])), self.epsilon))
            frozen = [v.value for v in self.non_trainable_variables]
            with tf.GradientTape() as tape:
                values = [v.value for v in variables]
                values[index] = values[index] + ops.cast(delta, values[index].dtype)
                adv_pred, frozen = self.stateless_call(values, frozen, x, training=True)
                adv_loss, _ = self.stateless_compute_loss(
                    values, frozen, [v.value for v in self.metrics_variables], x=x, y=y, y_pred=adv_pred,
                    sample_weight=sample_weight, training=True)
                adv_scaled = self.optimizer.scale_loss(adv_loss)
            adv_gradients = tape.gradient(adv_scaled, variables)
            # The dropout seeds moved on in the second pass too.
            for variable, value in zip(self.non_trainable_variables, frozen):
                variable.assign(value)
            gradients = [_add(a, b) for a, b in zip(gradients, adv_gradients)]
            extra = adv_loss
        self.optimizer.apply_gradients(zip(gradients, variables))
        # Logged as Keras logs it: the task loss of the clean batch, averaged
        # over samples (the loss tracker is the metric named "loss").
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * replicas, sample_weight=batch)
        scale = replicas if self.method == FGM else 1
        self.regularizer_tracker.update_state(ops.cast(extra, "float32") * scale, sample_weight=batch)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    # -- JAX: the loss that Keras' own train step differentiates -------------

    def compute_loss_and_updates(self, trainable_variables, non_trainable_variables, metrics_variables, x, y,
                                 sample_weight, training=False, optimizer_variables=None):
        """Keras' stateless loss for `jax.grad`, with the regulariser added
        when training (JAX backend; TensorFlow runs `train_step`)."""
        base = super().compute_loss_and_updates
        args = (metrics_variables, x, y, sample_weight)
        kwargs = dict(training=training, optimizer_variables=optimizer_variables)
        if not training:
            return base(trainable_variables, non_trainable_variables, *args, **kwargs)
        import jax

        index = self._embedding_index()
        mapping = list(zip(self.optimizer.variables, optimizer_variables))
        with keras.StatelessScope(state_mapping=mapping):
            scale = self._loss_scale()
        if self.method == GRADIENT_PENALTY:
            def with_embedding(embedding):
                values = list(trainable_variables)
                values[index] = embedding
                return base(values, non_trainable_variables, *args, **kwargs)

            (loss, aux), gradient = jax.value_and_grad(with_embedding, has_aux=True)(trainable_variables[index])
            penalty = gradient_penalty_term(gradient / scale, self.epsilon)
            aux = aux[:3] + (self._track(aux[3], penalty, x),)
            return loss + ops.cast(penalty * scale, loss.dtype), aux
        # FGM. The clean pass's gradient enters the outer gradient through a
        # linear term, so each pass is differentiated once.
        (_, aux), gradients = jax.value_and_grad(base, has_aux=True)(
            trainable_variables, non_trainable_variables, *args, **kwargs)
        unscaled_loss, y_pred, non_trainable_variables, new_metrics_variables = aux
        gradients = jax.lax.stop_gradient(gradients)
        delta = jax.lax.stop_gradient(fgm_perturbation(gradients[index], self.epsilon))
        values = list(trainable_variables)
        values[index] = values[index] + delta.astype(values[index].dtype)
        adv_loss, (_, _, non_trainable_variables, _) = base(values, non_trainable_variables, *args, **kwargs)
        linear = sum(ops.sum(ops.cast(g, "float32") * ops.cast(v, "float32"))
                     for g, v in zip(gradients, trainable_variables))
        surrogate = adv_loss + ops.cast(linear - jax.lax.stop_gradient(linear), adv_loss.dtype)
        new_metrics_variables = self._track(new_metrics_variables, adv_loss / scale, x)
        return surrogate, (unscaled_loss, y_pred, non_trainable_variables, new_metrics_variables)

    def _track(self, metrics_variables, value, x):
        """`metrics_variables` with the regulariser's tracker updated by `value`."""
        import jax

        positions = {id(v): i for i, v in enumerate(self.metrics_variables)}
        where = [positions[id(v)] for v in self.regularizer_tracker.variables]
        batch = next(i for i in keras.tree.flatten(x) if i is not None).shape[0]
        updated = self.regularizer_tracker.stateless_update_state(
            [metrics_variables[i] for i in where], jax.lax.stop_gradient(ops.cast(value, "float32")),
            sample_weight=batch)
        metrics_variables = list(metrics_variables)
        for i, value in zip(where, updated):
            metrics_variables[i] = value
        return metrics_variables

    def train_step(self, *args):
        if keras.backend.backend() == "tensorflow":
            return self._tf_train_step(*args)
        if keras.backend.backend() == "jax":
            return super().train_step(*args)
        raise NotImplementedError(f"AdversarialModel trains on the tensorflow and jax backends, not "
                                  f"{keras.backend.backend()!r}")

    def get_config(self):
        config = super().get_config()
        config.update(
            model=keras.saving.serialize_keras_object(self.model), embedding_name=self.embedding_name,
            epsilon=self.epsilon, method=self.method,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def _dense(gradient):
    import tensorflow as tf

    return tf.convert_to_tensor(gradient)


def _add(a, b):
    import tensorflow as tf

    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0),
                                a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def _cross_replica_sum(value):
    """The sum over replicas (in a replica context of several), else `value`."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
    return value


def adversarial_training(model, embedding_name="Embedding-Token", epsilon=1.0):
    """`model` trained with FGM on the embedding matrix of `embedding_name`.

    The Keras 3 counterpart of bert4keras' function of the same name; it
    returns a new model (sharing `model`'s layers) to compile and fit,
    instead of patching `model`. See `AdversarialModel`.

    Example:
    ```python
    model = adversarial_training(model, "Embedding-Token", epsilon=0.5)
    model.compile(optimizer, loss="sparse_categorical_crossentropy")
    model.fit(dataset)
    ```
    """
    return AdversarialModel(model, embedding_name, epsilon, method=FGM)


def gradient_penalty(model, embedding_name="Embedding-Token", epsilon=1.0):
    """`model` trained on the loss plus `epsilon / 2 * ||dL/dE||^2`, `E` being
    the embedding matrix of `embedding_name` (bert4keras' example
    `loss_with_gradient_penalty`, as a model). Used as `adversarial_training`
    is, e.g. `gradient_penalty(model, epsilon=1.0).fit(...)` after `compile`.
    See `AdversarialModel`.
    """
    return AdversarialModel(model, embedding_name, epsilon, method=GRADIENT_PENALTY)
