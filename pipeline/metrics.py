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
    return CodeSummary(threshold).add(h).statistics()


class CodeSummary:
    """What the metrics and pictures need of codes (N, ...), added chunk by chunk.

    A conv code map can be too large to hold for a whole test set (Conv-WTA's
    28x28x128 map: 400 KB an image, 4 GB for 10,000), so the evaluation adds
    the codes of one chunk of images at a time. Kept: per unit its sum,
    largest value and how often it exceeds the threshold; per example its
    L0; and the non-zero values (few in a sparse code) for the histogram.
    """

    def __init__(self, threshold=ACTIVE_THRESHOLD):
        self.threshold = threshold
        self.examples = 0
        self.code_shape = None
        self._sums = self._maxima = self._active = None
        self._l0 = []
        self._nonzero = []

    def add(self, h):
        """Adds the codes `h` (n, ...) of n more examples; returns self."""
        h = np.asarray(h)
        flat = h.reshape(len(h), -1)
        active = flat > self.threshold
        if self.code_shape is None:
            self.code_shape = h.shape[1:]
            self._sums = np.zeros(flat.shape[1])
            self._active = np.zeros(flat.shape[1], dtype="int64")
            self._maxima = np.full(flat.shape[1], -np.inf)
        self.examples += len(h)
        self._sums += flat.sum(axis=0, dtype="float64")
        self._active += active.sum(axis=0)
        if len(h):
            self._maxima = np.maximum(self._maxima, flat.max(axis=0))
        self._l0.append(active.sum(axis=1))
        self._nonzero.append(flat[flat != 0].astype("float32"))
        return self

    @property
    def num_units(self):
        return len(self._sums)

    def mean_code(self):
        """The mean code over the examples, in the code's shape."""
        return (self._sums / self.examples).reshape(self.code_shape)

    def max_code(self):
        """Each unit's largest value, in the code's shape."""
        return self._maxima.reshape(self.code_shape)

    def density(self):
        """Each unit's firing frequency (h > threshold), flat."""
        return self._active / self.examples

    def nonzero_values(self):
        """(the non-zero code values as a flat float32 array, how many values are zero)."""
        values = np.concatenate(self._nonzero)
        return values, self.examples * self.num_units - len(values)

    def statistics(self):
        """The dict of `code_statistics`."""
        l0 = np.concatenate(self._l0)
        unit_means = self._sums / self.examples
        return {
            "mean_activation": float(unit_means.mean()),
            "unit_mean_std": float(unit_means.std()),
            "l0": float(l0.mean()),
            "l0_std": float(l0.std()),
            "l0_fraction": float(l0.mean() / self.num_units),
            "dead_fraction": float((self._active == 0).mean()),
            "num_units": int(self.num_units),
        }


def kl_to_rho(h, rho):
    """sum_j KL(rho || rho_hat_j), rho_hat_j over all axes of `h` but the last.

    The same divergence as `regularizers.KLSparsity` (without beta), here with
    rho_hat taken over the whole of `h` rather than one batch. `h` may be the
    codes (N, ...) or a `CodeSummary` of them.
    """
    if isinstance(h, CodeSummary):
        mean = h.mean_code()
        q = mean.reshape(-1, mean.shape[-1]).mean(axis=0)
    else:
        h = np.asarray(h, dtype="float64")
        q = h.reshape(-1, h.shape[-1]).mean(axis=0)
    q = np.clip(q, KL_RHO_HAT_EPSILON, 1 - KL_RHO_HAT_EPSILON)
    return float(np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))))
