import pytest

import models
import regularizers
from pipeline import config as configs
from pipeline import manifest


def test_family_defaults_then_preset_then_overrides():
    config = configs.resolve_config("dense", "kl", preset=manifest.preset_of("dense", "kl"))
    assert config.architecture["code_size"] == 64
    assert config.architecture["code_activation"] == "sigmoid"
    assert config.penalty == {"rho": 0.05, "beta": 1.0}
    assert config.jit_compile == models.FAMILIES["dense"].defaults["jit_compile"]
    assert config.default_name == "dense-kl"
    changed = configs.resolve_config("dense", "kl", preset=manifest.preset_of("dense", "kl"),
                                     rho=0.2, epochs=None, hidden_units=[8])
    assert changed.penalty["rho"] == 0.2 and changed.epochs == config.epochs
    assert changed.architecture["hidden_units"] == (8,)


def test_every_family_and_penalty_resolves_without_a_preset():
    # A missing preset row falls back to the family's defaults.
    for model in models.FAMILIES:
        for reg in regularizers.penalty_names():
            if reg == "kl":
                config = configs.resolve_config(model, reg, code_activation="sigmoid")
            elif reg == "contractive" and model == "conv":
                continue
            else:
                config = configs.resolve_config(model, reg)
            assert config.architecture["code_size"] == models.FAMILIES[model].defaults["code_size"]


def test_every_registry_argument_is_an_option():
    options = configs.options()
    assert {"l1", "rho", "beta", "contractive_weight"} <= set(options)
    assert {"k", "lifetime_sparsity", "aux_k", "code_units", "filters", "hidden_units"} <= set(options)
    assert options["filters"].owners == (("model", "conv"),)
    assert options["output_activation"].defaults[("model", "dictionary")] == "linear"
    assert "the penalty weight" in options["l1"].help  # from the class docstring


def test_code_activation_arguments_reach_the_config():
    config = configs.resolve_config("dictionary", "none", code_activation="topk", k=7)
    assert config.code_activation_args["k"] == 7
    layer = configs.build_code_activation(config)
    assert isinstance(layer, models.TopK) and layer.k == 7


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"model": "rnn"}, "Expected `model` to be one of ['dense', 'conv', 'dictionary']. Received: model='rnn'"),
        ({"reg": "l2"}, "Received: reg='l2'"),
        ({"epochs": 0}, "Received: epochs=0"),
        ({"learning_rate": -1.0}, "Received: learning_rate=-1.0"),
        ({"validation_fraction": 1.0}, "Received: validation_fraction=1.0"),
        ({"reg": "kl", "rho": 1.5}, "Received: rho=1.5"),
        ({"model": "dense", "filters": (4,)}, "Received: filters=(4,) (an option of model/conv)"),
        ({"reg": "l1", "rho": 0.1}, "Received: rho=0.1 (an option of reg/kl)"),
        ({"model": "dictionary", "k": 3}, "Received: k=3 (an option of code_activation/topk"),
        ({"model": "dictionary", "code_activation": "topk", "k": 0}, "Received: k=0"),
        ({"revive_every": -1}, "Expected `revive_every` to be an integer >= 0. Received: revive_every=-1"),
        ({"random_shift": -1}, "Expected `random_shift` to be an integer >= 0. Received: random_shift=-1"),
        ({"random_shift": 1.5}, "Expected `random_shift` to be an integer >= 0. Received: random_shift=1.5"),
        ({"revive_until": 1.5}, "Expected `revive_until` in (0, 1]. Received: revive_until=1.5"),
        ({"adam_epsilon": 0.0}, "Expected `adam_epsilon` to be a finite number > 0. "
                                "Received: adam_epsilon=0.0"),
        ({"global_clipnorm": -1.0}, "Expected `global_clipnorm` to be a finite number >= 0 "
                                    "(0: no clipping). Received: global_clipnorm=-1.0"),
        ({"global_clipnorm": float("inf")}, "Received: global_clipnorm=inf"),
        ({"penalty_warmup_epochs": -1.0}, "Expected `penalty_warmup_epochs` to be a finite "
                                          "number >= 0 (0: off). Received: penalty_warmup_epochs=-1.0"),
        ({"reg": "none", "penalty_warmup_epochs": 2.0}, "Expected an activity penalty (reg l1 or "
                                                        "kl) with `penalty_warmup_epochs`. "
                                                        "Received: reg='none'"),
    ],
)
def test_bad_values_raise_with_the_value(kwargs, message):
    with pytest.raises(ValueError) as info:
        configs.resolve_config(**kwargs)
    assert message in str(info.value)


def test_unknown_field_is_refused():
    with pytest.raises(TypeError, match="learning_rte"):
        configs.resolve_config("conv", "l1", learning_rte=0.1)


def test_argument_help_reads_google_and_keras_docstrings():
    def f(a, b):
        """Does it.

        Args:
            a: first line
                continued.
            b (int): second.

        Returns:
            nothing.
        """

    assert configs.argument_help(f) == {"a": "first line continued.", "b": "second."}


def test_a_shortened_preset_scales_its_k_schedule_to_the_epochs_asked_for():
    entry = manifest.ZOO["dict-topk"]
    full = entry.options["schedule_examples"]
    short = configs.resolve_config(entry.model, entry.reg, preset=entry.options, epochs=2)
    assert short.code_activation_args["schedule_examples"] == round(
        full * 2 / entry.options["epochs"])
    # An explicit schedule, or no --epochs, is kept as given.
    kept = configs.resolve_config(entry.model, entry.reg, preset=entry.options, epochs=2,
                                  schedule_examples=1000)
    assert kept.code_activation_args["schedule_examples"] == 1000
    same = configs.resolve_config(entry.model, entry.reg, preset=entry.options)
    assert same.code_activation_args["schedule_examples"] == full


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_a_seed_outside_numpys_range_is_named(seed):
    # --seed -1 gave NumPy's message, without the flag's name (issue 25, item 9).
    with pytest.raises(ValueError, match=rf"Expected `seed` to be an integer in \[0, 4294967295\]"
                                         rf".*Received: seed={seed!r}"):
        configs.resolve_config("dense", "l1", seed=seed)
