import json

import keras
import numpy as np
import pytest
import scipy.sparse

import evaluate as evaluate_cli
from pipeline import evaluation as evaluate
import models
from regularizers import KLSparsity
from pipeline import data as datasets, metrics, probe

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def saved_kl_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build_dense_autoencoder(
        (28, 28, 1), 6, hidden_units=(16,), code_activation="sigmoid",
        activity_regularizer=KLSparsity(rho=0.1, beta=2.0),
    )
    path = tmp_path / "models" / "tiny-kl.keras"
    path.parent.mkdir()
    model.save(path)
    return model, path


def test_metrics_match_numpy_on_a_tiny_model(saved_kl_model, tiny_mnist, tmp_path):
    model, path = saved_kl_model
    report = evaluate.evaluate(path, data_path=tiny_mnist, out=tmp_path / "report")
    x = datasets.load_mnist(tiny_mnist).x_test
    codes = np.asarray(model.get_layer("encoder")(x), "float64")
    x_hat = np.asarray(model(x), "float64")
    p = np.clip(x_hat, 1e-7, 1 - 1e-7)
    assert report["bce"] == pytest.approx(-np.mean(x * np.log(p) + (1 - x) * np.log(1 - p)), rel=1e-4)
    assert report["mse"] == pytest.approx(np.mean((x - x_hat) ** 2), rel=1e-4)
    per_image = np.mean((x - x_hat) ** 2, axis=(1, 2, 3))
    assert report["psnr_db"] == pytest.approx(np.mean(10 * np.log10(1 / per_image)), rel=1e-4)
    assert report["code_mean_activation"] == pytest.approx(codes.mean(), rel=1e-4)
    assert report["code_l0"] == pytest.approx((codes > metrics.ACTIVE_THRESHOLD).sum(1).mean())
    q = codes.mean(axis=0)
    kl = np.sum(0.1 * np.log(0.1 / q) + 0.9 * np.log(0.9 / (1 - q)))
    assert report["rho"] == 0.1 and report["kl_to_rho"] == pytest.approx(kl, rel=1e-4)
    # The papers' probe on the codes as they are (pipeline.probe), LR and SVM.
    train_codes = model.get_layer("encoder").predict(datasets.load_mnist(tiny_mnist).x_train,
                                                     verbose=0)
    expected = probe.probe_codes(train_codes, datasets.load_mnist(tiny_mnist).y_train,
                                 codes, datasets.load_mnist(tiny_mnist).y_test, seed=0)
    assert report["probe_accuracy"] == pytest.approx(expected[probe.LOGISTIC]["accuracy"])
    assert report["probe_svm_accuracy"] == pytest.approx(expected[probe.SVM]["accuracy"])
    assert {report["probe"][kind]["C"] for kind in (probe.LOGISTIC, probe.SVM)} <= {
        *probe.C_GRIDS[probe.LOGISTIC], *probe.C_GRIDS[probe.SVM]}
    assert report["test_images"] == len(x)
    saved = json.loads((tmp_path / "report" / "tiny-kl.eval.json").read_text())
    assert saved["bce"] == report["bce"]
    for picture in report["pictures"].values():  # relative to the report's folder
        with open(tmp_path / "report" / picture, "rb") as file:
            assert file.read(8) == PNG_SIGNATURE


def test_model_found_by_name_and_report_beside_it(saved_kl_model, tiny_mnist):
    _, path = saved_kl_model
    assert evaluate.resolve_model_path("tiny-kl", models_dir=path.parent) == path
    report = evaluate.evaluate(path, data_path=tiny_mnist, probe=False)
    assert "probe_accuracy" not in report
    # Too few training codes for a held-out split: a probe skipped with the reason.
    report = evaluate.evaluate(path, data_path=tiny_mnist, limit=6, out=path.parent / "few")
    assert "at least 10" in report["probe"]["skipped"] and "probe_accuracy" not in report
    assert (path.parent / "tiny-kl.eval.json").is_file()
    assert (path.parent / "tiny-kl.features.png").is_file()


def test_decoder_features_of_a_linear_decoder_are_its_columns():
    model = models.build_dense_autoencoder(
        (2, 3), 4, hidden_units=(), output_activation="linear"
    )
    decoder = model.get_layer("decoder")
    codes = np.random.default_rng(0).random((20, 4)).astype("float32")
    features, units = evaluate.decoder_features(decoder, metrics.CodeSummary().add(codes))
    assert list(units) == [0, 1, 2, 3]
    kernel = np.asarray(decoder.layers[0].kernel)  # (4, 6)
    bump = codes.max(axis=0) - codes.mean(axis=0)
    np.testing.assert_allclose(features.reshape(4, 6), bump[:, None] * kernel, atol=1e-5)


def test_conv_features_are_one_per_code_channel():
    model = models.build_conv_autoencoder((16, 16, 1), 5, filters=(4,))
    codes = np.random.default_rng(0).random((3, 4, 4, 5)).astype("float32")
    features, _ = evaluate.decoder_features(model.get_layer("decoder"),
                                            metrics.CodeSummary().add(codes))
    assert features.shape == (5, 16, 16, 1)


# === Conv-WTA: chunked encoding, a summary of the codes, pooled probe features ===

def test_pool_for_probe_max_pools_large_maps_and_leaves_small_codes():
    maps = np.random.default_rng(0).random((3, 28, 28, 2)).astype("float32")
    pooled = evaluate.pool_for_probe(maps, grid=4)
    expected = maps.reshape(3, 4, 7, 4, 7, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(pooled, expected)
    uneven = evaluate.pool_for_probe(maps[:, :10, :9], grid=4)  # runs 0:2:5:8:10, 0:2:4:7:9
    assert uneven.shape == (3, 4, 4, 2)
    assert uneven[0, 1, 2, 1] == maps[0, 2:5, 4:7, 1].max()
    small = maps[:, :4, :4]
    np.testing.assert_array_equal(evaluate.pool_for_probe(small, grid=4), small)
    vectors = maps.reshape(3, -1)
    np.testing.assert_array_equal(evaluate.pool_for_probe(vectors, grid=4), vectors)


def conv_wta_model():
    keras.utils.set_random_seed(0)
    return models.build_conv_autoencoder(
        (28, 28, 1), 6, filters=(), kernel_size=5, decoder_kernel_size=11, strides=1,
        code_activation=models.ConvWTA(0.2), output_activation="linear")


def test_chunked_metrics_equal_the_whole_set_at_once(tiny_mnist, monkeypatch):
    """Conv-WTA's code is a 28x28 map with at most one winner per map and image;
    the chunked evaluation gives the metrics of all codes at once."""
    model = conv_wta_model()
    mnist = datasets.load_mnist(tiny_mnist)
    monkeypatch.setattr(evaluate, "CHUNK_BYTES", 7 * 28 * 28 * 6 * evaluate.CODE_BYTES)
    assert evaluate.chunk_size(model) == 7
    report, summary, x_hat = evaluate.compute_metrics(model, mnist, probe=False)
    codes = np.asarray(model.get_layer("encoder")(mnist.x_test, training=False))
    assert summary.code_shape == (28, 28, 6)
    assert ((codes > 0).sum(axis=(1, 2)) <= 1).all()
    for key, value in metrics.code_statistics(codes).items():
        assert report[f"code_{key}"] == pytest.approx(value, rel=1e-6), key
    np.testing.assert_allclose(x_hat, model(mnist.x_test), atol=1e-5)
    np.testing.assert_allclose(summary.mean_code(), codes.mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(summary.max_code(), codes.max(axis=0))
    values, zeros = summary.nonzero_values()
    assert len(values) + zeros == codes.size and np.array_equal(np.sort(values),
                                                                np.sort(codes[codes != 0]))


def test_conv_wta_probe_reads_the_pooled_relu_maps(tiny_mnist, monkeypatch):
    model = conv_wta_model()
    mnist = datasets.load_mnist(tiny_mnist)
    monkeypatch.setattr(evaluate, "CHUNK_BYTES", 5 * 28 * 28 * 6 * evaluate.CODE_BYTES)
    features = evaluate.probe_features(model, mnist.x_train)
    encoder = model.get_layer("encoder")
    relu_maps = np.maximum(np.asarray(encoder.get_layer("code")(mnist.x_train)), 0)
    expected = relu_maps.reshape(-1, 4, 7, 4, 7, 6).max(axis=(2, 4))
    np.testing.assert_allclose(features, expected.reshape(len(expected), -1), rtol=1e-5,
                               atol=1e-6)


def test_a_4x4_conv_code_reaches_the_probe_as_it_is(tiny_mnist):
    model = models.build_conv_autoencoder((28, 28, 1), 5, filters=(4, 4))
    mnist = datasets.load_mnist(tiny_mnist)
    codes = model.get_layer("encoder").predict(mnist.x_train, verbose=0)
    np.testing.assert_allclose(evaluate.probe_features(model, mnist.x_train),
                               codes.reshape(len(codes), -1), rtol=1e-6, atol=1e-7)


def test_sparse_probe_features_are_gathered_as_csr_chunk_by_chunk(tiny_mnist, monkeypatch):
    """A TopK code keeps 2 of 64 units: its probe features are a CSR matrix equal to
    the codes, built from chunks of 7 images (uint8 examples scaled per chunk)."""
    keras.utils.set_random_seed(0)
    model = models.build_dictionary_autoencoder((28, 28, 1), 64, code_activation=models.TopK(2))
    raw = datasets.load_mnist(tiny_mnist, scaled=False).x_train
    monkeypatch.setattr(evaluate, "CHUNK_BYTES", 7 * 64 * evaluate.CODE_BYTES)
    features = evaluate.probe_features(model, raw)
    assert scipy.sparse.issparse(features) and features.shape == (len(raw), 64)
    codes = model.get_layer("encoder").predict(datasets.scale_images(raw), verbose=0)
    np.testing.assert_allclose(features.toarray(), codes, rtol=1e-6, atol=1e-7)
    dense = evaluate.probe_features(conv_wta_model(), raw[:10])  # ReLU maps: mostly non-zero
    assert isinstance(dense, np.ndarray) and dense.shape == (10, 4 * 4 * 6)


def test_picture_titles_name_the_model_and_what_they_count(tiny_mnist, tmp_path, monkeypatch):
    """conv: the density counts positions x channels, the features picture channels
    (a dead channel never fires anywhere); a dictionary says how many atoms are shown."""
    titles = {}

    def capture(kind):
        def save(*args, title=None, dead=None, **kwargs):
            titles[kind] = (title if title is not None else args[2], dead)
            titles.setdefault("all", []).append(titles[kind][0])
            return tmp_path / kind
        return save

    for kind in ("save_features", "save_feature_density", "save_code_histogram",
                 "save_reconstructions"):
        monkeypatch.setattr(evaluate.plots, kind, capture(kind))
    mnist = datasets.load_mnist(tiny_mnist)
    model = models.build_conv_autoencoder((28, 28, 1), 3, filters=(4,))
    codes = np.zeros((5, 14, 14, 3), "float32")
    codes[:, 2:4, 5, 0] = 1.0  # channel 0 fires at 2 positions, channel 2 at 1, channel 1 never
    codes[0, 7, 7, 2] = 1.0
    summary = metrics.CodeSummary().add(codes)
    evaluate.save_pictures(model, mnist, summary, mnist.x_test, tmp_path, "tiny-conv", 0.01)
    assert titles["save_feature_density"][0] == (
        "tiny-conv: 3 of 588 code units (positions x channels) fire, 585 never")
    title, dead = titles["save_features"]
    assert title.startswith("tiny-conv: decoder response to each of the 3 channels")
    assert list(dead) == [False, True, False]
    assert len(titles["all"]) == 4 and all(t.startswith("tiny-conv: ") for t in titles["all"])
    monkeypatch.setattr(evaluate, "MAX_DICTIONARY_TILES", 16)
    dictionary = models.build_dictionary_autoencoder((28, 28, 1), 40)
    summary = metrics.CodeSummary().add(np.ones((2, 40), "float32"))
    evaluate.save_pictures(dictionary, mnist, summary, mnist.x_test, tmp_path, "tiny-dict", 0.01)
    assert titles["all"][-2:] == [
        "tiny-dict: decoder rows (dictionary atoms), the first 16 of 40 latents",
        "tiny-dict: encoder rows, the first 16 of 40 latents"]


def test_code_histogram_of_nonzero_values_and_zeros_equals_the_full_one(tmp_path):
    codes = np.random.default_rng(0).random(500).astype("float32")
    codes[::3] = 0
    from pipeline import plots

    full = plots.save_code_histogram(codes, tmp_path / "full.png", 0.01)
    split = plots.save_code_histogram(codes[codes != 0], tmp_path / "split.png", 0.01,
                                      zeros=int((codes == 0).sum()))
    assert full.read_bytes() == split.read_bytes()


def test_missing_model_is_one_clear_line(tmp_path, tiny_mnist):
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main([str(tmp_path / "nope.keras"), "--data", str(tiny_mnist)])
    assert info.value.code.startswith("evaluate.py: error: Expected `model` to be a .keras file")
    assert "Received: model='" in info.value.code


# === Deterministic, relative reports (issue 13, item 6) and checks (issue 15) ===

def digests(folder):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_report_has_relative_paths_and_is_the_same_when_run_again(saved_kl_model, tiny_mnist):
    _, path = saved_kl_model
    evaluate.evaluate(path, data_path=tiny_mnist, probe=False)
    first = digests(path.parent)
    saved = json.loads((path.parent / "tiny-kl.eval.json").read_text())
    assert saved["model"] == "tiny-kl.keras"
    assert saved["pictures"]["features"] == "tiny-kl.features.png"
    assert saved["data_source"] == tiny_mnist.name and "seconds" not in saved
    assert str(path.parent) not in json.dumps(saved)
    report = evaluate.evaluate(path, data_path=tiny_mnist, probe=False)
    assert report["seconds"] > 0
    assert digests(path.parent) == first


def test_the_cli_writes_to_reports_and_compares_with_the_shipped_report(
        saved_kl_model, tiny_mnist, tmp_path, monkeypatch, capsys):
    _, path = saved_kl_model
    evaluate.evaluate(path, data_path=tiny_mnist, probe=False)  # the report shipped beside it
    shipped = digests(path.parent)
    monkeypatch.chdir(tmp_path)
    evaluate_cli.main([str(path), "--data", str(tiny_mnist), "--no-probe"])
    assert digests(path.parent) == shipped  # a read-only action leaves the zoo alone
    written = tmp_path / "reports" / "tiny-kl" / "tiny-kl.eval.json"
    assert json.loads(written.read_text())["bce"] == json.loads(
        (path.parent / "tiny-kl.eval.json").read_text())["bce"]
    out, err = capsys.readouterr()
    assert "wrote reports/tiny-kl/tiny-kl.eval.json and its pictures" in out
    assert f"matches {path.parent / 'tiny-kl.eval.json'}" in out
    assert "evaluate.py: encoding and decoding" in err  # a line per stage
    # A shipped report whose numbers differ: each difference is printed.
    report = json.loads((path.parent / "tiny-kl.eval.json").read_text())
    (path.parent / "tiny-kl.eval.json").write_text(json.dumps({**report, "bce": 0.5}))
    evaluate_cli.main([str(path), "--data", str(tiny_mnist), "--no-probe"])
    out = capsys.readouterr().out
    differences = out.split(f"differs from {path.parent / 'tiny-kl.eval.json'}:\n")[1]
    assert differences.split() == ["bce:", "0.5", "->", repr(report["bce"])]
def test_pictures_are_replaced_atomically(tmp_path, monkeypatch):
    import matplotlib.figure

    from pipeline import plots

    target = tmp_path / "h.png"
    plots.save_code_histogram(np.random.default_rng(0).random(50), target, 0.01)
    good = target.read_bytes()

    def killed_mid_write(self, fname, **kwargs):
        open(fname, "wb").write(b"\x89PNG trunc")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        plots.save_code_histogram(np.zeros(5), target, 0.01)
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]


def unknown_class_model(path, source):
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "config.json":
                data = data.replace(b"KLSparsity", b"NoSuchPenalty")
            new.writestr(item, data)
    return path


@pytest.mark.parametrize("case,message", [
    ("limit", "Expected `limit` to be an integer >= 2. Received: limit=-1"),
    ("nan-threshold", "Expected `active_threshold` to be a finite number > 0. Received: active_threshold=nan"),
    ("negative-threshold", "Received: active_threshold=-1.0"),
    ("truncated", "not a zip archive: truncated or not a model"),
    ("text", "not a zip archive"),
    ("unknown-class", "which Keras cannot rebuild"),
    ("wrong-shape", "Expected `model` to take the data's examples of shape (28, 28, 1)"),
    ("nan-weights", "Expected finite metrics from the model. Received: bce=nan"),
])
def test_bad_models_and_options_are_one_line_and_write_nothing(saved_kl_model, tiny_mnist, tmp_path,
                                                                case, message):
    model, path = saved_kl_model
    args = [str(path), "--data", str(tiny_mnist), "--no-probe", "--out", str(tmp_path / "report")]
    if case == "limit":
        args += ["--limit", "-1"]
    elif case.endswith("threshold"):
        args += ["--active-threshold", "nan" if case.startswith("nan") else "-1"]
    elif case == "truncated":
        args[0] = str(tmp_path / "t.keras")
        (tmp_path / "t.keras").write_bytes(path.read_bytes()[:1000])
    elif case == "text":
        args[0] = str(tmp_path / "t.keras")
        (tmp_path / "t.keras").write_text("hello")
    elif case == "unknown-class":
        args[0] = str(unknown_class_model(tmp_path / "u.keras", path))
    elif case == "wrong-shape":
        models.build_dense_autoencoder((4, 4, 1), 2, hidden_units=()).save(tmp_path / "w.keras")
        args[0] = str(tmp_path / "w.keras")
    elif case == "nan-weights":
        model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
        model.save(tmp_path / "n.keras")
        args[0] = str(tmp_path / "n.keras")
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main(args)
    assert info.value.code.startswith("evaluate.py: error: "), info.value.code
    assert message in info.value.code and len(info.value.code.splitlines()) == 1
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").glob("*.json"))





def test_report_hash_is_of_the_model_it_evaluated(saved_kl_model, tiny_mnist, tmp_path, monkeypatch):
    # An export swap landing mid-evaluation must not pair the new file's
    # sha256 with the old model's metrics (issue 25, item 3).
    import hashlib

    _, path = saved_kl_model
    evaluated = hashlib.sha256(path.read_bytes()).hexdigest()
    other = models.build_dense_autoencoder((28, 28, 1), 3, hidden_units=(8,))
    compute = evaluate.compute_metrics

    def swap_then_compute(model, *args, **kwargs):
        other.save(path)  # lands after the model was loaded
        return compute(model, *args, **kwargs)

    monkeypatch.setattr(evaluate, "compute_metrics", swap_then_compute)
    report = evaluate.evaluate(path, data_path=tiny_mnist, out=tmp_path / "r", probe=False)
    assert report["model_sha256"] == evaluated
    assert report["parameters"] != other.count_params()
