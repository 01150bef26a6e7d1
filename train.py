"""Train a sparse autoencoder on MNIST, log to TensorBoard, export to saved_models/.

    python train.py --model conv --reg l1 --data ../shared/data/mnist.npz

The defaults of each (--model, --reg) pair reproduce that zoo model
(pipeline/manifest.py); `--preset NAME` picks any zoo model; every flag
overrides one hyperparameter. The flags are built from the registries: the
families' builders (models/), the penalties (regularizers/), the code
activations (models/activations.py) and the training fields
(pipeline/config.py). The work is done by `pipeline.training.train`.
"""

import argparse
import sys

import models
import regularizers
from pipeline import config as config_lib
from pipeline import data
from pipeline import distribution
from pipeline import manifest
from pipeline import training


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


_PARSERS = {bool: _bool, tuple: _int_tuple}
_GROUPS = {"training": "training", "model": "architecture (--model)", "reg": "penalty (--reg)",
           "code_activation": "code activation (--code-activation)"}


def _defaults_text(option):
    """ "default: ..." for each owner, with the family defaults applied."""
    shown = []
    for owner, default in option.defaults.items():
        if owner[0] == "model":
            default = models.FAMILIES[owner[1]].defaults.get(option.name, default)
        value = ",".join(map(str, default)) if isinstance(default, tuple) else default
        shown.append(f"{owner[-1]} {value}" if owner[0] != "training" else f"{value}")
    return "; ".join(dict.fromkeys(shown))


def parse_args(argv=None):
    """Parses the command line; unset hyperparameters come from the preset and family."""
    parser = _OneLineErrorParser(
        description=__doc__.split("\n")[0],
        epilog="Zoo presets (--preset NAME): " + ", ".join(manifest.ZOO),
    )
    parser.add_argument("--model", choices=list(models.FAMILIES), default=None,
                        help=f"model family (default: {config_lib.TrainConfig.model})")
    parser.add_argument("--reg", choices=regularizers.penalty_names(), default=None,
                        help=f"code penalty (default: {config_lib.TrainConfig.reg})")
    parser.add_argument("--preset", choices=list(manifest.ZOO), default=None,
                        help="a zoo model's settings (default: the zoo model MODEL-REG, if any)")
    groups = {}
    for name, option in config_lib.options().items():
        kind = option.owners[0][0]
        if kind not in groups:
            groups[kind] = parser.add_argument_group(_GROUPS[kind])
        groups[kind].add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None,
            type=_PARSERS.get(option.kind, option.kind),
            help=f"{option.help} (default: {_defaults_text(option)})",
        )
    run = parser.add_argument_group("run")
    run.add_argument("--data", default=None,
                     help=f"MNIST .npz in the Keras layout (default: ${data.DATA_ENV_VAR}, "
                          "else download)")
    run.add_argument("--limit", type=int, default=None,
                     help="use only the first N training and test images (default: all)")
    run.add_argument("--name", default=None, help="export name (default: the preset or MODEL-REG)")
    run.add_argument("--out", default=training.DEFAULT_OUT,
                     help=f"export folder (default: {training.DEFAULT_OUT})")
    run.add_argument("--logdir", default=None,
                     help=f"log folder (default: {training.DEFAULT_LOG_ROOT}/NAME)")
    run.add_argument("--dry-run", action="store_true",
                     help="fit one batch through the same path, write nothing")
    run.add_argument("--distribute", choices=distribution.STRATEGIES, default="none",
                     help="tf.distribute strategy (multi-worker reads TF_CONFIG; default: none)")
    run.add_argument("--cpu-replicas", type=int, default=None,
                     help="with --distribute mirrored on a CPU-only machine: logical CPU "
                          "devices to mirror over")
    return parser.parse_args(argv)


def resolve(args):
    """(config, name) of the parsed command line."""
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
        reg = args.reg or config_lib.TrainConfig.reg
        preset = manifest.preset_of(model, reg)
    overrides = {key: getattr(args, key) for key in config_lib.options()}
    return config_lib.resolve_config(model, reg, preset=preset, **overrides), name


def main(argv=None):
    args = parse_args(argv)
    try:
        config, name = resolve(args)
        summary = training.train(
            config, data_path=args.data, limit=args.limit, name=name, out=args.out,
            logdir=args.logdir, dry_run=args.dry_run, distribute=args.distribute,
            cpu_replicas=args.cpu_replicas,
        )
    except (ValueError, OSError, training.TrainingError) as error:
        # DataError and OutputError are ValueError and OSError.
        sys.exit(f"train.py: error: {error}")
    if not args.dry_run and summary["distribute"]["chief"]:
        print(f"exported {', '.join(summary['exports'].values())}")
    elif not args.dry_run:
        print(f"worker {distribution.task_description()} finished; the chief exports")
    return summary


if __name__ == "__main__":
    main()
