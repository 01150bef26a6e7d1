"""Loading a .keras file of this project: safe mode, every custom class registered.

No TensorFlow here: `sparse_ae_zoo.load_model` is this module's, and other
code may run on any Keras backend (JAX, PyTorch, TensorFlow).
"""

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

import keras

import models  # noqa: F401  (registers the layers and models for load_model)
import regularizers  # noqa: F401  (registers the penalties for load_model)


def load_model(path):
    """Loads a .keras file of this project, in safe mode, every custom class registered.

    One call instead of `import models, regularizers` + `keras.models.load_model`.

    Raises:
        ValueError: the file is not a .keras archive, or names classes,
            modules or penalties this project does not have (one line).
    """
    return load_model_and_sha256(path)[0]


def load_model_and_sha256(path):
    """(model, hex sha256 of the bytes it was loaded from), as `load_model`.

    The file is read once; the hash and the model come from those bytes (a
    private copy is what Keras loads), so an export swapped in meanwhile can
    never pair one model's hash with another's weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected `model` to be an existing .keras file. Received: model='{path}' "
            f"({'a folder' if path.is_dir() else 'no such file'})")
    content = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise ValueError(
            f"Expected `model` to be a .keras archive (a zip file). Received: model='{path}' "
            f"({len(content)} bytes that are not a zip archive: truncated or not a model)")
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "model.keras"
        copy.write_bytes(content)
        try:
            model = keras.models.load_model(copy)  # safe mode (the default)
        except (TypeError, ValueError, KeyError, OSError, zipfile.BadZipFile,
                RecursionError) as error:  # a config.json nested 100k levels deep
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ValueError(
                f"Expected `model` to be a .keras file of this project's models. "
                f"Received: model='{path}', which Keras cannot rebuild ({reason})"
            ) from None
    return model, hashlib.sha256(content).hexdigest()
