"""MNIST loading, checking and tf.data input pipelines.

Sources, in order: an explicit path (`--data PATH`), the environment variable
`SPARSE_AE_ZOO_DATA`, else `keras.datasets.mnist.load_data()` (a download).
"""

import dataclasses
import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

DATA_ENV_VAR = "SPARSE_AE_ZOO_DATA"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
PIXEL_MAX = 255.0
KERAS_DOWNLOAD = "keras.datasets.mnist"
HASH_CHUNK_BYTES = 1 << 20


class DataError(ValueError):
    """The data could not be found, read or is not MNIST in the Keras layout."""


@dataclasses.dataclass(frozen=True)
class Mnist:
    """MNIST as float32 images in [0, 1] of shape (N, 28, 28, 1) and int labels."""

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


def _read_npz(path):
    if not path.is_file():
        raise DataError(
            f"Expected `data` to be an existing .npz file in the Keras MNIST layout. "
            f"Received: data='{path}' (no such file)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in MNIST_KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"Expected `data` to hold the arrays {list(MNIST_KEYS)}. "
                    f"Received: data='{path}' without {missing}"
                )
            return {key: archive[key] for key in MNIST_KEYS}
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


def _to_images(name, x, source):
    """Checks one image array and returns it as float32 (N, 28, 28, 1) in [0, 1]."""
    if x.shape[1:] not in (IMAGE_SHAPE[:2], IMAGE_SHAPE) or len(x) == 0:
        raise DataError(
            f"Expected `{name}` of shape (N, 28, 28) or (N, 28, 28, 1) with N >= 1. "
            f"Received: {name}.shape={x.shape} in {source}"
        )
    if x.dtype == np.uint8:
        return (x.astype("float32") / PIXEL_MAX).reshape((-1, *IMAGE_SHAPE))
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


def load_mnist(path=None, *, limit=None):
    """Loads MNIST as float32 in [0, 1], shape (N, 28, 28, 1).

    Args:
        path: a .npz in the Keras layout, or None for $SPARSE_AE_ZOO_DATA, or
            else the Keras download.
        limit: keep only the first `limit` training and test images.

    Returns:
        A `Mnist` record with the arrays, where they came from and the file's sha256.

    Raises:
        DataError: the file is missing, unreadable or not MNIST-shaped.
    """
    path = resolve_data_path(path)
    source = str(path) if path else KERAS_DOWNLOAD
    arrays = _read_npz(path) if path else _download()
    x_train = _to_images("x_train", arrays["x_train"][:limit], source)
    x_test = _to_images("x_test", arrays["x_test"][:limit], source)
    return Mnist(
        x_train=x_train,
        y_train=_to_labels("y_train", arrays["y_train"][:limit], len(x_train), source),
        x_test=x_test,
        y_test=_to_labels("y_test", arrays["y_test"][:limit], len(x_test), source),
        source=source,
        sha256=file_sha256(path) if path else None,
    )


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
    """A tf.data pipeline of (x, x) batches; shuffled each epoch if a seed is given."""
    dataset = tf.data.Dataset.from_tensor_slices(x)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    # Pair after batching: one cheap map per batch, and x is held once.
    dataset = dataset.batch(batch_size).map(lambda batch: (batch, batch))
    return dataset.prefetch(tf.data.AUTOTUNE)
