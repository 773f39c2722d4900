"""Tests for fnas_keras.constraint: LatencyConstraint."""

import math

import keras
import pytest

from fnas_keras import constraint
from fnas_keras import fpga
from fnas_keras import keras_reader


def tiny(name="tiny", filters=4):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                            name=f"{name}_conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs, name=name)


def test_unbuilt_model_is_built_on_input_shape():
    gate = constraint.LatencyConstraint("xc7z020", 5.0,
                                        input_shape=(8, 8, 1))
    model = keras.Sequential([keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    ok, report = gate.check(model)
    assert ok is (report.latency_ms <= 5.0)


def test_unbuilt_model_without_input_shape_is_an_error():
    gate = constraint.LatencyConstraint("xc7z020", 5.0)
    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built.*input_shape"):
        gate.check(model)


@pytest.mark.parametrize("spec", [0, -1.0, math.nan, math.inf, "3", True])
def test_bad_spec_is_named(spec):
    with pytest.raises(ValueError, match=f"latency_spec_ms.*{spec!r}"):
        constraint.LatencyConstraint("xc7z020", spec)


def test_settings_are_validated_at_construction():
    with pytest.raises(ValueError, match="unknown device 'zc7020'"):
        constraint.LatencyConstraint("zc7020", 1.0)
    with pytest.raises(ValueError, match="got 12"):
        constraint.LatencyConstraint("xc7z020", 1.0, bits=12)
    with pytest.raises(ValueError, match="unknown mapping"):
        constraint.LatencyConstraint("xc7z020", 1.0, mapping="pipeline")


def test_verdict_follows_the_spec():
    latency = keras_reader.analyze(tiny(), "xc7z020").latency_ms
    assert constraint.LatencyConstraint(
        "xc7z020", latency * 1.01).check(tiny())[0]
    ok, report = constraint.LatencyConstraint(
        "xc7z020", latency * 0.99).check(tiny())
    assert not ok and report.latency_ms == pytest.approx(latency)


def test_cache_is_per_architecture_not_per_name():
    gate = constraint.LatencyConstraint("xc7z020", 10.0)
    first = gate.check(tiny("a"))
    second = gate.check(tiny("b"))
    assert first is second
    gate.check(tiny("c", filters=8))
    assert gate.cache_info() == {"hits": 1, "misses": 2, "size": 2}


def test_check_layers_works_without_keras_models():
    gate = constraint.LatencyConstraint("zcu102", 1.0, mapping="shared")
    dicts = keras_reader.layer_dicts(tiny())
    ok, report = gate.check_layers(dicts)
    assert report.mapping == "shared" and isinstance(ok, bool)


def test_resource_error_propagates():
    device = fpga.FpgaDevice("tiny", dsp=1, bram18=4, clock_mhz=100,
                             dram_gbps=1.0)
    gate = constraint.LatencyConstraint(device, 1.0)
    with pytest.raises(fpga.ResourceError):
        gate.check(tiny())


APPS = ("MobileNetV2", "ResNet50", "VGG16", "EfficientNetB0", "DenseNet121")


@pytest.fixture(scope="module", params=APPS)
def app_layers(request):
    build = getattr(keras.applications, request.param)
    model = build(weights=None, input_shape=(224, 224, 3))
    return request.param, keras_reader.layer_dicts(model)


@pytest.mark.slow
@pytest.mark.parametrize("mapping", ["pipelined", "shared"])
def test_keras_applications_on_zcu102(app_layers, mapping):
    name, layers = app_layers
    device = fpga.device("zcu102")
    report = fpga.analyze(layers, device, bits=16, mapping=mapping)
    peak = 2 * device.dsp / fpga.dsp_per_mac(16) * device.clock_hz / 1e9
    assert 0 < report.gops < peak, name
    assert math.isfinite(report.latency_ms) and report.latency_ms > 0
    assert 0 < report.dsp_used <= device.dsp
    assert 0 < report.bram18_used <= device.bram18
    cycles = [r.cycles for r in report.layers]
    assert max(cycles) <= report.latency_cycles <= sum(cycles) + 1
    macs = {"MobileNetV2": 0.3e9, "ResNet50": 3.9e9, "VGG16": 15.5e9,
            "EfficientNetB0": 0.39e9, "DenseNet121": 2.9e9}[name]
    assert report.macs == pytest.approx(macs, rel=0.15)


def test_no_spec_only_measures():
    gate = constraint.LatencyConstraint("xc7z020", None)
    layers = [{"class_name": "Dense", "config": {"units": 4},
               "input_shape": (None, 8), "output_shape": (None, 4)}]
    ok, report = gate.check_layers(layers)
    assert ok and report.latency_ms > 0


def test_auto_mapping_takes_the_faster_and_names_it():
    layers = keras_reader.layer_dicts(tiny())
    reports = {m: constraint.LatencyConstraint("xc7z020", 10.0, mapping=m)
               .check_layers(layers)[1] for m in ("shared", "pipelined")}
    _, auto = constraint.LatencyConstraint(
        "xc7z020", 10.0, mapping="auto").check_layers(layers)
    assert auto.requested == "auto"
    assert auto.latency_ms == min(r.latency_ms for r in reports.values())
    assert auto.mapping == min(reports, key=lambda m: (
        reports[m].latency_ms, m != "shared"))
    with pytest.raises(ValueError, match="unknown mapping 'fastest'"):
        constraint.LatencyConstraint("xc7z020", 1.0, mapping="fastest")


def test_a_callers_key_caches_without_digesting_the_dicts():
    gate = constraint.LatencyConstraint("xc7z020", 10.0)
    dicts = keras_reader.layer_dicts(tiny())
    first = gate.check_layers(dicts, key=("child", 1))
    assert gate.check_layers([], key=("child", 1)) is first
    assert gate.check_layers(dicts) == first
    assert gate.cache_info() == {"hits": 1, "misses": 2, "size": 2}
