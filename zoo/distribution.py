"""tf.distribute strategies for train.py: none, mirrored, multi-worker.

- "mirrored": `tf.distribute.MirroredStrategy` over the visible GPUs, or on
  a CPU-only machine over `cpu_replicas` logical CPU devices (which exercises
  the same code path; on one CPU it is not faster).
- "multi-worker": `tf.distribute.MultiWorkerMirroredStrategy`, configured by
  the standard `TF_CONFIG` environment variable.

The global batch is what `--batch-size` says; each replica sees its share.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi-worker")
TF_CONFIG_VAR = "TF_CONFIG"


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


def make_strategy(kind="none", *, cpu_replicas=None):
    """The `tf.distribute.Strategy` named `kind` (see the module docstring)."""
    if kind not in STRATEGIES:
        raise ValueError(
            f"Expected `distribute` to be one of {list(STRATEGIES)}. Received: distribute={kind!r}"
        )
    if cpu_replicas is not None and kind != "mirrored":
        raise ValueError(
            "Expected `cpu_replicas` only with distribute='mirrored'. "
            f"Received: cpu_replicas={cpu_replicas} with distribute={kind!r}"
        )
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if cpu_replicas is not None:
            return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas))
        return tf.distribute.MirroredStrategy()
    if not os.environ.get(TF_CONFIG_VAR):
        raise ValueError(
            f"Expected the {TF_CONFIG_VAR} environment variable to describe the cluster "
            f"for distribute='multi-worker'. Received: {TF_CONFIG_VAR} unset"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


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
# `scale_regularization_loss`, and `tf.train.CheckpointManager` for backups.
# It optimises exactly what `fit` optimises under MirroredStrategy.

BACKUP_CHECKPOINTS_KEPT = 1


def _per_example_bce(x, x_hat):
    """Mean per-pixel binary cross-entropy of each example, shape (N,)."""
    per_pixel = keras.losses.binary_crossentropy(x, x_hat)  # (N, ...) without the last axis
    return keras.ops.mean(keras.ops.reshape(per_pixel, (keras.ops.shape(x)[0], -1)), axis=1)


def _per_example_mse(x, x_hat):
    return keras.ops.mean(keras.ops.reshape((x - x_hat) ** 2, (keras.ops.shape(x)[0], -1)), axis=1)


def _replica_losses(model, x, training):
    """(total, reconstruction, penalty, mse) of one replica, scaled for a sum over replicas.

    reconstruction = sum_i bce_i / global_batch; penalty = sum(model.losses) / replicas,
    as Keras' `fit` scales them under a strategy.
    """
    x_hat = model(x, training=training)
    reconstruction = tf.nn.compute_average_loss(_per_example_bce(x, x_hat))
    mse = tf.nn.compute_average_loss(_per_example_mse(x, x_hat))
    penalty = tf.nn.scale_regularization_loss(tf.add_n(model.losses)) if model.losses else 0.0
    return reconstruction + penalty, reconstruction, penalty, mse


def _distribute(strategy, dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


class MultiWorkerTrainer:
    """Trains a compiled autoencoder under a MultiWorkerMirroredStrategy.

    Every worker must run `fit` with the same arguments. Backups of weights,
    optimizer and epoch go to `backup_dir` on the chief and to a temporary
    folder on the other workers (removed after each save); a restarted
    worker, or cluster, restores the chief's latest backup and resumes after
    the last finished epoch.
    """

    def __init__(self, model, strategy, backup_dir):
        self.model, self.strategy = model, strategy
        self.chief = is_chief(strategy)
        # Every worker restores from the chief's folder (on one host, or a
        # shared filesystem); only the chief's saves land there.
        self.backup_dir = Path(backup_dir)
        self.write_dir = self.backup_dir if self.chief else Path(tempfile.mkdtemp())
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=self.epoch
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.write_dir), max_to_keep=BACKUP_CHECKPOINTS_KEPT
        )
        self.train_step = tf.function(self._step_fn(training=True))
        self.test_step = tf.function(self._step_fn(training=False))

    def _step_fn(self, training):
        model, strategy = self.model, self.strategy

        def replica_step(x):
            if not training:
                return _replica_losses(model, x, training=False)
            with tf.GradientTape() as tape:
                losses = _replica_losses(model, x, training=True)
            gradients = tape.gradient(losses[0], model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return losses

        def step(x):
            per_replica = strategy.run(replica_step, args=(x,))
            return [strategy.reduce("SUM", value, axis=None) for value in per_replica]

        return step

    def _run_epoch(self, dataset, step, prefix):
        totals, batches = np.zeros(4), 0
        for x in dataset:
            totals += np.array([float(value) for value in step(x)])
            batches += 1
        loss, bce, penalty, mse = totals / max(batches, 1)
        return {f"{prefix}loss": loss, f"{prefix}bce": bce, f"{prefix}mse": mse}

    def fit(self, train_ds, val_ds, *, epochs, callbacks=()):
        """Trains up to `epochs` and returns a `keras.callbacks.History`.

        Args:
            train_ds, val_ds: tf.data datasets of `(x, x)` batches of the global size.
            epochs: the total number of epochs, counting those of a resumed run.
            callbacks: Keras callbacks (epoch-level hooks only).
        """
        train_x = _distribute(self.strategy, train_ds.map(lambda x, _: x))
        val_x = _distribute(self.strategy, val_ds.map(lambda x, _: x))
        history = keras.callbacks.History()
        callback_list = keras.callbacks.CallbackList(
            [*callbacks, history], model=self.model, epochs=epochs
        )
        latest = tf.train.latest_checkpoint(str(self.backup_dir))
        if latest:
            self.checkpoint.restore(latest)
        callback_list.on_train_begin()
        self.model.stop_training = False
        for epoch in range(int(self.epoch.numpy()), epochs):
            callback_list.on_epoch_begin(epoch)
            logs = self._run_epoch(train_x, self.train_step, "")
            logs.update(self._run_epoch(val_x, self.test_step, "val_"))
            callback_list.on_epoch_end(epoch, logs)
            print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()),
                  flush=True)
            self.epoch.assign(epoch + 1)
            self.manager.save()  # every worker: saving runs collective ops
            if not self.chief:
                shutil.rmtree(self.write_dir, ignore_errors=True)
            if self.model.stop_training or not all(np.isfinite(list(logs.values()))):
                break
        callback_list.on_train_end()
        return history

    def finish(self):
        """Removes this worker's backups once the run has finished and been exported."""
        shutil.rmtree(self.write_dir, ignore_errors=True)
