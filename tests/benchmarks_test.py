"""Smoke tests: the absl benchmark scripts run end to end with tiny flags."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *flags, timeout=600, status=0):
    env = dict(os.environ)
    env.pop("FNAS_VERBOSE", None)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *flags],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )
    assert result.returncode == status, result.stdout + result.stderr
    return result.stdout if status == 0 else result.stderr


@pytest.mark.parametrize("script, flag, message", [
    ("search.py", "--device=zc7020",
     "flag --device=zc7020: unknown device 'zc7020'; known: xc7z020"),
    ("search.py", "--bits=12",
     "flag --bits=12: value should be one of <8|16|32>"),
    ("search.py", "--latency_spec_ms=0",
     "flag --latency_spec_ms=0.0: the value must be a finite number > 0"),
    ("search.py", "--max_trials=0",
     "flag --max_trials=0: must be at least 1, got 0"),
    ("search.py", "--nosuch_flag", "Unknown command line flag 'nosuch_flag'"),
    ("paper.py", "--latency_spec_ms=7,x",
     "flag --latency_spec_ms=['7', 'x']: 'x' is not a number"),
    ("paper.py", "--device=vu9", "flag --device=vu9: unknown device 'vu9'"),
    ("analyzer.py", "--bits=12",
     "flag --bits=12: unsupported bits 12; allowed: 8, 16, 32"),
    ("rejection_cost.py", "--children=1",
     "flag --children=1: must be at least 2, got 1"),
])
def test_a_bad_flag_is_one_line_and_status_2(script, flag, message):
    err = run(script, flag, status=2, timeout=120)
    assert err.startswith(f"{script}: error: {message}")
    assert err.count("\n") == 1, err


def test_resume_needs_a_search_to_resume(tmp_path):
    err = run("search.py", "--resume", f"--directory={tmp_path}",
              status=2, timeout=120)
    path = tmp_path / "fnas_digits" / "oracle.json"
    assert err == (f"search.py: error: flag --resume=True: no search to "
                   f"resume in {path}; run without --resume to start one\n")


def test_missing_imagenet_files_are_one_quiet_line(tmp_path):
    # TensorFlow and TFDS load before the archives are found missing:
    # none of their start-up messages may show.
    err = run("search.py", "--dataset=imagenet2012",
              f"--data_dir={tmp_path}", status=2, timeout=300)
    assert err.startswith("search.py: error: imagenet2012 needs a manual "
                          "download: put ILSVRC2012_img_train.tar")
    assert err.count("\n") == 1, err


def test_unknown_dataset_is_one_line(tmp_path):
    err = run("paper.py", "--dataset=cifar11", status=2, timeout=300)
    assert err.startswith("paper.py: error: flag --dataset=cifar11: unknown "
                          "dataset 'cifar11'; known: digits")
    assert err.count("\n") == 1, err


@pytest.mark.slow
def test_search_writes_every_result_file(tmp_path):
    out = run("search.py", "--max_trials=2", "--epochs=1",
              "--train_examples=64", "--space_samples=20",
              f"--directory={tmp_path}")
    assert "Meet the 3.0 ms spec" in out
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
    assert all(float(r["latency_ms"]) <= 3.0 for r in trained)
    assert all(float(r["latency_ms"]) > 3.0 for r in rejected
               if r["latency_ms"])
    assert out.count("Rejected child") == len(rejected)
    assert "2/2 trials done" in out and "about" in out
    steps = out[out.index("Next steps:"):].splitlines()
    assert steps[2].endswith(f"--logdir {project / 'controller'}")
    assert f"{project / 'best_model.keras'} --compare" in steps[4]
    assert steps[-1].endswith("--max_trials=4 --resume")


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
    out = run("rejection_cost.py", "--children=20", "--runs=1",
              "--space_report=false")
    assert "rejection_ms_median:" in out and "preset fast path" in out
    for part in ("sample", "layer dicts", "analyze", "update", "log"):
        assert f"  {part} " in out


@pytest.mark.parametrize("script", ["search", "paper"])
def test_mapping_flags_take_the_latency_models_mappings(script):
    # A mapping fpga gains (say "auto") is a valid flag value at once.
    code = (
        "from fnas_keras import fpga\n"
        "fpga.MAPPINGS = (*fpga.MAPPINGS, 'auto')\n"
        f"import {script}\n"
        "from absl import flags\n"
        "flags.FLAGS(['x', '--mapping=auto'])\n"
        "print(flags.FLAGS.mapping)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=120, cwd=os.path.join(ROOT, "benchmarks"), check=True,
    )
    assert result.stdout.split() == ["auto"]


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
