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
# The .keras files (no optimizer state): small models, and the wide dictionaries
# (whose SavedModel folders are not committed: `python -m pipeline.export NAME`);
# the widest, dict-wta's 3,000 tied latents, is 18.9 MB (a tied dictionary stores
# its decoder's copy of W_enc^T too).
MAX_KERAS_FILE_BYTES = {"dictionary": 20_000_000}
DEFAULT_MAX_KERAS_FILE_BYTES = 3_000_000
RELATIVE_TOLERANCE = 1e-4
# Every shipped model stays within the repository's binary budget.
MAX_SAVED_MODELS_BYTES = 100 * 2**20


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
    entry = manifest.ZOO[name]
    assert path.stat().st_size < MAX_KERAS_FILE_BYTES.get(entry.model, DEFAULT_MAX_KERAS_FILE_BYTES)
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
    assert (run["config"]["model"], run["config"]["reg"]) == (entry.model, entry.reg)
    # The preset's hyperparameters; the precision is the one it was trained in
    # ("float32" for the models trained before there was a choice).
    expected = manifest.config_of(name, precision=run["config"]["precision"])
    assert run["config"] == json.loads(json.dumps(dataclasses.asdict(expected)))
    assert run["data"]["limit"] is None and report["test_images"] == 10000


@pytest.mark.parametrize("name", list(manifest.ZOO))
def test_shipped_model_meets_its_targets_but_its_recorded_misses(name):
    report = json.loads((SAVED_MODELS / f"{name}.eval.json").read_text())
    peer = SAVED_MODELS / f"{name}.peer.json"
    peer_bce = json.loads(peer.read_text())["test_bce"] if peer.is_file() else None
    missed = manifest.missed_targets(name, report, peer_bce)
    assert set(missed) == set(manifest.ZOO[name].known_misses), missed


def test_shipped_files_fit_the_binary_budget():
    import subprocess

    listed = subprocess.run(["git", "ls-files", "saved_models"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = [ROOT / line for line in listed.stdout.splitlines()]
    assert sum(p.stat().st_size for p in tracked if p.is_file()) < MAX_SAVED_MODELS_BYTES


@pytest.mark.parametrize("name", ["dense-kl", "conv-l1"])
def test_shipped_saved_model_serves(name, mnist):
    served = tf.saved_model.load(str(SAVED_MODELS / name))
    model = keras.models.load_model(SAVED_MODELS / f"{name}.keras")
    x = mnist.x_test[:8]
    np.testing.assert_allclose(served.serve(x), model.predict(x, verbose=0), atol=1e-5)
