"""Autoencoder families and their registry. They know nothing of files, argv or datasets.

Importing this package registers every custom layer and model class with
Keras (CodeDense, Bias, TopK, BatchTopK, LifetimeWTA, ConvWTA, SparseDictionary);
`import regularizers` registers the penalties. Those two imports are all that
`keras.models.load_model` needs for any model of the project.

A new family is one module here and one `FAMILIES` entry: its builder's
keyword arguments become `train.py` flags.
"""

import dataclasses
from typing import Callable

from models import activations
from models import dictionary
from models import layers
from models._assembly import CODE_LAYER
from models._assembly import DECODER
from models._assembly import ENCODER
from models._assembly import NO_NORMALIZATION
from models._assembly import NORMALIZATIONS
from models._assembly import UNIT_INTERVAL_ACTIVATIONS
from models._assembly import calibrate_thresholds
from models._assembly import calibrating_layers
from models._assembly import input_scale
from models._assembly import set_normalization
from models._assembly import probe_feature_model
from models.activations import CODE_ACTIVATIONS
from models.activations import ConvWTA
from models.activations import BatchTopK
from models.activations import LifetimeWTA
from models.activations import TopK
from models.conv import build_conv_autoencoder
from models.dense import build_dense_autoencoder
from models.dictionary import SparseDictionary
from models.dictionary import build_dictionary_autoencoder


# The kinds of examples a family may accept (as pipeline.data names them).
IMAGES, VECTORS = "images", "vectors"


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its builder and what it trains best with.

    Attributes:
        builder: `builder(input_shape, code_size, **kwargs) -> keras.Model`.
        summary: one line for `--help`.
        defaults: builder and training settings of the family (speed
            settings measured in benchmarks/speed.py, code size, epochs);
            any of them can be overridden.
        data_initializer: `f(model, x)` that sets weights from training
            images before training, or None.
        accepts: the kinds of examples it takes: IMAGES (N, H, W, C) and/or
            VECTORS (N, D); training refuses the others in one line.
    """

    builder: Callable
    summary: str
    defaults: dict = dataclasses.field(default_factory=dict)
    data_initializer: Callable | None = None
    accepts: tuple = (IMAGES, VECTORS)


FAMILIES = {
    "dense": Family(
        build_dense_autoencoder,
        "fully-connected encoder/decoder stacks around a dense code",
        # XLA helps the dense matmuls on a 2-core CPU.
        dict(code_size=32, jit_compile=True, steps_per_execution=16, epochs=50),
    ),
    "conv": Family(
        build_conv_autoencoder,
        "conv encoder, a code map (or a dense code with --code-units), transposed-conv decoder",
        # XLA slows the convolutions down on a 2-core CPU.
        dict(code_size=32, jit_compile=False, steps_per_execution=16, epochs=20),
        accepts=(IMAGES,),
    ),
    "dictionary": Family(
        build_dictionary_autoencoder,
        "one overcomplete layer: TopK/BatchTopK/WTA/L1/KL codes, unit-norm decoder, AuxK",
        dict(code_size=1024, jit_compile=False, steps_per_execution=16, epochs=20),
        data_initializer=dictionary.initialize_from_data,
    ),
}


def get_family(name):
    """The `Family` registered as `name`."""
    if name not in FAMILIES:
        raise ValueError(
            f"Expected `model` to be one of {list(FAMILIES)}. Received: model={name!r}"
        )
    return FAMILIES[name]


__all__ = [
    "CODE_ACTIVATIONS",
    "CODE_LAYER",
    "DECODER",
    "ENCODER",
    "NO_NORMALIZATION",
    "NORMALIZATIONS",
    "FAMILIES",
    "UNIT_INTERVAL_ACTIVATIONS",
    "BatchTopK",
    "ConvWTA",
    "Family",
    "LifetimeWTA",
    "SparseDictionary",
    "TopK",
    "activations",
    "build_conv_autoencoder",
    "build_dense_autoencoder",
    "build_dictionary_autoencoder",
    "calibrate_thresholds",
    "calibrating_layers",
    "input_scale",
    "set_normalization",
    "get_family",
    "layers",
    "probe_feature_model",
]
