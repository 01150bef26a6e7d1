"""Convolutional autoencoder with a strided encoder and transposed-conv decoder."""

import math

import keras

from models import _assembly

DEFAULT_FILTERS = (32, 64)
# Conv layers only; `input_shape` is (height, width, channels).
IMAGE_RANK = 3


def _downsampled_size(size, strides, num_layers):
    """Spatial size after `num_layers` "same"-padded convs of stride `strides`."""
    for _ in range(num_layers):
        size = math.ceil(size / strides)
    return size


def _crop_to(input_size, code_size, strides, num_layers):
    """(before, after) crop that takes the decoder's upsampled size back to input."""
    excess = code_size * strides**num_layers - input_size
    return excess // 2, excess - excess // 2


def build_conv_autoencoder(
    input_shape,
    code_filters,
    *,
    filters=DEFAULT_FILTERS,
    kernel_size=3,
    strides=2,
    activation="relu",
    code_activation="relu",
    output_activation="sigmoid",
    activity_regularizer=None,
    noise_stddev=0.0,
    name="conv_autoencoder",
):
    """Builds a convolutional autoencoder whose code is a feature map.

    Encoder: Conv2D(filters[i], kernel_size, strides, "same", activation) for
    each i, then the code Conv2D(code_filters, ..., code_activation), so the
    code has shape (ceil(H / s^L), ceil(W / s^L), code_filters) with
    L = len(filters) + 1 and s = strides.
    Decoder: Conv2DTranspose(filters[i], ...) in reverse order, then
    Conv2DTranspose(channels, ..., output_activation), which gives
    (h_code * s^L, w_code * s^L); a computed crop restores exactly (H, W).

    Args:
        input_shape: (height, width, channels) of one image.
        code_filters: number of channels of the code feature map.
        filters: channels of the encoder's hidden conv layers, input side
            first; the decoder mirrors them. May be empty.
        kernel_size: kernel size of every conv layer.
        strides: stride of every conv layer (the down/up-sampling factor).
        activation: activation of the hidden layers.
        code_activation: activation of the code ("sigmoid" for KL).
        output_activation: activation of the reconstruction.
        activity_regularizer: penalty on the code map only: an instance, a
            config dict, a registered name, or None.
        noise_stddev: standard deviation of Gaussian input noise added in
            training only (a denoising autoencoder when > 0).
        name: model name.

    Returns:
        A `keras.Model` with sub-models "encoder" and "decoder".
    """
    input_shape = _assembly.check_input_shape(input_shape, rank=IMAGE_RANK)
    code_filters = _assembly.check_positive_int("code_filters", code_filters)
    filters = _assembly.check_int_tuple("filters", filters)
    kernel_size = _assembly.check_positive_int("kernel_size", kernel_size)
    strides = _assembly.check_positive_int("strides", strides)
    _assembly.activation_name("activation", activation)
    _assembly.activation_name("output_activation", output_activation)
    regularizer = _assembly.resolve_activity_regularizer(
        activity_regularizer, code_activation
    )
    height, width, channels = input_shape
    num_layers = len(filters) + 1

    def conv(layer_class, units, layer_activation, **kwargs):
        return layer_class(
            units, kernel_size, strides, "same", activation=layer_activation, **kwargs
        )

    # === Encoder ===
    encoder_layers = [conv(keras.layers.Conv2D, f, activation) for f in filters]
    encoder_layers.append(
        conv(
            keras.layers.Conv2D,
            code_filters,
            code_activation,
            activity_regularizer=regularizer,
            name="code",
        )
    )
    # === Decoder ===
    decoder_layers = [
        conv(keras.layers.Conv2DTranspose, f, activation) for f in reversed(filters)
    ]
    decoder_layers.append(
        conv(keras.layers.Conv2DTranspose, channels, output_activation)
    )
    crop = tuple(
        _crop_to(size, _downsampled_size(size, strides, num_layers), strides, num_layers)
        for size in (height, width)
    )
    if any(crop[0]) or any(crop[1]):
        decoder_layers.append(keras.layers.Cropping2D(crop, name="crop"))
    return _assembly.assemble_autoencoder(
        input_shape,
        encoder_layers,
        decoder_layers,
        noise_stddev=_assembly.check_noise_stddev(noise_stddev),
        name=name,
    )
