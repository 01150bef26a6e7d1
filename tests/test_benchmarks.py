import keras
import numpy as np
import pytest
import tensorflow as tf

import train
from benchmarks import speed
from benchmarks import zoo as zoo_benchmark
from pipeline import manifest
from pipeline import training


def test_train_command_reproduces_each_zoo_model_from_defaults():
    command = zoo_benchmark.train_command("conv-kl", None, "out", "logs")
    assert command[1:6] == ["train.py", "--model", "conv", "--reg", "kl"]
    denoise = zoo_benchmark.train_command("conv-denoise", "d.npz", "out", "logs")
    assert denoise[1:4] == ["train.py", "--preset", "conv-denoise"]
    assert denoise[-2:] == ["--data", "d.npz"]
    # The command line resolves to exactly the manifest's configuration.
    for name in manifest.ZOO:
        args = train.parse_args(zoo_benchmark.train_command(name, None, "out", "logs")[2:])
        config, run_name = train.resolve(args)
        assert config == manifest.config_of(name) and (run_name or config.default_name) == name


def test_dense_flop_count():
    config = manifest.config_of("dense-l1", hidden_units=(16,), code_size=4)
    model = training.build_model(config)
    # 784 -> 16 -> 4 -> 16 -> 784, 2 FLOPs per multiply-add.
    assert speed.dense_forward_flops(model) == 2 * (784 * 16 + 16 * 4 + 4 * 16 + 16 * 784)
    assert isinstance(model, keras.Model)


def test_frontier_sweeps_at_least_four_points_of_each_kind_with_one_dictionary_size():
    from benchmarks import frontier

    for quick in (True, False):
        points = list(frontier.sweep_points(quick))
        kinds = [kind for kind, _, _, _ in points]
        assert all(kinds.count(kind) >= 4 for kind in frontier.SWEEPS)
        assert len({config.architecture["code_size"] for _, _, config, _ in points}) == 1
        for kind, value, config, _ in points:
            knob = frontier.SWEEPS[kind][2]
            assert value in (config.code_activation_args.get(knob), config.penalty.get(knob))


def test_frontier_run_names_are_valid_export_names():
    from benchmarks import frontier
    from pipeline import export

    for kind, (_, _, _, values) in frontier.SWEEPS.items():
        for index, _ in enumerate(values):
            export.check_name(f"{kind}-{index}")


def test_run_process_reports_each_process_its_own_peak():
    import sys

    big = "import numpy as np; a = np.ones(400 * 2**20 // 8); print('done')"
    small = "print('done')"
    _, big_peak, output = speed.run_process([sys.executable, "-c", big])
    _, small_peak, _ = speed.run_process([sys.executable, "-c", small])
    assert output.strip() == "done"
    assert big_peak > 400 > small_peak
    with pytest.raises(RuntimeError, match="failed"):
        speed.run_process([sys.executable, "-c", "raise SystemExit(3)"])


def test_step_times_print_a_row_per_precision_and_the_hand_written_step(tiny_mnist, capsys,
                                                                        monkeypatch):
    from benchmarks import speed

    monkeypatch.setattr(speed, "STEP_TIME_REPEATS", 1)
    speed.main(["--step-times", "dict-l1", "--data", str(tiny_mnist)])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith("| dict-l1 |")]
    assert [row[1] for row in rows] == ["float32", "mixed_bfloat16"]
    assert all(float(cell.strip(" |")) > 0 for row in rows for cell in row[2:])
    hand = [line for line in lines if line.startswith("dict-l1's size by hand")]
    assert len(hand) == 1 and speed.HAND_SGD in hand[0] and speed.HAND_ADAM in hand[0]


def test_hand_written_step_times_both_optimizers_and_refuses_others():
    from benchmarks import speed

    for optimizer in (speed.HAND_SGD, speed.HAND_ADAM):
        assert speed.hand_written_step_ms(8, 4, tf.float32, 1e-3, optimizer, repeats=16) > 0
    with pytest.raises(ValueError, match="Received: optimizer='adagrad'"):
        speed.hand_written_step_ms(8, 4, tf.float32, 1e-3, "adagrad")


def test_compact_table_has_a_row_per_model_and_the_pixel_baseline(tmp_path):
    (tmp_path / "dict-wta.keras").write_bytes(b"x" * 2**20)
    report = {"bce": 0.08, "probe_accuracy": 0.987, "probe_svm_accuracy": 0.9866,
              "code_l0": 156.4, "code_num_units": 2000, "code_dead_fraction": 0.0}
    lines = zoo_benchmark.compact_table([("dict-wta", {}, report)], tmp_path,
                                        pixels="92.51% / 91.80%").splitlines()
    assert lines[2] == (f"| dict-wta | {manifest.SUMMARIES['dict-wta']} | 0.0800 "
                        "| 98.70% / 98.66% | 156 / 2000 | 0.0 | 1.0 |")
    assert lines[3].startswith("| raw pixels | the probes' baseline | - | 92.51% / 91.80% |")


def test_backends_benchmark_times_an_epoch_per_backend_in_its_own_process(tiny_mnist, capsys):
    from benchmarks import backends

    results = backends.main(["--data", str(tiny_mnist), "--backends", "tensorflow",
                             "--models", "dict-l1", "conv-l1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0] == "| model | batch | tensorflow |"
    assert [row.split(" | ")[0:2] for row in rows[1:]] == [["| dict-l1", "256"], ["| conv-l1", "128"]]
    for name in ("dict-l1", "conv-l1"):
        timing = results["tensorflow"][name]
        assert timing["epoch_s"] > 0 and timing["compile_s"] > 0 and np.isfinite(timing["loss"])
    with pytest.raises(SystemExit):
        backends.main(["--data", str(tiny_mnist), "--backends", "theano"])


def test_speed_passes_no_data_flag_without_a_path(tmp_path):
    from benchmarks import speed

    assert speed.data_args(None) == []
    command = speed.train_command(["--preset", "dense-l1"], 1, tmp_path / "m.npz", tmp_path)
    assert command[command.index("--data") + 1] == str(tmp_path / "m.npz")
    assert "--data" not in speed.train_command(["--preset", "dense-l1"], 1, None, tmp_path)
