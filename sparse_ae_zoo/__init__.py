"""sparse-ae-zoo: the one import for other code.

    import sparse_ae_zoo
    model = sparse_ae_zoo.load_model("saved_models/dict-wta.keras")   # safe mode
    # or, after the import, keras.models.load_model(...) as usual

Importing it registers every custom Keras class of the project (the layers,
code activations, penalties and the dictionary model, all under the
registered package name "sparse_ae_zoo>") and exposes the builders, the
penalties, the code activations and the loader. It loads the project's own
`models`, `regularizers` and `pipeline` packages from where this package is
installed, so a module of yours with one of those names (a `models.py` in
the working folder) does not take their place; `import models, regularizers`
keeps working as before.
"""

import importlib.util
import sys
from pathlib import Path

# The folder that holds models/, regularizers/ and pipeline/ (the project root
# of an editable install, site-packages otherwise).
_HOME = Path(__file__).resolve().parent.parent
_PACKAGES = ("models", "regularizers", "pipeline")


def _project_package(name):
    """The project's top-level package `name`, imported from _HOME."""
    init = _HOME / name / "__init__.py"
    module = sys.modules.get(name)
    if module is not None:
        if Path(getattr(module, "__file__", "") or "").resolve() == init.resolve():
            return module
        raise ImportError(
            f"Expected `{name}` to be sparse-ae-zoo's package ({init}). Received: "
            f"{getattr(module, '__file__', module)!r}, a module of that name imported first; "
            f"import sparse_ae_zoo before it, or rename it")
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


models, regularizers, pipeline = (_project_package(name) for name in _PACKAGES)

from pipeline.loading import load_model  # noqa: E402  (after the packages above; no TensorFlow)

# The builders, layers and code activations (models), and the penalties.
globals().update({name: getattr(models, name) for name in models.__all__})
globals().update({name: getattr(regularizers, name) for name in regularizers.__all__})

__all__ = ["load_model", "models", "regularizers", *models.__all__, *regularizers.__all__]
