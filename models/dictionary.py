"""Sparse dictionary: one overcomplete hidden layer with the TopK-SAE refinements.

    h     = act(W_enc (x - b_pre) + b_enc)          (the code, N units, N > D allowed)
    x_hat = out(W_dec h + b_dec)

(Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): b_pre and
b_dec start at the data mean (`initialize_from_data`); W_enc starts as W_dec
transposed; each latent's decoder vector (a row of W_dec's (N, D) kernel) is
kept at unit norm after every optimizer step (a `UnitNorm` constraint;
`unit_norm_decoder=False` leaves the rows free, as SAELens trains its TopK,
BatchTopK and JumpReLU SAEs: a latent's scale can then sit in its encoder or its
decoder row). Gao
et al. tie b_pre and b_dec into one vector; here they are separate weights of
the encoder and decoder sub-models (so that each loads and serves on its own)
with the same starting value.

Tied weights (`tied_weights=True`, the k-sparse and FC-WTA autoencoders of
Makhzani & Frey): W_dec = W_enc^T is one matrix. Training decodes with the
encoder's kernel transposed, so the gradients of both uses reach W_enc; the
decoder's own kernel is a non-trainable copy, set to W_enc^T at every training
step and by `sync_tied_decoder()` (which `pipeline.training` calls after fit),
so that the decoder sub-model still loads and serves on its own. Tied
dictionaries have no unit-norm constraint (the scale of W is learnt).

Dead-latent revival (AuxK): with `aux_k` > 0 the model counts, per latent,
the training examples since it last fired (a weight, so it survives
BackupAndRestore); a latent is dead after `dead_after_examples`. The
auxiliary loss asks the top `aux_k` dead latents to reconstruct the residual
e = x - x_hat (held constant):

    e_hat  = W_dec^T topk_aux(z_dead)      (signed pre-activations of dead latents)
    L_aux  = aux_coefficient * mean_n ||e_n - e_hat_n||^2 / ||e_n||^2

and is 0 while no latent is dead. Its gradient reaches only the dead latents'
encoder weights (and their decoder rows).

Gated code (`models.activations.Gated`, Rajamanoharan et al. 2024): the gate
path learns from an auxiliary reconstruction through a frozen decoder copy,

    L_gated_aux = mean_n mean_i (x_ni - (relu(pi_gate_n) sg(W_dec) + sg(b_dec))_i)^2

(sg: stop_gradient), in the same per-value units as the reconstruction loss.

Matryoshka (Bussmann et al. 2025; with BatchTopK, SAELens'
MatryoshkaBatchTopK): each prefix size m in `prefixes` (m < N) reconstructs
x from the first m latents alone, and the loss adds each

    L_prefix_m = mean_n mean_i (x_ni - (h_n[:m] W_dec[:m] + b_dec)_i)^2

so the early latents learn the general features and later ones refine them.

These are training losses only (`training_loss_terms`, each reported under
its name): Keras' validation loss and the exported model's calls do not
compute them. Under a normalisation they are in its units (s * x).
"""

import math

import keras
import numpy as np
from keras import ops

from models import _assembly
from models.activations import SERIALIZATION_PACKAGE
from models.activations import check_positive_float
from models.layers import Bias
from models.layers import CodeDense

DICTIONARY_LAYER = "dictionary"
OUTPUT_LAYER = "output_activation"
# Keeps the logit of a sigmoid output's starting bias finite for constant pixels.
LOGIT_EPSILON = 1e-3
DEFAULT_AUX_K = 256
DEFAULT_AUX_COEFFICIENT = 1 / 32
DEFAULT_DEAD_AFTER_EXAMPLES = 50_000
# Keeps ||e||^2 away from 0 in the normalised AuxK loss.
AUX_EPSILON = 1e-8
# Ranks live latents below every dead one when AuxK picks its top aux_k.
NOT_DEAD = -1e30
# The names of the training loss terms (TensorBoard: epoch_val_<name>).
AUXK_LOSS = "auxk_loss"
GATED_AUX_LOSS = "gated_aux_loss"
PREFIX_LOSS = "prefix_{}_loss"


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class SparseDictionary(keras.Model):
    """x_hat = decoder(encoder(x + noise)), plus the AuxK loss (module docstring).

    A subclassed model because the AuxK loss needs the residual, which only
    the whole model sees. Its sub-models are named "encoder" and "decoder".

    Args:
        encoder, decoder: the halves (Sequential models).
        noise_stddev: Gaussian input noise in training (denoising).
        aux_k: dead latents used by AuxK (0 turns it off).
        aux_coefficient: weight of the AuxK loss.
        dead_after_examples: training examples without firing after which a
            latent counts as dead.
        tied_weights: decode with the encoder's kernel transposed (module
            docstring).
        prefixes: Matryoshka prefix sizes (increasing, each < the latents;
            empty: off).
    """

    def __init__(self, encoder, decoder, noise_stddev=0.0, aux_k=0,
                 aux_coefficient=DEFAULT_AUX_COEFFICIENT,
                 dead_after_examples=DEFAULT_DEAD_AFTER_EXAMPLES, prefixes=(),
                 tied_weights=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
            decoder = keras.saving.deserialize_keras_object(decoder)
        self.encoder, self.decoder = encoder, decoder
        self.noise_stddev = _assembly.check_noise_stddev(noise_stddev)
        self.noise = (
            keras.layers.GaussianNoise(self.noise_stddev, name="noise")
            if self.noise_stddev > 0 else None
        )
        units = encoder.output_shape[-1]
        self.aux_k = _check_count("aux_k", aux_k, high=units)
        self.aux_coefficient = _assembly.check_non_negative("aux_coefficient", aux_coefficient)
        self.dead_after_examples = _check_count("dead_after_examples", dead_after_examples)
        if not isinstance(tied_weights, bool):
            raise ValueError(f"Expected `tied_weights` to be a bool. Received: "
                             f"tied_weights={tied_weights!r}")
        self.tied_weights = tied_weights
        self.prefixes = check_prefixes(prefixes, units)
        self.examples_since_fired = self.add_weight(
            shape=(units,), initializer="zeros", trainable=False, name="examples_since_fired"
        )
        self.build(encoder.input_shape)

    def build(self, input_shape):
        self.built = True

    def call(self, x, training=False):
        if self.noise is not None:
            x = self.noise(x, training=training)
        h = self.encoder(x, training=training)
        if training and self.tied_weights:
            self.sync_tied_decoder()
            x_hat = self._decode_tied(h)
        else:
            x_hat = self.decoder(h, training=training)
        if training:
            fired = ops.cast(ops.any(h > 0, axis=0), self.examples_since_fired.dtype)
            batch = ops.cast(ops.shape(h)[0], self.examples_since_fired.dtype)
            self.examples_since_fired.assign((self.examples_since_fired + batch) * (1 - fired))
            # Auxiliary training losses: inference and serving skip their work.
            for value in self.training_loss_terms(x, x_hat, h).values():
                self.add_loss(value)
        return x_hat

    def dictionary_kernel(self):
        """W_dec, (N, D): the decoder's kernel, or W_enc^T when the weights are tied."""
        if self.tied_weights:
            return ops.transpose(self.encoder.get_layer(_assembly.CODE_LAYER).kernel)
        return self.decoder.get_layer(DICTIONARY_LAYER).kernel

    def sync_tied_decoder(self):
        """Sets the decoder's copy of a tied dictionary to W_enc^T (no-op if untied)."""
        if self.tied_weights:
            self.decoder.get_layer(DICTIONARY_LAYER).kernel.assign(self.dictionary_kernel())

    def _decode_tied(self, h):
        """The decoder's layers, with W_enc^T in place of its kernel (gradient to W_enc)."""
        y = ops.matmul(h, ops.cast(self.dictionary_kernel(), h.dtype))
        for layer in self.decoder.layers:
            if layer.name != DICTIONARY_LAYER:
                y = layer(y)
        return y
    def training_loss_terms(self, x, x_hat, h=None):
        """{name: float32 value, coefficient applied} of the training-only losses
        (AuxK, the gated auxiliary loss, the Matryoshka prefixes; module docstring)."""
        terms = {}
        if self.aux_k:
            terms[AUXK_LOSS] = self.aux_coefficient * self.auxk_loss(x, x_hat)
        gated = getattr(self._code_layer(), "code_activation_layer", None)
        if hasattr(gated, "gate"):
            terms[GATED_AUX_LOSS] = self.gated_aux_loss(x)
        if self.prefixes:
            h = self.encoder(x, training=False) if h is None else h
            terms.update(self.prefix_losses(x, h))
        return terms

    def _code_layer(self):
        return self.encoder.get_layer(_assembly.CODE_LAYER)

    def _code_inputs(self, x):
        """The code layer's inputs for `x` (x - b_pre, normalised if the model is)."""
        code_layer = self._code_layer()
        for layer in self.encoder.layers:
            if layer is code_layer:
                break
            x = layer(x)
        return x

    def _target(self, x):
        """x as a flat float32 (N, D) in the units the decoder works in (s * x)."""
        x = ops.cast(x, "float32")
        return ops.reshape(x, (ops.shape(x)[0], -1)) * self._scale()

    def _decode_linear(self, code, rows):
        """code (N, m) @ sg(W_dec[rows]) + sg(b_dec) as float32 (N, D): the frozen decoder."""
        kernel = self.dictionary_kernel()
        bias = self.decoder.get_layer("decoder_bias").bias
        return ops.cast(ops.matmul(code, ops.cast(kernel[rows], code.dtype)), "float32") + \
            ops.cast(ops.reshape(bias, (1, -1)), "float32")

    def gated_aux_loss(self, x):
        """The gated code's auxiliary reconstruction loss (module docstring), float32."""
        code_layer = self._code_layer()
        inputs = self._code_inputs(x)
        gate = code_layer.code_activation_layer.gate(
            ops.matmul(inputs, ops.cast(code_layer.kernel, inputs.dtype)))
        frozen = ops.stop_gradient
        kernel = frozen(ops.cast(self.dictionary_kernel(), gate.dtype))
        bias = frozen(ops.cast(self.decoder.get_layer("decoder_bias").bias, "float32"))
        via_gate = ops.cast(ops.matmul(gate, kernel), "float32") + ops.reshape(bias, (1, -1))
        return ops.mean(ops.square(self._target(x) - via_gate))

    def prefix_losses(self, x, h):
        """{PREFIX_LOSS.format(m): loss} of each Matryoshka prefix (module docstring)."""
        target, h = self._target(x), ops.reshape(h, (ops.shape(h)[0], -1))
        kernel = self.dictionary_kernel()
        x_hat = ops.reshape(ops.cast(self.decoder.get_layer("decoder_bias").bias, "float32"),
                            (1, -1))
        losses, start = {}, 0
        for size in self.prefixes:  # each prefix adds its block of latents
            block = ops.matmul(h[:, start:size], ops.cast(kernel[start:size], h.dtype))
            x_hat = x_hat + ops.cast(block, "float32")
            losses[PREFIX_LOSS.format(size)] = ops.mean(ops.square(target - x_hat))
            start = size
        return losses

    def dead_mask(self):
        """(N,) bool: latents that have not fired for `dead_after_examples`."""
        return self.examples_since_fired >= self.dead_after_examples

    def auxk_loss(self, x, x_hat):
        """The normalised AuxK loss of a batch (without the coefficient), in float32.

        Zero, without its two matmuls and top_k, while no latent is dead
        (most steps of a healthy run).
        """
        dead = self.dead_mask()
        return ops.cond(ops.any(dead), lambda: self._auxk_loss(x, x_hat, dead),
                        lambda: ops.zeros((), "float32"))

    def _auxk_loss(self, x, x_hat, dead):
        code_layer = self._code_layer()
        centered = self._code_inputs(x)
        pre = ops.matmul(centered, ops.cast(code_layer.kernel, centered.dtype))
        if code_layer.use_bias:
            pre = pre + ops.cast(code_layer.bias, centered.dtype)
        dead = dead[None, :]
        # The top aux_k dead latents of each example by pre-activation, with
        # their signed values: a dead latent's pre-activation is mostly
        # negative, and a ReLU here would leave nothing to learn from.
        ranked = ops.where(dead, pre, ops.full_like(pre, NOT_DEAD))
        kth = ops.stop_gradient(ops.top_k(ranked, self.aux_k)[0][:, -1:])
        aux_code = ops.where(dead & (pre >= kth), pre, ops.zeros_like(pre))
        # As a dense code: one matmul with W_dec, like the decoder's.
        e_hat = ops.matmul(aux_code, ops.cast(self.dictionary_kernel(), aux_code.dtype))
        # The loss itself in float32, whatever the compute dtype.
        e_hat = ops.cast(e_hat, "float32")
        x, x_hat = ops.cast(x, "float32"), ops.cast(x_hat, "float32")
        flat = ops.reshape(x, (ops.shape(x)[0], -1))
        # In the units the code works in: s * x under a normalisation.
        e = ops.stop_gradient(flat - ops.reshape(x_hat, ops.shape(flat))) * self._scale()
        per_example = ops.sum(ops.square(e - e_hat), axis=1) / (
            ops.sum(ops.square(e), axis=1) + AUX_EPSILON)
        return ops.mean(per_example)

    def _scale(self):
        """s of the model's normalisation (float32), 1 without one."""
        scale = _assembly.input_scale(self)
        return ops.ones((), "float32") if scale is None else ops.cast(scale, "float32")

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "noise_stddev": self.noise_stddev,
            "aux_k": self.aux_k,
            "aux_coefficient": self.aux_coefficient,
            "dead_after_examples": self.dead_after_examples,
            "tied_weights": self.tied_weights,
            "prefixes": list(self.prefixes),
        }


def check_prefixes(prefixes, units):
    """`prefixes` as a tuple of increasing ints in [1, units); a size equal to
    `units` (the whole dictionary, the main loss already) is dropped."""
    prefixes = _assembly.check_int_tuple("prefixes", prefixes)
    if any(b <= a for a, b in zip(prefixes, prefixes[1:])) or any(p > units for p in prefixes):
        raise ValueError(
            f"Expected `prefixes` to be increasing sizes <= the {units} latents. "
            f"Received: prefixes={prefixes!r}")
    return tuple(p for p in prefixes if p < units)


def _check_count(name, value, high=math.inf):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(
            f"Expected `{name}` to be an integer in [0, {high}]. Received: {name}={value!r}"
        )
    return value


def build_dictionary_autoencoder(
    input_shape,
    code_size,
    *,
    code_activation="relu",
    output_activation="linear",
    activity_regularizer=None,
    aux_k=0,
    aux_coefficient=DEFAULT_AUX_COEFFICIENT,
    dead_after_examples=DEFAULT_DEAD_AFTER_EXAMPLES,
    noise_stddev=0.0,
    tied_weights=False,
    unit_norm_decoder=True,
    initial_norm=1.0,
    normalize="none",
    prefixes=(),
    seed: int | None = None,
    name="sparse_dictionary",
):
    """Builds a one-layer sparse dictionary (see the module docstring).

    Args:
        input_shape: shape of one example (flattened in, reshaped out).
        code_size: N, the number of latents (any N >= 1; N > D is the point).
        code_activation: a Keras activation ("relu", "sigmoid") or a code
            activation layer (`models.activations.TopK(32)`, BatchTopK,
            LifetimeWTA).
        output_activation: "linear" (train with MSE) or "sigmoid" (BCE).
        activity_regularizer: penalty on the code: an activity regularizer
            or a penalty that needs the code layer (Contractive).
        aux_k: latents in the AuxK loss (0: off). Needs a linear output.
        aux_coefficient: weight of the AuxK loss (Gao et al.: 1/32).
        dead_after_examples: examples without firing that make a latent dead.
        noise_stddev: Gaussian input noise in training.
        tied_weights: one matrix W_dec = W_enc^T (module docstring); no
            unit-norm constraint then.
        unit_norm_decoder: keep each decoder row at unit norm after every
            step (Gao et al.); False leaves the rows free, as SAELens does
            (with `initial_norm` 0.1 its start; docs/synthetic.md). Free rows
            let an L1 penalty shrink the code while the rows grow: use them
            with TopK, BatchTopK or JumpReLU.
        initial_norm: norm of each latent's initial decoder row (> 0; e.g.
            0.28 is N(0, 0.01) per weight for 784 pixels, FC-WTA's start).
        normalize: "none", or "mean-norm": the model scales its input by s
            (set from the data before training, so that the mean squared
            norm is D) and its output by 1/s, so it takes and returns raw
            data; needs a linear output.
        prefixes: Matryoshka prefix sizes, e.g. 128,512: each prefix of
            the latents also reconstructs x, and the loss sums them (empty:
            off). Needs a linear output.
        seed: seed of the dictionary's initial weights.
        name: model name.

    Returns:
        A `SparseDictionary` with sub-models "encoder" and "decoder".
    """
    input_shape = _assembly.check_input_shape(input_shape)
    code_size = _assembly.check_positive_int("code_size", code_size)
    output_activation = _assembly.activation_name("output_activation", output_activation)
    if aux_k and output_activation != "linear":
        raise ValueError(
            "Expected output_activation='linear' with AuxK (it reconstructs the "
            f"residual linearly). Received: output_activation={output_activation!r}, "
            f"aux_k={aux_k}"
        )
    code_activation = _assembly.check_code_activation(code_activation)
    linear_losses = {"prefixes": bool(prefixes),
                     "a gated code": getattr(code_activation, "dictionary_only", False)}
    for what, used in linear_losses.items():
        if used and output_activation != "linear":
            raise ValueError(
                f"Expected output_activation='linear' with {what} (its losses reconstruct "
                f"linearly). Received: output_activation={output_activation!r}")
    regularizer, code_penalty = _assembly.resolve_penalty(
        activity_regularizer, code_activation, accepts_code_penalty=True
    )
    initial_norm = check_positive_float("initial_norm", initial_norm)
    if not isinstance(unit_norm_decoder, bool):
        raise ValueError(f"Expected `unit_norm_decoder` to be a bool. Received: "
                         f"unit_norm_decoder={unit_norm_decoder!r}")
    normalizing, denormalizing = _assembly.normalization_layers(normalize, output_activation)
    pixels = math.prod(input_shape)
    # === Decoder rows: random vectors of initial_norm; the encoder starts as their transpose ===
    rows = np.random.default_rng(seed).normal(size=(code_size, pixels))
    rows *= initial_norm / np.linalg.norm(rows, axis=1, keepdims=True)
    encoder_layers = [
        *normalizing,
        keras.layers.Flatten(),
        Bias(sign=-1, name="pre_bias"),
        CodeDense(
            code_size, code_activation, code_penalty, activity_regularizer=regularizer,
            name=_assembly.CODE_LAYER,
        ),
    ]
    decoder_layers = [
        keras.layers.Dense(
            pixels, use_bias=False, name=DICTIONARY_LAYER,
            kernel_constraint=(keras.constraints.UnitNorm(axis=1)
                               if unit_norm_decoder and not tied_weights else None),
            trainable=not tied_weights,  # a tied decoder's kernel is a copy of W_enc^T
        ),
        # In float32 under a mixed policy: the bias add, where bfloat16 would
        # round every pixel to 8 bits, and the output (models._assembly.output_dtype).
        Bias(sign=1, name="decoder_bias", dtype=_assembly.output_dtype()),
        keras.layers.Activation(output_activation, name=OUTPUT_LAYER,
                                dtype=_assembly.output_dtype()),
        keras.layers.Reshape(input_shape, name="reconstruction", dtype=_assembly.output_dtype()),
        *denormalizing,
    ]
    encoder, decoder = _assembly.build_halves(input_shape, encoder_layers, decoder_layers)
    # Assigned, not given as Constant initializers: those would store the
    # whole matrix in the model's config (35 MB of JSON for 1,024 latents).
    decoder.get_layer(DICTIONARY_LAYER).kernel.assign(rows.astype("float32"))
    encoder.get_layer(_assembly.CODE_LAYER).kernel.assign(rows.T.astype("float32"))
    return SparseDictionary(
        encoder, decoder, noise_stddev=noise_stddev, aux_k=aux_k,
        aux_coefficient=aux_coefficient, dead_after_examples=dead_after_examples,
        prefixes=prefixes, tied_weights=tied_weights, name=name,
    )


def initialize_from_data(model, x):
    """Sets b_pre and b_dec from the mean m of the examples `x` (N, ...).

    b_pre = m; b_dec = m for a linear output and logit(clip(m, eps, 1 - eps))
    (eps = LOGIT_EPSILON) for a sigmoid one, so that x_hat starts at m. With
    a normalisation, m is the mean of s * x (set the scale s first).
    """
    mean = np.asarray(x, dtype="float64").reshape(len(x), -1).mean(axis=0)
    scale = _assembly.input_scale(model)
    if scale is not None:
        mean = mean * float(keras.ops.convert_to_numpy(scale))
    model.get_layer("encoder").get_layer("pre_bias").bias.assign(mean.astype("float32"))
    decoder = model.get_layer("decoder")
    if decoder.get_layer(OUTPUT_LAYER).activation is keras.activations.sigmoid:
        clipped = np.clip(mean, LOGIT_EPSILON, 1 - LOGIT_EPSILON)
        mean = np.log(clipped / (1 - clipped))
    decoder.get_layer("decoder_bias").bias.assign(mean.astype("float32"))
