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


def reconstruction_metrics():
    """New metric objects of the reconstruction alone, reported for every model."""
    return [keras.metrics.BinaryCrossentropy(name="bce"),
            keras.metrics.MeanSquaredError(name="mse")]


def reconstruction_loss(model):
    """The Keras loss that matches the model's output activation."""
    decoder = model.get_layer(models.DECODER)
    activations = [
        getattr(layer, "activation", None) for layer in decoder.layers
        if getattr(layer, "activation", None) is not None
    ]
    last = keras.activations.serialize(activations[-1]) if activations else "linear"
    return "binary_crossentropy" if last == "sigmoid" else "mean_squared_error"


def compile_model(model, *, learning_rate, jit_compile, steps_per_execution, optimizer=None):
    """Compiles `model` with the objective, Adam (`pipeline.optimizers`) and the
    reconstruction metrics; `optimizer`, a Keras optimizer class taking the
    learning rate, replaces Adam (the speed benchmark compares them)."""
    model.compile(
        optimizer=(optimizer(learning_rate) if optimizer is not None
                   else optimizers.make_optimizer(learning_rate)),
        loss=reconstruction_loss(model),
        # The loss includes the penalties; these are reconstruction only.
        metrics=reconstruction_metrics(),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def _total(losses):
    return float(sum(float(np.sum(loss)) for loss in losses))



def loss_terms(model, x):
    """The named terms of the loss for images `x`, at inference (NumPy floats).

    Returns:
        dict with RECONSTRUCTION and PENALTY (every term the model adds at
        inference: the activity and code penalties), whose sum is Keras'
        validation loss, and for models with AuxK the AUXK term the training
        loss adds (with its coefficient); and the reconstructions.
    """
    x_hat = model(x, training=False)
    loss = keras.losses.get(reconstruction_loss(model))
    terms = {
        RECONSTRUCTION: float(keras.ops.mean(loss(x, x_hat))),
        PENALTY: _total(model.losses),
    }
    if getattr(model, "aux_k", 0):
        terms[AUXK] = model.aux_coefficient * float(model.auxk_loss(x, x_hat))
    return terms, np.asarray(x_hat)


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
