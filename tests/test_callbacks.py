import keras
import numpy as np
import pytest

import models
from regularizers import Contractive, KLSparsity, L1Sparsity
from pipeline import callbacks as monitoring, metrics


def test_diagnostics_split_loss_into_reconstruction_and_penalty(tmp_path):
    model = models.build_conv_autoencoder(
        (8, 8, 1), 3, filters=(4,), code_activation="sigmoid",
        activity_regularizer=KLSparsity(rho=0.2, beta=3.0),
    )
    model.compile(loss="binary_crossentropy")
    sample = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    callback = monitoring.SparsityDiagnostics(sample, tmp_path)
    callback.set_model(model)
    scalars, codes, _ = callback.compute()
    # With the whole sample as one batch, the Keras loss is exactly the sum.
    total = model.evaluate(sample, sample, batch_size=len(sample), verbose=0)
    assert np.isclose(scalars["val_reconstruction_loss"] + scalars["val_sparsity_penalty"], total, rtol=1e-4)
    assert np.isclose(scalars["val_sparsity_penalty"], 3.0 * metrics.kl_to_rho(codes, 0.2), rtol=1e-4)
    assert scalars["val_code_rho"] == 0.2
    stats = metrics.code_statistics(codes)
    assert scalars["val_code_l0"] == stats["l0"]
    logs = {}
    callback.on_epoch_end(0, logs)
    assert set(scalars) <= set(logs)


def test_no_penalty_and_no_rho():
    model = models.build_dense_autoencoder((4,), 2, hidden_units=())
    assert monitoring.code_penalty(model) is None
    assert monitoring.target_rho(model) is None
    l1 = L1Sparsity(0.5)
    with_l1 = models.build_dense_autoencoder((4,), 2, activity_regularizer=l1)
    assert monitoring.code_penalty(with_l1) is l1
    assert monitoring.target_rho(with_l1) is None
    contractive = Contractive(0.1)
    with_contractive = models.build_dense_autoencoder((4,), 2, activity_regularizer=contractive)
    assert monitoring.code_penalty(with_contractive) is contractive


def test_penalty_scalar_holds_every_penalty_term_and_auxk_its_own(tmp_path):
    # A contractive dictionary with AuxK: the penalty is the code penalty,
    # the AuxK loss a term of its own, and the terms add up to Keras' loss.
    model = models.build_dictionary_autoencoder(
        (4, 4, 1), 24, activity_regularizer=Contractive(0.3), aux_k=4, dead_after_examples=1)
    model.examples_since_fired.assign(np.where(np.arange(24) < 12, 5.0, 0.0))
    model.compile(loss="mean_squared_error")
    sample = np.random.default_rng(0).random((16, 4, 4, 1)).astype("float32")
    callback = monitoring.SparsityDiagnostics(sample, tmp_path)
    callback.set_model(model)
    scalars, _, _ = callback.compute()
    assert scalars["val_sparsity_penalty"] > 0 and scalars["val_auxk_loss"] > 0
    # Keras' validation loss holds the penalties; AuxK is a training loss.
    total = model.evaluate(sample, sample, batch_size=len(sample), verbose=0)
    parts = scalars["val_reconstruction_loss"] + scalars["val_sparsity_penalty"]
    assert np.isclose(parts, total, rtol=1e-4)
    expected_aux = model.aux_coefficient * float(model.auxk_loss(sample, model(sample)))
    assert np.isclose(scalars["val_auxk_loss"], expected_aux, rtol=1e-5)
    assert scalars["val_code_dead_window_fraction"] == 0.5
    assert 0 <= scalars["val_fvu"]


def test_callbacks_in_order_and_csv_appends_only_when_resuming(tmp_path):
    from pipeline import backup as backup_lib

    sample = np.zeros((2, 4))
    backup = backup_lib.BackupCallback(backup_lib.RunBackup(tmp_path / "backup"))
    callbacks = monitoring.training_callbacks(tmp_path, sample, backup=backup)
    kinds = [type(c) for c in callbacks]
    assert kinds == [
        monitoring.SparsityDiagnostics, keras.callbacks.TerminateOnNaN,
        backup_lib.BackupCallback, keras.callbacks.CSVLogger, keras.callbacks.TensorBoard,
    ]
    assert callbacks[3].append is False
    assert monitoring.training_callbacks(tmp_path, sample, resuming=True)[2].append is True


def test_active_log10_keeps_the_active_values_on_a_log_scale():
    codes = np.array([[0.0, 0.005, 0.1], [1.0, 3.0, 0.02]])
    np.testing.assert_allclose(monitoring.active_log10(codes, 0.01),
                               np.log10([0.1, 1.0, 3.0, 0.02]))


def _written_histograms(logdir):
    import tensorflow as tf

    tables = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tables[value.tag] = (value.metadata.plugin_data.plugin_name,
                                     tf.make_ndarray(value.tensor))
    return tables


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).gamma(0.3, size=(40, 25)),  # many values, ties at the edges
    np.array([0.0, 0.0, 1.0, 2.5, 2.5, 2.5]),
    np.full((5,), 0.7),  # a single value
    np.array([]),  # nothing active
])
def test_histograms_match_tensorboards_own(tmp_path, values):
    import tensorflow as tf

    for name, write in (("ours", monitoring.write_histogram), ("theirs", tf.summary.histogram)):
        with tf.summary.create_file_writer(str(tmp_path / name)).as_default():
            write("h", values, step=0, buckets=monitoring.HISTOGRAM_BUCKETS)
    (ours_plugin, ours), (theirs_plugin, theirs) = (
        _written_histograms(tmp_path / name)["h"] for name in ("ours", "theirs"))
    assert ours_plugin == theirs_plugin == "histograms"
    assert ours.shape == theirs.shape == (monitoring.HISTOGRAM_BUCKETS, 3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_a_histogram_of_two_million_codes_needs_no_one_hot_matrix():
    import subprocess
    import sys
    from pathlib import Path

    # In a fresh process, whose peak memory is not some earlier test's.
    code = ("import numpy as np; from pipeline import callbacks, training; "
            "codes = np.random.default_rng(0).random((1000, 2048)).astype('float32'); "
            "before = training.peak_memory_mb(); table = callbacks.histogram_buckets(codes); "
            "assert table[:, 2].sum() == codes.size; print(training.peak_memory_mb() - before)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(monitoring.__file__).parents[1])
    # tf.summary.histogram's one-hot matrix: 2M x 50 float64 values, 800 MB.
    assert float(result.stdout.split()[-1]) < 200, result.stdout + result.stderr


def test_penalty_warmup_ramps_the_l1_weight_by_step_then_leaves_it_whole():
    l1 = L1Sparsity(0.5)
    model = models.build_dense_autoencoder((4,), 2, hidden_units=(), activity_regularizer=l1)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    warmup = monitoring.PenaltyWarmup(epochs=2, steps_per_epoch=4)
    seen = []
    record = keras.callbacks.LambdaCallback(  # after the warm-up sets the batch's weight
        on_train_batch_begin=lambda batch, logs: seen.append(float(warmup.weight.numpy())))
    model.fit(x, x, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[warmup, record])
    assert seen == pytest.approx([s / 8 for s in range(8)] + [1.0] * 4)
    assert float(warmup.weight.numpy()) == 1.0
    # The penalty that reaches the loss is the weight times the formula's.
    h = model.get_layer("encoder")(x)
    warmup.weight.assign(0.25)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(l1(h)) / len(x),
                               0.25 * keras.ops.convert_to_numpy(l1.penalty(h)), rtol=1e-5)


def test_penalty_warmup_without_step_counts_ramps_by_epoch():
    model = models.build_dense_autoencoder((4,), 2, hidden_units=(),
                                           activity_regularizer=L1Sparsity(0.5))
    model.compile(optimizer="sgd", loss="mse")
    warmup = monitoring.PenaltyWarmup(epochs=4, steps_per_epoch=None)
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(float(warmup.weight.numpy())))
    x = np.zeros((8, 4), "float32")
    model.fit(x, x, batch_size=8, epochs=3, verbose=0, callbacks=[warmup, record])
    assert seen == pytest.approx([0.0, 0.25, 0.5])


def test_penalty_warmup_needs_an_activity_penalty():
    model = models.build_dense_autoencoder((4,), 2, hidden_units=())
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 4), "float32")
    with pytest.raises(ValueError, match="Expected a model with an activity penalty"):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[monitoring.PenaltyWarmup(1, 1)])
