import numpy as np
import pytest

from tests.conftest import TINY_TEST_IMAGES, TINY_TRAIN_IMAGES
from pipeline import data as datasets
from pipeline.data import DataError


def test_loads_float_images_in_unit_range(tiny_mnist):
    mnist = datasets.load_mnist(tiny_mnist)
    assert mnist.x_train.shape == (TINY_TRAIN_IMAGES, 28, 28, 1)
    assert mnist.x_test.shape == (TINY_TEST_IMAGES, 28, 28, 1)
    assert mnist.x_train.dtype == np.float32
    raw = np.load(tiny_mnist, allow_pickle=False)
    np.testing.assert_allclose(mnist.x_train[..., 0], raw["x_train"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(mnist.y_test, raw["y_test"])
    assert mnist.sha256 == datasets.file_sha256(tiny_mnist)
    assert mnist.source == str(tiny_mnist)


def test_limit_keeps_the_first_images(tiny_mnist):
    mnist = datasets.load_mnist(tiny_mnist, limit=10)
    full = datasets.load_mnist(tiny_mnist)
    np.testing.assert_array_equal(mnist.x_train, full.x_train[:10])
    np.testing.assert_array_equal(mnist.y_test, full.y_test[:10])


def test_environment_variable_is_used_when_no_path(tiny_mnist, monkeypatch):
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tiny_mnist))
    assert datasets.load_mnist().source == str(tiny_mnist)


def test_download_failure_says_how_to_pass_a_local_file(monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets.keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="--data PATH or SPARSE_AE_ZOO_DATA=PATH"):
        datasets.load_mnist()


def test_real_mnist_copy_matches_its_readme(mnist_path):
    mnist = datasets.load_mnist(mnist_path)
    assert (len(mnist.x_train), len(mnist.x_test)) == (60000, 10000)
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def save(path, **overrides):
    arrays = dict(
        x_train=np.zeros((4, 28, 28), "uint8"), y_train=np.zeros(4, "uint8"),
        x_test=np.zeros((2, 28, 28), "uint8"), y_test=np.zeros(2, "uint8"),
    )
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"x_test": None}, "without ['x_test']"),
        ({"x_train": np.zeros((4, 28, 27), "uint8")}, "Received: x_test.shape=(2, 28, 28, 1)"),
        ({"x_train": np.zeros((4, 2, 2, 2, 2), "uint8")}, "x_train.shape=(4, 2, 2, 2, 2)"),
        ({"x_train": np.zeros((0, 28, 28), "uint8"), "y_train": None}, "(empty)"),
        ({"x_train": np.full((4, 28, 28), np.nan, "float32")},
         "Expected `x_train` to be finite. Received: 3136 NaN/inf values"),
        ({"x_train": np.full((4, 28, 28), 255.0, "float32")}, "Expected float images `x_train` in [0, 1]"),
        ({"x_train": np.zeros((4, 28, 28), "int64")}, "x_train.dtype=int64"),
        ({"x_train": np.full((4, 28, 28), "a")}, "x_train.dtype=<U1"),
        ({"y_train": np.zeros(3, "uint8")}, "Expected `y_train` to be 4 integer labels"),
        ({"y_test": np.array([0, -2], "int8")}, "Expected `y_test` to be class indices in [0, "),
    ],
)
def test_bad_arrays_are_named(tmp_path, overrides, message):
    path = save(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DataError) as info:
        datasets.load_mnist(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        datasets.load_mnist(tmp_path / "absent.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="not a zip archive"):
        datasets.load_mnist(corrupt)


def test_pickled_arrays_are_refused(tmp_path):
    path = save(tmp_path / "objects.npz", y_train=np.array([0, 1, 2, 3], dtype=object))
    with pytest.raises(DataError, match="object arrays need pickle, which is refused"):
        datasets.load_mnist(path)


def test_validation_split_is_seeded_and_disjoint():
    x = np.arange(100, dtype="float32")[:, None]
    y = np.arange(100)
    (x_train, y_train), (x_val, y_val) = datasets.split_validation(x, y, 0.2, seed=3)
    assert (len(x_train), len(x_val)) == (80, 20)
    assert set(y_train).isdisjoint(y_val) and set(y_train) | set(y_val) == set(range(100))
    (_, again), _ = datasets.split_validation(x, y, 0.2, seed=3)
    np.testing.assert_array_equal(again, y_train)
    (_, other), _ = datasets.split_validation(x, y, 0.2, seed=4)
    assert not np.array_equal(other, y_train)


def test_pipeline_yields_input_target_pairs():
    x = np.random.default_rng(0).random((10, 2, 2, 1)).astype("float32")
    batches = list(datasets.autoencoder_dataset(x, 4).as_numpy_iterator())
    assert [len(inputs) for inputs, _ in batches] == [4, 4, 2]
    for inputs, targets in batches:
        np.testing.assert_array_equal(inputs, targets)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    shuffled = np.concatenate(
        [b[0] for b in datasets.autoencoder_dataset(x, 4, shuffle_seed=1).as_numpy_iterator()]
    )
    assert not np.array_equal(shuffled, x)
    np.testing.assert_array_equal(np.sort(shuffled.ravel()), np.sort(x.ravel()))


def test_unscaled_images_stay_uint8_and_the_pipeline_scales_them(tiny_mnist):
    raw = datasets.load_mnist(tiny_mnist, scaled=False)
    scaled = datasets.load_mnist(tiny_mnist)
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == scaled.x_train.shape
    np.testing.assert_array_equal(datasets.scale_images(raw.x_train), scaled.x_train)
    batches = [b for b, _ in datasets.autoencoder_dataset(raw.x_train, 7).as_numpy_iterator()]
    assert batches[0].dtype == np.float32
    np.testing.assert_array_equal(np.concatenate(batches), scaled.x_train)


def test_the_pipeline_has_no_autotuner_to_wait_for():
    # Deleting an iterator waits for tf.data's autotuner thread (an epoch-start stall).
    dataset = datasets.autoencoder_dataset(np.zeros((10, 2, 2, 1), "uint8"), 4, shuffle_seed=0)
    assert dataset.options().autotune.enabled is False


def test_the_shuffle_is_seeded_and_differs_between_epochs():
    x = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1) / 50
    dataset = datasets.autoencoder_dataset(x, 8, shuffle_seed=3)
    first, second = (np.concatenate([b for b, _ in dataset]).ravel() for _ in range(2))
    assert not np.array_equal(first, second)  # reshuffled each pass
    np.testing.assert_array_equal(np.sort(first), x.ravel())
    again = datasets.autoencoder_dataset(x, 8, shuffle_seed=3)
    np.testing.assert_array_equal(np.concatenate([b for b, _ in again]).ravel(), first)


def _shift_of(image, shifted, pixels):
    """The (dy, dx) with |dy|, |dx| <= pixels that moves `image` onto `shifted`, or None."""
    padded = np.pad(image, pixels)
    height, width = image.shape
    for dy in range(-pixels, pixels + 1):
        for dx in range(-pixels, pixels + 1):
            window = padded[pixels - dy:pixels - dy + height, pixels - dx:pixels - dx + width]
            if np.array_equal(window, shifted):
                return dy, dx
    return None


@pytest.mark.parametrize("channels", [False, True])
def test_random_shift_moves_each_image_by_whole_pixels_anew_each_epoch(channels):
    rng = np.random.default_rng(0)
    x = np.zeros((32, 12, 12), "uint8")
    x[:, 3:9, 3:9] = rng.integers(1, 256, (32, 6, 6))  # a zero border: no pixel is lost
    if channels:
        x = x[..., None]
    dataset = datasets.autoencoder_dataset(x, 8, shuffle_seed=0, random_shift=2)
    epochs = []
    for _ in range(2):
        shifts = []
        for inputs, targets in dataset.as_numpy_iterator():
            np.testing.assert_array_equal(inputs, targets)  # the target is the shifted image
            assert inputs.shape[1:] == x.shape[1:] and inputs.dtype == np.float32
            for image in inputs.reshape(-1, 12, 12):
                # The shuffled example: the original whose pixel values it holds.
                match = [_shift_of(o.reshape(12, 12) / np.float32(255), image, 2) for o in x]
                found = [m for m in match if m is not None]
                assert len(found) == 1, "each image is one example moved by at most 2 pixels"
                shifts.append(found[0])
        epochs.append(shifts)
    assert len(set(epochs[0])) > 5  # many different shifts
    assert epochs[0] != epochs[1]  # drawn anew each epoch
    plain = np.concatenate([b for b, _ in datasets.autoencoder_dataset(x, 8, random_shift=0)])
    np.testing.assert_array_equal(plain, datasets.scale_images(x).reshape(plain.shape))


def test_random_shift_applies_to_streamed_npy_images(tmp_path):
    x = np.zeros((64, 10, 10), "uint8")
    x[:, 4:6, 4:6] = 255
    np.save(tmp_path / "x.npy", x)
    rows = datasets.load_data(tmp_path / "x.npy", scaled=False).x_train
    batches = np.concatenate([b for b, _ in datasets.autoencoder_dataset(
        rows, 16, shuffle_seed=1, random_shift=3)])
    assert batches.shape == (64, 10, 10, 1)
    np.testing.assert_array_equal(batches.sum(axis=(1, 2, 3)), 4.0)  # moved, never cut
    assert len({tuple(np.argwhere(b[..., 0])[0]) for b in batches}) > 5


# === What is wrong with the file that exists (issue 15, item 8), memory (item 9) ===

@pytest.mark.parametrize("kind,message", [
    ("folder", "(a folder)"),
    ("device", "(not a regular file: a FIFO, device or socket)"),
    ("fifo", "(not a regular file: a FIFO, device or socket)"),
    ("zeros", "(not a zip archive, as numpy.savez writes, nor an .npy, as numpy.save writes: it starts with the bytes 00 00 00 00)"),
    ("empty", "(an empty file)"),
])
def test_an_existing_file_that_is_not_data_is_named_for_what_it_is(tmp_path, kind, message):
    import os

    path = {"folder": tmp_path, "device": "/dev/null"}.get(kind, tmp_path / "x.npz")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zeros":
        with open(path, "wb") as file:
            file.truncate(1 << 30)  # 1 GiB of zeros, sparse on disk
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(DataError) as info:
        datasets.load_mnist(path)
    assert message in str(info.value)


def test_limit_reads_only_the_images_it_uses(tmp_path):
    import tracemalloc

    images = 60_000  # 47 MB of uint8 images, a few hundred KB compressed
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x_train=np.zeros((images, 28, 28), "uint8"),
                        y_train=np.zeros(images, "uint8"), x_test=np.zeros((10, 28, 28), "uint8"),
                        y_test=np.zeros(10, "uint8"))
    tracemalloc.start()
    try:
        mnist = datasets.load_mnist(path, limit=512)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mnist.x_train.shape == (512, 28, 28, 1)
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB"



# === Your own data: any image shape, vectors, .npy files streamed from disk ===

def test_images_of_any_shape_and_vectors_of_any_range(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (6, 32, 32, 3)).astype("uint8")
    np.savez(tmp_path / "c.npz", x_train=colour, x_test=colour[:2])
    data = datasets.load_data(tmp_path / "c.npz")
    assert (data.kind, data.example_shape, data.labelled) == ("images", (32, 32, 3), False)
    np.testing.assert_allclose(data.x_train, colour / 255, rtol=1e-6)
    vectors = rng.normal(0, 10, (6, 5)).astype("float32")
    np.savez(tmp_path / "v.npz", x_train=vectors, x_test=vectors[:2], y_train=np.arange(6),
             y_test=np.array([0, 7]))
    data = datasets.load_data(tmp_path / "v.npz")
    assert (data.kind, data.example_shape, data.num_classes) == ("vectors", (5,), 8)
    assert not data.unit_interval
    assert data.stats.low == vectors.min() and data.stats.high == vectors.max()
    np.testing.assert_allclose(data.stats.mean_squared_norm, (vectors.astype("float64") ** 2).sum(1).mean())


def write_npy(tmp_path, rows=500, dim=7, seed=0):
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(rows) % 4)
    return x


def test_npy_rows_are_streamed_and_split_by_block(tmp_path):
    x = write_npy(tmp_path)
    data = datasets.load_data(tmp_path / "x.npy", labels=tmp_path / "y.npy",
                              test_data=tmp_path / "x.npy", test_labels=tmp_path / "y.npy")
    assert isinstance(data.x_train, datasets.NpyRows) and data.num_classes == 4
    assert data.files["labels"]["sha256"] == datasets.file_sha256(tmp_path / "y.npy")
    (train, y_train), (val, y_val) = datasets.split_validation(data.x_train, data.y_train, 0.1, 3)
    rows_train, rows_val = train.row_indices(), val.row_indices()
    assert set(rows_train).isdisjoint(rows_val) and len(rows_train) + len(rows_val) == len(x)
    np.testing.assert_array_equal(np.asarray(val), x[rows_val])
    np.testing.assert_array_equal(y_train, rows_train % 4)
    np.testing.assert_array_equal(train[:5], x[rows_train[:5]])
    dataset = datasets.autoencoder_dataset(train, 32, shuffle_seed=1)
    first = np.concatenate([b for b, _ in dataset])
    assert int(dataset.cardinality()) == -(-len(train) // 32)
    assert not np.array_equal(first, x[rows_train])  # shuffled
    np.testing.assert_array_equal(np.sort(first, axis=0), np.sort(x[rows_train], axis=0))
    second = np.concatenate([b for b, _ in dataset])
    assert not np.array_equal(first, second)  # reshuffled each epoch
    again = np.concatenate([b for b, _ in datasets.autoencoder_dataset(train, 32, shuffle_seed=1)])
    np.testing.assert_array_equal(again, first)  # seeded
    in_order = np.concatenate([b for b, _ in datasets.autoencoder_dataset(val, 32)])
    np.testing.assert_array_equal(in_order, x[rows_val])


def test_npy_images_gain_a_channel_and_uint8_is_scaled_per_read(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (40, 6, 5)).astype("uint8")
    np.save(tmp_path / "i.npy", images)
    data = datasets.load_data(tmp_path / "i.npy", limit=30)
    assert data.example_shape == (6, 5, 1) and len(data.x_train) == 30 and data.kind == "images"
    np.testing.assert_allclose(data.x_train[:30][..., 0], images[:30] / 255, rtol=1e-6)
    raw = datasets.load_data(tmp_path / "i.npy", scaled=False).x_train
    assert raw[:3].dtype == np.uint8
    batch = next(iter(datasets.autoencoder_dataset(raw, 40)))[0].numpy()
    np.testing.assert_allclose(batch[..., 0], images / 255, rtol=1e-6)


def test_a_read_maps_the_file_only_while_it_copies(tmp_path, monkeypatch):
    x = write_npy(tmp_path, rows=2000, dim=64)
    monkeypatch.setattr(datasets, "WINDOW_BYTES", 64 * 4 * 100)
    rows = datasets.load_data(tmp_path / "x.npy").x_train
    maps = lambda: sum(str(tmp_path / "x.npy") in line  # noqa: E731
                       for line in open("/proc/self/maps").read().splitlines())
    seen = [maps() for _ in rows.windows()]
    assert seen and max(seen) == 0 and maps() == 0
    np.testing.assert_array_equal(np.concatenate(list(rows.windows())), x)


@pytest.mark.parametrize("case,message", [
    ("object", "object arrays need pickle, which is refused"),
    ("rank", "Expected `x_train` to be vectors (N, D) or images (N, H, W) or (N, H, W, C). "
             "Received: x_train.shape=(10,)"),
    ("empty", "Received: x_train.shape=(0, 3)"),
    ("nan", "Expected `x_train` to be finite. Received: 2 NaN/inf values in"),
    ("labels", "Expected `labels` to be 10 integer labels, one per example. Received: labels.shape=(9,)"),
    ("float_labels", "dtype=float32"),
    ("test_shape", "Expected `x_test` examples of shape (3,), as x_train's. Received: x_test.shape=(4, 2)"),
    ("npz_with_labels", "only with an .npy --data"),
    ("test_labels_alone", "Expected --test-labels with --test-data"),
    ("fortran", "Expected `x_train` in C order"),
    ("not_npy", "Expected `test_data` to be an .npy file (numpy.save)"),
])
def test_bad_npy_input_is_one_line_naming_it(tmp_path, case, message):
    x = np.zeros((10, 3), "float32")
    kwargs = {}
    if case == "object":
        x = np.array([None] * 10, dtype=object)
    elif case == "rank":
        x = np.zeros(10, "float32")
    elif case == "empty":
        x = np.zeros((0, 3), "float32")
    elif case == "nan":
        x[4, 1] = np.nan
        x[7, 0] = np.inf
    elif case in ("labels", "float_labels"):
        np.save(tmp_path / "y.npy", np.zeros(9, "int64") if case == "labels" else np.zeros(10, "float32"))
        kwargs["labels"] = tmp_path / "y.npy"
    elif case == "test_shape":
        np.save(tmp_path / "t.npy", np.zeros((4, 2), "float32"))
        kwargs["test_data"] = tmp_path / "t.npy"
    elif case == "test_labels_alone":
        np.save(tmp_path / "y.npy", np.zeros(10, "int64"))
        kwargs["test_labels"] = tmp_path / "y.npy"
    elif case == "fortran":
        x = np.asfortranarray(np.zeros((10, 3), "float32"))
    elif case == "not_npy":
        np.savez(tmp_path / "t.npz", x=x)
        kwargs["test_data"] = tmp_path / "t.npz"
    path = tmp_path / "x.npy"
    if case == "object":  # only pickle can write an object array; the loader must refuse it
        np.save(path, x, allow_pickle=True)
    else:
        np.save(path, x)
    if case == "npz_with_labels":
        np.savez(tmp_path / "x.npz", x_train=x, x_test=x)
        path, kwargs["labels"] = tmp_path / "x.npz", tmp_path / "x.npy"
    with pytest.raises(DataError) as info:
        datasets.load_data(path, **kwargs)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    if case == "nan":
        assert "(row 4, value 1), (row 7, value 0)" in str(info.value)
