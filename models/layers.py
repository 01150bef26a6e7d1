"""Layers the builders share: the code layer and the dictionary's biases."""

import keras
from keras import ops

from models.activations import SERIALIZATION_PACKAGE
from models.activations import get_code_activation


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class CodeDense(keras.layers.Dense):
    """The dense code layer: h = act(x W + b), with an optional code penalty.

    `code_activation` is a Keras activation name ("relu", "sigmoid", ...) or a
    code activation layer (`models.activations`, e.g. TopK), applied to the
    pre-activations. `code_penalty` is a penalty that needs the layer (such as
    `regularizers.Contractive`): its `layer_penalty(h, kernel, activation)`
    is added to the loss on every call. An activity regularizer applies to h.
    """

    def __init__(self, units, code_activation="relu", code_penalty=None, **kwargs):
        kwargs.pop("activation", None)
        layer = get_code_activation(code_activation)
        if getattr(layer, "owns_bias", False):  # the gated code's biases are its own
            kwargs["use_bias"] = False
        super().__init__(units, activation=None, **kwargs)
        self.code_activation_layer = layer
        self._activation_fn = (
            keras.activations.get(code_activation) if layer is None else None
        )
        if isinstance(code_penalty, dict):
            code_penalty = keras.saving.deserialize_keras_object(code_penalty)
        self.code_penalty = code_penalty

    @property
    def derivative_activation(self):
        """The activation whose derivative describes h (for the contractive penalty)."""
        if self.code_activation_layer is not None:
            return self.code_activation_layer.derivative_activation
        return keras.activations.serialize(self._activation_fn)

    @property
    def calibrates(self):
        """Whether the code activation has a threshold to calibrate (BatchTopK)."""
        return hasattr(self.code_activation_layer, "calibrate")

    def calibrate(self, inputs):
        """Calibrates the code activation on the pre-activations of `inputs`.

        The pre-activations are computed as `call` computes them, in the
        layer's compute dtype (`Dense.call` outside `__call__` would use the
        float32 weights, and a mixed_bfloat16 code would be calibrated on other
        values than it is thresholded on).
        """
        dtype = self.compute_dtype
        pre = ops.matmul(ops.cast(inputs, dtype), ops.cast(self.kernel, dtype))
        if self.use_bias:
            pre = ops.add(pre, ops.cast(self.bias, dtype))
        return self.code_activation_layer.calibrate(pre)

    def build(self, input_shape):
        super().build(input_shape)
        layer = self.code_activation_layer
        if layer is not None and not layer.built:
            layer.build((*input_shape[:-1], self.units))

    def call(self, inputs, training=None):
        pre = super().call(inputs)
        if self.code_activation_layer is not None:
            h = self.code_activation_layer(pre, training=training)
        else:
            h = self._activation_fn(pre)
        if self.code_penalty is not None:
            self.add_loss(
                self.code_penalty.layer_penalty(h, self.kernel, self.derivative_activation)
            )
        return h

    def get_config(self):
        config = super().get_config()
        config.pop("activation", None)
        layer = self.code_activation_layer
        config["code_activation"] = (
            self.derivative_activation if layer is None  # the Keras activation's name
            else keras.saving.serialize_keras_object(layer)
        )
        config["code_penalty"] = (
            None if self.code_penalty is None
            else keras.saving.serialize_keras_object(self.code_penalty)
        )
        return config


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Bias(keras.layers.Layer):
    """Adds (sign=+1) or subtracts (sign=-1) a trainable bias of the input's size.

    The dictionary's pre-bias: the encoder sees x - b_pre, the decoder adds
    b_dec; both start at the data mean (`set_from_data`).
    """

    def __init__(self, sign=1, **kwargs):
        super().__init__(**kwargs)
        if sign not in (1, -1):
            raise ValueError(f"Expected `sign` in (1, -1). Received: sign={sign!r}")
        self.sign = sign

    def build(self, input_shape):
        self.bias = self.add_weight(shape=input_shape[1:], initializer="zeros", name="bias")

    def call(self, x):
        return x + ops.cast(self.sign, x.dtype) * ops.cast(self.bias, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "sign": self.sign}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Rescale(keras.layers.Layer):
    """Multiplies its input by a fixed scale s (or divides it, `inverse=True`).

        normalize(x) = s * x        denormalize(x_hat) = x_hat / s

    A per-dataset normalisation kept inside the model, so that it takes and
    returns raw data: the encoder starts with `normalize`, the decoder ends
    with `denormalize`. s is a non-trainable weight (1 until set from the
    data before training, e.g. sqrt(D / mean ||x||^2), "mean-norm").
    """

    def __init__(self, inverse=False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = bool(inverse)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="scale")

    def call(self, x):
        scale = ops.cast(self.scale, x.dtype)
        return x / scale if self.inverse else x * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}
