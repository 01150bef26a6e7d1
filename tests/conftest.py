"""Shared fixtures; slow tests run only with --run-slow (CI passes it)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The verified MNIST copy beside the project (see ../shared/data/README.md).
MNIST_PATH = Path(
    os.environ.get("SPARSE_AE_ZOO_DATA", ROOT.parent / "shared" / "data" / "mnist.npz")
)
FRESH_PROCESS_TIMEOUT_S = 300


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def mnist_path():
    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST copy not found at {MNIST_PATH}")
    return MNIST_PATH


def run_python(args, *, cwd=None, env=None, timeout=FRESH_PROCESS_TIMEOUT_S):
    """Runs `python args...` in a fresh process; returns the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
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
