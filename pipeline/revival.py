"""Dead-unit revival for the code layer of any family (dense, conv, dictionary).

A code unit (a unit of a dense code, a channel of a code map) is dead when it
never exceeds the activity threshold on a sample of training images, at any
position. ReLU units die early in training, from one large update, or under
an L1 penalty, and a dead ReLU unit gets no gradient: nothing brings it back.
Revival re-initialises each dead unit's incoming weights along the direction
in which the unit, were it switched on, would lower the reconstruction loss
most (its decoder-side weights are left as they are: they still hold what the
unit decoded when alive):

    g    = dL/dcode  on the sample (L: the reconstruction loss, through the decoder)
    d_j  = -dL/dw_j  as if unit j were linear:  -sum_{n,p} g_{n,p,j} h_{n,p}
    w_j  = d_j * mean_{i alive} ||w_i|| / ||d_j||
    b_j  = -quantile_{n,p}(h_{n,p} . w_j, 1 - q)

where h is the code layer's input on the sample (at every position p of a
code map; for a conv layer h_{n,p} is the patch under the kernel) and q the
median firing rate of the live units: the unit starts out firing on as many
(example, position) pairs as a typical live unit, there where it helps most.
A unit whose direction is zero (its decoder weights are all zero) gets a
random one. This is the re-initialisation half of the resampling of Bricken
et al. (2023, "Towards Monosemanticity"), with the direction taken from the
loss gradient so that it does not depend on the decoder's shape: one
mechanism serves every family. The dictionary family also has AuxK
(models.dictionary), which revives through a loss instead.
"""

import keras
import numpy as np
import tensorflow as tf

import models
from pipeline import objective

# Training images the revival looks at (pipeline.training)...
SAMPLE_IMAGES = 4000
# ...this many at a time (the peak memory of a revival stays small).
CHUNK_IMAGES = 500
# The firing rate given to revived units when no unit is alive.
FALLBACK_FIRING_RATE = 0.05


def code_layer(model):
    """The code layer (models.CODE_LAYER) inside the model's encoder."""
    return model.get_layer(models.ENCODER).get_layer(models.CODE_LAYER)


def _pre_activations(layer, inputs, kernel):
    """The code layer's pre-activations without bias, (N, ..., units) for `kernel`."""
    inputs = keras.ops.cast(inputs, "float32")
    if len(kernel.shape) == 2:
        return keras.ops.matmul(inputs, kernel)
    return keras.ops.conv(inputs, kernel, strides=layer.strides, padding=layer.padding,
                          dilation_rate=layer.dilation_rate)


def _code_gradient(model, images, codes, count):
    """dL/dcode of the sample's mean reconstruction loss (`count` images in all),
    through the decoder, for the chunk `images`."""
    loss = keras.losses.get(objective.reconstruction_loss(model))
    codes = tf.convert_to_tensor(codes)
    with tf.GradientTape() as tape:
        tape.watch(codes)
        x_hat = model.get_layer(models.DECODER)(codes, training=False)
        value = keras.ops.sum(loss(keras.ops.cast(images, x_hat.dtype), x_hat)) / count
    return tape.gradient(value, codes)


def _descent_directions(layer, layer_inputs, gradient, units):
    """-dL/dw for the kernel columns of `units`, as if those units were linear."""
    zeros = tf.zeros(tuple(layer.kernel.shape[:-1]) + (len(units),), "float32")
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        pre = _pre_activations(layer, layer_inputs, zeros)
        value = keras.ops.sum(pre * tf.gather(tf.cast(gradient, "float32"), units, axis=-1))
    return -keras.ops.convert_to_numpy(tape.gradient(value, zeros))


def _chunks(images):
    for start in range(0, len(images), CHUNK_IMAGES):
        yield images[start:start + CHUNK_IMAGES]


def check_revivable(model):
    """Raises a ValueError unless the model's code layer is a Dense or Conv2D with a bias."""
    try:
        layer = code_layer(model)
    except ValueError:
        raise ValueError(
            f"Expected a model with an {models.ENCODER!r} sub-model holding a "
            f"{models.CODE_LAYER!r} layer (as every family builds). Received: "
            f"model={model.name!r}") from None
    kernel = getattr(layer, "kernel", None)
    if kernel is None or getattr(layer, "bias", None) is None or len(kernel.shape) not in (2, 4):
        raise ValueError(
            "Expected the code layer to be a dense or 2D-conv layer with a bias, for "
            f"dead-unit revival. Received: {type(layer).__name__} {layer.name!r}")
    return layer


def revive_dead_units(model, images, *, threshold, seed):
    """Re-initialises the code units that never fire on `images` (module docstring).

    Args:
        model: an autoencoder of any family.
        images: a sample of training images (N, ...).
        threshold: a unit fires when its activation exceeds this.
        seed: seeds the new directions.

    Returns:
        The indices of the revived units (an int array, empty when none was dead).
    """
    layer = check_revivable(model)
    encoder = model.get_layer(models.ENCODER)
    inputs_of = keras.Model(encoder.inputs[0], layer.input)
    units = layer.kernel.shape[-1]
    fired = np.zeros(units)
    entries = 0
    for chunk in _chunks(images):
        codes = keras.ops.convert_to_numpy(encoder(chunk, training=False)).astype("float32")
        codes = codes.reshape(-1, units)
        fired += (codes > threshold).sum(axis=0)
        entries += len(codes)
    firing = fired / entries
    dead = np.flatnonzero(firing == 0)
    if dead.size == 0:
        return dead
    alive = firing > 0
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype("float32")
    bias = keras.ops.convert_to_numpy(layer.bias).astype("float32")
    norms = np.sqrt((kernel.reshape(-1, units) ** 2).sum(axis=0))
    scale = norms[alive].mean() if alive.any() else norms.mean()
    rate = float(np.median(firing[alive])) if alive.any() else FALLBACK_FIRING_RATE
    # The directions are sums over examples: accumulated chunk by chunk.
    directions = 0.0
    for chunk in _chunks(images):
        codes = encoder(chunk, training=False)
        gradient = _code_gradient(model, chunk, codes, len(images))
        directions = directions + _descent_directions(layer, inputs_of(chunk, training=False),
                                                      gradient, dead)
    flat = directions.reshape(-1, dead.size)
    norms_new = np.sqrt((flat ** 2).sum(axis=0))
    flat_zero = norms_new == 0
    if flat_zero.any():  # no gradient reaches the unit: a random direction
        rng = np.random.default_rng(seed)
        flat[:, flat_zero] = rng.standard_normal((flat.shape[0], int(flat_zero.sum())))
        norms_new = np.sqrt((flat ** 2).sum(axis=0))
    directions = (flat * (scale / norms_new)).reshape(directions.shape).astype("float32")
    pre = np.concatenate([
        keras.ops.convert_to_numpy(_pre_activations(layer, inputs_of(chunk, training=False),
                                                    directions)).reshape(-1, dead.size)
        for chunk in _chunks(images)])
    kernel[..., dead] = directions
    bias[dead] = -np.quantile(pre, 1 - rate, axis=0)
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    return dead


class DeadUnitRevival(keras.callbacks.Callback):
    """Revives dead code units (`revive_dead_units`) at the end of epochs.

    At the end of every `every`-th epoch up to and including epoch `until`
    (1-based). Adds `code_revived` (units revived, 0 on other epochs) to the
    epoch logs. Place it after the diagnostics, so that they report the dead
    units as training left them, and before TensorBoard and CSVLogger.

    Args:
        images: a fixed sample of training images.
        every: epochs between revivals (>= 1).
        until: the last epoch that may revive.
        threshold: activity threshold of a firing unit.
        seed: with the epoch, seeds the new directions (a resumed run draws
            the same ones).
    """

    def __init__(self, images, *, every, until, threshold, seed):
        super().__init__()
        self.images = np.asarray(images)
        self.every = every
        self.until = until
        self.threshold = threshold
        self.seed = seed

    def on_train_begin(self, logs=None):
        check_revivable(self.model)

    def on_epoch_end(self, epoch, logs=None):
        revived = 0
        if epoch + 1 <= self.until and (epoch + 1) % self.every == 0:
            revived = revive_dead_units(self.model, self.images, threshold=self.threshold,
                                        seed=(self.seed, epoch)).size
        if logs is not None:
            logs["code_revived"] = revived
