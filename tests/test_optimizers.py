import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline import optimizers


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(3)])


@pytest.mark.parametrize("jit_compile, options", [
    (False, {}), (True, {}), (False, {"global_clipnorm": 1e-3, "epsilon": 1e-9})])
def test_fused_adam_takes_the_steps_keras_adam_takes(jit_compile, options):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")
    weights = []
    for optimizer in (keras.optimizers.Adam(0.01, **options),
                      optimizers.FusedAdam(0.01, **options)):
        model = tiny_model()
        model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    moved = [np.abs(w - w0).max() for w, w0 in zip(weights[0], tiny_model().get_weights())]
    assert min(moved) > 1e-3  # 12 steps moved every weight
    for keras_adam, fused in zip(*weights):
        np.testing.assert_allclose(fused, keras_adam, rtol=1e-5, atol=1e-6)


def test_its_variables_are_laid_out_as_adams():
    """Backups store optimizer variables in order: either optimizer loads the other's."""
    model = tiny_model()
    shapes = []
    for optimizer in (keras.optimizers.Adam(0.01), optimizers.FusedAdam(0.01)):
        optimizer.build(model.trainable_variables)
        shapes.append([(v.name, tuple(v.shape)) for v in optimizer.variables])
    assert shapes[0] == shapes[1]


def test_config_round_trip():
    optimizer = optimizers.FusedAdam(0.003, beta_1=0.8, epsilon=1e-6)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, optimizers.FusedAdam)
    assert (restored.beta_1, restored.beta_2, restored.epsilon) == (0.8, 0.999, 1e-6)
    assert float(restored.learning_rate) == pytest.approx(0.003)


def test_make_optimizer_uses_keras_adam_under_a_distribution_strategy():
    assert isinstance(optimizers.make_optimizer(1e-3), optimizers.FusedAdam)
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert type(optimizers.make_optimizer(1e-3)) is keras.optimizers.Adam


def test_make_optimizer_clips_the_global_norm_only_when_asked():
    variable = keras.Variable(np.zeros(2, "float32"))
    gradient = np.array([3.0, 4.0])  # norm 5
    for clip, reaching in ((0.0, gradient), (1e-3, gradient * 1e-3 / 5)):
        optimizer = optimizers.make_optimizer(0.1, epsilon=1e-5, global_clipnorm=clip)
        variable.assign(np.zeros(2, "float32"))
        optimizer.apply([tf.constant(gradient, "float32")], [variable])
        # Adam's first step from zero moments (epsilon added to sqrt(v), v not bias-corrected):
        # w = -lr * g / (|g| + epsilon / sqrt(1 - beta_2)), for the g that reaches it.
        expected = -0.1 * reaching / (np.abs(reaching) + 1e-5 / np.sqrt(1 - optimizers.BETA_2))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected, rtol=1e-4)


def test_a_variable_it_was_not_built_on_is_refused():
    optimizer = optimizers.FusedAdam(0.01)
    optimizer.build(tiny_model().trainable_variables)
    stranger = tf.Variable(np.zeros(3, "float32"))  # e.g. a replica's copy under tf.distribute
    with pytest.raises(ValueError, match="Expected FusedAdam to update the variables it was built on"):
        optimizer.update_step(tf.ones(3), stranger, 0.01)
