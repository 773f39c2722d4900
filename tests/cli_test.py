"""Tests for fnas_keras.cli: the fnas-latency command."""

import json
import os
import subprocess
import sys

import keras
import pytest

from fnas_keras import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    assert out.startswith(f"read {model_path} (Keras v3 archive)\n")
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
    assert "LUTRAM" in out and "URAM" in out
    vu9p = next(line for line in out.splitlines() if line.startswith("xcvu9p"))
    assert vu9p.split()[1:5] == ["6840", "4320", "591840", "960"]


def test_unknown_device_is_an_error(model_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([model_path, "--device", "zc7020"])
    assert exit_info.value.code == 2
    assert "unknown device 'zc7020'" in capsys.readouterr().err


def test_missing_file_is_an_error(tmp_path, capsys):
    path = str(tmp_path / "none.keras")
    assert cli.main([path]) == 2
    assert capsys.readouterr().err == (
        f"fnas-latency: error: no model file {path!r}\n")


def test_bad_bits_and_missing_model_are_usage_errors(model_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([model_path, "--bits", "12"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --bits: unsupported bits '12'; allowed: 8, 16, 32" in err
    with pytest.raises(SystemExit):
        cli.main([])


def test_reads_h5_files_and_says_so(tmp_path, capsys):
    model = keras.Sequential([keras.Input((8, 8, 2)),
                              keras.layers.Conv2D(3, 3, name="conv"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, name="fc")])
    path = str(tmp_path / "tiny.h5")
    model.save(path)
    assert cli.main([path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == {"path": path, "format": "legacy HDF5"}
    assert [x["name"] for x in data["layers"]][-1] == "fc"
    assert cli.main([path]) == 0
    assert capsys.readouterr().out.startswith(f"read {path} (legacy HDF5)")


def test_compare_prints_one_row_per_setting(model_path, capsys):
    assert cli.main([model_path, "--compare", "--device", "xc7z020,zcu102",
                     "--bits", "8,16", "--mapping", "shared,pipelined"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"read {model_path} (Keras v3 archive)"
    assert lines[1].split() == ["device", "bits", "mapping", "latency_ms",
                                "fps", "DSP", "BRAM18"]
    rows = [line.split() for line in lines[3:]]
    assert [r[:3] for r in rows] == [
        [part, bits, mapping] for part in ("xc7z020", "xczu9eg")
        for bits in ("8", "16") for mapping in ("shared", "pipelined")]


def test_compare_rows_match_single_reports(model_path, capsys):
    assert cli.main([model_path, "--compare", "--json", "--device",
                     "pynq-z1,zcu102", "--bits", "16"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["device"] for r in rows] == ["xc7z020", "xczu9eg"]
    assert cli.main([model_path, "--json", "--device", "zcu102"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert rows[1]["latency_ms"] == single["latency_ms"]
    assert rows[1]["dsp_used"] == single["dsp_used"]
    assert rows[1]["dsp"] == single["device"]["dsp"]


def test_compare_marks_a_setting_that_does_not_fit():
    # 60 pipelined engines at 32 bits need more DSP than xc7a50t has.
    conv = {"class_name": "Conv2D",
            "config": {"filters": 4, "kernel_size": 3, "padding": "same"},
            "input_shape": (None, 8, 8, 4), "output_shape": (None, 8, 8, 4)}
    rows = cli.compare_rows([conv] * 60, "deep", ["xc7a50t", "xcvu9p"],
                            [32], ["pipelined"])
    assert [r["fits"] for r in rows] == [False, True]
    assert "the device has 120" in rows[0]["reason"]
    table = cli.compare_table(rows).splitlines()
    assert "does not fit: 60 engines need" in table[2]
    assert table[3].split()[:3] == ["xcvu9p", "32", "pipelined"]


@pytest.mark.parametrize("flags, message", [
    (["--device", "xc7z020,zcu102"],
     "--device takes one value without --compare, got xc7z020,zcu102"),
    (["--unroll", "2", "1"],
     "--unroll applies to --mapping shared only, got pipelined"),
    (["--compare", "--mapping", "shared,fast"],
     "argument --mapping: unknown mapping 'fast'; allowed: "),
])
def test_bad_combinations_are_one_line(model_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([model_path, *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fnas-latency: error: ") and message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("name, content, message", [
    ("model.txt", b"x", "expected a .keras or .h5 model file"),
    ("broken.keras", b"not a zip", "cannot read"),
    ("broken.h5", b"not hdf5", "as a legacy HDF5 file"),
])
def test_unreadable_model_files_are_one_line(tmp_path, capsys, name,
                                             content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert cli.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fnas-latency: error: ") and message in err
    assert err.count("\n") == 1


def test_a_directory_is_an_error(tmp_path, capsys):
    assert cli.main([str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def _run_cli(*args):
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("FNAS_VERBOSE", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-m", "fnas_keras.cli", *args],
                          capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)


def test_command_is_quiet_and_says_one_line(tmp_path):
    # A real process: TensorFlow loads (its start-up messages must not
    # show) before the file turns out unreadable.
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip")
    result = _run_cli(str(path), "--device", "zcu102")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"fnas-latency: error: cannot read "
                                    f"'{path}'")
    assert result.stderr.count("\n") == 1, result.stderr


def test_unknown_device_fails_before_loading_anything(model_path):
    result = _run_cli(model_path, "--device", "zc7020")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "fnas-latency: error: argument --device: unknown device 'zc7020'; "
        "known: xc7z020")
    assert result.stderr.count("\n") == 1
