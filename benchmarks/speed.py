"""Training throughput of the zoo models, and the dense model's GFLOP/s.

    python -m benchmarks.speed
    python -m benchmarks.speed --cpu-replicas 2    # MirroredStrategy, 2 logical CPUs

Prints images/s for each zoo model under its preset, a sweep of the settings
that matter (XLA, steps_per_execution, batch size), and for the dense models
the achieved GFLOP/s next to this machine's fp32 matmul rate measured in the
same run with a large `tf.linalg.matmul`.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import models
from pipeline import data as datasets
from pipeline import distribution
from pipeline import manifest
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
    best = float("inf")
    for _ in range(TIMED_REPEATS):
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        best = min(best, time.perf_counter() - start)
    return steps * config.batch_size / best, model


def precision_table(names=None):
    """Prints images/s of each zoo model in float32 (its preset's XLA setting) and in
    mixed_bfloat16 without XLA, the speed-up, and what "auto" picks on this CPU."""
    cpu, units = precision.cpu_features()
    print(f"CPU: {cpu}; bf16 units: {', '.join(units) or 'none'}\n")
    print("| zoo model | float32 images/s (XLA) | mixed_bfloat16 images/s (no XLA) | speed-up "
          "| auto picks |\n|---|---|---|---|---|")
    for name in names or manifest.ZOO:
        fp32 = manifest.config_of(name, precision=precision.FLOAT32)
        bf16 = manifest.config_of(name, precision=precision.MIXED_BFLOAT16, jit_compile=False)
        fp32_rate, _ = throughput(fp32)
        bf16_rate, _ = throughput(bf16)
        auto = precision.resolve(precision.AUTO, fp32.model).policy
        print(f"| {name} | {fp32_rate:,.0f} ({fp32.jit_compile}) | {bf16_rate:,.0f} | "
              f"{bf16_rate / fp32_rate:.2f}x | {auto} |", flush=True)


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
                        help="only: float32 against mixed_bfloat16 images/s of these zoo "
                             "models (all when none are named)")
    args = parser.parse_args(argv)
    if args.precision is not None:
        precision_table(args.precision)
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
