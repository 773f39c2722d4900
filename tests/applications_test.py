"""Smoke test for benchmarks/applications.py (keras.applications nets).

Run in a subprocess: its absl flags share names with the other
benchmarks', and absl flags are process-wide.
"""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_main_prints_a_row_per_mapping_with_the_chosen_one():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "applications.py"),
         "--nets=MobileNetV2", "--size=32", "--bits=8",
         "--mappings=shared,auto,nonsense"],
        capture_output=True, text=True, check=True, timeout=600)
    lines = result.stdout.splitlines()
    assert "latency_ms" in lines[1] and "LUTRAM" in lines[1]
    shared, auto = (line.split() for line in lines[2:])
    assert shared[:4] == ["MobileNetV2", "8", "shared", "shared"]
    assert auto[2] == "auto" and auto[3] in ("shared", "pipelined")
    assert float(auto[4]) <= float(shared[4])
    assert all(v.isdigit() for v in auto[5:9])  # DSP BRAM18 LUTRAM URAM
