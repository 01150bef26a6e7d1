"""Code activations that take parameters, as registered Keras layers.

Each acts on every unit of an example's code (all axes but the batch axis),
keeps the values it selects unchanged and zeros the rest, so the gradient
flows through the kept units only. A name in `CODE_ACTIVATIONS` can be given
wherever a builder takes `code_activation`; its constructor arguments are
`train.py` flags (`--k`, ...).
"""

import math

import keras
import numpy as np
from keras import ops

SERIALIZATION_PACKAGE = "sparse_ae_zoo"
# BatchTopK: weight of the old value in the running inference threshold.
THRESHOLD_MOMENTUM = 0.99
# ConvWTA: the rank of a batch of code maps, (batch, height, width, channels).
MAP_RANK = 4


def _check_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(
            f"Expected `{name}` to be an integer >= {low}. Received: {name}={value!r}"
        )
    return value


def _check_fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"Expected `{name}` in (0, 1]. Received: {name}={value!r}")
    return float(value)


def _flat(x):
    """(N, units) view of a code of any rank."""
    return ops.reshape(x, (ops.shape(x)[0], -1))


def _keep(x, mask):
    """x where mask, else 0, in x's shape (mask over the flat code)."""
    return ops.reshape(ops.where(mask, _flat(x), ops.zeros_like(_flat(x))), ops.shape(x))


class _CodeActivation(keras.layers.Layer):
    """Base: a parameterised activation; `positive` applies ReLU to the kept units."""

    # The derivative of the kept units, for penalties that need it (contractive).
    derivative_activation = "relu"

    def __init__(self, positive=True, **kwargs):
        super().__init__(**kwargs)
        self.positive = bool(positive)

    def _rectify(self, x):
        return ops.relu(x) if self.positive else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "positive": self.positive}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class TopK(_CodeActivation):
    """Keeps the k largest activations of each example and zeros the rest.

        h = relu(topk_k(z))        (Gao et al. 2024; Makhzani & Frey 2014)

    with exactly k kept units per example (ties broken by position); with
    `positive=False` the kept values are z itself, so an example has exactly
    k non-zeros.

    Arguments:
        k: int >= 1, the units kept per example after the schedule.
        initial_k: int >= k or None. With `schedule_examples` > 0, k falls
            linearly from `initial_k` to `k` over the first
            `schedule_examples` training examples (the k-sparse
            autoencoder's schedule); the count is a layer weight, so it
            survives a backup and restore.
        schedule_examples: int >= 0, the length of that schedule.
        encode_multiplier: float >= 1; at inference keep
            round(encode_multiplier * k) units (the k-sparse autoencoder's
            "alpha k" encoding, Makhzani & Frey 2014).
        positive: apply ReLU to the kept units.
    """

    def __init__(self, k=32, initial_k: int | None = None, schedule_examples=0, encode_multiplier=1.0,
                 positive=True, **kwargs):
        super().__init__(positive=positive, **kwargs)
        self.k = _check_int("k", k)
        self.initial_k = _check_int("initial_k", k if initial_k is None else initial_k, low=k)
        self.schedule_examples = _check_int("schedule_examples", schedule_examples, low=0)
        if (isinstance(encode_multiplier, bool) or not isinstance(encode_multiplier, (int, float))
                or not math.isfinite(encode_multiplier) or encode_multiplier < 1):
            raise ValueError(
                "Expected `encode_multiplier` to be a number >= 1. "
                f"Received: encode_multiplier={encode_multiplier!r}"
            )
        self.encode_multiplier = float(encode_multiplier)

    def build(self, input_shape):
        units = math.prod(input_shape[1:])
        if max(self.initial_k, self.inference_k) > units:
            raise ValueError(
                f"Expected `k` (and `initial_k`, `encode_multiplier * k`) <= the {units} "
                f"code units. Received: k={self.k}, initial_k={self.initial_k}, "
                f"encode_multiplier={self.encode_multiplier}"
            )
        self.examples_seen = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="examples_seen"
        )

    @property
    def inference_k(self):
        return round(self.encode_multiplier * self.k)

    def current_k(self):
        """The k of the schedule now (a float tensor)."""
        if not self.schedule_examples or self.initial_k == self.k:
            return ops.convert_to_tensor(float(self.k))
        progress = ops.minimum(self.examples_seen / self.schedule_examples, 1.0)
        return ops.round(self.initial_k - (self.initial_k - self.k) * progress)

    def call(self, x, training=False):
        flat = _flat(x)
        if not training:
            return ops.reshape(self._rectify(self._keep_top(flat, self.inference_k)),
                               ops.shape(x))
        k_now = self.current_k()
        self.examples_seen.assign_add(ops.cast(ops.shape(x)[0], self.examples_seen.dtype))
        if self.initial_k == self.k:
            kept = self._keep_top(flat, self.k)
        else:
            # top_k of initial_k only while the schedule runs: twice the cost of k = 32.
            kept = ops.cond(k_now > self.k, lambda: self._keep_top(flat, self.initial_k, k_now),
                            lambda: self._keep_top(flat, self.k))
        return ops.reshape(self._rectify(kept), ops.shape(x))

    @staticmethod
    def _keep_top(flat, k_max, k_now=None):
        """flat with all but its k_now largest entries per row zeroed (k_max >= k_now
        static; exactly k_now kept, ties broken by position)."""
        _, indices = ops.top_k(flat, k_max)
        keep = ops.ones(ops.shape(indices), flat.dtype)
        if k_now is not None:  # ranks 0..k_now-1 of the k_max largest (the schedule)
            keep = keep * ops.cast(ops.arange(k_max) < ops.cast(k_now, "int32"), flat.dtype)
        rows = ops.repeat(ops.arange(ops.shape(flat)[0])[:, None], k_max, axis=1)
        mask = ops.scatter(
            ops.stack([ops.reshape(rows, (-1,)), ops.reshape(indices, (-1,))], axis=1),
            ops.reshape(keep, (-1,)), ops.shape(flat))
        return flat * mask

    def get_config(self):
        return {**super().get_config(), "k": self.k, "initial_k": self.initial_k,
                "schedule_examples": self.schedule_examples,
                "encode_multiplier": self.encode_multiplier}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BatchTopK(_CodeActivation):
    """Keeps the k * B largest activations of a batch of B examples (Bussmann et al. 2024).

    Training: h = z where z >= t_batch, else 0, with t_batch the (k*B)-th
    largest value of the batch, so the mean L0 over the batch is k (up to ties).
    Inference: h = z where z > t, else 0, with t a running average of t_batch
    (t <- m t + (1 - m) t_batch, m = THRESHOLD_MOMENTUM), a layer weight, so
    an exported model is batch-independent.

    Arguments:
        k: int >= 1, the mean number of units kept per example.
        positive: apply ReLU to the kept units.
    """

    def __init__(self, k=32, positive=True, **kwargs):
        super().__init__(positive=positive, **kwargs)
        self.k = _check_int("k", k)

    def build(self, input_shape):
        units = math.prod(input_shape[1:])
        if self.k > units:
            raise ValueError(
                f"Expected `k` <= the {units} code units. Received: k={self.k}"
            )
        self.threshold = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="threshold"
        )
        self.batches_seen = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="batches_seen"
        )

    def call(self, x, training=False):
        flat = _flat(x)
        if not training:
            return self._rectify(_keep(x, flat > ops.cast(self.threshold, flat.dtype)))
        batch = ops.shape(flat)[0]
        values, _ = ops.top_k(ops.reshape(flat, (-1,)), self.k * batch)
        batch_threshold = values[-1]
        # The first batch sets the threshold; later ones move it slowly.
        momentum = ops.where(self.batches_seen > 0, THRESHOLD_MOMENTUM, 0.0)
        new = momentum * self.threshold + (1 - momentum) * ops.cast(
            ops.maximum(batch_threshold, 0.0) if self.positive else batch_threshold, "float32")
        self.threshold.assign(ops.cast(new, self.threshold.dtype))
        self.batches_seen.assign_add(1.0)
        return self._rectify(_keep(x, flat >= batch_threshold))

    def calibrate(self, inputs):
        """Sets the inference threshold from the pre-activations of N examples.

        Inference keeps z > t. t is chosen among the N examples' own values so
        that the number of values above it is the closest to k * N that any
        threshold can give: with v the (k*N)-th largest value, either
        t = v (keeps those > v) or t = the largest value below v (keeps those
        >= v), whichever count is nearer k * N (at least 0 when `positive`).
        With distinct values that is exactly k * N; values that tie at v (as
        bfloat16 codes do) are kept or dropped together. Pass the values in
        the dtype inference computes them in (a bfloat16 code: bfloat16
        values), so that t is one of the values inference compares with. The
        running average of the batch thresholds lags the last epochs and keeps
        fewer (6% under k on the zoo's dictionary); calibrating after training
        removes that.

        Args:
            inputs: the layer's inputs for N examples, shape (N, ...).

        Returns:
            The new threshold, a float.
        """
        if not self.built:
            self.build(tuple(np.shape(inputs)))
        values = np.asarray(ops.convert_to_numpy(ops.cast(inputs, "float32"))).reshape(-1)
        wanted = self.k * int(np.shape(inputs)[0])
        kth = float(np.partition(values, values.size - wanted)[values.size - wanted])
        above = int(np.count_nonzero(values > kth))
        at_or_above = int(np.count_nonzero(values >= kth))
        below = values[values < kth]
        threshold = kth
        if below.size and at_or_above - wanted < wanted - above:
            threshold = float(below.max())
        if self.positive:
            threshold = max(threshold, 0.0)
        self.threshold.assign(threshold)
        return threshold

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class LifetimeWTA(_CodeActivation):
    """Lifetime winner-take-all (Makhzani & Frey 2015, FC-WTA).

    Training: h = relu(z), then each unit keeps only its ceil(p * B) largest
    activations across the batch of B examples and is zero elsewhere, so every
    unit fires on a fraction p of the examples. Inference: h = relu(z).

    Arguments:
        lifetime_sparsity: float p in (0, 1], the fraction of a batch on
            which each unit is kept.
        positive: apply ReLU to the kept units.
    """

    def __init__(self, lifetime_sparsity=0.05, positive=True, **kwargs):
        super().__init__(positive=positive, **kwargs)
        self.lifetime_sparsity = _check_fraction("lifetime_sparsity", lifetime_sparsity)

    def call(self, x, training=False):
        flat = self._rectify(_flat(x))
        if not training:
            return ops.reshape(flat, ops.shape(x))
        batch = ops.shape(flat)[0]
        keep = ops.cast(ops.ceil(self.lifetime_sparsity * ops.cast(batch, "float32")), "int32")
        # Each unit's keep-th largest value over the batch.
        ordered = ops.sort(flat, axis=0)
        thresholds = ops.take(ordered, batch - ops.maximum(keep, 1), axis=0)
        kept = ops.where(flat >= thresholds[None, :], flat, ops.zeros_like(flat))
        return ops.reshape(kept, ops.shape(x))

    def get_config(self):
        return {**super().get_config(), "lifetime_sparsity": self.lifetime_sparsity}


def check_positive_float(name, value):
    """Returns `value` as a float if it is a finite number > 0, else a Keras-style ValueError."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"Expected `{name}` to be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def _check_coefficient(name, value):
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise ValueError(f"Expected `{name}` in [0, inf). Received: {name}={value!r}")
    return float(value)


def rectangle(u):
    """The rectangle kernel K(u) = 1 if |u| < 1/2 else 0."""
    return ops.cast((u > -0.5) & (u < 0.5), u.dtype)


def jump_relu(z, threshold, bandwidth):
    """z * H(z - theta), with the straight-through gradients of Rajamanoharan et al. 2024.

        d/dz     = H(z - theta)
        d/dtheta = -(theta / eps) K((z - theta) / eps)      (summed over the batch)

    Args:
        z: pre-activations (N, units); threshold: theta (units,), > 0;
        bandwidth: eps, the width of the rectangle kernel K.
    """

    @ops.custom_gradient
    def forward(z, threshold):
        above = ops.cast(z > threshold, z.dtype)

        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            kernel = rectangle((z - threshold) / bandwidth)
            return (above * upstream,
                    ops.sum(-(threshold / bandwidth) * kernel * upstream, axis=0))

        return z * above, grad

    return forward(z, threshold)


def step(z, threshold, bandwidth):
    """H(z - theta), with the pseudo-derivatives of Rajamanoharan et al. 2024:

        d/dz = 0        d/dtheta = -(1 / eps) K((z - theta) / eps)
    """

    @ops.custom_gradient
    def forward(z, threshold):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            kernel = rectangle((z - threshold) / bandwidth)
            return ops.zeros_like(z), ops.sum(-(1.0 / bandwidth) * kernel * upstream, axis=0)

        return ops.cast(z > threshold, z.dtype), grad

    return forward(z, threshold)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class JumpReLU(_CodeActivation):
    """JumpReLU with a learned threshold per latent (Rajamanoharan et al. 2024,
    "Jumping Ahead"), and its L0 penalty.

        h = z * H(z - theta)      (theta >= 0, a trainable weight per unit)
        L0 penalty = l0_coefficient * mean_n sum_j H(z_nj - theta_j)              (the paper)
                   = l0_coefficient * mean_n 2 / T (sum_j H(z_nj - theta_j) - T)^2  (target_l0 = T)

    The second is the quadratic penalty around a target L0 of Gemma Scope 2
    (SAELens' `jumprelu_sparsity_loss_mode="quadratic"`): it pulls every
    example's L0 to T from either side. H has no gradient; training uses the
    paper's straight-through estimators (`jump_relu`, `step`) with a rectangle
    kernel of width `bandwidth`: theta learns from the reconstruction and from
    the penalty, z only where it fires. The penalty is added to the loss on
    every call, and reported as `l0_loss`.

    theta itself is the weight (kept >= 0 by a `NonNeg` constraint after each
    step), as SAELens trains it: Adam moves a weight by about its learning
    rate per step, so the paper's log(theta) moves theta only by a factor
    e^(lr * steps) in a run (e^1.6 in 540 steps at 3e-3; SAELens issue #494).
    Models saved with log(theta) (before 2026-11-30) load as they were trained
    (`log_threshold=True` in their config).

    Arguments:
        initial_threshold: theta of every unit before training (> 0).
        bandwidth: eps of the straight-through estimator (> 0), in the
            units of the pre-activations.
        l0_coefficient: weight of the L0 penalty (>= 0), against the mean
            squared error per value.
        target_l0: T of the quadratic L0 penalty (> 0), or unset for the
            paper's linear one.
    """

    loss_name = "l0_loss"

    def __init__(self, initial_threshold=1e-3, bandwidth=1e-3, l0_coefficient=1e-3,
                 target_l0: float | None = None, **kwargs):
        kwargs.pop("positive", None)  # z * H(z - theta) >= 0 already
        log_threshold = bool(kwargs.pop("log_threshold", False))
        super().__init__(positive=True, **kwargs)
        self.log_threshold = log_threshold
        self.initial_threshold = check_positive_float("initial_threshold", initial_threshold)
        self.bandwidth = check_positive_float("bandwidth", bandwidth)
        self.l0_coefficient = _check_coefficient("l0_coefficient", l0_coefficient)
        self.target_l0 = (None if target_l0 is None
                          else check_positive_float("target_l0", target_l0))

    @classmethod
    def from_config(cls, config):
        # A config without the key is a model saved when log(theta) was the weight.
        return super().from_config({"log_threshold": True, **config})

    def build(self, input_shape):
        units = math.prod(input_shape[1:])
        if self.log_threshold:
            self.theta = self.add_weight(
                shape=(units,), name="log_threshold",
                initializer=keras.initializers.Constant(math.log(self.initial_threshold)))
        else:
            self.theta = self.add_weight(
                shape=(units,), name="threshold",
                initializer=keras.initializers.Constant(self.initial_threshold),
                constraint=keras.constraints.NonNeg())

    def threshold(self, dtype="float32"):
        """theta per unit (units,)."""
        theta = ops.cast(self.theta, dtype)
        return ops.exp(theta) if self.log_threshold else theta

    def l0_penalty(self, l0):
        """The penalty (without its coefficient) of per-example L0s (N,), float32."""
        l0 = ops.cast(l0, "float32")
        if self.target_l0 is None:
            return ops.mean(l0)
        return ops.mean(2.0 / self.target_l0 * ops.square(l0 - self.target_l0))

    def call(self, x, training=False):
        flat = _flat(x)
        threshold = self.threshold(flat.dtype)
        if self.l0_coefficient:
            l0 = ops.sum(step(flat, threshold, self.bandwidth), axis=1)
            self.add_loss(self.l0_coefficient * self.l0_penalty(l0))
        return ops.reshape(jump_relu(flat, threshold, self.bandwidth), ops.shape(x))

    def get_config(self):
        config = super().get_config()
        config.pop("positive")
        return {**config, "initial_threshold": self.initial_threshold,
                "bandwidth": self.bandwidth, "l0_coefficient": self.l0_coefficient,
                "target_l0": self.target_l0, "log_threshold": self.log_threshold}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Gated(_CodeActivation):
    """The gated code (Rajamanoharan et al. 2024, "Improving Dictionary Learning
    with Gated Sparse Autoencoders").

    From z = W_gate (x - b_pre), the code layer's product without bias:

        pi_gate = z + b_gate                       (which latents fire)
        pi_mag  = exp(r_mag) * z + b_mag           (how much: W_mag = exp(r_mag) W_gate, tied)
        h       = H(pi_gate) * relu(pi_mag)
        L1 penalty = l1_coefficient * mean_n sum_j relu(pi_gate_nj)

    H has no gradient, so the gate path learns from the penalty (reported as
    `gate_l1_loss`; the paper's decoder-norm factor is 1 for the dictionary's
    unit-norm rows) and from the dictionary's auxiliary loss, which
    reconstructs x from relu(pi_gate) through a frozen copy of the decoder
    (`SparseDictionary`, `gated_aux_loss`): a dictionary-only code activation.

    Arguments:
        l1_coefficient: weight of the L1 penalty on the gate (>= 0).
    """

    loss_name = "gate_l1_loss"
    owns_bias = True  # the code layer computes z without one
    dictionary_only = True

    def __init__(self, l1_coefficient=1e-3, **kwargs):
        kwargs.pop("positive", None)
        super().__init__(positive=True, **kwargs)
        self.l1_coefficient = _check_coefficient("l1_coefficient", l1_coefficient)

    def build(self, input_shape):
        units = (math.prod(input_shape[1:]),)
        self.b_gate, self.r_mag, self.b_mag = (
            self.add_weight(shape=units, initializer="zeros", name=name)
            for name in ("b_gate", "r_mag", "b_mag"))

    def gate(self, z):
        """relu(pi_gate) (N, units), with gradients to W_gate and b_gate."""
        return ops.relu(_flat(z) + ops.cast(self.b_gate, z.dtype))

    def call(self, x, training=False):
        flat = _flat(x)
        pi_gate = flat + ops.cast(self.b_gate, flat.dtype)
        pi_mag = ops.exp(ops.cast(self.r_mag, flat.dtype)) * flat + ops.cast(self.b_mag, flat.dtype)
        if self.l1_coefficient:
            penalty = ops.mean(ops.sum(ops.relu(pi_gate), axis=1))
            self.add_loss(self.l1_coefficient * ops.cast(penalty, "float32"))
        h = ops.cast(ops.stop_gradient(pi_gate) > 0, flat.dtype) * ops.relu(pi_mag)
        return ops.reshape(h, ops.shape(x))

    def get_config(self):
        config = super().get_config()
        config.pop("positive")
        return {**config, "l1_coefficient": self.l1_coefficient}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ConvWTA(_CodeActivation):
    """Convolutional winner-take-all on code maps (Makhzani & Frey 2015, Conv-WTA).

    For a map z of shape (B, H, W, C), with r = relu(z):

    - spatial sparsity: each example keeps, in each feature map, only its
      largest activation, w[n, c] = max_{i,j} r[n, i, j, c] (zero elsewhere);
    - lifetime sparsity (training only): each feature map keeps only its
      ceil(p * B) largest winners w[:, c] across the batch of B examples.

    Training: h = r where r[n, i, j, c] >= w[n, c] >= t_batch[c]
    (t_batch[c] the ceil(p * B)-th largest of w[:, c]), else 0. Inference:
    the same with a running average t of t_batch (t <- m t + (1 - m) t_batch,
    m = THRESHOLD_MOMENTUM; a layer weight), so that a map fires on about a
    fraction p of the examples, as in training, whatever the batch: the
    decoder, trained on those codes, reconstructs from as many winners as it
    learnt to add (with every spatial winner kept at inference it adds about
    1 / p times too many: FVU 6 after one epoch at p = 0.2). The gradient
    flows through the kept units only. A linear probe reads
    `probe_features`: the rectified maps with the sparsity turned off, as
    the paper classifies them (after max-pooling, which the probe's caller
    does).

    Arguments:
        lifetime_sparsity: float p in (0, 1], the fraction of a batch on
            which each feature map keeps its winner (the paper: 0.2).
        positive: apply ReLU before the winners are taken.
    """

    def __init__(self, lifetime_sparsity=0.2, positive=True, **kwargs):
        super().__init__(positive=positive, **kwargs)
        self.lifetime_sparsity = _check_fraction("lifetime_sparsity", lifetime_sparsity)

    def build(self, input_shape):
        if len(input_shape) != MAP_RANK:
            raise ValueError(
                f"Expected a code map of shape (batch, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.threshold = self.add_weight(
            shape=(input_shape[-1],), initializer="zeros", trainable=False, name="threshold"
        )
        self.batches_seen = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="batches_seen"
        )

    def call(self, x, training=False):
        rectified = self._rectify(x)
        winners = ops.max(rectified, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        if training:
            batch = ops.shape(x)[0]
            count = ops.cast(ops.ceil(self.lifetime_sparsity * ops.cast(batch, "float32")), "int32")
            # Each map's count-th largest winner over the batch.
            ordered = ops.sort(winners, axis=0)
            thresholds = ops.take(ordered, batch - ops.maximum(count, 1), axis=0)  # (1, 1, C)
            momentum = ops.where(self.batches_seen > 0, THRESHOLD_MOMENTUM, 0.0)
            self.threshold.assign(momentum * self.threshold + (1 - momentum) * ops.cast(
                ops.reshape(thresholds, (-1,)), self.threshold.dtype))
            self.batches_seen.assign_add(1.0)
        else:
            thresholds = ops.cast(self.threshold, rectified.dtype)
        keep = ops.logical_and(rectified >= winners, winners >= thresholds)
        return ops.where(keep, rectified, ops.zeros_like(rectified))

    def probe_features(self, x):
        """The maps a linear probe reads: relu(z), no winners taken (the paper's features)."""
        return self._rectify(x)

    def get_config(self):
        return {**super().get_config(), "lifetime_sparsity": self.lifetime_sparsity}


# Name on the command line -> layer class.
CODE_ACTIVATIONS = {
    "topk": TopK,
    "batchtopk": BatchTopK,
    "wta": LifetimeWTA,
    "jumprelu": JumpReLU,
    "gated": Gated,
    "convwta": ConvWTA,
}


def get_code_activation(identifier, **kwargs):
    """A code activation layer (a CODE_ACTIVATIONS name + its arguments), or None.

    Returns None for a plain Keras activation name such as "relu" (the code
    layer applies it itself); a layer instance or config dict is returned
    deserialised.
    """
    if isinstance(identifier, keras.layers.Layer):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if identifier in CODE_ACTIVATIONS:
        return CODE_ACTIVATIONS[identifier](**kwargs)
    return None
