import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT, run_python, write_tiny_mnist
from tests.test_train import COMPARE_IN_FRESH_PROCESS, tiny_args
from pipeline import distribution

MULTI_WORKER_TIMEOUT_S = 300
RESUME_TRAIN_IMAGES = 960
RESUME_EPOCHS = 8
KILL_AFTER_BACKED_UP_EPOCH = 2
POLL_INTERVAL_S = 0.05
# The first resumed epoch's val_loss may exceed the backed-up epoch's by this factor...
RESUMED_LOSS_TOLERANCE = 1.05
# ...and must have kept at least this fraction of the drop from epoch 1 to the backup.
RESUMED_PROGRESS_KEPT = 0.5


def test_bad_strategy_arguments_are_named(monkeypatch):
    with pytest.raises(ValueError, match="Received: distribute='horovod'"):
        distribution.make_strategy("horovod")
    with pytest.raises(ValueError, match="Received: cpu_replicas=2 with distribute='none'"):
        distribution.make_strategy("none", cpu_replicas=2)
    monkeypatch.delenv(distribution.TF_CONFIG_VAR, raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribution.make_strategy("multi-worker")
    with pytest.raises(ValueError, match="Received: cpu_replicas=0"):
        distribution.split_cpu(0)


def test_default_strategy_is_the_chief():
    strategy = distribution.make_strategy("none")
    assert strategy.num_replicas_in_sync == 1
    assert distribution.is_chief(strategy) and not distribution.is_multi_worker(strategy)


PENALTIES_UNDER_TWO_REPLICAS = """
import json, sys
import keras, numpy as np
from pipeline import distribution
strategy = distribution.make_strategy("mirrored", cpu_replicas=2)
import regularizers
h = np.load(sys.argv[1], allow_pickle=False)["h"]
result = {"replicas": strategy.num_replicas_in_sync}
for name, penalty in [("l1", regularizers.L1Sparsity(0.3)), ("kl", regularizers.KLSparsity(0.1, 2.0))]:
    with strategy.scope():
        inputs = keras.Input(h.shape[1:])
        model = keras.Model(inputs, keras.layers.Activation("linear", activity_regularizer=penalty)(inputs))
        model.compile(keras.optimizers.SGD(0.0), "mse")
    result[name] = model.evaluate(h, h, batch_size=len(h), verbose=0)
print(json.dumps(result))
"""


def test_penalties_under_two_replicas_match_numpy(tmp_path, fresh_python):
    # One global batch of 8, split 4 + 4 across the replicas in order.
    h = np.random.default_rng(0).uniform(0.02, 0.6, (8, 5)).astype("float32")
    np.savez(tmp_path / "h.npz", h=h)
    result = json.loads(fresh_python(PENALTIES_UNDER_TWO_REPLICAS, tmp_path / "h.npz").stdout.splitlines()[-1])
    assert result["replicas"] == 2
    # L1: the per-example norm averaged over the global batch, as on one device.
    np.testing.assert_allclose(result["l1"], 0.3 * np.abs(h).sum(axis=1).mean(), rtol=1e-5)

    def kl(part):
        q = part.mean(axis=0)
        return 2.0 * np.sum(0.1 * np.log(0.1 / q) + 0.9 * np.log(0.9 / (1 - q)))

    # KL: rho_hat per replica batch, the replicas' penalties averaged.
    np.testing.assert_allclose(result["kl"], (kl(h[:4]) + kl(h[4:])) / 2, rtol=1e-5)
    assert not np.isclose(result["kl"], kl(h), rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("model,reg", [("conv", "l1"), ("dense", "kl")])
def test_mirrored_on_two_cpu_replicas_trains_and_exports(tmp_path, fresh_python, model, reg):
    # The dense preset asks for XLA and 16 steps per call: both adapted.
    data = write_tiny_mnist(tmp_path / "mnist.npz")
    extra = ["--code-activation", "sigmoid"] if reg == "kl" else []
    args = tiny_args(tmp_path, data, model, reg, *extra, "--distribute", "mirrored", "--cpu-replicas", "2")
    result = run_python(["train.py", *args])
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    name = f"{model}-{reg}"
    summary = json.loads((out / f"{name}.json").read_text())
    assert summary["distribute"] == {"strategy": "mirrored", "replicas": 2, "chief": True}
    assert summary["config"]["steps_per_execution"] == 1 and summary["config"]["jit_compile"] is False
    check_exports_load_and_match(tmp_path, out, name, fresh_python)


def check_exports_load_and_match(tmp_path, out, name, fresh_python):
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    np.savez(tmp_path / "x.npz", x=x)
    loaded = json.loads(fresh_python(
        COMPARE_IN_FRESH_PROCESS, out / f"{name}.keras", out / name, tmp_path / "x.npz"
    ).stdout.strip().splitlines()[-1])
    assert loaded["reconstruction_diff"] < 1e-5 and loaded["code_diff"] < 1e-5


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(args, logs, count=2):
    """Starts `count` train.py workers of one cluster on free localhost ports.

    Each worker's stdout and stderr go to files in `logs` (no pipe to fill up).
    """
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for index in range(count):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        with open(logs / f"worker-{index}.out", "w") as out, open(logs / f"worker-{index}.err", "w") as err:
            processes.append(subprocess.Popen(
                [sys.executable, "train.py", *args], cwd=ROOT, env=env, stdout=out, stderr=err, text=True,
            ))
    return processes


def kill_all(processes):
    for process in processes:
        process.kill()
        process.wait()


def wait_all(processes, logs, timeout=MULTI_WORKER_TIMEOUT_S):
    """Waits for every worker (killing all of them on the way out); returns (stdout, stderr) texts."""
    try:
        for process in processes:
            process.wait(timeout=timeout)
    finally:
        kill_all(processes)
    return [((logs / f"worker-{i}.out").read_text(), (logs / f"worker-{i}.err").read_text())
            for i in range(len(processes))]


def multi_worker_args(tmp_path, data, epochs=1):
    return tiny_args(tmp_path, data, "dense", "kl", "--code-activation", "sigmoid",
                     "--distribute", "multi-worker", epochs=epochs)


@pytest.mark.slow
def test_two_workers_on_localhost_train_and_the_chief_exports(tmp_path, fresh_python):
    data = write_tiny_mnist(tmp_path / "mnist.npz")
    processes = start_workers(multi_worker_args(tmp_path, data), tmp_path / "workers")
    outputs = wait_all(processes, tmp_path / "workers")
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert "exported" in outputs[0][0]
    assert "worker worker-1 finished" in outputs[1][0]
    out = tmp_path / "out"
    summary = json.loads((out / "dense-kl.json").read_text())
    assert summary["distribute"] == {"strategy": "multi-worker", "replicas": 2, "chief": True}
    assert summary["epochs_completed"] == 1
    # (.dense-kl.lock, the export set's lock file, stays: it is never deleted.)
    assert sorted(p.name for p in out.iterdir() if p.name != ".dense-kl.lock") == [
        "dense-kl", "dense-kl.json", "dense-kl.keras"]
    logs = tmp_path / "logs" / "dense-kl"
    # One run folder, logs/NAME/YYYYmmdd-HHMMSS, holds the CSV; the backup is gone.
    assert len(list(logs.glob("*/training.csv"))) == 1 and not (logs / "backup").exists()
    check_exports_load_and_match(tmp_path, out, "dense-kl", fresh_python)


def epoch_logs(stdout):
    """{epoch: {metric: value}} from the "epoch N/M k=v ..." lines of a worker."""
    lines = [line.split() for line in stdout.splitlines() if line.startswith("epoch ")]
    return {int(words[1].split("/")[0]): {k: float(v) for k, v in (w.split("=") for w in words[2:])}
            for words in lines}


@pytest.mark.slow
def test_killed_cluster_resumes_from_the_chiefs_backup(tmp_path, fresh_python):
    # Kill both workers once the chief has backed up a few epochs, restart both:
    # every worker must resume after the backed-up epoch with the chief's weights.
    data = write_tiny_mnist(tmp_path / "mnist.npz", num_train=RESUME_TRAIN_IMAGES)
    args = multi_worker_args(tmp_path, data, epochs=RESUME_EPOCHS)
    backup = tmp_path / "logs" / "dense-kl" / "backup" / distribution.BACKUP_METADATA
    processes = start_workers(args, tmp_path / "first")
    try:
        deadline = time.monotonic() + MULTI_WORKER_TIMEOUT_S
        while not (backup.is_file() and json.loads(backup.read_text())["epoch"] >= KILL_AFTER_BACKED_UP_EPOCH):
            assert time.monotonic() < deadline and all(p.poll() is None for p in processes), (
                (tmp_path / "first" / "worker-0.err").read_text()[-3000:]
            )
            time.sleep(POLL_INTERVAL_S)
    finally:
        kill_all(processes)
    resumed_after = json.loads(backup.read_text())["epoch"]
    assert resumed_after < RESUME_EPOCHS
    before = epoch_logs((tmp_path / "first" / "worker-0.out").read_text())

    processes = start_workers(args, tmp_path / "second")
    outputs = wait_all(processes, tmp_path / "second")
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    chief, worker = (epoch_logs(stdout) for stdout, _ in outputs)
    # Both workers resume at the same epoch and compute the same (all-reduced) losses.
    assert sorted(chief) == sorted(worker) == list(range(resumed_after + 1, RESUME_EPOCHS + 1))
    assert chief == worker
    # The weights came back: the first resumed epoch continues from the backup,
    # far below where training started.
    first = chief[resumed_after + 1]["val_loss"]
    backed_up, start = before[resumed_after]["val_loss"], before[1]["val_loss"]
    assert first <= backed_up * RESUMED_LOSS_TOLERANCE
    assert first < start - RESUMED_PROGRESS_KEPT * (start - backed_up)
    summary = json.loads((tmp_path / "out" / "dense-kl.json").read_text())
    assert summary["epochs_completed"] == RESUME_EPOCHS
    assert not backup.parent.exists()
    check_exports_load_and_match(tmp_path, tmp_path / "out", "dense-kl", fresh_python)


def test_custom_loop_backup_restores_weights_and_epoch(tmp_path, tiny_mnist):
    # The multi-worker loop, run under the default strategy in one process.
    import tensorflow as tf

    from pipeline import config as configs, data as datasets, training

    config = configs.resolve_config("dense", "kl", code_size=4, hidden_units=(16,),
                                    code_activation="sigmoid", batch_size=16)
    mnist = datasets.load_mnist(tiny_mnist)
    train_ds = datasets.autoencoder_dataset(mnist.x_train, 16, shuffle_seed=0)
    val_ds = datasets.autoencoder_dataset(mnist.x_test, 16)
    strategy = tf.distribute.get_strategy()
    model = training.build_model(config)
    backup_dir = tmp_path / "backup"
    history = distribution.MultiWorkerTrainer(model, strategy, backup_dir).fit(train_ds, val_ds, epochs=2)
    assert history.epoch == [0, 1] and history.history["val_bce"][1] < history.history["val_bce"][0]
    # Weights files named by their epoch (the previous one kept), and the metadata.
    assert sorted(p.name for p in backup_dir.iterdir()) == [
        "backup-epoch-1.weights.h5", "backup-epoch-2.weights.h5", "backup.json"]
    weights = [w.copy() for w in model.get_weights()]
    again = training.build_model(config)
    trainer = distribution.MultiWorkerTrainer(again, strategy, backup_dir)
    assert trainer.restore() == 2
    for restored, saved in zip(again.get_weights(), weights):
        np.testing.assert_array_equal(restored, saved)
    history = trainer.fit(train_ds, val_ds, epochs=3)
    assert history.epoch == [2]
    trainer.finish()
    assert not backup_dir.exists()


def test_fit_and_the_multi_worker_loop_optimise_the_same_loss(tmp_path):
    # One batch through Keras' train step and through the custom loop's, on
    # twin models with every kind of loss term: contractive penalty and AuxK.
    import keras
    import tensorflow as tf

    from pipeline import config as configs, training

    config = configs.resolve_config(
        "dictionary", "contractive", code_size=32, aux_k=8, dead_after_examples=1,
        batch_size=16, jit_compile=False, steps_per_execution=1, contractive_weight=0.05)
    x = np.random.default_rng(0).random((16, 28, 28, 1)).astype("float32")
    twins = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        model = training.build_model(config)
        model.examples_since_fired.assign(np.where(np.arange(32) % 2 == 0, 5.0, 0.0))
        twins.append(model)
    fit_model, loop_model = twins
    fit_loss = fit_model.train_on_batch(x, x, return_dict=True)["loss"]
    trainer = distribution.MultiWorkerTrainer(loop_model, tf.distribute.get_strategy(), tmp_path / "b")
    loop_loss = float(trainer.train_step(tf.constant(x)))
    assert np.isfinite(fit_loss) and loop_loss == pytest.approx(fit_loss, rel=1e-6)
    for a, b in zip(fit_model.get_weights(), loop_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Evaluation too: the loop's test step is Keras' test loss.
    assert float(trainer.test_step(tf.constant(x))) == pytest.approx(
        fit_model.evaluate(x, x, batch_size=16, verbose=0, return_dict=True)["loss"], rel=1e-6)


def test_terminate_on_nan_stops_the_loop_at_the_bad_batch(tmp_path):
    import keras
    import tensorflow as tf

    from pipeline import config as configs, data as datasets, training

    config = configs.resolve_config("dense", "none", code_size=4, hidden_units=(8,),
                                    batch_size=8, jit_compile=False, steps_per_execution=1)
    x = np.random.default_rng(0).random((40, 28, 28, 1)).astype("float32")
    x[20] = np.nan  # in the third batch of 8
    seen = []
    recorder = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    model = training.build_model(config)
    trainer = distribution.MultiWorkerTrainer(model, tf.distribute.get_strategy(), tmp_path / "b")
    history = trainer.fit(datasets.autoencoder_dataset(x, 8), datasets.autoencoder_dataset(x[:8], 8),
                          epochs=3, callbacks=[keras.callbacks.TerminateOnNaN(), recorder])
    assert seen == [0, 1, 2] and model.stop_training
    assert history.epoch == []


def test_dry_run_goes_through_the_multi_worker_loop(tmp_path):
    # A one-worker cluster: the same strategy and loop as a real run.
    data = write_tiny_mnist(tmp_path / "mnist.npz")
    (port,) = free_ports(1)
    env = {distribution.TF_CONFIG_VAR: json.dumps(
        {"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}})}
    args = tiny_args(tmp_path, data, "dense", "l1", "--distribute", "multi-worker", "--dry-run")
    result = run_python(["train.py", *args], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 1/1" in result.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize("tf_config", ["[]", "{}", '{"cluster": {"worker": "a:1"}, "task": {}}',
                                       '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
                                       "[" * 100_000])
def test_a_bad_tf_config_is_one_line(monkeypatch, tf_config):
    monkeypatch.setenv(distribution.TF_CONFIG_VAR, tf_config)
    with pytest.raises(ValueError, match=r"^Expected the TF_CONFIG environment variable .*"
                                         r"Received: TF_CONFIG="):
        distribution.make_strategy("multi-worker")


def test_a_bad_cluster_timeout_is_named():
    with pytest.raises(ValueError, match=r"Received: cluster_timeout=0"):
        distribution.make_strategy("none", cluster_timeout=0)


@pytest.mark.slow
def test_a_chief_whose_worker_never_starts_gives_up_naming_it(tmp_path):
    # TensorFlow would wait for worker-1 forever, at 0% CPU and without a word.
    data = write_tiny_mnist(tmp_path / "mnist.npz")
    chief, missing = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{chief}", f"127.0.0.1:{missing}"]}
    env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    result = run_python(["train.py", *multi_worker_args(tmp_path, data), "--cluster-timeout", "3"],
                        env=env, timeout=MULTI_WORKER_TIMEOUT_S)
    assert result.returncode != 0  # killed by the watchdog
    errors = [line for line in result.stderr.splitlines() if line.startswith("train.py")]
    assert errors == [f"train.py: error: Expected every task of TF_CONFIG to join the cluster "
                      f"within cluster_timeout=3 seconds. Received: no answer from worker-1 "
                      f"(127.0.0.1:{missing}); nothing was written"], result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.npz"]
