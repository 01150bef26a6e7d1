"""Training configurations, derived from the registries.

The hyperparameters of a run come from four owners, each declared once:
- the training fields of `TrainConfig` below (epochs, batch size, ...);
- the family's builder (`models.FAMILIES[model].builder`): its keyword
  arguments and their docstring lines;
- the penalty's constructor (`regularizers.PENALTIES[reg]`);
- the code activation's constructor (`models.CODE_ACTIVATIONS[name]`).
`options()` turns all of them into one table of `Option`s, from which
train.py builds its flags and `resolve_config` checks overrides. Defaults
come from, in order: the argument's own default, the family's defaults
(`Family.defaults`), the zoo preset of the run (`pipeline.manifest`), and
explicit overrides.
"""

import dataclasses
import inspect
import math
import re
import types

import keras

import models
import regularizers
from pipeline import metrics
from pipeline import precision as precision_lib

# Builder arguments that are not hyperparameters.
_NOT_OPTIONS = {"input_shape", "activity_regularizer", "name", "self", "kwargs"}
# Dead-unit revival stops after this fraction of the epochs by default.
REVIVE_UNTIL = 0.5
# The largest finite float32 (numpy.finfo("float32").max).
FLOAT32_MAX = 3.4028234663852886e38
MAX_SEED = 2**32 - 1  # numpy.random.default_rng and Keras' seeds take [0, 2**32)


def _field(default, help):
    if isinstance(default, dict):  # a fresh dict per instance
        return dataclasses.field(default_factory=dict, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run, as resolved by `resolve_config`."""

    # === What to train ===
    model: str = _field("conv", "model family")
    reg: str = _field("l1", "code penalty")
    architecture: dict = _field({}, "builder arguments of the family")
    penalty: dict = _field({}, "constructor arguments of the penalty")
    code_activation_args: dict = _field({}, "constructor arguments of the code activation")
    # === Optimisation ===
    epochs: int = _field(20, "training epochs")
    batch_size: int = _field(128, "batch size")
    learning_rate: float = _field(1e-3, "Adam learning rate")
    adam_epsilon: float = _field(1e-7, "Adam's epsilon, added to sqrt(v) (Keras' default); "
                                 "in the units of the loss's gradients")
    global_clipnorm: float = _field(
        0.0, "rescale each step's gradients to this global norm at most before Adam "
        "(Keras' global_clipnorm; 0: no clipping)")
    penalty_warmup_epochs: float = _field(
        0.0, "ramp the activity penalty's weight (L1, KL) from 0 to 1 over the first N "
        "epochs (SAELens' l1_warm_up_steps; 0: off)")
    validation_fraction: float = _field(1 / 12, "share of the training set held out")
    random_shift: int = _field(
        0, "images: shift each training image by up to N pixels along each axis, drawn anew "
        "each epoch, zero-filled (augmentation; 0: off)")
    seed: int = _field(1337, "random seed (weights, noise, split, shuffling)")
    # === Speed ===
    jit_compile: bool = _field(True, "XLA-compile the train step (true/false)")
    steps_per_execution: int = _field(1, "batches per compiled call")
    precision: str = _field(
        precision_lib.AUTO, "float32, mixed_bfloat16, or auto: mixed_bfloat16 (without XLA) "
        "for the families where it pays on a CPU with bf16 units (pipeline/precision.py)")
    # === Dead units ===
    revive_every: int = _field(0, "re-initialise the code units that never fired on a training "
                               "sample after every N epochs (0: never; pipeline/revival.py)")
    revive_until: float = _field(REVIVE_UNTIL, "revive only in this first fraction of the epochs, "
                                 "so that revived units settle")
    # === Diagnostics ===
    active_threshold: float = _field(metrics.ACTIVE_THRESHOLD, "a code unit is active above this")
    diagnostic_sample_size: int = _field(1000, "validation images of the per-epoch diagnostics")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "steps_per_execution", "diagnostic_sample_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Expected `{name}` to be a positive integer. Received: {name}={value!r}"
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) \
                or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"Expected `seed` to be an integer in [0, {MAX_SEED}] (NumPy's "
                             f"range). Received: seed={self.seed!r}")
        for name in ("learning_rate", "adam_epsilon", "active_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(
                    f"Expected `{name}` to be a finite number > 0. Received: {name}={value!r}"
                )
        for name, zero in (("global_clipnorm", "no clipping"), ("penalty_warmup_epochs", "off")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Expected `{name}` to be a finite number >= 0 (0: {zero}). "
                                 f"Received: {name}={value!r}")
        if self.penalty_warmup_epochs and not isinstance(build_penalty(self),
                                                         regularizers.ActivityPenalty):
            raise ValueError("Expected an activity penalty (reg l1 or kl) with "
                             f"`penalty_warmup_epochs`. Received: reg={self.reg!r}, "
                             f"penalty_warmup_epochs={self.penalty_warmup_epochs!r}")
        for name in ("revive_every", "random_shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Expected `{name}` to be an integer >= 0. "
                                 f"Received: {name}={value!r}")
        if isinstance(self.revive_until, bool) or not isinstance(self.revive_until, (int, float)) \
                or not 0 < self.revive_until <= 1:
            raise ValueError("Expected `revive_until` in (0, 1]. "
                             f"Received: revive_until={self.revive_until!r}")
        precision_lib.check_precision(self.precision)
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                "Expected `validation_fraction` in (0, 1). "
                f"Received: validation_fraction={self.validation_fraction!r}"
            )
        # Python floats beyond float32 become inf in the model (--l1 1e300).
        for part in (dataclasses.asdict(self), self.architecture or {}, self.penalty or {},
                     self.code_activation_args or {}):
            for name, value in part.items():
                if isinstance(value, float) and math.isfinite(value) and abs(value) > FLOAT32_MAX:
                    raise ValueError(
                        f"Expected `{name}` to fit in float32 (|{name}| <= {FLOAT32_MAX:.4g}). "
                        f"Received: {name}={value!r}"
                    )
        # The penalty and code activation check their own arguments.
        build_penalty(self)
        build_code_activation(self)

    @property
    def default_name(self):
        """The run's name, e.g. "conv-l1"."""
        return f"{self.model}-{self.reg}"

    @property
    def last_revival_epoch(self):
        """The last epoch (1-based) that may revive dead units; 0 when revival is off."""
        return math.floor(self.revive_until * self.epochs) if self.revive_every else 0

    @property
    def code_activation(self):
        return self.architecture.get("code_activation", "relu")


TRAINING_FIELDS = tuple(
    f.name for f in dataclasses.fields(TrainConfig)
    if f.name not in ("model", "reg", "architecture", "penalty", "code_activation_args")
)


@dataclasses.dataclass(frozen=True)
class Option:
    """One hyperparameter: its name, type, and each owner's default and help.

    Owners are ("training",) or ("model", family), ("reg", penalty),
    ("code_activation", name) pairs; an option several owners share (such as
    `code_activation` of every builder) has a default and a help line for each.
    """

    name: str
    kind: type
    defaults: dict
    helps: dict

    @property
    def owners(self):
        return tuple(self.defaults)

    @property
    def help(self):
        """The help line, or one per owner where they differ."""
        distinct = dict.fromkeys(self.helps.values())
        if len(distinct) == 1:
            return next(iter(distinct))
        return "; ".join(f"{owner[-1]}: {text}" for owner, text in self.helps.items())


def argument_help(obj):
    """{argument: one-line help} from the Args:/Arguments: block of a docstring."""
    doc = inspect.getdoc(obj) or ""
    match = re.search(r"^(?:Args|Arguments):\n(.*?)(?:\n\S|\Z)", doc, re.S | re.M)
    helps, name = {}, None
    for line in (match.group(1) if match else "").splitlines():
        item = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)", line)
        if item:
            name = item.group(1)
            helps[name] = item.group(2).strip()
        elif name and line.strip():
            helps[name] += " " + line.strip()
    return helps


def _kind(parameter):
    annotation = parameter.annotation
    if isinstance(annotation, types.UnionType):
        return next(a for a in annotation.__args__ if a is not type(None))
    if annotation is not inspect.Parameter.empty:
        return annotation
    default = parameter.default
    # Arguments without a default (code_size) or with None are counts here.
    return int if default in (None, inspect.Parameter.empty) else type(default)


def _signature_options(obj, owner, skip=()):
    helps = argument_help(obj)
    found = []
    target = obj.__init__ if inspect.isclass(obj) else obj
    for index, parameter in enumerate(inspect.signature(target).parameters.values()):
        if parameter.name in _NOT_OPTIONS or parameter.name in skip:
            continue
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        default = None if parameter.default is inspect.Parameter.empty else parameter.default
        found.append(Option(parameter.name, _kind(parameter), {owner: default},
                            {owner: helps.get(parameter.name, parameter.name)}))
    return found


def options():
    """Every hyperparameter of every registry, merged by name.

    Raises:
        TypeError: two owners use one name with different types.
    """
    found = [
        Option(f.name, f.type, {("training",): f.default}, {("training",): f.metadata["help"]})
        for f in dataclasses.fields(TrainConfig) if f.name in TRAINING_FIELDS
    ]
    for name, family in models.FAMILIES.items():
        found += _signature_options(family.builder, ("model", name))
    for name, penalty in regularizers.PENALTIES.items():
        found += _signature_options(penalty, ("reg", name))
    for name, layer in models.CODE_ACTIVATIONS.items():
        found += _signature_options(layer, ("code_activation", name))
    merged = {}
    for option in found:
        if option.name not in merged:
            merged[option.name] = option
            continue
        first = merged[option.name]
        if first.kind is not option.kind:
            raise TypeError(
                f"Option `{option.name}` means {first.kind.__name__} for {first.owners} "
                f"but {option.kind.__name__} for {option.owners}; rename one of them"
            )
        merged[option.name] = dataclasses.replace(
            first, defaults={**first.defaults, **option.defaults},
            helps={**first.helps, **option.helps},
        )
    return merged


def _takes(option, model, reg, code_activation):
    return any(
        owner == ("training",) or owner == ("model", model) or owner == ("reg", reg)
        or owner == ("code_activation", code_activation)
        for owner in option.owners
    )


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Expected `{name}` to be one of {list(choices)}. Received: {name}={value!r}"
        )


def resolve_config(model=TrainConfig.model, reg=TrainConfig.reg, preset=None, **overrides):
    """The configuration of a run: argument defaults, family defaults, preset, overrides.

    Args:
        model: a `models.FAMILIES` name.
        reg: a `regularizers.PENALTIES` name or "none".
        preset: a dict of option values (a zoo preset) or None.
        **overrides: option values; None means "not set" and is ignored.

    Raises:
        ValueError: a bad choice or value, or an option the run does not take
            (e.g. `filters` for a dense model).
        TypeError: an unknown option name.
    """
    _check_choice("model", model, models.FAMILIES)
    _check_choice("reg", reg, regularizers.penalty_names())
    table = options()
    unknown = sorted(set(overrides) - set(table))
    if unknown:
        raise TypeError(f"Unknown configuration fields: {unknown}")
    values = {**models.get_family(model).defaults, **(preset or {})}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values = _scaled_schedule(values, preset or {}, overrides)
    code_activation = values.get("code_activation", "relu")
    for name, value in values.items():
        if not _takes(table[name], model, reg, code_activation):
            takers = ", ".join("/".join(owner) for owner in table[name].owners)
            raise ValueError(
                f"Expected only options of --model {model}, --reg {reg} and "
                f"--code-activation {code_activation}. Received: {name}={value!r} "
                f"(an option of {takers})"
            )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}

    def part(owner):
        return {
            name: values.get(name, option.defaults[owner])
            for name, option in table.items() if owner in option.defaults
        }

    training = {k: v for k, v in values.items() if k in TRAINING_FIELDS}
    architecture = part(("model", model))
    if "seed" in architecture:  # one seed for the run, the builder's included
        architecture["seed"] = values.get("seed", TrainConfig.seed)
    return TrainConfig(
        model=model,
        reg=reg,
        architecture=architecture,
        penalty=part(("reg", reg)) if reg != regularizers.NO_PENALTY else {},
        code_activation_args=(
            part(("code_activation", code_activation))
            if code_activation in models.CODE_ACTIVATIONS else {}
        ),
        **training,
    )


def _scaled_schedule(values, preset, overrides):
    """A preset's k schedule scaled to the epochs asked for (`--epochs` without
    `--schedule-examples`): the schedule spans the same share of the run, so a
    shortened run still ends at its k rather than cutting the schedule off."""
    asked = overrides.get("epochs")
    if (asked is None or overrides.get("schedule_examples") is not None
            or not preset.get("schedule_examples") or not preset.get("epochs")):
        return values
    scaled = round(preset["schedule_examples"] * asked / preset["epochs"])
    return {**values, "schedule_examples": scaled}


def build_penalty(config):
    """The code penalty of `config`, or None."""
    return regularizers.get_penalty(config.reg, **config.penalty)


def build_code_activation(config):
    """The code activation of `config`: a layer, or a Keras activation name."""
    name = config.code_activation
    if name in models.CODE_ACTIVATIONS:
        return models.CODE_ACTIVATIONS[name](**config.code_activation_args)
    if isinstance(name, str):
        try:
            keras.activations.get(name)
        except ValueError:
            raise ValueError(
                f"Expected `code_activation` to be a code activation "
                f"({', '.join(models.CODE_ACTIVATIONS)}) or a Keras activation name. "
                f"Received: code_activation={name!r}") from None
    return name
