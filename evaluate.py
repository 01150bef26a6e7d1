"""Report how well and how sparsely a saved autoencoder reconstructs MNIST or your data.

    python evaluate.py dict-wta --data ../shared/data/mnist.npz

    python evaluate.py --browser dict-topk dict-wta

Writes NAME.eval.json and PNG pictures to reports/NAME/ (or --out DIR) and
prints how they differ from the report shipped beside the model, if any;
`--out saved_models` rewrites the shipped one. With --browser, the feature
browser NAME.browser/ instead, beside the model (open its index.html).
The work is done by `pipeline.evaluation.evaluate` and `pipeline.browser.write_browser`.
"""

import argparse
import signal
import sys
from pathlib import Path

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
                        help=f"folder of the report (default: {table['default_reports_dir']}/NAME) "
                             "or of the browser (default: the model's)")
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
        flags.require_tensorflow_backend("evaluate.py")
        from pipeline import browser
        from pipeline import evaluation

        reports, reports_dir = [], Path(flags.table()["default_reports_dir"])
        for model in args.model:
            if args.browser:
                path = browser.write_browser(
                    model, data_path=args.data, limit=args.limit, out=args.out,
                    threshold=args.active_threshold, top_k=args.top_k)
                print(f"wrote {path / 'index.html'}")
                reports.append({"browser": str(path)})
                continue
            out = args.out or reports_dir / Path(model).stem
            reports.append(evaluation.evaluate(
                model, data_path=args.data, labels=args.labels, test_data=args.test_data,
                test_labels=args.test_labels, limit=args.limit, out=out,
                threshold=args.active_threshold, probe=not args.no_probe, progress=_progress))
            _print_report(reports[-1])
            _print_differences(reports[-1], evaluation.resolve_model_path(model))
    except (ValueError, OSError) as error:
        sys.exit(f"evaluate.py: error: {error}")
    except KeyboardInterrupt as interrupt:
        print(f"evaluate.py: interrupted ({str(interrupt) or 'Ctrl-C'}); the previous report, "
              f"pictures and browser are unchanged", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return reports[0] if len(reports) == 1 else reports


def _progress(message):
    print(f"evaluate.py: {message}", file=sys.stderr, flush=True)


def _print_report(report):
    for key, value in report.items():
        if not isinstance(value, dict):
            print(f"{key:>24}: {value:.6g}" if isinstance(value, float) else f"{key:>24}: {value}")
    print(f"wrote {report['report']} and its pictures")


def _print_differences(report, model_path):
    """The numbers that differ from the report shipped beside the model, if there is one."""
    import json

    from pipeline import evaluation

    shipped_path = model_path.parent / f"{model_path.stem}.eval.json"
    if not shipped_path.is_file() or shipped_path.resolve() == Path(report["report"]).resolve():
        return
    differences = evaluation.compare_with_shipped(report, json.loads(shipped_path.read_text()))
    if not differences:
        print(f"matches {shipped_path} (within rel {evaluation.COMPARE_REL_TOL:g}, "
              f"abs {evaluation.COMPARE_ABS_TOL:g})")
        return
    print(f"differs from {shipped_path}:")
    for key, old, new in differences:
        print(f"{key:>24}: {old!r} -> {new!r}")


if __name__ == "__main__":
    main()
