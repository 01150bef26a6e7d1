"""Linear probes on frozen codes, as the papers the zoo compares with measure them.

The k-sparse autoencoder (Makhzani & Frey 2014) reads its features with a
logistic regression, FC-WTA and Conv-WTA (Makhzani & Frey 2015) with a linear
SVM, both trained on the frozen codes of the training set and scored on the
test set. Here, with scikit-learn:

- the codes as they are, flattened, times one global scale
  s = 1 / sqrt(mean_n ||h_n||^2) (so that one C grid suits every model; no
  per-unit standardisation, which hurts very sparse codes);
- codes with fewer than SPARSE_BELOW non-zeros are passed as a CSR matrix
  (a TopK code of 32 of 2,048 units is 98% zeros);
- C chosen from a grid by the accuracy on HELD_OUT training codes of a probe fit
  on SELECTION_FIT other training codes (the test set is never looked at), then
  the probe with that C refit on every training code and scored on the test set:
  `LogisticRegression` (multinomial, L2, lbfgs) and `LinearSVC` (L2, squared
  hinge, one-vs-rest);
- each result records the probe's name, C, its iterations, whether it converged
  (iterations below MAX_ITER) and its seconds.
"""

import time
import warnings

import numpy as np
import scipy.sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

LOGISTIC = "logistic_regression"
SVM = "linear_svm"
C_GRIDS = {LOGISTIC: (0.1, 1.0, 10.0, 100.0, 1000.0), SVM: (0.01, 0.1, 1.0, 10.0)}
SELECTION_FIT = 20_000
HELD_OUT = 5_000
# With fewer training codes, the held-out part is a fifth of them.
HELD_OUT_FRACTION = 0.2
MIN_TRAINING_CODES = 10
MAX_ITER = 1000
SPARSE_BELOW = 0.1
SQUARES_BLOCK = 1 << 22  # values squared at a time for the scale
# Below this many code units one BLAS thread: the fits' matrix products are too
# small to share (two threads made a 32-unit fit 4x slower on a busy 2-core machine).
ONE_THREAD_BELOW = 512


def _estimator(kind, C, seed):
    if kind == LOGISTIC:
        return LogisticRegression(C=C, max_iter=MAX_ITER)
    return LinearSVC(C=C, max_iter=MAX_ITER, random_state=seed)


def _fit(kind, C, x, y, seed):
    """The fitted probe and its iteration count (the largest over its classes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as "converged"
        estimator = _estimator(kind, C, seed).fit(x, y)
    return estimator, int(np.max(estimator.n_iter_))


def _matrix(codes):
    """(N, units) float32: a CSR matrix stays one, an array is flattened."""
    if scipy.sparse.issparse(codes):
        return scipy.sparse.csr_matrix(codes, dtype="float32")
    return np.asarray(codes, "float32").reshape(len(codes), -1)


def prepare_codes(train_codes, test_codes, copy=True):
    """(train, test, scale): flattened, scaled codes, CSR where they are sparse.

    Either may be given as a scipy.sparse matrix already (as evaluation builds
    the codes of a sparse model, chunk by chunk): only its non-zeros are scaled.
    With `copy=False`, float32 arrays given are scaled in place (no second
    copy of 60,000 dense codes).
    """
    train, test = _matrix(train_codes), _matrix(test_codes)
    values = (train.data if scipy.sparse.issparse(train) else train).reshape(-1)
    mean_square_norm = sum(  # in float64, a block at a time: no float64 copy of the codes
        float(np.sum(np.square(values[i:i + SQUARES_BLOCK], dtype="float64")))
        for i in range(0, values.size, SQUARES_BLOCK)) / max(train.shape[0], 1)
    scale = 1.0 / np.sqrt(mean_square_norm) if mean_square_norm > 0 else 1.0
    train, test = (_scaled(codes, scale, copy) for codes in (train, test))
    if not scipy.sparse.issparse(train) and is_sparse(train):
        train = scipy.sparse.csr_matrix(train)
    if scipy.sparse.issparse(train) and not scipy.sparse.issparse(test):
        test = scipy.sparse.csr_matrix(test)
    return train, test, scale


def _scaled(codes, scale, copy):
    """codes * scale: a new matrix, or a dense array scaled in place when not `copy`."""
    if copy or scipy.sparse.issparse(codes):
        return codes * np.float32(scale)
    codes *= np.float32(scale)
    return codes


def is_sparse(codes):
    """True when fewer than SPARSE_BELOW of the values of `codes` are non-zero."""
    return np.count_nonzero(codes) < SPARSE_BELOW * np.size(codes)


def split_for_selection(labels, seed):
    """(fit indices, held-out indices) of the training codes, or a reason why not."""
    n = len(labels)
    if n < MIN_TRAINING_CODES:
        return None, f"{n} training codes (at least {MIN_TRAINING_CODES} needed)"
    order = np.random.default_rng(seed).permutation(n)
    held = min(HELD_OUT, int(n * HELD_OUT_FRACTION))
    fit, held_out = order[:-held][:SELECTION_FIT], order[-held:]
    if len(np.unique(labels[fit])) < 2:
        return None, "fewer than 2 classes among the training labels"
    return (fit, held_out), None


def probe(kind, train, y_train, test, y_test, split, seed=0):
    """One probe: C from the grid on the held-out split, refit on all, test accuracy."""
    start = time.perf_counter()
    fit, held_out = split
    held_out_accuracy = {}
    for C in C_GRIDS[kind]:
        estimator, _ = _fit(kind, C, train[fit], y_train[fit], seed)
        held_out_accuracy[C] = float(estimator.score(train[held_out], y_train[held_out]))
    best = max(held_out_accuracy, key=held_out_accuracy.get)  # the smallest C of a tie
    estimator, iterations = _fit(kind, best, train, y_train, seed)
    return {
        "name": kind,
        "accuracy": float(estimator.score(test, y_test)),
        "C": best,
        "held_out_accuracy": held_out_accuracy[best],
        "iterations": iterations,
        "converged": iterations < MAX_ITER,
        "seconds": round(time.perf_counter() - start, 1),
    }


def probe_codes(train_codes, y_train, test_codes, y_test, *, seed=0, kinds=(LOGISTIC, SVM),
                copy=True):
    """Linear probes of frozen codes (module docstring).

    Args:
        train_codes, test_codes: (N, ...) codes of the training and test inputs
            (arrays, or scipy.sparse matrices (N, units)).
        y_train, y_test: their integer labels, or None (no probe: "skipped").
        seed: seed of the held-out split (and of LinearSVC).
        kinds: the probes to run (LOGISTIC, SVM).
        copy: False lets `prepare_codes` scale float32 code arrays in place.

    Returns:
        {"scale": s, LOGISTIC: {...}, SVM: {...}}, each with its name,
        accuracy, C, held_out_accuracy, iterations, converged and seconds; or
        {"skipped": reason} when the labels cannot train a probe.
    """
    if y_train is None or y_test is None:
        return {"skipped": "no labels"}
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    for name, codes, labels in (("train", train_codes, y_train), ("test", test_codes, y_test)):
        count = codes.shape[0] if scipy.sparse.issparse(codes) else len(codes)
        if count != len(labels):
            raise ValueError(f"Expected as many {name} labels as {name} codes. Received: "
                             f"{len(labels)} labels for {count} codes")
    split, reason = split_for_selection(y_train, seed)
    if split is None:
        return {"skipped": reason}
    train, test, scale = prepare_codes(train_codes, test_codes, copy=copy)
    results = {"scale": scale}
    with threadpool_limits(1 if train.shape[1] < ONE_THREAD_BELOW else None, user_api="blas"):
        for kind in kinds:
            results[kind] = probe(kind, train, y_train, test, y_test, split, seed)
    return results
