"""Train (or re-evaluate) the zoo and print the README's results table.

    python -m benchmarks.zoo --data ../shared/data/mnist.npz                  # train + evaluate
    python -m benchmarks.zoo --data ../shared/data/mnist.npz --evaluate-only  # shipped models

Each model is trained by the real command line, `python train.py --model M
--reg R` with that pair's defaults (configs.ZOO_MODELS), then evaluated on the
full test set with evaluate.py's `evaluate`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import evaluate
from zoo import configs

ROOT = Path(__file__).resolve().parents[1]

# name -> (peer, the peer's full-test BCE measured with its own code, target BCE).
PEERS = {
    "dense-l1": ("Keras blog sparse AE, Dense(32, relu, l1), 100 epochs", 0.0928, 0.088),
    "dense-kl": ("PyTorch sparse AE 784-64 sigmoid, 50 epochs", 0.1102, 0.105),
    "conv-l1": ("PyTorch conv sparse AE, L1, 20 epochs", 0.0762, 0.072),
    "conv-kl": ("same repo, KL variant, 20 epochs", 0.0828, 0.079),
    "conv-denoise": ("Keras blog denoising conv AE", None, None),
}
# KL models: mean code activation within this relative distance of rho.
RHO_TOLERANCE = 0.10
# KL models: at most this fraction of dead units.
MAX_DEAD_FRACTION = 0.05


def train_command(name, data, out, logroot):
    """The train.py command line that makes zoo model `name`."""
    model, reg, flags = configs.ZOO_MODELS[name]
    command = [sys.executable, "train.py", "--model", model, "--reg", reg]
    for key, value in flags.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    command += ["--name", name, "--out", str(out), "--logdir", str(Path(logroot) / name)]
    return command + (["--data", str(data)] if data else [])


def verdict(name, report):
    """Whether the model meets its zoo targets: "yes", "no (...)" or "-"."""
    failures = []
    target = PEERS.get(name, (None, None, None))[2]
    if target is not None and report["bce"] > target:
        failures.append(f"BCE {report['bce']:.4f} > {target}")
    if "rho" in report:
        if abs(report["code_mean_activation"] - report["rho"]) > RHO_TOLERANCE * report["rho"]:
            failures.append("mean activation off rho")
        if report["code_dead_fraction"] >= MAX_DEAD_FRACTION:
            failures.append("dead units")
    if target is None and "rho" not in report:
        return "-"
    return "yes" if not failures else "no (" + ", ".join(failures) + ")"


def table(rows):
    """The results as a Markdown table."""
    header = ("| model | test BCE | target | peer BCE | MSE | L0 / units | dead % | mean act (rho) "
              "| probe acc | params | s/epoch | epochs | peak MB | meets target |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, run, report in rows:
        _, peer_bce, target = PEERS.get(name, (None, None, None))
        rho = f" ({report['rho']:g})" if "rho" in report else ""
        lines.append(
            f"| {name} | {report['bce']:.4f} | {target or 'report'} | {peer_bce or '-'} "
            f"| {report['mse']:.4f} | {report['code_l0']:.1f} / {report['code_num_units']} "
            f"| {100 * report['code_dead_fraction']:.1f} | {report['code_mean_activation']:.4f}{rho} "
            f"| {100 * report.get('probe_accuracy', float('nan')):.2f}% | {report['parameters']:,} "
            f"| {run['seconds_per_epoch']:.1f} | {run['epochs_completed']} "
            f"| {run['peak_memory_mb']:.0f} | {verdict(name, report)} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", default=None, help="MNIST .npz (default: $SPARSE_AE_ZOO_DATA)")
    parser.add_argument("--out", default="saved_models", help="model folder")
    parser.add_argument("--logroot", default="logs", help="TensorBoard root")
    parser.add_argument("--only", nargs="+", choices=list(configs.ZOO_MODELS), default=None,
                        help="these zoo models only")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate the models in --out without training")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    rows = []
    for name in args.only or configs.ZOO_MODELS:
        if not args.evaluate_only:
            command = train_command(name, args.data, out, Path(args.logroot).resolve())
            print("$", " ".join(command[1:]), flush=True)
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        run = json.loads((out / f"{name}.json").read_text())
        report = evaluate.evaluate(out / f"{name}.keras", data=args.data)
        rows.append((name, run, report))
        print(f"{name}: test BCE {report['bce']:.4f}", flush=True)
    print(f"\nMachine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
          f"TensorFlow {rows[0][1]['versions']['tensorflow']}, Keras {rows[0][1]['versions']['keras']}")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
