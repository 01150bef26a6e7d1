"""Export names, the files of an export set and the checks on them, without TensorFlow.

train.py checks its export target with `check_targets` before it imports
TensorFlow, so a refused target costs a second, not the minute of an import
and a model build; `pipeline.export` writes the files these checks guard.
"""

import hashlib
import json
import re
import zipfile
from pathlib import Path

# Export names: plain file names that are also valid Keras model names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
MAX_NAME_LENGTH = 100  # leaves room for suffixes and temporary names in 255 bytes
EVAL_SUFFIX = ".eval.json"
# What a SavedModel folder written by `export_saved_model` holds, and nothing else.
SAVED_MODEL_ENTRIES = {"saved_model.pb", "fingerprint.pb", "variables", "assets"}
HASH_CHUNK_BYTES = 1 << 20


class OutputError(OSError):
    """An output folder cannot be created or written, or holds something else."""


def file_sha256(path):
    """Hex sha256 of a file's bytes (recorded for models and data files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_name(name):
    """Raises ValueError unless `name` is a plain file name usable for every export."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"Expected `name` to be 1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_', "
            f"starting with a letter or digit (it names the export files and the Keras "
            f"model). Received: name={name!r}"
        )
    return name


def artefacts(name):
    """The file names of an export set: NAME.keras, NAME (SavedModel folder), NAME.json."""
    return [f"{name}.keras", name, f"{name}.json"]


def is_previous_export(path):
    """True if nothing is at `path` or what is there is one file of an export set
    (a zip .keras, a .json, a folder with only a SavedModel's entries)."""
    if not path.exists() and not path.is_symlink():
        return True
    if path.name.endswith(".keras"):
        return path.is_file() and not path.is_symlink() and zipfile.is_zipfile(path)
    if path.name.endswith(".json"):
        return path.is_file() and not path.is_symlink()
    return (path.is_dir() and not path.is_symlink() and (path / "saved_model.pb").is_file()
            and {entry.name for entry in path.iterdir()} <= SAVED_MODEL_ENTRIES)


def _overlaps(a, b):
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


def check_targets(out, name, logdir=None, *, overwrite=False):
    """Raises unless the export of `name` in `out` can only replace its own previous export.

    Checks, without writing: no export path overlaps `logdir`; whatever
    already sits at an export path is a previous export of the same name;
    an evaluated export (its NAME.eval.json records its sha256: a shipped
    zoo model) is replaced only with `overwrite`.
    """
    out = Path(out)
    for artefact in artefacts(name):
        path = out / artefact
        if logdir is not None and _overlaps(path, logdir):
            raise OutputError(
                f"Expected --out and --logdir apart (an export must not replace logs). "
                f"Received: out='{out}', logdir='{logdir}' with the export {path}"
            )
        if not is_previous_export(path):
            raise OutputError(
                f"Expected {path} to be absent or a previous export of {name!r}. Received: "
                f"something else there; choose another --name or --out"
            )
    keras_path, report = out / f"{name}.keras", out / f"{name}{EVAL_SUFFIX}"
    if not overwrite and keras_path.is_file() and report.is_file():
        try:
            recorded = json.loads(report.read_text()).get("model_sha256")
        except (ValueError, OSError, AttributeError):
            recorded = None
        if recorded == file_sha256(keras_path):
            raise OutputError(
                f"Expected --overwrite to replace {keras_path}, an evaluated export "
                f"({report.name} records its sha256). Received: no --overwrite; pass "
                f"--overwrite, or another --out or --name"
            )
