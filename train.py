"""Train a sparse autoencoder on MNIST, log to TensorBoard, export to saved_models/.

    python train.py --model conv --reg l1 --data ../shared/data/mnist.npz

The defaults of each (--model, --reg) pair reproduce that zoo model
(configs.ZOO_PRESETS); every flag overrides one hyperparameter.
"""

import argparse
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
import regularizers
from zoo import artifacts
from zoo import configs
from zoo import datasets
from zoo import distribution
from zoo import monitoring

DEFAULT_OUT = "saved_models"
DEFAULT_LOG_ROOT = "logs"
VERSIONED_PACKAGES = ("tensorflow", "keras", "numpy", "tensorboard")


class TrainingError(RuntimeError):
    """Training did not produce a usable model (e.g. the loss became NaN)."""


def build_penalty(config):
    """The code penalty named by `config.reg`, or None."""
    kwargs = {"l1": dict(l1=config.l1), "kl": dict(rho=config.rho, beta=config.beta)}
    return regularizers.get_penalty(config.reg, **kwargs.get(config.reg, {}))


def build_model(config, input_shape=datasets.IMAGE_SHAPE, name=None):
    """The autoencoder described by `config`, compiled for training.

    Named `name`, by default `config.default_name` (e.g. "conv-l1").
    """
    common = dict(
        activation=config.activation,
        code_activation=config.code_activation,
        activity_regularizer=build_penalty(config),
        noise_stddev=config.noise_stddev,
        name=name or config.default_name,
    )
    if config.model == "dense":
        model = models.build_dense_autoencoder(
            input_shape, config.code_size, hidden_units=config.hidden_units, **common
        )
    else:
        model = models.build_conv_autoencoder(
            input_shape,
            config.code_size,
            filters=config.filters,
            kernel_size=config.kernel_size,
            **common,
        )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
        # The loss includes the penalty; these are reconstruction only.
        metrics=[keras.metrics.BinaryCrossentropy(name="bce"), "mse"],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def package_versions():
    """Versions of Python and the packages that decide the numerics."""
    versions = {"python": platform.python_version()}
    versions.update({name: metadata.version(name) for name in VERSIONED_PACKAGES})
    return versions


def _final_metrics(history):
    return {key: float(values[-1]) for key, values in history.history.items() if values}


def _fit(model, config, strategy, train_ds, val_ds, sample, logdir, callbacks):
    """Runs the training loop that suits `strategy`; returns (history, seconds)."""
    multi_worker = distribution.is_multi_worker(strategy)
    all_callbacks = monitoring.training_callbacks(
        logdir, sample, threshold=config.active_threshold, backup=not multi_worker
    ) + list(callbacks)
    start = time.perf_counter()
    if multi_worker:
        trainer = distribution.MultiWorkerTrainer(
            model, strategy, Path(logdir) / monitoring.BACKUP_DIR_NAME
        )
        history = trainer.fit(train_ds, val_ds, epochs=config.epochs, callbacks=all_callbacks)
        trainer.finish()
    else:
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            callbacks=all_callbacks,
            shuffle=False,  # the tf.data pipeline shuffles, with the seed
        )
    return history, time.perf_counter() - start


def _export(model, summary, out, name):
    """Writes NAME.keras, NAME/ (SavedModel) and NAME.json; returns their paths."""
    return {
        "keras": str(artifacts.save_keras(model, out / f"{name}.keras")),
        "saved_model": str(artifacts.export_saved_model(model, out / name)),
        "json": str(artifacts.write_json(summary, out / f"{name}.json")),
    }


def train(
    config,
    *,
    data=None,
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
        config: a `configs.TrainConfig`.
        data: path of an MNIST .npz (None: $SPARSE_AE_ZOO_DATA or download).
        limit: use only the first `limit` training and test images.
        name: export name (default `config.default_name`, e.g. "conv-l1").
        out: export folder: NAME.keras, NAME/ (SavedModel), NAME.json.
        logdir: TensorBoard/CSV/backup folder (default logs/NAME).
        dry_run: fit one batch only; write no logs and export nothing.
        callbacks: extra Keras callbacks, run after the standard ones.
        distribute: "none", "mirrored" or "multi-worker" (zoo.distribution).
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
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise ValueError(f"Expected `limit` to be an integer >= 2. Received: limit={limit!r}")
    chief = distribution.is_chief(strategy)
    if not dry_run and chief:
        out = artifacts.ensure_writable_dir(out)
        artifacts.ensure_writable_dir(logdir, flag="logdir")
    mnist = datasets.load_mnist(data, limit=limit)
    (x_train, _), (x_val, _) = datasets.split_validation(
        mnist.x_train, mnist.y_train, config.validation_fraction, config.seed
    )
    train_ds = datasets.autoencoder_dataset(x_train, config.batch_size, shuffle_seed=config.seed)
    val_ds = datasets.autoencoder_dataset(x_val, config.batch_size)
    if dry_run:
        history = model.fit(train_ds.take(1), epochs=1, verbose=2, shuffle=False)
        return _final_metrics(history)

    scratch = None if chief else Path(tempfile.mkdtemp(prefix=f"{name}-worker-"))
    try:
        if scratch:  # a non-chief worker writes only to scratch folders
            out = artifacts.ensure_writable_dir(scratch / "out")
            logdir = artifacts.ensure_writable_dir(scratch / "logs", flag="logdir")
        history, seconds = _fit(
            model, config, strategy, train_ds, val_ds,
            x_val[: config.diagnostic_sample_size], logdir, callbacks,
        )
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


# === Command line ===


class _OneLineErrorParser(argparse.ArgumentParser):
    """Reports bad arguments as one line (no usage block), as argparse's error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_tuple(text):
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 32,64. Received: {text!r}"
        ) from None


def _bool(text):
    choices = {"true": True, "false": False}
    if text.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected true or false. Received: {text!r}")
    return choices[text.lower()]


def parse_args(argv=None):
    """Parses the command line; unset hyperparameters come from the zoo preset."""
    preset = "zoo preset of --model/--reg (configs.py)"
    defaults = configs.TrainConfig()
    parser = _OneLineErrorParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", choices=configs.MODELS, default=defaults.model)
    parser.add_argument("--reg", choices=configs.REGS, default=defaults.reg,
                        help="code penalty: L1Sparsity, KLSparsity or none")
    hyper = parser.add_argument_group(f"hyperparameters (default: the {preset})")
    for flag, kind, text in [
        ("--l1", float, "L1Sparsity weight"),
        ("--rho", float, "KLSparsity target mean activation, in (0, 1)"),
        ("--beta", float, "KLSparsity weight"),
        ("--code-size", int, "dense: code units; conv: code channels"),
        ("--hidden-units", _int_tuple, "dense hidden widths, e.g. 512,256"),
        ("--filters", _int_tuple, "conv channels, e.g. 32,64"),
        ("--kernel-size", int, "conv kernel size"),
        ("--activation", str, "hidden-layer activation"),
        ("--code-activation", str, "code activation (sigmoid for kl)"),
        ("--noise-stddev", float, "Gaussian input noise in training (denoising)"),
        ("--epochs", int, "training epochs"),
        ("--batch-size", int, "batch size"),
        ("--learning-rate", float, "Adam learning rate"),
        ("--validation-fraction", float, "share of the training set held out"),
        ("--seed", int, "random seed (weights, noise, split, shuffling)"),
        ("--jit-compile", _bool, "XLA-compile the train step (true/false)"),
        ("--steps-per-execution", int, "batches per compiled call"),
        ("--active-threshold", float, "a code unit is active above this"),
    ]:
        hyper.add_argument(flag, type=kind, default=None, help=text)
    parser.add_argument("--data", default=None,
                        help=f"MNIST .npz in the Keras layout (default: ${datasets.DATA_ENV_VAR}, "
                             "else download)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and test images")
    parser.add_argument("--name", default=None, help="export name (default: MODEL-REG)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="export folder")
    parser.add_argument("--logdir", default=None, help=f"log folder (default: {DEFAULT_LOG_ROOT}/NAME)")
    parser.add_argument("--dry-run", action="store_true", help="fit one batch, write nothing")
    parser.add_argument("--distribute", choices=distribution.STRATEGIES, default="none",
                        help="tf.distribute strategy (multi-worker reads TF_CONFIG)")
    parser.add_argument("--cpu-replicas", type=int, default=None,
                        help="with --distribute mirrored on a CPU-only machine: logical CPU "
                             "devices to mirror over")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(configs.TrainConfig)
        if field.name not in ("model", "reg") and hasattr(args, field.name)
    }
    try:
        config = configs.resolve_config(args.model, args.reg, **overrides)
        summary = train(
            config, data=args.data, limit=args.limit, name=args.name, out=args.out,
            logdir=args.logdir, dry_run=args.dry_run, distribute=args.distribute,
            cpu_replicas=args.cpu_replicas,
        )
    except (ValueError, OSError, TrainingError) as error:
        # DataError and OutputError are ValueError and OSError.
        sys.exit(f"train.py: error: {error}")
    if not args.dry_run and summary["distribute"]["chief"]:
        print(f"exported {', '.join(summary['exports'].values())}")
    elif not args.dry_run:
        print(f"worker {distribution.task_description()} finished; the chief exports")
    return summary


if __name__ == "__main__":
    main()
