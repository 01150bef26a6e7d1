"""The shipped zoo: every model loads and matches the numbers it ships with."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import models  # noqa: F401  (registers the layers)
import regularizers  # noqa: F401  (registers the penalties)
from pipeline import data as datasets
from pipeline import evaluation
from pipeline import manifest
from tests.conftest import ROOT

SAVED_MODELS = ROOT / "saved_models"
MAX_KERAS_FILE_BYTES = 3_000_000
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mnist(request):
    path = request.getfixturevalue("mnist_path")
    return datasets.load_mnist(path)


@pytest.fixture(scope="module")
def mnist_path():
    from tests.conftest import MNIST_PATH

    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST copy not found at {MNIST_PATH}")
    return MNIST_PATH


@pytest.mark.parametrize("name", list(manifest.ZOO))
def test_shipped_model_matches_its_report(name, mnist):
    path = SAVED_MODELS / f"{name}.keras"
    assert path.stat().st_size < MAX_KERAS_FILE_BYTES
    report = json.loads((SAVED_MODELS / f"{name}.eval.json").read_text())
    assert report["model_sha256"] == datasets.file_sha256(path), (
        f"{path} changed since it was evaluated (retrained?): run "
        f"`python evaluate.py {name}` or `git checkout saved_models/`")
    model = keras.models.load_model(path)  # safe mode
    again = evaluation.verify_subset_metrics(model, mnist, threshold=report["active_threshold"])
    for key, value in report["verify_subset"].items():
        if isinstance(value, float):
            assert again[key] == pytest.approx(value, rel=RELATIVE_TOLERANCE, abs=1e-9), key
    run = json.loads((SAVED_MODELS / f"{name}.json").read_text())
    entry = manifest.ZOO[name]
    assert (run["config"]["model"], run["config"]["reg"]) == (entry.model, entry.reg)
    expected = manifest.config_of(name)
    assert run["config"] == json.loads(json.dumps(dataclasses.asdict(expected)))
    assert run["data"]["limit"] is None and report["test_images"] == 10000


@pytest.mark.parametrize("name", list(manifest.ZOO))
def test_shipped_model_meets_its_targets(name):
    report = json.loads((SAVED_MODELS / f"{name}.eval.json").read_text())
    assert manifest.verdict(name, report) in ("yes", "-")


@pytest.mark.parametrize("name", ["dense-kl", "conv-l1"])
def test_shipped_saved_model_serves(name, mnist):
    served = tf.saved_model.load(str(SAVED_MODELS / name))
    model = keras.models.load_model(SAVED_MODELS / f"{name}.keras")
    x = mnist.x_test[:8]
    np.testing.assert_allclose(served.serve(x), model.predict(x, verbose=0), atol=1e-5)
