import keras
import numpy as np

import models
from regularizers import KLSparsity, L1Sparsity
from zoo import metrics, monitoring


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
    assert monitoring.code_penalty(model, np.ones((3, 2), "float32")) == 0.0
    assert monitoring.target_rho(model) is None
    with_l1 = models.build_dense_autoencoder((4,), 2, activity_regularizer=L1Sparsity(0.5))
    assert monitoring.code_penalty(with_l1, np.ones((3, 2), "float32")) == 1.0
    assert monitoring.target_rho(with_l1) is None


def test_callbacks_in_order_and_csv_appends_only_when_resuming(tmp_path):
    sample = np.zeros((2, 4))
    callbacks = monitoring.training_callbacks(tmp_path, sample)
    kinds = [type(c) for c in callbacks]
    assert kinds == [
        monitoring.SparsityDiagnostics, keras.callbacks.TerminateOnNaN,
        keras.callbacks.BackupAndRestore, keras.callbacks.CSVLogger, keras.callbacks.TensorBoard,
    ]
    assert callbacks[3].append is False
    (tmp_path / monitoring.BACKUP_DIR_NAME).mkdir()
    (tmp_path / monitoring.BACKUP_DIR_NAME / "latest.weights.h5").write_bytes(b"")
    assert monitoring.training_callbacks(tmp_path, sample)[3].append is True
