"""Training throughput of the zoo models, and the dense model's GFLOP/s.

    python -m benchmarks.speed
    python -m benchmarks.speed --cpu-replicas 2    # MirroredStrategy, 2 logical CPUs
    python -m benchmarks.speed --precision [NAME ...]   # float32 against mixed_bfloat16
    python -m benchmarks.speed --epoch-times [NAME ...] # per-epoch seconds: the stall
    python -m benchmarks.speed --memory [NAME ...]      # peak RSS of each training process
    python -m benchmarks.speed --eval-memory [NAME ...] # peak RSS of each evaluate.py process
    python -m benchmarks.speed --peers --torch-python /path/to/python   # whole process
    python -m benchmarks.speed --step-times [NAME ...]  # ms/step per precision and optimizer

Prints images/s for each zoo model under its preset, a sweep of the settings
that matter (XLA, steps_per_execution, batch size), and for the dense models
the achieved GFLOP/s next to this machine's fp32 matmul rate measured in the
same run with a large `tf.linalg.matmul`.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import models
from pipeline import data as datasets
from pipeline import distribution
from pipeline import manifest
from pipeline import metrics
from pipeline import objective
from pipeline import optimizers
from pipeline import precision
from pipeline import training

REPLICA_MODELS = ("dense-l1", "conv-l1")
MATMUL_SIZE = 2048
MATMUL_REPEATS = 20
WARMUP_STEPS = 20
TIMED_IMAGES = 65536
# Timings on a shared 2-core machine are noisy: the best of a few runs.
TIMED_REPEATS = 3
# A training step costs about three forward passes (forward, and two matmuls
# of the same size per layer in the backward pass).
TRAIN_FLOPS_PER_FORWARD = 3
SWEEP = {
    "dense": [dict(jit_compile=j, steps_per_execution=s, batch_size=b)
              for j in (False, True) for s in (1, 16) for b in (128, 512, 2048)],
    "conv": [dict(jit_compile=j, steps_per_execution=s, batch_size=b)
             for j in (False, True) for s in (1, 16) for b in (128, 512)],
}
ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
EPOCH_TIME_MODELS = ("dense-l1", "conv-l1", "dict-topk")
EPOCH_TIME_EPOCHS = 8
MEMORY_EPOCHS = 1
PRECISION_EPOCHS = 3
PEER_REPEATS = 3
SAVED_MODELS = ROOT / "saved_models"
STEP_TIME_MODELS = ("dict-l1",)
PIXELS = math.prod(datasets.IMAGE_SHAPE)
STEP_TIME_BATCHES = 64
STEP_TIME_REPEATS = 5
# The hand-written step: initial weight scale, step size, its two optimizers,
# the steps timed and the steps per tf.function call.
HAND_INIT_STDDEV = 0.03
HAND_LEARNING_RATE = 1e-3
HAND_SGD, HAND_ADAM = "gradient descent", "fused Adam"
HAND_REPEATS = 192
HAND_STEPS_PER_CALL = 16
QUALITY_TOLERANCE = 0.01
QUALITY_BATCH = 1000
# Whole-process comparisons: (label, epochs, the project's train.py arguments, the
# peer script, and whether that script needs torch).
PEER_RUNS = (
    ("conv-l1 preset vs IvLabs conv L1 (PyTorch)", 3, ["--preset", "conv-l1"],
     "ivlabs_conv_torch.py", True),
    ("Keras blog 784-32-784 L1 vs the blog's plain Keras script", 5,
     ["--model", "dense", "--reg", "l1", "--hidden-units=", "--code-size", "32",
      "--batch-size", "256", "--l1", "1e-4"], "keras_blog_sparse_dense.py", False),
    ("784-64-784 KL at AntonP999's settings vs its PyTorch code", 3,
     ["--model", "dense", "--reg", "kl", "--hidden-units=", "--code-size", "64",
      "--code-activation", "sigmoid", "--rho", "0.05", "--beta", "1", "--batch-size", "50",
      "--learning-rate", "1e-4"], "antonp_dense_kl_torch.py", True),
)


def matmul_gflops(size=MATMUL_SIZE, repeats=MATMUL_REPEATS):
    """Measured fp32 GFLOP/s of a (size x size) @ (size x size) matmul."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.linalg.matmul(a, b))
    matmul().numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        result = matmul()
    result.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def dense_forward_flops(model):
    """FLOPs of one example's forward pass through the Dense layers: sum 2*in*out."""
    return sum(
        2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        for sub in (model.get_layer(models.ENCODER), model.get_layer(models.DECODER))
        for layer in sub.layers
        if isinstance(layer, keras.layers.Dense)
    )


def throughput(config, timed_images=TIMED_IMAGES, strategy=None):
    """Training images per second of `config`'s model, after compilation."""
    keras.utils.set_random_seed(config.seed)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = training.build_model(config)
    rng = np.random.default_rng(config.seed)
    x = rng.random((timed_images, *datasets.IMAGE_SHAPE), dtype=np.float32)
    dataset = datasets.autoencoder_dataset(x, config.batch_size).repeat()
    warmup = max(WARMUP_STEPS, 2 * config.steps_per_execution)
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)
    steps = timed_images // config.batch_size
    best = _best_seconds(
        lambda: model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0), TIMED_REPEATS)
    return steps * config.batch_size / best, model


def _best_seconds(run, repeats):
    """The shortest wall time, in seconds, of `repeats` calls of `run()`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def timed_training(config, data_path, *callbacks):
    """Trains `config` on MNIST in a scratch folder (with extra `callbacks`); returns
    (its `EpochTimes`, the run summary)."""
    timer, scratch = EpochTimes(), Path(tempfile.mkdtemp())
    try:
        summary = training.train(config, data_path=data_path, out=scratch / "out",
                                 logdir=scratch / "logs", callbacks=[timer, *callbacks])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return timer, summary


def precision_table(names, data_path, epochs=PRECISION_EPOCHS):
    """Trains each zoo model for `epochs` on MNIST in float32 (its preset's XLA
    setting) and in mixed_bfloat16 without XLA; prints the median seconds of the
    epochs after the first (which compiles), the speed-up, the validation
    reconstruction loss of each, and what "auto" picks on this CPU."""
    cpu, units = precision.cpu_features()
    print(f"CPU: {cpu}; bf16 units: {', '.join(units) or 'none'}; {epochs} epochs each\n")
    print("| zoo model | float32 s/epoch (XLA) | mixed_bfloat16 s/epoch (no XLA) | speed-up "
          "| val reconstruction fp32 / bf16 | auto picks |\n|---|---|---|---|---|---|")
    for name in names or manifest.ZOO:
        fp32 = manifest.config_of(name, precision=precision.FLOAT32, epochs=epochs)
        bf16 = manifest.config_of(name, precision=precision.MIXED_BFLOAT16, jit_compile=False,
                                  epochs=epochs)
        (fp32_times, fp32_run), (bf16_times, bf16_run) = (
            timed_training(config, data_path) for config in (fp32, bf16))
        fp32_s, bf16_s = (statistics.median(times.seconds[1:])
                          for times in (fp32_times, bf16_times))
        losses = " / ".join(f"{run['final_metrics']['val_reconstruction_loss']:.4f}"
                            for run in (fp32_run, bf16_run))
        auto = precision.resolve_config(manifest.config_of(name)).policy
        print(f"| {name} | {fp32_s:.1f} ({fp32.jit_compile}) | {bf16_s:.1f} | "
              f"{fp32_s / bf16_s:.2f}x | {losses} | {auto} |", flush=True)


def _step_ms(model, dataset, batches):
    """The best of STEP_TIME_REPEATS epochs over `dataset`, in ms per batch."""
    model.fit(dataset, epochs=1, verbose=0)  # compiles
    best = _best_seconds(lambda: model.fit(dataset, epochs=1, verbose=0), STEP_TIME_REPEATS)
    return 1000 * best / batches


def hand_written_step_ms(units, batch, dtype, l1, optimizer=HAND_SGD, repeats=HAND_REPEATS):
    """ms per step of a minimal TensorFlow dictionary step: x_hat = relu(x W_e + b_e) W_d
    + b_d, MSE + l1 * mean L1 of the code, matmuls in `dtype` with float32 weights.

    `optimizer` HAND_SGD is plain gradient descent; HAND_ADAM is the update of
    `pipeline.optimizers.FusedAdam` (TensorFlow's `ResourceApplyAdam`, Keras'
    defaults). HAND_STEPS_PER_CALL steps run per call, as `steps_per_execution`
    does for `fit`. Nothing else of a Keras step (metrics, constraint, dead-latent
    bookkeeping, callbacks) is in it: it is the floor of a step of this size.
    """
    if optimizer not in (HAND_SGD, HAND_ADAM):
        raise ValueError(f"Expected `optimizer` in {[HAND_SGD, HAND_ADAM]}. "
                         f"Received: optimizer={optimizer!r}")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, PIXELS), dtype=np.float32))
    weights = [tf.Variable(rng.normal(0, HAND_INIT_STDDEV, shape).astype("float32"))
               for shape in ((PIXELS, units), (units, PIXELS))]
    biases = [tf.Variable(tf.zeros(units)), tf.Variable(tf.zeros(PIXELS))]
    variables = weights + biases
    moments = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in variables]
    step_count = tf.Variable(0.0)

    def step(x):
        with tf.GradientTape() as tape:
            h = tf.nn.relu(tf.matmul(tf.cast(x - biases[1], dtype), tf.cast(weights[0], dtype))
                           + tf.cast(biases[0], dtype))
            x_hat = tf.cast(tf.matmul(h, tf.cast(weights[1], dtype)), tf.float32) + biases[1]
            loss = tf.reduce_mean(tf.square(x_hat - x)) + l1 * tf.reduce_mean(
                tf.reduce_sum(tf.cast(h, tf.float32), axis=1))
        gradients = tape.gradient(loss, variables)
        step_count.assign_add(1.0)
        for variable, gradient, (m, v) in zip(variables, gradients, moments):
            if optimizer == HAND_SGD:
                variable.assign_sub(HAND_LEARNING_RATE * gradient)
                continue
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=m.handle, v=v.handle,
                beta1_power=tf.pow(optimizers.BETA_1, step_count),
                beta2_power=tf.pow(optimizers.BETA_2, step_count), lr=HAND_LEARNING_RATE,
                beta1=optimizers.BETA_1, beta2=optimizers.BETA_2, epsilon=optimizers.EPSILON,
                grad=gradient)

    @tf.function
    def steps(x):
        for _ in range(HAND_STEPS_PER_CALL):
            step(x)

    calls = max(1, repeats // HAND_STEPS_PER_CALL)
    for _ in range(max(1, WARMUP_STEPS // HAND_STEPS_PER_CALL)):
        steps(x)

    def timed():
        for _ in range(calls):
            steps(x)

    return 1000 * _best_seconds(timed, STEP_TIME_REPEATS) / (calls * HAND_STEPS_PER_CALL)


def step_times_table(names, data_path, batches=STEP_TIME_BATCHES):
    """ms per training step of each zoo model in float32 and mixed_bfloat16 (no XLA),
    with Keras' Adam, FusedAdam (pipeline.optimizers) and SGD (no optimizer state),
    on `batches` cached MNIST batches; then a hand-written TensorFlow step of the
    same dictionary size, for the dictionaries."""
    mnist = datasets.load_mnist(data_path)
    choices = (("Keras Adam", keras.optimizers.Adam), ("FusedAdam", optimizers.FusedAdam),
               ("SGD", keras.optimizers.SGD))
    print("| zoo model | precision | " + " | ".join(f"{label} ms/step" for label, _ in choices)
          + " |\n|---|---|" + "---|" * len(choices))
    for name in names or STEP_TIME_MODELS:
        for policy in (precision.FLOAT32, precision.MIXED_BFLOAT16):
            config = manifest.config_of(name, precision=policy, jit_compile=False)
            x = mnist.x_train[:batches * config.batch_size]
            dataset = tf.data.Dataset.from_tensor_slices((x, x)).batch(config.batch_size).cache()
            cells = []
            for _, optimizer in choices:
                keras.utils.set_random_seed(config.seed)
                model = training.build_model(config, policy=policy)
                initialize = models.get_family(config.model).data_initializer
                if initialize is not None:
                    initialize(model, x)
                objective.compile_model(model, learning_rate=config.learning_rate,
                                        jit_compile=False,
                                        steps_per_execution=config.steps_per_execution,
                                        optimizer=optimizer)
                cells.append(f"{_step_ms(model, dataset, batches):.2f}")
            print(f"| {name} | {policy} | {' | '.join(cells)} |", flush=True)
    for name in names or STEP_TIME_MODELS:
        config = manifest.config_of(name)
        if config.model != "dictionary":
            continue
        units, l1 = config.architecture["code_size"], config.penalty.get("l1", 0.0)
        cells = []
        for optimizer in (HAND_SGD, HAND_ADAM):
            fp32, bf16 = (hand_written_step_ms(units, config.batch_size, dtype, l1, optimizer)
                          for dtype in (tf.float32, tf.bfloat16))
            cells.append(f"{optimizer}: float32 {fp32:.2f} ms, bf16 {bf16:.2f} ms "
                         f"({fp32 / bf16:.2f}x)")
        print(f"\n{name}'s size by hand (a ReLU + L1 step of {units} latents, batch "
              f"{config.batch_size}, l1 {l1:g}, nothing else of a Keras step): "
              f"{'; '.join(cells)}", flush=True)


class EpochTestBCE(keras.callbacks.Callback):
    """The test-set BCE after each epoch (`pipeline.metrics.binary_cross_entropy`, as in
    the eval reports) and the training seconds until then, its own time left out."""

    def __init__(self, x_test):
        super().__init__()
        self.x_test = x_test
        self.points = []

    def on_train_begin(self, logs=None):
        self.start, self.excluded = time.perf_counter(), 0.0

    def on_epoch_end(self, epoch, logs=None):
        begin = time.perf_counter()
        trained = begin - self.start - self.excluded
        x_hat = self.model.predict(self.x_test, batch_size=QUALITY_BATCH, verbose=0)
        self.points.append((trained, metrics.binary_cross_entropy(self.x_test, x_hat)))
        self.excluded += time.perf_counter() - begin


def time_to_quality_table(names, data_path, tolerance=QUALITY_TOLERANCE):
    """Trains each zoo model by its preset and prints the training seconds until its
    test BCE is first within `tolerance` of the shipped model's (NAME.eval.json)."""
    x_test = datasets.load_mnist(data_path).x_test
    print(f"| zoo model | shipped test BCE | first within {tolerance:.0%} | training s to it "
          f"| of s in all | final test BCE |\n|---|---|---|---|---|---|")
    for name in names or manifest.ZOO:
        shipped = json.loads((SAVED_MODELS / f"{name}.eval.json").read_text())["bce"]
        tracker = EpochTestBCE(x_test)
        timed_training(manifest.config_of(name), data_path, tracker)
        reached = [(epoch, seconds) for epoch, (seconds, bce) in enumerate(tracker.points, 1)
                   if bce <= shipped * (1 + tolerance)]
        first = f"epoch {reached[0][0]}" if reached else "not reached"
        seconds = f"{reached[0][1]:.0f}" if reached else "-"
        print(f"| {name} | {shipped:.4f} | {first} | {seconds} | {tracker.points[-1][0]:.0f} | "
              f"{tracker.points[-1][1]:.4f} |", flush=True)


class EpochTimes(keras.callbacks.Callback):
    """Wall seconds of each epoch (training, validation and diagnostics), and of the
    wait between the start of an epoch and its first batch, where the stall was."""

    def __init__(self):
        super().__init__()
        self.seconds, self.waits = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.first = time.perf_counter(), None

    def on_train_batch_begin(self, batch, logs=None):
        if self.first is None:
            self.first = time.perf_counter()
            self.waits.append(self.first - self.start)

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def epoch_times_table(names, data_path, epochs=EPOCH_TIME_EPOCHS):
    """Trains each zoo model for `epochs` and prints every epoch's seconds and the
    spread of the steady ones (all but the first, which compiles)."""
    print("| zoo model | seconds per epoch | steady max / min | steady median "
          "| epoch-start wait, ms (max) |\n|---|---|---|---|---|")
    for name in names or EPOCH_TIME_MODELS:
        timer, _ = timed_training(manifest.config_of(name, epochs=epochs), data_path)
        steady = timer.seconds[1:]
        print(f"| {name} | {', '.join(f'{s:.2f}' for s in timer.seconds)} | "
              f"{max(steady) / min(steady):.2f} | {statistics.median(steady):.2f} | "
              f"{1000 * max(timer.waits[1:]):.0f} |", flush=True)


# Runs argv[2:] in a grandchild forked from this small process and writes its peak
# RSS (kB) to argv[1]: ru_maxrss survives fork and exec, so a child forked straight
# from this benchmark (0.6 GB with TensorFlow loaded) would report at least that.
_MEASURED_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as file:
    file.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(command, env=None):
    """Runs `command`; returns (wall seconds, peak RSS MB of that process alone, output)."""
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak_kb"
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", _MEASURED_LAUNCH, str(peak_file), *map(str, command)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
        seconds = time.perf_counter() - start
        if result.returncode:
            raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}")
        return seconds, int(peak_file.read_text()) / 1024, result.stdout


def data_args(data_path):
    """["--data", PATH], or [] when neither --data nor $SPARSE_AE_ZOO_DATA gave one (the
    child then takes its own default, not a file named "None")."""
    return ["--data", str(data_path)] if data_path else []


def train_command(args, epochs, data_path, scratch):
    return [sys.executable, "train.py", *args, "--epochs", str(epochs), *data_args(data_path),
            "--name", "speed", "--out", str(scratch / "out"), "--logdir", str(scratch / "logs")]


def memory_table(names, data_path, epochs=MEMORY_EPOCHS):
    """Peak RSS of each zoo model's whole `train.py` process (data, training, export)."""
    print("| zoo model | precision | peak RSS MB | wall s |\n|---|---|---|---|")
    for name in names or manifest.ZOO:
        scratch = Path(tempfile.mkdtemp())
        try:
            seconds, peak, _ = run_process(
                train_command(["--preset", name], epochs, data_path, scratch))
            policy = precision.resolve_config(manifest.config_of(name)).policy
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(f"| {name} | {policy} | {peak:,.0f} | {seconds:.1f} |", flush=True)


def eval_memory_table(names, data_path):
    """Peak RSS of each shipped model's whole `evaluate.py` process (the README's
    command: metrics, both probes, pictures), writing to a scratch folder."""
    print("| zoo model | code units | peak RSS MB | wall s | against the shipped report |\n"
          "|---|---|---|---|---|")
    for name in names or manifest.ZOO:
        scratch = Path(tempfile.mkdtemp())
        try:
            seconds, peak, output = run_process([sys.executable, "evaluate.py", name,
                                                 *data_args(data_path), "--out", str(scratch)])
            units = json.loads((scratch / f"{name}.eval.json").read_text())["code_num_units"]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        same = "matches" if "\nmatches " in output else "differs: " + "; ".join(
            line.strip() for line in output.split("differs from", 1)[-1].splitlines()[1:])
        print(f"| {name} | {units:,} | {peak:,.0f} | {seconds:.0f} | {same} |", flush=True)


def startup_seconds():
    """Seconds to import the training stack in a fresh process (what --help avoids)."""
    seconds, _, _ = run_process([sys.executable, "-c", "from pipeline import training"])
    return seconds


def peers_table(data_path, torch_python=None, repeats=PEER_REPEATS):
    """Whole-process wall time and peak RSS of train.py against each peer's own script,
    run alternately `repeats` times; medians and their ratio."""
    print(f"start-up (python -c 'from pipeline import training'): {startup_seconds():.1f} s\n")
    print("| comparison | epochs | project s | peer s | ratio | project / peer peak MB |\n"
          "|---|---|---|---|---|---|")
    for label, epochs, args, script, needs_torch in PEER_RUNS:
        python = torch_python if needs_torch else sys.executable
        if python is None:
            print(f"| {label} | {epochs} | - | - | skipped: no --torch-python | - |")
            continue
        ours, theirs = [], []
        for _ in range(repeats):
            scratch = Path(tempfile.mkdtemp())
            try:
                ours.append(run_process(train_command(args, epochs, data_path, scratch)))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            theirs.append(run_process([python, str(PEERS / script), *data_args(data_path),
                                       "--epochs", str(epochs)]))
        ours_s = statistics.median(r[0] for r in ours)
        theirs_s = statistics.median(r[0] for r in theirs)
        print(f"| {label} | {epochs} | {ours_s:.1f} | {theirs_s:.1f} | {ours_s / theirs_s:.2f} | "
              f"{max(r[1] for r in ours):,.0f} / {max(r[1] for r in theirs):,.0f} |", flush=True)


def replicas_table(replicas, names=REPLICA_MODELS):
    """Prints images/s of zoo models mirrored over `replicas` logical CPU devices."""
    strategy = distribution.make_strategy("mirrored", cpu_replicas=replicas)
    for name in names:
        config = manifest.config_of(name)
        config, _ = distribution.adapt_config(config, strategy)
        rate, _ = throughput(config, strategy=strategy)
        print(f"| {name} | {replicas} | {config.batch_size} | {config.jit_compile} "
              f"| {config.steps_per_execution} | {rate:,.0f} |", flush=True)


def print_rows(label, runs, peak):
    """Measures each (name, config) and prints a Markdown table row for it."""
    print(f"| {label} | batch | XLA | steps/exec | images/s | GFLOP/s | % of matmul |")
    print("|---|---|---|---|---|---|---|")
    for name, config in runs:
        rate, model = throughput(config)
        flops = "- | -"
        if config.model in ("dense", "dictionary"):
            gflops = TRAIN_FLOPS_PER_FORWARD * dense_forward_flops(model) * rate / 1e9
            flops = f"{gflops:.1f} | {100 * gflops / peak:.0f}%"
        print(f"| {name} | {config.batch_size} | {config.jit_compile} | "
              f"{config.steps_per_execution} | {rate:,.0f} | {flops} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-sweep", action="store_true", help="presets only")
    parser.add_argument("--cpu-replicas", type=int, default=None,
                        help="only: images/s under MirroredStrategy over N logical CPUs")
    parser.add_argument("--precision", nargs="*", metavar="NAME", default=None,
                        help=f"only: float32 against mixed_bfloat16 seconds per epoch of "
                             f"these zoo models over {PRECISION_EPOCHS} epochs (all when none "
                             f"are named)")
    parser.add_argument("--epoch-times", nargs="*", metavar="NAME", default=None,
                        help=f"only: seconds of each of {EPOCH_TIME_EPOCHS} epochs of these zoo "
                             f"models (default {', '.join(EPOCH_TIME_MODELS)})")
    parser.add_argument("--memory", nargs="*", metavar="NAME", default=None,
                        help="only: peak RSS of a training process of these zoo models (all "
                             "when none are named)")
    parser.add_argument("--eval-memory", nargs="*", metavar="NAME", default=None,
                        help="only: peak RSS of an evaluate.py process of these shipped "
                             "models (all when none are named)")
    parser.add_argument("--peers", action="store_true",
                        help="only: whole-process time of train.py against the peers' own code")
    parser.add_argument("--torch-python", default=None,
                        help="a Python with torch, for the PyTorch peers of --peers")
    parser.add_argument("--time-to-quality", nargs="*", metavar="NAME", default=None,
                        help="only: training seconds until each zoo model's test BCE is within "
                             f"{100 * QUALITY_TOLERANCE:g}%% of the shipped one's (all when none "
                             f"are named)")
    parser.add_argument("--step-times", nargs="*", metavar="NAME", default=None,
                        help="only: ms per training step in float32 and bf16 with Keras' Adam, "
                             f"FusedAdam and SGD (default {', '.join(STEP_TIME_MODELS)})")
    parser.add_argument("--repeats", type=int, default=PEER_REPEATS,
                        help="--peers: alternating runs of each pair (medians are printed)")
    parser.add_argument("--data", default=None, help="MNIST .npz (default $SPARSE_AE_ZOO_DATA)")
    args = parser.parse_args(argv)
    data_path = datasets.resolve_data_path(args.data)
    # The tables that train zoo models by name: the first flag given runs alone.
    for names, table in ((args.precision, precision_table), (args.epoch_times, epoch_times_table),
                         (args.memory, memory_table), (args.eval_memory, eval_memory_table),
                         (args.time_to_quality, time_to_quality_table),
                         (args.step_times, step_times_table)):
        if names is not None:
            table(names, data_path)
            return
    if args.peers:
        peers_table(data_path, args.torch_python, args.repeats)
        return
    if args.cpu_replicas:
        print("| zoo model | CPU replicas | global batch | XLA | steps/exec | images/s |\n"
              "|---|---|---|---|---|---|")
        replicas_table(args.cpu_replicas)
        return
    peak = matmul_gflops()
    print(f"fp32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: {peak:.1f} GFLOP/s\n")
    print_rows("zoo model", [(name, manifest.config_of(name)) for name in manifest.ZOO], peak)
    if args.no_sweep:
        return
    print("\nSweep (the l1 model of each family):\n")
    print_rows("family", [(family, manifest.config_of(f"{family}-l1", **setting))
                          for family, settings in SWEEP.items() for setting in settings], peak)

if __name__ == "__main__":
    main()
