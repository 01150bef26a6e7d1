"""The contractive penalty (Rifai et al. 2011): the Jacobian of the code.

Unlike an activity regularizer it needs more than the activations: the
weights of the layer that made them. It is therefore a `CodePenalty`, which a
code layer calls with its own outputs, kernel and activation; models attach it
to their code layer (`models.layers.CodeDense`).
"""

import keras
from keras import ops

from regularizers.sparsity import SERIALIZATION_PACKAGE
from regularizers.sparsity import _check_float

# Activations with a closed-form Jacobian here, and the derivative of each as
# a function of its output h.
_DERIVATIVES = {
    "sigmoid": lambda h: h * (1.0 - h),
    "relu": lambda h: ops.cast(h > 0, h.dtype),
    # A TopK/winner-take-all code is relu on the kept units, 0 elsewhere.
    "linear": lambda h: ops.ones_like(h),
}


class CodePenalty:
    """Base class: a penalty that needs the code layer, not only its outputs.

    A code layer calls `layer_penalty(h, kernel, activation)` with its outputs
    `h` of shape (N, units), its kernel (inputs, units) and the name of its
    activation; the returned value is added to the loss as it is (no batch
    size division: Keras only applies that to activity regularizers).
    """

    # Like `ActivityPenalty.requires_unit_interval`, checked by the builders.
    requires_unit_interval = False

    def check_activation(self, activation):
        """Raises ValueError if the penalty is not defined for `activation` (a name)."""

    def layer_penalty(self, h, kernel, activation):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Contractive(CodePenalty):
    """Contractive penalty: the squared Frobenius norm of the code's Jacobian.

    For a code h = act(W^T x + b) of shape (N, units), W of shape
    (inputs, units):

        loss = weight * mean_n ||J_f(x_n)||_F^2
        ||J_f(x)||_F^2 = sum_j act'(h_j)^2 * sum_i W_ij^2

    with act'(h) = h (1 - h) for a sigmoid code and 1[h > 0] for ReLU (and for
    the ReLU units a TopK or winner-take-all code keeps).

    Arguments:
        contractive_weight: float >= 0, the penalty weight (lambda).

    Example:

    >>> layer = models.layers.CodeDense(
    ...     64, activation="sigmoid", code_penalty=Contractive(1e-2))
    """

    SUPPORTED_ACTIVATIONS = tuple(_DERIVATIVES)

    def __init__(self, contractive_weight=1e-2):
        self.contractive_weight = _check_float(
            "contractive_weight", contractive_weight, low=0.0
        )

    def check_activation(self, activation):
        if activation not in _DERIVATIVES:
            raise ValueError(
                f"Expected the code activation of a contractive penalty in "
                f"{list(_DERIVATIVES)}. Received: code_activation={activation!r}"
            )

    def layer_penalty(self, h, kernel, activation):
        self.check_activation(activation)
        # In float32 whatever the compute dtype (regularizers.sparsity).
        h, kernel = ops.cast(h, "float32"), ops.cast(kernel, "float32")
        column_norms = ops.sum(ops.square(kernel), axis=0)  # (units,)
        derivative = _DERIVATIVES[activation](h)
        per_example = ops.sum(ops.square(derivative) * column_norms, axis=-1)
        return ops.cast(self.contractive_weight, h.dtype) * ops.mean(per_example)

    def get_config(self):
        return {"contractive_weight": self.contractive_weight}
