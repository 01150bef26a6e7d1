"""Ground truth: do the dictionaries find the features the data were made of?

    python -m benchmarks.synthetic --out reports/synthetic           # the full run
    python -m benchmarks.synthetic --quick --out reports/synthetic   # about a minute
    python -m benchmarks.synthetic --source saelens                  # SAELens' generator

Data (`make_data`): K unit-norm true features f_i (rows of F, random
directions in D dimensions, K > D: superposition) and

    x = sum_i a_i f_i + sigma eps,   a_i = s_i m_i,   eps ~ N(0, I_D)
    s_i ~ Bernoulli(p_i),            p_i = c (i + 1)^(-alpha), c: sum_i p_i = L0
    m_i ~ LogNormal(0, spread)  or  Uniform(1 - spread, 1 + spread)

With a correlation rho the firings share one latent factor g per example (a
Gaussian copula, which keeps every p_i): s_i = [sqrt(rho) g + sqrt(1 - rho)
e_i < Phi^-1(p_i)], g, e_i ~ N(0, 1). The arrays are written as .npy files
(train.npy, test.npy, features.npy) and every dictionary trains on them
through the same `--data` path as anyone's data (`pipeline.training.train`).
`--source saelens` takes the data from SAELens' own generator instead
(`sae_lens.synthetic.SyntheticModel`, Zipfian firing; the peers extra).

Metrics (`score`), with C_ji = cos(d_j, f_i) between decoder rows d_j and the
true features, on the test set:

    MMCS       = mean_i max_j C_ji
    recovered  = mean_i [max_j C_ji >= 0.9]
    MCC        = mean over the Hungarian one-to-one matching of |C| (SAELens'
                 `mean_correlation_coefficient`: scipy's linear_sum_assignment
                 on 1 - |C|)
    dead       = share of latents that never fire (h != 0) on the test set
    unmatched  = share of live latents whose max_i |C_ji| < 0.9
    FVU        = sum (x - x_hat)^2 / sum (x - mean x)^2;  L0 = mean_n #{j: h_nj != 0}

Every code activation is trained at the true L0 (and, without --quick, at
sparsity knobs around it for the plot of MMCS and FVU against L0). With the
peers extra (`pip install -e ".[peers]"`, torch CPU) SAELens' own TopK,
BatchTopK and JumpReLU SAEs train on the same arrays through its public
trainer (`benchmarks/peers/saelens_synthetic.py`, in the Python given by
--peer-python), with the same dictionary size, L0 target and number of
examples; both libraries' rows are printed in one table with their wall time.
"""

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import optimize
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "saelens_synthetic.py"
RECOVERED_COSINE = 0.9  # a true feature counts as found at this cosine
L0_APART = 1.5  # two rows' FVUs are compared only at L0s within this factor
GENERATE_ROWS = 8192  # rows drawn and written at a time
DATA_STREAM = 0x5EED  # the data's random stream: (seed, DATA_STREAM)
MAGNITUDES = ("lognormal", "uniform")
SOURCES = ("ours", "saelens")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The generator's parameters (module docstring)."""

    dimensions: int = 256
    features: int = 1024
    mean_active: float = 8.0
    exponent: float = 0.5
    magnitudes: str = "lognormal"
    spread: float = 0.5
    correlation: float = 0.0
    noise: float = 0.0
    train_examples: int = 200_000
    test_examples: int = 20_000
    seed: int = 0

    def __post_init__(self):
        for name in ("dimensions", "features", "train_examples", "test_examples"):
            _check_int(name, getattr(self, name))
        _check_int("seed", self.seed, low=0)
        if not 0 < self.mean_active <= self.features:
            raise ValueError(f"Expected `mean_active` in (0, features={self.features}]. "
                             f"Received: mean_active={self.mean_active!r}")
        if self.magnitudes not in MAGNITUDES:
            raise ValueError(f"Expected `magnitudes` to be one of {list(MAGNITUDES)}. "
                             f"Received: magnitudes={self.magnitudes!r}")
        limits = {"exponent": (0, math.inf), "spread": (0, math.inf), "noise": (0, math.inf),
                  "correlation": (0, 1)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low <= value < high):
                raise ValueError(f"Expected `{name}` in [{low}, {high}). "
                                 f"Received: {name}={value!r}")
        if self.magnitudes == "uniform" and self.spread > 1:
            raise ValueError("Expected `spread` <= 1 with uniform magnitudes (in [1 - spread, "
                             f"1 + spread], never negative). Received: spread={self.spread!r}")


def _check_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"Expected `{name}` to be an integer >= {low}. "
                         f"Received: {name}={value!r}")


def firing_probabilities(features, mean_active, exponent):
    """p_i = c (i + 1)^(-alpha), capped at 1, with c such that sum_i p_i = mean_active."""
    weights = np.arange(1, features + 1, dtype="float64") ** -exponent
    capped = np.zeros(features, dtype=bool)
    for _ in range(features):  # raise c until the capped ones leave the sum at mean_active
        free = mean_active - capped.sum()
        p = np.where(capped, 1.0, weights * free / weights[~capped].sum())
        if not np.any(p[~capped] > 1):
            return p
        capped |= p > 1
    return p


def true_features(features, dimensions, rng):
    """(K, D) float32 random unit-norm directions."""
    f = rng.normal(size=(features, dimensions))
    return (f / np.linalg.norm(f, axis=1, keepdims=True)).astype("float32")


def sample_codes(rows, probabilities, spec, rng):
    """a (rows, K) float32: which features fire (s) times how strongly (m)."""
    shape = (rows, len(probabilities))
    if spec.correlation:
        shared = rng.normal(size=(rows, 1))
        latent = math.sqrt(spec.correlation) * shared + \
            math.sqrt(1 - spec.correlation) * rng.normal(size=shape)
        fires = latent < stats.norm.ppf(probabilities)
    else:
        fires = rng.random(shape) < probabilities
    if spec.magnitudes == "lognormal":
        magnitude = rng.lognormal(0.0, spec.spread, size=shape)
    else:
        magnitude = rng.uniform(1 - spec.spread, 1 + spec.spread, size=shape)
    return (fires * magnitude).astype("float32")


def write_examples(path, rows, features, probabilities, spec, rng):
    """Writes (rows, D) float32 examples chunk by chunk; returns their mean L0."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("float32")),
              "fortran_order": False, "shape": (rows, features.shape[1])}
    active = 0
    with open(path, "wb") as file:
        np.lib.format.write_array_header_2_0(file, header)
        for start in range(0, rows, GENERATE_ROWS):
            codes = sample_codes(min(GENERATE_ROWS, rows - start), probabilities, spec, rng)
            x = codes @ features
            if spec.noise:
                x += spec.noise * rng.normal(size=x.shape)
            file.write(x.astype("float32").tobytes())
            active += int(np.count_nonzero(codes))
    return active / rows


def make_data(spec, folder):
    """Writes train.npy, test.npy, features.npy and data.json into `folder`; returns
    the data record (the spec and the measured mean L0 of the training examples)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # A stream of its own: default_rng(seed) is what the dictionary's initial decoder
    # rows are drawn from (models.dictionary), and true features equal to them would be
    # "found" before training starts.
    rng = np.random.default_rng((spec.seed, DATA_STREAM))
    features = true_features(spec.features, spec.dimensions, rng)
    probabilities = firing_probabilities(spec.features, spec.mean_active, spec.exponent)
    np.save(folder / "features.npy", features)
    true_l0 = write_examples(folder / "train.npy", spec.train_examples, features,
                             probabilities, spec, rng)
    write_examples(folder / "test.npy", spec.test_examples, features, probabilities, spec, rng)
    record = {"source": "ours", **dataclasses.asdict(spec), "true_l0": true_l0}
    (folder / "data.json").write_text(json.dumps(record, indent=2))
    return record


# === Metrics ===

def cosines(decoder, features):
    """C (N, K): cos between each decoder row (N, D) and each true feature (K, D)."""
    d = np.asarray(decoder, "float64")
    f = np.asarray(features, "float64")
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return d @ f.T


def mean_correlation_coefficient(c):
    """SAELens' MCC: the mean |C| over the Hungarian one-to-one matching of rows
    (latents) to columns (true features) that maximises the total |C|."""
    rows, columns = optimize.linear_sum_assignment(1 - np.abs(c))
    return float(np.abs(c)[rows, columns].mean())


def score(features, decoder, x, x_hat, fired, l0):
    """The benchmark's metrics (module docstring) of one dictionary.

    Args:
        features: (K, D) true features; decoder: (N, D) decoder rows.
        x, x_hat: (M, D) test examples and their reconstructions.
        fired: (N,) bool, latents that fired on some test example.
        l0: mean number of non-zero latents per test example.
    """
    c = cosines(decoder, features)
    best = c.max(axis=0)
    fired = np.asarray(fired, bool)
    live_best = np.abs(c[fired]).max(axis=1) if fired.any() else np.zeros(0)
    x, x_hat = np.asarray(x, "float64"), np.asarray(x_hat, "float64")
    return {
        "mmcs": float(best.mean()),
        "recovered": float(np.mean(best >= RECOVERED_COSINE)),
        "mcc": mean_correlation_coefficient(c),
        "dead": float(1 - fired.mean()),
        "unmatched": float(np.mean(live_best < RECOVERED_COSINE)) if fired.any() else 0.0,
        "fvu": float(np.sum((x - x_hat) ** 2) / np.sum((x - x.mean(axis=0)) ** 2)),
        "l0": float(l0),
    }


# === Our dictionaries ===

# kind -> (reg, options at every point, the sparsity knob, its value at the true
# L0 as a function of (true L0, latents), the factors of the plot's other points).
# TopK, BatchTopK, Matryoshka and JumpReLU keep their decoder rows free, starting at
# norm 0.1, as SAELens trains them: with unit-norm rows BatchTopK found 89% of the
# features, with free ones 99 to 100% (docs/synthetic.md).
FREE_ROWS = dict(unit_norm_decoder=False, initial_norm=0.1)
# JumpReLU is trained as SAELens trains it: theta from 0.01 (every latent fires at
# first), bandwidth 0.05, the quadratic L0 penalty around the target L0 (its knob),
# and the gradient clipped to global norm 1 before Adam with epsilon 1e-8, in
# SAELens' units (`saelens_units`). The clipping is what makes that dense start
# work: without it the latents' pre-activations outgrow theta and L0 ends above
# 200, in SAELens' own trainer as in ours (docs/synthetic.md).
JUMPRELU = dict(code_activation="jumprelu", initial_threshold=0.01, bandwidth=0.05,
                **FREE_ROWS)
# SAELens' coefficient of its quadratic L0 penalty, global norm of its gradient
# clipping (SAETrainer) and Adam's epsilon, in its units.
SAELENS_JUMPRELU = dict(l0_coefficient=1.0, global_clipnorm=1.0, adam_epsilon=1e-8)


def saelens_units(options, dimensions):
    """SAELens' loss-scaled settings in ours: SAELens sums the squared error over the D
    dimensions of an example where ours averages it, so its loss, and every gradient,
    is D times ours; the L0 coefficient, the clipping norm and Adam's epsilon scale by 1/D."""
    return {name: value / dimensions for name, value in options.items()}


KINDS = {
    "topk": ("none", dict(code_activation="topk", **FREE_ROWS), "k", lambda l0, n: round(l0),
             (0.5, 2)),
    "batchtopk": ("none", dict(code_activation="batchtopk", **FREE_ROWS), "k",
                  lambda l0, n: round(l0), (0.5, 2)),
    "jumprelu": ("none", JUMPRELU, "target_l0", lambda l0, n: float(l0), (0.5, 2)),
    "gated": ("none", dict(code_activation="gated"), "l1_coefficient", lambda l0, n: 0.04,
              (1 / 3, 3)),
    "matryoshka": ("none", dict(code_activation="batchtopk", **FREE_ROWS), "k",
                   lambda l0, n: round(l0), (0.5, 2)),
    "wta": ("none", dict(code_activation="wta"), "lifetime_sparsity", lambda l0, n: l0 / n,
            (0.5, 2)),
    "l1": ("l1", dict(code_activation="relu"), "l1", lambda l0, n: 0.025, (0.4, 2)),
}
# SAELens' counterparts of ours, compared row by row.
PEER_KINDS = ("topk", "batchtopk", "jumprelu")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """How every dictionary is trained (the same for SAELens' where it applies)."""

    latents: int = 2048
    epochs: int = 3
    batch_size: int = 1024
    learning_rate: float = 3e-3
    dead_after_examples: int = 20_000
    seed: int = 0

    def __post_init__(self):
        for name in ("latents", "epochs", "batch_size", "dead_after_examples"):
            _check_int(name, getattr(self, name))
        _check_int("seed", self.seed, low=0)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError("Expected `learning_rate` > 0. "
                             f"Received: learning_rate={self.learning_rate!r}")


def kind_options(kind, value, run, dimensions):
    """(reg, options) of one of our dictionaries of `kind` with its knob at `value`,
    on examples of `dimensions` values."""
    reg, options, knob, _, _ = KINDS[kind]
    options = {**options, knob: value}
    if options["code_activation"] in ("topk", "batchtopk"):
        options["aux_k"] = min(run.latents // 2, 128)  # AuxK, as SAELens' D / 2
        options["dead_after_examples"] = run.dead_after_examples
    if kind == "jumprelu":
        options.update(saelens_units(SAELENS_JUMPRELU, dimensions))
    if kind == "matryoshka":
        options["prefixes"] = (run.latents // 8, run.latents // 2)
    return reg, options


def knob_values(kind, true_l0, latents, quick):
    """The knob's value at the true L0 first, then the plot's other points."""
    _, _, knob, at_true, factors = KINDS[kind]
    value = at_true(true_l0, latents)
    values = [value] + ([] if quick else [value * f for f in factors])
    if knob == "k":
        values = [max(1, round(v)) for v in values]
    return list(dict.fromkeys(values))


def train_ours(kind, value, run, folder, workdir, name):
    """Trains one of our dictionaries on folder/train.npy; returns (model, seconds)."""
    import keras

    from pipeline import config as config_lib
    from pipeline import training

    dimensions = np.load(folder / "train.npy", mmap_mode="r").shape[1]
    reg, options = kind_options(kind, value, run, dimensions)
    config = config_lib.resolve_config(
        "dictionary", reg, code_size=run.latents, epochs=run.epochs,
        batch_size=run.batch_size, learning_rate=run.learning_rate, seed=run.seed,
        normalize="mean-norm", **options)
    summary = training.train(config, data_path=folder / "train.npy",
                             test_data=folder / "test.npy", name=name,
                             out=workdir / "out", logdir=workdir / "logs" / name,
                             overwrite=True)
    model = keras.models.load_model(summary["exports"]["keras"])  # safe mode
    return model, summary["training_seconds_this_run"]


def evaluate_ours(model, x):
    """(decoder rows (N, D), x_hat, fired (N,), L0) of our dictionary on `x`."""
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    h = encoder.predict(x, batch_size=4096, verbose=0)
    x_hat = decoder.predict(h, batch_size=4096, verbose=0)
    rows = np.asarray(decoder.get_layer("dictionary").kernel)
    return rows, x_hat, np.any(h != 0, axis=0), float(np.count_nonzero(h) / len(h))


# === SAELens' dictionaries (benchmarks/peers/saelens_synthetic.py) ===

def peer_available(python):
    """None if `python` can import sae_lens and torch, else why not (one line)."""
    try:
        done = subprocess.run([python, "-c", "import sae_lens, torch"], capture_output=True,
                              text=True, timeout=300)
    except OSError as error:
        return f"cannot run --peer-python {python} ({error.strerror})"
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return (f"{python} cannot import sae_lens ({last}); "
                "pip install -e \".[peers]\" (torch CPU), or give --peer-python")
    return None


def peer_command(python, architecture, folder, run, true_l0, examples, out, threads=0):
    """The command line that trains SAELens' `architecture` on folder/train.npy, with our
    AuxK's dead-latent window in steps."""
    return [python, str(PEER_SCRIPT), "train", "--architecture", architecture,
            "--train", str(folder / "train.npy"), "--test", str(folder / "test.npy"),
            "--latents", str(run.latents), "--l0", f"{true_l0:g}", "--examples", str(examples),
            "--batch-size", str(run.batch_size), "--learning-rate", f"{run.learning_rate:g}",
            "--seed", str(run.seed), "--dead-after-steps",
            str(max(1, run.dead_after_examples // run.batch_size)), "--out", str(out),
            *(["--threads", str(threads)] if threads else [])]


def train_peer(python, architecture, folder, run, true_l0, examples, workdir, threads=0):
    """Trains SAELens' `architecture` in `python`; returns (decoder, x_hat, fired, L0, seconds)."""
    out = workdir / f"saelens-{architecture}.npz"
    command = peer_command(python, architecture, folder, run, true_l0, examples, out, threads)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"SAELens' {architecture} failed: "
                           f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    with np.load(out, allow_pickle=False) as result:
        return (result["decoder"], result["x_hat"], result["fired"], float(result["l0"]),
                float(result["seconds"]))


# === The run ===

def saelens_data(python, spec, folder):
    """SAELens' generator's data (its defaults, our sizes) written into `folder`."""
    command = [python, str(PEER_SCRIPT), "generate", "--features", str(spec.features),
               "--dimensions", str(spec.dimensions), "--train-examples",
               str(spec.train_examples), "--test-examples", str(spec.test_examples),
               "--seed", str(spec.seed), "--folder", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    record = {"source": "saelens", **json.loads(done.stdout.strip().splitlines()[-1])}
    (Path(folder) / "data.json").write_text(json.dumps(record, indent=2))
    return record


def fitted_examples(folder, run):
    """Examples our training fits on per epoch (the training file less its validation split)."""
    from pipeline import config as config_lib
    from pipeline import data as data_lib

    x = data_lib.load_data(folder / "train.npy").x_train
    fraction = config_lib.TrainConfig.validation_fraction
    (fitted, _), _ = data_lib.split_validation(x, None, fraction, run.seed)
    return len(fitted)


def run_ours(kinds, folder, run, true_l0, workdir, quick):
    """One row per (kind, knob value) of our dictionaries."""
    x = np.load(folder / "test.npy", allow_pickle=False)
    features = np.load(folder / "features.npy", allow_pickle=False)
    rows = []
    for kind in kinds:
        knob = KINDS[kind][2]
        for index, value in enumerate(knob_values(kind, true_l0, run.latents, quick)):
            model, seconds = train_ours(kind, value, run, folder, workdir, f"{kind}-{index}")
            decoder, x_hat, fired, l0 = evaluate_ours(model, x)
            row = {"library": "ours", "kind": kind, "knob": f"{knob}={value:.3g}",
                   "at_true_l0": index == 0, **score(features, decoder, x, x_hat, fired, l0),
                   "seconds": seconds}
            print(format_row(row), flush=True)
            rows.append(row)
    return rows


def run_peers(python, folder, run, true_l0, workdir, threads=0):
    """SAELens' row of each of PEER_KINDS at the true L0 (same examples as ours)."""
    x = np.load(folder / "test.npy", allow_pickle=False)
    features = np.load(folder / "features.npy", allow_pickle=False)
    examples = run.epochs * fitted_examples(folder, run)
    rows = []
    for kind in PEER_KINDS:
        decoder, x_hat, fired, l0, seconds = train_peer(python, kind, folder, run, true_l0,
                                                        examples, workdir, threads)
        row = {"library": "SAELens", "kind": kind, "knob": f"L0 target {true_l0:.3g}",
               "at_true_l0": True, **score(features, decoder, x, x_hat, fired, l0),
               "seconds": seconds}
        print(format_row(row), flush=True)
        rows.append(row)
    return rows


COLUMNS = ("library", "kind", "knob", "L0", "recovered", "MMCS", "MCC", "dead", "unmatched",
           "FVU", "s")


def format_row(row):
    """One Markdown table row."""
    cells = (row["library"], row["kind"], row["knob"], f"{row['l0']:.1f}",
             f"{100 * row['recovered']:.1f}%", f"{row['mmcs']:.3f}", f"{row['mcc']:.3f}",
             f"{100 * row['dead']:.1f}%", f"{100 * row['unmatched']:.1f}%", f"{row['fvu']:.3f}",
             f"{row['seconds']:.0f}")
    return "| " + " | ".join(cells) + " |"


def table(rows):
    """The Markdown table: the rows at the true L0 first (ours, then SAELens'), then the rest."""
    ordered = sorted(rows, key=lambda r: (not r["at_true_l0"], r["library"] != "ours"))
    return "\n".join(["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
                     + [format_row(r) for r in ordered])


def targets(rows):
    """Lines saying whether each of the issue's targets was met in this run."""
    ours = {r["kind"]: r for r in rows if r["library"] == "ours" and r["at_true_l0"]}
    lines = []
    for r in rows:
        if r["library"] != "SAELens" or r["kind"] not in ours:
            continue
        o = ours[r["kind"]]
        checks = {"recovered": o["recovered"] >= r["recovered"], "FVU": o["fvu"] <= r["fvu"],
                  "time": o["seconds"] <= r["seconds"]}
        # An FVU says little beside another L0: SAELens' JumpReLU may miss its L0 target.
        apart = abs(math.log(max(r["l0"], 1e-9) / max(o["l0"], 1e-9))) > math.log(L0_APART)
        if apart:
            checks.pop("FVU")
        verdict = "met" if all(checks.values()) else "MISSED (" + ", ".join(
            k for k, ok in checks.items() if not ok) + ")"
        if apart:
            verdict += (f"; FVUs not compared: L0 {o['l0']:.1f} against {r['l0']:.1f}, more "
                        f"than {L0_APART:g} times apart")
        lines.append(f"{r['kind']}: ours {100 * o['recovered']:.1f}% at FVU {o['fvu']:.3f} in "
                     f"{o['seconds']:.0f} s, SAELens {100 * r['recovered']:.1f}% at FVU "
                     f"{r['fvu']:.3f} in {r['seconds']:.0f} s: {verdict}")
    best = max((o["recovered"] for o in ours.values()), default=0)
    lines.append(f">= 95% of the true features by one of ours: best {100 * best:.1f}%: "
                 f"{'met' if best >= 0.95 else 'MISSED'}")
    return lines


PLOTS = {"mmcs": "MMCS (mean max cosine with a true feature)",
         "fvu": "FVU (1 - explained variance)"}


def plot(rows, true_l0, path):
    """MMCS and FVU against L0: one line per kind of ours, SAELens' rows as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (metric, label) in zip(axes, PLOTS.items()):
        for kind in KINDS:
            points = sorted((r["l0"], r[metric]) for r in rows
                            if r["library"] == "ours" and r["kind"] == kind)
            if points:
                ax.plot(*zip(*points), marker="o", label=kind)
        peers = [r for r in rows if r["library"] == "SAELens"]
        for index, r in enumerate(peers):  # labels stacked, not on top of each other
            ax.plot(r["l0"], r[metric], marker="x", markersize=10, color="black",
                    linestyle="none")
            ax.annotate(f"SAELens {r['kind']}", (r["l0"], r[metric]), fontsize=7,
                        xytext=(12, 14 - 11 * index), textcoords="offset points")
        ax.axvline(true_l0, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("L0 (mean active latents per test example; dotted: true L0)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


QUICK = dict(train_examples=30_000, test_examples=5_000, epochs=2)
FLAG_HELP = {
    "dimensions": "D, the values of an example",
    "features": "K, the true features (K > D: superposition)",
    "mean_active": "sum of the firing probabilities: the true L0",
    "exponent": "alpha of the power law of the firing probabilities",
    "magnitudes": f"law of the magnitudes, one of {list(MAGNITUDES)}",
    "spread": "sigma of the log-normal, or the half-width of the uniform around 1",
    "correlation": "rho in [0, 1): the firings' share of one latent factor",
    "noise": "sigma of the Gaussian noise added to every value",
    "train_examples": "rows of train.npy",
    "test_examples": "rows of test.npy (all metrics are measured there)",
    "latents": "N, the dictionary size (ours and SAELens')",
    "epochs": "passes over train.npy (SAELens trains on as many examples)",
    "batch_size": "examples per step (both libraries)",
    "learning_rate": "Adam's learning rate (both libraries)",
    "dead_after_examples": "examples without firing after which AuxK counts a latent dead "
                           "(both libraries)",
}


class _OneLineErrorParser(argparse.ArgumentParser):
    """Bad flags as one line, as train.py reports them (without importing TensorFlow)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None):
    parser = _OneLineErrorParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="reports/synthetic",
                        help="folder of the table (synthetic.md), results.json and the plot")
    parser.add_argument("--workdir", default=None,
                        help="keep the data and models here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true",
                        help=f"about a minute: {QUICK}, only the true L0")
    parser.add_argument("--source", choices=SOURCES, default="ours",
                        help="the data's generator (saelens: sae_lens.synthetic, peers extra)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="our code activations to train, comma-separated")
    parser.add_argument("--peer-python", default=sys.executable,
                        help="a Python with sae-lens and torch for SAELens' rows")
    parser.add_argument("--no-peers", action="store_true", help="skip SAELens' rows")
    parser.add_argument("--peer-threads", type=int, default=0,
                        help="torch threads of SAELens' runs (0: torch's choice; 1 is much "
                             "faster on a loaded machine)")
    for field in dataclasses.fields(DataSpec) + dataclasses.fields(RunSpec):
        if field.name != "seed":
            default = f"{field.default}; {QUICK[field.name]} with --quick" \
                if field.name in QUICK else field.default
            # Not given: absent (SUPPRESS), so that --quick can tell it from a value.
            parser.add_argument("--" + field.name.replace("_", "-"), type=field.type,
                                default=argparse.SUPPRESS,
                                help=f"{FLAG_HELP[field.name]} (default: {default})")
    parser.add_argument("--seed", type=int, default=0, help="data, weights and shuffling")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error(f"expected --kinds from {list(KINDS)}. Received: {args.kinds!r}")
    values = vars(args)
    for cls in (DataSpec, RunSpec):  # the flags not given: --quick's value or the default
        for field in dataclasses.fields(cls):
            if field.name not in values:
                quick = QUICK.get(field.name) if args.quick else None
                values[field.name] = field.default if quick is None else quick
    try:
        data_spec = DataSpec(**{f.name: values[f.name] for f in dataclasses.fields(DataSpec)})
        run = RunSpec(**{f.name: values[f.name] for f in dataclasses.fields(RunSpec)})
    except ValueError as error:
        parser.error(str(error))
    return args, kinds, data_spec, run


def benchmark(args, kinds, data_spec, run, workdir):
    """Makes the data, trains and scores every dictionary; returns (rows, data record)."""
    folder = workdir / "data"
    missing = peer_available(args.peer_python) if args.source == "saelens" or \
        not args.no_peers else None
    skip = "--no-peers" if args.no_peers else missing
    if args.source == "saelens":
        if missing:
            raise SystemExit(f"--source saelens needs sae_lens: {missing}")
        record = saelens_data(args.peer_python, data_spec, folder)
    else:
        record = make_data(data_spec, folder)
    print(f"data: {json.dumps(record)}", flush=True)
    true_l0 = record["true_l0"]
    print("| " + " | ".join(COLUMNS) + " |", flush=True)
    rows = run_ours(kinds, folder, run, true_l0, workdir, args.quick)
    if skip:
        print(f"SAELens' rows skipped: {skip}")
    else:
        rows += run_peers(args.peer_python, folder, run, true_l0, workdir, args.peer_threads)
    return rows, record


def main(argv=None):
    args, kinds, data_spec, run = parse_args(argv)
    import keras

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="synthetic-")
    workdir = Path(args.workdir or scratch.name)
    start = time.perf_counter()
    try:
        rows, record = benchmark(args, kinds, data_spec, run, workdir)
    finally:
        if scratch is not None:
            scratch.cleanup()
    suffix = "_quick" if args.quick else ""
    text = "\n".join([table(rows), "", *targets(rows)])
    print("\n" + text)
    print("wrote", plot(rows, record["true_l0"], out / f"synthetic{suffix}.png"))
    (out / f"synthetic{suffix}.md").write_text(text + "\n")
    (out / f"results{suffix}.json").write_text(json.dumps(
        {"data": record, "run": dataclasses.asdict(run), "rows": rows,
         "seconds": time.perf_counter() - start}, indent=2))
    return rows


if __name__ == "__main__":
    main()
