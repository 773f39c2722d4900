"""Smoke tests for benchmarks/analyzer.py."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import analyzer  # noqa: E402


def test_mnist_space_is_the_papers():
    archs = list(analyzer.mnist_space())
    assert len(archs) == 6561 == 9 ** 4
    layers = analyzer.mnist_layers(archs[-1])
    assert [d["class_name"] for d in layers] == (
        ["Conv2D"] * 4 + ["GlobalAveragePooling2D", "Dense"])
    assert layers[0]["input_shape"] == (None, 28, 28, 1)
    assert layers[3]["output_shape"] == (None, 28, 28, 36)
    assert layers[-1]["output_shape"] == (None, 10)


def test_run_reports_the_figures():
    out = analyzer.run("xc7z020", 16, "pipelined", 1e9, limit=50)
    assert out["archs"] == 50 and out["meet_spec"] == 50
    assert out["archs_per_second"] > 0 and out["archs_per_second_warm"] > 0
    assert (out["latency_ms"] > 0).all()


@pytest.mark.slow
def test_main_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "analyzer.py"),
         "--limit=50", "--latency_spec_ms=20", "--mapping=auto"],
        capture_output=True, text=True, check=True, timeout=300)
    assert "archs_per_second:" in result.stdout
    assert "archs_per_second_warm:" in result.stdout
    assert "meet_spec (20 ms):" in result.stdout
    assert "archs: 50" in result.stdout
