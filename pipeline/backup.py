"""Training backups that a kill at any moment cannot break.

A backup folder holds epoch-named weight files (`Model.save_weights`: the
model's and the optimizer's variables, as Keras' `BackupAndRestore` saves
them) and `backup.json`, which names the newest complete files, newest
first. Each weights file is written under a temporary name and renamed into
place (`os.replace`), and only then is backup.json replaced, atomically:
a kill at any moment leaves a backup.json that names complete files, and the
previous good backup stays until a newer one is complete. (Keras'
`BackupAndRestore` rewrites `latest.weights.h5` in place, so a kill while it
writes leaves a file that no rerun can open.)

backup.json also records the run's fingerprint (resolved configuration and
data) and its log folder, so that a rerun resumes only the run it belongs to,
and writes to the same TensorBoard run.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import keras
import numpy as np

from pipeline import faults
from pipeline import locks
from pipeline import objective

BACKUP_WEIGHTS_PATTERN = "backup-epoch-{epoch}.weights.h5"
BACKUP_METADATA = "backup.json"
TEMPORARY_PREFIX = ".tmp-"
# Backups kept: the newest and, should it prove unreadable, the one before.
KEPT_BACKUPS = 2
# Free space asked for before a backup is written, as a multiple of the last
# backup's size: HDF5 can crash the process, rather than fail, when the disk
# fills up in the middle of a write.
DISK_SPACE_FACTOR = 2
OPTIMIZER_COPIES = 3


class BackupError(OSError):
    """A backup cannot be written, read, or does not belong to this run."""


def _write_json_atomically(data, path):
    tmp = path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{path.name}")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def differences(recorded, current, prefix=""):
    """["key=current (backup: recorded)", ...] for every leaf that differs."""
    found = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            found.append(f"{prefix}{key}={new!r} (backup: {old!r})")
    return found


class RunBackup:
    """The backups of one training run in `directory` (see the module docstring)."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.metadata_path = self.directory / BACKUP_METADATA

    def read(self):
        """backup.json as a dict, or None when there is no backup.

        Raises:
            BackupError: backup.json exists but cannot be read.
        """
        try:
            text = self.metadata_path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._unreadable(f"{BACKUP_METADATA}: {error.strerror or error}") from error
        try:
            metadata = json.loads(text)
            metadata["backups"][0]["epoch"]
            return metadata
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise self._unreadable(f"{BACKUP_METADATA}: {_first_line(error)}") from error

    def _unreadable(self, reason):
        return BackupError(
            f"Expected a readable backup in {self.directory}. Received: {reason}. "
            f"Pass --restart to discard it and train afresh."
        )

    def check(self, fingerprint, epochs):
        """Raises BackupError unless the backup (if any) can resume this run.

        Args:
            fingerprint: the run's resolved configuration and data (a JSON dict),
                without the epoch count.
            epochs: the epochs the run asks for.
        """
        metadata = self.read()
        if metadata is None:
            return
        current = json.loads(json.dumps(fingerprint))
        changed = differences(metadata.get("fingerprint") or {}, current)
        if changed:
            raise BackupError(
                f"Expected the configuration and data of the backed-up run to resume it from "
                f"{self.directory}. Received: {', '.join(changed)}. Pass --restart to discard "
                f"the backup and train afresh, or use another --name."
            )
        done = metadata["backups"][0]["epoch"]
        if done > epochs:
            raise BackupError(
                f"Expected --epochs >= {done}, the epochs this run's backup in {self.directory} "
                f"already holds. Received: epochs={epochs}. Pass --epochs {done} or more to "
                f"continue it, or --restart to train afresh."
            )

    def save(self, model, epochs_done, **extra):
        """Backs up `model` after `epochs_done` epochs; `extra` goes into backup.json."""
        self.directory.mkdir(parents=True, exist_ok=True)
        previous = self.read() or {}
        entries = previous.get("backups", [])
        self._check_space(model, entries)
        weights = BACKUP_WEIGHTS_PATTERN.format(epoch=epochs_done)
        tmp = self.directory / f"{TEMPORARY_PREFIX}{os.getpid()}-{weights}"
        try:
            model.save_weights(tmp)
            faults.point("backup-weights-written")
            os.replace(tmp, self.directory / weights)
        finally:
            tmp.unlink(missing_ok=True)
        entries = [{"epoch": epochs_done, "weights": weights},
                   *[e for e in entries if e["weights"] != weights]][:KEPT_BACKUPS]
        # "epoch" and "weights" name the newest backup; "backups" lists the kept ones.
        _write_json_atomically({**previous, **extra, **entries[0], "backups": entries},
                               self.metadata_path)
        kept = {entry["weights"] for entry in entries}
        for stale in self.directory.glob(BACKUP_WEIGHTS_PATTERN.format(epoch="*")):
            if stale.name not in kept:
                stale.unlink(missing_ok=True)
        self.sweep()

    def sweep(self):
        """Removes temporary files whose writer has died (killed mid-backup)."""
        for tmp in self.directory.glob(f"{TEMPORARY_PREFIX}*"):
            pid = tmp.name[len(TEMPORARY_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not locks.is_running(int(pid)):
                tmp.unlink(missing_ok=True)

    def _check_space(self, model, entries):
        last = self.directory / entries[0]["weights"] if entries else None
        if last is not None and last.is_file():
            size = last.stat().st_size
        else:  # the weights, and the optimizer's two moments of each
            size = OPTIMIZER_COPIES * sum(
                int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
        needed = DISK_SPACE_FACTOR * size
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise BackupError(
                f"Expected {needed // 1024} KiB free for the next backup in {self.directory}. "
                f"Received: {free // 1024} KiB free; the last good backup is kept."
            )

    def restore(self, model):
        """Loads the newest readable backup into `model`; returns its epoch (0: none).

        An unreadable newest backup falls back to the one before it, with a
        note on stderr.

        Raises:
            BackupError: no backup named in backup.json can be loaded.
        """
        metadata = self.read()
        if metadata is None:
            return 0
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so its state loads too
        failures = []
        for entry in metadata["backups"]:
            try:
                model.load_weights(self.directory / entry["weights"])
            except Exception as error:  # h5py/Keras raise many kinds on a broken file
                failures.append(f"{entry['weights']} unreadable ({_first_line(error)})")
                continue
            if failures:
                print(f"note: {'; '.join(failures)}; resuming from {entry['weights']}",
                      file=sys.stderr)
            return entry["epoch"]
        raise self._unreadable("; ".join(failures))

    def remove(self):
        shutil.rmtree(self.directory, ignore_errors=True)


class BackupCallback(keras.callbacks.Callback):
    """Backs the model up at the end of every epoch whose logs are finite.

    An epoch that TerminateOnNaN stopped, or whose loss is not finite, is not backed up, so the last backup
    stays a good one. `extra` is recorded in backup.json (the fingerprint).
    """

    def __init__(self, backup, **extra):
        super().__init__()
        self.backup, self.extra = backup, extra

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training or not objective.loss_is_finite(logs):
            return
        self.backup.save(self.model, epoch + 1, **self.extra, logs=objective.finite_logs(logs))
