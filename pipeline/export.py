"""Atomic writers for exports: a crash never leaves a broken or half-replaced file.

Each artefact is written beside its final path under a temporary name, then
renamed over it (`os.replace`, atomic on POSIX for files).
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

import models

RECONSTRUCT_ENDPOINT = "serve"  # also "serving_default": the first endpoint
ENCODE_ENDPOINT = "encode"


class OutputError(OSError):
    """An output folder cannot be created or written."""


def ensure_writable_dir(path, *, flag="out"):
    """Creates `path` if needed and checks that a file can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise OutputError(
            f"Expected `{flag}` to be a writable folder. Received: {flag}='{path}' "
            f"({error.strerror or error})"
        ) from error
    return path


def _temporary_sibling(path, suffix=""):
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def write_json(data, path):
    """Writes `data` as indented JSON to `path`, atomically."""
    path = Path(path)
    tmp = _temporary_sibling(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def inference_model(model):
    """An uncompiled model with the same weights: what an export holds.

    A functional model is rewrapped over the same layers; a subclassed one
    (the dictionary) is rebuilt from its config and given the weights.
    """
    if isinstance(getattr(model, "inputs", None), list):
        return keras.Model(model.inputs, model.outputs, name=model.name)
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def save_keras(model, path):
    """Saves `model` in the .keras format at `path`, atomically.

    The optimizer state is left out: the export is for inference and for
    loading elsewhere (a third of the size); resuming uses the training
    backup instead. (`include_optimizer` only applies to legacy .h5 files, so
    an uncompiled model over the same layers is saved.)
    """
    path = Path(path)
    tmp = _temporary_sibling(path, ".keras")
    try:
        inference_model(model).save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export_saved_model(model, path):
    """Exports a TF SavedModel with two endpoints, replacing `path` at the end.

    Endpoints (inputs: float32 images of the model's input shape, any batch):
    `serve` (also `serving_default`) returns reconstructions, `encode` the
    code. Loadable with `tf.saved_model.load` without any project code.
    """
    path = Path(path)
    model = inference_model(model)
    encoder = model.get_layer(models.ENCODER)
    signature = [tf.TensorSpec((None, *encoder.input_shape[1:]), tf.float32, name="images")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        RECONSTRUCT_ENDPOINT, lambda x: model(x, training=False), input_signature=signature
    )
    archive.add_endpoint(
        ENCODE_ENDPOINT, lambda x: encoder(x, training=False), input_signature=signature
    )
    tmp, old = _temporary_sibling(path), _temporary_sibling(path, ".old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        archive.write_out(str(tmp), verbose=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # A folder cannot be renamed over another: move the old export aside,
    # put the new one in place, and delete the old one only then.
    if path.exists():
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old.exists():
            os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path
