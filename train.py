"""Train a sparse autoencoder on MNIST or your data, log to TensorBoard, export to runs/.

    python train.py --model conv --reg l1 --data ../shared/data/mnist.npz
    python train.py --model dictionary --reg none --data activations.npy \
        --code-activation topk --k 32        # your own vectors: docs/own_data.md

The defaults of each (--model, --reg) pair reproduce that zoo model
(pipeline/manifest.py); `--preset NAME` picks any zoo model; every flag
overrides one hyperparameter. The flags are built from the registries: the
families' builders (models/), the penalties (regularizers/), the code
activations (models/activations.py) and the training fields
(pipeline/config.py). The work is done by `pipeline.training.train`.
"""

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path

from pipeline import flags  # the flag table, without TensorFlow

# Exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT).
INTERRUPTED_EXIT = 130
# The flags that name data files (the same in evaluate.py).
DATA_FLAGS = ("data", "labels", "test_data", "test_labels")


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


_PARSERS = {"bool": _bool, "tuple": _int_tuple}
_GROUPS = {"training": "training", "model": "architecture (--model)", "reg": "penalty (--reg)",
           "code_activation": "code activation (--code-activation)"}


def _epilog(table):
    """The families' defaults and the zoo presets, for --help."""
    lines = ["Defaults by family (any flag overrides them):"]
    for name, settings in table["family_defaults"].items():
        shown = " ".join(f"--{k.replace('_', '-')} {flags.as_typed(v)}"
                         for k, v in settings.items())
        lines.append(f"  {name:<12} {shown}")
    lines.append("Zoo presets (--preset NAME; also the defaults of --model M --reg R for "
                 "NAME = M-R):")
    for name, entry in table["presets"].items():
        shown = " ".join(f"--{k.replace('_', '-')} {flags.as_typed(v)}"
                         for k, v in entry["options"].items())
        lines.append(f"  {name:<12} --model {entry['model']} --reg {entry['reg']} {shown}")
    lines.append("--print-config shows the resolved configuration of a command without training.")
    return "\n".join(lines)


def parse_args(argv=None):
    """Parses the command line; unset hyperparameters come from the preset and family.

    Needs no TensorFlow: the flags come from `pipeline.flags.table()`.
    """
    table = flags.table()
    parser = _OneLineErrorParser(
        description=__doc__.split("\n")[0], epilog=_epilog(table),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", choices=table["models"], default=None,
                        help=f"model family (default: {table['default_model']})")
    parser.add_argument("--reg", choices=table["regs"], default=None,
                        help=f"code penalty (default: {table['default_reg']})")
    parser.add_argument("--preset", choices=list(table["presets"]), default=None,
                        help="a zoo model's settings (default: the zoo model MODEL-REG, if any)")
    groups = {}
    for option in table["options"]:
        kind = option["group"]
        if kind not in groups:
            groups[kind] = parser.add_argument_group(_GROUPS[kind])
        groups[kind].add_argument(
            "--" + option["name"].replace("_", "-"), dest=option["name"], default=None,
            type=_PARSERS.get(option["kind"], flags.KINDS[option["kind"]]), help=option["help"],
        )
    run = parser.add_argument_group("run")
    flags.add_data_arguments(run, table)
    run.add_argument("--limit", type=int, default=None,
                     help="use only the first N training and test images (default: all)")
    run.add_argument("--name", default=None, help="export name (default: the preset or MODEL-REG)")
    run.add_argument("--out", default=table["default_out"],
                     help=f"export folder (default: {table['default_out']})")
    run.add_argument("--logdir", default=None,
                     help=f"the name's log folder: backup/ and one folder per run "
                          f"(default: {table['default_log_root']}/NAME)")
    run.add_argument("--restart", action="store_true",
                     help="discard the name's backup and train afresh (default: resume a "
                          "backup of the same configuration and data)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an evaluated export, such as a shipped zoo model "
                          "(default: refuse)")
    run.add_argument("--print-config", action="store_true",
                     help="print the resolved configuration as JSON and exit")
    run.add_argument("--dry-run", action="store_true",
                     help="print the configuration, fit one batch through the same path, "
                          "write nothing")
    run.add_argument("--distribute", choices=table["strategies"], default="none",
                     help="tf.distribute strategy (multi-worker reads TF_CONFIG; default: none)")
    run.add_argument("--cpu-replicas", type=int, default=None,
                     help="with --distribute mirrored on a CPU-only machine: logical CPU "
                          "devices to mirror over (default: none)")
    run.add_argument("--cluster-timeout", type=float, default=table["default_cluster_timeout"],
                     metavar="SECONDS",
                     help="with --distribute multi-worker: seconds to wait for every task of "
                          "TF_CONFIG to start; then exit naming the missing ones "
                          f"(default: {table['default_cluster_timeout']})")
    return parser.parse_args(argv)


def command_reg(args, table=None):
    """The penalty of a command without --preset: --reg, else "none" for a code
    activation that is sparse by itself (TopK, WTA, ...: no default L1 on top),
    else the default penalty (from the flag table: no TensorFlow)."""
    table = table or flags.table()
    sparse_code = args.code_activation in table["code_activations"]
    return args.reg or ("none" if sparse_code else table["default_reg"])


def resolve(args):
    """(config, name) of the parsed command line."""
    from pipeline import config as config_lib
    from pipeline import manifest

    name = args.name
    if args.preset:
        entry = manifest.ZOO[args.preset]
        for flag, given, wanted in (("model", args.model, entry.model), ("reg", args.reg, entry.reg)):
            if given not in (None, wanted):
                raise ValueError(
                    f"Expected --{flag} {wanted} with --preset {args.preset}. "
                    f"Received: --{flag} {given}"
                )
        model, reg, preset, name = entry.model, entry.reg, entry.options, name or args.preset
    else:
        model = args.model or config_lib.TrainConfig.model
        reg = command_reg(args)
        preset = manifest.preset_of(model, reg)
    overrides = {key: getattr(args, key) for key in config_lib.options()}
    return config_lib.resolve_config(model, reg, preset=preset, **overrides), name


def run_name(args, table=None):
    """The export name of a command, as `resolve` and training give it, from the
    flag table alone (no TensorFlow): --name, else the preset, else MODEL-REG
    (REG from `command_reg`, as in `resolve`)."""
    table = table or flags.table()
    if args.name or args.preset:
        return args.name or args.preset
    return f"{args.model or table['default_model']}-{command_reg(args, table)}"


def check_target_early(args):
    """Refuses a target the export could not replace before TensorFlow is imported
    (pipeline.artefacts; training checks again with its resolved name)."""
    if args.print_config or args.dry_run:
        return
    from pipeline import artefacts

    table = flags.table()
    name = artefacts.check_name(run_name(args, table))
    logdir = Path(args.logdir or Path(table["default_log_root"]) / name)  # as training's
    artefacts.check_targets(Path(args.out), name, logdir, overwrite=args.overwrite)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _report(summary, args):
    """The end of a run: what it reached, where its files are, what to run next."""
    final, exports = summary["final_metrics"], summary["exports"]
    resumed = summary.get("resumed_from_epoch")
    lines = [
        f"{summary['name']}: {summary['epochs_completed']} epochs"
        + (f" (resumed after epoch {resumed})" if resumed else "")
        + f", validation reconstruction loss {final.get('val_reconstruction_loss', float('nan')):.4f}"
        + f", L0 {final.get('val_code_l0', float('nan')):.1f}"
        + f", dead units {100 * final.get('val_code_dead_fraction', float('nan')):.1f}%",
        f"exported {exports['keras']}, {exports['saved_model']} (SavedModel), {exports['json']}",
        f"logs in {summary['logs']}",
        "next:",
        f"  python evaluate.py {exports['keras']}" + "".join(
            f" --{flag.replace('_', '-')} {getattr(args, flag)}"
            for flag in DATA_FLAGS if getattr(args, flag)),
        f"  tensorboard --logdir {Path(summary['logs']).parent}    # this name's runs side by side",
    ]
    print("\n".join(lines))


def main(argv=None):
    args = parse_args(argv)
    try:
        check_target_early(args)
    except (ValueError, OSError) as error:  # a bad name; an OutputError
        sys.exit(f"train.py: error: {error}")
    flags.quiet_tensorflow()  # before TensorFlow is imported (by the lines below)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # handled like Ctrl-C
    try:
        from pipeline import distribution
        from pipeline import training

        flags.require_tensorflow_backend("train.py")
        config, name = resolve(args)
        if args.print_config or args.dry_run:
            print(json.dumps({"name": name or config.default_name,
                              "config": json.loads(json.dumps(dataclasses.asdict(config)))}, indent=2))
        if args.print_config:
            return config
        summary = training.train(
            config, data_path=args.data, labels=args.labels, test_data=args.test_data,
            test_labels=args.test_labels, limit=args.limit, name=name, out=args.out,
            logdir=args.logdir, dry_run=args.dry_run, distribute=args.distribute,
            cpu_replicas=args.cpu_replicas, cluster_timeout=args.cluster_timeout,
            restart=args.restart, overwrite=args.overwrite,
        )
    except (ValueError, OSError, training.TrainingError) as error:
        # DataError, OutputError, BackupError and LockedError are ValueError or OSError.
        sys.exit(f"train.py: error: {error}")
    except KeyboardInterrupt as interrupt:
        print(f"train.py: interrupted ({str(interrupt) or 'Ctrl-C'}); temporary files removed; "
              f"the same command resumes from the last backed-up epoch", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not args.dry_run and summary["distribute"]["chief"]:
        _report(summary, args)
    elif not args.dry_run:
        print(f"worker {distribution.task_description()} finished; the chief exports")
    return summary


if __name__ == "__main__":
    main()
