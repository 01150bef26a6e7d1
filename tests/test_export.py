import json

import numpy as np
import pytest
import tensorflow as tf

import models
from pipeline import export


def tiny_model():
    return models.build_dense_autoencoder((4, 4, 1), 2, hidden_units=(8,))


def test_json_is_written_and_replaced_whole(tmp_path):
    path = tmp_path / "run.json"
    export.write_json({"a": 1}, path)
    export.write_json({"b": [1, 2]}, path)
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_saved_model_has_both_endpoints_and_replaces_the_old(tmp_path):
    model = tiny_model()
    path = tmp_path / "export"
    path.mkdir()
    (path / "stale.txt").write_text("from an older export")
    export.export_saved_model(model, path)
    assert not (path / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    served = tf.saved_model.load(str(path))
    x = np.random.default_rng(0).random((2, 4, 4, 1)).astype("float32")
    np.testing.assert_allclose(served.serve(x), model(x), atol=1e-6)
    np.testing.assert_allclose(served.encode(x), model.get_layer("encoder")(x), atol=1e-6)


def test_failed_export_keeps_the_previous_one(tmp_path, monkeypatch):
    model = tiny_model()
    path = tmp_path / "export"
    export.export_saved_model(model, path)
    before = sorted(p.name for p in path.rglob("*"))

    def disk_full(obj, export_dir, **kwargs):
        # Fails half-way, as a full disk would: part of the folder is written.
        (tmp_path / export_dir).mkdir()
        (tmp_path / export_dir / "saved_model.pb").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", disk_full)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(model, path)
    assert sorted(p.name for p in path.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_keras_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"old")
    export.save_keras(tiny_model(), path)
    assert path.read_bytes()[:2] == b"PK"  # a zip archive now
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_unwritable_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(export.OutputError, match=f"Received: out='{blocker}/sub'"):
        export.ensure_writable_dir(blocker / "sub")
