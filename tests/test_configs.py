import pytest

from zoo import configs


def test_presets_then_overrides():
    config = configs.resolve_config("dense", "kl")
    preset = configs.ZOO_PRESETS[("dense", "kl")]
    for key, value in preset.items():
        assert getattr(config, key) == value
    assert config.jit_compile == configs.FAMILY_PRESETS["dense"]["jit_compile"]
    assert config.default_name == "dense-kl"
    changed = configs.resolve_config("dense", "kl", rho=0.2, epochs=None, hidden_units=[8])
    assert changed.rho == 0.2 and changed.epochs == config.epochs
    assert changed.hidden_units == (8,)


def test_every_model_and_reg_has_a_preset():
    assert set(configs.ZOO_PRESETS) == {(m, r) for m in configs.MODELS for r in configs.REGS}
    for model, reg in configs.ZOO_PRESETS:
        configs.resolve_config(model, reg)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"model": "rnn"}, "Expected `model` to be one of ['dense', 'conv']. Received: model='rnn'"),
        ({"reg": "l2"}, "Received: reg='l2'"),
        ({"epochs": 0}, "Received: epochs=0"),
        ({"learning_rate": -1.0}, "Received: learning_rate=-1.0"),
        ({"validation_fraction": 1.0}, "Received: validation_fraction=1.0"),
        ({"rho": 1.5}, "Received: rho=1.5"),
    ],
)
def test_bad_values_raise_with_the_value(kwargs, message):
    with pytest.raises(ValueError) as info:
        configs.resolve_config(**kwargs)
    assert message in str(info.value)


def test_unknown_field_is_refused():
    with pytest.raises(TypeError, match="learning_rte"):
        configs.resolve_config("conv", "l1", learning_rte=0.1)
