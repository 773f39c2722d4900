"""Tests for fnas_keras.fpga.report: LatencyReport and LayerReport."""

import dataclasses
import json
import pickle

import pytest

from fnas_keras import fpga

LAYERS = [
    {"class_name": "InputLayer", "config": {}, "name": "image",
     "input_shape": (None, 16, 16, 3), "output_shape": (None, 16, 16, 3)},
    {"class_name": "Conv2D", "name": "conv",
     "config": {"filters": 8, "kernel_size": 3, "padding": "same"},
     "input_shape": (None, 16, 16, 3), "output_shape": (None, 16, 16, 8)},
    {"class_name": "ReLU", "config": {}, "input_shape": (None, 16, 16, 8),
     "output_shape": (None, 16, 16, 8)},
    {"class_name": "SeparableConv2D", "name": "sep",
     "config": {"filters": 16, "kernel_size": 3, "padding": "same"},
     "input_shape": (None, 16, 16, 8), "output_shape": (None, 16, 16, 16)},
    {"class_name": "MaxPooling2D", "name": "pool", "config": {"pool_size": 2},
     "input_shape": (None, 16, 16, 16), "output_shape": (None, 8, 8, 16)},
]


@pytest.fixture(scope="module")
def report():
    return fpga.analyze(LAYERS, "zedboard")


def test_report_has_one_row_per_engine_or_free_layer(report):
    names = [r.name for r in report.layers]
    assert names == ["image", "conv", "relu_2", "sep/depthwise",
                     "sep/pointwise", "pool"]
    relu = report.layers[2]
    assert (relu.cycles, relu.dsp, relu.bram18, relu.bound) == (0, 0, 0,
                                                                "none")
    assert report.layers[-1].bound == "memory"
    assert report.layers[-1].tiling is None
    assert report.layers[1].workload[1:8] == (8, 3, 16, 16, 3, 1, 1)


def test_report_figures_are_consistent(report):
    macs = (8 * 3 * 256 * 9) + (8 * 256 * 9) + (16 * 8 * 256)
    assert report.macs == macs
    seconds = report.latency_cycles / 100e6
    assert report.latency_ms == pytest.approx(seconds * 1e3)
    assert report.gops == pytest.approx(2 * macs / seconds / 1e9)
    assert report.mapping == "pipelined" and report.bits == 16
    assert report.device is fpga.device("xc7z020")


def test_to_dict_is_json_ready(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["latency_cycles"] == report.latency_cycles
    assert data["device"]["name"] == "xc7z020"
    assert "reference code" in data["device"]["assumptions"]
    conv = data["layers"][1]
    assert conv["workload"] == {"M": 8, "N": 3, "R": 16, "C": 16, "K": 3,
                                "S": 1, "groups": 1}
    assert set(conv["tiling"]) == {"Tm", "Tn", "Tr", "Tc"}
    assert conv["bound"] in ("compute", "memory")


def test_str_is_a_readable_table(report):
    text = str(report)
    assert "xc7z020 (PYNQ-Z1 / ZedBoard)" in text
    assert "1.2 GB/s" in text and "100 MHz" in text
    assert "Tm,Tn,Tr,Tc" in text
    for name in ("conv", "sep/depthwise", "sep/pointwise", "pool"):
        assert name in text
    assert all(len(line) <= 150 for line in text.splitlines())
    assert "BRAM18" in text and "LUTRAM" in text and "URAM" in text
    assert "512 x 36" in text and "resident" in text


def test_reports_are_frozen(report):
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.latency_ms = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.layers[0].cycles = 1


def test_plot_writes_a_png(report, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "layers.png"
    report.plot(str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_lazy_layer_rows_match_and_pickle():
    # The rows are built on first access; a pickle carries the builder.
    first = fpga.analyze(LAYERS, "xc7z020")
    again = pickle.loads(pickle.dumps(fpga.analyze(LAYERS, "xc7z020")))
    assert isinstance(first.layers, tuple)
    assert first.layers == again.layers
    assert first == again
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.layers = ()
