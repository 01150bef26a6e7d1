"""tf.distribute strategies for train.py: none, mirrored, multi-worker.

- "mirrored": `tf.distribute.MirroredStrategy` over the visible GPUs, or on
  a CPU-only machine over `cpu_replicas` logical CPU devices (which exercises
  the same code path; on one CPU it is not faster).
- "multi-worker": `tf.distribute.MultiWorkerMirroredStrategy`, configured by
  the standard `TF_CONFIG` environment variable.

The global batch is what `--batch-size` says; each replica sees its share.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import backup as backup_lib
from pipeline import objective

STRATEGIES = ("none", "mirrored", "multi-worker")
TF_CONFIG_VAR = "TF_CONFIG"
DEFAULT_CLUSTER_TIMEOUT = 300  # seconds for every task of the cluster to start
PROBE_SECONDS = 2  # to tell a task that never started (no listener) from a slow one


def split_cpu(replicas):
    """Splits the first CPU into `replicas` logical devices; returns their names.

    Must run before TensorFlow initialises its devices (first op, first model).
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(
            f"Expected `cpu_replicas` to be a positive integer. Received: cpu_replicas={replicas!r}"
        )
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas
        )
    except RuntimeError as error:
        current = len(tf.config.list_logical_devices("CPU"))
        if current != replicas:
            raise ValueError(
                f"Expected `cpu_replicas` to be set before TensorFlow starts. Received: "
                f"cpu_replicas={replicas} with {current} CPU device(s) already initialised"
            ) from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def make_strategy(kind="none", *, cpu_replicas=None, cluster_timeout=DEFAULT_CLUSTER_TIMEOUT):
    """The `tf.distribute.Strategy` named `kind` (see the module docstring).

    A multi-worker strategy waits at most `cluster_timeout` seconds for every
    task of TF_CONFIG to start (`_form_cluster`).
    """
    if kind not in STRATEGIES:
        raise ValueError(
            f"Expected `distribute` to be one of {list(STRATEGIES)}. Received: distribute={kind!r}"
        )
    if cpu_replicas is not None and kind != "mirrored":
        raise ValueError(
            "Expected `cpu_replicas` only with distribute='mirrored'. "
            f"Received: cpu_replicas={cpu_replicas} with distribute={kind!r}"
        )
    if isinstance(cluster_timeout, bool) or not isinstance(cluster_timeout, (int, float)) \
            or not math.isfinite(cluster_timeout) or cluster_timeout <= 0:
        raise ValueError(f"Expected `cluster_timeout` to be a finite number of seconds > 0. "
                         f"Received: cluster_timeout={cluster_timeout!r}")
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if cpu_replicas is not None:
            return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas))
        return tf.distribute.MirroredStrategy()
    return _form_cluster(cluster_tasks(), cluster_timeout)


def cluster_tasks():
    """{"worker-1": "host:port", ...}: every task of TF_CONFIG but this process's.

    Raises:
        ValueError: TF_CONFIG is unset or not {"cluster": {job: [addresses]},
            "task": {"type": job, "index": i}} (one line).
    """
    text = os.environ.get(TF_CONFIG_VAR)
    try:
        spec = json.loads(text or "null")
        cluster, task = spec["cluster"], spec["task"]
        tasks = {f"{job}-{i}": address for job, addresses in cluster.items()
                 for i, address in enumerate(addresses)}
        own = f"{task['type']}-{task['index']}"
        if own not in tasks or not all(isinstance(a, list) for a in cluster.values()) \
                or not all(isinstance(a, str) for a in tasks.values()):
            raise ValueError(own)
    except (ValueError, RecursionError, TypeError, KeyError, AttributeError):
        raise ValueError(
            f"Expected the {TF_CONFIG_VAR} environment variable to describe the cluster for "
            f"distribute='multi-worker', as {{\"cluster\": {{\"worker\": [\"host:port\", ...]}}, "
            f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}}. Received: "
            + (f"{TF_CONFIG_VAR}={text!r:.200}" if text else f"{TF_CONFIG_VAR} unset")
        ) from None
    return {name: address for name, address in tasks.items() if name != own}


# The watchdog of `_form_cluster`, in its own small process: while TensorFlow
# waits for the cluster it holds the GIL (no Python thread runs) and catches
# SIGTERM (its preemption notifier), so only a SIGKILL from outside ends it.
# argv: parent pid, timeout, message with {missing}, then "name=host:port" tasks.
_WATCHDOG = """
import os, select, signal, socket, sys
parent, timeout, message, tasks = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
if select.select([sys.stdin], [], [], timeout)[0]:
    sys.exit()  # the cluster formed (or the parent ended): stdin closed
missing = []
for task in tasks:
    name, _, address = task.partition("=")
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=%(probe)s).close()
    except (OSError, ValueError):
        missing.append(f"{name} ({address})")
print(message.format(missing=", ".join(missing) or "none refuses a connection: see their logs"),
      file=sys.stderr, flush=True)
os.kill(parent, signal.SIGKILL)
""" % {"probe": PROBE_SECONDS}


def _form_cluster(others, timeout):
    """MultiWorkerMirroredStrategy(), once every task has joined.

    After `timeout` seconds without them, a watchdog process prints one line
    naming the tasks (`others`, {name: address}) that refuse a connection,
    then kills this process (nothing has been written yet).
    """
    message = (f"{Path(sys.argv[0]).name}: error: Expected every task of {TF_CONFIG_VAR} to "
               f"join the cluster within cluster_timeout={timeout:g} seconds. Received: no "
               f"answer from {{missing}}; nothing was written")
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout), message,
         *(f"{name}={address}" for name, address in others.items())],
        stdin=subprocess.PIPE)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.stdin.close()
        watchdog.wait()


def adapt_config(config, strategy):
    """`config` with the speed settings that work under `strategy`.

    Returns (config, notes). Under several replicas, Keras 3.15's multi-step
    train function fails under MirroredStrategy ("You must feed a value for
    placeholder tensor"), so steps_per_execution becomes 1; and XLA cannot
    compile a step whose variables sit on several logical CPU devices
    ("Trying to access resource ... located in device CPU:1"), so
    jit_compile becomes False for CPU replicas.

    Under a multi-worker strategy jit_compile becomes False: the custom
    loop (MultiWorkerTrainer) does not XLA-compile its collective steps.
    """
    changes = {}
    if is_multi_worker(strategy):
        changes["jit_compile"] = False
    if strategy.num_replicas_in_sync > 1:
        changes["steps_per_execution"] = 1
        if any("CPU" in device.upper() for device in strategy.extended.worker_devices):
            changes["jit_compile"] = False
    changes = {k: v for k, v in changes.items() if getattr(config, k) != v}
    notes = [f"{k}={getattr(config, k)} -> {v} with {strategy.num_replicas_in_sync} replicas"
             for k, v in changes.items()]
    return dataclasses.replace(config, **changes), notes


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker cluster.

    The chief is the "chief" task, or worker 0 in a cluster without one.
    """
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def task_description():
    """A short name of this process's task from TF_CONFIG, e.g. "worker-1"."""
    task = json.loads(os.environ.get(TF_CONFIG_VAR) or "{}").get("task", {})
    return f"{task.get('type', 'local')}-{task.get('index', 0)}"


# === Multi-worker training loop ===
# Keras 3's `Model.fit` does not run under MultiWorkerMirroredStrategy (its
# pre-build and its log reduction fail: keras-team/keras#20585), so the
# multi-worker path trains with tf.distribute's own custom-loop API:
# `experimental_distribute_dataset`, `strategy.run`, `compute_average_loss`,
# `scale_regularization_loss`; backups as Keras' BackupAndRestore makes them.
# It optimises exactly what `fit` optimises under MirroredStrategy.

# Backups as pipeline.backup writes them for fit too (the names are kept here
# for the tests and callers that read them).
BACKUP_WEIGHTS_PATTERN = backup_lib.BACKUP_WEIGHTS_PATTERN
BACKUP_METADATA = backup_lib.BACKUP_METADATA


def _replica_loss(model, x, training):
    """(loss, x_hat) of one replica: the objective `fit` uses (`Model.compute_loss`).

    compute_loss adds `model.losses` to the compiled reconstruction loss and
    divides by the number of replicas, as `fit` does under a strategy, so the
    sum over replicas is the loss of the global batch.
    """
    x_hat = model(x, training=training)
    return model.compute_loss(x=x, y=x, y_pred=x_hat, training=training), x_hat


def _distribute(strategy, dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


class MultiWorkerTrainer:
    """Trains a compiled autoencoder under a MultiWorkerMirroredStrategy.

    Every worker must run `fit` with the same arguments. After each epoch the
    chief backs up the model and optimizer weights (`Model.save_weights`, as
    Keras' BackupAndRestore does) and the epoch count in `backup_dir`. When a
    restarted cluster begins `fit`, the chief loads its last backup and every
    worker then takes the chief's variables and epoch through a collective
    all-reduce (`sync_from_chief`), so the non-chief workers need no copy of
    the backup and all replicas resume from identical weights.
    """

    def __init__(self, model, strategy, backup_dir, **backup_metadata):
        self.model, self.strategy = model, strategy
        self.chief = is_chief(strategy)
        self.backup_dir = Path(backup_dir)
        self.backup = backup_lib.RunBackup(backup_dir)
        self.backup_metadata = backup_metadata  # recorded in backup.json (the fingerprint)
        with strategy.scope():
            # Loading into optimizer slots that do not exist yet would be
            # deferred into the first distributed step.
            model.optimizer.build(model.trainable_variables)
            # The same metrics `fit` reports (objective.reconstruction_metrics).
            self.metrics = objective.reconstruction_metrics()
        self.train_step = tf.function(self._step_fn(training=True))
        self.test_step = tf.function(self._step_fn(training=False))

    def _step_fn(self, training):
        model, strategy = self.model, self.strategy

        def replica_step(x):
            if not training:
                loss, x_hat = _replica_loss(model, x, training=False)
            else:
                with tf.GradientTape() as tape:
                    loss, x_hat = _replica_loss(model, x, training=True)
                gradients = tape.gradient(loss, model.trainable_variables)
                model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            for metric in self.metrics:  # sync-on-read variables
                metric.update_state(x, x_hat)
            return loss

        def step(x):
            return strategy.reduce("SUM", strategy.run(replica_step, args=(x,)), axis=None)

        return step

    def _run_epoch(self, dataset, step, prefix, callback_list=None):
        """Runs one pass; returns its logs, or None if a callback stopped it."""
        for metric in self.metrics:
            metric.reset_state()
        total, batches = 0.0, 0
        for x in dataset:
            loss = float(step(x))
            total, batches = total + loss, batches + 1
            if callback_list is not None:
                # Per batch, as fit calls them (TerminateOnNaN stops here).
                callback_list.on_train_batch_end(batches - 1, {"loss": loss})
                if self.model.stop_training:
                    return None
        logs = {f"{prefix}loss": total / max(batches, 1)}
        logs.update({f"{prefix}{m.name}": float(m.result()) for m in self.metrics})
        return logs

    def fit(self, train_ds, val_ds, *, epochs, callbacks=()):
        """Trains up to `epochs` and returns a `keras.callbacks.History`.

        Args:
            train_ds, val_ds: tf.data datasets of `(x, x)` batches of the global size.
            epochs: the total number of epochs, counting those of a resumed run.
            callbacks: Keras callbacks: epoch hooks, and `on_train_batch_end`
                with the batch loss (so TerminateOnNaN stops at the bad batch).
        """
        train_x = _distribute(self.strategy, train_ds.map(lambda x, _: x))
        val_x = _distribute(self.strategy, val_ds.map(lambda x, _: x))
        history = keras.callbacks.History()
        callback_list = keras.callbacks.CallbackList(
            [*callbacks, history], model=self.model, epochs=epochs
        )
        callback_list.on_train_begin()
        self.model.stop_training = False
        for epoch in range(self.restore(), epochs):
            callback_list.on_epoch_begin(epoch)
            logs = self._run_epoch(train_x, self.train_step, "", callback_list)
            if logs is None:
                break
            logs.update(self._run_epoch(val_x, self.test_step, "val_"))
            callback_list.on_epoch_end(epoch, logs)
            print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()),
                  flush=True)
            if self.model.stop_training or not objective.loss_is_finite(logs):
                break  # not backed up: the last backup stays a good one
            self._backup(epoch + 1, logs)
        callback_list.on_train_end()
        return history

    def _backup(self, epochs_done, logs=None):
        """The chief backs the model up (pipeline.backup: atomic, the previous one kept)."""
        if self.chief:
            self.backup.save(self.model, epochs_done, **self.backup_metadata, logs=logs or {})

    def restore(self):
        """Resumes from the chief's last backup; returns the epoch to start at.

        Every worker must call it: the chief loads the backup (if any), then
        all workers take the chief's variables and epoch (`sync_from_chief`).
        """
        epoch = self.backup.restore(self.model) if self.chief else 0
        return self.sync_from_chief(epoch)

    def sync_from_chief(self, epoch=0):
        """Sets every worker's model and optimizer variables to the chief's.

        An all-reduce in which only replica 0 (the chief's first device)
        contributes, v = sum_r [r == 0] * v_r, so each worker receives the
        chief's values; `epoch` travels the same way. Returns the chief's epoch.
        """
        variables = [*self.model.variables, *self.model.optimizer.variables]

        def chief_values():
            context = tf.distribute.get_replica_context()
            is_first = tf.equal(context.replica_id_in_sync_group, 0)
            values = [tf.convert_to_tensor(v.value) for v in variables]
            values.append(tf.constant(epoch, tf.int64))
            values = [tf.where(is_first, v, tf.zeros_like(v)) for v in values]
            # One all-reduce per dtype (a batched all-reduce packs its values
            # into one tensor), in the same order on every worker.
            synced = list(values)
            for dtype in sorted({v.dtype.name for v in values}):
                indices = [i for i, v in enumerate(values) if v.dtype.name == dtype]
                reduced = context.all_reduce("SUM", [values[i] for i in indices])
                for i, value in zip(indices, reduced):
                    synced[i] = value
            return synced

        synced = self.strategy.run(tf.function(chief_values))
        local = [self.strategy.experimental_local_results(value)[0] for value in synced]
        for variable, value in zip(variables, local):
            variable.assign(value)
        return int(local[-1])

    def finish(self):
        """Removes the backups once the run has finished and been exported."""
        if self.chief:
            self.backup.remove()
