"""Training callbacks: sparse-autoencoder diagnostics and the standard Keras set."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import metrics
from zoo import plots

GRID_IMAGES = 8
HISTOGRAM_BUCKETS = 50
CSV_NAME = "training.csv"
BACKUP_DIR_NAME = "backup"
DIAGNOSTICS_RUN = "diagnostics"


def code_penalty(model, codes):
    """The activity penalty that reaches the loss for `codes`, or 0 without one.

    Keras adds `regularizer(codes) / batch_size` to the loss (Keras >= 3.14).
    """
    regularizer = model.get_layer("encoder").get_layer("code").activity_regularizer
    if regularizer is None:
        return 0.0
    return float(regularizer(keras.ops.convert_to_tensor(codes))) / len(codes)


def target_rho(model):
    """The target mean activation of the code penalty, or None if it has none."""
    regularizer = model.get_layer("encoder").get_layer("code").activity_regularizer
    return getattr(regularizer, "rho", None)


class SparsityDiagnostics(keras.callbacks.Callback):
    """Per-epoch diagnostics of the code on a fixed validation sample.

    Adds to the epoch logs (so Keras' TensorBoard and CSVLogger record them,
    under the "validation" run as `epoch_<name>`):
    `val_reconstruction_loss` (mean per-pixel BCE), `val_sparsity_penalty`,
    `val_code_mean_activation`, `val_code_rho` (for penalties with a target),
    `val_code_l0` and `val_code_dead_fraction`. Writes to `logdir/diagnostics`
    a histogram of code activations and an image of inputs above their
    reconstructions. Place it before TensorBoard and CSVLogger.

    Args:
        sample: fixed validation images (N, ...).
        logdir: the TensorBoard log directory of the run.
        threshold: activity threshold of L0 and dead units.
    """

    def __init__(self, sample, logdir, threshold=metrics.ACTIVE_THRESHOLD):
        super().__init__()
        self.sample = np.asarray(sample)
        self.threshold = threshold
        self.writer = tf.summary.create_file_writer(str(Path(logdir) / DIAGNOSTICS_RUN))

    def compute(self):
        """Returns (scalars dict, codes, reconstructions) for the sample."""
        # Direct calls rather than predict(): the same under every tf.distribute
        # strategy, and the sample is small.
        codes = np.asarray(self.model.get_layer("encoder")(self.sample, training=False))
        x_hat = np.asarray(self.model.get_layer("decoder")(codes, training=False))
        stats = metrics.code_statistics(codes, self.threshold)
        scalars = {
            "val_reconstruction_loss": metrics.binary_cross_entropy(self.sample, x_hat),
            "val_sparsity_penalty": code_penalty(self.model, codes),
            "val_code_mean_activation": stats["mean_activation"],
            "val_code_l0": stats["l0"],
            "val_code_dead_fraction": stats["dead_fraction"],
        }
        rho = target_rho(self.model)
        if rho is not None:
            scalars["val_code_rho"] = rho
        return scalars, codes, x_hat

    def on_epoch_end(self, epoch, logs=None):
        scalars, codes, x_hat = self.compute()
        if logs is not None:
            logs.update(scalars)
        grid = plots.inputs_above_reconstructions(
            self.sample[:GRID_IMAGES], x_hat[:GRID_IMAGES]
        )
        with self.writer.as_default():
            tf.summary.histogram("code_activations", codes, step=epoch, buckets=HISTOGRAM_BUCKETS)
            tf.summary.image("inputs_above_reconstructions", grid[None], step=epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


def training_callbacks(logdir, sample, *, threshold=metrics.ACTIVE_THRESHOLD, backup=True):
    """The callbacks of a training run, in the order they must run.

    Diagnostics first, so that TensorBoard and CSVLogger see its scalars;
    BackupAndRestore under `logdir/backup` (unless `backup` is False, for a
    loop that keeps its own backups there) makes a restarted run resume, and
    CSVLogger appends to the log of the interrupted run in that case.
    """
    logdir = Path(logdir)
    backup_dir = logdir / BACKUP_DIR_NAME
    resuming = backup_dir.is_dir() and any(backup_dir.iterdir())
    return [
        SparsityDiagnostics(sample, logdir, threshold),
        keras.callbacks.TerminateOnNaN(),
        *([keras.callbacks.BackupAndRestore(str(backup_dir))] if backup else []),
        keras.callbacks.CSVLogger(str(logdir / CSV_NAME), append=resuming),
        # update_freq="epoch": per-batch steps would mix with the epoch axis.
        keras.callbacks.TensorBoard(str(logdir), update_freq="epoch", histogram_freq=0),
    ]
