"""Training: build a model from its configuration, fit it, export it.

train.py is a thin command line over `train`; the benchmarks and tests use
`build_model` and `train` from here.
"""

import dataclasses
import math
import os
import platform
import re
import resource
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import keras
import tensorflow as tf

import models
from pipeline import backup as backup_lib
from pipeline import callbacks as callbacks_lib
from pipeline import config as config_lib
from pipeline import data
from pipeline import distribution
from pipeline import export
from pipeline import locks
from pipeline import objective
from pipeline import precision
from pipeline import revival as revival_lib

# A user's runs export here; the shipped zoo (saved_models/) only when asked (--out).
DEFAULT_OUT = "runs"
DEFAULT_LOG_ROOT = "logs"
RUN_DIR_FORMAT = "%Y%m%d-%H%M%S"
RUN_LOCK = ".lock"
VERSIONED_PACKAGES = ("tensorflow", "keras", "numpy", "tensorboard")
# Training images a family's data initializer sees (e.g. the dictionary's mean).
DATA_INIT_IMAGES = 10_000
# Training images that calibrate thresholds after training (BatchTopK).
CALIBRATION_IMAGES = 4_000
# Codes wider than this are measured (`estimate_parameters`, from builds at
# PROBE_CODE_SIZE and twice it) before the model is built, and refused when
# their training state cannot fit in memory: float32 weights, gradients and
# Adam's two moments.
MEMORY_CHECK_CODE_SIZE = 16_384
PROBE_CODE_SIZE = 256
TRAINING_BYTES_PER_PARAMETER = 4 * 4


class TrainingError(RuntimeError):
    """Training did not produce a usable model (e.g. the loss became NaN)."""


def build_model(config, input_shape=data.IMAGE_SHAPE, name=None, policy=None, unit_interval=True):
    """The autoencoder described by `config`, compiled with the objective.

    Args:
        config: a `TrainConfig`.
        input_shape: the shape of one example.
        name: model name, by default `config.default_name` (e.g. "conv-l1").
        policy: the Keras dtype policy of its layers, by default the one
            `config.precision` resolves to on this machine (pipeline.precision).
        unit_interval: whether the data lie in [0, 1] (binary cross-entropy
            is then reported beside the mean squared error).
    """
    family = models.get_family(config.model)
    architecture = dict(config.architecture)
    if "code_activation" in architecture:  # a name, or the layer it names
        architecture["code_activation"] = config_lib.build_code_activation(config)
    code_size = architecture.pop("code_size")
    policy = policy or precision.resolve_config(config).policy
    with precision.policy_scope(policy):
        model = family.builder(
            input_shape, code_size,
            activity_regularizer=config_lib.build_penalty(config),
            name=name or config.default_name,
            **architecture,
        )
    return objective.compile_model(
        model, learning_rate=config.learning_rate, jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution, unit_interval=unit_interval,
        adam_epsilon=config.adam_epsilon, global_clipnorm=config.global_clipnorm,
    )


def estimate_parameters(config, input_shape=data.IMAGE_SHAPE):
    """The parameter count of `config`'s model, from two builds at small code sizes.

    Every family's count is affine in the code size c, p(c) = p(c1) + (c - c1) *
    (p(c2) - p(c1)) / (c2 - c1), so a code too wide to build is measured
    without building it. None when no small code size builds (its other
    arguments need a wide code: the full build says why).
    """
    code_size, counts = config.architecture["code_size"], {}
    size = PROBE_CODE_SIZE
    while len(counts) < 2 and size < code_size:
        architecture = {**config.architecture, "code_size": size}
        try:
            probe = dataclasses.replace(config, architecture=architecture)
            counts[size] = build_model(probe, input_shape, policy=precision.FLOAT32).count_params()
        except ValueError:
            counts.clear()  # two consecutive sizes that build
        size *= 2
    if len(counts) < 2:
        return None
    (c1, p1), (c2, p2) = counts.items()
    return p1 + (code_size - c1) * (p2 - p1) // (c2 - c1)


def _check_memory(config, input_shape):
    """Refuses, before building, a model whose training state exceeds the machine's memory."""
    if config.architecture.get("code_size", 0) <= MEMORY_CHECK_CODE_SIZE:
        return
    parameters = estimate_parameters(config, input_shape)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if parameters is not None and parameters * TRAINING_BYTES_PER_PARAMETER > total:
        raise ValueError(
            f"Expected `code_size` small enough to train in this machine's memory. Received: "
            f"code_size={config.architecture['code_size']} (about {parameters:,} parameters: "
            f"{parameters * TRAINING_BYTES_PER_PARAMETER / 2**30:,.1f} GiB for the weights, "
            f"gradients and Adam moments, against {total / 2**30:.1f} GiB of memory)")


def _build_reporting_tf_errors(config, dataset, name, policy):
    """`build_model` for `dataset`'s examples, with TensorFlow's errors (out of memory,
    say) as one-line TrainingErrors."""
    try:
        return build_model(config, dataset.example_shape, name=name, policy=policy,
                           unit_interval=dataset.unit_interval)
    except (tf.errors.OpError, MemoryError) as error:
        reason = getattr(error, "message", None) or str(error) or type(error).__name__
        raise TrainingError(
            f"TensorFlow failed to build the model ({type(error).__name__}: "
            f"{reason.strip().splitlines()[0][:200]}); nothing was written"
        ) from None


def float32_copy(model, config):
    """`model` itself if its layers compute in float32, else a float32 twin with its
    weights (the variables of a mixed-precision model are float32 already)."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in _all_layers(model)):
        return model
    input_shape = tuple(model.get_layer(models.ENCODER).input_shape[1:])
    twin = build_model(config, input_shape, name=model.name, policy=precision.FLOAT32)
    twin.set_weights(model.get_weights())
    return twin


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def peak_memory_mb():
    """This process's peak resident memory in MB.

    VmHWM from /proc/self/status where there is one: `ru_maxrss` survives
    fork and exec, so a run started by a big parent (the zoo benchmark after
    an evaluation) would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def package_versions():
    """Versions of Python and the packages that decide the numerics."""
    versions = {"python": platform.python_version()}
    versions.update({name: metadata.version(name) for name in VERSIONED_PACKAGES})
    return versions


def _final_metrics(history):
    """The last epoch's logs; a non-finite diagnostic (not the loss) becomes None."""
    return objective.finite_logs({key: values[-1] for key, values in history.history.items()
                                  if values})


def run_fingerprint(config, dataset, limit, distribute):
    """What a backup must match to be resumed: the configuration (but the epoch
    count, which a rerun may raise), the data and the strategy."""
    fields = dataclasses.asdict(config)
    fields.pop("epochs")
    return {"config": fields, "distribute": distribute,
            "data": {"sha256": dataset.sha256 or dataset.source, "limit": limit}}


def normalization_scale(dataset):
    """s = sqrt(D / mean ||x||^2) over the training examples (1 for all-zero data):
    the mean squared norm of s * x is D, the number of values of an example."""
    values = math.prod(dataset.example_shape)
    mean_squared_norm = dataset.stats.mean_squared_norm
    return math.sqrt(values / mean_squared_norm) if mean_squared_norm > 0 else 1.0


def adapt_to_data(config, dataset):
    """(config, notes): `config` checked against the data and fitted to it.

    The family must accept the kind of examples (`models.Family.accepts`);
    data outside [0, 1] get a linear output (the mean squared error) where
    the configuration has a sigmoid one (binary cross-entropy needs [0, 1]).

    Raises:
        DataError: the family does not take this kind of example, or
            `random_shift` is set for vectors or not below the image's size.
    """
    family = models.get_family(config.model)
    if dataset.kind not in family.accepts:
        wanted = " or ".join(data.KIND_SHAPES[kind] for kind in family.accepts)
        raise data.DataError(
            f"Expected {wanted} for --model {config.model}. Received: {dataset.kind} "
            f"x_train.shape={tuple(dataset.x_train.shape)} in {dataset.source}")
    if config.random_shift:
        height_width = dataset.example_shape[:2]
        if dataset.kind != data.IMAGES or config.random_shift >= min(height_width):
            raise data.DataError(
                "Expected `random_shift` on images, below their height and width. Received: "
                f"random_shift={config.random_shift} for {dataset.kind} of shape "
                f"{dataset.example_shape} in {dataset.source}")
    notes = []
    if not dataset.unit_interval and config.architecture.get("output_activation") == "sigmoid":
        config = dataclasses.replace(
            config, architecture={**config.architecture, "output_activation": "linear"})
        notes.append(f"the data are not in [0, 1] (values in [{dataset.stats.low:.4g}, "
                     f"{dataset.stats.high:.4g}]): output_activation='linear' and the mean "
                     f"squared error, not a sigmoid and binary cross-entropy")
    return config, notes


def remove_empty_run_dirs(logdir):
    """Removes the run folders of `logdir` that hold no file (runs killed before
    writing anything); under the run lock, so none of them is in use."""
    pattern = re.compile(r"\d{8}-\d{6}(-\d+)?")
    for run_dir in Path(logdir).iterdir():
        if pattern.fullmatch(run_dir.name) and run_dir.is_dir() and not run_dir.is_symlink() \
                and not any(p.is_file() or p.is_symlink() for p in run_dir.rglob("*")):
            shutil.rmtree(run_dir, ignore_errors=True)


def remove_dead_workers_scratch(name):
    """Removes the scratch folders of non-chief workers of `name` that were killed."""
    for scratch in Path(tempfile.gettempdir()).glob(f"{name}-worker-*-*"):
        pid = scratch.name.removeprefix(f"{name}-worker-").split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not locks.is_running(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


def new_run_dir(logdir):
    """A fresh run folder logdir/YYYYmmdd-HHMMSS (TensorBoard shows runs side by side)."""
    stamp = time.strftime(RUN_DIR_FORMAT)
    candidate, count = Path(logdir) / stamp, 1
    while candidate.exists():
        count += 1
        candidate = Path(logdir) / f"{stamp}-{count}"
    return candidate


def _batches(dataset):
    """The number of batches of a finite dataset, or None when tf.data cannot tell."""
    count = int(dataset.cardinality())
    return count if count > 0 else None


def _fit(model, config, strategy, datasets, sample, run_dir, backup, extra_callbacks, dry_run,
         backup_metadata=None, revival=None):
    """Runs the training loop that suits `strategy`; returns (history, seconds).

    A dry run takes the same path with one batch, one epoch and no logs.
    Both loops resume from `backup` (a `pipeline.backup.RunBackup`) and back
    up after each finite epoch, recording `backup_metadata`; `revival` is a
    `pipeline.revival.DeadUnitRevival` or None.
    """
    train_ds, val_ds = datasets
    if config.penalty_warmup_epochs:  # counted before a dry run takes its one batch
        extra_callbacks = [callbacks_lib.PenaltyWarmup(config.penalty_warmup_epochs,
                                                       _batches(train_ds)),
                           *extra_callbacks]
    multi_worker = distribution.is_multi_worker(strategy)
    epochs = 1 if dry_run else config.epochs
    start = time.perf_counter()
    if multi_worker:
        backup_dir = Path(tempfile.mkdtemp()) if dry_run else backup.directory
        if dry_run:
            train_ds, val_ds = train_ds.take(1), val_ds.take(1)
            all_callbacks = [keras.callbacks.TerminateOnNaN(), *extra_callbacks]
        else:
            all_callbacks = callbacks_lib.training_callbacks(
                run_dir, sample, threshold=config.active_threshold,
                resuming=backup.read() is not None, revival=revival) + list(extra_callbacks)
        trainer = distribution.MultiWorkerTrainer(model, strategy, backup_dir,
                                                  **(backup_metadata or {}))
        history = trainer.fit(train_ds, val_ds, epochs=epochs, callbacks=all_callbacks)
        if dry_run:
            trainer.finish()
        return history, time.perf_counter() - start
    initial_epoch = 0
    if dry_run:
        train_ds, val_ds = train_ds.take(1), val_ds.take(1)
        all_callbacks = [keras.callbacks.TerminateOnNaN(), *extra_callbacks]
    else:
        with strategy.scope():
            initial_epoch = backup.restore(model)
        all_callbacks = callbacks_lib.training_callbacks(
            run_dir, sample, threshold=config.active_threshold,
            backup=backup_lib.BackupCallback(backup, **(backup_metadata or {})),
            resuming=initial_epoch > 0, revival=revival,
        ) + [callbacks_lib.EpochLine(epochs), *extra_callbacks]
    # Explicit steps: one tf.data iterator per epoch. Without them Keras' epoch
    # iterator makes one at the end of each epoch and deletes it unused at the
    # start of the next, and a deletion can wait for tf.data's autotuner (the
    # epoch-start stall: README, "Speed"; pipeline.data.PREFETCH_BATCHES).
    history = model.fit(
        train_ds,
        steps_per_epoch=_batches(train_ds),
        validation_data=val_ds,
        validation_steps=_batches(val_ds),
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=all_callbacks,
        shuffle=False,  # the tf.data pipeline shuffles, with the seed
        verbose=2 if dry_run else 0,  # EpochLine prints one short line per epoch
    )
    return history, time.perf_counter() - start


def _fit_reporting_tf_errors(model, config, strategy, datasets, sample, run_dir, backup,
                             callbacks, backup_metadata, revival):
    """`_fit`, with TensorFlow's errors (a full log disk, say) as one-line TrainingErrors."""
    try:
        return _fit(model, config, strategy, datasets, sample, run_dir, backup, callbacks,
                    False, backup_metadata, revival)
    except tf.errors.OpError as error:  # e.g. ResourceExhaustedError
        # A non-chief worker's backup folder is a scratch folder, gone by now.
        kept = (f"the last backup in {backup.directory} is kept"
                if distribution.is_chief(strategy) else "the chief keeps the last backup")
        raise TrainingError(
            f"TensorFlow failed during training ({type(error).__name__}: "
            f"{(error.message or '').strip().splitlines()[0][:200]}); {kept}"
        ) from None


def _check_limit(limit, validation_fraction):
    """Refuses a `limit` that leaves fewer than data.MIN_VALIDATION_IMAGES to validate on."""
    least = data.minimum_images(validation_fraction)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < least):
        raise ValueError(
            f"Expected `limit` to be an integer >= {least} (validation_fraction="
            f"{validation_fraction:.4g} must hold out at least {data.MIN_VALIDATION_IMAGES} "
            f"images for the validation metrics). Received: limit={limit!r}")


def train(
    config,
    *,
    data_path=None,
    labels=None,
    test_data=None,
    test_labels=None,
    limit=None,
    name=None,
    out=DEFAULT_OUT,
    logdir=None,
    dry_run=False,
    callbacks=(),
    distribute="none",
    cpu_replicas=None,
    cluster_timeout=distribution.DEFAULT_CLUSTER_TIMEOUT,
    restart=False,
    overwrite=False,
):
    """Trains the model of `config` on MNIST or your data and exports it.

    Names and folders are checked before any work; a run holds a lock on its
    log folder (a second run of the same name is refused), resumes from its
    backup only when the configuration and data match, and replaces its
    exports as one set (pipeline.export).

    Args:
        config: a `TrainConfig`.
        data_path: an .npz in the Keras layout or an .npy of examples (None:
            $SPARSE_AE_ZOO_DATA, else the MNIST download); `pipeline.data.load_data`.
        labels, test_data, test_labels: .npy files beside an .npy `data_path`
            (the run records them; training itself needs none of them).
        limit: use only the first `limit` training and test images.
        name: export name (default `config.default_name`, e.g. "conv-l1").
        out: export folder: NAME.keras, NAME/ (SavedModel), NAME.json.
        logdir: the name's log folder (default logs/NAME): its backup/, and
            one TensorBoard/CSV folder per run (logdir/YYYYmmdd-HHMMSS).
        dry_run: fit one batch through the same strategy and loop; write no
            logs and export nothing.
        callbacks: extra Keras callbacks, run after the standard ones.
        distribute: "none", "mirrored" or "multi-worker" (pipeline.distribution).
        cpu_replicas: with "mirrored" on a CPU-only machine, the number of
            logical CPU devices to mirror over.
        cluster_timeout: with "multi-worker", the seconds to wait for every
            task of TF_CONFIG to start; past them one line names the missing
            tasks and the process is killed, nothing written.
        restart: discard the run's backup and train afresh.
        overwrite: replace an evaluated export (one whose NAME.eval.json
            records its sha256, such as a shipped zoo model).

    Returns:
        The run summary written to NAME.json (with "exports" and "logs"
        paths added), or the final metrics of the single batch for a dry
        run. On a non-chief worker the exports and logs go to temporary
        folders that are removed before returning.
    """
    name = export.check_name(name or config.default_name)
    logdir = Path(logdir or Path(DEFAULT_LOG_ROOT) / name)
    _check_limit(limit, config.validation_fraction)
    if not dry_run:
        export.check_targets(out, name, logdir, overwrite=overwrite)
    # First: logical devices can only be configured before TensorFlow starts.
    strategy = distribution.make_strategy(distribute, cpu_replicas=cpu_replicas,
                                          cluster_timeout=cluster_timeout)
    config, notes = distribution.adapt_config(config, strategy)
    resolved = precision.resolve_config(config)
    config, precision_notes = precision.adapt_config(config, resolved)
    for note in notes + precision_notes:
        print(f"note: {note}", file=sys.stderr)
    # uint8 pixels: the pipeline scales each batch (a quarter of the memory).
    dataset = data.load_data(data_path, labels=labels, test_data=test_data,
                             test_labels=test_labels, limit=limit, scaled=False)
    config, data_notes = adapt_to_data(config, dataset)
    for note in data_notes:
        print(f"note: {note}", file=sys.stderr)
    _check_memory(config, dataset.example_shape)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = _build_reporting_tf_errors(config, dataset, name, resolved.policy)
    run = dict(model=model, config=config, strategy=strategy, name=name, dataset=dataset,
               limit=limit, distribute=distribute, callbacks=callbacks, restart=restart,
               resolved=resolved)
    if dry_run:
        return _train_and_export(**run, out=None, logdir=None, dry_run=True)
    if not distribution.is_chief(strategy):
        # A non-chief worker writes only to scratch folders.
        remove_dead_workers_scratch(name)
        scratch = Path(tempfile.mkdtemp(prefix=f"{name}-worker-{os.getpid()}-"))
        try:
            return _train_and_export(**run, out=export.ensure_writable_dir(scratch / "out"),
                                     logdir=scratch / "logs", dry_run=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    out = export.ensure_writable_dir(out)
    export.ensure_writable_dir(logdir, flag="logdir")
    with locks.hold(logdir / RUN_LOCK, what=f"the run {name!r} (logs in {logdir})",
                    hint="wait for it to finish, or use another --name"):
        export.recover(out, name)
        remove_empty_run_dirs(logdir)
        return _train_and_export(**run, out=out, logdir=logdir, dry_run=False)


def _train_and_export(*, model, config, strategy, name, dataset, limit, distribute,
                      callbacks, restart, resolved, out, logdir, dry_run):
    """Splits the data, resumes or starts the run, fits, exports (see `train`)."""
    (x_train, _), (x_val, _) = data.split_validation(
        dataset.x_train, None, config.validation_fraction, config.seed
    )
    if config.architecture.get("normalize", models.NO_NORMALIZATION) != models.NO_NORMALIZATION:
        models.set_normalization(model, normalization_scale(dataset))
    initialize = models.get_family(config.model).data_initializer
    if initialize is not None:
        initialize(model, data.scale_images(x_train[:DATA_INIT_IMAGES]))
    datasets = (data.autoencoder_dataset(x_train, config.batch_size, shuffle_seed=config.seed,
                                         random_shift=config.random_shift),
                data.autoencoder_dataset(x_val, config.batch_size))
    sample = data.scale_images(x_val[: config.diagnostic_sample_size])
    if dry_run:
        history, _ = _fit(model, config, strategy, datasets, sample, None, None, callbacks, True)
        return _final_metrics(history)

    backup = backup_lib.RunBackup(Path(logdir) / callbacks_lib.BACKUP_DIR_NAME)
    if restart:
        backup.remove()
    fingerprint = run_fingerprint(config, dataset, limit, distribute)
    backup.check(fingerprint, config.epochs)  # before any log is written
    previous = backup.read()
    run_dir = Path(logdir) / previous["run"] if previous else new_run_dir(logdir)
    # A run killed after its last epoch but before its export: export the backup.
    finished = previous is not None and previous["epoch"] == config.epochs
    if finished:
        with strategy.scope():
            finished = backup.restore(model) == config.epochs
    elif previous is not None:  # said at the start, not only in the closing summary
        print(f"note: resuming after epoch {previous['epoch']} of {config.epochs} from the "
              f"backup in {backup.directory} (--restart starts over)", file=sys.stderr)
    if finished:
        print(f"note: the backup in {backup.directory} holds all {config.epochs} epochs; "
              f"exporting it", file=sys.stderr)
        final, seconds = previous.get("logs", {}), 0.0
        completed, this_run = config.epochs, 0
    else:
        revival = None
        if config.revive_every:
            revival = revival_lib.DeadUnitRevival(
                data.scale_images(x_train[:revival_lib.SAMPLE_IMAGES]),
                every=config.revive_every, until=config.last_revival_epoch,
                threshold=config.active_threshold, seed=config.seed)
        history, seconds = _fit_reporting_tf_errors(
            model, config, strategy, datasets, sample, run_dir, backup, callbacks,
            {"fingerprint": fingerprint, "run": run_dir.name}, revival)
        final = _final_metrics(history)
        if not history.epoch or not objective.loss_is_finite(final):
            raise TrainingError(
                f"Training stopped with a non-finite loss (final metrics {final}); "
                f"nothing was exported and the last good backup is kept. "
                f"Try a smaller --learning-rate."
            )
        completed, this_run = history.epoch[-1] + 1, len(history.epoch)
        if completed < config.epochs:  # a callback stopped the run early
            raise TrainingError(
                f"Training stopped after {completed} of {config.epochs} epochs; nothing was "
                f"exported, and the same command resumes from the last backup."
            )
    # A tied dictionary's decoder copy of W_enc^T, as of the last step (training
    # sets it before each step, so it lags the last update).
    if isinstance(model, models.SparseDictionary):
        model.sync_tied_decoder()
    # BatchTopK's inference threshold, from the trained weights (so a run
    # that exports its backup calibrates the same way).
    calibrated = models.calibrate_thresholds(
        model, data.scale_images(x_train[:CALIBRATION_IMAGES])
    ) if models.calibrating_layers(model) else {}
    summary = {
        "name": name,
        "config": dataclasses.asdict(config),
        "distribute": {"strategy": distribute, "replicas": strategy.num_replicas_in_sync,
                       "chief": distribution.is_chief(strategy)},
        "data": {**dataset.record(), "limit": limit,
                 "train_images": len(x_train), "validation_images": len(x_val)},
        "versions": package_versions(),
        "precision": resolved.record(),
        "epochs_completed": completed,
        "epochs_this_run": this_run,
        # None, or the backed-up epoch this run resumed after.
        "resumed_from_epoch": completed - this_run or None,
        "training_seconds_this_run": seconds,
        "seconds_per_epoch": seconds / this_run if this_run else None,
        "parameters": model.count_params(),
        "peak_memory_mb": peak_memory_mb(),
        "final_metrics": final,
    }
    if calibrated:
        summary["calibrated_thresholds"] = calibrated
    # Every worker exports, as TensorFlow's multi-worker saving guide has
    # it; a non-chief's export lands in its scratch folder and is removed.
    try:
        # Exports are float32 whatever the training precision.
        with strategy.scope():
            exported = float32_copy(model, config)
        summary["exports"] = export.write_export_set(exported, summary, Path(out), name)
    except (tf.errors.OpError, OSError) as error:  # e.g. a full disk
        if isinstance(error, export.OutputError):
            raise
        reason = error.message if isinstance(error, tf.errors.OpError) else (
            error.strerror or str(error))
        raise export.OutputError(
            f"Expected `out` to take the export {name!r}. Received: out='{out}' "
            f"({(reason or type(error).__name__).strip().splitlines()[0][:200]}); the previous "
            f"export is unchanged and the backup in {backup.directory} is kept"
        ) from None
    summary["logs"] = str(run_dir)
    backup.remove()  # only now: a kill before this point resumes
    return summary
