"""Autoencoder builders. They know nothing of files, argv or datasets."""

from models._assembly import UNIT_INTERVAL_ACTIVATIONS
from models.conv import build_conv_autoencoder
from models.dense import build_dense_autoencoder

__all__ = [
    "UNIT_INTERVAL_ACTIVATIONS",
    "build_conv_autoencoder",
    "build_dense_autoencoder",
]
