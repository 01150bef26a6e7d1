import json

import keras
import numpy as np
import pytest

import models
from models.dictionary import DICTIONARY_LAYER, initialize_from_data
from regularizers import Contractive, KLSparsity, L1Sparsity
from tests.conftest import gradients

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


def test_unit_norm_decoder_false_leaves_the_rows_free_from_their_initial_norm(tmp_path):
    model = build(code_activation=models.BatchTopK(4), unit_norm_decoder=False, initial_norm=0.1)
    rows = np.asarray(model.get_layer("decoder").get_layer(DICTIONARY_LAYER).kernel)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 0.1, rtol=1e-5)
    model.compile(keras.optimizers.Adam(0.1), "mse")
    model.fit(images(), images(), epochs=1, batch_size=8, verbose=0)
    rows = np.asarray(model.get_layer("decoder").get_layer(DICTIONARY_LAYER).kernel)
    norms = np.linalg.norm(rows, axis=1)
    assert np.ptp(norms) > 0.01 and not np.allclose(norms, 1, atol=1e-3)
    path = tmp_path / "free.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe mode
    assert loaded.get_layer("decoder").get_layer(DICTIONARY_LAYER).kernel.constraint is None
    with pytest.raises(ValueError, match="Expected `unit_norm_decoder` to be a bool. "
                                         "Received: unit_norm_decoder='no'"):
        build(unit_norm_decoder="no")


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
    e = x.reshape(len(x), -1) - keras.ops.convert_to_numpy(model(x)).reshape(len(x), -1)
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
    x = images(8)
    code = model.get_layer("encoder").get_layer("code")
    _, (kernel_grad, bias_grad) = gradients(lambda: model.auxk_loss(x, model(x)),
                                            variables=[code.kernel, code.bias])
    touched = np.abs(np.asarray(kernel_grad)).sum(axis=0) > 0
    assert touched.any() and not touched[~dead].any()
    assert not np.asarray(bias_grad)[~dead].any()


def test_dead_counter_tracks_examples_since_firing_in_training_only():
    model = build(code_activation=models.TopK(2), aux_k=4)
    x = images(8)
    model(x, training=False)
    assert not np.asarray(model.examples_since_fired).any()
    h = keras.ops.convert_to_numpy(model.get_layer("encoder")(x, training=True))
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
        (dict(prefixes=(8, 4)), "Expected `prefixes` to be increasing sizes <= the 48 latents. "
                                "Received: prefixes=(8, 4)"),
        (dict(prefixes=(8, UNITS + 1)), f"Received: prefixes=(8, {UNITS + 1})"),
        (dict(prefixes=(0,)), "Received: prefixes=(0,)"),
        (dict(prefixes=(8,), output_activation="sigmoid"),
         "Expected output_activation='linear' with prefixes"),
        (dict(code_activation=models.activations.Gated(), output_activation="sigmoid"),
         "Expected output_activation='linear' with a gated code"),
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


@pytest.mark.tensorflow_only  # the SavedModel (tests/test_backends.py: the .keras file everywhere)
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
        dict(code_activation=models.activations.JumpReLU(0.05, bandwidth=0.05,
                                                          l0_coefficient=1e-3)),
        dict(code_activation=models.activations.Gated(1e-3)),
        dict(code_activation=models.BatchTopK(4), prefixes=(8, 24)),
    ],
    ids=["topk", "batchtopk", "wta", "l1", "kl", "contractive", "jumprelu", "gated", "matryoshka"],
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
    x = images(8)
    _, (kernel_grad,) = gradients(lambda: model.auxk_loss(x, model(x)), variables=[code.kernel])
    touched = np.abs(kernel_grad).sum(axis=0) > 0
    assert touched[dead].sum() >= 6 and not touched[~dead].any()
    assert 0 < float(model.auxk_loss(x, model(x)))


def test_tied_weights_train_one_matrix_and_the_decoder_serves_its_copy(tmp_path, fresh_python):
    model = build(code_activation=models.LifetimeWTA(0.25), tied_weights=True, initial_norm=0.5)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    w_enc = encoder.get_layer("code").kernel
    w_dec = decoder.get_layer(DICTIONARY_LAYER).kernel
    np.testing.assert_allclose(np.linalg.norm(np.asarray(w_dec), axis=1), 0.5, rtol=1e-5)
    assert not w_dec.trainable and w_dec.constraint is None
    assert all(v is not w_dec for v in model.trainable_variables)
    x = images()
    initialize_from_data(model, x)
    before = np.asarray(w_enc).copy()
    model.compile(keras.optimizers.SGD(0.5), "mse")
    model.fit(x, x, batch_size=32, epochs=1, verbose=0)
    # One step: the gradient of both uses reached W_enc; the decoder's copy was
    # set before the step and lags it until synced.
    assert not np.allclose(np.asarray(w_enc), before)
    np.testing.assert_allclose(np.asarray(w_dec), before.T, rtol=1e-6)
    model.sync_tied_decoder()
    np.testing.assert_allclose(np.asarray(w_dec), np.asarray(w_enc).T, rtol=1e-6)
    # The tied forward of training is the decoder's forward with its synced copy.
    h = keras.ops.convert_to_numpy(encoder(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model._decode_tied(h)),
                               keras.ops.convert_to_numpy(decoder(h)),
                               rtol=1e-5, atol=1e-6)
    # The gradient of the tied decoder reaches W_enc (d/dW of sum(x_hat) = sum_n h_n).
    _, (grad,) = gradients(lambda: keras.ops.sum(model._decode_tied(h)), variables=[w_enc])
    np.testing.assert_allclose(grad, np.tile(h.sum(axis=0), (36, 1)), rtol=1e-4)
    path = tmp_path / "tied.keras"
    model.save(path)
    fresh_python(
        "import sys, numpy as np, keras, models, regularizers\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "assert m.tied_weights\n"
        "x = np.random.default_rng(0).random((5, 6, 6, 1)).astype('float32')\n"
        "d = m.get_layer('decoder')\n"
        "numpy = keras.ops.convert_to_numpy\n"
        "np.testing.assert_allclose(numpy(d(m.get_layer('encoder')(x))), numpy(m(x)), rtol=1e-6)\n"
        "np.testing.assert_allclose(np.asarray(d.get_layer('dictionary').kernel),\n"
        "                           np.asarray(m.get_layer('encoder').get_layer('code').kernel).T)\n",
        path)


def test_initial_norm_and_tied_weights_are_checked():
    with pytest.raises(ValueError, match="Expected `initial_norm` to be a finite number > 0. "
                                         "Received: initial_norm=0"):
        build(initial_norm=0)
    with pytest.raises(ValueError, match="Expected `tied_weights` to be a bool. "
                                         "Received: tied_weights='yes'"):
        build(tied_weights="yes")


# === Gated and Matryoshka losses against NumPy (issue 22) ===

def numpy_weights(model):
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    return dict(b_pre=encoder.get_layer("pre_bias").bias.numpy(),
                kernel=encoder.get_layer("code").kernel.numpy(),
                w_dec=decoder.get_layer(DICTIONARY_LAYER).kernel.numpy(),
                b_dec=decoder.get_layer("decoder_bias").bias.numpy())


def test_gated_aux_loss_and_its_frozen_decoder_match_numpy():
    model = build(code_activation=models.activations.Gated(0.0))
    x = images(16)
    initialize_from_data(model, x)
    gated = model.get_layer("encoder").get_layer("code").code_activation_layer
    gated.b_gate.assign(np.linspace(-0.5, 0.5, UNITS).astype("float32"))
    weights = numpy_weights(model)
    flat = x.reshape(len(x), -1)
    gate = np.maximum((flat - weights["b_pre"]) @ weights["kernel"] + gated.b_gate.numpy(), 0)
    expected = np.mean((flat - (gate @ weights["w_dec"] + weights["b_dec"])) ** 2)
    np.testing.assert_allclose(float(model.gated_aux_loss(x)), expected, rtol=1e-5)
    decoder_kernel = model.get_layer("decoder").get_layer(DICTIONARY_LAYER).kernel
    _, grads = gradients(lambda: model.gated_aux_loss(x), variables=[decoder_kernel, gated.b_gate])
    assert not np.any(grads[0])  # the copy of the decoder is frozen
    assert np.any(grads[1])  # the gate learns from it


def test_matryoshka_prefix_losses_match_numpy_and_each_is_named():
    model = build(code_activation=models.BatchTopK(6), prefixes=(8, 24, UNITS))
    assert model.prefixes == (8, 24)  # the whole dictionary is the main loss already
    x = images(16)
    initialize_from_data(model, x)
    h = keras.ops.convert_to_numpy(model.get_layer("encoder")(x))
    weights = numpy_weights(model)
    flat = x.reshape(len(x), -1)
    terms = model.training_loss_terms(x, model(x))
    assert set(terms) == {"prefix_8_loss", "prefix_24_loss"}
    for size in (8, 24):
        x_hat = h[:, :size] @ weights["w_dec"][:size] + weights["b_dec"]
        np.testing.assert_allclose(float(terms[f"prefix_{size}_loss"]),
                                   np.mean((flat - x_hat) ** 2), rtol=1e-5)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "0.1", True])
def test_aux_coefficient_is_a_finite_number_at_least_zero(value):
    # -1 drove the loss negative and exported; NaN wasted an epoch (issue 25, item 6).
    with pytest.raises(ValueError, match=rf"Expected `aux_coefficient` to be a finite number "
                                         rf">= 0. Received: aux_coefficient={value!r}"):
        build(code_activation=models.TopK(4), aux_k=5, aux_coefficient=value)
