import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from models.dictionary import DICTIONARY_LAYER, initialize_from_data
from regularizers import Contractive, KLSparsity, L1Sparsity

SHAPE = (6, 6, 1)
UNITS = 48  # overcomplete: more latents than the 36 pixels


def images(count=32, seed=0):
    return np.random.default_rng(seed).random((count, *SHAPE)).astype("float32")


def build(**kwargs):
    keras.utils.set_random_seed(0)
    return models.build_dictionary_autoencoder(SHAPE, UNITS, **kwargs)


def test_structure_initialisation_and_names():
    model = build(code_activation=models.TopK(4))
    decoder_rows = np.asarray(model.get_layer("decoder").get_layer(DICTIONARY_LAYER).kernel)
    encoder_kernel = np.asarray(model.get_layer("encoder").get_layer("code").kernel)
    assert decoder_rows.shape == (UNITS, 36) and encoder_kernel.shape == (36, UNITS)
    np.testing.assert_allclose(np.linalg.norm(decoder_rows, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(encoder_kernel, decoder_rows.T)  # W_enc = W_dec^T
    x = images()
    initialize_from_data(model, x)
    mean = x.reshape(len(x), -1).mean(axis=0)
    np.testing.assert_allclose(model.get_layer("encoder").get_layer("pre_bias").bias, mean, rtol=1e-6)
    np.testing.assert_allclose(model.get_layer("decoder").get_layer("decoder_bias").bias, mean, rtol=1e-6)
    assert model(x).shape == x.shape
    assert model.get_layer("encoder")(x).shape == (len(x), UNITS)


def test_a_sigmoid_output_starts_at_the_data_mean():
    model = build(code_activation="sigmoid", output_activation="sigmoid")
    x = images()
    initialize_from_data(model, x)
    logits = np.asarray(model.get_layer("decoder").get_layer("decoder_bias").bias)
    mean = x.reshape(len(x), -1).mean(axis=0)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), mean, rtol=1e-5)


def test_the_saved_config_is_small(tmp_path):
    import zipfile

    model = build(code_activation=models.TopK(4))
    model.save(tmp_path / "d.keras")
    with zipfile.ZipFile(tmp_path / "d.keras") as archive:
        assert archive.getinfo("config.json").file_size < 20_000  # no weights in the config


def test_decoder_rows_stay_unit_norm_after_a_training_step():
    model = build(code_activation="relu")
    model.compile(keras.optimizers.Adam(0.1), "mse")
    model.fit(images(), images(), epochs=1, batch_size=8, verbose=0)
    rows = np.asarray(model.get_layer("decoder").get_layer(DICTIONARY_LAYER).kernel)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, rtol=1e-5)


def auxk_reference(model, x, dead, aux_k):
    """The AuxK loss in NumPy: the top aux_k dead latents reconstruct the residual."""
    encoder = model.get_layer("encoder")
    centered = x.reshape(len(x), -1) - np.asarray(encoder.get_layer("pre_bias").bias)
    code = encoder.get_layer("code")
    pre = centered @ np.asarray(code.kernel) + np.asarray(code.bias)
    ranked = np.where(dead[None], pre, -np.inf)
    keep = np.argsort(-ranked, axis=1, kind="stable")[:, :aux_k]
    z_aux = np.zeros_like(pre)
    np.put_along_axis(z_aux, keep, np.take_along_axis(pre, keep, axis=1), axis=1)
    e_hat = z_aux @ np.asarray(model.get_layer("decoder").get_layer(DICTIONARY_LAYER).kernel)
    e = x.reshape(len(x), -1) - np.asarray(model(x)).reshape(len(x), -1)
    return np.mean(np.sum((e - e_hat) ** 2, axis=1) / np.sum(e**2, axis=1))


def test_auxk_value_against_numpy_and_zero_without_dead_latents():
    model = build(code_activation=models.TopK(4), aux_k=5, dead_after_examples=10)
    x = images(8)
    assert float(model.auxk_loss(x, model(x))) == 0.0  # nothing dead yet
    dead = np.arange(UNITS) % 3 == 0
    model.examples_since_fired.assign(np.where(dead, 10.0, 0.0))
    expected = auxk_reference(model, x, dead, 5)
    assert float(model.auxk_loss(x, model(x))) == pytest.approx(expected, rel=1e-5)
    model(x)
    assert not model.losses  # a training loss only
    model(x, training=True)
    (loss,) = model.losses
    assert float(loss) > 0  # its batch, in training mode (TopK keeps other units)


def test_auxk_gradient_reaches_only_dead_latents_encoder_weights():
    model = build(code_activation=models.TopK(4), aux_k=6, dead_after_examples=10)
    dead = np.arange(UNITS) < 10
    model.examples_since_fired.assign(np.where(dead, 10.0, 0.0))
    x = tf.constant(images(8))
    code = model.get_layer("encoder").get_layer("code")
    with tf.GradientTape() as tape:
        x_hat = model(x)
        aux = model.auxk_loss(x, x_hat)
    kernel_grad, bias_grad = tape.gradient(aux, [code.kernel, code.bias])
    touched = np.abs(np.asarray(kernel_grad)).sum(axis=0) > 0
    assert touched.any() and not touched[~dead].any()
    assert not np.asarray(bias_grad)[~dead].any()


def test_dead_counter_tracks_examples_since_firing_in_training_only():
    model = build(code_activation=models.TopK(2), aux_k=4)
    x = images(8)
    model(x, training=False)
    assert not np.asarray(model.examples_since_fired).any()
    h = np.asarray(model.get_layer("encoder")(x, training=True))
    model(x, training=True)
    counts = np.asarray(model.examples_since_fired)
    fired = (h > 0).any(axis=0)
    np.testing.assert_array_equal(counts[~fired], 8)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(aux_k=4, output_activation="sigmoid"), "Expected output_activation='linear' with AuxK"),
        (dict(aux_k=UNITS + 1), f"Received: aux_k={UNITS + 1}"),
        (dict(code_activation="relu", activity_regularizer=KLSparsity()), "Received: code_activation='relu'"),
        (dict(code_activation="nope"), "Received: code_activation='nope'"),
    ],
)
def test_bad_arguments_raise_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(**kwargs)


LOAD_AND_SERVE = """
import json, sys
import keras, numpy as np, tensorflow as tf
import models, regularizers  # register the layers and penalties; nothing else
keras_path, saved_model, inputs = sys.argv[1:4]
x = np.load(inputs, allow_pickle=False)["x"]
model = keras.models.load_model(keras_path)  # safe mode
served = tf.saved_model.load(saved_model)
print(json.dumps({
    "keras": np.asarray(model.predict(x, verbose=0)).tolist(),
    "code": np.asarray(model.get_layer("encoder").predict(x, verbose=0)).tolist(),
    "served": served.serve(x).numpy().tolist(),
    "served_code": served.encode(x).numpy().tolist(),
    "type": type(model).__name__,
}))
"""


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(code_activation=models.TopK(4, initial_k=8, schedule_examples=64), aux_k=6),
        dict(code_activation=models.BatchTopK(4), aux_k=6),
        dict(code_activation=models.LifetimeWTA(0.1)),
        dict(code_activation="relu", activity_regularizer=L1Sparsity(1e-3), aux_k=6),
        dict(code_activation="sigmoid", output_activation="sigmoid",
             activity_regularizer=KLSparsity(0.05, 1.0)),
        dict(code_activation="relu", activity_regularizer=Contractive(1e-2)),
    ],
    ids=["topk", "batchtopk", "wta", "l1", "kl", "contractive"],
)
def test_trained_dictionary_loads_and_serves_in_a_fresh_process(kwargs, tmp_path, fresh_python):
    from pipeline import export

    model = build(**kwargs)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    x = images(32)
    model.fit(x, x, epochs=2, batch_size=8, verbose=0)
    export.save_keras(model, tmp_path / "d.keras")
    export.export_saved_model(model, tmp_path / "d")
    np.savez(tmp_path / "x.npz", x=x[:5])
    result = json.loads(fresh_python(LOAD_AND_SERVE, tmp_path / "d.keras", tmp_path / "d",
                                     tmp_path / "x.npz").stdout.splitlines()[-1])
    expected = model.predict(x[:5], verbose=0)
    codes = model.get_layer("encoder").predict(x[:5], verbose=0)
    assert result["type"] == "SparseDictionary"
    np.testing.assert_allclose(result["keras"], expected, atol=1e-6)
    np.testing.assert_allclose(result["served"], expected, atol=1e-5)
    np.testing.assert_allclose(result["code"], codes, atol=1e-6)
    np.testing.assert_allclose(result["served_code"], codes, atol=1e-5)


def test_auxk_reaches_dead_latents_whose_pre_activations_are_all_negative():
    # A dead latent has negative pre-activations: AuxK must still give it a
    # gradient and a loss below 1 (with a ReLU on them it would not).
    model = build(code_activation=models.TopK(4), aux_k=6, dead_after_examples=10)
    code = model.get_layer("encoder").get_layer("code")
    dead = np.arange(UNITS) < 10
    code.bias.assign(np.where(dead, -50.0, 0.0).astype("float32"))
    model.examples_since_fired.assign(np.where(dead, 10.0, 0.0))
    x = tf.constant(images(8))
    with tf.GradientTape() as tape:
        aux = model.auxk_loss(x, model(x))
    touched = np.abs(np.asarray(tape.gradient(aux, code.kernel))).sum(axis=0) > 0
    assert touched[dead].sum() >= 6 and not touched[~dead].any()
    assert 0 < float(aux)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "0.1", True])
def test_aux_coefficient_is_a_finite_number_at_least_zero(value):
    # -1 drove the loss negative and exported; NaN wasted an epoch (issue 25, item 6).
    with pytest.raises(ValueError, match=rf"Expected `aux_coefficient` to be a finite number "
                                         rf">= 0. Received: aux_coefficient={value!r}"):
        build(code_activation=models.TopK(4), aux_k=5, aux_coefficient=value)
