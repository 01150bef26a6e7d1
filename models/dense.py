"""Fully-connected autoencoder."""

import math

import keras

from models import _assembly
from models.layers import CodeDense

DEFAULT_HIDDEN_UNITS = (256, 128)


def build_dense_autoencoder(
    input_shape,
    code_size,
    *,
    hidden_units=DEFAULT_HIDDEN_UNITS,
    activation="relu",
    code_activation="relu",
    output_activation="sigmoid",
    activity_regularizer=None,
    noise_stddev=0.0,
    normalize="none",
    name="dense_autoencoder",
):
    """Builds a dense autoencoder with a mirrored decoder.

        h = code_activation(W_c · f_L(... f_1(flatten(x))) + b_c)      (the code)
        x_hat = reshape(output_activation(W_o · g_1(... g_L(h)) + b_o))

    where f_i are Dense(hidden_units[i], activation) and g_i mirror them.

    Args:
        input_shape: shape of one example (any rank; flattened in, reshaped out).
        code_size: number of code units.
        hidden_units: widths of the encoder's hidden layers, input side first;
            the decoder uses them in reverse. May be empty.
        activation: activation of the hidden layers.
        code_activation: activation of the code layer ("sigmoid" for KL), or
            a code activation layer such as `models.activations.TopK(32)`.
        output_activation: activation of the reconstruction.
        activity_regularizer: penalty on the code only: an activity
            regularizer or a penalty that needs the code layer (e.g.
            `regularizers.Contractive`), as an instance, a config dict, a
            registered name, or None.
        noise_stddev: standard deviation of Gaussian input noise added in
            training only (a denoising autoencoder when > 0).
        normalize: "none", or "mean-norm": the model scales its input by s
            (set from the data before training, so that the mean squared
            norm is D) and its output by 1/s, so it takes and returns raw
            data; needs a linear output.
        name: model name.

    Returns:
        A `keras.Model` with sub-models "encoder" and "decoder".
    """
    input_shape = _assembly.check_input_shape(input_shape)
    code_size = _assembly.check_positive_int("code_size", code_size)
    hidden_units = _assembly.check_int_tuple("hidden_units", hidden_units)
    _assembly.activation_name("activation", activation)
    _assembly.activation_name("output_activation", output_activation)
    code_activation = _assembly.check_code_activation(code_activation)
    _assembly.refuse_dictionary_only(code_activation, "dense")
    regularizer, code_penalty = _assembly.resolve_penalty(
        activity_regularizer, code_activation, accepts_code_penalty=True
    )
    normalizing, denormalizing = _assembly.normalization_layers(
        normalize, _assembly.activation_name("output_activation", output_activation))

    # === Encoder ===
    encoder_layers = [*normalizing, keras.layers.Flatten()]
    encoder_layers += [keras.layers.Dense(units, activation) for units in hidden_units]
    encoder_layers.append(
        CodeDense(
            code_size,
            code_activation,
            code_penalty,
            activity_regularizer=regularizer,
            name=_assembly.CODE_LAYER,
        )
    )
    # === Decoder ===
    decoder_layers = [
        keras.layers.Dense(units, activation) for units in reversed(hidden_units)
    ]
    decoder_layers += [
        keras.layers.Dense(math.prod(input_shape), output_activation,
                           dtype=_assembly.output_dtype()),
        keras.layers.Reshape(input_shape, name="reconstruction", dtype=_assembly.output_dtype()),
        *denormalizing,
    ]
    return _assembly.assemble_autoencoder(
        input_shape,
        encoder_layers,
        decoder_layers,
        noise_stddev=_assembly.check_noise_stddev(noise_stddev),
        name=name,
    )
