"""Pictures of an autoencoder: reconstructions, learned features, code histograms."""

import math

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIGURE_DPI = 100
HISTOGRAM_BINS = 50
TILE_PAD = 1


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
    fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def save_reconstructions(x, x_hat, path):
    """PNG of inputs (top row) and reconstructions (bottom row)."""
    fig, ax = plt.subplots(figsize=(len(x), 2.4))
    _show(ax, inputs_above_reconstructions(x, x_hat), "inputs (top) / reconstructions (bottom)")
    return _save(fig, path)


def save_features(features, path, title):
    """PNG with one tile per code unit; each tile scaled to [0, 1] on its own."""
    features = np.asarray(features, dtype="float64")
    low = features.min(axis=(1, 2, 3), keepdims=True)
    span = features.max(axis=(1, 2, 3), keepdims=True) - low
    scaled = (features - low) / np.where(span > 0, span, 1)
    ncols = math.ceil(math.sqrt(len(features)))
    fig, ax = plt.subplots(figsize=(ncols, ncols))
    _show(ax, tile_images(scaled, ncols), title)
    return _save(fig, path)


def save_code_histogram(codes, path, threshold):
    """PNG histogram of all code activations, log counts, with the activity threshold."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(np.ravel(codes), bins=HISTOGRAM_BINS, log=True)
    ax.axvline(threshold, color="red", linestyle="--", label=f"active > {threshold:g}")
    ax.set_xlabel("code activation")
    ax.set_ylabel("count (log)")
    ax.legend()
    return _save(fig, path)
