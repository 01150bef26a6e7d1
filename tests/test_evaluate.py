import json

import keras
import numpy as np
import pytest

import evaluate as evaluate_cli
from pipeline import evaluation as evaluate
import models
from regularizers import KLSparsity
from pipeline import data as datasets, metrics

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
    assert 0 <= report["probe_accuracy"] <= 1
    assert report["test_images"] == len(x)
    saved = json.loads((tmp_path / "report" / "tiny-kl.eval.json").read_text())
    assert saved["bce"] == report["bce"]
    for picture in report["pictures"].values():
        with open(picture, "rb") as file:
            assert file.read(8) == PNG_SIGNATURE


def test_model_found_by_name_and_report_beside_it(saved_kl_model, tiny_mnist):
    _, path = saved_kl_model
    assert evaluate.resolve_model_path("tiny-kl", models_dir=path.parent) == path
    report = evaluate.evaluate(path, data_path=tiny_mnist, probe=False)
    assert "probe_accuracy" not in report
    assert (path.parent / "tiny-kl.eval.json").is_file()
    assert (path.parent / "tiny-kl.features.png").is_file()


def test_decoder_features_of_a_linear_decoder_are_its_columns():
    model = models.build_dense_autoencoder(
        (2, 3), 4, hidden_units=(), output_activation="linear"
    )
    decoder = model.get_layer("decoder")
    codes = np.random.default_rng(0).random((20, 4)).astype("float32")
    features, units = evaluate.decoder_features(decoder, codes)
    assert list(units) == [0, 1, 2, 3]
    kernel = np.asarray(decoder.layers[0].kernel)  # (4, 6)
    bump = codes.max(axis=0) - codes.mean(axis=0)
    np.testing.assert_allclose(features.reshape(4, 6), bump[:, None] * kernel, atol=1e-5)


def test_conv_features_are_one_per_code_channel():
    model = models.build_conv_autoencoder((16, 16, 1), 5, filters=(4,))
    codes = np.random.default_rng(0).random((3, 4, 4, 5)).astype("float32")
    features, _ = evaluate.decoder_features(model.get_layer("decoder"), codes)
    assert features.shape == (5, 16, 16, 1)


def test_missing_model_is_one_clear_line(tmp_path, tiny_mnist):
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main([str(tmp_path / "nope.keras"), "--data", str(tiny_mnist)])
    assert info.value.code.startswith("evaluate.py: error: Expected `model` to be a .keras file")
    assert "Received: model='" in info.value.code


def test_topk_codes_match_the_layer_and_widen_with_k():
    keras.utils.set_random_seed(0)
    model = models.build_dictionary_autoencoder((4, 4, 1), 20, code_activation=models.TopK(3))
    x = np.random.default_rng(0).random((6, 4, 4, 1)).astype("float32")
    np.testing.assert_allclose(evaluate.topk_codes(model, x, 3),
                               model.get_layer("encoder").predict(x, verbose=0), atol=1e-5)
    assert ((evaluate.topk_codes(model, x, 9) > 0).sum(axis=1) <= 9).all()
    assert evaluate.topk_codes(models.build_dictionary_autoencoder((4, 4, 1), 20), x, 3) is None
