"""Argument checks and model assembly shared by every autoencoder family."""

import math

import keras
import numpy as np

from models.activations import CODE_ACTIVATIONS
from models.activations import get_code_activation
from models.layers import Rescale

# Activations whose outputs lie strictly inside (0, 1): the only ones on which
# a penalty with `requires_unit_interval` (such as KL sparsity) is defined.
UNIT_INTERVAL_ACTIVATIONS = frozenset({"sigmoid", "softmax"})
# The names every family gives its parts: model.get_layer(ENCODER), ...
ENCODER = "encoder"
DECODER = "decoder"
CODE_LAYER = "code"
# calibrate_thresholds runs the encoder over this many images at a time.
CALIBRATION_CHUNK = 500
# Per-dataset normalisations (`normalize`): none, or a scale s with which the
# mean squared norm of s * x is D, the number of values of an example (the
# SAE literature's; SAELens' "expected_average_only_in").
NO_NORMALIZATION, MEAN_NORM = "none", "mean-norm"
NORMALIZATIONS = (NO_NORMALIZATION, MEAN_NORM)
NORMALIZE_LAYER, DENORMALIZE_LAYER = "normalize", "denormalize"


def output_dtype():
    """The dtype policy of the layers that make the reconstruction (the output
    layer and every one after it: a bfloat16 Reshape would cast it back).

    "float32" under a mixed global policy (`keras.config.set_dtype_policy(
    "mixed_bfloat16")`), as Keras' mixed-precision guide advises for the last
    layers: the reconstruction, its loss and every export stay float32 while
    the matmuls before them run in bfloat16. None (the global policy) otherwise.
    """
    policy = keras.config.dtype_policy()
    return "float32" if policy.compute_dtype != policy.variable_dtype else None


def check_positive_int(name, value):
    """Returns `value` if it is an int >= 1, else raises a Keras-style ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Expected `{name}` to be a positive integer. Received: {name}={value!r}"
        )
    return value


def check_int_tuple(name, values):
    """Returns `values` as a tuple of positive ints (it may be empty)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(
            f"Expected `{name}` to be a sequence of positive integers. "
            f"Received: {name}={values!r}"
        )
    values = tuple(values)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Expected `{name}` to be a sequence of positive integers. "
                f"Received: {name}={values!r}"
            )
    return values


def check_input_shape(input_shape, *, rank=None):
    """Returns `input_shape` (no batch axis) as a tuple of positive ints.

    Args:
        input_shape: the shape of one example, e.g. (28, 28, 1).
        rank: the number of axes required, or None for any rank >= 1.
    """
    shape = check_int_tuple("input_shape", input_shape)
    if not shape or (rank is not None and len(shape) != rank):
        expected = f"{rank} axes" if rank else "at least one axis"
        raise ValueError(
            f"Expected `input_shape` to have {expected} (no batch axis). "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


def normalization_layers(normalize, output_activation):
    """([normalize layer], [denormalize layer]) for the ends of encoder and decoder,
    or ([], []) for normalize="none".

    The scale is 1 until `set_normalization` sets it from the data. A
    normalised model reconstructs linearly (a sigmoid's [0, 1] scaled by 1/s
    is not the data's range).
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"Expected `normalize` in {list(NORMALIZATIONS)}. "
                         f"Received: normalize={normalize!r}")
    if normalize == NO_NORMALIZATION:
        return [], []
    if output_activation != "linear":
        raise ValueError(
            f"Expected output_activation='linear' with normalize={normalize!r}. "
            f"Received: output_activation={output_activation!r}")
    return ([Rescale(name=NORMALIZE_LAYER)],
            [Rescale(inverse=True, name=DENORMALIZE_LAYER, dtype=output_dtype())])


def input_scale(model):
    """The scale variable of the model's normalisation, or None without one."""
    names = [layer.name for layer in model.get_layer(ENCODER).layers]
    if NORMALIZE_LAYER not in names:
        return None
    return model.get_layer(ENCODER).get_layer(NORMALIZE_LAYER).scale


def set_normalization(model, scale):
    """Sets the scale s of the model's normalize and denormalize layers."""
    model.get_layer(ENCODER).get_layer(NORMALIZE_LAYER).scale.assign(scale)
    model.get_layer(DECODER).get_layer(DENORMALIZE_LAYER).scale.assign(scale)


def check_non_negative(name, value):
    """Returns `value` as a float if it is a finite number >= 0, else raises a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"Expected `{name}` to be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


def check_noise_stddev(noise_stddev):
    """Returns `noise_stddev` as a float if it is finite and >= 0."""
    return check_non_negative("noise_stddev", noise_stddev)


def activation_name(name, activation):
    """Returns the registered name of a Keras activation, checking that it exists."""
    try:
        return keras.activations.serialize(keras.activations.get(activation))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Expected `{name}` to be a Keras activation such as 'relu' or "
            f"'sigmoid'. Received: {name}={activation!r}"
        ) from error


def check_code_activation(code_activation):
    """Returns `code_activation` after checking it names a Keras or code activation.

    A code activation (models.activations, e.g. a TopK layer or "topk" with
    no arguments) is returned as a layer; a Keras activation as its name.
    """
    if isinstance(code_activation, str) and code_activation in CODE_ACTIVATIONS:
        raise ValueError(
            f"Expected `code_activation` {code_activation!r} as a layer with its "
            f"arguments, e.g. {CODE_ACTIVATIONS[code_activation].__name__}(...). "
            f"Received: code_activation={code_activation!r}"
        )
    layer = get_code_activation(code_activation)
    if layer is not None:
        return layer
    try:
        return activation_name("code_activation", code_activation)
    except ValueError:
        raise ValueError(
            f"Expected `code_activation` to be a Keras activation such as 'relu' or "
            f"a code activation layer ({sorted(CODE_ACTIVATIONS)}). "
            f"Received: code_activation={code_activation!r}"
        ) from None


def refuse_dictionary_only(code_activation, family):
    """Raises unless `code_activation` works outside a dictionary (the gated code's
    auxiliary loss needs the dictionary's decoder)."""
    if getattr(code_activation, "dictionary_only", False):
        raise ValueError(
            f"Expected --model dictionary for code_activation "
            f"{type(code_activation).__name__} (its auxiliary loss reconstructs through the "
            f"dictionary's decoder). Received: a {family} model")


def _is_code_penalty(identifier):
    return hasattr(identifier, "layer_penalty")


def resolve_penalty(identifier, code_activation, *, accepts_code_penalty):
    """Returns (activity_regularizer, code_penalty) for the code layer.

    Args:
        identifier: a `keras.regularizers.Regularizer` instance, a penalty that
            needs the layer (one with `layer_penalty`, e.g.
            `regularizers.Contractive`), a config dict, a registered name
            such as "sparse_ae_zoo>KLSparsity", a Keras name such as "l2", or None.
        code_activation: the code's activation (a name or a layer).
        accepts_code_penalty: whether the family's code layer is a
            `CodeDense` that can evaluate a layer penalty.

    Returns:
        One of the pair is the penalty, the other None (or both None).

    Raises:
        ValueError: the identifier is unknown, the family cannot take a layer
            penalty, or the penalty is only defined for activations in (0, 1)
            and `code_activation` is not bounded so.
    """
    if isinstance(identifier, str):
        identifier = keras.saving.get_registered_object(identifier) or identifier
        if isinstance(identifier, type):
            identifier = identifier()
    if isinstance(identifier, dict):
        try:
            identifier = keras.saving.deserialize_keras_object(identifier)
        except (ValueError, TypeError) as error:
            raise ValueError(
                "Expected `activity_regularizer` to be a Regularizer, a config dict, "
                f"a registered name or None. Received: activity_regularizer={identifier!r}"
            ) from error
    if _is_code_penalty(identifier):
        activity, code = None, identifier
        if not accepts_code_penalty:
            raise ValueError(
                f"{type(identifier).__name__} needs a dense code layer; expected a "
                f"dense or dictionary model (or a conv model with `code_units`). "
                f"Received: a convolutional code"
            )
        code.check_activation(
            code_activation if isinstance(code_activation, str)
            else code_activation.derivative_activation
        )
    else:
        try:
            activity, code = keras.regularizers.get(identifier), None
        except (ValueError, TypeError) as error:
            raise ValueError(
                "Expected `activity_regularizer` to be a Regularizer, a config dict, "
                f"a registered name or None. Received: activity_regularizer={identifier!r}"
            ) from error
    penalty = activity or code
    if getattr(penalty, "requires_unit_interval", False) and not (
        isinstance(code_activation, str) and code_activation in UNIT_INTERVAL_ACTIVATIONS
    ):
        shown = code_activation if isinstance(code_activation, str) else type(code_activation).__name__
        raise ValueError(
            f"{type(penalty).__name__} is only defined for activations in "
            f"(0, 1); expected `code_activation` in "
            f"{sorted(UNIT_INTERVAL_ACTIVATIONS)}. "
            f"Received: code_activation={shown!r}"
        )
    return activity, code


def build_halves(input_shape, encoder_layers, decoder_layers):
    """The named encoder and decoder sub-models (Sequential) of a layer stack."""
    encoder = keras.Sequential([keras.Input(input_shape), *encoder_layers], name=ENCODER)
    code_shape = encoder.output_shape[1:]
    decoder = keras.Sequential([keras.Input(code_shape), *decoder_layers], name=DECODER)
    return encoder, decoder


def assemble_autoencoder(
    input_shape, encoder_layers, decoder_layers, *, noise_stddev, name
):
    """Wires encoder and decoder layer stacks into a named autoencoder.

    model(x) = decoder(encoder(x + noise)), where the Gaussian noise of
    standard deviation `noise_stddev` is only added in training (and only
    exists when `noise_stddev > 0`).

    Args:
        input_shape: the shape of one example.
        encoder_layers: layers from the input to the code, in order.
        decoder_layers: layers from the code to the reconstruction, in order.
        noise_stddev: float >= 0.
        name: the name of the returned model.

    Returns:
        A `keras.Model` with sub-models named "encoder" and "decoder".
    """
    encoder, decoder = build_halves(input_shape, encoder_layers, decoder_layers)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if noise_stddev > 0:
        x = keras.layers.GaussianNoise(noise_stddev, name="noise")(x)
    outputs = decoder(encoder(x))
    return keras.Model(inputs, outputs, name=name)


def calibrate_thresholds(model, images):
    """Calibrates the encoder's thresholds on `images` (call it after training).

    Every layer of the "encoder" sub-model that calibrates (a BatchTopK code
    activation, or the code layer holding one: `calibrates` true) gets its
    own inputs on `images` through its `calibrate(inputs)` method.

    Returns:
        {layer name: new threshold}, empty when nothing calibrates.
    """
    encoder = model.get_layer(ENCODER)
    thresholds = {}
    for layer in calibrating_layers(model):
        inputs_of = keras.Model(encoder.inputs[0], layer.input)
        # In chunks: the encoder's intermediate activations of every image at
        # once would cost far more memory than the inputs themselves.
        inputs = np.concatenate([
            keras.ops.convert_to_numpy(inputs_of(images[start:start + CALIBRATION_CHUNK],
                                                 training=False)).astype("float32")
            for start in range(0, len(images), CALIBRATION_CHUNK)])
        thresholds[layer.name] = layer.calibrate(inputs)
    return thresholds


def calibrating_layers(model):
    """The layers of the encoder that `calibrate_thresholds` calibrates (often none)."""
    return [layer for layer in model.get_layer(ENCODER).layers
            if getattr(layer, "calibrates", hasattr(layer, "calibrate"))]


def probe_feature_model(model):
    """The model from the images to the features a linear probe reads of the code.

    The "encoder" itself, unless its last layer (the code activation) defines
    `probe_features(inputs)`: then the encoder up to that layer's inputs,
    followed by `probe_features` (ConvWTA: the rectified maps without their
    winners taken, the features Conv-WTA is classified on).
    """
    encoder = model.get_layer(ENCODER)
    last = encoder.layers[-1]
    if not hasattr(last, "probe_features"):
        return encoder
    return keras.Model(encoder.inputs[0], last.probe_features(last.input), name="probe_features")
