"""Report how well and how sparsely a saved autoencoder reconstructs MNIST or your data.

    python evaluate.py saved_models/conv-l1.keras --data ../shared/data/mnist.npz

Writes NAME.eval.json and PNG pictures next to the model (or to --out).
The work is done by `pipeline.evaluation.evaluate`.
"""

import argparse
import signal
import sys

from pipeline import flags  # the flag table, without TensorFlow

INTERRUPTED_EXIT = 130


def parse_args(argv=None):
    table = flags.table()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help=f"a .keras file, or a NAME in {table['default_models_dir']}/")
    flags.add_data_arguments(parser, table)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N (>= 2) training and test images")
    parser.add_argument("--out", default=None, help="report folder (default: the model's)")
    parser.add_argument("--active-threshold", type=float, default=table["active_threshold"],
                        help="a code unit is active above this (a finite number > 0)")
    parser.add_argument("--no-probe", action="store_true", help="skip the linear probe")
    return parser.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv=None):
    args = parse_args(argv)
    flags.quiet_tensorflow()  # before TensorFlow is imported (by the lines below)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # handled like Ctrl-C
    try:
        from pipeline import evaluation

        report = evaluation.evaluate(
            args.model, data_path=args.data, labels=args.labels, test_data=args.test_data,
            test_labels=args.test_labels, limit=args.limit, out=args.out,
            threshold=args.active_threshold, probe=not args.no_probe)
    except (ValueError, OSError) as error:
        sys.exit(f"evaluate.py: error: {error}")
    except KeyboardInterrupt as interrupt:
        print(f"evaluate.py: interrupted ({interrupt or 'Ctrl-C'}); the previous report and "
              f"pictures are unchanged", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for key, value in report.items():
        if not isinstance(value, dict):
            print(f"{key:>24}: {value:.6g}" if isinstance(value, float) else f"{key:>24}: {value}")
    return report


if __name__ == "__main__":
    main()
