"""Training callbacks: sparse-autoencoder diagnostics and the standard Keras set."""

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata

import models
import regularizers
from pipeline import metrics
from pipeline import objective
from pipeline import plots

HISTOGRAM_BUCKETS = plots.HISTOGRAM_BINS
CSV_NAME = "training.csv"
BACKUP_DIR_NAME = "backup"
DIAGNOSTICS_RUN = "diagnostics"
# log10 of a unit's firing frequency when it never fires on the sample.
NEVER_FIRED_LOG10 = -7.0
# Examples of this rank, (N, H, W, C), are images and get pictures.
IMAGE_RANK = 4


def code_penalty(model):
    """The penalty object on the model's code (activity or code penalty), or None."""
    for layer in model.get_layer(models.ENCODER).layers:
        penalty = getattr(layer, "code_penalty", None) or layer.activity_regularizer
        if penalty is not None:
            return penalty
    return None


def target_rho(model):
    """The target mean activation of the code penalty, or None if it has none."""
    return getattr(code_penalty(model), "rho", None)


def active_log10(codes, threshold):
    """log10 of the code activations above `threshold` (an empty array if none)."""
    flat = np.asarray(codes).ravel()
    return np.log10(flat[flat > threshold])


def feature_density_log10(codes, threshold):
    """log10 of each unit's firing frequency over `codes` (NEVER_FIRED_LOG10 if never)."""
    flat = np.asarray(codes).reshape(len(codes), -1)
    return density_log10((flat > threshold).mean(axis=0))


def density_log10(density):
    """log10 of firing frequencies `density` (NEVER_FIRED_LOG10 where 0)."""
    return np.where(density > 0, np.log10(np.maximum(density, 1e-30)), NEVER_FIRED_LOG10)


def histogram_buckets(values, buckets=HISTOGRAM_BUCKETS):
    """The [buckets, 3] (left edge, right edge, count) table of `tf.summary.histogram`.

    The same table TensorBoard's own `_buckets` makes (equal-width buckets
    from min to max; for a single value, every edge at it and the count in
    the last bucket; zeros for no data), counted with `np.bincount`:
    TensorBoard's version builds an N x buckets float64 one-hot matrix, 883
    MB for the codes of 1,000 images on 2,048 latents (measured). Non-finite
    values (a diverged run) are left out.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros((buckets, 3))
    low, high = values.min(), values.max()
    if low == high:
        counts = np.zeros(buckets)
        counts[-1] = values.size
        return np.stack([np.full(buckets, high), np.full(buckets, high), counts], axis=1)
    edges = np.linspace(low, high, buckets + 1)
    edges[-1] = high
    # TensorBoard's rule: bucket floor((v - min) / width), the maximum in the last.
    width = (high - low) / buckets
    index = np.minimum(np.floor((values - low) / width).astype(np.int64), buckets - 1)
    counts = np.bincount(index, minlength=buckets).astype(np.float64)
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def write_histogram(name, values, step, buckets=HISTOGRAM_BUCKETS):
    """`tf.summary.histogram(name, values, step, buckets)` with `histogram_buckets`."""
    return tf.summary.write(
        name, tf.constant(histogram_buckets(values, buckets)), step=step,
        metadata=histogram_metadata.create_summary_metadata(display_name=None,
                                                            description=None))


class SparsityDiagnostics(keras.callbacks.Callback):
    """Per-epoch diagnostics of the code on a fixed validation sample.

    Adds to the epoch logs (so Keras' TensorBoard and CSVLogger record them,
    under the "validation" run as `epoch_<name>`): each named loss term
    (`val_reconstruction_loss`, `val_sparsity_penalty` holding every penalty
    term, `val_auxk_loss` for AuxK models), `val_fvu` (1 - explained
    variance), `val_code_mean_activation`, `val_code_rho` (for penalties
    with a target), `val_code_l0` and `val_code_dead_fraction` (never above
    threshold on the sample), and for dictionaries `val_code_dead_window_fraction`
    (not fired in the last `dead_after_examples` training examples). Writes
    to `logdir/diagnostics` histograms of code activations, of log10 of the
    active ones (`active_code_log10`, legible when epoch 0's range is wider), and of log10
    feature density, and (for images) an image of inputs above their reconstructions.
    Place it before TensorBoard and CSVLogger.

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
        terms, x_hat = objective.loss_terms(self.model, self.sample)
        codes = np.asarray(self.model.get_layer(models.ENCODER)(self.sample, training=False))
        stats = metrics.code_statistics(codes, self.threshold)
        scalars = {f"val_{name}": value for name, value in terms.items()}
        scalars.update({
            "val_fvu": 1 - metrics.explained_variance(self.sample, x_hat),
            "val_code_mean_activation": stats["mean_activation"],
            "val_code_l0": stats["l0"],
            "val_code_dead_fraction": stats["dead_fraction"],
        })
        if hasattr(self.model, "dead_mask"):
            scalars["val_code_dead_window_fraction"] = float(
                np.mean(np.asarray(self.model.dead_mask())))
        rho = target_rho(self.model)
        if rho is not None:
            scalars["val_code_rho"] = rho
        return scalars, codes, x_hat

    def on_epoch_end(self, epoch, logs=None):
        scalars, codes, x_hat = self.compute()
        if logs is not None:
            logs.update(scalars)
        with self.writer.as_default():
            write_histogram("code_activations", codes, step=epoch)
            # On a log scale too: epoch 0's large activations (0-3 against a
            # final 0-0.35) squash the linear chart, whose range TensorBoard shares.
            write_histogram("active_code_log10", active_log10(codes, self.threshold), step=epoch)
            write_histogram("feature_density_log10",
                            feature_density_log10(codes, self.threshold), step=epoch)
            if self.sample.ndim == IMAGE_RANK:  # vectors (N, D) make no picture
                grid = plots.inputs_above_reconstructions(
                    self.sample[:plots.GRID_IMAGES], x_hat[:plots.GRID_IMAGES])
                tf.summary.image("inputs_above_reconstructions", grid[None], step=epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


class EpochLine(keras.callbacks.Callback):
    """One short line per epoch: the losses and the code's L0 and dead fraction.

    Replaces Keras' progress bar (verbose=0), whose step count overshoots
    (432/430) with steps_per_execution > 1 and whose epoch line lists every
    metric (~300 characters).
    """

    SHOWN = {"loss": "loss", "val_loss": "val_loss",
             "val_reconstruction_loss": "val_reconstruction",
             "val_code_l0": "L0", "val_code_dead_fraction": "dead"}

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"{label} {logs[key]:.4g}" for key, label in self.SHOWN.items() if key in logs]
        print(f"epoch {epoch + 1}/{self.epochs}: {', '.join(parts)} "
              f"({time.perf_counter() - self.start:.1f} s)", flush=True)


class PenaltyWarmup(keras.callbacks.Callback):
    """Ramps the weight of the model's activity penalty (L1, KL; `code_penalty`)
    from 0 to 1 over the first `epochs` epochs, linearly in the training step
    (SAELens' `l1_warm_up_steps`; Anthropic's L1 warm-up):

        weight(step) = min(1, step / (epochs * steps_per_epoch))

    set before each batch (and each epoch, for a loop without batch callbacks),
    from the optimizer's step count, so a resumed run continues the ramp. When
    the batches per epoch are unknown, it ramps by epoch: min(1, epoch / epochs).
    The weight is 1 once training ends; a saved model's penalty has no warm-up.

    Args:
        epochs: float > 0, the length of the ramp in epochs.
        steps_per_epoch: training batches per epoch, or None if unknown.
    """

    def __init__(self, epochs, steps_per_epoch):
        super().__init__()
        self.epochs, self.steps_per_epoch = float(epochs), steps_per_epoch
        self.weight = None

    def on_train_begin(self, logs=None):
        penalty = code_penalty(self.model)
        if not isinstance(penalty, regularizers.ActivityPenalty):
            raise ValueError("Expected a model with an activity penalty (L1 or KL) to warm "
                             f"up. Received: a model without one ({self.model.name})")
        self.weight = keras.Variable(0.0, trainable=False, dtype="float32",
                                     name="penalty_warmup")
        penalty.warmup_weight = self.weight
        self.on_train_batch_begin(None)

    def _ramp(self, epochs_done):
        self.weight.assign(min(1.0, epochs_done / self.epochs))

    def on_epoch_begin(self, epoch, logs=None):
        self._ramp(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps_per_epoch:
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self._ramp(step / self.steps_per_epoch)

    def on_train_end(self, logs=None):
        self.weight.assign(1.0)


def training_callbacks(logdir, sample, *, threshold=metrics.ACTIVE_THRESHOLD, backup=None,
                       resuming=False, revival=None):
    """The callbacks of a training run, in the order they must run.

    Diagnostics first, so that TensorBoard and CSVLogger see its scalars;
    then `revival` (a `pipeline.revival.DeadUnitRevival`, or None), after the
    diagnostics so that they report the dead units training left; then
    TerminateOnNaN, the `backup` callback (a `pipeline.backup.BackupCallback`;
    None for a loop that keeps its own backups), CSVLogger (appending to the
    log of the interrupted run when `resuming`) and TensorBoard.

    Args:
        logdir: this run's log folder (TensorBoard runs and the CSV).
        sample: fixed validation images for the diagnostics.
    """
    logdir = Path(logdir)
    return [
        SparsityDiagnostics(sample, logdir, threshold),
        *([revival] if revival is not None else []),
        keras.callbacks.TerminateOnNaN(),
        *([backup] if backup is not None else []),
        keras.callbacks.CSVLogger(str(logdir / CSV_NAME), append=resuming),
        # update_freq="epoch": per-batch steps would mix with the epoch axis.
        keras.callbacks.TensorBoard(str(logdir), update_freq="epoch", histogram_freq=0),
    ]
