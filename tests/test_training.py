"""pipeline/training.py, and the seats: a new family or penalty needs no other file."""

import math
import os

import keras
import numpy as np
import pytest
from keras import ops

import models
import regularizers
import train
from models import _assembly
from pipeline import training


def build_linear_autoencoder(input_shape, code_size, *, activity_regularizer=None, name="linear"):
    """A family without code_activation or noise arguments.

    Args:
        input_shape: shape of one example.
        code_size: code units.
        activity_regularizer: penalty on the code.
        name: model name.
    """
    regularizer, code_penalty = _assembly.resolve_penalty(
        activity_regularizer, "linear", accepts_code_penalty=True)
    return _assembly.assemble_autoencoder(
        input_shape,
        [keras.layers.Flatten(), models.layers.CodeDense(
            code_size, "linear", code_penalty, activity_regularizer=regularizer, name="code")],
        [keras.layers.Dense(math.prod(input_shape)), keras.layers.Reshape(input_shape)],
        noise_stddev=0.0, name=name)


class SquaredSparsity(regularizers.ActivityPenalty):
    """loss = squared_weight * mean_i sum_j h_ij^2.

    Arguments:
        squared_weight: the weight.
    """

    def __init__(self, squared_weight=1e-4):
        self.squared_weight = float(squared_weight)

    def penalty(self, x):
        return self.squared_weight * ops.sum(ops.square(x)) / ops.cast(ops.shape(x)[0], x.dtype)

    def get_config(self):
        return {"squared_weight": self.squared_weight}


def test_a_new_family_and_penalty_work_from_the_command_line(monkeypatch, tiny_mnist, tmp_path):
    from pipeline import flags

    # A new module changes the sources, so the cached flag table gives way to
    # the registries; registered in-process here, the test says so itself.
    monkeypatch.setattr(flags, "table", flags.build)
    monkeypatch.setitem(models.FAMILIES, "linear",
                        models.Family(build_linear_autoencoder, "linear", dict(code_size=3)))
    monkeypatch.setitem(regularizers.PENALTIES, "squared", SquaredSparsity)
    args = ["--model", "linear", "--reg", "squared", "--squared-weight", "0.5",
            "--data", str(tiny_mnist), "--batch-size", "16", "--dry-run"]
    config, _ = train.resolve(train.parse_args(args))
    assert config.architecture == {"code_size": 3} and config.penalty == {"squared_weight": 0.5}
    model = training.build_model(config)
    assert model.get_layer("encoder").get_layer("code").activity_regularizer.squared_weight == 0.5
    final = train.main(args)
    assert np.isfinite(final["loss"])
    with pytest.raises(SystemExit, match=r"Received: filters=\(3,\) \(an option of model/conv\)"):
        train.main([*args, "--filters", "3"])


def test_peak_memory_is_this_process_not_a_parent():
    import subprocess
    import sys

    # A parent that holds 2 GB starts a child (TensorFlow alone is ~0.6 GB there):
    # the child reports its own peak, not the parent's.
    code = ("import numpy as np, subprocess, sys; a = np.ones(2048 * 2**20 // 8); "
            "print(subprocess.run([sys.executable, '-c', 'from pipeline import training; "
            "print(training.peak_memory_mb())'], capture_output=True, text=True).stdout)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=training.Path(training.__file__).parents[1])
    assert 0 < float(result.stdout.split()[-1]) < 1500, result.stdout + result.stderr


def test_each_epoch_uses_one_data_iterator(monkeypatch, tiny_mnist, tmp_path):
    """Keras makes the next epoch's tf.data iterator at the end of an epoch; without
    explicit steps it threw that one away and made another, an idle wait (README, Speed)."""
    import tensorflow as tf

    from pipeline import manifest

    created = []
    original = tf.data.Dataset.__iter__

    def counting_iter(self):
        created.append(int(self.cardinality()))
        return original(self)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", counting_iter)
    config = manifest.config_of("dense-l1", epochs=3, batch_size=16, hidden_units=(8,),
                                code_size=4, jit_compile=False)
    training.train(config, data_path=tiny_mnist, out=tmp_path / "out", logdir=tmp_path / "logs")
    train_batches = max(created)  # 88 training images against 8 for validation
    assert train_batches == 6
    # One per epoch, made at the end of the one before, and a spare made at the end.
    assert created.count(train_batches) == config.epochs + 1, created


def test_a_limit_too_small_to_validate_on_is_refused_up_front(tiny_mnist, tmp_path):
    # --limit 5 holds out one validation image: every epoch trained, then
    # thrown away. Refused before any work, with the least limit that works.
    from pipeline import data

    assert data.minimum_images(1 / 12) == 18  # round(18 / 12) = 2 images held out
    args = ["--model", "dense", "--code-size", "4", "--hidden-units", "8", "--limit", "5",
            "--data", str(tiny_mnist), "--out", str(tmp_path / "out"),
            "--logdir", str(tmp_path / "logs")]
    with pytest.raises(SystemExit, match=r"^train.py: error: Expected `limit` to be an integer "
                                         r">= 18 .*Received: limit=5$"):
        train.main(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_mnist.npz"]


def test_a_non_finite_diagnostic_is_not_a_non_finite_loss(tiny_mnist, tmp_path):
    # val_fvu of a one-image diagnostic sample is inf (no variance): a
    # diagnostic, which neither stops nor discards a run whose loss is finite.
    from pipeline import manifest

    config = manifest.config_of("dense-l1", epochs=1, batch_size=16, hidden_units=(8,),
                                code_size=4, jit_compile=False, diagnostic_sample_size=1)
    summary = training.train(config, data_path=tiny_mnist, out=tmp_path / "out",
                             logdir=tmp_path / "logs")
    assert summary["final_metrics"]["val_fvu"] is None
    assert math.isfinite(summary["final_metrics"]["val_loss"])
    assert (tmp_path / "out" / "dense-l1.keras").is_file()


def test_a_code_too_wide_for_memory_is_refused_before_building(tiny_mnist, tmp_path):
    # --code-size 10000000 allocated tens of GB at build, then a traceback.
    args = ["--model", "dictionary", "--code-size", "10000000", "--data", str(tiny_mnist),
            "--out", str(tmp_path / "out"), "--logdir", str(tmp_path / "logs")]
    with pytest.raises(SystemExit, match=r"^train.py: error: Expected `code_size` small enough "
                                         r"to train in this machine's memory. Received: "
                                         r"code_size=10000000 \(about 15,700,001,568 "
                                         r"parameters"):  # 2 * 784 * N + 2 N + 2 * 784
        train.main(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_mnist.npz"]


def test_random_shift_augments_the_training_batches_only(monkeypatch, tiny_mnist, tmp_path):
    from pipeline import data, manifest

    calls = []
    original = data.autoencoder_dataset

    def spy(x, batch_size, **kwargs):
        calls.append(kwargs.get("random_shift", 0))
        return original(x, batch_size, **kwargs)

    monkeypatch.setattr(data, "autoencoder_dataset", spy)
    config = manifest.config_of("dense-l1", epochs=1, batch_size=16, hidden_units=(8,),
                                code_size=4, jit_compile=False, random_shift=2)
    summary = training.train(config, data_path=tiny_mnist, out=tmp_path / "out",
                             logdir=tmp_path / "logs")
    assert calls == [2, 0]  # training, then validation
    assert summary["config"]["random_shift"] == 2


@pytest.mark.parametrize("shape,shift", [((40, 16), 1), ((40, 5, 5), 5)])
def test_a_random_shift_the_data_cannot_take_is_one_line(tmp_path, shape, shift):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random(shape).astype("float32"))
    model = "dictionary" if len(shape) == 2 else "dense"
    args = ["--model", model, "--reg", "l1", "--code-size", "4", "--random-shift", str(shift),
            "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "out"),
            "--logdir", str(tmp_path / "logs")]
    with pytest.raises(SystemExit, match=r"^train.py: error: Expected `random_shift` on images, "
                                         rf"below their height and width. Received: "
                                         rf"random_shift={shift} for "):
        train.main(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_the_config_sets_adams_epsilon_and_gradient_clipping():
    from pipeline import manifest

    default = training.build_model(manifest.config_of("dense-l1", hidden_units=(8,))).optimizer
    assert default.epsilon == 1e-7 and default.global_clipnorm is None
    config = manifest.config_of("dense-l1", hidden_units=(8,), adam_epsilon=1e-9,
                                global_clipnorm=0.5)
    optimizer = training.build_model(config).optimizer
    assert optimizer.epsilon == 1e-9 and optimizer.global_clipnorm == 0.5


@pytest.mark.parametrize("preset,extra", [("dense-l1", {"hidden_units": (8,)}),
                                          ("conv-l1", {"filters": (4,)}),
                                          ("dict-topk", {})])
def test_parameter_estimate_matches_the_built_model(preset, extra):
    from pipeline import manifest

    config = manifest.config_of(preset, code_size=700, **extra)
    assert training.estimate_parameters(config) == training.build_model(config).count_params()


def test_tensorflow_errors_at_build_are_one_line(tiny_mnist, tmp_path, monkeypatch):
    import tensorflow as tf

    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor\nmore")

    monkeypatch.setattr(training, "build_model", out_of_memory)
    with pytest.raises(SystemExit, match=r"^train.py: error: TensorFlow failed to build the model "
                                         r"\(ResourceExhaustedError: OOM when allocating tensor\); "
                                         r"nothing was written$"):
        train.main(["--model", "dense", "--data", str(tiny_mnist), "--out", str(tmp_path / "o"),
                    "--logdir", str(tmp_path / "l")])


def test_leftovers_of_killed_runs_are_removed_on_the_next_run(tmp_path, monkeypatch):
    # A run killed before its first backup left an empty logs/NAME/<time>
    # folder; a SIGKILLed worker its <tmp>/NAME-worker-PID-* folder.
    import tempfile

    logs = tmp_path / "logs"
    for run in ("20260101-000000", "20260101-000001-2"):
        (logs / run / "train").mkdir(parents=True)
    (logs / "20260101-000002").mkdir()
    (logs / "20260101-000002" / "metrics.csv").write_text("epoch\n")
    (logs / "backup").mkdir()
    training.remove_empty_run_dirs(logs)
    assert sorted(p.name for p in logs.iterdir()) == ["20260101-000002", "backup"]

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    for leftover in (f"m-worker-{dead}-abc", f"m-worker-{os.getppid()}-abc", f"m-2-worker-{dead}-x"):
        (tmp_path / "tmp" / leftover).mkdir()
    training.remove_dead_workers_scratch("m")
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == [
        f"m-2-worker-{dead}-x", f"m-worker-{os.getppid()}-abc"]


@pytest.mark.parametrize("chief, says", [(True, "the last backup in /b is kept"),
                                         (False, "the chief keeps the last backup")])
def test_a_tensorflow_error_names_the_backup_only_where_it_is(monkeypatch, chief, says):
    """A non-chief worker's backup lives in its scratch folder, deleted before the error
    reaches the user (issue 25): its message points to the chief's."""
    import types

    import tensorflow as tf

    from pipeline import distribution

    def fail(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "out of memory")

    monkeypatch.setattr(training, "_fit", fail)
    monkeypatch.setattr(distribution, "is_chief", lambda strategy: chief)
    with pytest.raises(training.TrainingError) as info:
        training._fit_reporting_tf_errors(None, None, None, None, None, None,
                                          types.SimpleNamespace(directory="/b"), (), None, None)
    assert str(info.value).endswith(says)
    assert "ResourceExhaustedError: out of memory" in str(info.value)
