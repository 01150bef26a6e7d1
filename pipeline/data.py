"""MNIST loading, checking and tf.data input pipelines.

Sources, in order: an explicit path (`--data PATH`), the environment variable
`SPARSE_AE_ZOO_DATA`, else `keras.datasets.mnist.load_data()` (a download).
"""

import dataclasses
import hashlib
import math
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

DATA_ENV_VAR = "SPARSE_AE_ZOO_DATA"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
PIXEL_MAX = 255.0
# The validation metrics (explained variance) need two images that differ.
MIN_VALIDATION_IMAGES = 2
KERAS_DOWNLOAD = "keras.datasets.mnist"
HASH_CHUNK_BYTES = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"  # a .npz is a zip archive
# Batches prepared ahead of the training step. A fixed depth instead of
# tf.data.AUTOTUNE: deleting an iterator waits for the autotuner's thread, which
# sleeps between rounds (0.4 s in 1 of 8 deletions measured; an epoch-start stall).
PREFETCH_BATCHES = 2


class DataError(ValueError):
    """The data could not be found, read or is not MNIST in the Keras layout."""


@dataclasses.dataclass(frozen=True)
class Mnist:
    """MNIST images of shape (N, 28, 28, 1) and int labels.

    The images are float32 in [0, 1], or with `load_mnist(scaled=False)` as
    stored: uint8 pixel counts 0..255 for the Keras files, a quarter of the
    memory (`scale_images` turns them into floats).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str | None


def resolve_data_path(path=None):
    """Returns the local data file to use (`path`, else $SPARSE_AE_ZOO_DATA), or None."""
    path = path or os.environ.get(DATA_ENV_VAR) or None
    return Path(path) if path else None


def file_sha256(path):
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path):
    """Raises DataError saying what is wrong with `path` unless it looks like an .npz."""
    expected = "Expected `data` to be a .npz file in the Keras MNIST layout."
    if not path.exists():
        raise DataError(f"{expected} Received: data='{path}' (no such file)")
    if path.is_dir():
        raise DataError(f"{expected} Received: data='{path}' (a folder)")
    if not path.is_file():
        raise DataError(f"{expected} Received: data='{path}' (not a regular file: a FIFO, "
                        f"device or socket)")
    with open(path, "rb") as file:
        head = file.read(len(ZIP_MAGIC))
    if not head:
        raise DataError(f"{expected} Received: data='{path}' (an empty file)")
    if head != ZIP_MAGIC:
        raise DataError(f"{expected} Received: data='{path}' (not a zip archive, as numpy.savez "
                        f"writes: it starts with the bytes {head.hex(' ')})")


def _read_member(archive, key, limit, source):
    """The first `limit` rows of array `key`, after checking its declared header.

    Reads (and decompresses) only those rows: the shape and dtype come from
    the .npy header, before any data.
    """
    with archive.open(f"{key}.npy") as file:
        version = np.lib.format.read_magic(file)
        if version not in ((1, 0), (2, 0)):
            return np.lib.format.read_array(file, allow_pickle=False)[:limit]
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(file)
        if dtype.hasobject:
            raise DataError(
                f"Expected `{key}` to hold numbers. Received: {key}.dtype={dtype} in {source} "
                f"(object arrays need pickle, which is refused)")
        wanted = (2, 3) if key.startswith("x") else (1,)
        if len(shape) not in wanted:
            raise DataError(
                f"Expected `{key}` with {' or '.join(map(str, wanted))} dimensions. "
                f"Received: {key}.shape={shape} in {source}")
        if fortran_order:
            return np.lib.format.read_array(file, allow_pickle=False)[:limit]
        count = shape[0] if limit is None else min(shape[0], limit)
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        buffer = file.read(count * row_bytes)
        if len(buffer) != count * row_bytes:
            raise DataError(
                f"Expected `{key}` to hold {count} rows of {row_bytes} bytes. "
                f"Received: {len(buffer)} bytes in {source} (truncated)")
        return np.frombuffer(buffer, dtype).reshape((count, *shape[1:]))


def _read_npz(path, limit=None):
    _check_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [key for key in MNIST_KEYS if f"{key}.npy" not in archive.namelist()]
            if missing:
                raise DataError(
                    f"Expected `data` to hold the arrays {list(MNIST_KEYS)}. "
                    f"Received: data='{path}' without {missing}"
                )
            return {key: _read_member(archive, key, limit, path) for key in MNIST_KEYS}
    except DataError:
        raise
    except Exception as error:  # zipfile/ValueError/OSError: not a readable npz
        raise DataError(
            f"Expected `data` to be a readable .npz file (numpy.savez). "
            f"Received: data='{path}' ({type(error).__name__}: {error})"
        ) from error


def _download():
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:
        raise DataError(
            f"Could not download MNIST ({type(error).__name__}: {error}). "
            f"Pass a local copy in the Keras layout with --data PATH or "
            f"{DATA_ENV_VAR}=PATH."
        ) from error
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def scale_images(x):
    """float32 images in [0, 1] from uint8 pixel counts (x / 255) or float images."""
    if x.dtype == np.uint8:
        return np.divide(x, PIXEL_MAX, dtype=np.float32)  # one array, no float64 temporary
    return np.asarray(x, dtype=np.float32)


def _to_images(name, x, source, scaled=True):
    """Checks one image array and returns it of shape (N, 28, 28, 1): float32 in
    [0, 1] if `scaled`, else as stored (uint8 0..255, or float32 in [0, 1])."""
    if x.shape[1:] not in (IMAGE_SHAPE[:2], IMAGE_SHAPE) or len(x) == 0:
        raise DataError(
            f"Expected `{name}` of shape (N, 28, 28) or (N, 28, 28, 1) with N >= 1. "
            f"Received: {name}.shape={x.shape} in {source}"
        )
    if x.dtype == np.uint8:
        x = x.reshape((-1, *IMAGE_SHAPE))
        return scale_images(x) if scaled else x
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(
            f"Expected `{name}` of dtype uint8 (0..255) or float in [0, 1]. "
            f"Received: {name}.dtype={x.dtype} in {source}"
        )
    if not np.isfinite(x).all():
        raise DataError(
            f"Expected `{name}` to be finite. Received: "
            f"{int((~np.isfinite(x)).sum())} NaN/inf values in {source}"
        )
    if x.min() < 0 or x.max() > 1:
        raise DataError(
            f"Expected float `{name}` in [0, 1]. Received: values in "
            f"[{x.min()}, {x.max()}] in {source}"
        )
    return x.astype("float32").reshape((-1, *IMAGE_SHAPE))


def _to_labels(name, y, num_images, source):
    if y.shape != (num_images,) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"Expected `{name}` to be {num_images} integer labels. "
            f"Received: {name}.shape={y.shape}, dtype={y.dtype} in {source}"
        )
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(
            f"Expected `{name}` in [0, {NUM_CLASSES - 1}]. "
            f"Received: values in [{y.min()}, {y.max()}] in {source}"
        )
    return y.astype("int32")


def load_mnist(path=None, *, limit=None, scaled=True):
    """Loads MNIST images of shape (N, 28, 28, 1) and their labels.

    Args:
        path: a .npz in the Keras layout, or None for $SPARSE_AE_ZOO_DATA, or
            else the Keras download.
        limit: keep only the first `limit` training and test images.
        scaled: float32 images in [0, 1]; False keeps uint8 pixels as they
            are stored (47 MB for the training set instead of 188 MB), for
            `autoencoder_dataset`, which scales each batch.

    Returns:
        A `Mnist` record with the arrays, where they came from and the file's sha256.

    Raises:
        DataError: the file is missing, unreadable or not MNIST-shaped.
    """
    path = resolve_data_path(path)
    source = str(path) if path else KERAS_DOWNLOAD
    arrays = _read_npz(path, limit) if path else _download()
    x_train = _to_images("x_train", arrays["x_train"][:limit], source, scaled)
    x_test = _to_images("x_test", arrays["x_test"][:limit], source, scaled)
    return Mnist(
        x_train=x_train,
        y_train=_to_labels("y_train", arrays["y_train"][:limit], len(x_train), source),
        x_test=x_test,
        y_test=_to_labels("y_test", arrays["y_test"][:limit], len(x_test), source),
        source=source,
        sha256=file_sha256(path) if path else None,
    )


def minimum_images(fraction, validation=None):
    """The fewest images whose split by `fraction` validates on `validation` (default
    MIN_VALIDATION_IMAGES) images and trains on at least one."""
    validation = validation or MIN_VALIDATION_IMAGES
    # Near the bounds round(fraction * N) >= validation and N - round(fraction * N) >= 1,
    # then up to the first N for which both hold.
    count = max(validation, math.ceil((validation - 0.5) / fraction) - 1,
                math.ceil(0.5 / (1 - fraction)) - 1)
    while max(1, round(fraction * count)) < validation or round(fraction * count) >= count:
        count += 1
    return count


def split_validation(x, y, fraction, seed):
    """Splits (x, y) into seeded, disjoint train and validation parts.

    Returns:
        ((x_train, y_train), (x_val, y_val)); the validation part holds
        round(fraction * N) examples, at least one.
    """
    if not 0 < fraction < 1:
        raise ValueError(
            f"Expected `validation_fraction` in (0, 1). "
            f"Received: validation_fraction={fraction}"
        )
    num_val = max(1, round(fraction * len(x)))
    if num_val >= len(x):
        raise DataError(
            f"Expected at least 2 training images to carve a validation split. "
            f"Received: {len(x)} images"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:num_val], order[num_val:]
    return (x[train], y[train]), (x[val], y[val])


def autoencoder_dataset(x, batch_size, *, shuffle_seed=None):
    """A tf.data pipeline of (x, x) float32 batches in [0, 1]; shuffled each epoch
    if a seed is given.

    `x` is held once, as given (uint8 pixels stay uint8 and each batch is
    scaled by 1/255). The pipeline shuffles the indices and gathers each
    batch: a new epoch refills a buffer of N integers, not of N images.

    Args:
        x: images, uint8 0..255 or float in [0, 1].
        batch_size: images per batch (the last batch may be smaller).
        shuffle_seed: None for the stored order, else the seed of the
            per-epoch shuffle.
    """
    images = tf.convert_to_tensor(x)
    pixel_counts = images.dtype == tf.uint8

    def gather(indices):
        batch = tf.cast(tf.gather(images, indices), tf.float32)
        if pixel_counts:  # the same float32 division as scale_images
            batch = batch / PIXEL_MAX
        return batch, batch

    dataset = tf.data.Dataset.range(len(x))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False  # see PREFETCH_BATCHES
    return (dataset.batch(batch_size).map(gather).prefetch(PREFETCH_BATCHES)
            .with_options(options))
