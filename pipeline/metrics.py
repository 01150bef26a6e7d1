"""Reconstruction and sparsity metrics as small NumPy functions.

Shapes: images `x`, `x_hat` are (N, ...) in [0, 1]; codes `h` are (N, ...),
every element of one example's code counting as one unit (for a conv code
(N, H, W, C), that is H * W * C units).
"""

import numpy as np

from regularizers import KL_RHO_HAT_EPSILON

# A code unit counts as active on an example when its activation exceeds this.
ACTIVE_THRESHOLD = 1e-2
# Clips predictions away from 0 and 1 in the cross-entropy, as Keras does.
BCE_EPSILON = 1e-7
# Pixels are in [0, 1], so the peak signal of PSNR is 1.
PSNR_PEAK = 1.0


def _flat(a):
    a = np.asarray(a, dtype="float64")
    return a.reshape(len(a), -1)


def binary_cross_entropy(x, x_hat):
    """Mean per-pixel BCE: -mean(x log p + (1 - x) log(1 - p)), p = clip(x_hat, eps)."""
    x, p = _flat(x), np.clip(_flat(x_hat), BCE_EPSILON, 1 - BCE_EPSILON)
    return float(-np.mean(x * np.log(p) + (1 - x) * np.log(1 - p)))


def mean_squared_error(x, x_hat):
    """Mean per-pixel squared error."""
    return float(np.mean((_flat(x) - _flat(x_hat)) ** 2))


def psnr(x, x_hat):
    """Mean over images of 10 log10(peak^2 / mse_i), in dB."""
    mse = np.mean((_flat(x) - _flat(x_hat)) ** 2, axis=1)
    return float(np.mean(10 * np.log10(PSNR_PEAK**2 / np.maximum(mse, 1e-12))))


def explained_variance(x, x_hat):
    """1 - sum((x - x_hat)^2) / sum((x - mean_n x)^2), pixels pooled."""
    x, x_hat = _flat(x), _flat(x_hat)
    return float(1 - np.sum((x - x_hat) ** 2) / np.sum((x - x.mean(axis=0)) ** 2))


def code_statistics(h, threshold=ACTIVE_THRESHOLD):
    """Sparsity statistics of codes `h` (N, ...).

    Returns:
        dict with `mean_activation` (over all units and examples),
        `unit_mean_std` (spread of the per-unit means), `l0` (mean number of
        units with h > threshold per example), `l0_std` (its spread over the
        examples), `l0_fraction` (l0 / units) and
        `dead_fraction` (units never above threshold on any example).
    """
    h = _flat(h)
    active = h > threshold
    unit_means = h.mean(axis=0)
    return {
        "mean_activation": float(h.mean()),
        "unit_mean_std": float(unit_means.std()),
        "l0": float(active.sum(axis=1).mean()),
        "l0_std": float(active.sum(axis=1).std()),
        "l0_fraction": float(active.mean()),
        "dead_fraction": float((~active.any(axis=0)).mean()),
        "num_units": int(h.shape[1]),
    }


def kl_to_rho(h, rho):
    """sum_j KL(rho || rho_hat_j), rho_hat_j over all axes of `h` but the last.

    The same divergence as `regularizers.KLSparsity` (without beta), here with
    rho_hat taken over the whole of `h` rather than one batch.
    """
    h = np.asarray(h, dtype="float64")
    q = h.reshape(-1, h.shape[-1]).mean(axis=0)
    q = np.clip(q, KL_RHO_HAT_EPSILON, 1 - KL_RHO_HAT_EPSILON)
    return float(np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))))
