"""Evaluation: reconstruction and sparsity metrics of a saved model, and its pictures.

evaluate.py is a thin command line over `evaluate`.
"""

import dataclasses
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import scipy.sparse

import models
from models.dictionary import DICTIONARY_LAYER
from pipeline import callbacks
from pipeline import data
from pipeline import export
from pipeline import metrics
from pipeline import plots
from pipeline import probe as probe_lib

DEFAULT_MODELS_DIR = "saved_models"
# evaluate.py writes here (REPORTS_DIR/NAME/), never over the shipped reports unless asked.
DEFAULT_REPORTS_DIR = "reports"
# A new report's numbers against the shipped one's: differences beyond these are printed
# (another CPU kind moves the last digits; the probes by a few test images).
COMPARE_REL_TOL = 1e-3
COMPARE_ABS_TOL = 1e-3
PREDICT_BATCH_SIZE = 1024
# The linear probe trains on at most this many training examples (all of MNIST's).
PROBE_TRAIN_EXAMPLES = 60_000
PROBE_SKIPPED = "no labels for both the training and test examples"
# The images encoded at a time hold at most this many bytes of codes (float32,
# CODE_BYTES each): 2,048 images of a 2,048-latent dictionary, 40 of Conv-WTA's
# 28x28x128 maps. Larger chunks only raise the peak memory: at 64 MB the
# largest dictionary's evaluation peaked 300 MB higher, no faster.
CHUNK_BYTES = 16 * 2**20
CODE_BYTES = 4
# The probe reads conv feature maps max-pooled to at most this grid
# (`pool_for_probe`).
PROBE_POOL_GRID = 4
PROBE_SEED = 0
MAX_FEATURE_TILES = 100
MAX_DICTIONARY_TILES = 256
# The report also holds the metrics of the first VERIFY_IMAGES test images, so
# that a copy of the model can be checked quickly against it.
VERIFY_IMAGES = 1000


def resolve_model_path(model, models_dir=DEFAULT_MODELS_DIR):
    """`model` if it is an existing .keras file, else models_dir/model.keras."""
    for candidate in (Path(model), Path(models_dir) / f"{model}.keras"):
        if candidate.suffix == ".keras" and candidate.exists():
            return candidate  # export.load_model says what is wrong with it, if anything
    raise FileNotFoundError(
        f"Expected `model` to be a .keras file or the NAME of one in {models_dir}/. "
        f"Received: model='{model}' (not found)"
    )


def decoder_features(decoder, summary, max_tiles=MAX_FEATURE_TILES):
    """What each code unit adds to the picture, one image per unit.

    feature_j = decoder(m + (max_j - m_j) e_j) - decoder(m), with m the mean
    code and max_j unit j's largest activation (`summary`, a
    `metrics.CodeSummary` of the codes). For a conv code (h, w, C) the units
    shown are the C channels at the central position.

    Returns:
        ((units, *image_shape) array, the indices of the units in the flat code).
    """
    code_shape = summary.code_shape
    if len(code_shape) == 1:
        units = np.arange(code_shape[0])
    else:
        centre = tuple(size // 2 for size in code_shape[:-1])
        units = [np.ravel_multi_index((*centre, c), code_shape) for c in range(code_shape[-1])]
    units = np.asarray(units)[:max_tiles]
    mean = summary.mean_code().reshape(-1)
    bumped = np.repeat(mean[None], len(units), axis=0)
    bumped[np.arange(len(units)), units] = summary.max_code().reshape(-1)[units]
    decoded = predict(decoder, np.concatenate([mean[None], bumped]).reshape((-1, *code_shape)))
    return decoded[1:] - decoded[:1], units


def dictionary_atoms(model, image_shape, max_tiles=None):
    """(decoder rows, encoder columns) of a dictionary as images, or None.

    Each of shape (units, *image_shape), the first `max_tiles` (default
    MAX_DICTIONARY_TILES) latents.
    """
    max_tiles = max_tiles or MAX_DICTIONARY_TILES
    decoder = model.get_layer(models.DECODER)
    names = [layer.name for layer in decoder.layers]
    if DICTIONARY_LAYER not in names:
        return None
    rows = np.asarray(decoder.get_layer(DICTIONARY_LAYER).kernel)[:max_tiles]
    columns = np.asarray(model.get_layer(models.ENCODER).get_layer(models.CODE_LAYER).kernel).T
    shape = (-1, *image_shape)
    return rows.reshape(shape), columns[:max_tiles].reshape(shape)


def chunk_size(model):
    """Images encoded at a time: as many as keep one chunk's codes (and probe
    features) within CHUNK_BYTES, a multiple of PREDICT_BATCH_SIZE when above it."""
    units = max(math.prod(m.output_shape[1:]) for m in (
        model.get_layer(models.ENCODER), models.probe_feature_model(model)))
    size = max(1, CHUNK_BYTES // (units * CODE_BYTES))
    return size - size % PREDICT_BATCH_SIZE if size >= PREDICT_BATCH_SIZE else size


def pool_for_probe(features, grid=PROBE_POOL_GRID):
    """Max-pools feature maps (N, H, W, C) larger than `grid` x `grid` to that grid.

    Each of H and W above `grid` is cut into `grid` near-equal runs (edges
    round(i * H / grid)) and each cell keeps its largest value; smaller maps
    and vector codes are returned as they are (so the zoo's 4x4 conv codes
    reach the probe unchanged).
    """
    features = np.asarray(features)
    if features.ndim != 4:
        return features
    for axis in (1, 2):
        size = features.shape[axis]
        if size > grid:
            starts = np.round(np.arange(grid) * size / grid).astype(int)
            features = np.maximum.reduceat(features, starts, axis=axis)
    return features


def predict(model, x, batch_size=PREDICT_BATCH_SIZE):
    """model(x) in inference mode, `batch_size` examples at a time, as one array.

    Calls the model itself: `Model.predict`'s data pipeline held about 300 MB
    more at its peak for the same 8,192 codes of 2,048 units.
    """
    outputs = [keras.ops.convert_to_numpy(model(x[start:start + batch_size], training=False))
               for start in range(0, len(x), batch_size)]
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


def _encode_in_chunks(model, images, *, size, codes=True, features=False):
    """Yields (codes, pooled probe features) of `images`, `size` at a time (None when not asked)."""
    encoder = model.get_layer(models.ENCODER)
    feature_model = models.probe_feature_model(model)
    for start in range(0, len(images), size):
        chunk = data.scale_images(np.asarray(images[start:start + size]))
        h = f = None
        if codes or (features and feature_model is encoder):
            h = predict(encoder, chunk)
        if features:
            f = pool_for_probe(h if feature_model is encoder else predict(feature_model, chunk))
        yield h, f


def probe_features(model, images):
    """The pooled probe features of `images`, flattened to (N, units), chunk by chunk.

    Sparse features (fewer than `probe.SPARSE_BELOW` non-zeros in the first
    chunk) are gathered as a CSR matrix, so the dense features of every image
    are never held at once; dense ones are filled into one float32 array.
    """
    chunks = _encode_in_chunks(model, images, size=chunk_size(model), codes=False, features=True)
    return _stack_features((f for _, f in chunks), len(images))


def _stack_features(chunks, total):
    """(N, units) probe features of `total` examples from their chunks (`probe_features`)."""
    parts, features, filled = [], None, 0
    for chunk in chunks:
        chunk = chunk.reshape(len(chunk), -1)
        if not parts and features is None and not probe_lib.is_sparse(chunk):
            features = np.empty((total, chunk.shape[1]), chunk.dtype)  # filled in place
        if features is None:
            parts.append(scipy.sparse.csr_matrix(chunk))
        else:
            features[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    return features if features is not None else scipy.sparse.vstack(parts, format="csr")


def _quiet(message):
    """The default `progress`: says nothing."""


def compute_metrics(model, mnist, *, threshold=metrics.ACTIVE_THRESHOLD, probe=True,
                    progress=_quiet):
    """All test-set metrics of `model` on a `pipeline.data.Data` record (its
    x_test in memory).

    The test examples are encoded and decoded chunk by chunk (`chunk_size`):
    only the reconstructions, a `metrics.CodeSummary` of the codes and the
    probe's pooled features are kept, never the codes of the whole set.
    Binary cross-entropy and PSNR (peak 1) only for data in [0, 1]; the
    linear probe only with labels for both splits (else "probe" says it was
    skipped), trained on at most PROBE_TRAIN_EXAMPLES training examples.

    Returns:
        (report, the CodeSummary of the test codes, the reconstructions).
    """
    decoder = model.get_layer(models.DECODER)
    summary = metrics.CodeSummary(threshold)
    probing = probe and mnist.labelled
    x_hat, test_features = [], []
    x = data.scale_images(np.asarray(mnist.x_test))
    for h, f in _encode_in_chunks(model, x, size=chunk_size(model), features=probing):
        summary.add(h)
        x_hat.append(predict(decoder, h))
        test_features.append(f)
    x_hat = np.concatenate(x_hat)
    test_features = _stack_features(test_features, len(x_hat)) if probing else None
    stats = summary.statistics()
    pixels = {"bce": metrics.binary_cross_entropy(x, x_hat), "psnr_db": metrics.psnr(x, x_hat)}
    report = {
        "test_images": len(x),
        **(pixels if mnist.unit_interval else {}),
        "mse": metrics.mean_squared_error(x, x_hat),
        "explained_variance": metrics.explained_variance(x, x_hat),
        "fvu": 1 - metrics.explained_variance(x, x_hat),
        "active_threshold": threshold,
        **{f"code_{k}": v for k, v in stats.items()},
        "parameters": model.count_params(),
    }
    rho = callbacks.target_rho(model)
    if rho is not None:
        report["rho"] = rho
        report["kl_to_rho"] = metrics.kl_to_rho(summary, rho)
    if probe and not mnist.labelled:
        report["probe"] = {"skipped": PROBE_SKIPPED}
    elif probe:
        x_train = mnist.x_train[:PROBE_TRAIN_EXAMPLES]
        progress(f"encoding {len(x_train):,} training examples for the linear probes")
        train_features = probe_features(model, x_train)
        progress("fitting the probes (logistic regression, linear SVM; C from a grid)")
        report.update(probe_report(train_features, mnist.y_train[:PROBE_TRAIN_EXAMPLES],
                                   test_features, mnist.y_test, copy=False))  # ours to scale
    return report, summary, x_hat


def probe_report(train_codes, y_train, test_codes, y_test, copy=True):
    """The report's probe entries: "probe" (pipeline.probe's results) and, when
    it ran, "probe_accuracy" (the logistic regression's test accuracy, the
    zoo's probe) and "probe_svm_accuracy". `copy=False`: the codes may be
    scaled in place (`probe.probe_codes`)."""
    results = probe_lib.probe_codes(train_codes, y_train, test_codes, y_test, seed=PROBE_SEED,
                                    copy=copy)
    entries = {"probe": results}
    if probe_lib.LOGISTIC in results:
        entries["probe_accuracy"] = results[probe_lib.LOGISTIC]["accuracy"]
    if probe_lib.SVM in results:
        entries["probe_svm_accuracy"] = results[probe_lib.SVM]["accuracy"]
    return entries


def verify_subset_metrics(model, mnist, *, threshold=metrics.ACTIVE_THRESHOLD):
    """The probe-free metrics of the first VERIFY_IMAGES test images."""
    subset = dataclasses.replace(
        mnist, x_test=mnist.x_test[:VERIFY_IMAGES],
        y_test=None if mnist.y_test is None else mnist.y_test[:VERIFY_IMAGES])
    report, _, _ = compute_metrics(model, subset, threshold=threshold, probe=False)
    return report


def _shown(count, total, what):
    """"each of the 32 code units" or "the first 256 of 2,048 atoms"."""
    return f"each of the {total:,} {what}" if count == total else (
        f"the first {count:,} of {total:,} {what}")


def save_pictures(model, mnist, summary, x_hat, out, name, threshold):
    """Writes the evaluation pictures (of codes; for images, of images too;
    `summary`: a metrics.CodeSummary of the test codes); returns {picture: path}.

    Every title names the model and says what it counts: for a conv code the
    feature density counts units (positions x channels), the features picture
    channels (dead: never active at any position).
    """
    density = summary.density()
    dead = density == 0
    density_log10 = callbacks.density_log10(density)
    values, zeros = summary.nonzero_values()
    conv = len(summary.code_shape) > 1
    units = "code units (positions x channels)" if conv else "code units"
    pictures = {
        "code_histogram": plots.save_code_histogram(
            values, out / f"{name}.code_histogram.png", threshold, zeros=zeros,
            title=f"{name}: code activations on {summary.examples:,} test examples"),
        "feature_density": plots.save_feature_density(
            density_log10, out / f"{name}.feature_density.png", callbacks.NEVER_FIRED_LOG10,
            title=f"{name}: " + plots.density_title(density_log10, callbacks.NEVER_FIRED_LOG10,
                                                    units)),
    }
    if mnist.kind != data.IMAGES:
        return {key: str(path) for key, path in pictures.items()}
    pictures["reconstructions"] = plots.save_reconstructions(
        mnist.x_test[:plots.GRID_IMAGES], x_hat[:plots.GRID_IMAGES],
        out / f"{name}.reconstructions.png",
        title=f"{name}: test inputs (top) / reconstructions (bottom)")
    atoms = dictionary_atoms(model, mnist.x_test.shape[1:])
    if atoms is None and conv:
        channels = summary.code_shape[-1]
        dead_channels = density.reshape(-1, channels).max(axis=0) == 0
        features, _ = decoder_features(model.get_layer(models.DECODER), summary)
        pictures["features"] = plots.save_features(
            features, out / f"{name}.features.png",
            f"{name}: decoder response to {_shown(len(features), channels, 'channels')} "
            "(at the central position)",
            dead=dead_channels[:len(features)], dead_label="channels never active")
    elif atoms is None:
        features, shown = decoder_features(model.get_layer(models.DECODER), summary)
        pictures["features"] = plots.save_features(
            features, out / f"{name}.features.png",
            f"{name}: decoder response to {_shown(len(features), len(dead), 'code units')}",
            dead=dead[shown])
    else:
        rows, columns = atoms
        shown = dead[: len(rows)]
        atoms_shown = _shown(len(rows), len(dead), "latents")
        pictures["features"] = plots.save_features(
            rows, out / f"{name}.features.png",
            f"{name}: decoder rows (dictionary atoms), {atoms_shown}", dead=shown)
        pictures["encoder_features"] = plots.save_features(
            columns, out / f"{name}.encoder_features.png",
            f"{name}: encoder rows, {atoms_shown}", dead=shown)
    return {key: str(path) for key, path in pictures.items()}


def _check_options(limit, threshold):
    """The checks train.py makes on the same values."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise ValueError(f"Expected `limit` to be an integer >= 2. Received: limit={limit!r}")
    if isinstance(threshold, bool) or not (
            isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(
            f"Expected `active_threshold` to be a finite number > 0. "
            f"Received: active_threshold={threshold!r}")


def check_input_shape(model, path, dataset):
    """Raises unless the model's encoder takes the examples of `dataset`."""
    shape = tuple(model.get_layer(models.ENCODER).input_shape[1:])
    if shape != dataset.example_shape:
        raise ValueError(
            f"Expected `model` to take the data's examples of shape {dataset.example_shape} "
            f"({dataset.source}). Received: model='{path}' with input shape {shape}")


def _check_finite(report, path):
    bad = {k: v for k, v in report.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise ValueError(
            f"Expected finite metrics from the model. Received: "
            f"{', '.join(f'{k}={v}' for k, v in sorted(bad.items()))} for model='{path}' "
            f"(non-finite weights or outputs); no report written")


def evaluate(model_path, *, data_path=None, labels=None, test_data=None, test_labels=None,
             limit=None, out=None, threshold=metrics.ACTIVE_THRESHOLD, probe=True,
             progress=_quiet):
    """Evaluates a saved model on a test set (MNIST's by default) and writes its report.

    Paths in the report (NAME.eval.json) are relative to its folder; the only
    timing written is the probes' seconds (the whole evaluation's is
    returned as "seconds").

    Args:
        model_path: a .keras file, or the NAME of one in saved_models/.
        data_path: an .npz in the Keras layout or an .npy of training examples
            (None: $SPARSE_AE_ZOO_DATA, else the MNIST download).
        labels, test_data, test_labels: .npy files beside an .npy `data_path`;
            an .npy needs `test_data` (the examples evaluated), the probe
            needs both label files.
        limit: use only the first `limit` (>= 2) training and test images.
        out: folder for NAME.eval.json and the PNGs (default: the model's).
        threshold: activity threshold of L0 and dead units (finite, > 0).
        probe: also train and score the linear probe on the codes.
        progress: called with a line for each stage (e.g. `print`).

    Returns:
        The report written to NAME.eval.json, with "seconds" and "report"
        (its path) added.
    """
    _check_options(limit, threshold)
    path = resolve_model_path(model_path)
    name = path.name.removesuffix(".keras")
    export.recover(path.parent, name)  # finishes an interrupted export swap, if any
    out = export.ensure_writable_dir(out or path.parent)
    # Safe mode, every custom class registered; the hash is of the bytes loaded.
    progress(f"loading {path}")
    model, model_sha256 = export.load_model_and_sha256(path)
    # The training examples stay as stored (uint8 MNIST: a quarter of the memory)
    # and are scaled chunk by chunk for the probe; the test examples are held scaled.
    mnist = data.load_data(data_path, labels=labels, test_data=test_data,
                           test_labels=test_labels, limit=limit, scaled=False)
    if mnist.x_test is None:
        raise data.DataError(
            f"Expected test examples to evaluate on: --test-data FILE.npy with an .npy "
            f"--data. Received: data='{mnist.source}' without --test-data")
    mnist = dataclasses.replace(mnist, x_test=data.scale_images(np.asarray(mnist.x_test)))
    check_input_shape(model, path, mnist)
    start = time.perf_counter()
    progress(f"encoding and decoding {len(mnist.x_test):,} test examples")
    report, summary, x_hat = compute_metrics(model, mnist, threshold=threshold, probe=probe,
                                             progress=progress)
    seconds = time.perf_counter() - start
    _check_finite(report, path)
    report.update(model=os.path.relpath(path, out), model_sha256=model_sha256,
                  data_source=Path(mnist.source).name if mnist.sha256 else mnist.source,
                  data_sha256=mnist.sha256,
                  **{f"{key}_file": value for key, value in mnist.files.items() if value})
    report["verify_subset"] = verify_subset_metrics(model, mnist, threshold=threshold)
    progress(f"drawing the pictures into {out}")
    pictures = save_pictures(model, mnist, summary, x_hat, out, name, threshold)
    report["pictures"] = {key: os.path.relpath(p, out) for key, p in pictures.items()}
    export.write_json(report, out / f"{name}.eval.json")
    return {**report, "seconds": seconds, "report": str(out / f"{name}.eval.json")}


def compare_with_shipped(report, shipped, rel_tol=COMPARE_REL_TOL, abs_tol=COMPARE_ABS_TOL):
    """[(key, shipped value, new value)] of the numbers of `report` that differ
    from the `shipped` report by more than the tolerances (math.isclose), and
    of the keys one of them lacks; the probes compared by their accuracies."""
    numbers = lambda r: {k: v for k, v in r.items()  # noqa: E731
                         if isinstance(v, (int, float)) and not isinstance(v, bool)}
    new, old = numbers(report), numbers(shipped)
    return [(key, old.get(key), new.get(key)) for key in sorted(set(new) | set(old))
            if key not in ("seconds",) and (key not in new or key not in old or not math.isclose(
                new[key], old[key], rel_tol=rel_tol, abs_tol=abs_tol))]
