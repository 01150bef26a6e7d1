import math

import numpy as np
import pytest

from pipeline import metrics


def test_reconstruction_metrics_against_hand_values():
    x = np.array([[1.0, 0.0], [0.5, 0.5]])
    x_hat = np.array([[0.5, 0.5], [0.5, 0.5]])
    # Example 0: both pixels -log(0.5); example 1: 0.5*-log(0.5)*2 per pixel.
    assert metrics.binary_cross_entropy(x, x_hat) == pytest.approx(math.log(2))
    assert metrics.mean_squared_error(x, x_hat) == pytest.approx(0.125)
    # Per-image MSE 0.25 and 0 (floored at 1e-12): PSNR 6.0206 and 120 dB.
    assert metrics.psnr(x, x_hat) == pytest.approx((10 * math.log10(4) + 120) / 2)
    # Pixel means (0.75, 0.25): total variance 0.25; residual 0.5.
    assert metrics.explained_variance(x, x_hat) == pytest.approx(1 - 0.5 / 0.25)
    assert metrics.explained_variance(x, x) == 1.0


def test_bce_matches_keras():
    import keras

    rng = np.random.default_rng(0)
    x, x_hat = rng.random((4, 6, 6, 1)), rng.random((4, 6, 6, 1))
    expected = float(keras.losses.BinaryCrossentropy()(x, x_hat))
    assert metrics.binary_cross_entropy(x, x_hat) == pytest.approx(expected, rel=1e-5)


def test_code_statistics():
    h = np.array([[0.0, 0.5, 0.0, 2.0], [0.0, 0.0, 0.005, 1.0], [0.0, 0.3, 0.0, 0.0]])
    stats = metrics.code_statistics(h, threshold=0.01)
    assert stats["l0"] == pytest.approx((2 + 1 + 1) / 3)
    assert stats["l0_fraction"] == pytest.approx(4 / 12)
    assert stats["dead_fraction"] == pytest.approx(2 / 4)  # units 0 and 2
    assert stats["mean_activation"] == pytest.approx(h.mean())
    assert stats["unit_mean_std"] == pytest.approx(h.mean(axis=0).std())
    assert stats["num_units"] == 4
    conv = metrics.code_statistics(np.ones((2, 3, 3, 4)))
    assert conv["num_units"] == 36 and conv["l0"] == 36


def test_kl_to_rho_pools_all_axes_but_the_last():
    h = np.full((2, 3, 3, 2), 0.25)
    rho = 0.1
    one = rho * math.log(rho / 0.25) + (1 - rho) * math.log((1 - rho) / 0.75)
    assert metrics.kl_to_rho(h, rho) == pytest.approx(2 * one)
    assert metrics.kl_to_rho(np.full((5, 3), rho), rho) == pytest.approx(0.0, abs=1e-12)
