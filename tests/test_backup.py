"""Backups: atomic, the previous one kept, unreadable ones reported (issue 15, item 2)."""

import json

import pytest

from pipeline import backup as backup_lib
from pipeline import faults
from pipeline import manifest
from pipeline import training
from tests.test_train import Interrupt


def tiny_config(epochs=3):
    return manifest.config_of("dense-l1", epochs=epochs, batch_size=16, code_size=4,
                              hidden_units=(32,))


def run(tmp_path, data, **kwargs):
    return training.train(tiny_config(), data_path=data, out=tmp_path / "out",
                          logdir=tmp_path / "logs", **kwargs)


def test_a_kill_while_a_backup_is_written_keeps_the_previous_one(tmp_path, tiny_mnist, monkeypatch):
    calls = []

    def killed_on_second_backup(name):
        if name == "backup-weights-written":
            calls.append(name)
            if len(calls) == 2:  # epoch 2's weights are written under their temporary name
                raise KeyboardInterrupt

    monkeypatch.setattr(faults, "point", killed_on_second_backup)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_mnist)
    backup = tmp_path / "logs" / "backup"
    assert json.loads((backup / "backup.json").read_text())["epoch"] == 1
    monkeypatch.undo()
    summary = run(tmp_path, tiny_mnist)
    assert summary["resumed_from_epoch"] == 1 and summary["epochs_completed"] == 3


def test_an_unreadable_backup_falls_back_to_the_previous_one_then_says_so(tmp_path, tiny_mnist, capsys):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_mnist, callbacks=[Interrupt(at=1)])
    backup = tmp_path / "logs" / "backup"
    names = sorted(p.name for p in backup.glob("*.weights.h5"))
    assert names == ["backup-epoch-1.weights.h5", "backup-epoch-2.weights.h5"]
    (backup / "backup-epoch-2.weights.h5").write_bytes(b"")  # as a kill mid-write by Keras left it
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_mnist, callbacks=[Interrupt(at=1)])
    assert "backup-epoch-2.weights.h5 unreadable" in capsys.readouterr().err
    for path in backup.glob("*.weights.h5"):
        path.write_bytes(b"\0" * 100)
    with pytest.raises(backup_lib.BackupError) as info:
        run(tmp_path, tiny_mnist)
    message = str(info.value)
    assert message.startswith(f"Expected a readable backup in {backup}. Received: ")
    assert "--restart" in message and len(message.splitlines()) == 1
    assert run(tmp_path, tiny_mnist, restart=True)["epochs_this_run"] == 3


def test_a_run_killed_after_its_last_epoch_exports_its_backup(tmp_path, tiny_mnist):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_mnist, callbacks=[Interrupt(at=2)])
    summary = run(tmp_path, tiny_mnist)
    assert summary["epochs_this_run"] == 0 and summary["resumed_from_epoch"] == 3
    assert summary["final_metrics"]["val_reconstruction_loss"] > 0
    assert (tmp_path / "out" / "dense-l1.keras").is_file()
    assert not (tmp_path / "logs" / "backup").exists()
