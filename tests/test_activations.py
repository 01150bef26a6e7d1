import json

import keras
import numpy as np
import pytest

import models
from models.activations import THRESHOLD_MOMENTUM, BatchTopK, Gated, JumpReLU, LifetimeWTA, TopK
from tests.conftest import gradients


from models.activations import THRESHOLD_MOMENTUM, BatchTopK, ConvWTA, LifetimeWTA, TopK


def scores(batch=16, units=40, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, units)).astype("float32")


def test_topk_keeps_exactly_k_per_example_with_their_values():
    z = scores()
    h = np.asarray(TopK(5, positive=False)(z))
    assert ((h != 0).sum(axis=1) == 5).all()
    kept = h != 0
    np.testing.assert_array_equal(h[kept], z[kept])
    # The kept ones are the 5 largest of each example.
    np.testing.assert_array_equal(np.sort(np.where(kept, z, -np.inf), axis=1)[:, -5:],
                                  np.sort(z, axis=1)[:, -5:])


def test_topk_positive_zeroes_negative_kept_values_and_passes_gradient_to_kept_only():
    z = scores()
    layer = TopK(5)
    (gradient,), _ = gradients(lambda z: keras.ops.sum(layer(z)), [z])
    h = np.asarray(layer(z))
    assert ((h > 0).sum(axis=1) <= 5).all() and (h >= 0).all()
    np.testing.assert_array_equal(gradient, (h > 0).astype("float32"))


def test_topk_schedule_and_encode_multiplier():
    z = np.abs(scores(batch=10, units=40)) + 0.1  # all positive: kept means non-zero
    layer = TopK(4, initial_k=20, schedule_examples=20, encode_multiplier=3.0)
    first = np.asarray(layer(z, training=True))
    assert ((first > 0).sum(axis=1) == 20).all()  # k starts at initial_k
    layer(z, training=True)  # 20 examples seen: the schedule is over
    assert ((np.asarray(layer(z, training=True)) > 0).sum(axis=1) == 4).all()
    assert ((np.asarray(layer(z, training=False)) > 0).sum(axis=1) == 12).all()


def test_batchtopk_keeps_k_times_batch_in_training_and_uses_its_threshold_after():
    z = scores(batch=16, units=40)
    layer = BatchTopK(3, positive=False)
    h = np.asarray(layer(z, training=True))
    assert (h != 0).sum() == 3 * 16
    threshold = np.sort(z.ravel())[-3 * 16]
    assert float(layer.threshold) == pytest.approx(threshold)
    # A second batch moves the running threshold by (1 - momentum).
    z2 = scores(batch=16, units=40, seed=1)
    layer(z2, training=True)
    expected = THRESHOLD_MOMENTUM * threshold + (1 - THRESHOLD_MOMENTUM) * np.sort(z2.ravel())[-48]
    assert float(layer.threshold) == pytest.approx(expected, rel=1e-5)
    inference = np.asarray(layer(z, training=False))
    np.testing.assert_array_equal(inference != 0, z > float(layer.threshold))
    # Batch-independent at inference: one example gives its row of the batch.
    np.testing.assert_array_equal(np.asarray(layer(z[:1], training=False)), inference[:1])


def test_wta_keeps_p_percent_of_each_unit_in_training_and_relu_at_inference():
    z = np.abs(scores(batch=40, units=12)) + 0.01
    layer = LifetimeWTA(0.1)
    h = np.asarray(layer(z, training=True))
    assert ((h > 0).sum(axis=0) == 4).all()  # ceil(0.1 * 40) per unit
    np.testing.assert_array_equal(np.sort(h[:, 0][h[:, 0] > 0]), np.sort(z[:, 0])[-4:])
    np.testing.assert_array_equal(np.asarray(layer(z - 0.5, training=False)), np.maximum(z - 0.5, 0))


def conv_wta_reference(z, p, threshold=None):
    """NumPy Conv-WTA: per example and map the largest of relu(z) (spatial), then
    per map the ceil(p * B) largest of those winners (lifetime; training), or the
    winners >= `threshold` (inference). Returns (h, the batch's thresholds)."""
    r = np.maximum(z, 0)
    winners = r.max(axis=(1, 2), keepdims=True)
    count = int(np.ceil(p * len(z)))
    batch_thresholds = np.sort(winners, axis=0)[len(z) - count]
    thresholds = batch_thresholds if threshold is None else threshold
    keep = (r >= winners) & (winners >= thresholds)
    return np.where(keep, r, 0), batch_thresholds.reshape(-1)


def maps(batch=10, size=5, channels=3, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, size, size, channels)).astype("float32")


def test_conv_wta_matches_the_numpy_reference_and_keeps_a_running_threshold():
    layer = ConvWTA(0.2)
    # Before training, the threshold is 0: every spatial winner is kept.
    np.testing.assert_array_equal(np.asarray(layer(maps(), training=False)),
                                  conv_wta_reference(maps(), 0.2, threshold=0.0)[0])
    running = None
    for seed in range(3):
        z = maps(seed=seed)
        h = np.asarray(layer(z, training=True))
        expected, batch_thresholds = conv_wta_reference(z, 0.2)
        np.testing.assert_array_equal(h, expected)
        per_map = (h > 0).sum(axis=(1, 2))  # (B, C): one winner per example and map at most
        assert per_map.max() == 1
        np.testing.assert_array_equal(per_map.sum(axis=0), [2, 2, 2])  # ceil(0.2 * 10)
        running = batch_thresholds if running is None else (
            THRESHOLD_MOMENTUM * running + (1 - THRESHOLD_MOMENTUM) * batch_thresholds)
        np.testing.assert_allclose(np.asarray(layer.threshold), running, rtol=1e-6)
    z = maps(seed=7)
    np.testing.assert_array_equal(np.asarray(layer(z, training=False)),
                                  conv_wta_reference(z, 0.2, threshold=running)[0])


def test_conv_wta_gradient_flows_through_the_kept_units_only():
    z, layer = maps(), ConvWTA(0.3)
    (gradient,), _ = gradients(lambda z: keras.ops.sum(layer(z, training=True)), [z])
    h = np.asarray(layer(z, training=True))
    np.testing.assert_array_equal(gradient, (h > 0).astype("float32"))
    assert 0 < (gradient > 0).sum() == 3 * 3  # ceil(0.3 * 10) = 3 winners in each of 3 maps


def test_conv_wta_probe_features_are_the_maps_without_winners():
    z = maps()
    np.testing.assert_array_equal(np.asarray(ConvWTA(0.2).probe_features(z)), np.maximum(z, 0))


def test_conv_wta_refuses_a_code_that_is_not_a_map():
    with pytest.raises(ValueError, match="Expected a code map of shape"):
        ConvWTA(0.2)(scores())


@pytest.mark.parametrize("layer", [TopK(3, initial_k=6, schedule_examples=100, encode_multiplier=2.0),
                                   BatchTopK(4), LifetimeWTA(0.2),
                                   JumpReLU(0.02, bandwidth=0.01, l0_coefficient=0.3),
                                   Gated(l1_coefficient=0.2), ConvWTA(0.05)])
def test_config_round_trip_and_registry(layer):
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(layer))))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()
    assert type(layer) in models.CODE_ACTIVATIONS.values()
    assert isinstance(models.activations.get_code_activation(restored), type(layer))


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: TopK(0), "Received: k=0"),
        (lambda: TopK(5, initial_k=3), "Received: initial_k=3"),
        (lambda: TopK(5, encode_multiplier=0.5), "Received: encode_multiplier=0.5"),
        (lambda: LifetimeWTA(0.0), "Received: lifetime_sparsity=0.0"),
        (lambda: ConvWTA(1.5), "Received: lifetime_sparsity=1.5"),
        (lambda: BatchTopK(-1), "Received: k=-1"),
        (lambda: JumpReLU(initial_threshold=0.0), "Received: initial_threshold=0.0"),
        (lambda: JumpReLU(bandwidth=-1.0), "Received: bandwidth=-1.0"),
        (lambda: JumpReLU(l0_coefficient=float("nan")), "Received: l0_coefficient=nan"),
        (lambda: JumpReLU(target_l0=0), "Received: target_l0=0"),
        (lambda: Gated(l1_coefficient=-0.1), "Received: l1_coefficient=-0.1"),
    ],
)
def test_bad_arguments_raise_with_the_value(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_k_above_the_code_size_is_refused():
    with pytest.raises(ValueError, match="Expected `k`"):
        models.build_dense_autoencoder((4, 4, 1), 8, hidden_units=(), code_activation=TopK(9))


def test_batchtopk_calibration_keeps_k_per_example_on_the_calibration_set():
    z = scores(batch=200, units=40)
    layer = BatchTopK(3, positive=False)
    layer(z[:16], training=True)  # a running threshold from one batch
    threshold = layer.calibrate(z)
    # Distinct values: ">" the (k*N+1)-th largest keeps exactly k*N.
    assert threshold == pytest.approx(np.sort(z.ravel())[-3 * 200 - 1])
    assert float(layer.threshold) == pytest.approx(threshold)
    kept = np.asarray(layer(z, training=False)) != 0
    assert kept.sum() == 3 * 200


def test_batchtopk_calibration_with_ties_keeps_the_count_nearest_k():
    """Tied values (bfloat16 codes) are kept or dropped together: the nearer count wins."""
    # 4 examples x 3 units, k = 2: 8 wanted; 5 values > 0.5, 6 tie at 0.5.
    z = np.array([[0.9, 0.5, 0.1], [0.8, 0.5, 0.5], [0.7, 0.5, 0.6],
                  [0.95, 0.5, 0.5]], "float32")
    layer = BatchTopK(2, positive=False)
    # ">= 0.5" keeps 11 (3 too many), "> 0.5" keeps 5 (3 too few): a tie, the
    # smaller count is kept; with k = 3 (12 wanted) ">= 0.5" (11) is nearer.
    assert layer.calibrate(z) == pytest.approx(0.5)
    assert (np.asarray(layer(z, training=False)) != 0).sum() == 5
    layer = BatchTopK(3, positive=False)
    assert layer.calibrate(z) == pytest.approx(0.1)
    assert (np.asarray(layer(z, training=False)) != 0).sum() == 11
def test_batchtopk_calibration_refuses_k_above_the_units_and_stays_positive():
    z = scores(batch=200, units=40)
    # positive=True never sets a negative threshold.
    assert BatchTopK(39).calibrate(z - 10.0) == 0.0
    with pytest.raises(ValueError, match="Expected `k` <= the 2 code units"):
        BatchTopK(3).calibrate(np.zeros((4, 2), "float32"))


# === JumpReLU and the gated code against NumPy (issue 22) ===

def numpy_jumprelu(z, theta, eps, coefficient):
    """(h, L0 penalty, dL/dz, dL/dtheta) for L = sum(h) + penalty, by the paper's formulas."""
    above = (z > theta).astype("float64")
    kernel = (np.abs((z - theta) / eps) < 0.5).astype("float64")
    h = z * above
    penalty = coefficient * above.sum(axis=1).mean()
    d_theta = (-(theta / eps) * kernel).sum(axis=0) + coefficient / len(z) * (-(1 / eps) * kernel).sum(axis=0)
    return h, penalty, above, d_theta


def test_jumprelu_values_penalty_and_straight_through_gradients_match_numpy():
    z = scores(batch=64, units=6, seed=1) * 0.3
    theta0, eps, coefficient = 0.2, 0.1, 0.7
    layer = JumpReLU(theta0, bandwidth=eps, l0_coefficient=coefficient)
    layer.build(z.shape)
    theta = np.linspace(0.1, 0.3, 6)
    layer.theta.assign(theta.astype("float32"))  # theta itself is the weight

    def loss(z):
        return keras.ops.sum(layer(z, training=True)) + sum(layer.losses)

    (d_z,), (d_theta,) = gradients(loss, [z], [layer.theta])
    h = keras.ops.convert_to_numpy(layer(z, training=True))
    h_ref, penalty, d_z_ref, d_theta_ref = numpy_jumprelu(z.astype("float64"), theta, eps, coefficient)
    np.testing.assert_allclose(h, h_ref, atol=1e-6)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.losses[0])), penalty, rtol=1e-6)
    np.testing.assert_allclose(d_z, d_z_ref, atol=1e-6)  # through the firing units only
    np.testing.assert_allclose(d_theta, d_theta_ref, rtol=1e-4, atol=1e-5)
    assert np.abs(d_theta_ref).sum() > 0  # the kernel saw some pre-activations


def test_jumprelu_quadratic_l0_penalty_and_its_threshold_gradient_match_numpy():
    """target_l0 = T: coefficient * mean_n 2 / T (L0_n - T)^2 (Gemma Scope 2)."""
    z = scores(batch=64, units=6, seed=3) * 0.3
    eps, coefficient, target = 0.1, 0.7, 2.0
    layer = JumpReLU(0.2, bandwidth=eps, l0_coefficient=coefficient, target_l0=target)
    layer.build(z.shape)
    theta = np.linspace(0.1, 0.3, 6)
    layer.theta.assign(theta.astype("float32"))

    def penalty_only(z):
        layer(z, training=True)
        return sum(layer.losses)

    _, (d_theta,) = gradients(penalty_only, [z], [layer.theta])
    above = (z > theta).astype("float64")
    l0 = above.sum(axis=1)
    penalty = coefficient * np.mean(2 / target * (l0 - target) ** 2)
    layer(z, training=True)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.losses[0])), penalty, rtol=1e-6)
    # dP/dtheta_j = coefficient / N sum_n 4 / T (L0_n - T) * (-(1 / eps) K((z_nj - theta_j) / eps))
    kernel = (np.abs((z - theta) / eps) < 0.5).astype("float64")
    d_ref = coefficient / len(z) * (4 / target * (l0 - target)[:, None] * -(1 / eps) * kernel).sum(0)
    np.testing.assert_allclose(d_theta, d_ref, rtol=1e-4, atol=1e-5)
    assert np.abs(d_ref).sum() > 0


def test_jumprelu_threshold_stays_non_negative_under_training():
    """theta is the weight, kept >= 0 by its NonNeg constraint after each step."""
    layer = JumpReLU(0.01, bandwidth=0.05, l0_coefficient=0.0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.SGD(1.0), loss="mse")
    x = np.full((32, 4), 0.02, "float32")  # every unit in the kernel's window
    model.fit(x, np.full((32, 4), 10.0, "float32"), epochs=1, batch_size=32, verbose=0)
    theta = keras.ops.convert_to_numpy(layer.theta)
    assert (theta >= 0).all() and (theta < 0.01).all()  # it moved down, and stopped at 0


def test_jumprelu_saved_with_log_threshold_loads_as_it_was_trained():
    """A config without `log_threshold` is a model of the log(theta) days: exp(weight)."""
    config = JumpReLU(0.5, bandwidth=0.1).get_config()
    assert config["log_threshold"] is False
    del config["log_threshold"]
    old = JumpReLU.from_config(config)
    old.build((2, 3))
    assert old.theta.path.endswith("log_threshold")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(old.threshold()), 0.5, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(old.theta), np.log(0.5), rtol=1e-6)
    new = JumpReLU.from_config(JumpReLU(0.5, bandwidth=0.1).get_config())
    new.build((2, 3))
    np.testing.assert_allclose(np.asarray(new.theta), 0.5, rtol=1e-6)
    z = np.array([[0.4, 0.6, 1.0], [0.7, 0.2, 0.55]], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(old(z)),
                               keras.ops.convert_to_numpy(new(z)), rtol=1e-6)


def test_gated_code_values_penalty_and_gradients_match_numpy():
    z = scores(batch=8, units=5, seed=2)
    layer = Gated(l1_coefficient=0.4)
    layer.build(z.shape)
    rng = np.random.default_rng(0)
    b_gate, r_mag, b_mag = (rng.normal(size=5).astype("float32") for _ in range(3))
    for weight, value in zip((layer.b_gate, layer.r_mag, layer.b_mag), (b_gate, r_mag, b_mag)):
        weight.assign(value)
    _, grads = gradients(lambda: keras.ops.sum(layer(z, training=True)),
                         variables=[layer.b_gate, layer.r_mag, layer.b_mag])
    h = keras.ops.convert_to_numpy(layer(z, training=True))
    pi_gate, pi_mag = z + b_gate, np.exp(r_mag) * z + b_mag
    np.testing.assert_allclose(h, (pi_gate > 0) * np.maximum(pi_mag, 0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(layer.losses[0]), 0.4 * np.maximum(pi_gate, 0).sum(1).mean(),
                               rtol=1e-6)
    assert not np.any(grads[0])  # the gate learns from other losses
    fired = (pi_gate > 0) & (pi_mag > 0)
    np.testing.assert_allclose(grads[2], fired.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(grads[1], (fired * np.exp(r_mag) * z).sum(axis=0), rtol=1e-5, atol=1e-6)


def test_the_gated_code_is_refused_outside_a_dictionary():
    with pytest.raises(ValueError, match="Expected --model dictionary for code_activation Gated"):
        models.build_dense_autoencoder((4, 4, 1), 8, hidden_units=(), code_activation=Gated())
