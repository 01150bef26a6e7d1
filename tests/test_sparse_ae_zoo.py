"""`import sparse_ae_zoo`: the one import that loads every model kind, whatever the folder."""

import keras
import numpy as np

import models
import regularizers
from tests.conftest import run_python

SHAPE = (8, 8, 1)

# One model of every family, code activation and penalty kind.
KINDS = {
    "dense-l1": lambda: models.build_dense_autoencoder(
        SHAPE, 6, activity_regularizer=regularizers.L1Sparsity(1e-3)),
    "dense-kl": lambda: models.build_dense_autoencoder(
        SHAPE, 6, code_activation="sigmoid", activity_regularizer=regularizers.KLSparsity(0.1)),
    "conv-map-topk": lambda: models.build_conv_autoencoder(
        SHAPE, 4, filters=(4,), code_activation=models.TopK(3)),
    "conv-dense-contractive": lambda: models.build_conv_autoencoder(
        SHAPE, 4, filters=(4,), code_units=5,
        activity_regularizer=regularizers.Contractive(1e-3)),
    "dict-topk": lambda: models.build_dictionary_autoencoder(
        SHAPE, 16, code_activation=models.TopK(3), aux_k=4),
    "dict-batchtopk": lambda: models.build_dictionary_autoencoder(
        SHAPE, 16, code_activation=models.BatchTopK(3)),
    "dict-wta-tied": lambda: models.build_dictionary_autoencoder(
        SHAPE, 16, code_activation=models.LifetimeWTA(0.2), tied_weights=True),
    "dict-jumprelu": lambda: models.build_dictionary_autoencoder(
        SHAPE, 16, code_activation=models.activations.JumpReLU()),
    "dict-gated": lambda: models.build_dictionary_autoencoder(
        SHAPE, 16, code_activation=models.activations.Gated()),
    "dict-matryoshka": lambda: models.build_dictionary_autoencoder(
        SHAPE, 16, code_activation=models.BatchTopK(3), prefixes=(8,)),
    "dict-vectors-normalized": lambda: models.build_dictionary_autoencoder(
        SHAPE, 16, code_activation=models.TopK(3), normalize="mean-norm"),
    "conv-wta": lambda: models.build_conv_autoencoder(
        SHAPE, 4, filters=(), strides=1, decoder_kernel_size=5,
        code_activation=models.ConvWTA(0.5), output_activation="linear"),
}

LOAD_ALL = """
import sys, pathlib
import numpy as np
import sparse_ae_zoo, keras
assert "user" not in sys.modules  # the user's own module was not imported
folder = pathlib.Path(sys.argv[1])
x = np.load(folder / "x.npy")
for path in sorted(folder.glob("*.keras")):
    model = keras.models.load_model(path) if "dict" in path.stem else sparse_ae_zoo.load_model(path)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(path.with_suffix(".npy")),
                               rtol=1e-5, atol=1e-6, err_msg=path.stem)
print("loaded", len(list(folder.glob("*.keras"))))
"""


def test_one_import_loads_every_model_kind_in_a_folder_with_its_own_models_py(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((4, *SHAPE)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    for name, build in KINDS.items():
        model = build()
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", model.predict(x, verbose=0))
    # A user's folder whose own models.py and regularizers.py would shadow ours.
    (tmp_path / "models.py").write_text("import sys; sys.modules['user'] = 1\n"
                                        "raise RuntimeError('the user models.py was imported')\n")
    (tmp_path / "regularizers.py").write_text("raise RuntimeError('the user file was imported')\n")
    result = run_python(["-c", LOAD_ALL, tmp_path], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"loaded {len(KINDS)}" in result.stdout


def test_a_same_named_module_imported_first_is_named_in_one_line(tmp_path):
    (tmp_path / "models.py").write_text("")
    result = run_python(["-c", "import models, sparse_ae_zoo"], cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: Expected `models` to be sparse-ae-zoo's package")
    assert str(tmp_path / "models.py") in last


def test_it_exposes_the_builders_penalties_activations_and_loader():
    import sparse_ae_zoo

    assert sparse_ae_zoo.build_dictionary_autoencoder is models.build_dictionary_autoencoder
    assert sparse_ae_zoo.L1Sparsity is regularizers.L1Sparsity
    assert sparse_ae_zoo.TopK is models.TopK
    assert callable(sparse_ae_zoo.load_model)
    assert set(models.__all__) <= set(sparse_ae_zoo.__all__)
