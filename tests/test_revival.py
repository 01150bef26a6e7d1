import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from pipeline import manifest
from pipeline import revival
from pipeline import training

THRESHOLD = 0.01
KILLED = [1, 3]


def images(count=64, seed=0):
    return np.random.default_rng(seed).uniform(size=(count, 28, 28, 1)).astype("float32")


def tiny_model(family):
    keras.utils.set_random_seed(0)
    if family == "dense":
        return models.build_dense_autoencoder((28, 28, 1), 6, hidden_units=(8,))
    return models.build_conv_autoencoder((28, 28, 1), 5, filters=(4,))


def kill(model, units=KILLED):
    """Makes `units` of the code never fire: zero incoming weights, a negative bias."""
    layer = revival.code_layer(model)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    kernel[..., units] = 0.0
    bias[units] = -1.0
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)


def firing(model, x):
    codes = np.asarray(model.get_layer(models.ENCODER)(x, training=False))
    return (codes.reshape(-1, codes.shape[-1]) > THRESHOLD).mean(axis=0)


@pytest.mark.parametrize("family", ["dense", "conv"])
def test_dead_units_are_revived_and_live_ones_left_alone(family):
    model, x = tiny_model(family), images()
    kill(model)
    before = firing(model, x)
    layer = revival.code_layer(model)
    kernel_before = layer.kernel.numpy()
    revived = revival.revive_dead_units(model, x, threshold=THRESHOLD, seed=0)
    np.testing.assert_array_equal(revived, np.flatnonzero(before == 0))
    assert set(KILLED) <= set(revived)
    after = firing(model, x)
    assert (after[revived] > 0).all()
    # Each starts near the live units' median firing rate, on the same sample.
    np.testing.assert_allclose(after[revived], np.median(before[before > 0]), atol=0.05)
    live = np.flatnonzero(before > 0)
    np.testing.assert_array_equal(layer.kernel.numpy()[..., live], kernel_before[..., live])
    norms = np.sqrt((layer.kernel.numpy().reshape(-1, len(before)) ** 2).sum(axis=0))
    np.testing.assert_allclose(norms[revived], norms[live].mean(), rtol=1e-5)
    assert revival.revive_dead_units(model, x, threshold=THRESHOLD, seed=0).size == 0


def test_a_dense_unit_is_revived_along_the_loss_descent_direction():
    """w_j = -sum_n g_nj h_n (scaled), g = dL/dcode through the decoder."""
    model, x = tiny_model("dense"), images()
    kill(model)
    encoder, decoder = model.get_layer(models.ENCODER), model.get_layer(models.DECODER)
    h = keras.Model(encoder.inputs[0], revival.code_layer(model).input)(x).numpy()
    codes = tf.constant(encoder(x).numpy())
    with tf.GradientTape() as tape:
        tape.watch(codes)
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(x, decoder(codes)))
    g = tape.gradient(loss, codes).numpy()
    revived = revival.revive_dead_units(model, x, threshold=THRESHOLD, seed=0)
    kernel = revival.code_layer(model).kernel.numpy()
    for unit in revived:
        expected = -h.T @ g[:, unit]
        cosine = kernel[:, unit] @ expected / (
            np.linalg.norm(kernel[:, unit]) * np.linalg.norm(expected))
        assert cosine == pytest.approx(1.0, abs=1e-5)


def test_the_callback_revives_on_its_schedule_and_logs_the_count():
    model, x = tiny_model("dense"), images()
    callback = revival.DeadUnitRevival(x, every=2, until=3, threshold=THRESHOLD, seed=0)
    callback.set_model(model)
    counts = []
    for epoch in range(5):
        kill(model)
        logs = {}
        callback.on_epoch_end(epoch, logs)
        counts.append(logs["code_revived"])
    # Epochs 2 (every 2nd, <= until) only; 4 is after `until`.
    assert counts[1] >= len(KILLED)
    assert counts[0] == counts[2] == counts[3] == counts[4] == 0


def test_a_model_without_a_code_layer_is_refused_in_one_line():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)], name="plain")
    with pytest.raises(ValueError, match="Expected a model with an 'encoder' sub-model"):
        revival.check_revivable(model)


def test_training_with_revival_logs_the_revived_units(tiny_mnist, tmp_path):
    config = manifest.config_of("dense-l1", epochs=2, batch_size=16, hidden_units=(8,),
                                code_size=4, jit_compile=False, revive_every=1,
                                revive_until=0.5)
    assert config.last_revival_epoch == 1
    summary = training.train(config, data_path=tiny_mnist, out=tmp_path / "out",
                             logdir=tmp_path / "logs")
    with open(f"{summary['logs']}/training.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["code_revived"] for row in rows][1] == "0"  # after revive_until
    assert "code_revived" in rows[0]


@pytest.mark.parametrize("family", ["dense", "conv"])
def test_revival_in_chunks_gives_what_one_pass_gives(family, monkeypatch):
    """The sample goes through in chunks (bounded memory); the sums must not change."""
    x = images()
    results = []
    for chunk in (len(x), 16):
        monkeypatch.setattr(revival, "CHUNK_IMAGES", chunk)
        model = tiny_model(family)
        kill(model)
        revived = revival.revive_dead_units(model, x, threshold=THRESHOLD, seed=0)
        layer = revival.code_layer(model)
        results.append((revived, layer.kernel.numpy(), layer.bias.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results[0][2], results[1][2], rtol=1e-4, atol=1e-6)


def test_a_mixed_bfloat16_model_is_revived():
    from pipeline import precision

    with precision.policy_scope(precision.MIXED_BFLOAT16):
        model = tiny_model("dense")
    x = images()
    kill(model)
    revived = revival.revive_dead_units(model, x, threshold=THRESHOLD, seed=0)
    assert set(KILLED) <= set(revived)
    assert (firing(model, x)[revived] > 0).all()
