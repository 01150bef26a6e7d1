import pytest

import models
import regularizers
from pipeline import manifest


def test_every_zoo_model_resolves_and_names_registered_parts():
    for name, entry in manifest.ZOO.items():
        assert entry.model in models.FAMILIES and entry.reg in regularizers.penalty_names()
        config = manifest.config_of(name)
        assert (config.model, config.reg) == (entry.model, entry.reg)


def test_preset_of_a_pair_without_a_zoo_model_is_empty():
    assert manifest.preset_of("dictionary", "contractive") == {}
    assert manifest.preset_of("conv", "l1")["code_size"] == 32


@pytest.mark.parametrize(
    "name,report,expected",
    [
        ("conv-kl", {"bce": 0.07, "code_mean_activation": 0.051, "rho": 0.05,
                     "code_dead_fraction": 0.0}, "yes"),
        ("conv-kl", {"bce": 0.08, "code_mean_activation": 0.051, "rho": 0.05,
                     "code_dead_fraction": 0.0}, "no (BCE"),
        ("conv-kl", {"bce": 0.07, "code_mean_activation": 0.06, "rho": 0.05,
                     "code_dead_fraction": 0.0}, "no (mean activation off rho"),
        ("conv-kl", {"bce": 0.07, "code_mean_activation": 0.05, "rho": 0.05,
                     "code_dead_fraction": 0.05}, "no (dead units"),
        ("dense-none", {"bce": 0.5}, "-"),
    ],
)
def test_verdict_checks_each_target(name, report, expected):
    assert manifest.verdict(name, report).startswith(expected)


def test_verdict_checks_probe_and_fvu(monkeypatch):
    monkeypatch.setitem(manifest.ZOO, "x", manifest.ZooModel(
        "dictionary", "none", {}, dict(min_probe_accuracy=0.985, max_fvu=0.1)))
    good = {"probe_accuracy": 0.99, "explained_variance": 0.95, "code_dead_fraction": 0}
    assert manifest.verdict("x", good) == "yes"
    assert "probe" in manifest.verdict("x", {**good, "probe_accuracy": 0.98})
    assert "FVU" in manifest.verdict("x", {**good, "explained_variance": 0.8})


def test_verdict_checks_the_svm_probe_apart(monkeypatch):
    monkeypatch.setitem(manifest.ZOO, "x", manifest.ZooModel(
        "dictionary", "none", {}, dict(min_svm_probe_accuracy=0.988)))
    good = {"probe_accuracy": 0.97, "probe_svm_accuracy": 0.989, "code_dead_fraction": 0}
    assert manifest.verdict("x", good) == "yes"
    assert manifest.verdict("x", {**good, "probe_svm_accuracy": 0.987}) == (
        "no (SVM probe 98.70% < 98.8%)")
