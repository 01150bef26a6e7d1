"""Feature browser: a static web page to explore every latent of a saved model.

`build_browser(model, x, out, labels=...)` writes a folder NAME.browser/ that
opens from file:// with no server and no internet (vanilla JS, no CDN):

    index.html, browser.js, browser.css   the page (copied from browser_assets/)
    data.js                                every number, as `window.BROWSER_DATA = {...}`
    inputs.png, decoder.png, encoder.png   sprite sheets: one PNG of many tiles each
    reconstructions.png, feature_density.png
    manifest.json                          marks the folder as this tool's

Per latent j, with a_j(n) its activation on test input n (for a conv code map,
a latent is a channel and a_j(n) = max_p h[n, p, j], p its position):

    density_j   = mean_n 1[a_j(n) > threshold]       (dead: density_j = 0)
    mean_j      = mean_n a_j(n),   max_j = max_n a_j(n)
    top_j       = the top_k inputs by a_j (ties: lower index first), firing ones only
    nearest_j   = argmax_{i != j} cos(d_i, d_j),  d_j its decoder direction

d_j is the dictionary's decoder row; for the other families it is the
decoder's response decoder(m + (max_j - m_j) e_j) - decoder(m) (see
`evaluation.decoder_features`). The encoder direction is the dictionary's
encoder row, else the input gradient of a_j averaged over its top inputs.

`write_browser` is what `python evaluate.py NAME --browser` calls.
"""

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

import models
from pipeline import callbacks
from pipeline import data
from pipeline import evaluation
from pipeline import export
from pipeline import metrics
from pipeline import plots

ASSETS_DIR = Path(__file__).with_name("browser_assets")
ASSET_FILES = ("index.html", "browser.js", "browser.css")
SUFFIX = ".browser"
MANIFEST = "manifest.json"
GENERATOR = "sparse-ae-zoo feature browser"
FORMAT_VERSION = 1
TOP_K = 16
# Samples from activation quantiles (as SAE-Vis does): the firing inputs, ranked
# by activation, cut into QUANTILE_BINS equal intervals of rank, a few from each.
QUANTILE_BINS = 5
SAMPLES_PER_QUANTILE = 4
ACTIVATION_BINS = 24
NEAREST = 8
# Numbers in data.js keep this many significant digits (float32 has about 7).
SIGNIFICANT_DIGITS = 6
# Latents whose input gradients are computed in one batch (non-dictionary models).
GRADIENT_BATCH = 512
# Input shapes shown as images: (H, W) or (H, W, C) with these channel counts.
IMAGE_CHANNELS = (1, 3)
# Vector data: the decoder and encoder directions are listed by their largest weights.
LISTED_WEIGHTS = 8
NORM_EPSILON = 1e-12


# === The numbers ===

def latent_activations(codes):
    """(a, position): a[n, j] = max_p codes[n, p, j], position = its argmax p, or None.

    A flat code (N, C) is its own activation table (position None); a code
    map (N, h, w, C) has C latents, its channels.
    """
    codes = np.asarray(codes, dtype="float32")
    if codes.ndim == 2:
        return codes, None
    per_position = codes.reshape(len(codes), -1, codes.shape[-1])
    position = per_position.argmax(axis=1)
    return np.take_along_axis(per_position, position[:, None], axis=1)[:, 0], position


def latent_statistics(acts, threshold):
    """{density, mean, max, dead} per latent of the activation table (N, C)."""
    firing = acts > threshold
    density = firing.mean(axis=0)
    return {"density": density, "mean": acts.mean(axis=0), "max": acts.max(axis=0),
            "dead": ~firing.any(axis=0)}


def top_activations(acts, k):
    """(indices, values), each (C, k): each latent's k largest activations, largest first.

    Ties go to the lower input index (a stable sort).
    """
    order = np.argsort(-acts.T, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(acts.T, order, axis=1)


def quantile_samples(column, threshold, bins=QUANTILE_BINS, per_bin=SAMPLES_PER_QUANTILE):
    """Samples of the inputs on which one latent fires, from each activation quantile.

    The firing inputs, sorted by activation (ascending; ties by index), are
    cut into `bins` equal intervals of rank; from each, `per_bin` inputs at
    evenly spaced ranks. Returns [(low, high, indices)] for non-empty intervals.
    """
    firing = np.flatnonzero(column > threshold)
    ranked = firing[np.argsort(column[firing], kind="stable")]
    intervals = []
    for part in np.array_split(ranked, bins):
        if len(part):
            picks = part[np.unique(np.linspace(0, len(part) - 1, per_bin).round().astype(int))]
            intervals.append((float(column[part[0]]), float(column[part[-1]]), picks))
    return intervals


def activation_histogram(column, threshold, bins=ACTIVATION_BINS):
    """(counts, low, high): histogram of one latent's activations where it fires."""
    values = column[column > threshold]
    if not len(values):
        return [0] * bins, 0.0, 0.0
    counts, edges = np.histogram(values, bins=bins)
    return counts.tolist(), float(edges[0]), float(edges[-1])


def label_counts(indices, labels, num_classes):
    """(counts per class, top label, its share) of the labels of `indices`; top None if empty."""
    counts = np.bincount(labels[indices], minlength=num_classes) if len(indices) else (
        np.zeros(num_classes, int))
    if not len(indices):
        return counts, None, None
    top = int(counts.argmax())  # the lowest label among equals
    return counts, top, float(counts[top] / len(indices))


def nearest_by_cosine(directions, n=NEAREST):
    """(indices, cosines), each (C, min(n, C - 1)): the other latents nearest by cosine.

    cos(i, j) = d_i . d_j / (|d_i| |d_j|), 0 for a zero direction; largest first.
    """
    flat = np.asarray(directions, dtype="float64").reshape(len(directions), -1)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), NORM_EPSILON)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    n = min(n, len(flat) - 1)
    order = np.argsort(-cosine, axis=1, kind="stable")[:, :n]
    return order, np.take_along_axis(cosine, order, axis=1)


# === Directions: what a latent writes (decoder) and reads (encoder) ===

def _encoder_and_code(model, path):
    """The encoder sub-model and its code layer, or a one-line ValueError."""
    try:
        encoder = model.get_layer(models.ENCODER)
        return encoder, encoder.get_layer(models.CODE_LAYER)
    except (ValueError, AttributeError):
        raise ValueError(
            f"Expected `model` to have an '{models.ENCODER}' sub-model with a "
            f"'{models.CODE_LAYER}' layer (a model of this project). Received: "
            f"model='{path}' without one") from None


def encoder_gradients(encoder, x, top, positions, channels):
    """(C, *input_shape): latent j's input gradient d a_j / d x, averaged over `top[j]`.

    a_j is read at the code position where it peaked (`positions`, or None
    for a flat code). A latent with no top inputs gets zeros.
    """
    import tensorflow as tf  # only the non-dictionary families need gradients

    latents = np.repeat(np.arange(len(top)), [len(t) for t in top])
    inputs = np.concatenate([np.asarray(t, int) for t in top]) if len(latents) else latents
    flat = latents if positions is None else positions[inputs, latents] * channels + latents
    total = np.zeros((len(top), *x.shape[1:]), "float64")
    for start in range(0, len(latents), GRADIENT_BATCH):
        chunk = slice(start, start + GRADIENT_BATCH)
        batch = tf.constant(x[inputs[chunk]])
        with tf.GradientTape() as tape:
            tape.watch(batch)
            codes = tf.reshape(encoder(batch, training=False), (len(inputs[chunk]), -1))
            picked = tf.reduce_sum(tf.cast(tf.gather(codes, flat[chunk][:, None], batch_dims=1),
                                           "float32"))
        gradient = tape.gradient(picked, batch)
        np.add.at(total, latents[chunk], np.asarray(gradient, "float64"))
    counts = np.maximum(np.bincount(latents, minlength=len(top)), 1)
    return (total / counts.reshape(-1, *[1] * (total.ndim - 1))).astype("float32")


def directions(model, x, codes, top, positions):
    """(decoder, encoder) directions, each (C, *input_shape), and how they were made."""
    atoms = evaluation.dictionary_atoms(model, x.shape[1:], max_tiles=None)
    if atoms is not None:
        return atoms, ("decoder row", "encoder row")
    summary = metrics.CodeSummary()  # the mean and largest code, what decoder_features reads
    summary.add(codes)
    decoder_dirs, _ = evaluation.decoder_features(  # one per channel of a code map
        model.get_layer(models.DECODER), summary, max_tiles=codes.shape[-1])
    encoder_dirs = encoder_gradients(model.get_layer(models.ENCODER), x, top, positions,
                                     codes.shape[-1])
    return (decoder_dirs, encoder_dirs), (
        "decoder response", "input gradient, mean over its top inputs")


# === Pictures: sprite sheets ===

def is_image_shape(shape):
    """Whether examples of this shape are shown as pictures: (H, W) or (H, W, 1 or 3)."""
    return len(shape) == 2 or (len(shape) == 3 and shape[-1] in IMAGE_CHANNELS)


def _as_tiles(images):
    """(K, H, W, C) from (K, H, W) or (K, H, W, C)."""
    images = np.asarray(images)
    return images[..., None] if images.ndim == 3 else images


def sprite_sheet(tiles):
    """One (rows*H, cols*W, C) grid of the tiles (K, H, W, C), cols = ceil(sqrt(K)), row-major."""
    count, height, width, channels = tiles.shape
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    padded = np.zeros((rows * cols, height, width, channels), tiles.dtype)
    padded[:count] = tiles
    grid = padded.reshape(rows, cols, height, width, channels).transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * height, cols * width, channels), cols


def write_sprite(tiles, path):
    """Writes tiles (K, H, W, C) in [0, 1] as one PNG; returns its layout for the page."""
    from PIL import Image  # matplotlib's own dependency

    grid, cols = sprite_sheet(_as_tiles(tiles))
    pixels = np.round(np.clip(grid, 0, 1) * 255).astype("uint8")
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
    return {"file": Path(path).name, "cols": cols, "height": int(grid.shape[0]),
            "width": int(grid.shape[1]), "tile": list(_as_tiles(tiles).shape[1:3])}


def signed_colours(directions):
    """(RGB tiles in [0, 1], scales): each tile on its own symmetric scale [-m, m].

    One channel: the RdBu_r colour map (blue < 0 < red, white at 0); three
    channels: 0.5 + 0.5 d / m per channel. m = max |d| of the tile.
    """
    tiles = _as_tiles(directions).astype("float64")
    scales = np.abs(tiles).reshape(len(tiles), -1).max(axis=1)
    scaled = 0.5 + 0.5 * tiles / np.maximum(scales, NORM_EPSILON).reshape(-1, 1, 1, 1)
    if tiles.shape[-1] == 1:
        scaled = plots.plt.get_cmap(plots.FEATURE_CMAP)(scaled[..., 0])[..., :3]
    return scaled, scales


def display_range(x):
    """(low, high) of the inputs' display scale: [0, 1] if they lie in it, else their range."""
    low, high = float(x.min()), float(x.max())
    if low >= 0 and high <= 1:
        return 0.0, 1.0
    return low, max(high, low + NORM_EPSILON)


def largest_weights(directions, n=LISTED_WEIGHTS):
    """For vector data: per latent, [[index, weight]] of its n largest |weights|."""
    flat = np.asarray(directions).reshape(len(directions), -1)
    order = np.argsort(-np.abs(flat), axis=1, kind="stable")[:, :n]
    return [[[int(i), _round(flat[j, i])] for i in row] for j, row in enumerate(order)]


# === The page's data ===

def _round(value):
    return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}")


def _rounded(values):
    return [_round(v) for v in np.ravel(values)]


def latent_records(acts, positions, threshold, top_k, labels=None, num_classes=None):
    """Per latent: the table's columns and the per-latent view's lists (JSON-ready).

    Activations in the lists are [input index, activation] pairs (plus the
    code position for a code map), for firing inputs only.
    """
    stats = latent_statistics(acts, threshold)
    top_index, top_value = top_activations(acts, top_k)

    def entry(n, j):
        pair = [int(n), _round(acts[n, j])]
        return pair if positions is None else [*pair, int(positions[n, j])]

    records = {"density": _rounded(stats["density"]), "mean": _rounded(stats["mean"]),
               "max": _rounded(stats["max"]), "dead": stats["dead"].tolist(),
               "top": [], "quantiles": [], "histogram": [], "top_label": [],
               "top_share": [], "label_counts": []}
    columns = np.ascontiguousarray(acts.T)
    for j, column in enumerate(columns):
        firing_top = top_index[j][top_value[j] > threshold]
        records["top"].append([entry(n, j) for n in firing_top])
        records["quantiles"].append([[_round(low), _round(high), [entry(n, j) for n in picks]]
                                     for low, high, picks in quantile_samples(column, threshold)])
        counts, low, high = activation_histogram(column, threshold)
        records["histogram"].append([_round(low), _round(high), counts])
        if labels is not None:
            counts, top, share = label_counts(firing_top, labels, num_classes)
            records["label_counts"].append(counts.tolist())
            records["top_label"].append(top)
            records["top_share"].append(None if share is None else _round(share))
    return records


def _used_inputs(records):
    """The sorted input indices that the per-latent views show."""
    used = {e[0] for entries in records["top"] for e in entries}
    used |= {e[0] for latent in records["quantiles"] for _, _, entries in latent for e in entries}
    return sorted(used)


def _scalars(record):
    """The flat number/string entries of a JSON record, for the model card."""
    return {key: value for key, value in sorted(record.items())
            if isinstance(value, (int, float, str)) and not key.endswith("sha256")}


def describe_model(model, code, code_shape):
    """The model card's first section, from the model itself."""
    activation = getattr(code, "code_activation_layer", None)
    if activation is not None:
        config = {k: v for k, v in activation.get_config().items()
                  if k not in ("name", "trainable", "dtype")}
        arguments = ", ".join(f"{k}={v}" for k, v in config.items())
        activation = f"{type(activation).__name__}({arguments})"
    else:
        activation = getattr(code, "_activation_fn", None) or getattr(code, "activation", None)
        activation = getattr(activation, "__name__", str(activation))
    penalty = callbacks.code_penalty(model)
    return {"model class": type(model).__name__,
            "input shape": str(tuple(model.get_layer(models.ENCODER).input_shape[1:])),
            "code shape": str(tuple(code_shape)), "code activation": activation,
            "penalty": "none" if penalty is None else type(penalty).__name__,
            "parameters": int(model.count_params())}


def model_card(model, code, code_shape, records=None):
    """[[section, {key: value}]]: the model, then each JSON record's scalars (config first)."""
    card = [["model", describe_model(model, code, code_shape)]]
    for title, record in (records or {}).items():
        if not isinstance(record, dict):
            continue
        flat = _scalars(record)
        config = record.get("config")  # a training record (NAME.json)
        if isinstance(config, dict):
            flat.update(_scalars(config))
            for part in ("architecture", "code_activation_args", "penalty"):
                if isinstance(config.get(part), dict):
                    flat.update(_scalars(config[part]))
        card.append([title, flat])
    return card


# === The folder ===

def is_browser(path):
    """Whether `path` is a folder written by this tool (its manifest says so)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    try:
        return json.loads((path / MANIFEST).read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def check_target(target):
    """Raises unless `target` is absent or a previous browser (never deletes anything else)."""
    target = Path(target)
    if (target.exists() or target.is_symlink()) and not is_browser(target):
        raise export.OutputError(
            f"Expected {target} to be absent or a feature browser written by this tool "
            f"(with its {MANIFEST}). Received: something else there, left untouched; "
            f"choose another --out")


def _replace_folder(target, write):
    """Calls `write(tmp)` on a temporary sibling folder, then swaps it in for `target`."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        check_target(target)  # again: something may have appeared meanwhile
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target


def _check_options(top_k, threshold, num_inputs, *, flag="limit"):
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"Expected `top_k` to be a positive integer. Received: top_k={top_k!r}")
    if isinstance(threshold, bool) or not (
            isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"Expected `active_threshold` to be a finite number > 0. "
                         f"Received: active_threshold={threshold!r}")
    if num_inputs is not None and num_inputs < top_k:
        raise ValueError(
            f"Expected at least `top_k` test inputs (the top activations shown per latent). "
            f"Received: {flag}={num_inputs} with top_k={top_k}")


def _write_pages(folder, page_data, pictures):
    """Writes data.js, the page's static files and the manifest into `folder`."""
    text = json.dumps(page_data, separators=(",", ":"), allow_nan=False)
    (folder / "data.js").write_text(f"window.BROWSER_DATA = {text};\n")
    for asset in ASSET_FILES:
        shutil.copyfile(ASSETS_DIR / asset, folder / asset)
    manifest = {"generator": GENERATOR, "format": FORMAT_VERSION, "name": page_data["name"],
                "latents": page_data["latents"], "pictures": sorted(pictures)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def page_data(model, x, *, labels=None, num_classes=None, name=None,
              threshold=metrics.ACTIVE_THRESHOLD, top_k=TOP_K, records=None):
    """The page's numbers (JSON-ready) and the arrays its pictures are drawn from."""
    encoder, code = _encoder_and_code(model, name)
    codes = encoder.predict(x, batch_size=evaluation.PREDICT_BATCH_SIZE, verbose=0)
    x_hat = model.get_layer(models.DECODER).predict(
        codes, batch_size=evaluation.PREDICT_BATCH_SIZE, verbose=0)
    acts, positions = latent_activations(codes)
    if not (np.isfinite(acts).all() and np.isfinite(x_hat).all()):
        raise ValueError(
            f"Expected finite codes and reconstructions from the model. Received: NaN or "
            f"inf for model='{name}' (non-finite weights?); no browser written")
    latent = latent_records(acts, positions, threshold, top_k, labels, num_classes)
    tops = [[e[0] for e in entries] for entries in latent["top"]]
    dirs, kinds = directions(model, x, np.asarray(codes), tops, positions)
    nearest, cosine = nearest_by_cosine(dirs[0])
    latent["nearest"] = [[[int(i), _round(c)] for i, c in zip(row, cos)]
                         for row, cos in zip(nearest, cosine)]
    card = model_card(model, code, codes.shape[1:], records)
    card.append(["this browser", {
        "test inputs": len(x), "active threshold": threshold, "top k": top_k,
        "dead latents": int(np.sum(latent["dead"])),
        "fvu": _round(1 - metrics.explained_variance(x, x_hat)),
        "mean latents firing per input": _round((acts > threshold).sum(axis=1).mean())}])
    image = is_image_shape(x.shape[1:])
    page = {
        "format": FORMAT_VERSION, "name": name, "latents": acts.shape[1], "inputs": len(x),
        "threshold": threshold, "top_k": top_k, "card": card, "kinds": kinds,
        "code_shape": list(codes.shape[1:]), "conv": positions is not None,
        "input_shape": list(x.shape[1:]), "image": image, "latent": latent,
        "labels": None if labels is None else labels.tolist(), "num_classes": num_classes,
        "used_inputs": _used_inputs(latent) if image else [],
        "decoder_scale": _rounded(np.abs(dirs[0]).reshape(len(dirs[0]), -1).max(1)),
        "encoder_scale": _rounded(np.abs(dirs[1]).reshape(len(dirs[1]), -1).max(1)),
    }
    if not image:
        page["decoder_weights"], page["encoder_weights"] = map(largest_weights, dirs)
    return page, {"x_hat": x_hat, "directions": dirs,
                  "density_log10": callbacks.feature_density_log10(acts, threshold)}


def write_pictures(folder, page, x, arrays):
    """Writes the PNGs into `folder`; adds their names (and the sprite layouts) to `page`."""
    pictures = {"feature_density": plots.save_feature_density(
        arrays["density_log10"], folder / "feature_density.png",
        callbacks.NEVER_FIRED_LOG10).name}
    if page["image"]:
        low, high = display_range(x)
        shown, x_hat = ((a - low) / (high - low) for a in (x, arrays["x_hat"]))
        pictures["reconstructions"] = plots.save_reconstructions(
            shown[:plots.GRID_IMAGES], np.clip(x_hat[:plots.GRID_IMAGES], 0, 1),
            folder / "reconstructions.png").name
        used = page["used_inputs"] or [0]  # a sheet even when no latent fires
        decoder_dirs, encoder_dirs = arrays["directions"]
        page["sprites"] = {
            "inputs": write_sprite(shown[used], folder / "inputs.png"),
            "decoder": write_sprite(signed_colours(decoder_dirs)[0], folder / "decoder.png"),
            "encoder": write_sprite(signed_colours(encoder_dirs)[0], folder / "encoder.png")}
        pictures.update({key: sheet["file"] for key, sheet in page["sprites"].items()})
    page["pictures"] = pictures


def build_browser(model, x, out, *, labels=None, num_classes=None, name=None,
                  threshold=metrics.ACTIVE_THRESHOLD, top_k=TOP_K, records=None):
    """Writes the feature browser of `model` on the inputs `x` to the folder `out`.

    Args:
        model: an autoencoder of this project (an "encoder" with a "code" layer).
        x: the test inputs, (N, *input_shape); N >= top_k.
        out: the browser folder (NAME.browser); replaced if it is a previous
            browser, refused if it is anything else.
        labels: (N,) integer labels, or None.
        num_classes: the number of classes (default: max label + 1).
        name: the title (default: the model's name).
        threshold: a latent fires on an input where a_j(n) > threshold.
        top_k: top activating inputs per latent.
        records: {title: JSON record} shown on the model card (report, training record).

    Returns:
        The folder's Path.
    """
    out, name = Path(out), name or model.name
    x = np.asarray(x, dtype="float32")
    _check_options(top_k, threshold, len(x), flag="inputs")
    check_target(out)
    labels = None if labels is None else np.asarray(labels).astype(int)
    if labels is not None and labels.shape != (len(x),):
        raise ValueError(f"Expected `labels` of shape ({len(x)},), one per input. "
                         f"Received: labels of shape {labels.shape}")
    num_classes = num_classes or (None if labels is None else int(labels.max()) + 1)
    page, arrays = page_data(model, x, labels=labels, num_classes=num_classes, name=name,
                             threshold=threshold, top_k=top_k, records=records)

    def write(folder):
        write_pictures(folder, page, x, arrays)
        _write_pages(folder, page, page["pictures"].values())

    return _replace_folder(out, write)


def _read_record(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_browser(model_path, *, data_path=None, limit=None, out=None,
                  threshold=metrics.ACTIVE_THRESHOLD, top_k=TOP_K):
    """Builds NAME.browser/ for a saved model on the MNIST test images; returns its Path.

    Args:
        model_path: a .keras file, or the NAME of one in saved_models/.
        data_path: MNIST .npz (None: $SPARSE_AE_ZOO_DATA, else download).
        limit: use only the first `limit` test images (>= top_k).
        out: the folder that receives NAME.browser/ (default: the model's).
        threshold, top_k: as in `build_browser`.
    """
    _check_options(top_k, threshold, limit)
    path = evaluation.resolve_model_path(model_path)
    name = path.name.removesuffix(".keras")
    out = Path(out or path.parent)
    target = out / f"{name}{SUFFIX}"
    check_target(target)
    export.ensure_writable_dir(out)
    for folder in {path.parent, out}:  # an interrupted export swap, stale temporaries
        export.recover(folder, name)
    model = export.load_model(path)
    _encoder_and_code(model, path)
    mnist = data.load_mnist(data_path, limit=limit)
    evaluation.check_input_shape(model, path, mnist)
    records = {title: _read_record(path.with_name(f"{name}{suffix}"))
               for title, suffix in (("evaluation report", export.EVAL_SUFFIX),
                                     ("training record", ".json"))}
    return build_browser(model, mnist.x_test, target, labels=mnist.y_test,
                         num_classes=data.NUM_CLASSES, name=name, threshold=threshold,
                         top_k=top_k, records=records)
