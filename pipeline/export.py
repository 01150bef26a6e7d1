"""Exports that a crash never leaves broken, half-replaced or mixed.

An export of NAME is a set of three artefacts in the `--out` folder:
NAME.keras, NAME/ (SavedModel) and NAME.json. `write_export_set` writes all
three into a staging folder `.NAME.tmp-PID/`, then swaps them in under the
export lock: a journal `.NAME.swap.json` is written (atomically) before the
first rename and removed after the last, so a swap interrupted at any
moment is finished by the next run of NAME or by evaluate.py
(`recover`), and a reader never has to trust a mixed set. Single files are
written beside their final path under a temporary name and renamed over it
(`os.replace`, atomic on POSIX). Temporary names carry the writer's process
id; `recover` removes those whose writer has died.
"""

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

import models
from pipeline import faults
from pipeline.artefacts import (  # noqa: F401  (export's names and target checks)
    EVAL_SUFFIX, SAVED_MODEL_ENTRIES, OutputError, artefacts, check_name, check_targets,
    is_previous_export)
from pipeline import locks
# The loader lives in a module without TensorFlow (sparse_ae_zoo imports it on any
# Keras backend); export.load_model stays the pipeline's name for it.
from pipeline.loading import load_model  # noqa: F401
from pipeline.loading import load_model_and_sha256  # noqa: F401

RECONSTRUCT_ENDPOINT = "serve"  # also "serving_default": the first endpoint
ENCODE_ENDPOINT = "encode"
UINT8_SUFFIX = "_uint8"  # serve_uint8, encode_uint8: raw 0..255 images
PIXEL_MAX = 255.0
IMAGE_RANGE_MESSAGE = (
    "Expected float32 images in [0, 1]. Received: values outside [0, 1] (or NaN); "
    "for uint8 images (0..255) call serve_uint8 / encode_uint8"
)
FINITE_MESSAGE = "Expected finite float32 inputs. Received: NaN or inf values"
# Models whose examples have this many axes, (H, W, C), take images.
IMAGE_RANK = 3
UINT8_MESSAGE = (
    "Expected uint8 images (0..255). Received: {dtype} images; for float32 images in "
    "[0, 1] call serve / encode"
)
# NumPy's usual dtypes, which a uint8 endpoint refuses rather than casts.
REFUSED_UINT8_DTYPES = (tf.float32, tf.float64, tf.int32, tf.int64)
SWAP_JOURNAL = ".{name}.swap.json"


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


# === Single files ===

def _temporary_sibling(path, suffix=""):
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def write_json(data, path):
    """Writes `data` as indented strict JSON (no NaN) to `path`, atomically."""
    path = Path(path)
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    tmp = _temporary_sibling(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def replace_atomically(path, write):
    """Calls `write(tmp)` on a temporary sibling of `path`, then renames it over `path`."""
    path = Path(path)
    tmp = _temporary_sibling(path, path.suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
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
    return replace_atomically(path, inference_model(model).save)


def _in_unit_range(x):
    """`x`, after checking that every value is in [0, 1] (NaN is not)."""
    valid = tf.reduce_all((x >= 0.0) & (x <= 1.0))
    with tf.control_dependencies([tf.debugging.Assert(valid, [IMAGE_RANGE_MESSAGE])]):
        return tf.identity(x)


def _finite(x):
    """`x`, after checking that every value is finite."""
    with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(x)),
                                                      [FINITE_MESSAGE])]):
        return tf.identity(x)


def _endpoint_functions(network, shape, images=True):
    """(float32 inputs -> output, uint8 images -> output) of `network`; the
    float inputs must be images in [0, 1] if `images`, else finite.

    A uint8 endpoint with one uint8 signature would let TensorFlow cast NumPy
    arrays of other dtypes to uint8 silently (floats in [0, 1] to 0, int 300
    to 44): it also has a trace for each of REFUSED_UINT8_DTYPES that refuses.
    """
    check = _in_unit_range if images else _finite

    def from_floats(x):
        return network(check(x), training=False)

    @tf.function(autograph=False)
    def from_uint8(x):
        if x.dtype != tf.uint8:
            message = UINT8_MESSAGE.format(dtype=x.dtype.name)
            with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
                x = tf.zeros_like(x)
        return network(tf.cast(x, tf.float32) / PIXEL_MAX, training=False)

    if images:
        for dtype in (tf.uint8, *REFUSED_UINT8_DTYPES):  # uint8 first: the signature's
            from_uint8.get_concrete_function(tf.TensorSpec(shape, dtype, name="images"))
    return from_floats, from_uint8


def export_saved_model(model, path):
    """Exports a TF SavedModel whose endpoints follow the model's input, replacing
    `path` at the end.

    `serve` (also `serving_default`) returns reconstructions and `encode` the
    code, from float32 examples of the model's input shape (any batch). A
    model of images (H, W, C) takes them in [0, 1] and has two more
    endpoints, `serve_uint8` and `encode_uint8`, for uint8 images (0..255,
    scaled by 1/255; other dtypes are refused, not cast); a model of vectors
    (D,) takes any finite values (its own normalisation, if any, is inside
    it). Other values are refused (InvalidArgumentError). Loadable with
    `tf.saved_model.load` without any project code.
    """
    path = Path(path)
    model = inference_model(model)
    encoder = model.get_layer(models.ENCODER)
    example_shape = tuple(encoder.input_shape[1:])
    images = len(example_shape) == IMAGE_RANK
    shape = (None, *example_shape)
    floats = [tf.TensorSpec(shape, tf.float32, name="images" if images else "inputs")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    for endpoint, network in ((RECONSTRUCT_ENDPOINT, model), (ENCODE_ENDPOINT, encoder)):
        floats_fn, raw_fn = _endpoint_functions(network, shape, images)
        archive.add_endpoint(endpoint, floats_fn, input_signature=floats)
        if images:
            archive.add_endpoint(endpoint + UINT8_SUFFIX, raw_fn)
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


# === Export sets ===

def export_lock(out, name, *, wait=True):
    """The lock under which an export set of `name` in `out` is swapped or repaired."""
    return locks.hold(Path(out) / f".{name}.lock", what=f"the export {name!r} in {out}",
                      hint="wait for it to finish", wait=wait)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _staging_name(name, pid):
    return f".{name}.tmp-{pid}"


def _read_journal(out, name):
    """(staging, old) folders of the swap journal of `name` in `out`, after checking them.

    A journal names only this tool's own temporaries, `.NAME.tmp-PID` and
    `.NAME.tmp-PID.old` in `out` (plain names, no separators, no `..`, no
    symlinks): a journal that came with a downloaded folder must not make a
    reader move or delete anything else.

    Raises:
        OutputError: anything else in the journal (one line; nothing touched).
    """
    path = out / SWAP_JOURNAL.format(name=name)
    try:
        journal = json.loads(path.read_text())
    except (ValueError, RecursionError, OSError) as error:
        journal = f"unreadable ({type(error).__name__})"
    staging = journal.get("staging") if isinstance(journal, dict) else None
    match = re.fullmatch(rf"\.{re.escape(name)}\.tmp-(\d{{1,10}})", staging) \
        if isinstance(staging, str) else None
    expected = {"staging": staging, "old": f"{staging}.old"} if match else None
    folders = (out / staging, out / f"{staging}.old") if match else ()
    if journal != expected:
        received = f"{journal!r:.200}"
    elif any(f.is_symlink() or (f.exists() and not f.is_dir()) for f in folders):
        received = f"{journal!r}, with a symlink or a file at one of those names"
    else:
        return folders
    raise OutputError(
        f"Expected {path} to be this tool's swap journal, naming only its own folders "
        f"{_staging_name(name, 'PID')} and {_staging_name(name, 'PID')}.old in {out}. "
        f"Received: {received}; nothing was changed (delete the journal if you did not "
        f"expect it)"
    )


def _finish_swap(out, name):
    """Moves each staged artefact into place (the old one aside first); idempotent."""
    staging, old = _read_journal(out, name)
    old.mkdir(exist_ok=True)
    for artefact in artefacts(name):
        new, current = staging / artefact, out / artefact
        if not (new.exists() or new.is_symlink()):
            continue  # already in place
        if current.exists() or current.is_symlink():
            _remove(old / artefact)
            os.replace(current, old / artefact)
        faults.point("export-swapping")
        os.replace(new, current)
    (out / SWAP_JOURNAL.format(name=name)).unlink()
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def write_export_set(model, summary, out, name):
    """Writes NAME.keras, NAME/ and NAME.json to `out` as one set; returns their paths."""
    out = Path(out)
    staging = out / _staging_name(name, os.getpid())
    journal_path = out / SWAP_JOURNAL.format(name=name)
    try:
        _remove(staging)
        staging.mkdir()
        save_keras(model, staging / f"{name}.keras")
        faults.point("export-keras-staged")
        export_saved_model(model, staging / name)
        write_json(summary, staging / f"{name}.json")
        with export_lock(out, name):
            journal = {"staging": staging.name, "old": f"{staging.name}.old"}
            write_json(journal, journal_path)
            _finish_swap(out, name)
    finally:
        if not journal_path.exists():  # a started swap is finished by `recover`, never undone
            shutil.rmtree(staging, ignore_errors=True)
    return {"keras": str(out / f"{name}.keras"), "saved_model": str(out / name),
            "json": str(out / f"{name}.json")}


def _stale_temporaries(out, name):
    pattern = re.compile(rf"\.{re.escape(name)}(\.[\w.]+)?\.tmp-(\d+)(\..*)?")
    for path in Path(out).glob(f".{name}.*"):
        match = pattern.fullmatch(path.name)
        if match and int(match.group(2)) != os.getpid() and not locks.is_running(int(match.group(2))):
            yield path


def recover(out, name):
    """Finishes an interrupted swap of `name` in `out`, and removes stale temporaries.

    Returns a list of notes on what was repaired (empty when nothing was).
    """
    out = Path(out)
    journal_path = out / SWAP_JOURNAL.format(name=name)
    if not out.is_dir() or not (journal_path.exists() or any(_stale_temporaries(out, name))):
        return []
    notes = []
    with export_lock(out, name):
        if journal_path.exists():
            _finish_swap(out, name)
            notes.append(f"finished the interrupted replacement of the export {name!r} in {out}")
        for stale in _stale_temporaries(out, name):
            _remove(stale)
            notes.append(f"removed {stale.name}, left by a killed run")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return notes


# === Command line: a SavedModel from a .keras file ===

def main(argv=None):
    """`python -m pipeline.export MODEL.keras`: writes the SavedModel folder beside it.

    The wide dictionaries of the zoo ship only their .keras file (the binary
    budget); this regenerates saved_models/NAME/ from saved_models/NAME.keras.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("model", nargs="+", help="one or more .keras files")
    args = parser.parse_args(argv)
    written = []
    try:
        from pipeline import flags

        flags.require_tensorflow_backend("pipeline.export")
        for path in map(Path, args.model):
            model, target = load_model(path), path.with_suffix("")
            with export_lock(target.parent, target.name):  # as a train.py export swap
                if not is_previous_export(target):  # a user's folder or file: keep it
                    raise OutputError(
                        f"Expected {target} to be absent or a SavedModel folder this tool "
                        f"wrote (only {', '.join(sorted(SAVED_MODEL_ENTRIES))}). Received: "
                        f"something else there; nothing was changed (move it away first)")
                written.append(export_saved_model(model, target))
            print(f"exported {written[-1]}")
    except (ValueError, OSError) as error:
        sys.exit(f"pipeline.export: error: {error}")
    return written


if __name__ == "__main__":
    main()
