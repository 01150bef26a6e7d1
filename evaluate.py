"""Report how well and how sparsely a saved autoencoder reconstructs MNIST.

    python evaluate.py saved_models/conv-l1.keras --data ../shared/data/mnist.npz

Writes NAME.eval.json and PNG pictures next to the model (or to --out).
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import keras
import numpy as np

import regularizers  # noqa: F401  (registers the penalties for load_model)
from zoo import artifacts
from zoo import datasets
from zoo import metrics
from zoo import monitoring
from zoo import plots


DEFAULT_MODELS_DIR = "saved_models"
PREDICT_BATCH_SIZE = 1024
PROBE_SEED = 0
GRID_IMAGES = 10
MAX_FEATURE_TILES = 100
# The report also holds the metrics of the first VERIFY_IMAGES test images, so
# that a copy of the model can be checked quickly against it.
VERIFY_IMAGES = 1000


def resolve_model_path(model, models_dir=DEFAULT_MODELS_DIR):
    """`model` if it is an existing .keras file, else models_dir/model.keras."""
    for candidate in (Path(model), Path(models_dir) / f"{model}.keras"):
        if candidate.is_file() and candidate.suffix == ".keras":
            return candidate
    raise FileNotFoundError(
        f"Expected `model` to be a .keras file or the NAME of one in {models_dir}/. "
        f"Received: model='{model}' (not found)"
    )


def decoder_features(decoder, codes, max_tiles=MAX_FEATURE_TILES):
    """What each code unit adds to the picture, one image per unit.

    feature_j = decoder(m + (max_j - m_j) e_j) - decoder(m), with m the mean
    code over `codes` and max_j unit j's largest activation. For a conv code
    (N, h, w, C) the units shown are the C channels at the central position.

    Returns:
        (units, *image_shape) array.
    """
    codes = np.asarray(codes)
    code_shape = codes.shape[1:]
    flat = codes.reshape(len(codes), -1)
    if len(code_shape) == 1:
        units = np.arange(code_shape[0])
    else:
        centre = tuple(size // 2 for size in code_shape[:-1])
        units = [np.ravel_multi_index((*centre, c), code_shape) for c in range(code_shape[-1])]
    units = np.asarray(units)[:max_tiles]
    mean = flat.mean(axis=0)
    bumped = np.repeat(mean[None], len(units), axis=0)
    bumped[np.arange(len(units)), units] = flat.max(axis=0)[units]
    decoded = decoder.predict(
        np.concatenate([mean[None], bumped]).reshape((-1, *code_shape)), verbose=0
    )
    return decoded[1:] - decoded[:1]


def compute_metrics(model, mnist, *, threshold=metrics.ACTIVE_THRESHOLD, probe=True):
    """All test-set metrics of `model`; also returns the arrays for the pictures."""
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    codes = encoder.predict(mnist.x_test, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    x_hat = decoder.predict(codes, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    x = mnist.x_test
    report = {
        "test_images": len(x),
        "bce": metrics.binary_cross_entropy(x, x_hat),
        "mse": metrics.mean_squared_error(x, x_hat),
        "psnr_db": metrics.psnr(x, x_hat),
        "explained_variance": metrics.explained_variance(x, x_hat),
        "active_threshold": threshold,
        **{f"code_{k}": v for k, v in metrics.code_statistics(codes, threshold).items()},
        "parameters": model.count_params(),
    }
    rho = monitoring.target_rho(model)
    if rho is not None:
        report["rho"] = rho
        report["kl_to_rho"] = metrics.kl_to_rho(codes, rho)
    if probe:
        train_codes = encoder.predict(mnist.x_train, batch_size=PREDICT_BATCH_SIZE, verbose=0)
        report["probe_accuracy"] = metrics.linear_probe_accuracy(
            train_codes, mnist.y_train, codes, mnist.y_test,
            num_classes=datasets.NUM_CLASSES, seed=PROBE_SEED,
        )
    return report, codes, x_hat


def verify_subset_metrics(model, mnist, *, threshold=metrics.ACTIVE_THRESHOLD):
    """The probe-free metrics of the first VERIFY_IMAGES test images."""
    subset = dataclasses.replace(
        mnist, x_test=mnist.x_test[:VERIFY_IMAGES], y_test=mnist.y_test[:VERIFY_IMAGES]
    )
    report, _, _ = compute_metrics(model, subset, threshold=threshold, probe=False)
    return report


def evaluate(model_path, *, data=None, limit=None, out=None,
             threshold=metrics.ACTIVE_THRESHOLD, probe=True):
    """Evaluates a saved model on the MNIST test set and writes its report.

    Args:
        model_path: a .keras file, or the NAME of one in saved_models/.
        data: MNIST .npz (None: $SPARSE_AE_ZOO_DATA, else download).
        limit: use only the first `limit` training and test images.
        out: folder for NAME.eval.json and the PNGs (default: the model's).
        threshold: activity threshold of L0 and dead units.
        probe: also train and score the linear probe on the codes.

    Returns:
        The report written to NAME.eval.json, with the picture paths.
    """
    path = resolve_model_path(model_path)
    name = path.name.removesuffix(".keras")
    out = artifacts.ensure_writable_dir(out or path.parent)
    model = keras.models.load_model(path)  # safe mode (the default)
    mnist = datasets.load_mnist(data, limit=limit)
    start = time.perf_counter()
    report, codes, x_hat = compute_metrics(model, mnist, threshold=threshold, probe=probe)
    report.update(model=str(path), model_sha256=datasets.file_sha256(path),
                  data_source=mnist.source, data_sha256=mnist.sha256,
                  seconds=time.perf_counter() - start)
    report["verify_subset"] = verify_subset_metrics(model, mnist, threshold=threshold)
    decoder = model.get_layer("decoder")
    report["pictures"] = {
        "reconstructions": str(plots.save_reconstructions(
            mnist.x_test[:GRID_IMAGES], x_hat[:GRID_IMAGES], out / f"{name}.reconstructions.png")),
        "features": str(plots.save_features(
            decoder_features(decoder, codes), out / f"{name}.features.png",
            "decoder response to each code unit")),
        "code_histogram": str(plots.save_code_histogram(
            codes, out / f"{name}.code_histogram.png", threshold)),
    }
    artifacts.write_json(report, out / f"{name}.eval.json")
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help=f"a .keras file, or a NAME in {DEFAULT_MODELS_DIR}/")
    parser.add_argument("--data", default=None,
                        help=f"MNIST .npz (default: ${datasets.DATA_ENV_VAR}, else download)")
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
        report = evaluate(args.model, data=args.data, limit=args.limit, out=args.out,
                          threshold=args.active_threshold, probe=not args.no_probe)
    except (ValueError, OSError) as error:
        sys.exit(f"evaluate.py: error: {error}")
    for key, value in report.items():
        if not isinstance(value, dict):
            print(f"{key:>24}: {value:.6g}" if isinstance(value, float) else f"{key:>24}: {value}")
    return report


if __name__ == "__main__":
    main()
