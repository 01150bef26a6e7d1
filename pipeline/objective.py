"""The training objective, defined once for `fit` and the multi-worker loop.

    loss = reconstruction(x, x_hat) + sum(model.losses)

The reconstruction is the mean per-pixel binary cross-entropy for a sigmoid
output and the mean squared error for a linear one; `model.losses` holds
every penalty term the layers add (activity regularizers, code penalties such
as the contractive one) and, in training, the dictionary's AuxK loss. Both training loops get
the loss from Keras' own `Model.compute_loss`, so they optimise the same
number, scaled the same way under tf.distribute.
"""

import keras
import numpy as np

import models
from pipeline import optimizers

# The named terms of the loss, as they reach TensorBoard (`epoch_<name>`).
RECONSTRUCTION = "reconstruction_loss"
PENALTY = "sparsity_penalty"
AUXK = "auxk_loss"
# The epoch logs that are the loss; the others are diagnostics (val_fvu is inf
# on a validation sample without variance) and never stop or discard a run.
LOSS_LOGS = ("loss", "val_loss")


def reconstruction_metrics(unit_interval=True):
    """New metric objects of the reconstruction alone: the mean squared error,
    and the binary cross-entropy for data in [0, 1] (`unit_interval`)."""
    mse = keras.metrics.MeanSquaredError(name="mse")
    return [keras.metrics.BinaryCrossentropy(name="bce"), mse] if unit_interval else [mse]


def reconstruction_loss(model):
    """The Keras loss that matches the model's output activation.

    A model with a normalisation (scale s, `models.input_scale`) is scored in
    the units it works in: loss(s * x, s * x_hat), so that its penalties'
    coefficients mean the same on any data (for the MSE, s^2 times the raw one).
    """
    decoder = model.get_layer(models.DECODER)
    activations = [
        getattr(layer, "activation", None) for layer in decoder.layers
        if getattr(layer, "activation", None) is not None
    ]
    last = keras.activations.serialize(activations[-1]) if activations else "linear"
    name = "binary_crossentropy" if last == "sigmoid" else "mean_squared_error"
    scale = models.input_scale(model)
    if scale is None:
        return name
    base = keras.losses.get(name)

    def normalized(y_true, y_pred):
        s = keras.ops.cast(scale, y_pred.dtype)
        return base(keras.ops.cast(y_true, y_pred.dtype) * s, y_pred * s)

    normalized.__name__ = f"normalized_{name}"
    return normalized


def compile_model(model, *, learning_rate, jit_compile, steps_per_execution, optimizer=None,
                  unit_interval=True, adam_epsilon=optimizers.EPSILON, global_clipnorm=0.0):
    """Compiles `model` with the objective, Adam (`pipeline.optimizers`, with its
    `adam_epsilon` and gradient clipping to `global_clipnorm`, 0 for none) and the
    reconstruction metrics (of data in [0, 1] if `unit_interval`); `optimizer`,
    a Keras optimizer class taking the learning rate, replaces Adam (the speed
    benchmark compares them)."""
    model.compile(
        optimizer=(optimizer(learning_rate) if optimizer is not None
                   else optimizers.make_optimizer(learning_rate, epsilon=adam_epsilon,
                                                  global_clipnorm=global_clipnorm)),
        loss=reconstruction_loss(model),
        # The loss includes the penalties; these are reconstruction only.
        metrics=reconstruction_metrics(unit_interval),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def _total(losses):
    return float(sum(float(np.sum(loss)) for loss in losses))



def loss_terms(model, x):
    """The named terms of the loss for images `x`, at inference (NumPy floats).

    Returns:
        dict with RECONSTRUCTION, PENALTY (the activity and code penalties the
        model adds at inference) and each penalty of a layer that names its
        own (`loss_name`, e.g. JumpReLU's "l0_loss"), whose sum is Keras'
        validation loss; and the training-only terms of the model
        (`training_loss_terms`: AUXK, the gated and Matryoshka losses, with
        their coefficients); and the reconstructions.
    """
    x_hat = model(x, training=False)
    loss = keras.losses.get(reconstruction_loss(model))
    terms = {
        RECONSTRUCTION: float(keras.ops.mean(loss(x, x_hat))),
        PENALTY: _total(model.losses),
    }
    named = {}
    for layer in _leaf_layers(model):  # penalties with their own name (JumpReLU's L0)
        name = getattr(layer, "loss_name", None)
        if name and layer.losses:
            named[name] = named.get(name, 0.0) + _total(layer.losses)
    terms[PENALTY] -= sum(named.values())
    terms.update(named)
    if hasattr(model, "training_loss_terms"):
        terms.update({name: float(value) for name, value in
                      model.training_loss_terms(x, x_hat).items()})
    return terms, np.asarray(x_hat)


def _leaf_layers(model):
    """Every layer of `model`, sub-models' and code activations' included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        inner = getattr(layer, "code_activation_layer", None)
        if inner is not None:
            yield inner


def loss_is_finite(logs):
    """Whether the training and validation loss in epoch `logs` are finite (missing: yes;
    None, as `finite_logs` writes a non-finite value: no)."""
    return all(logs[key] is not None and np.isfinite(float(logs[key]))
               for key in LOSS_LOGS if key in (logs or {}))


def finite_logs(logs):
    """Epoch `logs` as floats, a non-finite diagnostic as None (strict JSON has no inf)."""
    return {key: float(value) if np.isfinite(float(value)) else None
            for key, value in (logs or {}).items()
            if isinstance(value, (int, float, np.floating))}
