"""Report how well and how sparsely a saved autoencoder reconstructs MNIST or your data.

    python evaluate.py saved_models/conv-l1.keras --data ../shared/data/mnist.npz

    python evaluate.py --browser dict-topk dict-wta

Writes NAME.eval.json and PNG pictures next to the model (or to --out); with
--browser, the feature browser NAME.browser/ instead (open its index.html).
The work is done by `pipeline.evaluation.evaluate` and `pipeline.browser.write_browser`.
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
    parser.add_argument("model", nargs="+",
                        help=f"one or more .keras files or NAMEs in {table['default_models_dir']}/")
    flags.add_data_arguments(parser, table)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N (>= 2) training and test images")
    parser.add_argument("--out", default=None,
                        help="folder of the report or the browser (default: the model's)")
    parser.add_argument("--active-threshold", type=float, default=table["active_threshold"],
                        help="a code unit is active above this (a finite number > 0)")
    parser.add_argument("--no-probe", action="store_true", help="skip the linear probe")
    parser.add_argument("--browser", action="store_true",
                        help="write the feature browser NAME.browser/ instead of the report")
    parser.add_argument("--top-k", type=int, default=table["browser_top_k"],
                        help="--browser: top activating test images shown per latent")
    return parser.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv=None):
    args = parse_args(argv)
    flags.quiet_tensorflow()  # before TensorFlow is imported (by the lines below)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # handled like Ctrl-C
    try:
        from pipeline import browser
        from pipeline import evaluation

        reports = []
        for model in args.model:
            if args.browser:
                path = browser.write_browser(
                    model, data_path=args.data, limit=args.limit, out=args.out,
                    threshold=args.active_threshold, top_k=args.top_k)
                print(f"wrote {path / 'index.html'}")
                reports.append({"browser": str(path)})
                continue
            reports.append(evaluation.evaluate(
                model, data_path=args.data, labels=args.labels, test_data=args.test_data,
                test_labels=args.test_labels, limit=args.limit, out=args.out,
                threshold=args.active_threshold, probe=not args.no_probe))
            _print_report(reports[-1])
    except (ValueError, OSError) as error:
        sys.exit(f"evaluate.py: error: {error}")
    except KeyboardInterrupt as interrupt:
        print(f"evaluate.py: interrupted ({str(interrupt) or 'Ctrl-C'}); the previous report, "
              f"pictures and browser are unchanged", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return reports[0] if len(reports) == 1 else reports


def _print_report(report):
    for key, value in report.items():
        if not isinstance(value, dict):
            print(f"{key:>24}: {value:.6g}" if isinstance(value, float) else f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
