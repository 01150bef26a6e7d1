"""The ground-truth benchmark (benchmarks/synthetic.py): data, metrics, flags, table."""

import itertools
import json
import sys

import numpy as np
import pytest

from benchmarks import synthetic

TINY = dict(dimensions=16, features=48, mean_active=3.0, train_examples=3000,
            test_examples=500)


def test_firing_probabilities_follow_the_power_law_and_sum_to_the_mean_active():
    p = synthetic.firing_probabilities(1024, 8.0, 0.5)
    assert p.sum() == pytest.approx(8.0)
    assert np.all(np.diff(p) < 0)
    assert p[0] / p[99] == pytest.approx(100**0.5)
    # A steep law caps the first features at 1 and spreads the rest.
    steep = synthetic.firing_probabilities(100, 20.0, 2.0)
    assert steep.max() == 1.0 and steep.sum() == pytest.approx(20.0)
    assert np.all(steep <= 1.0)


def test_make_data_writes_seeded_npy_files_of_the_asked_sizes(tmp_path):
    spec = synthetic.DataSpec(**TINY, seed=3)
    record = synthetic.make_data(spec, tmp_path / "a")
    x = np.load(tmp_path / "a" / "train.npy")
    features = np.load(tmp_path / "a" / "features.npy")
    assert x.shape == (3000, 16) and x.dtype == np.float32
    assert np.load(tmp_path / "a" / "test.npy").shape == (500, 16)
    assert np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    assert record["true_l0"] == pytest.approx(3.0, rel=0.1)
    assert json.loads((tmp_path / "a" / "data.json").read_text())["seed"] == 3
    synthetic.make_data(spec, tmp_path / "b")
    assert np.array_equal(np.load(tmp_path / "b" / "train.npy"), x)
    synthetic.make_data(synthetic.DataSpec(**TINY, seed=4), tmp_path / "c")
    assert not np.array_equal(np.load(tmp_path / "c" / "train.npy"), x)


def test_each_example_is_a_positive_sum_of_true_features():
    rng = np.random.default_rng(0)
    spec = synthetic.DataSpec(**TINY, magnitudes="uniform", spread=0.5)
    p = synthetic.firing_probabilities(spec.features, spec.mean_active, spec.exponent)
    codes = synthetic.sample_codes(4000, p, spec, rng)
    active = codes[codes > 0]
    assert active.min() >= 0.5 and active.max() <= 1.5
    assert np.allclose((codes > 0).mean(axis=0), p, atol=0.03)


def test_a_shared_factor_correlates_firing_but_keeps_each_rate():
    rng = np.random.default_rng(0)
    p = synthetic.firing_probabilities(48, 3.0, 0.5)
    counts = {}
    for rho in (0.0, 0.5):
        spec = synthetic.DataSpec(**TINY, correlation=rho)
        fires = synthetic.sample_codes(20_000, p, spec, rng) > 0
        assert np.allclose(fires.mean(axis=0), p, atol=0.02)
        counts[rho] = fires.sum(axis=1).var()
    assert counts[0.5] > 2 * counts[0.0]


def test_metrics_of_a_perfect_and_of_a_partial_dictionary():
    rng = np.random.default_rng(0)
    features = synthetic.true_features(6, 8, rng)
    x = rng.normal(size=(50, 8))
    perfect = synthetic.score(features, 3 * features[::-1], x, x, np.ones(6, bool), 2.0)
    assert perfect == pytest.approx({"mmcs": 1, "recovered": 1, "mcc": 1, "dead": 0,
                                     "unmatched": 0, "fvu": 0, "l0": 2})
    # Two latents on feature 0, one on -feature 1, one on noise; two never fire.
    decoder = np.stack([features[0], features[0], -features[1], rng.normal(size=8),
                        features[2], features[3]])
    fired = np.array([1, 1, 1, 1, 0, 0], bool)
    r = synthetic.score(features, decoder, x, np.zeros_like(x), fired, 1.0)
    assert r["recovered"] == pytest.approx(3 / 6)  # 0, 2, 3; not -1: a code is >= 0
    assert r["dead"] == pytest.approx(2 / 6)
    assert r["unmatched"] == pytest.approx(1 / 4)  # the noise latent
    assert r["fvu"] == pytest.approx(np.sum(x**2) / np.sum((x - x.mean(0)) ** 2))


def test_mcc_is_the_best_one_to_one_matching_not_the_greedy_one():
    c = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0], [0.0, 0.0, -0.5]])
    brute = max(np.mean([abs(c[i, j]) for i, j in enumerate(perm)])
                for perm in itertools.permutations(range(3)))
    assert synthetic.mean_correlation_coefficient(c) == pytest.approx(brute)
    assert brute == pytest.approx((0.8 + 0.85 + 0.5) / 3)


def test_knob_values_start_at_the_true_l0():
    assert synthetic.knob_values("topk", 8.02, 1024, quick=True) == [8]
    assert synthetic.knob_values("topk", 8.02, 1024, quick=False) == [8, 4, 16]
    wta = synthetic.knob_values("wta", 8.0, 1024, quick=False)
    assert wta[0] == pytest.approx(8 / 1024) and len(wta) == 3
    reg, options = synthetic.kind_options("matryoshka", 8, synthetic.RunSpec(latents=64), 256)
    assert reg == "none" and options["prefixes"] == (8, 32) and options["aux_k"] == 32
    assert options["dead_after_examples"] == 20_000 and options["unit_norm_decoder"] is False
    assert synthetic.knob_values("jumprelu", 8.02, 1024, quick=False) == [8.02, 4.01, 16.04]
    # SAELens' JumpReLU settings, its loss summed over D = 256 values where ours averages.
    _, options = synthetic.kind_options("jumprelu", 8.02, synthetic.RunSpec(), 256)
    assert options["target_l0"] == 8.02 and options["initial_threshold"] == 0.01
    assert options["l0_coefficient"] == options["global_clipnorm"] == pytest.approx(1 / 256)
    assert options["adam_epsilon"] == pytest.approx(1e-8 / 256)


@pytest.mark.parametrize("flags, message", [
    (["--correlation", "1.5"], "Expected `correlation` in [0, 1). Received: correlation=1.5"),
    (["--features", "0"], "Expected `features` to be an integer >= 1. Received: features=0"),
    (["--magnitudes", "gamma"], "Expected `magnitudes` to be one of"),
    (["--kinds", "topk,nope"], "expected --kinds from"),
    (["--learning-rate", "-1"], "Expected `learning_rate` > 0"),
    (["--source", "nope"], "invalid choice"),
])
def test_bad_flags_get_one_line(flags, message, capsys):
    with pytest.raises(SystemExit):
        synthetic.parse_args(flags)
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_quick_shrinks_only_what_was_not_given():
    _, kinds, data, run = synthetic.parse_args(["--quick", "--epochs", "3"])
    assert data.train_examples == synthetic.QUICK["train_examples"] and run.epochs == 3
    assert kinds == list(synthetic.KINDS)


def test_a_python_without_sae_lens_is_skipped_with_one_line(tmp_path):
    missing = synthetic.peer_available(sys.executable + "-none")
    assert "cannot run --peer-python" in missing and "\n" not in missing
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no sae_lens' >&2\nexit 1\n")
    fake.chmod(0o755)
    message = synthetic.peer_available(str(fake))
    assert "cannot import sae_lens" in message and "[peers]" in message


def test_saelens_gets_the_same_size_l0_and_examples(tmp_path):
    run = synthetic.RunSpec(latents=512, batch_size=256, dead_after_examples=50_000)
    command = synthetic.peer_command("py", "jumprelu", tmp_path, run, 8.0, 12345, "o.npz")
    flags = dict(zip(command[3::2], command[4::2]))
    assert flags["--latents"] == "512" and flags["--l0"] == "8"
    assert flags["--examples"] == "12345" and flags["--batch-size"] == "256"
    assert flags["--dead-after-steps"] == str(50_000 // 256)  # our AuxK's window


def test_table_and_targets_say_which_row_won():
    base = dict(mmcs=0.9, mcc=0.9, dead=0.0, unmatched=0.0, l0=8.0, at_true_l0=True)
    rows = [
        {**base, "library": "ours", "kind": "topk", "knob": "k=8", "recovered": 0.97,
         "fvu": 0.1, "seconds": 10},
        {**base, "library": "SAELens", "kind": "topk", "knob": "L0 target 8", "recovered": 0.9,
         "fvu": 0.2, "seconds": 20},
        {**base, "library": "ours", "kind": "jumprelu", "knob": "c", "recovered": 0.5,
         "fvu": 0.3, "seconds": 10},
        {**base, "library": "SAELens", "kind": "jumprelu", "knob": "L0 target 8",
         "recovered": 0.6, "fvu": 0.2, "seconds": 5},
    ]
    lines = synthetic.targets(rows)
    assert lines[0].endswith(": met")
    assert lines[1].endswith("MISSED (recovered, FVU, time)")
    assert lines[2].endswith("best 97.0%: met")
    # A peer far from the L0 target: its FVU is not compared, and the line says so.
    rows[3] = {**rows[3], "l0": 600.0, "recovered": 0.0, "seconds": 50}
    assert synthetic.targets(rows)[1].endswith(
        "met; FVUs not compared: L0 8.0 against 600.0, more than 1.5 times apart")
    text = synthetic.table(rows)
    assert text.splitlines()[2].startswith("| ours | topk | k=8 | 8.0 | 97.0% |")
    assert len(text.splitlines()) == 6


def test_saelens_data_without_sae_lens_stops_before_any_work(tmp_path, capsys):
    args, kinds, data, run = synthetic.parse_args(
        ["--source", "saelens", "--peer-python", sys.executable + "-none"])
    with pytest.raises(SystemExit, match="--source saelens needs sae_lens: cannot run"):
        synthetic.benchmark(args, kinds, data, run, tmp_path)
    assert not any(tmp_path.iterdir())


def test_true_features_are_not_the_dictionarys_starting_rows(tmp_path):
    # The dictionary draws its first decoder rows from default_rng(seed); true
    # features drawn from the same stream would be "recovered" before training.
    from models import build_dictionary_autoencoder

    spec = synthetic.DataSpec(**TINY, seed=0)
    synthetic.make_data(spec, tmp_path)
    features = np.load(tmp_path / "features.npy")
    model = build_dictionary_autoencoder((spec.dimensions,), spec.features, seed=0)
    start = np.asarray(model.get_layer("decoder").get_layer("dictionary").kernel)
    assert synthetic.cosines(start, features).max(axis=0).mean() < 0.9
