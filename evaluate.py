"""Report how well and how sparsely a saved autoencoder reconstructs MNIST.

    python evaluate.py saved_models/conv-l1.keras --data ../shared/data/mnist.npz

Writes NAME.eval.json and PNG pictures next to the model (or to --out).
The work is done by `pipeline.evaluation.evaluate`.
"""

import argparse
import sys

from pipeline import data
from pipeline import evaluation
from pipeline import metrics


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help=f"a .keras file, or a NAME in {evaluation.DEFAULT_MODELS_DIR}/")
    parser.add_argument("--data", default=None,
                        help=f"MNIST .npz (default: ${data.DATA_ENV_VAR}, else download)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and test images")
    parser.add_argument("--out", default=None, help="report folder (default: the model's)")
    parser.add_argument("--active-threshold", type=float, default=metrics.ACTIVE_THRESHOLD,
                        help="a code unit is active above this")
    parser.add_argument("--no-probe", action="store_true", help="skip the linear probe")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        report = evaluation.evaluate(
            args.model, data_path=args.data, limit=args.limit, out=args.out,
            threshold=args.active_threshold, probe=not args.no_probe)
    except (ValueError, OSError) as error:
        sys.exit(f"evaluate.py: error: {error}")
    for key, value in report.items():
        if not isinstance(value, dict):
            print(f"{key:>24}: {value:.6g}" if isinstance(value, float) else f"{key:>24}: {value}")
    return report


if __name__ == "__main__":
    main()
