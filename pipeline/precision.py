"""Numeric precision of training: float32, or mixed bfloat16 on CPUs with bf16 units.

Under Keras' "mixed_bfloat16" dtype policy the layers compute in bfloat16 and
keep float32 variables; the reconstruction layers, every penalty and the
AuxK loss stay float32 (`models._assembly.output_dtype`, `regularizers`), and
`pipeline.training` exports a float32 copy, so a model trained in bf16 loads
and serves like any other.

"auto" picks mixed_bfloat16 where it pays, as measured by
`python -m benchmarks.speed --precision` (README, "Speed"): on a CPU with bf16
matrix units (AMX-BF16 or AVX512-BF16, read from /proc/cpuinfo), for the
families in `BF16_FAMILIES` with an element-wise code (not one of
`FLOAT32_CODES`) that needs no finer numbers than bf16's (not one of
`FLOAT32_FINE_CODES`), and without XLA, under which TensorFlow's CPU bf16 matmuls
gain nothing. Elsewhere it picks float32.
"""

import contextlib
import dataclasses
import platform
from pathlib import Path

import keras

FLOAT32 = "float32"
MIXED_BFLOAT16 = "mixed_bfloat16"
AUTO = "auto"
CHOICES = (AUTO, FLOAT32, MIXED_BFLOAT16)
# /proc/cpuinfo flags of the CPU units that run bf16 matmuls natively.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")
# Families whose training is faster in bf16 on such a CPU (measured; the
# small dense and conv models spend their time elsewhere than in matmuls).
BF16_FAMILIES = ("dictionary",)
# Codes that choose units by rank: their top_k and scatter cost as much as the
# matmuls bf16 speeds up, and bf16 rounding moves the choice (dict-topk trained
# no faster in bf16, with a 7% higher FVU: README, "Speed").
FLOAT32_CODES = ("topk", "batchtopk", "wta")
# Codes that bf16 would speed up but whose training reads the pre-activations more
# finely than bf16's 8-bit mantissa does, with why. JumpReLU's straight-through
# estimators look at z within a bandwidth of theta (0.05 in SAELens' recipe), a
# few bf16 steps at pre-activations of 1 to 5: on the synthetic benchmark it
# missed 5 true features over 4 seeds in bf16, 2 in float32 (docs/synthetic.md).
FLOAT32_FINE_CODES = {
    "jumprelu": "its thresholds learn from pre-activations within a bandwidth of a few "
                "bf16 steps",
}


@dataclasses.dataclass(frozen=True)
class Precision:
    """A resolved precision: the policy, why it was chosen, and the CPU it was chosen for."""

    requested: str
    policy: str
    reason: str
    cpu: str
    bf16_units: tuple

    def record(self):
        """The run record's "precision" entry."""
        return {"requested": self.requested, "policy": self.policy, "reason": self.reason,
                "cpu": self.cpu, "bf16_units": list(self.bf16_units)}


def cpu_features(cpuinfo=CPUINFO):
    """(CPU model name, the BF16_CPU_FLAGS it has) from /proc/cpuinfo; no flags elsewhere."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or platform.machine(), ()
    name, flags = platform.machine(), set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name == platform.machine():
            name = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return name, tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


def check_precision(precision):
    """Returns `precision` if it is one of CHOICES, else raises a Keras-style ValueError."""
    if precision not in CHOICES:
        raise ValueError(f"Expected `precision` in {list(CHOICES)}. "
                         f"Received: precision={precision!r}")
    return precision


def resolve(precision, family, code_activation=None, features=None):
    """The `Precision` that `precision` ("auto", "float32" or "mixed_bfloat16") means
    for a model of `family` with `code_activation` (a name, or None) on this CPU
    (or on `features`, a `cpu_features()` pair)."""
    check_precision(precision)
    cpu, units = features if features is not None else cpu_features()
    if precision != AUTO:
        return Precision(precision, precision, "requested", cpu, units)
    if not units:
        return Precision(AUTO, FLOAT32, "the CPU has no bf16 units", cpu, units)
    if family not in BF16_FAMILIES:
        return Precision(AUTO, FLOAT32, f"bf16 does not speed up the {family} family "
                         f"(only {', '.join(BF16_FAMILIES)})", cpu, units)
    if code_activation in FLOAT32_CODES:
        return Precision(AUTO, FLOAT32, f"bf16 does not speed up a {code_activation} code",
                         cpu, units)
    if code_activation in FLOAT32_FINE_CODES:
        return Precision(AUTO, FLOAT32, f"a {code_activation} code: "
                         f"{FLOAT32_FINE_CODES[code_activation]}", cpu, units)
    return Precision(AUTO, MIXED_BFLOAT16, f"the CPU has {', '.join(units)}", cpu, units)


def resolve_config(config, features=None):
    """`resolve` for a `TrainConfig`."""
    return resolve(config.precision, config.model, config.architecture.get("code_activation"),
                   features)


def adapt_config(config, resolved):
    """`config` with the XLA setting that suits `resolved`, and notes for the user.

    "auto" turns XLA off when it picks bf16: TensorFlow's XLA CPU backend runs
    bf16 matmuls no faster than float32 (README, "Speed"). An explicit
    --precision mixed_bfloat16 keeps the --jit-compile it was given.
    """
    if resolved.requested == AUTO and resolved.policy == MIXED_BFLOAT16 and config.jit_compile:
        return dataclasses.replace(config, jit_compile=False), [
            "precision auto: mixed_bfloat16 without XLA (XLA's CPU bf16 matmuls are no faster)"]
    return config, []


@contextlib.contextmanager
def policy_scope(policy):
    """Sets Keras' global dtype policy to `policy` for the layers built inside."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
