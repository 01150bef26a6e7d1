import inspect
import math

import keras
import numpy as np
import pytest
from keras import ops

import regularizers
from regularizers import KL_RHO_HAT_EPSILON, KLSparsity, L1Sparsity
from tests.conftest import gradients

BATCH_SIZES = (1, 7, 64)
DENSE_SHAPE = (10,)
CONV_SHAPE = (3, 4, 5)
FD_STEP = 1e-6
# The penalty's own gradient in float64, or float32 where the backend computes
# in it (JAX without x64), against central differences of the float64 formula.
FD_TOLERANCE = {"float64": 1e-6, "float32": 1e-5}


def l1_reference(h, l1):
    """l1 * mean_i sum_j |h_ij|, in NumPy."""
    return l1 * np.abs(h).reshape(len(h), -1).sum(axis=1).mean()


def kl_reference(h, rho, beta):
    """beta * sum_j KL(rho || rho_hat_j), rho_hat over all axes but the last."""
    q = h.reshape(-1, h.shape[-1]).mean(axis=0)
    q = np.clip(q, KL_RHO_HAT_EPSILON, 1 - KL_RHO_HAT_EPSILON)
    kl = rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))
    return beta * kl.sum()


CASES = [
    (L1Sparsity(l1=0.3), lambda h: l1_reference(h, 0.3)),
    (KLSparsity(rho=0.1, beta=2.5), lambda h: kl_reference(h, 0.1, 2.5)),
]
CASE_IDS = ["l1", "kl"]


def activations(batch_size, shape, seed=0):
    # In (0, 1) and far from the ends, valid for both penalties.
    rng = np.random.default_rng(seed)
    return rng.uniform(0.02, 0.6, size=(batch_size, *shape)).astype("float32")


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("shape", [DENSE_SHAPE, CONV_SHAPE], ids=["dense", "conv"])
@pytest.mark.parametrize("regularizer,reference", CASES, ids=CASE_IDS)
def test_layer_loss_is_the_formula(regularizer, reference, shape, batch_size):
    h = activations(batch_size, shape)
    layer = keras.layers.Activation("linear", activity_regularizer=regularizer)
    layer(h)
    (loss,) = layer.losses
    np.testing.assert_allclose(float(loss), reference(h), rtol=1e-5)
    np.testing.assert_allclose(float(regularizer.penalty(h)), reference(h), rtol=1e-5)


@pytest.mark.parametrize("regularizer,reference", CASES, ids=CASE_IDS)
def test_keras_divides_activity_penalties_by_batch_size(regularizer, reference):
    # Pins the Keras >= 3.14 behaviour the penalties compensate for.
    h = activations(7, DENSE_SHAPE)
    layer = keras.layers.Activation("linear", activity_regularizer=regularizer)
    layer(h)
    np.testing.assert_allclose(
        float(layer.losses[0]), float(regularizer(h)) / len(h), rtol=1e-6
    )


def identity_model(shape, regularizer):
    """A trainable identity map (Dense or 1x1 Conv2D) carrying `regularizer`."""
    channels = shape[-1]
    layer_class = keras.layers.Dense if len(shape) == 1 else keras.layers.Conv2D
    kernel = np.eye(channels, dtype="float32").reshape(
        (channels, channels) if len(shape) == 1 else (1, 1, channels, channels)
    )
    args = (channels,) if len(shape) == 1 else (channels, 1)
    inputs = keras.Input(shape)
    outputs = layer_class(
        *args,
        kernel_initializer=keras.initializers.Constant(kernel),
        activity_regularizer=regularizer,
    )(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    return model


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("shape", [DENSE_SHAPE, CONV_SHAPE], ids=["dense", "conv"])
@pytest.mark.parametrize("regularizer,reference", CASES, ids=CASE_IDS)
def test_model_loss_is_the_formula(regularizer, reference, shape, batch_size):
    # The reconstruction term is zero (identity map), so the loss that
    # evaluate() and a training step report is the penalty alone.
    h = activations(batch_size, shape)
    model = identity_model(shape, regularizer)
    evaluated = model.evaluate(h, h, batch_size=batch_size, verbose=0)
    trained = model.train_on_batch(h, h)
    np.testing.assert_allclose(evaluated, reference(h), rtol=1e-5)
    np.testing.assert_allclose(trained, reference(h), rtol=1e-5)


@pytest.mark.parametrize("regularizer,reference", CASES, ids=CASE_IDS)
def test_gradient_matches_finite_differences(regularizer, reference):
    h = activations(4, (3,), seed=1).astype("float64")
    (analytic,), _ = gradients(regularizer.penalty, [h])
    numeric = np.zeros_like(h)
    for index in np.ndindex(h.shape):
        step = np.zeros_like(h)
        step[index] = FD_STEP
        numeric[index] = (reference(h + step) - reference(h - step)) / (2 * FD_STEP)
    dtype = keras.backend.standardize_dtype(ops.convert_to_tensor(h).dtype)
    np.testing.assert_allclose(analytic, numeric, atol=FD_TOLERANCE[dtype])
    assert np.abs(analytic).max() > 0


def test_kl_is_zero_at_target_and_finite_for_dead_units():
    rho = 0.2
    regularizer = KLSparsity(rho=rho, beta=1.0)
    np.testing.assert_allclose(
        float(regularizer.penalty(np.full((5, 3), rho, "float32"))), 0.0, atol=1e-6
    )
    dead = np.zeros((5, 3), "float32")
    value = float(regularizer.penalty(dead))
    assert math.isfinite(value)
    np.testing.assert_allclose(value, kl_reference(dead, rho, 1.0), rtol=1e-4)


@pytest.mark.parametrize(
    "regularizer",
    [L1Sparsity(l1=0.25), KLSparsity(rho=0.3, beta=4)],
    ids=CASE_IDS,
)
def test_config_round_trip(regularizer):
    config = regularizer.get_config()
    assert set(config) == set(inspect.signature(type(regularizer)).parameters)
    assert all(type(value) is float for value in config.values())
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(regularizer))
    assert type(restored) is type(regularizer)
    assert restored.get_config() == config
    assert keras.saving.get_registered_name(type(regularizer)).startswith(
        regularizers.SERIALIZATION_PACKAGE + ">"
    )


@pytest.mark.parametrize(
    "factory,kwargs,message",
    [
        (L1Sparsity, {"l1": -0.1}, "Received: l1=-0.1"),
        (L1Sparsity, {"l1": math.inf}, "Received: l1=inf"),
        (L1Sparsity, {"l1": "big"}, "Received: l1='big'"),
        (KLSparsity, {"rho": 1.5}, "Expected `rho` in (0, 1). Received: rho=1.5"),
        (KLSparsity, {"rho": 0.0}, "Received: rho=0.0"),
        (KLSparsity, {"rho": 1}, "Received: rho=1.0"),
        (KLSparsity, {"beta": -1}, "Received: beta=-1.0"),
        (KLSparsity, {"beta": math.nan}, "Received: beta=nan"),
    ],
)
def test_bad_arguments_raise_with_the_value(factory, kwargs, message):
    with pytest.raises(ValueError, match=r"Expected `") as info:
        factory(**kwargs)
    assert message in str(info.value)


def test_get_penalty_maps_cli_names_to_sparsity_classes():
    assert regularizers.get_penalty("none") is None
    l1 = regularizers.get_penalty("l1", l1=0.5)
    assert type(l1) is L1Sparsity and l1.l1 == 0.5
    kl = regularizers.get_penalty("kl", rho=0.1, beta=3.0)
    assert type(kl) is KLSparsity and (kl.rho, kl.beta) == (0.1, 3.0)
    with pytest.raises(ValueError, match="Received: reg='l2'"):
        regularizers.get_penalty("l2")


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_contractive_penalty_is_the_squared_frobenius_norm_of_the_jacobian(activation):
    import models

    penalty = regularizers.Contractive(contractive_weight=0.7)
    keras.utils.set_random_seed(0)
    model = models.build_dense_autoencoder(
        (5,), 7, hidden_units=(), code_activation=activation, activity_regularizer=penalty)
    encoder = model.get_layer("encoder")
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    # Row j of every example's Jacobian: d sum_n h_nj / d x (the examples are independent).
    jacobian = np.stack([gradients(lambda x: ops.sum(encoder(x)[:, j]), [x])[0][0]
                         for j in range(7)], axis=1)  # (N, 7, 5)
    expected = 0.7 * np.mean(np.sum(jacobian**2, axis=(1, 2)))
    encoder(x)
    (loss,) = encoder.losses
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert regularizers.get_penalty("contractive", contractive_weight=0.7).get_config() == {
        "contractive_weight": 0.7}


def test_contractive_penalty_is_refused_where_it_is_not_defined():
    import models

    with pytest.raises(ValueError, match="Contractive needs a dense code layer"):
        models.build_conv_autoencoder((8, 8, 1), 2, filters=(4,),
                                      activity_regularizer=regularizers.Contractive())
    with pytest.raises(ValueError, match="Received: code_activation='tanh'"):
        models.build_dense_autoencoder((4,), 2, code_activation="tanh",
                                       activity_regularizer=regularizers.Contractive())
    with pytest.raises(ValueError, match="Received: contractive_weight=-1.0"):
        regularizers.Contractive(-1.0)
