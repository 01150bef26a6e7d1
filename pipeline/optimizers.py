"""The optimizer of every run: Adam, with TensorFlow's fused update kernel where it can.

Keras' `Adam.update_step` is written in `keras.ops`: about a dozen element-wise
passes over each variable and its two moments, each one a separate kernel
outside XLA. `FusedAdam` computes the same update,

    m <- beta_1 m + (1 - beta_1) g
    v <- beta_2 v + (1 - beta_2) g^2
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

with TensorFlow's one-pass `ResourceApplyAdam` kernel. Its variables are
Adam's (a momentum and a velocity per weight, made by the same public
`add_optimizer_variables` call in the same order), so backups load either way.
On dict-l1 it takes a float32 step from 13.4 to 11.6 ms and a bf16 one from
8.2 to 6.4 ms (`python -m benchmarks.speed --step-times`; README, "Speed"). Under a `tf.distribute` strategy each
replica updates its own copy of a variable, which the fused kernel cannot
reach through the public API: `make_optimizer` then returns Keras' Adam.
"""

import keras
import tensorflow as tf

from models.activations import SERIALIZATION_PACKAGE

# Keras' Adam defaults.
BETA_1 = 0.9
BETA_2 = 0.999
EPSILON = 1e-7


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class FusedAdam(keras.optimizers.Optimizer):
    """Adam (Kingma & Ba) whose update is TensorFlow's fused `ResourceApplyAdam`.

    The same update as `keras.optimizers.Adam` without amsgrad (module
    docstring); for the TensorFlow backend outside `tf.distribute`.

    Args:
        learning_rate: a float or a `keras.optimizers.schedules` schedule.
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: added to sqrt(v).
        **kwargs: the base optimizer's arguments (clipnorm, ...).
    """

    def __init__(self, learning_rate=0.001, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON,
                 name="fused_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        momentums, velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        # update_step receives each variable's TensorFlow variable.
        self._moments = {id(var.value): (m, v)
                         for var, m, v in zip(var_list, momentums, velocities)}

    def update_step(self, gradient, variable, learning_rate):
        moments = self._moments.get(id(variable))
        if moments is None:
            raise ValueError(
                "Expected FusedAdam to update the variables it was built on, outside "
                "tf.distribute (use keras.optimizers.Adam there). Received: variable="
                f"{getattr(variable, 'name', variable)!r}")
        m, v = moments
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.value.handle, v=v.value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
            use_locking=False)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


def make_optimizer(learning_rate, epsilon=EPSILON, global_clipnorm=None):
    """FusedAdam, or Keras' Adam inside a `tf.distribute` strategy's scope.

    Args:
        learning_rate: Adam's learning rate.
        epsilon: Adam's epsilon, added to sqrt(v).
        global_clipnorm: rescale the gradients g of every step to norm at most
            this, g * min(1, c / ||g||) over all weights at once (Keras'
            `global_clipnorm`), or None (or 0) for no clipping.
    """
    options = dict(epsilon=epsilon, global_clipnorm=global_clipnorm or None)
    if tf.distribute.has_strategy():
        return keras.optimizers.Adam(learning_rate, **options)
    return FusedAdam(learning_rate, **options)
