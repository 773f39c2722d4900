"""Smoke tests: the absl benchmark scripts run end to end with tiny flags."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *flags, timeout=600):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *flags],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_search_writes_every_result_file(tmp_path):
    out = run("search.py", "--max_trials=2", "--epochs=1",
              "--train_examples=64", "--space_samples=20",
              f"--directory={tmp_path}")
    assert "Meet the 7.0 ms spec" in out
    assert "Trial 1/2" in out and "Trial 2/2" in out
    assert "rank  trial  accuracy  latency_ms" in out
    project = tmp_path / "fnas_digits"
    for name in ("results.csv", "pareto.png", "best_model.keras",
                 "best_latency.txt", "best_latency.json", "summary.txt"):
        assert (project / name).stat().st_size > 0, name
    with open(project / "results.csv") as f:
        rows = list(csv.DictReader(f))
    trained = [r for r in rows if r["kind"] == "trained"]
    rejected = [r for r in rows if r["kind"] == "rejected"]
    assert len(trained) == 2
    assert all(float(r["latency_ms"]) <= 7.0 for r in trained)
    assert all(float(r["latency_ms"]) > 7.0 for r in rejected
               if r["latency_ms"])
    assert out.count("Rejected child") == len(rejected)


@pytest.mark.slow
def test_search_in_nas_mode_trains_without_rejecting(tmp_path):
    out = run("search.py", "--mode=nas", "--max_trials=2", "--epochs=1",
              "--train_examples=32", "--space_samples=0",
              f"--directory={tmp_path}")
    assert "Rejected child" not in out
    assert "children trained: 2, rejected without training: 0" in out


@pytest.mark.slow
def test_paper_prints_the_comparison(tmp_path):
    out = run("paper.py", "--episodes=3", "--epochs=1",
              "--train_examples=32", "--latency_spec_ms=7,30",
              f"--directory={tmp_path}")
    assert "acc_loss_pts" in out and "speedup" in out
    rows = [line for line in out.splitlines()
            if line.strip().startswith(("7 |", "30 |"))]
    assert len(rows) == 2
    assert (tmp_path / "paper.png").stat().st_size > 0


@pytest.mark.slow
def test_rejection_cost_prints_a_median(tmp_path):
    out = run("rejection_cost.py", "--children=20")
    assert "rejection_ms_median:" in out
    assert "rejected children: 20" in out


def test_paper_table_compares_best_children():
    # In a subprocess: paper.py's absl flags would clash with analyzer.py's
    # in this process.
    code = (
        "import paper\n"
        "nas = {'wall_s': 100.0, 'trained': 3, 'trials': [(10, 0.9, 3.0),"
        " (20, 0.97, 50.0), (30, 0.8, 6.0)]}\n"
        "fnas = {'wall_s': 10.0, 'trained': 2, 'rejected': 1,"
        " 'trials': [(5, 0.88, 6.5), (8, 0.95, 9.0)]}\n"
        "print(paper.table(nas, {7.0: fnas}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=120, cwd=os.path.join(ROOT, "benchmarks"), check=True,
    )
    row = result.stdout.splitlines()[-1].split()
    # NAS's best is 50 ms (7.14x the spec); within 7 ms it had 0.9; FNAS's
    # best within the spec is 0.88: 9 points below NAS's best, 10x faster.
    assert row[2:4] == ["7.14x", "0.970"]
    assert row[6] == "0.900"
    assert row[8:10] == ["0.93x", "0.880"]
    assert row[-2:] == ["9.00", "10.00x"]


@pytest.mark.slow
def test_controller_benchmark_prints_both_methods_over_seeds(tmp_path):
    out = run("controller.py", "--seeds=1,2", "--children=1", "--epochs=1",
              "--train_examples=32", "--feasible_fraction=0.3",
              "--space_samples=10", "--processes=2",
              f"--directory={tmp_path}")
    rows = [line.split() for line in out.splitlines()]
    rows = [r for r in rows if r[:1] in (["fnas"], ["random"])
            and r[1].isdigit()]
    assert sorted((r[0], r[1], r[2]) for r in rows) == [
        ("fnas", "1", "1"), ("fnas", "2", "1"),
        ("random", "1", "1"), ("random", "2", "1")]
    assert "fnas best" in out and "random best" in out
    assert "mean of trained" in out
