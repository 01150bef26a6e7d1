import json

import keras
import numpy as np
import pytest

import models
from models import _assembly
from regularizers import KLSparsity, L1Sparsity

TINY_SHAPE = (8, 8, 1)


def code_layers_with_regularizer(model):
    """Names of all layers (at any depth) that carry an activity regularizer."""
    found = []
    for sub in (model.get_layer("encoder"), model.get_layer("decoder")):
        found += [
            f"{sub.name}/{layer.name}"
            for layer in sub.layers
            if layer.activity_regularizer is not None
        ]
    found += [layer.name for layer in model.layers if layer.activity_regularizer]
    return found


def build(family, input_shape, **kwargs):
    if family == "dense":
        return models.build_dense_autoencoder(
            input_shape, 4, hidden_units=(16,), **kwargs
        )
    return models.build_conv_autoencoder(input_shape, 2, filters=(4,), **kwargs)


@pytest.mark.parametrize("family", ["dense", "conv"])
@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3), (16, 16, 1), (15, 9, 2)])
def test_output_shape_equals_input_shape(family, input_shape):
    model = build(family, input_shape, activity_regularizer=L1Sparsity(1e-3))
    x = np.random.default_rng(0).random((2, *input_shape)).astype("float32")
    assert model(x).shape == x.shape
    assert model.get_layer("encoder").name == "encoder"
    assert model.get_layer("decoder").name == "decoder"
    assert code_layers_with_regularizer(model) == ["encoder/code"]


def test_dense_accepts_any_rank():
    model = models.build_dense_autoencoder((5, 6), 3, hidden_units=())
    assert model.output_shape == (None, 5, 6)


def test_conv_code_is_a_feature_map_with_code_filters_channels():
    model = models.build_conv_autoencoder((28, 28, 1), 32, filters=(8, 16))
    # Three stride-2 "same" convs: 28 -> 14 -> 7 -> 4.
    assert model.get_layer("encoder").output_shape == (None, 4, 4, 32)


def test_hidden_stacks_follow_the_arguments():
    dense = models.build_dense_autoencoder((8, 8, 1), 4, hidden_units=(32, 16, 8))
    widths = [l.units for l in dense.get_layer("encoder").layers if hasattr(l, "units")]
    assert widths == [32, 16, 8, 4]
    widths = [l.units for l in dense.get_layer("decoder").layers if hasattr(l, "units")]
    assert widths == [8, 16, 32, 64]
    conv = models.build_conv_autoencoder((16, 16, 1), 2, filters=(4, 6, 8))
    channels = [l.filters for l in conv.get_layer("encoder").layers]
    assert channels == [4, 6, 8, 2]
    channels = [l.filters for l in conv.get_layer("decoder").layers if hasattr(l, "filters")]
    assert channels == [8, 6, 4, 1]


def test_parameter_count_is_pinned():
    # Dense 64 -> 16 -> 4 -> 16 -> 64: (64*16+16) + (16*4+4) + (4*16+16) + (16*64+64).
    dense = build("dense", TINY_SHAPE)
    assert dense.count_params() == 1040 + 68 + 80 + 1088
    # Conv 3x3: 1->4, 4->2 (code), transposed 2->4, 4->1.
    conv = build("conv", TINY_SHAPE)
    assert conv.count_params() == (9 * 4 + 4) + (9 * 4 * 2 + 2) + (9 * 2 * 4 + 4) + (9 * 4 + 1)


@pytest.mark.parametrize("family", ["dense", "conv"])
@pytest.mark.parametrize(
    "identifier",
    [
        KLSparsity(0.1, 2.0),
        keras.regularizers.serialize(KLSparsity(0.1, 2.0)),
        "sparse_ae_zoo>KLSparsity",
    ],
    ids=["instance", "config", "registered-name"],
)
def test_regularizer_identifiers(family, identifier):
    model = build(family, TINY_SHAPE, code_activation="sigmoid", activity_regularizer=identifier)
    regularizer = model.get_layer("encoder").get_layer("code").activity_regularizer
    assert isinstance(regularizer, KLSparsity)
    expected = {"rho": 0.1, "beta": 2.0} if not isinstance(identifier, str) else KLSparsity().get_config()
    assert regularizer.get_config() == expected


@pytest.mark.parametrize("family", ["dense", "conv"])
def test_model_losses_hold_the_code_penalty(family):
    model = build(family, TINY_SHAPE, activity_regularizer=L1Sparsity(0.5))
    x = np.random.default_rng(0).random((3, *TINY_SHAPE)).astype("float32")
    model(x)
    code = keras.ops.convert_to_numpy(model.get_layer("encoder")(x))
    (loss,) = model.losses
    expected = 0.5 * np.abs(code).reshape(3, -1).sum(axis=1).mean()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("family", ["dense", "conv"])
@pytest.mark.parametrize("code_activation", ["relu", "linear", "tanh"])
def test_kl_on_unbounded_code_activation_raises(family, code_activation):
    with pytest.raises(ValueError, match=f"Received: code_activation='{code_activation}'"):
        build(family, TINY_SHAPE, code_activation=code_activation, activity_regularizer=KLSparsity())


@pytest.mark.parametrize("family", ["dense", "conv"])
def test_noise_is_active_in_training_only(family):
    model = build(family, TINY_SHAPE, noise_stddev=0.5)
    x = np.full((2, *TINY_SHAPE), 0.5, "float32")

    def run(training):
        return keras.ops.convert_to_numpy(model(x, training=training))

    np.testing.assert_array_equal(run(False), run(False))
    assert not np.allclose(run(True), run(False))
    assert model.get_layer("noise").stddev == 0.5
    assert "noise" not in [layer.name for layer in build(family, TINY_SHAPE).layers]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_shape": (8, 0, 1)}, "Received: input_shape=(8, 0, 1)"),
        ({"code": 0}, "Received: code_"),
        ({"noise_stddev": -0.1}, "Received: noise_stddev=-0.1"),
        ({"activation": "nope"}, "Received: activation='nope'"),
        ({"activity_regularizer": "no_such_penalty"}, "Received: activity_regularizer='no_such_penalty'"),
    ],
)
@pytest.mark.parametrize("family", ["dense", "conv"])
def test_bad_arguments_raise_with_the_value(family, kwargs, message):
    kwargs = dict(kwargs)
    input_shape = kwargs.pop("input_shape", TINY_SHAPE)
    code = kwargs.pop("code", 4)
    builder = models.build_dense_autoencoder if family == "dense" else models.build_conv_autoencoder
    with pytest.raises(ValueError, match="Expected `") as info:
        builder(input_shape, code, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"filters": (4, -1)}, "Received: filters=(4, -1)"),
        ({"kernel_size": 0}, "Received: kernel_size=0"),
        ({"input_shape": (28, 28)}, "Expected `input_shape` to have 3 axes"),
    ],
)
def test_conv_bad_arguments(kwargs, message):
    kwargs = dict(kwargs)
    input_shape = kwargs.pop("input_shape", TINY_SHAPE)
    with pytest.raises(ValueError, match="Expected `") as info:
        models.build_conv_autoencoder(input_shape, 2, **kwargs)
    assert message in str(info.value)


LOAD_IN_FRESH_PROCESS = """
import json, sys
import keras, numpy as np
import models, regularizers  # register the layers and penalties; nothing else from the project
path, inputs, outputs = sys.argv[1:4]
model = keras.models.load_model(path)  # safe mode (the default)
x = np.load(inputs, allow_pickle=False)["x"]
code = model.get_layer("encoder").get_layer("code")
np.savez(outputs, y=np.asarray(model.predict(x, verbose=0)))
print(json.dumps(keras.regularizers.serialize(code.activity_regularizer)))
"""


@pytest.mark.parametrize("family", ["dense", "conv"])
@pytest.mark.parametrize(
    "regularizer", [L1Sparsity(0.01), KLSparsity(0.07, 1.5)], ids=["l1", "kl"]
)
def test_saved_model_loads_in_a_fresh_process(family, regularizer, tmp_path, fresh_python):
    model = build(
        family, TINY_SHAPE, code_activation="sigmoid", activity_regularizer=regularizer, noise_stddev=0.1
    )
    path = tmp_path / "model.keras"
    model.save(path)
    x = np.random.default_rng(0).random((5, *TINY_SHAPE)).astype("float32")
    np.savez(tmp_path / "x.npz", x=x)
    result = fresh_python(LOAD_IN_FRESH_PROCESS, path, tmp_path / "x.npz", tmp_path / "y.npz")
    loaded = np.load(tmp_path / "y.npz", allow_pickle=False)["y"]
    np.testing.assert_array_equal(loaded, model.predict(x, verbose=0))
    config = json.loads(result.stdout.strip().splitlines()[-1])
    assert config["registered_name"] == keras.saving.get_registered_name(type(regularizer))
    assert config["config"] == regularizer.get_config()


def test_conv_with_a_dense_code_builds_the_keras_blog_model_exactly():
    # Conv2D(16)+MaxPool, Conv2D(32)+MaxPool, Flatten, Dense(32, relu, l1),
    # Dense(7*7*32), Reshape, Conv2D(32), Conv2DTranspose(32, s2),
    # Conv2DTranspose(16, s2), Conv2DTranspose(1): 130,017 parameters.
    model = models.build_conv_autoencoder(
        (28, 28, 1), 1, filters=(16, 32), downsampling="maxpool", code_units=32,
        activity_regularizer=L1Sparsity(1e-4))
    assert model.count_params() == 130_017
    shapes = [layer.output.shape[1:] for layer in model.get_layer("encoder").layers]
    assert shapes == [(28, 28, 16), (14, 14, 16), (14, 14, 32), (7, 7, 32), (1568,), (32,)]
    shapes = [layer.output.shape[1:] for layer in model.get_layer("decoder").layers]
    assert shapes == [(1568,), (7, 7, 32), (7, 7, 32), (14, 14, 32), (28, 28, 16), (28, 28, 1)]
    assert code_layers_with_regularizer(model) == ["encoder/code"]


def test_conv_dense_code_with_strides():
    model = models.build_conv_autoencoder((28, 28, 1), 1, filters=(8, 16), code_units=10)
    assert model.get_layer("encoder").output_shape == (None, 10)
    assert model.output_shape == (None, 28, 28, 1)


def test_conv_code_map_with_a_code_activation_layer_carries_the_penalty():
    penalty = L1Sparsity(1e-3)
    model = models.build_conv_autoencoder((8, 8, 1), 3, filters=(4,),
                                          code_activation=models.TopK(5),
                                          activity_regularizer=penalty)
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    codes = keras.ops.convert_to_numpy(model.get_layer("encoder")(x))
    assert ((codes > 0).reshape(2, -1).sum(axis=1) <= 5).all()
    assert len(model.get_layer("encoder").losses) == 1


@pytest.mark.parametrize("family, kwargs", [
    ("dictionary", dict(code_size=24, code_activation=models.BatchTopK(2))),
    ("conv", dict(code_size=6, filters=(4,), code_activation=models.BatchTopK(2))),
])
def test_calibrate_thresholds_sets_batchtopk_from_the_code_inputs(family, kwargs, monkeypatch):
    """The dictionary's BatchTopK sits inside its CodeDense; the conv one follows its conv."""
    model = models.get_family(family).builder((28, 28, 1), **kwargs)
    images = np.random.default_rng(0).uniform(size=(50, 28, 28, 1)).astype("float32")
    monkeypatch.setattr(_assembly, "CALIBRATION_CHUNK", 7)  # the encoder runs in chunks
    chunked = models.calibrate_thresholds(model, images)
    monkeypatch.setattr(_assembly, "CALIBRATION_CHUNK", len(images))
    thresholds = models.calibrate_thresholds(model, images)
    assert chunked == pytest.approx(thresholds, rel=1e-6)
    assert len(thresholds) == 1
    assert [layer.name for layer in models.calibrating_layers(model)] == list(thresholds)
    codes = keras.ops.convert_to_numpy(model.get_layer(models.ENCODER)(images, training=False))
    # k = 2 per example on the calibration images.
    assert (codes.reshape(50, -1) > 0).sum() == 2 * 50
    assert models.calibrate_thresholds(
        models.get_family("dense").builder((28, 28, 1), 4), images) == {}


def test_calibrate_thresholds_of_a_mixed_bfloat16_dictionary():
    """Its code layer computes in bfloat16 over float32 weights: calibration must too."""
    from pipeline import precision

    with precision.policy_scope(precision.MIXED_BFLOAT16):
        # Seeded: bf16 pre-activations tie, and how many tie at the threshold
        # depends on the weights (an unseeded build kept 4 units too few once).
        model = models.build_dictionary_autoencoder(
            (28, 28, 1), 24, code_activation=models.BatchTopK(2), seed=0)
    images = np.random.default_rng(0).uniform(size=(50, 28, 28, 1)).astype("float32")
    assert len(models.calibrate_thresholds(model, images)) == 1
    codes = np.asarray(keras.ops.convert_to_numpy(
        model.get_layer(models.ENCODER)(images, training=False)), "float32")
    # What bf16 can promise: the bf16 pre-activations tie, and a threshold keeps
    # or drops a tie whole, so the count is the one nearest k*N that a threshold
    # on these values can give. Calibrated on float32 pre-activations (as it
    # once was), the count missed that by a CPU-dependent amount.
    layer = models.calibrating_layers(model)[0]
    inputs = keras.Model(model.get_layer(models.ENCODER).inputs[0], layer.input)(images)
    pre = keras.ops.convert_to_numpy(keras.ops.cast(
        keras.ops.matmul(inputs, keras.ops.cast(layer.kernel, "bfloat16"))
        + keras.ops.cast(layer.bias, "bfloat16"), "float32")).ravel()
    assert pre.dtype == np.float32 and len(np.unique(pre)) < pre.size  # ties exist
    counts = {int((pre > t).sum()) for t in np.unique(pre)}
    nearest = min(abs(c - 2 * 50) for c in counts)
    assert abs(int((codes > 0).sum()) - 2 * 50) == nearest


# === Per-dataset normalisation inside the model (issue 22) ===

@pytest.mark.parametrize("builder", [models.build_dense_autoencoder,
                                     models.build_dictionary_autoencoder])
def test_normalisation_scales_in_and_out_so_the_model_takes_raw_data(builder):
    kwargs = {"output_activation": "linear"}
    plain = builder((5,), 8, **kwargs)
    model = builder((5,), 8, normalize="mean-norm", **kwargs)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    models.set_normalization(model, 4.0)
    encoder = model.get_layer("encoder")
    assert encoder.layers[0].name == "normalize"
    assert model.get_layer("decoder").layers[-1].name == "denormalize"
    np.testing.assert_allclose(encoder.get_layer("normalize")(x), 4 * x)
    np.testing.assert_allclose(model.get_layer("decoder").get_layer("denormalize")(x), x / 4)
    assert float(models.input_scale(model).numpy()) == 4.0
    assert models.input_scale(plain) is None


@pytest.mark.parametrize("kwargs,message", [
    ({"normalize": "zscore"}, "Expected `normalize` in ['none', 'mean-norm']. Received: normalize='zscore'"),
    ({"normalize": "mean-norm", "output_activation": "sigmoid"},
     "Expected output_activation='linear' with normalize='mean-norm'. "
     "Received: output_activation='sigmoid'"),
])
def test_bad_normalisations_are_refused(kwargs, message):
    with pytest.raises(ValueError) as info:
        models.build_dense_autoencoder((5,), 4, **kwargs)
    assert str(info.value) == message
