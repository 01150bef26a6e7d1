"""Argument checks and model assembly shared by every autoencoder family."""

import math

import keras

# Activations whose outputs lie strictly inside (0, 1): the only ones on which
# a penalty with `requires_unit_interval` (such as KL sparsity) is defined.
UNIT_INTERVAL_ACTIVATIONS = frozenset({"sigmoid", "softmax"})


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


def check_noise_stddev(noise_stddev):
    """Returns `noise_stddev` as a float if it is finite and >= 0."""
    if (
        isinstance(noise_stddev, bool)
        or not isinstance(noise_stddev, (int, float))
        or not math.isfinite(noise_stddev)
        or noise_stddev < 0
    ):
        raise ValueError(
            "Expected `noise_stddev` to be a finite number >= 0. "
            f"Received: noise_stddev={noise_stddev!r}"
        )
    return float(noise_stddev)


def activation_name(name, activation):
    """Returns the registered name of a Keras activation, checking that it exists."""
    try:
        return keras.activations.serialize(keras.activations.get(activation))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Expected `{name}` to be a Keras activation such as 'relu' or "
            f"'sigmoid'. Received: {name}={activation!r}"
        ) from error


def resolve_activity_regularizer(identifier, code_activation):
    """Returns the code layer's activity regularizer, checked against its activation.

    Args:
        identifier: a `keras.regularizers.Regularizer` instance, a config dict
            (`keras.regularizers.serialize`), a registered name such as
            "sparse_ae_zoo>KLSparsity" or a Keras name such as "l2", or None.
        code_activation: the activation of the code layer.

    Returns:
        A regularizer instance, or None.

    Raises:
        ValueError: the identifier is unknown, or the penalty is only defined
            for activations in (0, 1) and `code_activation` is not bounded so.
    """
    if isinstance(identifier, str):
        identifier = keras.saving.get_registered_object(identifier) or identifier
        if isinstance(identifier, type):
            identifier = identifier()
    try:
        regularizer = keras.regularizers.get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "Expected `activity_regularizer` to be a Regularizer, a config dict, "
            f"a registered name or None. Received: activity_regularizer={identifier!r}"
        ) from error
    code_activation = activation_name("code_activation", code_activation)
    if (
        getattr(regularizer, "requires_unit_interval", False)
        and code_activation not in UNIT_INTERVAL_ACTIVATIONS
    ):
        raise ValueError(
            f"{type(regularizer).__name__} is only defined for activations in "
            f"(0, 1); expected `code_activation` in "
            f"{sorted(UNIT_INTERVAL_ACTIVATIONS)}. "
            f"Received: code_activation={code_activation!r}"
        )
    return regularizer


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
    encoder = keras.Sequential(
        [keras.Input(input_shape), *encoder_layers], name="encoder"
    )
    code_shape = encoder.output_shape[1:]
    decoder = keras.Sequential(
        [keras.Input(code_shape), *decoder_layers], name="decoder"
    )
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if noise_stddev > 0:
        x = keras.layers.GaussianNoise(noise_stddev, name="noise")(x)
    outputs = decoder(encoder(x))
    return keras.Model(inputs, outputs, name=name)
