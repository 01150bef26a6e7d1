"""The command lines' flag table, readable without importing TensorFlow.

train.py builds its flags from the registries (pipeline/config.py
`options()`), which import Keras and so TensorFlow: 3 s and a screen of C++
log lines before `--help` or an argument error. `table()` returns the same
table from flags.json, written by `python -m pipeline.flags` and keyed by
the sha256 of the sources it is derived from; when they have changed, it
builds the table from the registries instead (slower, never wrong).
tests/test_flags.py fails while flags.json is stale.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE_PATH = Path(__file__).with_name("flags.json")
# What `build` returns: a flags.json with other keys is not used.
TABLE_KEYS = frozenset({
    "sources_sha256", "models", "family_summaries", "regs", "default_model", "default_reg",
    "presets", "family_defaults", "options", "strategies", "default_cluster_timeout",
    "data_env_var", "default_out", "default_log_root", "default_models_dir", "active_threshold",
    "default_reports_dir", "browser_top_k", "code_activations",
})
# The modules `build()` reads: the registries and the pipeline modules whose
# names and defaults reach the table.
SOURCES = ("models/*.py", "regularizers/*.py",
           *(f"pipeline/{module}.py" for module in (
               "browser", "config", "data", "distribution", "evaluation", "flags", "manifest", "metrics",
               "training")))
# TensorFlow's C++ log level (3: errors too, such as "failed call to cuInit"
# on a machine without a GPU), unless the user set one.
TF_LOG_LEVEL = "3"
TF_LOG_VAR = "TF_CPP_MIN_LOG_LEVEL"
KINDS = {"bool": bool, "int": int, "float": float, "str": str, "tuple": tuple}


# The Keras backend of the pipeline (docs/backends.md).
PIPELINE_BACKEND = "tensorflow"


def quiet_tensorflow():
    """Sets TensorFlow's C++ log level before it is imported, unless the user set one."""
    os.environ.setdefault(TF_LOG_VAR, TF_LOG_LEVEL)


def require_tensorflow_backend(program):
    """Raises a one-line ValueError unless Keras runs on TensorFlow: the pipeline
    behind the command lines (tf.data, SavedModel export, tf.distribute,
    TensorBoard) is TensorFlow's; models/ and regularizers/ run on any backend."""
    import keras

    if keras.backend.backend() != PIPELINE_BACKEND:
        raise ValueError(
            f"Expected the TensorFlow Keras backend: {program} runs the TensorFlow pipeline "
            f"(tf.data, SavedModel, tf.distribute, TensorBoard). Received: "
            f"KERAS_BACKEND={keras.backend.backend()} (models/ and regularizers/ run on any "
            f"backend: docs/backends.md)")


def add_data_arguments(parser, table):
    """The data flags train.py and evaluate.py share: --data and the .npy files beside it."""
    parser.add_argument(
        "--data", default=None,
        help=f"an .npz in the Keras layout (x_train, x_test, optional y_train, y_test) or an "
             f".npy of training examples, images (N, H, W[, C]) or vectors (N, D); "
             f"docs/own_data.md (default: ${table['data_env_var']}, else the MNIST download)")
    parser.add_argument("--labels", default=None,
                        help="with an .npy --data: an .npy of its integer labels, optional")
    parser.add_argument("--test-data", default=None,
                        help="with an .npy --data: an .npy of test examples, optional")
    parser.add_argument("--test-labels", default=None,
                        help="with --test-data: an .npy of their labels, optional")


def sources_sha256():
    """sha256 over the sources the table is derived from."""
    digest = hashlib.sha256()
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def as_typed(value):
    """A flag value as typed on the command line: (16, 32) and [16, 32] as 16,32,
    1/12 as 0.0833333."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _default_text(option, families):
    """ "default: ..." of an option: each owner's default, family overrides applied."""
    shown = []
    for owner, default in option.defaults.items():
        if owner[0] == "training":
            values = {as_typed(default): []}
            for family, settings in families.items():
                if option.name in settings and settings[option.name] != default:
                    values.setdefault(as_typed(settings[option.name]), []).append(family)
            shown += [value if not who else f"{'/'.join(who)} {value}"
                      for value, who in values.items()]
            continue
        if owner[0] == "model":
            default = families[owner[1]].get(option.name, default)
            if default is None and ("training",) in option.defaults:
                continue  # the run's value reaches the builder (the seed)
        shown.append(f"{owner[-1]} {as_typed(default)}")
    return "; ".join(dict.fromkeys(shown))


def build():
    """The table, from the registries (imports Keras and TensorFlow)."""
    import models
    import regularizers
    from pipeline import browser
    from pipeline import config as config_lib
    from pipeline import data
    from pipeline import distribution
    from pipeline import evaluation
    from pipeline import manifest
    from pipeline import metrics
    from pipeline import training

    families = {name: dict(family.defaults) for name, family in models.FAMILIES.items()}
    options = []
    for name, option in config_lib.options().items():
        help_text = option.help.rstrip(".").replace(".;", ";")
        if name == "code_activation":  # the registry's names, which the CLI takes
            help_text = ("a Keras activation (relu, sigmoid, linear, ...) or a code activation: "
                         f"{', '.join(models.CODE_ACTIVATIONS)} (their options are listed "
                         "under \"code activation\")")
        options.append({"name": name, "kind": option.kind.__name__, "group": option.owners[0][0],
                        "help": f"{help_text} (default: {_default_text(option, families)})"})
    return {
        "sources_sha256": sources_sha256(),
        "models": list(models.FAMILIES),
        "family_summaries": {name: f.summary for name, f in models.FAMILIES.items()},
        "regs": regularizers.penalty_names(),
        "default_model": config_lib.TrainConfig.model,
        "default_reg": config_lib.TrainConfig.reg,
        "presets": {name: {"model": e.model, "reg": e.reg,
                           "options": json.loads(json.dumps(e.options))}
                    for name, e in manifest.ZOO.items()},
        "family_defaults": json.loads(json.dumps(families)),
        "options": options,
        "strategies": list(distribution.STRATEGIES),
        "default_cluster_timeout": distribution.DEFAULT_CLUSTER_TIMEOUT,
        "data_env_var": data.DATA_ENV_VAR,
        "default_out": training.DEFAULT_OUT,
        "default_log_root": training.DEFAULT_LOG_ROOT,
        "default_models_dir": evaluation.DEFAULT_MODELS_DIR,
        "default_reports_dir": evaluation.DEFAULT_REPORTS_DIR,
        "active_threshold": metrics.ACTIVE_THRESHOLD,
        "browser_top_k": browser.TOP_K,
        "code_activations": list(models.CODE_ACTIVATIONS),
    }


def table():
    """The flag table: flags.json when it matches the sources, else `build()`."""
    try:
        cached = json.loads(TABLE_PATH.read_text())
        if isinstance(cached, dict) and cached.get("sources_sha256") == sources_sha256() \
                and set(cached) == TABLE_KEYS:
            return cached
    except (OSError, ValueError, RecursionError):
        pass
    return build()


def main():
    quiet_tensorflow()
    TABLE_PATH.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {TABLE_PATH.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
