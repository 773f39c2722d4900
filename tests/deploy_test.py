"""Tests of fnas_keras.deploy: fixed-point types, C simulation, HLS export."""

import csv
import os
import subprocess
import sys

import hls4ml
import keras
import numpy as np
import pytest

from fnas_keras import data
from fnas_keras import deploy
from fnas_keras import fpga
from fnas_keras import keras_reader
from fnas_keras import precision


def _dense_model(weight_peak=3.0, bias_peak=0.2, activation="relu"):
    """Dense(4 -> 3) with hand-set weights: |w| <= weight_peak."""
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, activation=activation, name="fc"),
        keras.layers.Dense(2, activation="softmax", name="out"),
    ])
    kernel = np.full((4, 3), 0.5, np.float32)
    kernel[0, 0] = -weight_peak
    bias = np.array([bias_peak, -0.1, 0.0], np.float32)
    model.get_layer("fc").set_weights([kernel, bias])
    return model


def _fields(type_name):
    width, integer = type_name.split("<")[1].rstrip(">").split(",")[:2]
    return int(width), int(integer)


def test_weight_and_bias_types_from_their_ranges():
    model = _dense_model(weight_peak=3.0, bias_peak=0.2)
    config = deploy.precision_config(model, 16, np.ones((8, 4), np.float32))
    fc = config["LayerName"]["fc"]["Precision"]
    # |w| <= 3 needs 2 magnitude bits and a sign: ap_fixed<16,3>.
    assert fc["weight"].startswith("fixed<16,3,")
    # |b| <= 0.2 < 2^-2: ap_fixed<16,-1> (range +-0.25, 17 fraction bits).
    assert fc["bias"].startswith("fixed<16,-1,")


def test_results_from_calibration_unsigned_after_relu():
    model = _dense_model()
    x = np.random.default_rng(0).uniform(0, 1, (64, 4)).astype(np.float32)
    config = deploy.precision_config(model, 8, x)
    layers = config["LayerName"]
    inputs = [n for n in layers if n.startswith("input")]
    assert layers[inputs[0]]["Precision"]["result"] == "ufixed<8,0,RND,SAT>"
    assert layers["fc_relu"]["Precision"]["result"].startswith("ufixed<8,")
    # The dense's own result is before its ReLU, so it can be negative.
    assert layers["fc"]["Precision"]["result"].startswith("fixed<8,")
    peak = float(np.max(model.get_layer("fc")(x)))
    _, integer = _fields(layers["fc_relu"]["Precision"]["result"])
    assert 2.0 ** integer >= peak > 2.0 ** (integer - 1)


@pytest.mark.parametrize("bits", [8, 16])
def test_accumulator_holds_the_worst_case_sum_exactly(bits):
    model = _dense_model(weight_peak=7.5, bias_peak=1.9)
    x = np.full((4, 4), 3.0, np.float32)  # input ufixed<bits,2>
    fc = deploy.precision_config(model, bits, x)["LayerName"]["fc"]
    p = fc["Precision"]
    w_width, w_int = _fields(p["weight"])
    acc_width, acc_int = _fields(p["accum"])
    x_int = 2
    worst = 4 * 2.0 ** (w_int - 1) * 2.0 ** x_int + 2.0 ** (
        _fields(p["bias"])[1] - 1)
    assert 2.0 ** (acc_int - 1) >= worst
    assert acc_width - acc_int == (w_width - w_int) + (bits - x_int)


def test_bad_bits_and_missing_calibration_are_named():
    model = _dense_model()
    with pytest.raises(ValueError, match="bits must be an integer.*got 3"):
        deploy.precision_config(model, 3, np.ones((2, 4)))
    with pytest.raises(ValueError, match="calibration data is needed"):
        deploy.precision_config(model, 16, None)


def test_unconvertible_layer_is_named():
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(3),
        keras.layers.UnitNormalization(name="unit_norm"),
        keras.layers.Dense(2)])
    with pytest.raises(deploy.UnsupportedLayerError,
                       match="'unit_norm' \\(UnitNormalization\\)"):
        deploy.precision_config(model, 16, np.ones((2, 4), np.float32))


def _small_cnn():
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            name="conv"),
        keras.layers.MaxPooling2D(4),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                            name="conv2"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_reuse_factor_uses_no_more_multipliers_than_the_engine():
    model = _small_cnn()
    factors = deploy.reuse_factors(model, "xc7z020", 16)
    report = keras_reader.analyze(model, "xc7z020", bits=16)
    tilings = {r.name: r.tiling for r in report.layers if r.tiling}
    backend = hls4ml.backends.get_backend("Vitis")
    assert set(factors) == {"conv", "conv2", "head"}
    for name, f in factors.items():
        lanes = tilings[name].Tm * tilings[name].Tn
        rf = f["reuse_factor"]
        assert f["n_in"] * f["n_out"] / rf <= lanes
        assert rf in backend.get_valid_reuse_factors(f["n_in"], f["n_out"])


def test_shared_mapping_and_missing_part_are_errors():
    model = _small_cnn()
    with pytest.raises(ValueError, match="mapping 'shared'.*'pipelined'"):
        deploy.reuse_factors(model, "xc7z020", 16, mapping="shared")
    custom = fpga.FpgaDevice("mine", dsp=100, bram18=200, clock_mhz=100,
                             dram_gbps=2.0)
    x = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="'mine' has no part number.*part="):
        deploy.fixed_point_predict(model, x, custom, 16)


def test_no_gpp_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    model = _small_cnn()
    x = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(deploy.CompilerNotFoundError, match="g\\+\\+"):
        deploy.fixed_point_predict(model, x, "xc7z020", 16)


def test_export_writes_the_timed_design(tmp_path):
    model = _small_cnn()
    x = np.random.default_rng(0).uniform(0, 1, (16, 28, 28, 1))
    out = str(tmp_path / "hls")
    path = deploy.export_hls(model, "pynq-z1", 8, out, calibration=x)
    assert path == out
    for name in ("README.md", "build_prj.tcl", "build_opt.tcl",
                 "project.tcl", "firmware/myproject.cpp",
                 "firmware/parameters.h"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert "xc7z020clg400-1" in open(os.path.join(out, "project.tcl")).read()
    params = open(os.path.join(out, "firmware/parameters.h")).read()
    factors = deploy.reuse_factors(model, "xc7z020", 8)
    for f in factors.values():
        assert f"reuse_factor = {f['reuse_factor']};" in params
    readme = open(os.path.join(out, "README.md")).read()
    assert "vitis_hls -f build_prj.tcl" in readme
    assert "| conv |" in readme


@pytest.mark.slow
def test_16_bits_agree_with_float_and_the_compile_is_cached(monkeypatch):
    keras.utils.set_random_seed(0)
    x, y = data.load_arrays("digits", "train", limit=600)
    xv, _ = data.load_arrays("digits", "validation", limit=120)
    model = _small_cnn()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    fixed = deploy.fixed_point_predict(model, xv, "xc7z020", 16,
                                       calibration=x)
    floats = model.predict(xv, verbose=0)
    assert fixed.shape == floats.shape
    assert deploy.agreement(fixed, floats) >= 0.97
    assert np.max(np.abs(fixed - floats)) < 0.05

    def no_convert(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(deploy, "_convert", no_convert)
    again = deploy.fixed_point_predict(model, xv[:5], "xc7z020", 16,
                                       calibration=x)
    np.testing.assert_array_equal(again, fixed[:5])


def test_type_rule_saturates_at_most_one_step():
    for peak in (0.3, 1.0, 5.0, 100.0):
        name = precision._type((0.0, peak), 8)
        assert name.startswith("ufixed<8,")
        _, integer = _fields(name)
        assert 2.0 ** integer >= peak > 2.0 ** (integer - 1)


def test_fnas_checks_its_fixed_point_settings():
    import fnas_keras

    def build(hp):
        return _small_cnn()

    with pytest.raises(ValueError, match="needs fixed_point=True"):
        fnas_keras.FNAS(build, objective="val_accuracy_fixed",
                        device="xc7z020", overwrite=True)
    with pytest.raises(ValueError, match="needs bits 8 or 16.*got 32"):
        fnas_keras.FNAS(build, objective="val_accuracy", device="xc7z020",
                        bits=32, fixed_point=True, overwrite=True)
    with pytest.raises(ValueError, match="needs a device"):
        fnas_keras.FNAS(build, objective="val_accuracy", fixed_point=True,
                        overwrite=True)


@pytest.mark.slow
def test_search_measures_and_exports_a_real_mnist_child(tmp_path):
    """benchmarks/search.py --fixed_point --deploy on the MNIST preset."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, os.path.join(root, "benchmarks", "search.py"),
         "--max_trials=1", "--epochs=1", "--train_examples=256",
         "--space_samples=0", "--fixed_point", "--fixed_point_examples=8",
         "--deploy", "--deploy_examples=8", f"--directory={tmp_path}"],
        capture_output=True, text=True, timeout=1500, cwd=root)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "16-bit fixed    accuracy" in out and "8-bit fixed" in out
    assert "fixed-point C simulation:" in out
    project = tmp_path / "fnas_digits"
    with open(project / "results.csv") as f:
        trained = [r for r in csv.DictReader(f) if r["kind"] == "trained"]
    assert 0.0 <= float(trained[0]["val_accuracy_fixed"]) <= 1.0
    assert "fixed" in (project / "summary.txt").read_text()
    hls = project / "hls"
    assert (hls / "README.md").is_file()
    assert (hls / "firmware" / "myproject.cpp").is_file()
    assert "xc7z020clg400-1" in (hls / "project.tcl").read_text()


@pytest.mark.slow
def test_val_accuracy_fixed_can_be_the_objective(tmp_path, monkeypatch):
    import fnas_keras
    from fnas_keras import results

    calls = []

    def fake_evaluate(model, x, y, device, bits, calibration, **kwargs):
        calls.append((len(x), bits, len(calibration)))
        return {"float": 0.5, "fixed": 0.25 * len(calls), "agreement": 0.9,
                "seconds": 1.0}

    monkeypatch.setattr(deploy, "evaluate", fake_evaluate)

    def build(hp):
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(hp.Choice("filters", [2, 4]), 3,
                                activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    x, y = data.load_arrays("digits", "train", limit=128)
    xv, yv = data.load_arrays("digits", "validation", limit=40)
    tuner = fnas_keras.FNAS(
        build, objective="val_accuracy_fixed", max_trials=2,
        device="xc7z020", bits=8, fixed_point=True, fixed_point_examples=16,
        directory=str(tmp_path), project_name="p", overwrite=True, seed=0)
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert calls == [(16, 8, 128), (16, 8, 128)]
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == 0.5
    table = results.rows(tuner)
    assert sorted(r["val_accuracy_fixed"] for r in table) == [0.25, 0.5]
    assert "fixed" in results.summary(tuner, table)


def test_batchnorm_scale_and_bias_types_from_the_folded_weights():
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(3, name="fc"),
        keras.layers.BatchNormalization(name="bn", epsilon=0.0)])
    bn = model.get_layer("bn")
    # gamma, beta, moving mean, moving variance: scale = 6, shift = -11.
    bn.set_weights([np.full(3, 3.0), np.full(3, 1.0), np.full(3, 2.0),
                    np.full(3, 0.25)])
    config = deploy.precision_config(model, 16, np.ones((4, 4)))
    p = config["LayerName"]["bn"]["Precision"]
    assert p["scale"].startswith("ufixed<16,3,")
    assert p["bias"].startswith("fixed<16,5,")
