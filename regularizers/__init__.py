"""Sparsity penalties for autoencoder codes.

Importing this package registers `L1Sparsity` and `KLSparsity` with Keras, so
`keras.models.load_model` can rebuild models that use them.
"""

from regularizers.sparsity import KL_RHO_HAT_EPSILON
from regularizers.sparsity import SERIALIZATION_PACKAGE
from regularizers.sparsity import ActivityPenalty
from regularizers.sparsity import KLSparsity
from regularizers.sparsity import L1Sparsity

# Short names used on the command line. "l1" means `L1Sparsity`, not Keras'
# built-in weight-style `keras.regularizers.L1`.
SPARSITY_PENALTIES = {"l1": L1Sparsity, "kl": KLSparsity}
NO_PENALTY = "none"


def get_penalty(name, **kwargs):
    """Returns the penalty called `name` ("none", "l1" or "kl"), built with `kwargs`.

    Args:
        name: "none" (returns None) or a key of `SPARSITY_PENALTIES`.
        **kwargs: constructor arguments of that penalty, e.g. `rho=0.05`.

    Returns:
        An `ActivityPenalty` instance, or None for "none".
    """
    if name == NO_PENALTY:
        return None
    if name not in SPARSITY_PENALTIES:
        choices = [NO_PENALTY, *SPARSITY_PENALTIES]
        raise ValueError(
            f"Expected `reg` to be one of {choices}. Received: reg={name!r}"
        )
    return SPARSITY_PENALTIES[name](**kwargs)


__all__ = [
    "ActivityPenalty",
    "KLSparsity",
    "KL_RHO_HAT_EPSILON",
    "L1Sparsity",
    "NO_PENALTY",
    "SERIALIZATION_PACKAGE",
    "SPARSITY_PENALTIES",
    "get_penalty",
]
