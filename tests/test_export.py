import hashlib
import json
import os
import shutil

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


# === Export sets: written whole, swapped with a journal, repaired (issue 15, items 3, 4) ===

WRITE_SET = """
import sys
import keras
import models
from pipeline import export
keras.utils.set_random_seed(int(sys.argv[2]))
model = models.build_dense_autoencoder((4, 4, 1), 2, hidden_units=(8,))
export.write_export_set(model, {"version": int(sys.argv[2])}, sys.argv[1], "m")
"""


def write_set_in_a_process(out, version, fault=None):
    from tests.conftest import run_python

    env = {"SPARSE_AE_ZOO_FAULT": fault} if fault else {}
    return run_python(["-c", WRITE_SET, str(out), str(version)], env=env)


def set_state(out):
    return {
        "json": json.loads((out / "m.json").read_text())["version"],
        "keras": hashlib.sha256((out / "m.keras").read_bytes()).hexdigest(),
        "saved_model": hashlib.sha256((out / "m" / "saved_model.pb").read_bytes()).hexdigest(),
    }


def visible(out):
    return sorted(p.name for p in out.iterdir() if p.name != ".m.lock")


@pytest.mark.parametrize("fault,expected_version", [
    ("export-keras-staged:SIGKILL", 1),  # killed while staging: the old set stays
    ("export-swapping:SIGKILL", 2),      # killed mid-swap: the next reader finishes it
])
def test_a_killed_export_leaves_a_whole_set_after_recovery(tmp_path, fault, expected_version):
    out = tmp_path / "out"
    out.mkdir()
    assert write_set_in_a_process(out, 1).returncode == 0
    old = set_state(out)
    assert write_set_in_a_process(out, 2, fault).returncode == -9
    assert visible(out) != ["m", "m.json", "m.keras"], "nothing left to repair?"
    notes = export.recover(out, "m")
    assert notes
    assert visible(out) == ["m", "m.json", "m.keras"]
    state = set_state(out)
    assert state["json"] == expected_version
    if expected_version == 1:
        assert state == old
    else:
        assert state["keras"] != old["keras"] and state["saved_model"] != old["saved_model"]
    assert export.recover(out, "m") == []


def test_stale_temporaries_of_a_name_are_swept_and_others_kept(tmp_path):
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    for leftover in (f".m.keras.tmp-{dead}.keras", f".m.tmp-{dead}", f".m.tmp-{dead}.old",
                     f".m.json.tmp-{dead}"):
        (tmp_path / leftover).mkdir() if "keras" not in leftover and "json" not in leftover \
            else (tmp_path / leftover).write_text("")
    keep = [f".m-2.tmp-{dead}", f".m.tmp-{os.getpid()}", "m.keras"]
    for name in keep:
        (tmp_path / name).write_text("")
    export.recover(tmp_path, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + [".m.lock"])


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("journal", [
    lambda victims: {"staging": str(victims / "a"), "old": str(victims / "b")},  # absolute
    lambda victims: {"staging": "../victims/a", "old": "../victims/b"},           # escapes
    lambda victims: {"staging": ".m.tmp-1/../../victims/a", "old": ".m.tmp-1.old"},
    lambda victims: {"staging": ".m.tmp-1", "old": "../victims/b"},             # old escapes
    lambda victims: {"staging": ".m.tmp-1", "old": ".m.tmp-1.old", "extra": 1},
    lambda victims: {"staging": ".other.tmp-1", "old": ".other.tmp-1.old"},     # not our name
    lambda victims: ["../victims/a"],
    lambda victims: 7,
    lambda victims: "not json {",
    lambda victims: {"staging": ".m.tmp-1", "old": ".m.tmp-1.old"},  # but symlinks (below)
], ids=["absolute", "relative", "dotdot", "old-escapes", "extra-key", "other-name", "list",
        "int", "garbage", "symlinks"])
def test_a_hostile_swap_journal_is_refused_and_touches_nothing(tmp_path, journal):
    # A journal shipped in a downloaded folder must not make a reader delete
    # or move anything: only this tool's own .m.tmp-PID folders, by name.
    victims, out = tmp_path / "victims", tmp_path / "out"
    for folder in ("a", "b", "c"):
        (victims / folder).mkdir(parents=True)
        (victims / folder / "m.keras").write_text("precious")
    out.mkdir()
    (out / "m.keras").write_text("the user's model")
    content = journal(victims)
    (out / ".m.swap.json").write_text(content if isinstance(content, str) else json.dumps(content))
    if isinstance(content, dict) and content.get("staging") == ".m.tmp-1" and "extra" not in content:
        (out / ".m.tmp-1").symlink_to(victims / "a")
        (out / ".m.tmp-1.old").symlink_to(victims / "b")
    before = _tree(tmp_path)
    with pytest.raises(export.OutputError, match=r"swap journal.*nothing was changed") as error:
        export.recover(out, "m")
    assert "\n" not in str(error.value)
    assert [p for p in _tree(tmp_path) if p != "out/.m.lock"] == before
    assert (victims / "a" / "m.keras").read_text() == "precious"


def test_evaluate_refuses_a_hostile_journal_in_one_line(tmp_path):
    import evaluate as evaluate_cli

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("precious")
    out = tmp_path / "download"
    out.mkdir()
    tiny_model().save(out / "m.keras")
    (out / ".m.swap.json").write_text(json.dumps({"staging": str(victim), "old": str(victim)}))
    with pytest.raises(SystemExit, match=r"^evaluate.py: error: Expected .*swap journal"):
        evaluate_cli.main([str(out / "m.keras"), "--no-probe"])
    assert (victim / "data.txt").read_text() == "precious"


def test_failed_json_write_leaves_no_temporary(tmp_path):
    with pytest.raises(ValueError):
        export.write_json({"bce": float("nan")}, tmp_path / "r.json")  # strict JSON only
    assert list(tmp_path.iterdir()) == []


# === The SavedModel's input contract (issue 13, item 5) ===

def test_saved_model_refuses_out_of_range_floats_and_scales_uint8(tmp_path):
    model = tiny_model()
    export.export_saved_model(model, tmp_path / "export")
    served = tf.saved_model.load(str(tmp_path / "export"))
    raw = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 1)).astype("uint8")
    scaled = raw.astype("float32") / 255
    np.testing.assert_allclose(served.serve_uint8(raw), served.serve(scaled), atol=1e-6)
    np.testing.assert_allclose(served.encode_uint8(raw), served.encode(scaled), atol=1e-6)
    for bad in (raw.astype("float32"), np.full((1, 4, 4, 1), np.nan, "float32")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected float32 images in \[0, 1\]"):
            served.serve(bad)
    assert "serving_default" in served.signatures


@pytest.mark.parametrize("images", [
    np.full((1, 4, 4, 1), 0.5, "float32"),  # float images in [0, 1]: all 0 once cast
    np.full((1, 4, 4, 1), 0.5, "float64"),
    np.full((1, 4, 4, 1), 300, "int32"),    # 44 once cast
    np.full((1, 4, 4, 1), 3, "int64"),
    np.full((1, 4, 4, 1), 3, "int16"),
    np.full((1, 4, 4, 1), 3, "float16"),
    tf.fill((1, 4, 4, 1), 300),
], ids=["float32", "float64", "int32-300", "int64", "int16", "float16", "tf-int32"])
def test_uint8_endpoints_refuse_other_dtypes(tmp_path, images):
    export.export_saved_model(tiny_model(), tmp_path / "export")
    served = tf.saved_model.load(str(tmp_path / "export"))
    for endpoint in (served.serve_uint8, served.encode_uint8):
        with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError),
                           match=r"Expected uint8 images|matching concrete function|Can not cast"):
            endpoint(images)
    raw = np.full((1, 4, 4, 1), 3, "uint8")  # still served, from NumPy or a tensor
    np.testing.assert_allclose(served.serve_uint8(raw), served.serve_uint8(tf.constant(raw)))
    (spec,) = served.signatures["serve_uint8"].structured_input_signature[1].values()
    assert spec.dtype == tf.uint8


# === One call that registers everything and loads (issue 13, item 10) ===

LOAD_WITHOUT_IMPORTS = """
import sys
from pipeline import export
model = export.load_model(sys.argv[1])
print(type(model.get_layer("encoder").get_layer("code").activity_regularizer).__name__)
"""


def test_load_model_needs_no_other_import(tmp_path, fresh_python):
    from regularizers import KLSparsity

    model = models.build_dense_autoencoder((4, 4, 1), 2, hidden_units=(8,), code_activation="sigmoid",
                                           activity_regularizer=KLSparsity(rho=0.1))
    model.save(tmp_path / "m.keras")
    result = fresh_python(LOAD_WITHOUT_IMPORTS, tmp_path / "m.keras")
    assert result.stdout.strip().splitlines()[-1] == "KLSparsity"


def test_command_line_writes_the_saved_model_of_a_keras_file(tmp_path):
    import keras
    import numpy as np
    import tensorflow as tf

    import models

    keras.utils.set_random_seed(0)
    model = models.build_dictionary_autoencoder((4, 4, 1), 12, code_activation=models.TopK(3))
    export.save_keras(model, tmp_path / "d.keras")
    (written,) = export.main([str(tmp_path / "d.keras")])
    assert written == tmp_path / "d"
    x = np.random.default_rng(0).random((3, 4, 4, 1)).astype("float32")
    served = tf.saved_model.load(str(written))
    np.testing.assert_allclose(served.encode(x), model.get_layer("encoder")(x), atol=1e-6)
    with pytest.raises(SystemExit, match="pipeline.export: error: Expected `model`"):
        export.main([str(tmp_path / "missing.keras")])


@pytest.mark.parametrize("occupant", ["folder", "file", "symlink", "saved-model-and-notes"])
def test_command_line_replaces_only_a_previous_export(tmp_path, occupant):
    # `python -m pipeline.export X.keras` writes X/: whatever else is at X stays.
    export.save_keras(tiny_model(), tmp_path / "X.keras")
    target = tmp_path / "X"
    if occupant == "file":
        target.write_text("a user's report")
    elif occupant == "symlink":
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("a user's notes")
        if occupant == "saved-model-and-notes":
            (target / "saved_model.pb").write_bytes(b"")
    before = _tree(tmp_path)
    with pytest.raises(SystemExit, match=r"^pipeline.export: error: Expected .*X to be absent "
                                         r"or a SavedModel folder this tool wrote"):
        export.main([str(tmp_path / "X.keras")])
    assert [p for p in _tree(tmp_path) if p != ".X.lock"] == before
    if occupant == "folder":  # once it is moved away, a previous export is replaced
        shutil.rmtree(target)
        export.main([str(tmp_path / "X.keras")])
        (written,) = export.main([str(tmp_path / "X.keras")])
        assert tf.saved_model.load(str(written)).serve is not None


def test_a_deeply_nested_config_is_one_line(tmp_path):
    # A config.json nested 100k levels deep gave a RecursionError traceback.
    import zipfile

    path = tmp_path / "deep.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "[" * 100_000 + "]" * 100_000)
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(ValueError, match=r"Expected `model` to be a .keras file of this project"):
        export.load_model(path)
