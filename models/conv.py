"""Convolutional autoencoder: a conv encoder, a code map or a dense code, a transposed-conv decoder."""

import math

import keras

from models import _assembly
from models.layers import CodeDense

DEFAULT_FILTERS = (32, 64)
# Conv layers only; `input_shape` is (height, width, channels).
IMAGE_RANK = 3
# How the encoder halves the resolution: strided convs, or convs + max-pooling.
DOWNSAMPLING = ("stride", "maxpool")


def _downsampled_size(size, strides, num_layers):
    """Spatial size after `num_layers` "same"-padded downsamplings by `strides`."""
    for _ in range(num_layers):
        size = math.ceil(size / strides)
    return size


def _crop_to(input_size, code_size, strides, num_layers):
    """(before, after) crop that takes the decoder's upsampled size back to input."""
    excess = code_size * strides**num_layers - input_size
    return excess // 2, excess - excess // 2


def _conv(layer_class, units, kernel_size, strides, activation, **kwargs):
    """One "same"-padded conv or transposed-conv layer."""
    return layer_class(units, kernel_size, strides, "same", activation=activation, **kwargs)


def _encoder_blocks(filters, kernel_size, strides, pooled, activation):
    """The hidden conv layers: a strided conv per entry of `filters`, or a conv +
    max-pooling when `pooled`."""
    layers = []
    for f in filters:
        layers.append(_conv(keras.layers.Conv2D, f, kernel_size, 1 if pooled else strides,
                            activation))
        if pooled:
            layers.append(keras.layers.MaxPooling2D(strides, padding="same"))
    return layers


def _code_map_block(code_size, kernel_size, strides, code_activation, regularizer):
    """The code map: a conv (the code layer), then the code activation layer if any."""
    plain = isinstance(code_activation, str)
    layers = [_conv(keras.layers.Conv2D, code_size, kernel_size, strides,
                    code_activation if plain else None,
                    activity_regularizer=regularizer if plain else None,
                    name=_assembly.CODE_LAYER)]
    if not plain:  # a code activation layer follows the linear conv
        code_activation.activity_regularizer = keras.regularizers.get(regularizer)
        layers.append(code_activation)
    return layers


def _dense_code_block(code_units, code_activation, code_penalty, regularizer):
    """A dense code: Flatten, then the code layer."""
    return [keras.layers.Flatten(),
            CodeDense(code_units, code_activation, code_penalty,
                      activity_regularizer=regularizer, name=_assembly.CODE_LAYER)]


def _dense_to_map_block(feature_shape, activation):
    """The decoder's way back from a dense code to the last encoder map."""
    return [keras.layers.Dense(math.prod(feature_shape), activation),
            keras.layers.Reshape(feature_shape)]


def _crop_block(input_shape, strides, num_down):
    """The crop that takes the decoder's upsampled size back to the input's (or nothing)."""
    crop = tuple(
        _crop_to(size, _downsampled_size(size, strides, num_down), strides, num_down)
        for size in input_shape[:2]
    )
    if any(crop[0]) or any(crop[1]):
        return [keras.layers.Cropping2D(crop, name="crop", dtype=_assembly.output_dtype())]
    return []


def build_conv_autoencoder(
    input_shape,
    code_size,
    *,
    filters=DEFAULT_FILTERS,
    kernel_size=3,
    decoder_kernel_size: int | None = None,
    strides=2,
    downsampling="stride",
    code_units: int | None = None,
    activation="relu",
    code_activation="relu",
    output_activation="sigmoid",
    activity_regularizer=None,
    noise_stddev=0.0,
    name="conv_autoencoder",
):
    """Builds a convolutional autoencoder whose code is a feature map or a vector.

    Encoder, with s = strides and L downsamplings:
    - downsampling="stride": Conv2D(filters[i], kernel_size, s, "same") for
      each i; then, for a code map, the code Conv2D(code_size, ..., s), so
      L = len(filters) + 1 and the code is (ceil(H / s^L), ceil(W / s^L), code_size).
      With s = 1 nothing is downsampled: the code map has the input's size
      (Conv-WTA: `filters=(), strides=1`, a `ConvWTA` code activation).
    - downsampling="maxpool": Conv2D(filters[i], kernel_size, 1, "same") +
      MaxPooling2D(s) for each i (L = len(filters)); a code map is then a
      Conv2D(code_size, kernel_size, 1, "same").
    - code_units=N: instead of a code map, Flatten and a dense code of N
      units (the Keras blog's sparse conv model); the decoder starts with
      Dense(h * w * filters[-1], activation) and a Reshape.
    Decoder: Conv2DTranspose layers that mirror the encoder (stride s where it
    downsampled; "maxpool" models first apply a Conv2D(filters[-1]) at the code
    resolution, as the blog model does), the last one with `channels` filters,
    `decoder_kernel_size` and `output_activation`; a computed crop restores
    exactly (H, W).

    Args:
        input_shape: (height, width, channels) of one image.
        code_size: channels of the code map (ignored with `code_units`).
        filters: channels of the encoder's hidden conv layers, input side
            first; the decoder mirrors them. May be empty for code maps.
        kernel_size: kernel size of every conv layer but the output layer.
        decoder_kernel_size: kernel size of the output layer (None:
            `kernel_size`). Conv-WTA decodes with a large linear kernel (11).
        strides: the down/up-sampling factor (1: none).
        downsampling: "stride" or "maxpool".
        code_units: None for a code map, or the units of a dense code.
        activation: activation of the hidden layers.
        code_activation: activation of the code ("sigmoid" for KL), or a code
            activation layer such as `models.activations.TopK(32)`.
        output_activation: activation of the reconstruction.
        activity_regularizer: penalty on the code only: an instance, a
            config dict, a registered name, or None. Penalties that need the
            code layer (contractive) require `code_units`.
        noise_stddev: standard deviation of Gaussian input noise added in
            training only (a denoising autoencoder when > 0).
        name: model name.

    Returns:
        A `keras.Model` with sub-models "encoder" and "decoder".
    """
    input_shape = _assembly.check_input_shape(input_shape, rank=IMAGE_RANK)
    code_size = _assembly.check_positive_int("code_size", code_size)
    filters = _assembly.check_int_tuple("filters", filters)
    kernel_size = _assembly.check_positive_int("kernel_size", kernel_size)
    decoder_kernel_size = _assembly.check_positive_int(
        "decoder_kernel_size", kernel_size if decoder_kernel_size is None else decoder_kernel_size)
    strides = _assembly.check_positive_int("strides", strides)
    if downsampling not in DOWNSAMPLING:
        raise ValueError(
            f"Expected `downsampling` in {list(DOWNSAMPLING)}. "
            f"Received: downsampling={downsampling!r}"
        )
    if code_units is not None:
        code_units = _assembly.check_positive_int("code_units", code_units)
        if not filters:
            raise ValueError(
                "Expected at least one conv layer in `filters` with `code_units`. "
                f"Received: filters={filters!r}"
            )
    _assembly.activation_name("activation", activation)
    _assembly.activation_name("output_activation", output_activation)
    code_activation = _assembly.check_code_activation(code_activation)
    _assembly.refuse_dictionary_only(code_activation, "conv")
    regularizer, code_penalty = _assembly.resolve_penalty(
        activity_regularizer, code_activation, accepts_code_penalty=code_units is not None
    )
    pooled = downsampling == "maxpool"
    code_map = code_units is None
    num_down = len(filters) + (code_map and not pooled)
    conv_strides = 1 if pooled else strides

    # === Encoder ===
    encoder_layers = _encoder_blocks(filters, kernel_size, strides, pooled, activation)
    if code_map:
        encoder_layers += _code_map_block(code_size, kernel_size, conv_strides,
                                          code_activation, regularizer)
    else:
        encoder_layers += _dense_code_block(code_units, code_activation, code_penalty,
                                            regularizer)
    # === Decoder ===
    decoder_layers = []
    up_filters = list(reversed(filters))
    if not code_map:
        feature_shape = (*(_downsampled_size(size, strides, num_down) for size in input_shape[:2]),
                         filters[-1])
        decoder_layers += _dense_to_map_block(feature_shape, activation)
        if not pooled:  # the last encoder conv's downsampling is undone by the output layer
            up_filters = up_filters[1:]
    if pooled:
        decoder_layers.append(_conv(keras.layers.Conv2D, filters[-1] if filters else code_size,
                                    kernel_size, 1, activation))
    decoder_layers += [_conv(keras.layers.Conv2DTranspose, f, kernel_size, strides, activation)
                       for f in up_filters]
    decoder_layers.append(_conv(keras.layers.Conv2DTranspose, input_shape[-1],
                                decoder_kernel_size, 1 if pooled else strides, output_activation,
                                dtype=_assembly.output_dtype()))
    decoder_layers += _crop_block(input_shape, strides, num_down)
    return _assembly.assemble_autoencoder(
        input_shape,
        encoder_layers,
        decoder_layers,
        noise_stddev=_assembly.check_noise_stddev(noise_stddev),
        name=name,
    )
