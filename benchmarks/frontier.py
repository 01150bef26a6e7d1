"""The sparsity–fidelity frontier of the dictionary's code kinds.

    python -m benchmarks.frontier --data ../shared/data/mnist.npz           # the full sweep
    python -m benchmarks.frontier --data ../shared/data/mnist.npz --quick   # a few minutes

For each kind of sparse code (TopK and BatchTopK over k, lifetime WTA over the
lifetime fraction, ReLU + L1 over l1, sigmoid + KL over beta) it trains a
dictionary of one size at each point of the sparsity knob, evaluates it on the
test set (FVU, L0, dead units, the zoo's linear probe) and draws two PNGs:
FVU vs L0 and probe accuracy vs L0, one line per kind, with the shipped
dictionary models of the zoo marked. It prints one Markdown table.
"""

import argparse
import json
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline import config as config_lib  # noqa: E402
from pipeline import data as data_lib  # noqa: E402
from pipeline import evaluation  # noqa: E402
from pipeline import manifest  # noqa: E402
from pipeline import training  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# kind -> (reg, options of every point, the knob, its values).
SWEEPS = {
    "topk": ("none", dict(code_activation="topk", aux_k=256), "k", (8, 16, 32, 64)),
    "batchtopk": ("none", dict(code_activation="batchtopk", aux_k=256), "k", (8, 16, 32, 64)),
    "wta": ("none", dict(code_activation="wta"), "lifetime_sparsity", (0.02, 0.05, 0.1, 0.2)),
    "l1": ("l1", dict(code_activation="relu", aux_k=256), "l1", (1e-4, 3e-4, 1e-3, 2e-3)),
    # The dict-kl preset's learning rate; beta on the scale of a per-pixel MSE.
    "kl": ("kl", dict(code_activation="sigmoid", rho=0.05, learning_rate=5e-3),
           "beta", (0.003, 0.01, 0.03, 0.1)),
}
FULL = dict(code_size=512, epochs=6, limit=None)
QUICK = dict(code_size=256, epochs=2, limit=6000)
PLOTS = {"fvu": "FVU (1 - explained variance)", "probe_accuracy": "linear probe accuracy"}


def sweep_points(quick):
    """(kind, knob value, TrainConfig, limit) of every point of the sweep."""
    scale = QUICK if quick else FULL
    for kind, (reg, options, knob, values) in SWEEPS.items():
        for value in values:
            options = {**options}
            if options.get("aux_k"):
                options["aux_k"] = min(options["aux_k"], scale["code_size"] // 2)
            config = config_lib.resolve_config(
                "dictionary", reg, code_size=scale["code_size"], epochs=scale["epochs"],
                **options, **{knob: value})
            yield kind, value, config, scale["limit"]


def run_point(name, config, limit, data_path, workdir):
    """Trains and evaluates one point; returns its test report plus the training seconds."""
    summary = training.train(config, data_path=data_path, limit=limit, name=name,
                             out=workdir / "out", logdir=workdir / "logs" / name)
    mnist = data_lib.load_mnist(data_path, limit=limit)
    model = keras.models.load_model(summary["exports"]["keras"])  # safe mode
    report, _, _ = evaluation.compute_metrics(model, mnist, threshold=config.active_threshold)
    return {**report, "seconds": summary["training_seconds_this_run"]}


def shipped_points(models_dir):
    """{kind: (L0, report)} of the zoo's dictionary models in `models_dir`."""
    points = {}
    for name, entry in manifest.ZOO.items():
        path = Path(models_dir) / f"{name}.eval.json"
        if entry.model == "dictionary" and path.is_file():
            points[name] = json.loads(path.read_text())
    return points


def plot(rows, shipped, metric, path):
    """One line per kind of `metric` against L0, shipped models as stars."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for kind in SWEEPS:
        points = sorted((r["code_l0"], r[metric]) for k, _, r in rows if k == kind)
        if points:
            ax.plot(*zip(*points), marker="o", label=kind)
    for name, report in shipped.items():
        if metric in report:
            ax.plot(report["code_l0"], report[metric], marker="*", markersize=14, color="black",
                    linestyle="none")
            ax.annotate(name, (report["code_l0"], report[metric]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("L0 (mean active units per test image)")
    ax.set_ylabel(PLOTS[metric])
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def table(rows):
    lines = ["| kind | knob | L0 | dead % | FVU | probe acc | BCE | s |", "|---|---|---|---|---|---|---|---|"]
    for kind, value, r in rows:
        lines.append(f"| {kind} | {SWEEPS[kind][2]}={value:g} | {r['code_l0']:.1f} "
                     f"| {100 * r['code_dead_fraction']:.1f} | {r['fvu']:.3f} "
                     f"| {100 * r['probe_accuracy']:.2f}% | {r['bce']:.4f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default=None, help="MNIST .npz (default: $SPARSE_AE_ZOO_DATA)")
    parser.add_argument("--quick", action="store_true",
                        help=f"small sweep: {QUICK} instead of {FULL}")
    parser.add_argument("--workdir", default="runs/frontier", help="models and logs of the sweep")
    parser.add_argument("--plots", default="docs", help="folder of the two PNGs")
    parser.add_argument("--models", default="saved_models", help="shipped models to mark")
    args = parser.parse_args(argv)
    workdir, plots = Path(args.workdir), Path(args.plots)
    plots.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind, value, config, limit in sweep_points(args.quick):
        # Run names are letters, digits, - and _ (no dot from a value like 0.05).
        name = f"{kind}-{SWEEPS[kind][3].index(value)}"
        report = run_point(name, config, limit, args.data, workdir)
        rows.append((kind, value, report))
        print(f"{kind} {SWEEPS[kind][2]}={value:g}: L0 {report['code_l0']:.1f}, "
              f"FVU {report['fvu']:.3f}, probe {100 * report['probe_accuracy']:.2f}%", flush=True)
    shipped = shipped_points(args.models)
    suffix = "_quick" if args.quick else ""
    for metric in PLOTS:
        print("wrote", plot(rows, shipped, metric, plots / f"frontier_{metric}{suffix}.png"))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
