"""Train (or re-evaluate) the zoo and print the README's results table.

    python -m benchmarks.zoo --data ../shared/data/mnist.npz                  # train + evaluate
    python -m benchmarks.zoo --data ../shared/data/mnist.npz --evaluate-only  # shipped models

Each model is trained by the real command line, `python train.py --preset
NAME` (pipeline/manifest.py; for "M-R" models the same as `--model M --reg R`),
then evaluated on the full test set with `pipeline.evaluation.evaluate`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from pipeline import data as data_lib
from pipeline import evaluation
from pipeline import manifest

ROOT = Path(__file__).resolve().parents[1]
# Zoo models whose peer runs side by side: name -> the peer's own script.
PEER_SCRIPTS = {"conv-dense-l1": "benchmarks/peers/keras_blog_sparse_conv.py"}


def run_peer(name, data, out):
    """Runs the peer of `name` for the same epochs; saves and returns its result."""
    epochs = manifest.config_of(name).epochs
    command = [sys.executable, PEER_SCRIPTS[name], "--data", str(data), "--epochs", str(epochs)]
    print("$", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    peer = json.loads(result.stdout.strip().splitlines()[-1])
    (out / f"{name}.peer.json").write_text(json.dumps(peer, indent=2, sort_keys=True) + "\n")
    return peer


def peer_bce(name, out):
    """The peer's test BCE: measured side by side (NAME.peer.json) or from the manifest."""
    path = out / f"{name}.peer.json"
    if path.is_file():
        return json.loads(path.read_text())["test_bce"]
    entry = manifest.ZOO[name]
    return entry.peer[1] if entry.peer else None


def train_command(name, data, out, logroot):
    """The train.py command line that makes zoo model `name`."""
    entry = manifest.ZOO[name]
    if name == f"{entry.model}-{entry.reg}":
        command = [sys.executable, "train.py", "--model", entry.model, "--reg", entry.reg]
    else:
        command = [sys.executable, "train.py", "--preset", name]
    command += ["--name", name, "--out", str(out), "--logdir", str(Path(logroot) / name),
                # Retraining the zoo replaces its evaluated exports on purpose.
                "--overwrite"]
    return command + (["--data", str(data)] if data else [])


def probe_cell(report):
    """ "98.32% / 98.35%": the logistic-regression and linear-SVM probes, if measured."""
    cells = [f"{100 * report[key]:.2f}%" if key in report else "-"
             for key in ("probe_accuracy", "probe_svm_accuracy")]
    return " / ".join(cells)


def pixel_probes(data_path):
    """The probes' cell of the raw pixels (the baseline every model is read against)."""
    mnist = data_lib.load_mnist(data_path)
    return probe_cell(evaluation.probe_report(mnist.x_train, mnist.y_train,
                                              mnist.x_test, mnist.y_test))


def pixel_row(cell):
    """The full table's row of the raw pixels."""
    return f"| raw pixels | - | - | - | 0 | 0 | 784 / 784 | - | - | {cell} | 0 | - | - | - | - |"


def table(rows, out, pixels=None):
    """The results as a Markdown table (`pixels`: the raw-pixel row, last)."""
    header = ("| model | test BCE | target | peer BCE | MSE | FVU | L0 (± sd) / units | dead % | mean act (rho) "
              "| probe LR / SVM | params | s/epoch | epochs | peak MB | meets target |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, run, report in rows:
        entry = manifest.ZOO[name]
        peer = peer_bce(name, out)
        target = entry.targets.get("max_bce") or ("< peer" if entry.targets.get("below_peer_bce") else None)
        rho = f" ({report['rho']:g})" if "rho" in report else ""
        spread = f" ± {report['code_l0_std']:.1f}" if "code_l0_std" in report else ""
        lines.append(
            f"| {name} | {report['bce']:.4f} | {target or 'report'} | {f'{peer:.4f}' if peer else '-'} "
            f"| {report['mse']:.4f} | {1 - report['explained_variance']:.3f} "
            f"| {report['code_l0']:.1f}{spread} / {report['code_num_units']} "
            f"| {100 * report['code_dead_fraction']:.1f} | {report['code_mean_activation']:.4f}{rho} "
            f"| {probe_cell(report)} "
            f"| {report['parameters']:,} "
            f"| {run['seconds_per_epoch']:.1f} | {run['epochs_completed']} "
            f"| {run['peak_memory_mb']:.0f} | {manifest.verdict(name, report, peer)} |"
        )
    return "\n".join(lines + ([pixels] if pixels else []))


def compact_table(rows, models_dir, pixels=None):
    """The README's table: headline numbers only."""
    lines = ["| model | what it is | test BCE | probe LR / SVM | L0 / units | dead % | .keras MB |",
             "|---|---|---|---|---|---|---|"]
    for name, _, report in rows:
        size = (Path(models_dir) / f"{name}.keras").stat().st_size / 2**20
        lines.append(
            f"| {name} | {manifest.SUMMARIES.get(name, '')} | {report['bce']:.4f} "
            f"| {probe_cell(report)} | {report['code_l0']:.0f} / {report['code_num_units']} "
            f"| {100 * report['code_dead_fraction']:.1f} | {size:.1f} |")
    if pixels:
        lines.append(f"| raw pixels | the probes' baseline | - | {pixels} | 784 / 784 | - | - |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", default=None, help="MNIST .npz (default: $SPARSE_AE_ZOO_DATA)")
    parser.add_argument("--out", default="saved_models", help="model folder")
    parser.add_argument("--logroot", default="logs", help="TensorBoard root")
    parser.add_argument("--only", nargs="+", choices=list(manifest.ZOO), default=None,
                        help="these zoo models only")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate the models in --out without training")
    parser.add_argument("--compact", action="store_true",
                        help="also print the README's compact table")
    parser.add_argument("--from-reports", action="store_true",
                        help="print the table from the NAME.eval.json reports in --out, "
                             "without training or evaluating")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    rows = []
    for name in args.only or manifest.ZOO:
        if not (args.evaluate_only or args.from_reports):
            command = train_command(name, args.data, out, Path(args.logroot).resolve())
            print("$", " ".join(command[1:]), flush=True)
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            if name in PEER_SCRIPTS:
                run_peer(name, args.data or os.environ.get("SPARSE_AE_ZOO_DATA"), out)
        run = json.loads((out / f"{name}.json").read_text())
        if args.from_reports:
            report = json.loads((out / f"{name}.eval.json").read_text())
        else:
            report = evaluation.evaluate(out / f"{name}.keras", data_path=args.data)
            print(f"{name}: test BCE {report['bce']:.4f}", flush=True)
        rows.append((name, run, report))
    print(f"\nMachine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
          f"TensorFlow {rows[0][1]['versions']['tensorflow']}, Keras {rows[0][1]['versions']['keras']}")
    pixels = pixel_probes(args.data)
    print(table(rows, out, pixel_row(pixels)))
    if args.compact:
        print()
        print(compact_table(rows, out, pixels))
    return rows


if __name__ == "__main__":
    main()
