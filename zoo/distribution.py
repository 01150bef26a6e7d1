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
