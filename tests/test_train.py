import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import train
from pipeline import config as config_lib
from pipeline import manifest
from pipeline import training
from tests.conftest import run_python, write_tiny_mnist

# Small architectures and data: every run here takes seconds.
TINY_ARCHITECTURES = {
    "dense": ["--code-size", "4", "--hidden-units", "32"],
    "conv": ["--code-size", "4", "--filters", "4,8"],
    "dictionary": ["--code-size", "48"],
}


def tiny_args(tmp_path, data, model, reg, *extra, epochs=1):
    name = f"{model}-{reg}"
    return [
        "--model", model, "--reg", reg, "--data", str(data), "--epochs", str(epochs),
        "--batch-size", "16", "--out", str(tmp_path / "out"),
        "--logdir", str(tmp_path / "logs" / name), *TINY_ARCHITECTURES[model], *extra,
    ]


COMPARE_IN_FRESH_PROCESS = """
import json, sys
import keras, numpy as np, tensorflow as tf
import models, regularizers  # register the layers and penalties; nothing else from the project
keras_path, saved_model_path, inputs = sys.argv[1:4]
x = np.load(inputs, allow_pickle=False)["x"]
model = keras.models.load_model(keras_path)  # safe mode
served = tf.saved_model.load(saved_model_path)
code_layer = model.get_layer("encoder").get_layer("code")
penalty = code_layer.activity_regularizer or getattr(code_layer, "code_penalty", None)
print(json.dumps({
    "reconstruction_diff": float(np.abs(model.predict(x, verbose=0) - served.serve(x).numpy()).max()),
    "code_diff": float(np.abs(model.get_layer("encoder").predict(x, verbose=0) - served.encode(x).numpy()).max()),
    "default_signature": sorted(served.signatures),
    "regularizer": None if penalty is None else keras.saving.serialize_keras_object(penalty),
    "output_shape": list(served.serve(x).shape),
}))
"""


@pytest.mark.parametrize("reg", ["none", "l1", "kl"])
@pytest.mark.parametrize("model", ["dense", "conv"])
def test_trains_and_exports_models_that_load_elsewhere(tmp_path, tiny_mnist, fresh_python, model, reg):
    extra = ["--code-activation", "sigmoid"] if reg == "kl" else []
    check_trains_and_exports(tmp_path, tiny_mnist, fresh_python, model, reg, extra)


@pytest.mark.parametrize(
    "model,reg,extra",
    [
        ("conv", "l1", ["--code-units", "8", "--downsampling", "maxpool"]),
        ("conv", "contractive", ["--code-units", "8"]),
        ("dictionary", "none", ["--code-activation", "topk", "--k", "5", "--aux-k", "8",
                                "--initial-k", "12", "--schedule-examples", "64"]),
        ("dictionary", "none", ["--code-activation", "batchtopk", "--k", "5", "--aux-k", "8"]),
        ("dictionary", "none", ["--code-activation", "wta", "--lifetime-sparsity", "0.1"]),
        ("dictionary", "kl", ["--code-activation", "sigmoid", "--output-activation", "sigmoid"]),
        ("dictionary", "contractive", []),
        ("dictionary", "none", ["--code-activation", "jumprelu", "--initial-threshold", "0.05",
                                "--bandwidth", "0.05", "--l0-coefficient", "1e-3"]),
        ("dictionary", "none", ["--code-activation", "gated", "--l1-coefficient", "1e-3"]),
        ("dictionary", "none", ["--code-activation", "batchtopk", "--k", "5",
                                "--prefixes", "8,24"]),
    ],
    ids=["conv-dense-code", "conv-dense-contractive", "topk", "batchtopk", "wta", "kl", "contractive",
         "jumprelu", "gated", "matryoshka"],
)
def test_every_code_kind_trains_and_exports_from_the_command_line(
        tmp_path, tiny_mnist, fresh_python, model, reg, extra):
    check_trains_and_exports(tmp_path, tiny_mnist, fresh_python, model, reg, extra)


@pytest.mark.parametrize("extra,terms", [
    (["--code-activation", "jumprelu"], ["l0_loss"]),
    (["--code-activation", "gated"], ["gate_l1_loss", "gated_aux_loss"]),
    (["--code-activation", "batchtopk", "--k", "5", "--prefixes", "8,24,48"],
     ["prefix_8_loss", "prefix_24_loss"]),
    (["--code-activation", "topk", "--k", "5", "--aux-k", "8"], ["auxk_loss"]),
], ids=["jumprelu", "gated", "matryoshka", "auxk"])
def test_every_loss_term_reaches_tensorboard_under_its_name(tmp_path, tiny_mnist, extra, terms):
    summary = train.main(tiny_args(tmp_path, tiny_mnist, "dictionary", "none", *extra))
    validation = event_tags(Path(summary["logs"]) / "validation")
    for term in ["reconstruction_loss", "sparsity_penalty", *terms]:
        assert validation.get(f"epoch_{term}") == [0], term
        assert np.isfinite(summary["final_metrics"][f"val_{term}"]), term


def check_trains_and_exports(tmp_path, tiny_mnist, fresh_python, model, reg, extra):
    summary = train.main(tiny_args(tmp_path, tiny_mnist, model, reg, *extra))
    out = tmp_path / "out"
    name = f"{model}-{reg}"
    assert summary["name"] == name
    assert (out / f"{name}/saved_model.pb").is_file()
    saved = json.loads((out / f"{name}.json").read_text())
    assert saved["config"]["model"] == model and saved["config"]["reg"] == reg
    assert saved["epochs_completed"] == 1
    assert saved["data"]["sha256"] == hashlib.sha256(tiny_mnist.read_bytes()).hexdigest()
    assert {"tensorflow", "keras", "numpy"} <= set(saved["versions"])
    assert np.isfinite(saved["final_metrics"]["val_reconstruction_loss"])
    assert not list(out.glob(".*tmp*")), "temporary export files left behind"

    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    np.savez(tmp_path / "x.npz", x=x)
    result = fresh_python(COMPARE_IN_FRESH_PROCESS, out / f"{name}.keras", out / name, tmp_path / "x.npz")
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["reconstruction_diff"] < 1e-5
    assert loaded["code_diff"] < 1e-5
    assert loaded["output_shape"] == [3, 28, 28, 1]
    assert "serving_default" in loaded["default_signature"]
    config, _ = train.resolve(train.parse_args(tiny_args(tmp_path, tiny_mnist, model, reg, *extra)))
    expected = None if reg == "none" else keras.regularizers.serialize(config_lib.build_penalty(config))
    if expected is None:
        assert loaded["regularizer"] is None
    else:
        assert loaded["regularizer"]["registered_name"] == expected["registered_name"]
        assert loaded["regularizer"]["config"] == expected["config"]


def event_tags(run_dir):
    """{tag: [steps]} of every scalar/histogram/image summary written in run_dir."""
    accumulator = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: [event.step for event in accumulator.Tensors(tag)]
            for tag in accumulator.Tags()["tensors"]}


def test_tensorboard_shows_the_sparsity_diagnostics_per_epoch(tmp_path, tiny_mnist):
    epochs = 2
    summary = train.main(tiny_args(tmp_path, tiny_mnist, "conv", "kl", "--code-activation", "sigmoid",
                                   epochs=epochs))
    logdir = Path(summary["logs"])  # this run's folder, logs/NAME/YYYYmmdd-HHMMSS
    assert logdir.parent == tmp_path / "logs" / "conv-kl"
    every_epoch = list(range(epochs))
    training = event_tags(logdir / "train")
    for tag in ("epoch_loss", "epoch_bce"):
        assert training[tag] == every_epoch, tag
    validation = event_tags(logdir / "validation")
    for tag in ("epoch_loss", "epoch_reconstruction_loss", "epoch_sparsity_penalty",
                "epoch_code_mean_activation", "epoch_code_rho", "epoch_code_l0",
                "epoch_code_dead_fraction"):
        assert validation.get(tag) == every_epoch, tag
    diagnostics = event_tags(logdir / "diagnostics")
    for tag in ("code_activations", "active_code_log10", "inputs_above_reconstructions"):
        assert diagnostics.get(tag) == every_epoch, tag
    csv_header = (logdir / "training.csv").read_text().splitlines()[0].split(",")
    assert "val_sparsity_penalty" in csv_header and "val_code_l0" in csv_header


class Interrupt(keras.callbacks.Callback):
    """Stops the process abruptly at the end of epoch `at` (after the backup)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_from_the_last_epoch(tmp_path, tiny_mnist, capsys):
    epochs = 3
    config = manifest.config_of(
        "dense-l1", epochs=epochs, batch_size=16, code_size=4, hidden_units=(32,)
    )
    kwargs = dict(data_path=tiny_mnist, out=tmp_path / "out", logdir=tmp_path / "logs")
    with pytest.raises(KeyboardInterrupt):
        training.train(config, callbacks=[Interrupt(at=1)], **kwargs)
    assert not (tmp_path / "out" / "dense-l1.keras").exists()
    capsys.readouterr()
    summary = training.train(config, **kwargs)
    # Said when the resumed run starts, not only in the closing summary.
    captured = capsys.readouterr()
    assert "note: resuming after epoch 2 of 3" in captured.err
    assert "epoch 3/3" in captured.out and "epoch 1/3" not in captured.out
    assert summary["epochs_completed"] == epochs
    assert summary["epochs_this_run"] == epochs - 2
    assert summary["resumed_from_epoch"] == 2
    # The resumed run continues the interrupted run's folder (TensorBoard and CSV).
    assert Path(summary["logs"]).parent == tmp_path / "logs"
    rows = (Path(summary["logs"]) / "training.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == list(range(epochs))
    assert not any((tmp_path / "logs" / "backup").glob("*")), "backup kept after success"


def test_dry_run_fits_one_batch_and_writes_nothing(tmp_path, tiny_mnist):
    final = train.main(tiny_args(tmp_path, tiny_mnist, "conv", "l1", "--dry-run"))
    assert np.isfinite(final["loss"])
    assert not (tmp_path / "out").exists() and not (tmp_path / "logs").exists()


def test_command_line_in_a_subprocess(tmp_path, tiny_mnist):
    result = run_python(["train.py", *tiny_args(tmp_path, tiny_mnist, "dense", "l1")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "exported" in result.stdout
    assert (tmp_path / "out" / "dense-l1.keras").is_file()
    help_text = run_python(["train.py", "--help"]).stdout
    for flag in ("--model {dense,conv,dictionary}", "--reg {none,l1,kl,contractive}", "--dry-run",
                 "--seed", "--limit", "--code-activation", "--k K", "--contractive-weight"):
        assert flag in help_text
    assert "(default: runs)" in help_text


def digest_tree(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def existing_export(tmp_path_factory):
    """An out folder holding a finished dense-l1 export, and the data it used."""
    tmp_path = tmp_path_factory.mktemp("existing")
    data = write_tiny_mnist(tmp_path / "tiny.npz")
    train.main(tiny_args(tmp_path, data, "dense", "l1"))
    return tmp_path, data


def bad_data(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    if kind == "corrupt":
        path.write_bytes(b"garbage")
        return path
    write_tiny_mnist(path)
    arrays = dict(np.load(path, allow_pickle=False))
    if kind == "misshaped":
        arrays["x_train"] = arrays["x_train"][:, :20]
    elif kind == "nan":
        arrays["x_train"] = arrays["x_train"].astype("float32") / 255
        arrays["x_train"][0, 0, 0] = np.nan
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        ({"--model": "rnn"}, "argument --model: invalid choice: 'rnn'"),
        ({"--reg": "l2"}, "argument --reg: invalid choice: 'l2'"),
        ({"--rho": "1.5", "--reg": "kl", "--code-activation": "sigmoid"},
         "Expected `rho` in (0, 1). Received: rho=1.5"),
        ({"--rho": "0.1"}, "Received: rho=0.1 (an option of reg/kl)"),
        ({"--filters": "4"}, "Received: filters=(4,) (an option of model/conv)"),
        ({"--reg": "contractive", "--code-activation": "elu"}, "Received: code_activation='elu'"),
        ({"--l1": "-1"}, "Expected `l1` in [0, inf). Received: l1=-1.0"),
        ({"--beta": "-2", "--reg": "kl", "--code-activation": "sigmoid"},
         "Expected `beta` in [0, inf). Received: beta=-2.0"),
        ({"--epochs": "0"}, "Expected `epochs` to be a positive integer. Received: epochs=0"),
        ({"--batch-size": "0"}, "Expected `batch_size` to be a positive integer. Received: batch_size=0"),
        ({"--epochs": "two"}, "argument --epochs: invalid int value: 'two'"),
        ({"--data": "missing"}, "no such file"),
        ({"--data": "corrupt"}, "(not a zip archive, as numpy.savez writes, nor an .npy"),
        ({"--data": "misshaped"}, "Expected `x_test` examples of shape (20, 28, 1)"),
        ({"--data": "nan"}, "Expected `x_train` to be finite"),
        ({"--out": "under-a-file"}, "Expected `out` to be a writable folder"),
        ({"--code-activation": "relu", "--reg": "kl"}, "Received: code_activation='relu'"),
        ({"--l1": "1e300"}, "Expected `l1` to fit in float32"),
        # Names and folders, refused before any work (issue 15, item 1).
        ({"--name": "."}, "Expected `name` to be 1 to 100 letters"),
        ({"--name": ".."}, "Received: name='..'"),
        ({"--name": "small.keras"}, "Received: name='small.keras'"),
        ({"--name": "my model"}, "Received: name='my model'"),
        ({"--name": "x" * 236}, "Expected `name`"),
        ({"--out": "logs"}, "Expected --out and --logdir apart"),
        ({"--name": "dir-in-the-way"}, "to be absent or a previous export of 'dir-in-the-way'"),
        ({"--name": "evaluated"}, "Expected --overwrite to replace"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(existing_export, tmp_path, capsys, change, message):
    root, data = existing_export
    before = digest_tree(root / "out")
    change = dict(change)
    if change.get("--data") in ("corrupt", "misshaped", "nan"):
        change["--data"] = str(bad_data(tmp_path, change["--data"]))
    elif change.get("--data") == "missing":
        change["--data"] = str(tmp_path / "missing.npz")
    if change.get("--out") == "under-a-file":
        (tmp_path / "a-file").write_text("")
        change["--out"] = str(tmp_path / "a-file" / "out")
    if change.get("--out") == "logs":  # the export NAME/ would be the log folder logs/NAME
        change["--out"] = str(root / "logs")
        change["--name"] = "dense-l1"
    if change.get("--name") in ("dir-in-the-way", "evaluated"):
        change["--out"] = str(tmp_path / "out")
        (tmp_path / "out").mkdir()
        if change["--name"] == "dir-in-the-way":  # a folder that is not a SavedModel
            (tmp_path / "out" / "dir-in-the-way").mkdir()
        else:  # an evaluated export: its eval JSON records its sha256
            keras_file = tmp_path / "out" / "evaluated.keras"
            keras_file.write_bytes((root / "out" / "dense-l1.keras").read_bytes())
            (tmp_path / "out" / "evaluated.eval.json").write_text(json.dumps(
                {"model_sha256": hashlib.sha256(keras_file.read_bytes()).hexdigest()}))
        before_target = digest_tree(tmp_path / "out")
    args = tiny_args(root, data, "dense", "l1")
    for flag, value in change.items():
        args += [flag, value]  # argparse keeps the last occurrence
    with pytest.raises(SystemExit) as info:
        train.main(args)
    # argparse prints its own message and exits 2; ours carry it in the exit.
    text = info.value.code if isinstance(info.value.code, str) else capsys.readouterr().err
    assert info.value.code != 0
    assert message in text
    assert len(text.strip().splitlines()) == 1, text
    assert digest_tree(root / "out") == before
    if change.get("--name") in ("dir-in-the-way", "evaluated"):
        assert digest_tree(tmp_path / "out") == before_target


def test_bad_input_in_a_subprocess_has_no_traceback(tmp_path):
    result = run_python(["train.py", "--rho", "1.5", "--reg", "kl", "--data", str(tmp_path / "x.npz")])
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "train.py: error: Expected `rho` in (0, 1). Received: rho=1.5")
    assert "Traceback" not in result.stderr


KILL_POLL_SECONDS = 0.2
KILL_DEADLINE_SECONDS = 240


@pytest.mark.slow
def test_killed_process_resumes_with_the_same_command(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    data = write_tiny_mnist(tmp_path / "mnist.npz", num_train=1200, num_test=50)
    epochs = 12
    args = [sys.executable, "train.py", *tiny_args(tmp_path, data, "dense", "none", epochs=epochs)]
    backup = tmp_path / "logs" / "dense-none" / "backup"
    process = subprocess.Popen(args, cwd=Path(train.__file__).parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + KILL_DEADLINE_SECONDS
        # Kill once at least two epochs are logged (so one is surely backed up).
        while time.monotonic() < deadline and process.poll() is None:
            csv = next((tmp_path / "logs" / "dense-none").glob("*/training.csv"), None)
            if csv is not None and len(csv.read_text().splitlines()) >= 3:
                break
            time.sleep(KILL_POLL_SECONDS)
        assert process.poll() is None, "finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert any(backup.iterdir())
    assert not (tmp_path / "out" / "dense-none.keras").exists()
    result = run_python(args[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "dense-none.json").read_text())
    assert saved["epochs_completed"] == epochs
    assert 0 < saved["epochs_this_run"] < epochs
    rows = [int(r.split(",")[0]) for r in csv.read_text().splitlines()[1:]]
    assert rows[-saved["epochs_this_run"]:] == list(range(epochs - saved["epochs_this_run"], epochs))


@pytest.mark.slow
def test_real_mnist_conv_l1_learns_in_one_epoch(tmp_path, mnist_path):
    # The full training set, one epoch of the zoo's conv-l1 preset.
    config = manifest.config_of("conv-l1", epochs=1)
    summary = training.train(config, data_path=mnist_path, out=tmp_path / "out", logdir=tmp_path / "logs")
    assert summary["data"]["train_images"] == 55000
    assert summary["final_metrics"]["val_reconstruction_loss"] < 0.1


# === Resume, locks, run folders, the end of a run (issue 13) ===

def interrupted_run(tmp_path, data, at, epochs=3, **overrides):
    """A dense-l1 run stopped after epoch `at` (0-based) was backed up; returns (config, kwargs)."""
    config = manifest.config_of("dense-l1", epochs=epochs, batch_size=16, code_size=4,
                                hidden_units=(32,), **overrides)
    kwargs = dict(data_path=data, out=tmp_path / "out", logdir=tmp_path / "logs")
    with pytest.raises(KeyboardInterrupt):
        training.train(config, callbacks=[Interrupt(at=at)], **kwargs)
    return config, kwargs


def test_resume_only_a_backup_of_the_same_configuration_and_data(tmp_path, tiny_mnist):
    config, kwargs = interrupted_run(tmp_path, tiny_mnist, at=1)
    backup = tmp_path / "logs" / "backup"
    before = digest_tree(backup)
    changed = manifest.config_of("dense-l1", epochs=3, batch_size=16, code_size=4,
                                 hidden_units=(32,), l1=1e-3)
    with pytest.raises(OSError, match=r"Received: config\.penalty\.l1=0\.001 \(backup: 0\.0001\)\. "
                                      r"Pass --restart"):
        training.train(changed, **kwargs)
    other_data = write_tiny_mnist(tmp_path / "other.npz", seed=1)
    with pytest.raises(OSError, match=r"data\.sha256="):
        training.train(config, **{**kwargs, "data_path": other_data})
    reached = manifest.config_of("dense-l1", epochs=1, batch_size=16, code_size=4,
                                 hidden_units=(32,))
    with pytest.raises(OSError, match="Expected --epochs >= 2, the epochs .* Received: epochs=1"):
        training.train(reached, **kwargs)
    assert digest_tree(backup) == before, "a refused run changed the backup"
    summary = training.train(changed, restart=True, **kwargs)
    assert summary["resumed_from_epoch"] is None and summary["epochs_this_run"] == 3
    assert summary["config"]["penalty"]["l1"] == 1e-3


def test_an_epoch_that_turned_nan_is_not_backed_up_and_a_failed_run_keeps_the_backup(
        tmp_path, tiny_mnist):
    interrupted_run(tmp_path, tiny_mnist, at=0)
    backup = tmp_path / "logs" / "backup"
    before = digest_tree(backup)
    config = manifest.config_of("dense-l1", epochs=3, batch_size=16, code_size=4,
                                hidden_units=(32,))

    class Poison(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):  # the loss turns NaN
            for variable in self.model.trainable_variables:
                variable.assign(np.full(variable.shape, np.nan, variable.dtype))

    with pytest.raises(training.TrainingError, match="the last good backup is kept"):
        training.train(config, callbacks=[Poison()], data_path=tiny_mnist,
                       out=tmp_path / "out", logdir=tmp_path / "logs")
    assert digest_tree(backup) == before


LOCK_HOLDER = """
import sys
from pipeline import locks
with locks.hold(sys.argv[1], what="x", hint="y"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_of_the_same_name_is_refused_while_the_first_holds_it(tmp_path, tiny_mnist):
    import signal
    import subprocess
    import sys

    args = tiny_args(tmp_path, tiny_mnist, "dense", "l1")
    lock = tmp_path / "logs" / "dense-l1" / training.RUN_LOCK
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(lock)], cwd=Path(train.__file__).parent,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as info:
            train.main(args)
        assert f"Received: process {holder.pid} holds the lock {lock}" in info.value.code
        assert "use another --name" in info.value.code
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed run leaves no lock held
        holder.wait()
    assert train.main(args)["epochs_completed"] == 1


def test_runs_keep_their_own_logs_and_end_with_a_summary(tmp_path, tiny_mnist, capsys):
    first = train.main(tiny_args(tmp_path, tiny_mnist, "dense", "l1", "--steps-per-execution", "16"))
    printed = capsys.readouterr().out
    args = tiny_args(tmp_path, tiny_mnist, "dense", "l1") + ["--out", str(tmp_path / "out2")]
    second = train.main(args)
    assert first["logs"] != second["logs"]
    for summary in (first, second):
        assert Path(summary["logs"]).parent == tmp_path / "logs" / "dense-l1"
        assert (Path(summary["logs"]) / "training.csv").is_file()
    epoch_lines = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert epoch_lines and all(len(line) < 120 and "/430" not in line for line in epoch_lines)
    assert epoch_lines[0].startswith("epoch 1/1: loss ")
    assert "validation reconstruction loss" in printed and "dead units" in printed
    assert f"python evaluate.py {tmp_path / 'out' / 'dense-l1.keras'} --data {tiny_mnist}" in printed
    assert f"tensorboard --logdir {tmp_path / 'logs' / 'dense-l1'}" in printed


def test_help_shows_defaults_and_print_config_resolves_without_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    help_text = capsys.readouterr().out
    assert "(default: None)" not in help_text
    flat = " ".join(help_text.split())
    assert "shuffling); dictionary: seed of the dictionary's initial weights (default: 1337)" in flat
    assert "share of the training set held out (default: 0.0833333)" in flat
    assert "training epochs (default: 20; dense 50)" in " ".join(help_text.split())
    assert "dense-kl     --model dense --reg kl" in help_text
    config = train.main(["--preset", "dense-kl", "--rho", "0.1", "--print-config",
                         "--out", str(tmp_path / "out")])
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "dense-kl" and printed["config"]["penalty"] == {"rho": 0.1, "beta": 1.0}
    assert config.epochs == 50 and not (tmp_path / "out").exists()


def test_help_leads_to_the_code_activations_and_they_default_to_no_penalty(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "code activation: topk, batchtopk, wta" in help_text
    config = train.main(["--model", "dictionary", "--code-activation", "topk", "--print-config"])
    printed = json.loads(capsys.readouterr().out)
    assert config.reg == "none" and printed["name"] == "dictionary-none"
    assert train.main(["--model", "dictionary", "--print-config"]).reg == "l1"
    with pytest.raises(SystemExit, match="Expected `code_activation` to be a code activation "
                                         r"\(topk, batchtopk, wta.*Received: code_activation='foo'"):
        train.main(["--code-activation", "foo", "--print-config"])


IMPORTS_AFTER = """
import sys
import {module}
try:
    {module}.parse_args(sys.argv[1:])
except SystemExit:
    pass
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


@pytest.mark.parametrize("module,args", [
    ("train", ["--help"]), ("train", ["--model", "rnn"]), ("train", ["--epochs", "two"]),
    ("evaluate", ["--help"]), ("evaluate", ["m", "--limit", "x"]),
])
def test_help_and_argument_errors_never_import_tensorflow(module, args):
    result = run_python(["-c", IMPORTS_AFTER.format(module=module), *args])
    assert result.stdout.strip().splitlines()[-1] == "False False", result.stderr[-2000:]


def test_help_prints_nothing_else_in_a_subprocess():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "train.py", "--help"], cwd=Path(train.__file__).parent,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""


SIGTERM_AT = {"SPARSE_AE_ZOO_FAULT": "export-keras-staged:SIGTERM"}


def test_sigterm_is_handled_like_ctrl_c(tmp_path, tiny_mnist):
    result = run_python(["train.py", *tiny_args(tmp_path, tiny_mnist, "dense", "l1")], env=SIGTERM_AT)
    assert result.returncode == train.INTERRUPTED_EXIT, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("train.py: interrupted (SIGTERM)")
    assert "Traceback" not in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [], "leftovers after SIGTERM"
    # The backup survives: the same command resumes and exports.
    again = run_python(["train.py", *tiny_args(tmp_path, tiny_mnist, "dense", "l1")])
    assert again.returncode == 0, again.stderr[-3000:]


@pytest.fixture
def small_tmpfs(tmp_path):
    """Mounts small tmpfs folders (root only); skipped with a reason elsewhere."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("disk-full tests need root to mount a small tmpfs")
    mounted = []

    def mount(name, size):
        path = tmp_path / name
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.parametrize("full", ["out", "logdir"])
def test_a_full_disk_is_one_line_and_leaves_nothing_broken(tmp_path, tiny_mnist, small_tmpfs, full):
    args = tiny_args(tmp_path, tiny_mnist, "dense", "l1")
    folder = small_tmpfs(full, "150k")
    flag = "--out" if full == "out" else "--logdir"
    result = run_python(["train.py", *args, flag, str(folder)])
    assert result.returncode == 1, result.stderr[-3000:]  # never a segfault (-11)
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: ") and str(folder) in last, last
    if full == "out":
        assert sorted(p.name for p in folder.iterdir()) == [], "a partial export was left"
    else:
        backup = folder / "backup"
        assert not backup.exists() or not list(backup.glob("*.weights.h5"))


# === Your own data (issue 22): vectors in .npy files, colour images in an .npz ===

SERVE_VECTORS_IN_FRESH_PROCESS = """
import json, sys
import numpy as np, tensorflow as tf
from pipeline import export  # load_model: safe mode, every class registered
keras_path, saved_model_path, inputs = sys.argv[1:4]
x = np.load(inputs, allow_pickle=False)
model = export.load_model(keras_path)
served = tf.saved_model.load(saved_model_path)
try:
    served.serve(np.full_like(x, np.nan))
    refused_nan = False
except tf.errors.InvalidArgumentError:
    refused_nan = True
print(json.dumps({
    "reconstruction_diff": float(np.abs(model.predict(x, verbose=0) - served.serve(x).numpy()).max()),
    "code_diff": float(np.abs(model.get_layer("encoder").predict(x, verbose=0)
                              - served.encode(x).numpy()).max()),
    "endpoints": sorted(name for name in ("serve", "encode", "serve_uint8", "encode_uint8")
                        if hasattr(served, name)),
    "output_shape": list(served.serve(x).shape),
    "refused_nan": refused_nan,
}))
"""


def write_vectors(folder, rows=240, dim=12, seed=0, scale=5.0):
    """Sparse-ish vectors far outside [0, 1], with labels, as .npy files."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(24, dim))
    codes = rng.random((rows, 24)) * (rng.random((rows, 24)) < 0.1)
    x = (scale * codes @ features).astype("float32")
    y = codes.argmax(axis=1) % 3
    paths = {name: folder / f"{name}.npy" for name in ("x", "y", "x_test", "y_test")}
    for name, array in (("x", x), ("y", y), ("x_test", x[:40]), ("y_test", y[:40])):
        np.save(paths[name], array)
    return paths


def own_data_args(tmp_path, paths, model, *extra):
    return ["--model", model, "--reg", "none", "--data", str(paths["x"]), "--epochs", "1",
            "--batch-size", "16", "--out", str(tmp_path / "out"),
            "--logdir", str(tmp_path / "logs"), "--name", "own", *extra]


def serve_vectors(tmp_path, fresh_python, x):
    np.save(tmp_path / "inputs.npy", x)
    out = tmp_path / "out"
    result = fresh_python(SERVE_VECTORS_IN_FRESH_PROCESS, out / "own.keras", out / "own",
                          tmp_path / "inputs.npy")
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("extra", [
    ["--code-activation", "topk", "--k", "4", "--aux-k", "8"],
    ["--code-activation", "batchtopk", "--k", "4"],
], ids=["topk", "batchtopk"])
def test_a_dictionary_trains_on_an_npy_of_vectors_and_serves_them(tmp_path, fresh_python, capsys,
                                                                  extra):
    paths = write_vectors(tmp_path)
    args = own_data_args(tmp_path, paths, "dictionary", "--code-size", "32",
                         "--labels", str(paths["y"]), "--test-data", str(paths["x_test"]),
                         "--test-labels", str(paths["y_test"]), *extra)
    summary = train.main(args)
    assert summary["data"]["source"] == "x.npy" and summary["data"]["kind"] == "vectors"
    assert summary["data"]["sha256"] == hashlib.sha256(paths["x"].read_bytes()).hexdigest()
    assert summary["data"]["labels"]["source"] == "y.npy"
    assert "val_bce" not in summary["final_metrics"]  # vectors are not pixels
    assert np.isfinite(summary["final_metrics"]["val_mse"])
    printed = capsys.readouterr().out
    assert f"--test-data {paths['x_test']}" in printed
    x = np.load(paths["x_test"])[:5]
    loaded = serve_vectors(tmp_path, fresh_python, x)
    assert loaded["reconstruction_diff"] < 1e-4 and loaded["code_diff"] < 1e-4
    assert loaded["endpoints"] == ["encode", "serve"] and loaded["refused_nan"]
    assert loaded["output_shape"] == [5, 12]
    from pipeline import evaluation

    kwargs = dict(data_path=paths["x"], test_data=paths["x_test"], out=tmp_path / "eval")
    report = evaluation.evaluate(tmp_path / "out" / "own.keras", labels=paths["y"],
                                 test_labels=paths["y_test"], **kwargs)
    assert "bce" not in report and "psnr_db" not in report and 0 <= report["probe_accuracy"] <= 1
    assert report["test_data_file"]["source"] == "x_test.npy"
    assert not list((tmp_path / "eval").glob("*reconstructions*"))
    unlabelled = evaluation.evaluate(tmp_path / "out" / "own.keras", **kwargs)
    assert unlabelled["probe"] == {"skipped": evaluation.PROBE_SKIPPED} and "probe_accuracy" not in unlabelled


def test_a_dense_model_on_unbounded_vectors_gets_a_linear_output(tmp_path, capsys):
    paths = write_vectors(tmp_path)
    summary = train.main(own_data_args(tmp_path, paths, "dense", "--code-size", "4",
                                       "--hidden-units", "16"))
    assert summary["config"]["architecture"]["output_activation"] == "linear"
    assert "output_activation='linear'" in capsys.readouterr().err


def test_a_conv_model_trains_on_an_npz_of_colour_images(tmp_path, fresh_python):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3)).astype("uint8")
    np.savez(tmp_path / "colour.npz", x_train=images, x_test=images[:16])
    args = ["--model", "conv", "--reg", "l1", "--data", str(tmp_path / "colour.npz"),
            "--epochs", "1", "--batch-size", "16", "--code-size", "4", "--filters", "4,8",
            "--out", str(tmp_path / "out"), "--logdir", str(tmp_path / "logs"), "--name", "own"]
    summary = train.main(args)
    assert summary["data"]["example_shape"] == [32, 32, 3]
    x = rng.random((3, 32, 32, 3)).astype("float32")
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "out"
    result = fresh_python(COMPARE_IN_FRESH_PROCESS, out / "own.keras", out / "own", tmp_path / "x.npz")
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["output_shape"] == [3, 32, 32, 3] and loaded["reconstruction_diff"] < 1e-5
    from pipeline import evaluation

    report = evaluation.evaluate(out / "own.keras", data_path=tmp_path / "colour.npz")
    assert report["probe"] == {"skipped": evaluation.PROBE_SKIPPED} and "bce" in report


@pytest.mark.parametrize("case,message", [
    ("conv_on_vectors", "Expected images (N, H, W) or (N, H, W, C) for --model conv. "
                        "Received: vectors x_train.shape=(240, 12)"),
    ("labels_length", "Expected `labels` to be 240 integer labels, one per example. "
                      "Received: labels.shape=(40,)"),
    ("nan", "Expected `x_train` to be finite. Received: 1 NaN/inf values in"),
])
def test_bad_own_data_is_one_line_and_writes_nothing(tmp_path, case, message):
    paths = write_vectors(tmp_path)
    extra = ["--code-size", "4"]
    model = "dictionary"
    if case == "conv_on_vectors":
        model = "conv"
    elif case == "labels_length":
        extra += ["--labels", str(paths["y_test"])]
    elif case == "nan":
        x = np.load(paths["x"])
        x[3, 2] = np.nan
        np.save(paths["x"], x)
    with pytest.raises(SystemExit) as info:
        train.main(own_data_args(tmp_path, paths, model, *extra))
    assert message in str(info.value.code) and len(str(info.value.code).splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "logs").exists()


def test_mean_norm_normalisation_is_inside_the_model_and_serving_takes_raw_data(tmp_path,
                                                                                fresh_python):
    paths = write_vectors(tmp_path, scale=1000.0)
    summary = train.main(own_data_args(tmp_path, paths, "dictionary", "--code-size", "32",
                                       "--code-activation", "topk", "--k", "4",
                                       "--normalize", "mean-norm", "--epochs", "3"))
    x = np.load(paths["x"]).astype("float64")
    expected = np.sqrt(x.shape[1] / (x ** 2).sum(axis=1).mean())
    from pipeline import export

    model = export.load_model(tmp_path / "out" / "own.keras")
    for part, layer in (("encoder", "normalize"), ("decoder", "denormalize")):
        scale = float(model.get_layer(part).get_layer(layer).scale.numpy())
        np.testing.assert_allclose(scale, expected, rtol=1e-5)
    # The loss is in normalised units: s^2 times the raw mean squared error.
    final = summary["final_metrics"]
    np.testing.assert_allclose(final["val_reconstruction_loss"], expected ** 2 * final["val_mse"],
                               rtol=1e-3)
    test = np.load(paths["x_test"])[:5]
    loaded = serve_vectors(tmp_path, fresh_python, test)
    assert loaded["reconstruction_diff"] < 1e-2  # raw units, values in the thousands
    x_hat = model.predict(test, verbose=0)
    fvu = ((test - x_hat) ** 2).sum() / ((test - test.mean(0)) ** 2).sum()
    assert fvu < 1.0  # raw in, raw out


REFUSED_BEFORE_TENSORFLOW = """
import sys
import train
try:
    train.main(sys.argv[1:])
except SystemExit as exit:
    print(exit)
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def test_a_refused_target_is_refused_before_tensorflow_is_imported(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dense-l1.keras").write_text("not a model")
    result = run_python(["-c", REFUSED_BEFORE_TENSORFLOW, "--model", "dense", "--reg", "l1",
                         "--out", str(tmp_path / "out")])
    assert "Expected " in result.stdout and "dense-l1.keras to be absent" in result.stdout
    assert "tensorflow imported: False" in result.stdout
    assert (tmp_path / "out" / "dense-l1.keras").read_text() == "not a model"


@pytest.mark.parametrize("argv", [
    [], ["--model", "dense"], ["--model", "dictionary", "--code-activation", "topk"],
    ["--model", "dictionary", "--code-activation", "relu"], ["--reg", "kl"],
    ["--preset", "dict-wta"], ["--name", "mine", "--model", "conv"],
])
def test_the_early_name_is_the_name_training_gives(argv):
    args = train.parse_args(argv)
    config, name = train.resolve(args)
    assert train.run_name(args) == (name or config.default_name)
