"""pipeline/precision.py: the precision policy, float32 penalties, bf16 training and exports."""

import json

import keras
import numpy as np
import pytest
from keras import ops

import models
from pipeline import manifest
from pipeline import precision
from pipeline import training
from regularizers import Contractive, KLSparsity

AMX = ("Intel(R) Xeon(R) Processor", ("amx_bf16", "avx512_bf16"))
EPYC = ("AMD EPYC 7B13", ())


def test_cpu_features_come_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n"
                       "flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\n"
                       "processor\t: 1\nmodel name\t: Some CPU\nflags\t\t: fpu\n")
    assert precision.cpu_features(cpuinfo) == ("Some CPU", ("avx512_bf16",))
    assert precision.cpu_features(tmp_path / "absent")[1] == ()


@pytest.mark.parametrize("requested,name,features,policy", [
    ("auto", "dict-kl", AMX, "mixed_bfloat16"),
    ("auto", "dict-l1", AMX, "mixed_bfloat16"),
    ("auto", "dict-kl", EPYC, "float32"),
    ("auto", "dict-topk", AMX, "float32"),
    ("auto", "dict-wta", AMX, "float32"),
    ("auto", "dense-l1", AMX, "float32"),
    ("float32", "dict-kl", AMX, "float32"),
    ("mixed_bfloat16", "dense-l1", EPYC, "mixed_bfloat16"),
])
def test_auto_picks_bf16_only_where_it_pays_on_bf16_cpus(requested, name, features, policy):
    resolved = precision.resolve_config(manifest.config_of(name, precision=requested), features)
    assert resolved.policy == policy
    record = resolved.record()
    assert record["requested"] == requested and record["cpu"] == features[0]
    assert record["bf16_units"] == list(features[1]) and record["reason"]


def test_auto_keeps_a_jumprelu_dictionary_in_float32_and_says_why():
    resolved = precision.resolve("auto", "dictionary", "jumprelu", features=AMX)
    assert resolved.policy == "float32" and "bandwidth" in resolved.reason
    assert precision.resolve("auto", "dictionary", "relu", features=AMX).policy == "mixed_bfloat16"


def test_a_bad_precision_is_named():
    with pytest.raises(ValueError, match=r"Expected `precision` in \['auto', 'float32', "
                                         r"'mixed_bfloat16'\]. Received: precision='fp16'"):
        precision.resolve("fp16", "dense", features=AMX)
    with pytest.raises(ValueError, match="Received: precision='bf16'"):
        manifest.config_of("dict-topk", precision="bf16")


def test_auto_turns_xla_off_with_bf16_and_an_explicit_choice_is_kept():
    config = manifest.config_of("dict-topk", jit_compile=True)
    adapted, notes = precision.adapt_config(config, precision.resolve("auto", "dictionary",
                                                                      features=AMX))
    assert adapted.jit_compile is False and notes
    explicit = precision.resolve("mixed_bfloat16", "dictionary", features=AMX)
    assert precision.adapt_config(config, explicit) == (config, [])
    fp32 = precision.resolve("auto", "dictionary", features=EPYC)
    assert precision.adapt_config(config, fp32) == (config, [])


def test_the_policy_scope_restores_the_global_policy():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with precision.policy_scope("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError
    assert keras.config.dtype_policy().name == before


def test_kl_of_a_small_rho_hat_is_computed_in_float32():
    # A batch of 256 codes on 1,024 sigmoid units whose means sit near rho = 0.05,
    # as in a trained KL model.
    rng = np.random.default_rng(0)
    means = rng.uniform(0.045, 0.055, 1024)
    h = np.clip(rng.normal(means, 0.2 * means, (256, 1024)), 0, 1)
    penalty = KLSparsity(rho=0.05, beta=1.0)
    reference = float(penalty.penalty(ops.convert_to_tensor(h, "float32")))
    bf16 = ops.convert_to_tensor(h, "bfloat16")
    naive = float(ops.cast(penalty.penalty(bf16), "float32"))  # the formula run in bf16
    ours = float(penalty(bf16)) / len(h)  # __call__ multiplies by the batch size
    # In bf16 the sum over 1,024 units of small differences of logarithms is
    # several times the true value (measured: +407%) ...
    assert abs(naive - reference) > reference
    # ... in float32 only the inputs' own bf16 rounding remains.
    assert ours == pytest.approx(reference, rel=0.01)
    assert penalty(bf16).dtype == "float32"


def test_the_contractive_penalty_is_computed_in_float32():
    h = ops.convert_to_tensor(np.random.default_rng(1).random((8, 5)), "bfloat16")
    kernel = ops.convert_to_tensor(np.random.default_rng(2).random((3, 5)), "float32")
    assert Contractive(0.1).layer_penalty(h, kernel, "sigmoid").dtype == "float32"


def tiny_dictionary(policy):
    config = manifest.config_of("dict-topk", code_size=64, k=4, initial_k=8,
                                schedule_examples=64, aux_k=8, dead_after_examples=8,
                                batch_size=16, precision=policy)
    return config, training.build_model(config, input_shape=(8, 8, 1))


def test_a_mixed_precision_dictionary_computes_in_bf16_and_answers_in_float32():
    config, model = tiny_dictionary("mixed_bfloat16")
    encoder, decoder = model.get_layer(models.ENCODER), model.get_layer(models.DECODER)
    assert encoder.get_layer("code").compute_dtype == "bfloat16"
    assert decoder.get_layer("dictionary").compute_dtype == "bfloat16"
    assert decoder.get_layer("decoder_bias").compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    x = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
    assert model(x).dtype == "float32"
    history = model.fit(x, x, batch_size=16, epochs=2, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    twin = training.float32_copy(model, config)
    assert twin is not model
    assert {layer.compute_dtype for layer in training._all_layers(twin)} == {"float32"}
    for ours, theirs in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    # The same model up to bf16 rounding (which can flip a TopK choice here and there).
    assert float(np.mean(np.abs(np.asarray(twin(x)) - np.asarray(model(x))))) < 0.02
    _, fp32 = tiny_dictionary("float32")
    assert training.float32_copy(fp32, config) is fp32


def test_a_model_trained_in_bf16_exports_float32_and_says_so(tmp_path, tiny_mnist, fresh_python):
    config = manifest.config_of("dict-topk", code_size=64, k=4, initial_k=8, schedule_examples=64,
                                aux_k=8, dead_after_examples=8, batch_size=16, epochs=1,
                                precision="mixed_bfloat16")
    summary = training.train(config, data_path=tiny_mnist, name="tiny", out=tmp_path / "out",
                             logdir=tmp_path / "logs")
    assert summary["precision"]["policy"] == "mixed_bfloat16"
    assert set(summary["precision"]) == {"requested", "policy", "reason", "cpu", "bf16_units"}
    record = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert record["precision"] == summary["precision"]
    code = (
        "import sys, numpy as np, keras, tensorflow as tf; from pipeline import export; "
        "m = export.load_model(sys.argv[1]); "
        "print(sorted({l.dtype_policy.name for s in m.layers if isinstance(s, keras.Model) "
        "for l in s.layers})); "
        "served = tf.saved_model.load(sys.argv[2]); out = served.serve(tf.zeros((2, 28, 28, 1))); "
        "print(out.dtype.name, bool(np.isfinite(out.numpy()).all()))")
    result = fresh_python(code, tmp_path / "out" / "tiny.keras", tmp_path / "out" / "tiny")
    assert result.stdout.strip().splitlines()[-2:] == ["['float32']", "float32 True"]
