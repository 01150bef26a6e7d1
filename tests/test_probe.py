import numpy as np
import pytest
import scipy.sparse

from pipeline import probe


def separable(n, classes=3, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return np.eye(classes)[y] * 2 + rng.normal(0, noise, (n, classes)), y


@pytest.mark.parametrize("kind", [probe.LOGISTIC, probe.SVM])
def test_each_probe_learns_separable_codes_and_records_its_fit(kind):
    codes, y = separable(300)
    result = probe.probe_codes(codes[:200], y[:200], codes[200:], y[200:], kinds=(kind,))[kind]
    assert result["accuracy"] > 0.95
    assert result["name"] == kind and result["C"] in probe.C_GRIDS[kind]
    assert result["converged"] and 0 < result["iterations"] < probe.MAX_ITER
    assert result["seconds"] >= 0 and 0 <= result["held_out_accuracy"] <= 1
    rng = np.random.default_rng(1)
    chance = probe.probe_codes(rng.normal(size=(200, 3)), y[:200], rng.normal(size=(100, 3)),
                               y[200:], kinds=(kind,))[kind]
    assert chance["accuracy"] < 0.6


def test_c_is_chosen_on_held_out_training_codes_never_on_the_test_set():
    codes, y = separable(400, noise=1.0)
    first = probe.probe_codes(codes[:300], y[:300], codes[300:], y[300:], kinds=(probe.LOGISTIC,))
    scrambled = probe.probe_codes(codes[:300], y[:300], codes[300:], y[300:][::-1],
                                  kinds=(probe.LOGISTIC,))
    assert first[probe.LOGISTIC]["C"] == scrambled[probe.LOGISTIC]["C"]
    assert (first[probe.LOGISTIC]["held_out_accuracy"]
            == scrambled[probe.LOGISTIC]["held_out_accuracy"])


def test_one_global_scale_and_sparse_codes_as_csr():
    codes, y = separable(300, classes=12)
    codes = np.maximum(codes - 1.0, 0)  # a twelfth of them non-zero
    train, test, scale = probe.prepare_codes(codes[:200], codes[200:])
    assert scipy.sparse.issparse(train) and scipy.sparse.issparse(test)
    assert np.mean(np.asarray(train.multiply(train).sum(axis=1))) == pytest.approx(1, rel=1e-5)
    # One scale for every unit: the ratios between units are kept.
    np.testing.assert_allclose(train.toarray(), codes[:200] * scale, rtol=1e-6)
    dense, _, _ = probe.prepare_codes(np.ones((4, 2)), np.ones((2, 2)))
    assert isinstance(dense, np.ndarray)
    small = probe.probe_codes(codes[:200], y[:200], codes[200:], y[200:])
    large = probe.probe_codes(1000 * codes[:200], y[:200], 1000 * codes[200:], y[200:])
    for kind in (probe.LOGISTIC, probe.SVM):
        assert small[kind]["accuracy"] == pytest.approx(large[kind]["accuracy"], abs=0.02)


def test_codes_given_as_csr_give_the_probes_of_the_dense_codes():
    codes, y = separable(300, classes=12)
    codes = np.maximum(codes - 1.0, 0)
    dense = probe.probe_codes(codes[:200], y[:200], codes[200:], y[200:])
    given = probe.probe_codes(scipy.sparse.csr_matrix(codes[:200]), y[:200],
                              scipy.sparse.csr_matrix(codes[200:]), y[200:])
    assert given["scale"] == pytest.approx(dense["scale"], rel=1e-6)
    for kind in (probe.LOGISTIC, probe.SVM):
        assert given[kind]["accuracy"] == dense[kind]["accuracy"]
        assert given[kind]["C"] == dense[kind]["C"]
    with pytest.raises(ValueError, match="199 labels for 200 codes"):
        probe.probe_codes(scipy.sparse.csr_matrix(codes[:200]), y[:199], codes[200:], y[200:])


def test_degenerate_codes_give_a_finite_result():
    codes, y = separable(200)
    for bad in (np.zeros_like(codes), np.ones_like(codes), np.c_[codes, np.full(200, 5.0)]):
        results = probe.probe_codes(bad[:150], y[:150], bad[150:], y[150:])
        for kind in (probe.LOGISTIC, probe.SVM):
            assert np.isfinite(results[kind]["accuracy"])
    zero = probe.probe_codes(np.zeros((150, 3)), y[:150], np.zeros((50, 3)), y[150:])
    assert zero["scale"] == 1.0
    # A class missing from the training labels: its test codes count as errors.
    kept = y[:150] != 2
    missing = probe.probe_codes(codes[:150][kept], y[:150][kept], codes[150:], y[150:])
    assert missing[probe.LOGISTIC]["accuracy"] == pytest.approx(np.mean(y[150:] != 2), abs=0.02)


def test_labels_that_cannot_train_a_probe_skip_it_with_the_reason():
    codes, y = separable(40)
    assert probe.probe_codes(codes, None, codes, None) == {"skipped": "no labels"}
    assert "at least 10" in probe.probe_codes(codes[:5], y[:5], codes, y)["skipped"]
    assert "2 classes" in probe.probe_codes(codes, np.zeros(40, int), codes, y)["skipped"]
    with pytest.raises(ValueError, match="Expected as many train labels as train codes. "
                                         "Received: 39 labels for 40 codes"):
        probe.probe_codes(codes, y[:39], codes, y)


def test_copy_false_scales_float32_codes_in_place_with_the_same_result():
    codes, y = separable(300, classes=4)
    codes = codes.astype("float32")
    train, test = codes[:200].copy(), codes[200:].copy()
    expected = probe.probe_codes(codes[:200], y[:200], codes[200:], y[200:])
    result = probe.probe_codes(train, y[:200], test, y[200:], copy=False)
    np.testing.assert_allclose(train, codes[:200] * np.float32(result["scale"]), rtol=1e-6)
    for kind in (probe.LOGISTIC, probe.SVM):
        assert result[kind]["accuracy"] == expected[kind]["accuracy"]
