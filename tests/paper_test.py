"""benchmarks/paper.py (the paper's protocol) and benchmarks/recipe.py."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")


def python(code):
    """Runs code in benchmarks/, in a subprocess (absl flags clash here)."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=300, cwd=BENCHMARKS, check=True,
    )
    return result.stdout


def test_recipe_data_is_standardised_with_training_statistics():
    code = (
        "import numpy as np, recipe\n"
        "(x, y), kw = recipe.fit_data('digits', validation_limit=7)\n"
        "xv, yv = kw['validation_data']\n"
        "print(round(float(x.mean()), 4), round(float(x.std()), 4),"
        " len(xv), kw['batch_size'], round(float(xv.mean()), 4))\n"
    )
    mean, std, n, batch, val_mean = python(code).split()[-5:]
    assert abs(float(mean)) < 1e-3 and float(std) == pytest.approx(1, 1e-3)
    assert (n, batch) == ("7", "8")
    assert abs(float(val_mean)) < 0.5  # the training statistics, applied


def test_summary_gives_mean_std_loss_and_speedup():
    code = (
        "import paper\n"
        "def r(m, seed, final, lat, t):\n"
        "    return {'spec_ms': 7.0, 'method': m, 'seed': seed,"
        " 'final_accuracy': final, 'search_accuracy': final - 0.1,"
        " 'latency_ms': lat, 'meets_spec': lat <= 7, 'search_time_s': t,"
        " 'trained': 4, 'rejected': 0 if m == 'nas' else 6}\n"
        "rows = [r('nas', 1, 0.9, 14.0, 100.0), r('nas', 2, 0.8, 21.0, 60.0),"
        " r('fnas', 1, 0.88, 7.0, 10.0), r('fnas', 2, 0.8, 3.5, 20.0)]\n"
        "print(paper.summary(rows))\n"
    )
    lines = python(code).strip().splitlines()
    nas = [c.strip() for c in lines[-2].split("|")]
    fnas = [c.strip() for c in lines[-1].split("|")]
    assert nas[1:6] == ["7", "nas", "2", "0/2", "2.50x ± 0.71"]
    assert fnas[1:6] == ["7", "fnas", "2", "2/2", "0.75x ± 0.35"]
    assert fnas[6] == "0.840 ± 0.057"
    # Loss per seed: 2 and 0 points; speedup per seed: 10x and 3x.
    assert fnas[-3:-1] == ["1.00 ± 1.41", "6.50x ± 4.95"]


@pytest.mark.slow
def test_the_protocol_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "paper.py"),
         "--episodes=3", "--epochs=1", "--final_epochs=1", "--seeds=2",
         "--baselines=random,bayesian", "--train_examples=32",
         "--validation_examples=32", "--latency_spec_ms=7",
         f"--directory={tmp_path}"],
        capture_output=True, text=True, timeout=1200, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "paper.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["method"], r["seed"]) for r in rows) == sorted(
        (m, s) for m in ("nas", "fnas", "random", "bayesian")
        for s in ("1", "2"))
    for r in rows:
        assert 0 <= float(r["final_accuracy"]) <= 1
        if r["method"] != "nas":
            assert float(r["latency_ms"]) <= 7 and r["meets_spec"] == "True"
    by = {(r["method"], r["seed"]): r for r in rows}
    for seed in ("1", "2"):
        fnas = by["fnas", seed]
        assert int(fnas["trained"]) + int(fnas["rejected"]) == 3
        for kind in ("random", "bayesian"):
            assert by[kind, seed]["trained"] == fnas["trained"]
    table = (tmp_path / "paper.md").read_text()
    assert "| 7 | fnas | 2 | 2/2 |" in table and "| 7 | bayesian |" in table
    assert (tmp_path / "paper.png").stat().st_size > 0


@pytest.mark.slow
def test_recipe_check_prints_both_recipes():
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "recipe_check.py"),
         "--children=small", "--epochs=1"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines()
             if "val_accuracy by epoch" in line]
    assert [line.split(":")[0].split() for line in lines] == [
        ["small", "old"], ["small", "new"]]
