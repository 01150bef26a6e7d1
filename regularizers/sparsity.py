"""Sparsity penalties on activations, as Keras activity regularizers.

Keras >= 3.14 divides whatever an activity regularizer returns by the batch
size of the layer output (keras-team/keras#22018). Each penalty here therefore
has two faces:

- `penalty(x)`: the value the penalty *means*, the number that reaches the
  model's loss. This is what the formulas in the docstrings give.
- `__call__(x)`: the Keras protocol, `penalty(x) * batch_size`, so that after
  Keras' division the loss receives exactly `penalty(x)`.

Every penalty is computed in float32, whatever the dtype of the activations
(bfloat16 under a mixed-precision policy): with 8 bits of mantissa, the mean
activation rho_hat of a unit and the logarithms of the KL divergence are off
by whole percents (tests/test_regularizers.py measures it).
"""

import math

import keras
from keras import ops

SERIALIZATION_PACKAGE = "sparse_ae_zoo"

# Keeps `rho_hat` strictly inside (0, 1) so that both logarithms of the KL
# divergence stay finite when a unit is always off or always on.
KL_RHO_HAT_EPSILON = 1e-7


def _check_float(name, value, *, low, high=math.inf, low_open=False):
    """Returns `value` as a Python float after a Keras-style range check."""
    expected = f"{'(' if low_open else '['}{low:g}, {high:g})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Expected `{name}` to be a number in {expected}. "
            f"Received: {name}={value!r}"
        )
    value = float(value)
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value >= high:
        raise ValueError(
            f"Expected `{name}` in {expected}. Received: {name}={value}"
        )
    return value


class ActivityPenalty(keras.regularizers.Regularizer):
    """Base class: an activity penalty whose loss does not scale with batch size.

    Subclasses implement `penalty(x)`, the value that must reach the loss.
    `__call__` multiplies it by the batch size to cancel the division that
    Keras >= 3.14 applies to every activity-regularizer output, so

        loss contribution = penalty(x)    for any batch size.

    Attributes:
        requires_unit_interval: True when the penalty is only defined for
            activations in (0, 1); model builders check this against the
            activation of the layer the penalty is attached to.
    """

    requires_unit_interval = False
    # A scalar variable that multiplies the penalty in training while it is
    # warmed up (`pipeline.callbacks.PenaltyWarmup` sets it); None: weight 1.
    # Not part of the config: a saved model's penalty has its full weight.
    warmup_weight = None

    def penalty(self, x):
        """The penalty that reaches the loss, for activations `x` of shape (N, ...)."""
        raise NotImplementedError

    def __call__(self, x):
        x = ops.cast(x, "float32")  # see the module docstring
        batch_size = ops.cast(ops.shape(x)[0], x.dtype)
        value = self.penalty(x) * batch_size
        if self.warmup_weight is not None:
            value = value * ops.cast(self.warmup_weight, value.dtype)
        return value


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class L1Sparsity(ActivityPenalty):
    """L1 penalty on activations: the per-example L1 norm, averaged over the batch.

    For activations `h` of shape (N, ...) (units are all axes but the first):

        loss = l1 * mean_i sum_j |h_ij|

    which does not change with the batch size N.

    Arguments:
        l1: float >= 0, the penalty weight.

    Example:

    >>> layer = keras.layers.Dense(32, activity_regularizer=L1Sparsity(1e-4))
    """

    def __init__(self, l1=1e-4):
        self.l1 = _check_float("l1", l1, low=0.0)

    def penalty(self, x):
        batch_size = ops.cast(ops.shape(x)[0], x.dtype)
        return ops.cast(self.l1, x.dtype) * ops.sum(ops.abs(x)) / batch_size

    def get_config(self):
        return {"l1": self.l1}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class KLSparsity(ActivityPenalty):
    """KL-divergence sparsity penalty of the UFLDL sparse autoencoder.

    For activations `h` in (0, 1) of shape (N, ..., C), unit j's mean activation
    `rho_hat_j` is taken over every axis but the last (the batch and, for a
    conv feature map, all spatial positions) and clipped into
    [eps, 1 - eps] with eps = `KL_RHO_HAT_EPSILON`:

        loss = beta * sum_j KL(rho || rho_hat_j)
        KL(rho || q) = rho * log(rho / q) + (1 - rho) * log((1 - rho) / (1 - q))

    whatever the batch size. `rho_hat` is a statistic of the batch the layer
    sees: under `tf.distribute` each replica computes it on its own share of
    the global batch.

    Arguments:
        rho: float in (0, 1), the target mean activation of every unit.
        beta: float >= 0, the penalty weight.

    Example:

    >>> layer = keras.layers.Dense(
    ...     64, activation="sigmoid", activity_regularizer=KLSparsity(0.05, 3.0))
    """

    requires_unit_interval = True

    def __init__(self, rho=0.05, beta=1.0):
        self.rho = _check_float("rho", rho, low=0.0, high=1.0, low_open=True)
        self.beta = _check_float("beta", beta, low=0.0)

    def penalty(self, x):
        axes = tuple(range(len(x.shape) - 1))
        rho_hat = ops.clip(
            ops.mean(x, axis=axes), KL_RHO_HAT_EPSILON, 1.0 - KL_RHO_HAT_EPSILON
        )
        rho = ops.cast(self.rho, x.dtype)
        kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log(
            (1.0 - rho) / (1.0 - rho_hat)
        )
        return ops.cast(self.beta, x.dtype) * ops.sum(kl)

    def get_config(self):
        return {"rho": self.rho, "beta": self.beta}
