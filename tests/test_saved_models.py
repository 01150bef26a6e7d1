"""The shipped zoo: every model loads and matches the numbers it ships with."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import evaluate
import regularizers  # noqa: F401  (registers the penalties)
from benchmarks import zoo as zoo_benchmark
from tests.conftest import ROOT
from zoo import configs, datasets

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


@pytest.mark.parametrize("name", list(configs.ZOO_MODELS))
def test_shipped_model_matches_its_report(name, mnist):
    path = SAVED_MODELS / f"{name}.keras"
    assert path.stat().st_size < MAX_KERAS_FILE_BYTES
    report = json.loads((SAVED_MODELS / f"{name}.eval.json").read_text())
    assert report["model_sha256"] == datasets.file_sha256(path), (
        f"{path} changed since it was evaluated (retrained?): run "
        f"`python evaluate.py {name}` or `git checkout saved_models/`")
    model = keras.models.load_model(path)  # safe mode
    again = evaluate.verify_subset_metrics(model, mnist, threshold=report["active_threshold"])
    for key, value in report["verify_subset"].items():
        if isinstance(value, float):
            assert again[key] == pytest.approx(value, rel=RELATIVE_TOLERANCE, abs=1e-9), key
    run = json.loads((SAVED_MODELS / f"{name}.json").read_text())
    model_name, reg, flags = configs.ZOO_MODELS[name]
    assert (run["config"]["model"], run["config"]["reg"]) == (model_name, reg)
    expected = configs.resolve_config(model_name, reg, **flags)
    assert run["config"] == json.loads(json.dumps(expected.__dict__))
    assert run["data"]["limit"] is None and report["test_images"] == 10000


@pytest.mark.parametrize("name", list(configs.ZOO_MODELS))
def test_shipped_model_meets_its_targets(name):
    report = json.loads((SAVED_MODELS / f"{name}.eval.json").read_text())
    assert zoo_benchmark.verdict(name, report) in ("yes", "-")


@pytest.mark.parametrize("name", ["dense-kl", "conv-l1"])
def test_shipped_saved_model_serves(name, mnist):
    served = tf.saved_model.load(str(SAVED_MODELS / name))
    model = keras.models.load_model(SAVED_MODELS / f"{name}.keras")
    x = mnist.x_test[:8]
    np.testing.assert_allclose(served.serve(x), model.predict(x, verbose=0), atol=1e-5)
