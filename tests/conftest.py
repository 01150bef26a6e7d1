"""Shared fixtures; slow tests run only with --run-slow (CI passes it).

The tests run on the Keras backend that KERAS_BACKEND names (TensorFlow by
default): `KERAS_BACKEND=jax python -m pytest` runs the test modules of
`models/`, `regularizers/` and `sparse_ae_zoo` on JAX and skips the
pipeline's (tf.data, SavedModel, tf.distribute, TensorBoard: TensorFlow only),
and any test marked `tensorflow_only`. Fresh processes inherit the backend.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The verified MNIST copy beside the project (see ../shared/data/README.md).
MNIST_PATH = Path(
    os.environ.get("SPARSE_AE_ZOO_DATA", ROOT.parent / "shared" / "data" / "mnist.npz")
)
FRESH_PROCESS_TIMEOUT_S = 300
BACKEND = keras.backend.backend()
REFERENCE_BACKEND = "tensorflow"
# The test modules of the library for other code (models/, regularizers/, the
# one import): they run on every Keras backend. The others test the pipeline.
EVERY_BACKEND_MODULES = frozenset({
    "test_activations.py", "test_backends.py", "test_dictionary.py", "test_models.py",
    "test_regularizers.py", "test_sparse_ae_zoo.py",
})


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", help="also run tests marked slow"
    )


def pytest_report_header(config):
    return f"keras backend: {BACKEND} (KERAS_BACKEND)"


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run it")
    skip_backend = pytest.mark.skip(
        reason=f"TensorFlow only (the pipeline: tf.data, SavedModel, tf.distribute, "
               f"TensorBoard); KERAS_BACKEND={BACKEND}")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if BACKEND != REFERENCE_BACKEND and (
                item.path.name not in EVERY_BACKEND_MODULES or "tensorflow_only" in item.keywords):
            item.add_marker(skip_backend)


@pytest.fixture
def mnist_path():
    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST copy not found at {MNIST_PATH}")
    return MNIST_PATH


def run_python(args, *, cwd=None, env=None, timeout=FRESH_PROCESS_TIMEOUT_S):
    """Runs `python args...` in a fresh process; returns the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": BACKEND,
                **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


TINY_TRAIN_IMAGES = 96
TINY_TEST_IMAGES = 48


def write_tiny_mnist(path, *, num_train=TINY_TRAIN_IMAGES, num_test=TINY_TEST_IMAGES, seed=0):
    """Writes a small synthetic MNIST-layout .npz: one bright bar per class."""
    rng = np.random.default_rng(seed)

    def split(count):
        y = rng.integers(0, 10, count).astype("uint8")
        x = rng.integers(0, 40, (count, 28, 28)).astype("uint8")
        for image, label in zip(x, y):
            image[2 + 2 * label : 5 + 2 * label, 4:24] = 255
        return x, y

    (x_train, y_train), (x_test, y_test) = split(num_train), split(num_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture
def tiny_mnist(tmp_path):
    """Path of a small synthetic MNIST-layout .npz."""
    return write_tiny_mnist(tmp_path / "tiny_mnist.npz")


@pytest.fixture
def fresh_python():
    """Runs a code string in a fresh Python process and fails on a non-zero exit."""

    def run(code, *args):
        result = run_python(["-c", code, *map(str, args)])
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    return run


def gradients(fn, inputs=(), variables=()):
    """d fn / d each input and variable, as NumPy arrays, on the Keras backend in use.

    Args:
        fn: `fn(*inputs)` -> a scalar tensor. On JAX it runs in a
            `keras.StatelessScope`: the variables it assigns keep their
            values, and `layer.losses` is read inside it.
        inputs: arrays, passed to `fn` as tensors of the backend.
        variables: Keras variables `fn` reads (trainable ones on PyTorch).

    Returns:
        (list of input gradients, list of variable gradients); a source `fn`
        does not depend on has a zero gradient on every backend.
    """
    sources = len(inputs)
    if BACKEND == "jax":
        import jax

        def pure(xs, values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values)),
                                       collect_losses=True):
                return fn(*xs)

        grads = jax.grad(pure, argnums=(0, 1))(
            [jax.numpy.asarray(x) for x in inputs], [v.value for v in variables])
        grads = [*grads[0], *grads[1]]
    elif BACKEND == "torch":
        import torch

        xs = [torch.tensor(np.asarray(x), requires_grad=True) for x in inputs]
        grads = torch.autograd.grad(fn(*xs), [*xs, *(v.value for v in variables)],
                                    allow_unused=True)
    else:
        import tensorflow as tf

        xs = [tf.convert_to_tensor(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            value = fn(*xs)
        grads = tape.gradient(value, [*xs, *(v.value for v in variables)])
    shapes = [np.shape(x) for x in inputs] + [tuple(v.shape) for v in variables]
    grads = [np.zeros(shape, "float32") if g is None else np.asarray(keras.ops.convert_to_numpy(g))
             for g, shape in zip(grads, shapes)]
    return grads[:sources], grads[sources:]
