"""Training: build a model from its configuration, fit it, export it.

train.py is a thin command line over `train`; the benchmarks and tests use
`build_model` and `train` from here.
"""

import dataclasses
import math
import platform
import resource
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import keras

import models
from pipeline import callbacks as callbacks_lib
from pipeline import config as config_lib
from pipeline import data
from pipeline import distribution
from pipeline import export
from pipeline import objective

DEFAULT_OUT = "saved_models"
DEFAULT_LOG_ROOT = "logs"
VERSIONED_PACKAGES = ("tensorflow", "keras", "numpy", "tensorboard")
# Training images a family's data initializer sees (e.g. the dictionary's mean).
DATA_INIT_IMAGES = 10_000


class TrainingError(RuntimeError):
    """Training did not produce a usable model (e.g. the loss became NaN)."""


def build_model(config, input_shape=data.IMAGE_SHAPE, name=None):
    """The autoencoder described by `config`, compiled with the objective.

    Args:
        config: a `TrainConfig`.
        input_shape: the shape of one example.
        name: model name, by default `config.default_name` (e.g. "conv-l1").
    """
    family = models.get_family(config.model)
    architecture = dict(config.architecture)
    if "code_activation" in architecture:  # a name, or the layer it names
        architecture["code_activation"] = config_lib.build_code_activation(config)
    code_size = architecture.pop("code_size")
    model = family.builder(
        input_shape, code_size,
        activity_regularizer=config_lib.build_penalty(config),
        name=name or config.default_name,
        **architecture,
    )
    return objective.compile_model(
        model, learning_rate=config.learning_rate, jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )


def package_versions():
    """Versions of Python and the packages that decide the numerics."""
    versions = {"python": platform.python_version()}
    versions.update({name: metadata.version(name) for name in VERSIONED_PACKAGES})
    return versions


def _final_metrics(history):
    return {key: float(values[-1]) for key, values in history.history.items() if values}


def _fit(model, config, strategy, train_ds, val_ds, sample, logdir, extra_callbacks, dry_run):
    """Runs the training loop that suits `strategy`; returns (history, seconds).

    A dry run takes the same path with one batch, one epoch and no logs.
    """
    multi_worker = distribution.is_multi_worker(strategy)
    epochs = 1 if dry_run else config.epochs
    if dry_run:
        train_ds, val_ds = train_ds.take(1), val_ds.take(1)
        all_callbacks = [keras.callbacks.TerminateOnNaN(), *extra_callbacks]
    else:
        all_callbacks = callbacks_lib.training_callbacks(
            logdir, sample, threshold=config.active_threshold, backup=not multi_worker
        ) + list(extra_callbacks)
    start = time.perf_counter()
    if multi_worker:
        backup_dir = Path(tempfile.mkdtemp()) if dry_run else Path(logdir) / callbacks_lib.BACKUP_DIR_NAME
        trainer = distribution.MultiWorkerTrainer(model, strategy, backup_dir)
        history = trainer.fit(train_ds, val_ds, epochs=epochs, callbacks=all_callbacks)
        trainer.finish()
    else:
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            callbacks=all_callbacks,
            shuffle=False,  # the tf.data pipeline shuffles, with the seed
            verbose=2 if dry_run else "auto",
        )
    return history, time.perf_counter() - start


def _export(model, summary, out, name):
    """Writes NAME.keras, NAME/ (SavedModel) and NAME.json; returns their paths."""
    return {
        "keras": str(export.save_keras(model, out / f"{name}.keras")),
        "saved_model": str(export.export_saved_model(model, out / name)),
        "json": str(export.write_json(summary, out / f"{name}.json")),
    }


def _check_limit(limit):
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise ValueError(f"Expected `limit` to be an integer >= 2. Received: limit={limit!r}")


def train(
    config,
    *,
    data_path=None,
    limit=None,
    name=None,
    out=DEFAULT_OUT,
    logdir=None,
    dry_run=False,
    callbacks=(),
    distribute="none",
    cpu_replicas=None,
):
    """Trains the model of `config` on MNIST and exports it.

    Args:
        config: a `TrainConfig`.
        data_path: path of an MNIST .npz (None: $SPARSE_AE_ZOO_DATA or download).
        limit: use only the first `limit` training and test images.
        name: export name (default `config.default_name`, e.g. "conv-l1").
        out: export folder: NAME.keras, NAME/ (SavedModel), NAME.json.
        logdir: TensorBoard/CSV/backup folder (default logs/NAME).
        dry_run: fit one batch through the same strategy and loop; write no
            logs and export nothing.
        callbacks: extra Keras callbacks, run after the standard ones.
        distribute: "none", "mirrored" or "multi-worker" (pipeline.distribution).
        cpu_replicas: with "mirrored" on a CPU-only machine, the number of
            logical CPU devices to mirror over.

    Returns:
        The run summary written to NAME.json (with "exports" paths added),
        or the final metrics of the single batch for a dry run. On a
        non-chief worker the exports and logs go to temporary folders that
        are removed before returning.
    """
    # First: logical devices can only be configured before TensorFlow starts.
    strategy = distribution.make_strategy(distribute, cpu_replicas=cpu_replicas)
    config, notes = distribution.adapt_config(config, strategy)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    name = name or config.default_name
    logdir = Path(logdir or Path(DEFAULT_LOG_ROOT) / name)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config, name=name)  # validates the architecture before any I/O
    _check_limit(limit)
    chief = distribution.is_chief(strategy)
    if not dry_run and chief:
        out = export.ensure_writable_dir(out)
        export.ensure_writable_dir(logdir, flag="logdir")
    mnist = data.load_mnist(data_path, limit=limit)
    (x_train, _), (x_val, _) = data.split_validation(
        mnist.x_train, mnist.y_train, config.validation_fraction, config.seed
    )
    initialize = models.get_family(config.model).data_initializer
    if initialize is not None:
        initialize(model, x_train[:DATA_INIT_IMAGES])
    train_ds = data.autoencoder_dataset(x_train, config.batch_size, shuffle_seed=config.seed)
    val_ds = data.autoencoder_dataset(x_val, config.batch_size)
    sample = x_val[: config.diagnostic_sample_size]
    if dry_run:
        history, _ = _fit(model, config, strategy, train_ds, val_ds, sample, logdir, callbacks, True)
        return _final_metrics(history)

    scratch = None if chief else Path(tempfile.mkdtemp(prefix=f"{name}-worker-"))
    try:
        if scratch:  # a non-chief worker writes only to scratch folders
            out = export.ensure_writable_dir(scratch / "out")
            logdir = export.ensure_writable_dir(scratch / "logs", flag="logdir")
        history, seconds = _fit(model, config, strategy, train_ds, val_ds, sample, logdir,
                                callbacks, False)
        final = _final_metrics(history)
        if not history.epoch or not all(math.isfinite(v) for v in final.values()):
            raise TrainingError(
                f"Training stopped with a non-finite loss (final metrics {final}); "
                f"nothing was exported. Try a smaller --learning-rate."
            )
        summary = {
            "name": name,
            "config": dataclasses.asdict(config),
            "distribute": {"strategy": distribute, "replicas": strategy.num_replicas_in_sync,
                           "chief": chief},
            "data": {"source": mnist.source, "sha256": mnist.sha256, "limit": limit,
                     "train_images": len(x_train), "validation_images": len(x_val)},
            "versions": package_versions(),
            "epochs_completed": history.epoch[-1] + 1,
            "epochs_this_run": len(history.epoch),
            "training_seconds_this_run": seconds,
            "seconds_per_epoch": seconds / len(history.epoch),
            "parameters": model.count_params(),
            # ru_maxrss is in KiB on Linux: the peak of this whole process.
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "final_metrics": final,
        }
        # Every worker exports, as TensorFlow's multi-worker saving guide has
        # it; a non-chief's export lands in its scratch folder and is removed.
        summary["exports"] = _export(model, summary, Path(out), name)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return summary
