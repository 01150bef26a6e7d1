"""Pictures of an autoencoder: reconstructions, learned features, code histograms."""

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIGURE_DPI = 100
# Images in a reconstruction grid (TensorBoard and evaluate.py alike).
GRID_IMAGES = 10
HISTOGRAM_BINS = 50
TILE_PAD = 1
TILE_INCHES = 0.45
FEATURE_CMAP = "RdBu_r"
PADDING_COLOUR = "#d9d9d9"
DEAD_COLOUR = "black"


def tile_images(images, ncols):
    """Tiles images (K, H, W, C) into one (rows*(H+pad), ncols*(W+pad), C) array.

    Empty cells and the padding are 0.
    """
    images = np.asarray(images)
    count, height, width, channels = images.shape
    nrows = math.ceil(count / ncols)
    grid = np.zeros(
        (nrows * (height + TILE_PAD), ncols * (width + TILE_PAD), channels),
        images.dtype,
    )
    for index, image in enumerate(images):
        row, col = divmod(index, ncols)
        top, left = row * (height + TILE_PAD), col * (width + TILE_PAD)
        grid[top : top + height, left : left + width] = image
    return grid


def inputs_above_reconstructions(x, x_hat):
    """One grid: the inputs on the first row, their reconstructions below."""
    return tile_images(np.concatenate([x, x_hat]), ncols=len(x))


def _show(ax, grid, title):
    cmap = "gray" if grid.shape[-1] == 1 else None
    ax.imshow(np.clip(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, 0, 1), cmap=cmap)
    ax.set_title(title)
    ax.axis("off")


def _save(fig, path):
    """Saves `fig` as a PNG at `path` atomically: a temporary file renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=FIGURE_DPI, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def save_reconstructions(x, x_hat, path, title="inputs (top) / reconstructions (bottom)"):
    """PNG of inputs (top row) and reconstructions (bottom row)."""
    fig, ax = plt.subplots(figsize=(len(x), 2.4))
    _show(ax, inputs_above_reconstructions(x, x_hat), title)
    return _save(fig, path)


def normalize_tiles(features):
    """Each tile divided by its own largest |value| (an all-zero tile stays 0).

    A few strong units would otherwise set the colour scale of every tile and
    leave the rest too faint to read.
    """
    features = np.asarray(features, dtype="float64")
    peaks = np.max(np.abs(features.reshape(len(features), -1)), axis=1)
    return features / np.where(peaks > 0, peaks, 1.0).reshape(-1, *[1] * (features.ndim - 1))


def save_features(features, path, title, dead=None, dead_label="dead"):
    """PNG with one tile per code unit, each tile on its own symmetric scale.

    Each tile is divided by its largest |value| (`normalize_tiles`) and drawn
    on [-1, 1] around 0 (white), so that every unit's pattern is visible.
    Padding and empty cells are drawn in PADDING_COLOUR; tiles of dead units
    (where `dead` is True) get a DEAD_COLOUR frame, counted in the title as
    "(n `dead_label`, framed)".

    Args:
        features: (units, H, W, 1) or (units, H, W) array.
        path: the PNG to write.
        title: the figure title.
        dead: (units,) bool array, or None.
        dead_label: what the dead count counts (e.g. "dead channels").
    """
    features = normalize_tiles(features)
    if features.ndim == 4:
        features = features[..., 0]
    count, height, width = features.shape
    ncols = math.ceil(math.sqrt(count))
    nrows = math.ceil(count / ncols)
    grid = np.full((nrows * (height + TILE_PAD), ncols * (width + TILE_PAD)), np.nan)
    for index, tile in enumerate(features):
        row, col = divmod(index, ncols)
        top, left = row * (height + TILE_PAD), col * (width + TILE_PAD)
        grid[top : top + height, left : left + width] = tile
    cmap = plt.get_cmap(FEATURE_CMAP).with_extremes(bad=PADDING_COLOUR)
    size = max(4.0, ncols * TILE_INCHES)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1,
                      interpolation="nearest")
    for index in np.flatnonzero(dead if dead is not None else []):
        row, col = divmod(int(index), ncols)
        ax.add_patch(plt.Rectangle(
            (col * (width + TILE_PAD) - 0.5, row * (height + TILE_PAD) - 0.5), width, height,
            fill=False, edgecolor=DEAD_COLOUR, linewidth=1.0))
    fig.colorbar(image, ax=ax, fraction=0.04, label="value / the tile's largest |value|")
    dead_note = (f" ({int(np.sum(dead))} {dead_label}, framed)"
                 if dead is not None and np.any(dead) else "")
    ax.set_title(title + dead_note)
    ax.axis("off")
    return _save(fig, path)


def density_title(density_log10, never_fired, units="units"):
    """"n of N `units` fire, m never" for a feature density picture."""
    density_log10 = np.asarray(density_log10)
    alive = int(np.sum(density_log10 > never_fired))
    return f"{alive:,} of {len(density_log10):,} {units} fire, {len(density_log10) - alive:,} never"


def save_feature_density(density_log10, path, never_fired, title=None):
    """PNG histogram of log10 per-unit firing frequency; never-fired units counted
    apart (title: `density_title` unless given)."""
    density_log10 = np.asarray(density_log10)
    alive = density_log10[density_log10 > never_fired]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(alive, bins=HISTOGRAM_BINS)
    ax.set_xlabel("log10 feature density (fraction of test examples a unit fires on)")
    ax.set_ylabel("units")
    ax.set_title(title or density_title(density_log10, never_fired))
    return _save(fig, path)


def save_code_histogram(codes, path, threshold, *, zeros=0, title=None):
    """PNG histogram of all code activations, log counts, with the activity threshold.

    `codes`: the activations (any shape); `zeros`: how many more activations
    are 0 (a sparse code can pass its non-zero values only).
    """
    values = np.ravel(codes)
    edges = np.histogram_bin_edges(np.append(values, 0) if zeros else values, HISTOGRAM_BINS)
    counts = np.histogram(values, edges)[0] + zeros * np.histogram(np.zeros(1), edges)[0]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(edges[:-1], bins=edges, weights=counts, log=True)
    ax.axvline(threshold, color="red", linestyle="--", label=f"active > {threshold:g}")
    ax.set_xlabel("code activation")
    ax.set_ylabel("count (log)")
    if title:
        ax.set_title(title)
    ax.legend()
    return _save(fig, path)
