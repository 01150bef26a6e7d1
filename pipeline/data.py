"""Loading, checking and tf.data input pipelines for MNIST and your own data.

Sources, in order: an explicit path (`--data PATH`), the environment variable
`SPARSE_AE_ZOO_DATA`, else `keras.datasets.mnist.load_data()` (a download).

A path is either
- an .npz in the Keras layout: `x_train`, `x_test` and optionally `y_train`,
  `y_test`, read into memory (as MNIST always was); or
- an .npy of the training examples, with optional `.npy` files for the
  labels (`labels`), test examples (`test_data`) and test labels
  (`test_labels`). The examples are opened with
  `np.load(mmap_mode="r", allow_pickle=False)` and streamed in blocks of
  rows (`NpyRows`): an array larger than memory never has to fit in it.

Examples are images (N, H, W) or (N, H, W, C), uint8 0..255 or float in
[0, 1] (uint8 is scaled by 1/255 batch by batch), or vectors (N, D), float of
any finite range (or uint8, scaled the same way).
"""

import dataclasses
import math
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline.artefacts import file_sha256  # noqa: F401  (data.file_sha256)

DATA_ENV_VAR = "SPARSE_AE_ZOO_DATA"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
REQUIRED_KEYS = ("x_train", "x_test")
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
PIXEL_MAX = 255.0
# The validation metrics (explained variance) need two images that differ.
MIN_VALIDATION_IMAGES = 2
KERAS_DOWNLOAD = "keras.datasets.mnist"
ZIP_MAGIC = b"PK\x03\x04"  # a .npz is a zip archive
NPY_MAGIC = b"\x93NUMPY"
MAGIC_NAMES = {ZIP_MAGIC: "a zip archive, as numpy.savez writes",
               NPY_MAGIC: "an .npy, as numpy.save writes"}
# Batches prepared ahead of the training step. A fixed depth instead of
# tf.data.AUTOTUNE: deleting an iterator waits for the autotuner's thread, which
# sleeps between rounds (0.4 s in 1 of 8 deletions measured; an epoch-start stall).
PREFETCH_BATCHES = 2
# The kinds of examples, as the families name what they accept.
IMAGES, VECTORS = "images", "vectors"
KIND_SHAPES = {IMAGES: "images (N, H, W) or (N, H, W, C)", VECTORS: "vectors (N, D)"}
# Class ids a label may hold (the linear probe has one output per class).
MAX_CLASSES = 100_000
# Streaming an .npy: it is cut into blocks of rows (at most BLOCK_BYTES, and
# at least MIN_BLOCKS blocks so that a small file still splits into training
# and validation blocks); a shuffled epoch reads WINDOW_BYTES of random blocks
# at a time and shuffles their rows together.
BLOCK_BYTES = 1 << 20
MIN_BLOCKS = 64
WINDOW_BYTES = 32 << 20
# Positions of bad values quoted in an error.
SHOWN_POSITIONS = 3


class DataError(ValueError):
    """The data could not be found or read, or is not in a layout this project takes."""


@dataclasses.dataclass(frozen=True)
class Stats:
    """What a pass over the training examples found (after uint8 scaling).

    Attributes:
        low, high: the smallest and largest value.
        mean_squared_norm: mean over examples of ||x||^2 (the SAE literature's
            normalisation scales it to D).
    """

    low: float
    high: float
    mean_squared_norm: float

    @property
    def unit_interval(self):
        """Whether every value lies in [0, 1] (pixels, probabilities)."""
        return self.low >= 0 and self.high <= 1


@dataclasses.dataclass(frozen=True)
class Data:
    """Training and test examples, their labels (or None) and where they came from.

    `x_train` and `x_test` are arrays (N, ...) or, for .npy files, `NpyRows`
    streamed from disk; images have a channel axis (N, H, W, C). They are
    float32 as loaded by `load_data(scaled=True)` for arrays, else as stored
    (uint8 pixel counts stay uint8: `scale_images` and the pipelines scale them).
    """

    x_train: object
    y_train: np.ndarray | None
    x_test: object
    y_test: np.ndarray | None
    source: str
    sha256: str | None
    kind: str = IMAGES
    stats: Stats | None = None
    files: dict = dataclasses.field(default_factory=dict)

    @property
    def example_shape(self):
        """The shape of one example, e.g. (28, 28, 1) or (256,)."""
        return tuple(self.x_train.shape[1:])

    @property
    def labelled(self):
        """Whether both splits have labels (the linear probe needs them)."""
        return self.y_train is not None and self.y_test is not None

    @property
    def num_classes(self):
        """1 + the largest label, or None without labels."""
        if not self.labelled:
            return None
        return int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1

    @property
    def unit_interval(self):
        return self.stats is None or self.stats.unit_interval

    def record(self):
        """The data's entry in a run record: file names and sha256s."""
        name = Path(self.source).name if self.sha256 else self.source
        return {"source": name, "sha256": self.sha256, "kind": self.kind,
                "example_shape": list(self.example_shape), **self.files}


Mnist = Data  # the name of the record before other data were taken


def resolve_data_path(path=None):
    """Returns the local data file to use (`path`, else $SPARSE_AE_ZOO_DATA), or None."""
    path = path or os.environ.get(DATA_ENV_VAR) or None
    return Path(path) if path else None


# === Files ===

def _check_file(path, flag="data", what="a .npz file in the Keras layout or an .npy file",
                magics=(ZIP_MAGIC, NPY_MAGIC)):
    """Raises DataError saying what is wrong with `path` unless it starts like one of `magics`."""
    expected = f"Expected `{flag}` to be {what}."
    if not path.exists():
        raise DataError(f"{expected} Received: {flag}='{path}' (no such file)")
    if path.is_dir():
        raise DataError(f"{expected} Received: {flag}='{path}' (a folder)")
    if not path.is_file():
        raise DataError(f"{expected} Received: {flag}='{path}' (not a regular file: a FIFO, "
                        f"device or socket)")
    with open(path, "rb") as file:
        head = file.read(max(map(len, magics)))
    if not head:
        raise DataError(f"{expected} Received: {flag}='{path}' (an empty file)")
    if not any(head.startswith(magic) for magic in magics):
        what = ", nor ".join(MAGIC_NAMES[magic] for magic in magics)
        raise DataError(f"{expected} Received: {flag}='{path}' (not {what}: it starts with the "
                        f"bytes {head[:len(ZIP_MAGIC)].hex(' ')})")
    return head


def _read_header(file, key, source):
    """(shape, fortran_order, dtype) of the .npy in `file`, refusing object arrays."""
    version = np.lib.format.read_magic(file)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise DataError(f"Expected `{key}` in the .npy format 1.0 or 2.0. "
                        f"Received: version {version} in {source}")
    shape, fortran_order, dtype = read_header(file)
    if dtype.hasobject:
        raise DataError(
            f"Expected `{key}` to hold numbers. Received: {key}.dtype={dtype} in {source} "
            f"(object arrays need pickle, which is refused)")
    return shape, fortran_order, dtype


def _check_rank(key, shape, source):
    wanted = (2, 3, 4) if key.startswith("x") else (1,)
    if len(shape) not in wanted:
        expected = ("vectors (N, D) or images (N, H, W) or (N, H, W, C)" if key.startswith("x")
                    else "one label per example (N,)")
        raise DataError(f"Expected `{key}` to be {expected}. Received: {key}.shape={shape} "
                        f"in {source}")


def _read_member(archive, key, limit, source):
    """The first `limit` rows of array `key`, after checking its declared header.

    Reads (and decompresses) only those rows: the shape and dtype come from
    the .npy header, before any data.
    """
    with archive.open(f"{key}.npy") as file:
        shape, fortran_order, dtype = _read_header(file, key, source)
        _check_rank(key, shape, source)
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
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            missing = [key for key in REQUIRED_KEYS if f"{key}.npy" not in names]
            if missing:
                raise DataError(
                    f"Expected `data` to hold the arrays {list(REQUIRED_KEYS)} (and optionally "
                    f"y_train, y_test). Received: data='{path}' without {missing}"
                )
            return {key: _read_member(archive, key, limit, path) if f"{key}.npy" in names
                    else None for key in MNIST_KEYS}
    except DataError:
        raise
    except Exception as error:  # zipfile/ValueError/OSError: not a readable npz
        raise DataError(
            f"Expected `data` to be a readable .npz file (numpy.savez). "
            f"Received: data='{path}' ({type(error).__name__}: {error})"
        ) from error


def _open_npy(path, key, flag):
    """np.load(path, mmap_mode="r") after checking the file and its header."""
    _check_file(path, flag, "an .npy file (numpy.save)", (NPY_MAGIC,))
    try:
        with open(path, "rb") as file:
            shape, fortran_order, _ = _read_header(file, key, path)
        _check_rank(key, shape, path)
        if fortran_order and len(shape) > 1:
            raise DataError(
                f"Expected `{key}` in C order (rows contiguous, as numpy.save writes most "
                f"arrays). Received: a Fortran-ordered array in {path}; save "
                f"np.ascontiguousarray(x) instead")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except DataError:
        raise
    except Exception as error:  # ValueError/OSError: a truncated or unreadable .npy
        raise DataError(
            f"Expected `{flag}` to be a readable .npy file (numpy.save). "
            f"Received: {flag}='{path}' ({type(error).__name__}: {error})") from error


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


# === Streaming rows of an .npy ===

class NpyRows:
    """Rows of an .npy file, read on demand in blocks, never held whole.

    Each read opens the file with `np.load(mmap_mode="r", allow_pickle=False)`,
    copies the rows it needs and lets the mapping go: the pages of a mapping
    that stays open count in the process's resident memory once touched, so a
    single long-lived mapping of an 8 GB file would end an epoch 8 GB "resident".

    Args:
        path: the .npy file.
        num_rows: rows of the file in use (the first `num_rows`: `limit`).
        example_shape, dtype: of one row, as stored.
        block_rows: rows per block (the last block of the file may be shorter).
        blocks: the block numbers in this view (a split keeps a subset).
        scaled: reads return float32, uint8 pixel counts divided by 255;
            False returns rows as stored.
    """

    def __init__(self, path, num_rows, example_shape, dtype, block_rows, blocks=None,
                 scaled=True):
        self.path, self.num_rows = Path(path), int(num_rows)
        self.example_shape, self.stored_dtype = tuple(example_shape), np.dtype(dtype)
        self.block_rows = int(block_rows)
        total = math.ceil(self.num_rows / self.block_rows)
        self.blocks = np.arange(total) if blocks is None else np.asarray(blocks, np.int64)
        self.scaled = scaled

    @classmethod
    def open(cls, path, key, flag, limit=None, scaled=True):
        """The rows of the .npy at `path` (its first `limit`), header and rank checked."""
        array = _open_npy(Path(path), key, flag)
        num_rows = array.shape[0] if limit is None else min(array.shape[0], limit)
        row_bytes = max(1, math.prod(array.shape[1:]) * array.dtype.itemsize)
        block_rows = max(1, min(BLOCK_BYTES // row_bytes, math.ceil(num_rows / MIN_BLOCKS)))
        example_shape = array.shape[1:] + ((1,) if array.ndim == 3 else ())  # a channel axis
        return cls(path, num_rows, example_shape, array.dtype, block_rows, scaled=scaled)

    @property
    def dtype(self):
        return np.dtype("float32") if self.scaled else self.stored_dtype

    @property
    def shape(self):
        return (len(self), *self.example_shape)

    def _sizes(self, blocks):
        return np.minimum(self.block_rows, self.num_rows - blocks * self.block_rows)

    def __len__(self):
        return int(self._sizes(self.blocks).sum())

    def row_indices(self):
        """The file rows of this view, in its order."""
        if not len(self.blocks):
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(b * self.block_rows, b * self.block_rows + size)
                               for b, size in zip(self.blocks, self._sizes(self.blocks))])

    def read_blocks(self, blocks, scaled=None):
        """The rows of `blocks` (file block numbers), in the order given."""
        blocks = np.asarray(blocks, np.int64).reshape(-1)
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        order = np.argsort(blocks, kind="stable")  # read the file forwards
        parts = [None] * len(blocks)
        for index in order:
            start = int(blocks[index]) * self.block_rows
            parts[index] = np.array(array[start:min(start + self.block_rows, self.num_rows)])
        del array  # unmaps the file: its pages leave this process's resident set
        rows = (np.concatenate(parts) if parts else np.zeros(0, self.stored_dtype))
        rows = rows.reshape((-1, *self.example_shape))
        scaled = self.scaled if scaled is None else scaled
        return scale_images(rows) if scaled else rows

    def head(self, count):
        """The first `count` rows of this view (fewer if it has fewer)."""
        sizes = np.cumsum(self._sizes(self.blocks))
        needed = int(np.searchsorted(sizes, count)) + 1
        return self.read_blocks(self.blocks[:needed])[:count]

    def __getitem__(self, item):
        if isinstance(item, slice) and item.start in (None, 0) and item.step in (None, 1):
            return self.head(len(self) if item.stop is None else item.stop)
        raise TypeError(f"NpyRows takes only prefix slices x[:n]. Received: {item!r}")

    def __array__(self, dtype=None, copy=None):
        rows = self.head(len(self))
        return rows if dtype is None else rows.astype(dtype)

    def windows(self, blocks=None):
        """Yields the rows of `blocks` (default: the view's), WINDOW_BYTES at a time."""
        blocks = self.blocks if blocks is None else blocks
        for start in range(0, len(blocks), self.window_blocks):
            yield self.read_blocks(blocks[start:start + self.window_blocks])

    @property
    def window_blocks(self):
        """Blocks read together (and, in a shuffled epoch, shuffled together)."""
        block_bytes = self.block_rows * max(1, math.prod(self.example_shape)) * 4
        return max(1, WINDOW_BYTES // block_bytes)

    def subset(self, blocks):
        """The view of some of this file's blocks."""
        return NpyRows(self.path, self.num_rows, self.example_shape, self.stored_dtype,
                       self.block_rows, blocks, self.scaled)

    def unscaled(self):
        """This view, reading rows as stored."""
        return NpyRows(self.path, self.num_rows, self.example_shape, self.stored_dtype,
                       self.block_rows, self.blocks, scaled=False)


# === Checks ===

def _example_kind(name, x, source):
    """IMAGES or VECTORS for the examples `x`, after checking dtype and size."""
    dtype = x.stored_dtype if isinstance(x, NpyRows) else x.dtype
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise DataError(
            f"Expected `{name}` of dtype uint8 (0..255) or float. "
            f"Received: {name}.dtype={dtype} in {source}")
    if len(x) == 0 or 0 in x.shape[1:]:
        raise DataError(
            f"Expected `{name}` with at least one example of at least one value. "
            f"Received: {name}.shape={tuple(x.shape)} in {source} (empty)")
    return VECTORS if len(x.shape) == 2 else IMAGES


def _chunks(x):
    """The examples of `x` (array or NpyRows) a few MB at a time, as float32 (uint8 scaled)."""
    if isinstance(x, NpyRows):
        yield from x.windows() if x.scaled else map(scale_images, x.windows())
        return
    rows = max(1, WINDOW_BYTES // max(1, math.prod(x.shape[1:]) * 4))
    for start in range(0, len(x), rows):
        yield scale_images(x[start:start + rows])


def _scan(name, x, source):
    """`Stats` of the examples `x`, refusing NaN and inf (how many, and where)."""
    low, high, squares, bad, positions, seen = math.inf, -math.inf, 0.0, 0, [], 0
    for chunk in _chunks(x):
        flat = chunk.reshape(len(chunk), -1)
        finite = np.isfinite(flat)
        if not finite.all():
            bad += int(flat.size - np.count_nonzero(finite))
            positions += [(seen + int(r), int(c)) for r, c in
                          np.argwhere(~finite)[:SHOWN_POSITIONS - len(positions)]]
        elif not bad:
            low, high = min(low, float(flat.min())), max(high, float(flat.max()))
            squares += float(np.square(flat, dtype=np.float64).sum())
        seen += len(chunk)
    if bad:
        shown = ", ".join(f"(row {r}, value {c})" for r, c in positions)
        raise DataError(
            f"Expected `{name}` to be finite. Received: {bad} NaN/inf values in {source}, "
            f"the first at {shown}")
    return Stats(low=low, high=high, mean_squared_norm=squares / max(seen, 1))


def _check_examples(name, x, source, *, like=None):
    """(kind, stats) of examples `x` after every check; `like`: the training
    examples whose shape `x` must share."""
    kind = _example_kind(name, x, source)
    if like is not None and tuple(x.shape[1:]) != tuple(like.shape[1:]):
        raise DataError(
            f"Expected `{name}` examples of shape {tuple(like.shape[1:])}, as x_train's. "
            f"Received: {name}.shape={tuple(x.shape)} in {source}")
    stats = _scan(name, x, source)
    dtype = x.stored_dtype if isinstance(x, NpyRows) else x.dtype
    if kind == IMAGES and dtype != np.uint8 and not stats.unit_interval:
        raise DataError(
            f"Expected float images `{name}` in [0, 1] (or vectors (N, D) of any range). "
            f"Received: values in [{stats.low}, {stats.high}] in {source}")
    return kind, stats


def _to_labels(name, y, num_examples, source):
    if y is None:
        return None
    if y.shape != (num_examples,) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"Expected `{name}` to be {num_examples} integer labels, one per example. "
            f"Received: {name}.shape={y.shape}, dtype={y.dtype} in {source}"
        )
    if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise DataError(
            f"Expected `{name}` to be class indices in [0, {MAX_CLASSES - 1}]. "
            f"Received: values in [{y.min()}, {y.max()}] in {source}"
        )
    return np.asarray(y, "int32")


def scale_images(x):
    """float32 examples from uint8 pixel counts (x / 255) or from floats."""
    if x.dtype == np.uint8:
        return np.divide(x, PIXEL_MAX, dtype=np.float32)  # one array, no float64 temporary
    return np.asarray(x, dtype=np.float32)


def _with_channels(x):
    """Images (N, H, W) as (N, H, W, 1); anything else unchanged."""
    return x[..., None] if len(x.shape) == 3 else x


# === Loading ===

def _load_labels(path, flag, num_examples, limit):
    if path is None:
        return None
    labels = _open_npy(Path(path), flag.replace("-", "_"), f"{flag}")
    return _to_labels(flag.replace("-", "_"), np.asarray(labels[:limit]), num_examples, path)


def _load_npy(path, labels, test_data, test_labels, limit, scaled):
    x_train = NpyRows.open(path, "x_train", "data", limit, scaled)
    kind, stats = _check_examples("x_train", x_train, path)
    x_test = None
    if test_data is not None:
        x_test = NpyRows.open(test_data, "x_test", "test_data", limit, scaled)
        _check_examples("x_test", x_test, test_data, like=x_train)
    elif test_labels is not None:
        raise DataError("Expected --test-labels with --test-data (the labels of its examples). "
                        f"Received: test_labels='{test_labels}' without test data")
    files = {"labels": _file_record(labels), "test_data": _file_record(test_data),
             "test_labels": _file_record(test_labels)}
    return dict(x_train=x_train, y_train=_load_labels(labels, "labels", len(x_train), limit),
                x_test=x_test,
                y_test=None if x_test is None else _load_labels(test_labels, "test-labels",
                                                                len(x_test), limit),
                kind=kind, stats=stats, files=files)


def _file_record(path):
    return None if path is None else {"source": Path(path).name, "sha256": file_sha256(path)}


def load_data(path=None, *, labels=None, test_data=None, test_labels=None, limit=None,
              scaled=True):
    """Loads training and test examples, with labels where there are some.

    Args:
        path: an .npz in the Keras layout (x_train, x_test, optional y_train,
            y_test) or an .npy of training examples; None for
            $SPARSE_AE_ZOO_DATA, or else the Keras MNIST download.
        labels, test_data, test_labels: .npy files that go with an .npy
            `path`: the training labels, the test examples and their labels.
        limit: keep only the first `limit` training and test examples.
        scaled: float32 examples, uint8 pixel counts divided by 255; False
            keeps uint8 as stored (a quarter of the memory), for
            `autoencoder_dataset`, which scales each batch.

    Returns:
        A `Data` record. The examples of an .npy are `NpyRows`, read from
        disk when used; every value has been checked once (finite; float
        images in [0, 1]).

    Raises:
        DataError: a file is missing or unreadable, or an array has the wrong
            rank, dtype, length or values (one line naming it).
    """
    path = resolve_data_path(path)
    extra = {"labels": labels, "test_data": test_data, "test_labels": test_labels}
    given = {flag: value for flag, value in extra.items() if value is not None}
    if path is None:
        if given:
            raise DataError(f"Expected --data FILE.npy with {sorted(given)}. Received: no --data")
        arrays = _download()
        arrays = _load_arrays(arrays, KERAS_DOWNLOAD, limit, scaled)
        return Data(**arrays, source=KERAS_DOWNLOAD, sha256=None)
    head = _check_file(path)
    if head.startswith(NPY_MAGIC):
        arrays = _load_npy(path, labels, test_data, test_labels, limit, scaled)
    else:
        if given:
            raise DataError(
                f"Expected {sorted(given)} only with an .npy --data (an .npz holds y_train, "
                f"x_test and y_test itself). Received: data='{path}', an .npz")
        arrays = _load_arrays(_read_npz(path, limit), path, limit, scaled)
    return Data(**arrays, source=str(path), sha256=file_sha256(path))


def _load_arrays(arrays, source, limit, scaled):
    x_train, x_test = (_with_channels(arrays[key][:limit]) for key in REQUIRED_KEYS)
    y_train, y_test = (None if arrays[key] is None else arrays[key][:limit]
                       for key in ("y_train", "y_test"))
    kind, stats = _check_examples("x_train", x_train, source)
    _check_examples("x_test", x_test, source, like=x_train)
    return dict(x_train=scale_images(x_train) if scaled else x_train,
                y_train=_to_labels("y_train", y_train, len(x_train), source),
                x_test=scale_images(x_test) if scaled else x_test,
                y_test=_to_labels("y_test", y_test, len(x_test), source),
                kind=kind, stats=stats)


def load_mnist(path=None, *, limit=None, scaled=True):
    """`load_data` of an .npz (MNIST by default): images (N, 28, 28, 1) and labels."""
    return load_data(path, limit=limit, scaled=scaled)


# === Splits and pipelines ===


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

    Arrays are split by example; `NpyRows` by block (whole blocks of rows go
    to one side, so that both stay streamable). `y` may be None.

    Returns:
        ((x_train, y_train), (x_val, y_val)); the validation part holds
        round(fraction * N) examples (whole blocks for NpyRows), at least one.
    """
    if not 0 < fraction < 1:
        raise ValueError(
            f"Expected `validation_fraction` in (0, 1). "
            f"Received: validation_fraction={fraction}"
        )
    units = len(x.blocks) if isinstance(x, NpyRows) else len(x)
    num_val = max(1, round(fraction * units))
    if num_val >= units:
        raise DataError(
            f"Expected at least 2 training examples to carve a validation split. "
            f"Received: {len(x)} examples"
        )
    order = np.random.default_rng(seed).permutation(units)
    val, train = order[:num_val], order[num_val:]
    if isinstance(x, NpyRows):
        parts = x.subset(np.sort(x.blocks[train])), x.subset(np.sort(x.blocks[val]))
        return tuple((part, None if y is None else y[part.row_indices()]) for part in parts)
    return tuple((x[part], None if y is None else y[part]) for part in (train, val))


def _options():
    options = tf.data.Options()
    options.autotune.enabled = False  # see PREFETCH_BATCHES
    return options


def autoencoder_dataset(x, batch_size, *, shuffle_seed=None, random_shift=0):
    """A tf.data pipeline of (x, x) float32 batches; shuffled each epoch if a seed is given.

    Arrays are held once, as given (uint8 pixels stay uint8 and each batch
    is scaled by 1/255): the pipeline shuffles the indices and gathers each
    batch, so a new epoch refills a buffer of N integers, not of N examples.
    `NpyRows` are streamed from disk (`_streamed_dataset`).

    Args:
        x: examples (array or NpyRows), uint8 0..255 or float.
        batch_size: examples per batch (the last batch may be smaller).
        shuffle_seed: None for the stored order, else the seed of the
            per-epoch shuffle.
        random_shift: images only: shift each image by a random whole number
            of pixels in [-random_shift, random_shift] along each axis, anew
            each epoch, zero-filled (`shift_images`); the target is the
            shifted image. 0: off.
    """
    if isinstance(x, NpyRows):
        return shift_images(_streamed_dataset(x, batch_size, shuffle_seed), random_shift,
                            shuffle_seed)
    examples = tf.convert_to_tensor(x)
    pixel_counts = examples.dtype == tf.uint8

    def gather(indices):
        batch = tf.cast(tf.gather(examples, indices), tf.float32)
        if pixel_counts:  # the same float32 division as scale_images
            batch = batch / PIXEL_MAX
        return batch, batch

    dataset = tf.data.Dataset.range(len(x))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return shift_images(dataset.batch(batch_size).map(gather), random_shift, shuffle_seed)


def shift_images(dataset, pixels, seed=None):
    """`dataset` of (x, x) image batches with each image shifted at random (augmentation).

    Each image moves by a whole number of pixels, at most `pixels`, along
    each axis (Keras' `RandomTranslation`: a shift drawn uniformly in
    [-pixels, pixels], rounded by the nearest-neighbour lookup; zero fill),
    drawn anew every time the batch is made; input and target are the same
    shifted image. pixels = 0 leaves the batches as they are.

    Args:
        dataset: batches (x, x) of images (B, H, W) or (B, H, W, C).
        pixels: int >= 0, the largest shift.
        seed: seed of the draws (None: unseeded).
    """
    if pixels:
        rank = len(dataset.element_spec[0].shape)
        height, width = dataset.element_spec[0].shape[1:3]
        layer = keras.layers.RandomTranslation(
            pixels / height, pixels / width, fill_mode="constant", interpolation="nearest",
            seed=seed)

        def shift(batch, _):
            images = batch[..., None] if rank == 3 else batch
            shifted = layer(images, training=True)
            shifted = shifted[..., 0] if rank == 3 else shifted
            return shifted, shifted

        dataset = dataset.map(shift)
    return dataset.prefetch(PREFETCH_BATCHES).with_options(_options())


def _streamed_dataset(rows, batch_size, shuffle_seed):
    """Batches of an .npy's rows, read a window of blocks at a time.

    Shuffled: each epoch visits the blocks in a new seeded order, reads
    `rows.window_blocks` of them at once and permutes their rows together
    (the shuffle buffer of SAE trainers, bounded by WINDOW_BYTES), so memory
    holds a few windows, whatever the file's size.
    """
    blocks = tf.data.Dataset.from_tensor_slices(rows.blocks)
    if shuffle_seed is not None:
        blocks = blocks.shuffle(len(rows.blocks), seed=shuffle_seed,
                                reshuffle_each_iteration=True)
    reader = rows if rows.scaled else rows.unscaled()

    def read(window):
        examples = scale_images(reader.read_blocks(window, scaled=False))
        if shuffle_seed is not None:  # seeded by the window: the same run, the same order
            rng = np.random.default_rng([shuffle_seed, *window.tolist()[:4]])
            examples = examples[rng.permutation(len(examples))]
        return examples

    def load(window):
        batch = tf.numpy_function(read, [window], tf.float32, stateful=False)
        return tf.ensure_shape(batch, (None, *rows.example_shape))

    batches = math.ceil(len(rows) / batch_size)
    return (blocks.batch(rows.window_blocks).map(load).rebatch(batch_size)
            .apply(tf.data.experimental.assert_cardinality(batches))
            .map(lambda batch: (batch, batch)))
