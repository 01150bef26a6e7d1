"""One epoch of `model.fit` on each Keras backend: TensorFlow, JAX and PyTorch.

    python -m benchmarks.backends --data ../shared/data/mnist.npz
    python -m benchmarks.backends --models dict-l1 --backends jax torch --limit 6000

Each backend runs in a process of its own (Keras reads KERAS_BACKEND when it
is imported) on the same in-memory MNIST training images (float32 in [0, 1]),
with the zoo preset's model, batch size and steps per execution (1 on PyTorch,
the only value Keras' torch trainer takes), Adam at the
preset's learning rate and the loss the pipeline picks for the output (binary
cross-entropy after a sigmoid, else MSE), and `jit_compile="auto"` (TensorFlow
on a CPU: no XLA, as the presets; JAX: jit; PyTorch: eager). A warm-up `fit` on
one execution's worth of images compiles the step first; the epoch is timed
after it. Not the pipeline (`train.py`), which is TensorFlow's: no tf.data, no
callbacks, Keras' own Adam instead of the fused TensorFlow one.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("dict-l1", "conv-l1")


def load_images(path, limit=None):
    """MNIST's training images as float32 (N, 28, 28, 1) in [0, 1]."""
    with np.load(path, allow_pickle=False) as data:
        images = data["x_train"][:limit]
    return (images.astype("float32") / 255.0)[..., None]


def build(name, input_shape):
    """Zoo model `name` from its preset, compiled for the backend in use (see the docstring)."""
    import keras

    import models
    from pipeline import config as config_lib
    from pipeline import manifest

    config = manifest.config_of(name)
    architecture = dict(config.architecture)
    architecture["code_activation"] = config_lib.build_code_activation(config)
    model = models.get_family(config.model).builder(
        input_shape, architecture.pop("code_size"),
        activity_regularizer=config_lib.build_penalty(config), name=name, **architecture)
    loss = ("binary_crossentropy" if architecture["output_activation"] == "sigmoid"
            else "mean_squared_error")
    optimizer = keras.optimizers.Adam(config.learning_rate, epsilon=config.adam_epsilon,
                                      global_clipnorm=config.global_clipnorm or None)
    model.compile(optimizer, loss, jit_compile="auto",
                  steps_per_execution=steps_per_execution(config))
    return model, config


def steps_per_execution(config):
    """The preset's, or 1 on PyTorch (Keras' torch trainer takes no other)."""
    import keras

    return 1 if keras.backend.backend() == "torch" else config.steps_per_execution


def time_epoch(name, images):
    """{compile_s, epoch_s, loss, batch_size} of one epoch of `name` on `images`."""
    import keras

    import models

    keras.utils.set_random_seed(0)
    model, config = build(name, images.shape[1:])
    initializer = models.get_family(config.model).data_initializer
    if initializer is not None:
        initializer(model, images)
    warm = images[:config.batch_size * steps_per_execution(config)]
    start = time.perf_counter()
    model.fit(warm, warm, batch_size=config.batch_size, epochs=1, verbose=0)
    compiled = time.perf_counter()
    history = model.fit(images, images, batch_size=config.batch_size, epochs=1, verbose=0)
    done = time.perf_counter()
    return {"compile_s": compiled - start, "epoch_s": done - compiled,
            "loss": float(history.history["loss"][-1]), "batch_size": config.batch_size}


def run_backend(backend, data, names, limit):
    """Runs `names` in a fresh process on `backend`; returns {name: time_epoch result}."""
    command = [sys.executable, "-m", "benchmarks.backends", "--child", "--data", data,
               "--models", *names] + (["--limit", str(limit)] if limit else [])
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"benchmarks.backends: error: {backend} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("SPARSE_AE_ZOO_DATA"),
                        help="MNIST .npz (default: $SPARSE_AE_ZOO_DATA)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N images only (default: all 60,000)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("Expected --data (or $SPARSE_AE_ZOO_DATA): the MNIST .npz")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # on the backend KERAS_BACKEND names
        images = load_images(args.data, args.limit)
        print(json.dumps({name: time_epoch(name, images) for name in args.models}))
        return None
    load_before = os.getloadavg()
    results = {backend: run_backend(backend, args.data, args.models, args.limit)
               for backend in args.backends}
    print(f"one epoch of model.fit, seconds (compile/warm-up in brackets); "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print("| model | batch | " + " | ".join(args.backends) + " |")
    print("|---|---|" + "---|" * len(args.backends))
    for name in args.models:
        cells = [f"{results[b][name]['epoch_s']:.1f} ({results[b][name]['compile_s']:.1f})"
                 for b in args.backends]
        print(f"| {name} | {results[args.backends[0]][name]['batch_size']} | "
              + " | ".join(cells) + " |")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
