import keras

from benchmarks import speed
from benchmarks import zoo as zoo_benchmark
from zoo import configs


def test_train_command_reproduces_each_zoo_model_from_defaults():
    command = zoo_benchmark.train_command("conv-kl", None, "out", "logs")
    assert command[1:6] == ["train.py", "--model", "conv", "--reg", "kl"]
    assert "--noise-stddev" not in command
    denoise = zoo_benchmark.train_command("conv-denoise", "d.npz", "out", "logs")
    assert denoise[denoise.index("--noise-stddev") + 1] == "0.3"
    assert denoise[-2:] == ["--data", "d.npz"]


def test_verdict_checks_bce_rho_and_dead_units():
    good = {"bce": 0.07, "code_mean_activation": 0.051, "rho": 0.05, "code_dead_fraction": 0.0}
    assert zoo_benchmark.verdict("conv-kl", good) == "yes"
    assert zoo_benchmark.verdict("conv-kl", {**good, "bce": 0.08}).startswith("no (BCE")
    assert "off rho" in zoo_benchmark.verdict("conv-kl", {**good, "code_mean_activation": 0.06})
    assert "dead" in zoo_benchmark.verdict("conv-kl", {**good, "code_dead_fraction": 0.05})
    assert zoo_benchmark.verdict("dense-none", {"bce": 0.5}) == "-"


def test_dense_flop_count():
    config = configs.resolve_config("dense", "l1", hidden_units=(16,), code_size=4)
    model = speed.train.build_model(config)
    # 784 -> 16 -> 4 -> 16 -> 784, 2 FLOPs per multiply-add.
    assert speed.dense_forward_flops(model) == 2 * (784 * 16 + 16 * 4 + 4 * 16 + 16 * 784)
    assert isinstance(model, keras.Model)
