"""Tests for fnas_keras.cli: the fnas-latency command."""

import json

import keras
import pytest

from fnas_keras import cli


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = keras.Sequential([keras.Input((12, 12, 1)),
                              keras.layers.Conv2D(4, 3, name="c1"),
                              keras.layers.MaxPooling2D(),
                              keras.layers.Flatten(),
                              keras.layers.Dense(3, name="fc")])
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path)


def test_prints_the_per_layer_table(model_path, capsys):
    assert cli.main([model_path, "--device", "zcu102", "--bits", "16"]) == 0
    out = capsys.readouterr().out
    assert "xczu9eg (ZCU102)" in out and "pipelined mapping" in out
    assert "c1" in out and "fc" in out and "MaxPooling2D" in out


def test_json_output(model_path, capsys):
    assert cli.main([model_path, "--mapping", "shared", "--json",
                     "--bits", "8"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mapping"] == "shared" and data["bits"] == 8
    assert data["device"]["name"] == "xc7z020"
    assert [x["name"] for x in data["layers"]][-1] == "fc"


def test_unroll_option(model_path, capsys):
    assert cli.main([model_path, "--mapping", "shared", "--unroll", "2",
                     "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dsp_used"] == 2


def test_list_devices(capsys):
    assert cli.main(["--list-devices"]) == 0
    out = capsys.readouterr().out
    assert "xczu9eg" in out and "zcu102" in out and "pynq-z1" in out


def test_unknown_device_is_an_error(model_path, capsys):
    assert cli.main([model_path, "--device", "zc7020"]) == 2
    assert "unknown device 'zc7020'" in capsys.readouterr().err


def test_missing_file_is_an_error(tmp_path, capsys):
    assert cli.main([str(tmp_path / "none.keras")]) == 2
    assert "error" in capsys.readouterr().err


def test_bad_bits_and_missing_model_are_usage_errors(model_path):
    with pytest.raises(SystemExit):
        cli.main([model_path, "--bits", "12"])
    with pytest.raises(SystemExit):
        cli.main([])
