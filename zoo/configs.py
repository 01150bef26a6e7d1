"""Training configurations: every hyperparameter in one place.

`TrainConfig` holds the defaults shared by all runs; `ZOO_PRESETS` holds the
tuned values of each zoo model, keyed by (model, reg). `resolve_config`
combines them with explicit overrides (the command-line flags).
"""

import dataclasses
import math

import regularizers
from zoo import metrics

MODELS = ("dense", "conv")
REGS = ("none", "l1", "kl")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # === What to train ===
    model: str = "conv"
    reg: str = "l1"
    # === Penalty ===
    l1: float = 1e-4  # L1Sparsity weight
    rho: float = 0.05  # KLSparsity target mean activation
    beta: float = 1.0  # KLSparsity weight
    # === Architecture ===
    code_size: int = 32  # dense: code units; conv: code channels
    hidden_units: tuple = (256, 128)  # dense only
    filters: tuple = (32, 64)  # conv only
    kernel_size: int = 3  # conv only
    activation: str = "relu"
    code_activation: str = "relu"
    noise_stddev: float = 0.0  # > 0: denoising autoencoder
    # === Optimisation ===
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    validation_fraction: float = 1 / 12  # 5,000 of MNIST's 60,000
    seed: int = 1337
    # === Speed ===
    jit_compile: bool = True
    steps_per_execution: int = 1
    # === Diagnostics ===
    active_threshold: float = metrics.ACTIVE_THRESHOLD
    diagnostic_sample_size: int = 1000

    def __post_init__(self):
        _check_choice("model", self.model, MODELS)
        _check_choice("reg", self.reg, REGS)
        for name in ("epochs", "batch_size", "steps_per_execution", "diagnostic_sample_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Expected `{name}` to be a positive integer. Received: {name}={value!r}"
                )
        for name in ("learning_rate", "active_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(
                    f"Expected `{name}` to be a finite number > 0. Received: {name}={value!r}"
                )
        # Every penalty hyperparameter is checked, even for another --reg,
        # by the penalties' own constructors.
        regularizers.L1Sparsity(l1=self.l1)
        regularizers.KLSparsity(rho=self.rho, beta=self.beta)
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                "Expected `validation_fraction` in (0, 1). "
                f"Received: validation_fraction={self.validation_fraction!r}"
            )

    @property
    def default_name(self):
        """The run's name, e.g. "conv-l1"."""
        return f"{self.model}-{self.reg}"


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Expected `{name}` to be one of {list(choices)}. Received: {name}={value!r}"
        )


# Fastest settings per family on a 2-core CPU (benchmarks/speed.py): XLA
# helps the dense matmuls but slows the convolutions down.
FAMILY_PRESETS = {
    "dense": dict(jit_compile=True, steps_per_execution=16),
    "conv": dict(jit_compile=False, steps_per_execution=16),
}

# Tuned values per zoo model; anything not listed comes from the family
# preset, then from TrainConfig.
ZOO_PRESETS = {
    ("dense", "none"): dict(code_size=32, epochs=50),
    ("dense", "l1"): dict(code_size=32, epochs=50, l1=1e-4),
    ("dense", "kl"): dict(code_size=64, epochs=50, code_activation="sigmoid", rho=0.05, beta=1.0),
    ("conv", "none"): dict(code_size=32, epochs=20),
    ("conv", "l1"): dict(code_size=32, epochs=20, l1=1e-4),
    ("conv", "kl"): dict(code_size=32, epochs=20, code_activation="sigmoid", rho=0.05, beta=1.0),
}


def resolve_config(model=TrainConfig.model, reg=TrainConfig.reg, **overrides):
    """The configuration of a run: defaults, family and zoo presets, overrides.

    Overrides whose value is None are ignored (an unset command-line flag).
    """
    _check_choice("model", model, MODELS)
    _check_choice("reg", reg, REGS)
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"Unknown configuration fields: {sorted(unknown)}")
    values = {
        **FAMILY_PRESETS[model],
        **ZOO_PRESETS[(model, reg)],
        **{key: value for key, value in overrides.items() if value is not None},
    }
    for name in ("hidden_units", "filters"):
        if name in values:
            values[name] = tuple(values[name])
    return TrainConfig(model=model, reg=reg, **values)


# The zoo: name -> (model, reg, flags beyond that pair's defaults). Every
# entry but the denoising one is `python train.py --model M --reg R`.
ZOO_MODELS = {
    "dense-none": ("dense", "none", {}),
    "dense-l1": ("dense", "l1", {}),
    "dense-kl": ("dense", "kl", {}),
    "conv-none": ("conv", "none", {}),
    "conv-l1": ("conv", "l1", {}),
    "conv-kl": ("conv", "kl", {}),
    "conv-denoise": ("conv", "l1", {"noise_stddev": 0.3}),
}
