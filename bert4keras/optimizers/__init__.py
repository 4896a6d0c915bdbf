"""Composable optimizer extensions in the style of bert4keras.

Each `extend_with_*` factory takes a Keras optimizer class and returns a
subclass with one more feature; the factories compose in any order:

```python
AdamEMA = extend_with_exponential_moving_average(
    extend_with_gradient_accumulation(
        extend_with_layerwise_lr(extend_with_weight_decay(keras.optimizers.Adam))
    )
)
optimizer = AdamEMA(
    learning_rate=1e-4,
    weight_decay_rate=0.01,
    exclude_from_weight_decay=["Norm", "bias"],
    lr_multipliers=layerwise_lr_decay(model, 0.8),
    grad_accum_steps=4,
    ema_momentum=0.999,
)
```

All extensions share one update pipeline (`pipeline.OptimizerPipeline.apply`):

1. gradients are summed across replicas first (under `tf.distribute`);
2. they are accumulated for `grad_accum_steps` micro-steps;
3. the accumulated gradient is clipped / transformed;
4. each variable gets its update (learning-rate multipliers, weight decay,
   layer adaptation, the base optimizer's `update_step`, lookahead, EMA).

So clipping always sees the gradient that is actually applied, and
`optimizer.iterations` (and so every learning-rate schedule) counts update
steps, not micro-steps.

A composed class serializes to a config that records the base optimizer
and the list of extensions; loading it (also inside a saved `.keras` model)
rebuilds the same class, so no class has to be registered by hand.

Modules: `pipeline` (the staged core), `decay` (weight decay, layer
adaptation), `learning_rates` (piecewise and layer-wise), `accumulation`,
`clipping` (clipping and transforms), `lookahead`, `ema` (with its
callback), `compose` (the list of extensions, the factories and
serialization) and `_keras`, the only module that touches private Keras
members.
"""

from bert4keras.optimizers._common import _variable_path  # noqa: F401  (tests)
from bert4keras.optimizers.compose import (  # noqa: F401
    EXTENSIONS,
    ExtendedOptimizer,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_gradient_clipping,
    extend_with_gradient_transform,
    extend_with_layer_adaptation,
    extend_with_layerwise_lr,
    extend_with_lookahead,
    extend_with_parameter_wise_lr,
    extend_with_piecewise_linear_lr,
    extend_with_weight_decay,
)
from bert4keras.optimizers.ema import EMAEvaluationCallback  # noqa: F401
from bert4keras.optimizers.learning_rates import (  # noqa: F401
    layerwise_lr_decay,
    piecewise_linear,
)
from bert4keras.optimizers.pipeline import OptimizerPipeline  # noqa: F401

__all__ = [
    "EMAEvaluationCallback",
    "EXTENSIONS",
    "ExtendedOptimizer",
    "OptimizerPipeline",
    "layerwise_lr_decay",
    "piecewise_linear",
] + ["extend_with_" + m._extension_name for m in EXTENSIONS]
