"""Sparsity penalties for autoencoder codes, and their registry.

Importing this package registers every penalty with Keras, so
`keras.models.load_model` can rebuild the models that use them.

Two kinds of penalty, one registry:
- `ActivityPenalty` (a `keras.regularizers.Regularizer`): a function of the
  code's activations only (L1Sparsity, KLSparsity).
- `CodePenalty`: a function of the code layer (its outputs, kernel and
  activation), such as the contractive penalty.

A new penalty is one class in this folder and one line in `PENALTIES`; its
constructor arguments become `train.py` flags (`--rho`, ...).
"""

from regularizers.contractive import CodePenalty
from regularizers.contractive import Contractive
from regularizers.sparsity import KL_RHO_HAT_EPSILON
from regularizers.sparsity import SERIALIZATION_PACKAGE
from regularizers.sparsity import ActivityPenalty
from regularizers.sparsity import KLSparsity
from regularizers.sparsity import L1Sparsity

NO_PENALTY = "none"
# Name on the command line -> class. "l1" means `L1Sparsity`, not Keras'
# built-in weight-style `keras.regularizers.L1`.
PENALTIES = {
    "l1": L1Sparsity,
    "kl": KLSparsity,
    "contractive": Contractive,
}


def get_penalty(name, **kwargs):
    """Returns the penalty called `name` (a key of PENALTIES, or "none").

    Args:
        name: "none" (returns None) or a key of `PENALTIES`.
        **kwargs: constructor arguments of that penalty, e.g. `rho=0.05`.

    Returns:
        An `ActivityPenalty` or `CodePenalty` instance, or None for "none".
    """
    if name == NO_PENALTY:
        return None
    if name not in PENALTIES:
        raise ValueError(
            f"Expected `reg` to be one of {penalty_names()}. Received: reg={name!r}"
        )
    return PENALTIES[name](**kwargs)


def penalty_names():
    """Every name `get_penalty` accepts, "none" first."""
    return [NO_PENALTY, *PENALTIES]


__all__ = [
    "ActivityPenalty",
    "CodePenalty",
    "Contractive",
    "KLSparsity",
    "KL_RHO_HAT_EPSILON",
    "L1Sparsity",
    "NO_PENALTY",
    "PENALTIES",
    "SERIALIZATION_PACKAGE",
    "get_penalty",
    "penalty_names",
]
