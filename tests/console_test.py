"""Tests for fnas_keras.console: one-line user errors, quiet start-up."""

import os

import keras_tuner
import pytest

from fnas_keras import console
from fnas_keras import data
from fnas_keras import fpga


@pytest.mark.parametrize("error", [
    console.UsageError("bad"),
    fpga.ResourceError("too big"),
    data.ImageNetFilesMissingError("no tars"),
    keras_tuner.errors.FatalValueError("spec too tight"),
])
def test_the_packages_user_errors(error):
    assert console.is_user_error(error)


@pytest.mark.parametrize("error", [
    ValueError("a bug deep in TensorFlow"),
    TypeError("a bug"),
    FileNotFoundError("some file"),
    KeyError("x"),
])
def test_other_errors_are_bugs(error):
    assert not console.is_user_error(error)


def test_report_prints_one_line(capsys, monkeypatch):
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    status = console.report("prog", console.UsageError("two\nlines  here"))
    assert status == 2
    assert capsys.readouterr().err == "prog: error: two lines here\n"


def test_report_with_verbose_prints_the_traceback_first(capsys, monkeypatch):
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    try:
        raise console.UsageError("bad value")
    except console.UsageError as error:
        console.report("prog", error)
    err = capsys.readouterr().err
    assert err.startswith("Traceback")
    assert err.endswith("prog: error: bad value\n")


@pytest.mark.parametrize("value, loud", [
    ("", False), ("0", False), ("no", False), ("1", True), ("yes", True),
])
def test_verbose_reads_the_environment(monkeypatch, value, loud):
    monkeypatch.setenv(console.VERBOSE_ENV, value)
    assert console.verbose() is loud


def test_captured_stderr_is_replayed_only_on_error(capfd):
    with console._stderr_captured():
        os.write(2, b"start-up noise\n")
    assert capfd.readouterr().err == ""
    with pytest.raises(RuntimeError):
        with console._stderr_captured():
            os.write(2, b"why it failed\n")
            raise RuntimeError("import failed")
    assert "why it failed" in capfd.readouterr().err
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
