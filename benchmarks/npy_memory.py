"""Peak memory of training a dictionary on a large float32 .npy of vectors.

    python -m benchmarks.npy_memory                  # 2 GB of 256-d vectors
    python -m benchmarks.npy_memory --gigabytes 8    # the issue's size

Writes a .npy of random vectors (sparse sums of unit-norm features, so there
is something to learn) into a temporary folder, trains one epoch of a TopK
dictionary on it with the real command line (`python train.py --data
big.npy ...`, pipeline/data.py streams it from disk) and prints the training
process's peak resident memory (VmHWM, as the run record's `peak_memory_mb`)
beside the file's size. The folder is removed at the end.
"""

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GIB = 1 << 30
DIMENSIONS = 256
FEATURES = 1024
ACTIVE_FEATURES = 8
WRITE_ROWS = 1 << 13  # rows generated and written at a time
TRAIN_FLAGS = ("--model", "dictionary", "--reg", "none", "--code-activation", "topk",
               "--k", "32", "--code-size", "512", "--epochs", "1", "--batch-size", "4096")


def write_vectors(path, rows, dimensions=DIMENSIONS, seed=0):
    """Writes a float32 (rows, dimensions) .npy chunk by chunk (never whole in memory)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(FEATURES, dimensions)).astype("float32")
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("float32")),
              "fortran_order": False, "shape": (rows, dimensions)}
    with open(path, "wb") as file:
        np.lib.format.write_array_header_2_0(file, header)
        for start in range(0, rows, WRITE_ROWS):
            count = min(WRITE_ROWS, rows - start)
            active = rng.random((count, FEATURES)) < ACTIVE_FEATURES / FEATURES
            codes = active * rng.exponential(size=(count, FEATURES)).astype("float32")
            file.write((codes @ features).astype("float32").tobytes())


def run(gigabytes):
    """Writes the file, trains on it in a subprocess, returns the measurements."""
    rows = math.ceil(gigabytes * GIB / (DIMENSIONS * 4))
    folder = Path(tempfile.mkdtemp(prefix="npy-memory-"))
    try:
        path = folder / "vectors.npy"
        start = time.perf_counter()
        write_vectors(path, rows)
        written = time.perf_counter() - start
        command = [sys.executable, "train.py", *TRAIN_FLAGS, "--data", str(path),
                   "--out", str(folder / "out"), "--logdir", str(folder / "logs"),
                   "--name", "npy-memory"]
        print("$", " ".join(command[1:]), flush=True)
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        seconds = time.perf_counter() - start
        summary = json.loads((folder / "out" / "npy-memory.json").read_text())
        return {"file_gb": path.stat().st_size / GIB, "rows": rows, "dimensions": DIMENSIONS,
                "write_seconds": written, "train_process_seconds": seconds,
                "peak_memory_mb": summary["peak_memory_mb"],
                "val_fvu": summary["final_metrics"].get("val_fvu")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the .npy")
    args = parser.parse_args(argv)
    if not args.gigabytes > 0:
        parser.error(f"expected --gigabytes > 0. Received: {args.gigabytes}")
    result = run(args.gigabytes)
    print(json.dumps(result, indent=2))
    print(f"peak RSS {result['peak_memory_mb']:.0f} MB training on a "
          f"{result['file_gb']:.2f} GB .npy ({result['rows']:,} x {DIMENSIONS} float32)")
    return result


if __name__ == "__main__":
    main()
