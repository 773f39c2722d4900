"""Tests for benchmarks/entry.py: what every benchmark script shares."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import entry  # noqa: E402


def run_script(tmp_path, body, *flags):
    """Runs a script whose main is `body`, through entry.run."""
    script = tmp_path / "script.py"
    script.write_text(
        "import entry\n"
        "from absl import flags\n"
        "flags.DEFINE_integer('n', 1, 'A count.')\n"
        "entry.check_flags(n=entry.at_least(1))\n"
        "def main(argv):\n"
        + textwrap.indent(textwrap.dedent(body), "    ") + "\n"
        "entry.run(main, tensorflow=False)\n")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([ROOT,
                                          os.path.join(ROOT, "benchmarks")])}
    env.pop("FNAS_VERBOSE", None)
    return subprocess.run([sys.executable, str(script), *flags],
                          capture_output=True, text=True, timeout=120,
                          env=env)


def test_a_bad_flag_is_one_line_and_status_2(tmp_path):
    result = run_script(tmp_path, "print('ran')", "--n=0")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "script.py: error: flag --n=0: must be at least 1, got 0\n")


def test_a_user_error_while_running_is_one_line(tmp_path):
    body = """\
        from fnas_keras import console
        print('started')
        raise console.UsageError('no such\\nthing')
    """
    result = run_script(tmp_path, body)
    assert result.returncode == 2
    assert result.stdout == "started\n"
    assert result.stderr == "script.py: error: no such thing\n"


def test_a_bug_keeps_its_traceback(tmp_path):
    result = run_script(tmp_path, "raise ValueError('a bug')")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: a bug")


def test_fnas_verbose_shows_a_user_errors_traceback(tmp_path):
    body = """\
        from fnas_keras import fpga
        fpga.analyze([{"class_name": "Conv2D", "config": {"filters": 4,
            "kernel_size": 3, "padding": "same"},
            "input_shape": (None, 8, 8, 4),
            "output_shape": (None, 8, 8, 4)}] * 60, "xc7a50t", bits=32)
    """
    quiet = run_script(tmp_path, body)
    assert quiet.returncode == 2
    assert quiet.stderr == ("script.py: error: 60 engines need at least 300 "
                            "DSP; the device has 120\n")
    os.environ["FNAS_VERBOSE"] = "1"
    try:
        loud = subprocess.run(
            [sys.executable, str(tmp_path / "script.py")],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [ROOT, os.path.join(ROOT, "benchmarks")])})
    finally:
        del os.environ["FNAS_VERBOSE"]
    assert loud.returncode == 2
    assert "Traceback" in loud.stderr
    assert loud.stderr.endswith(quiet.stderr)


def test_check_after_names_the_flag(tmp_path):
    script = tmp_path / "late.py"
    script.write_text(textwrap.dedent("""\
        import entry
        from absl import flags

        flags.DEFINE_string("device", "xc7z020", "A part.")
        flags.DEFINE_integer("n", 1, "A count.")
        entry.check_after(entry.device, "device")


        def both(device, n):
            if n > 1 and device == "xc7z020":
                raise ValueError("--n above 1 needs a bigger part")


        entry.check_after(both, "device", "n")
        entry.run(lambda argv: print("ran"), tensorflow=False)
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [ROOT, os.path.join(ROOT, "benchmarks")])}
    bad = subprocess.run([sys.executable, str(script), "--device=zc7"],
                         capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "late.py: error: flag --device=zc7: unknown device 'zc7'; known: ")
    both = subprocess.run([sys.executable, str(script), "--n=2"],
                          capture_output=True, text=True, env=env,
                          timeout=120)
    assert both.returncode == 2
    assert both.stderr == ("late.py: error: --n above 1 needs a bigger "
                           "part\n")


@pytest.mark.parametrize("argv, more, expected", [
    (["--epochs=1"], None, ["--epochs=1", "--resume"]),
    (["--resume", "--max_trials=2", "--epochs=1"], {"max_trials": 4},
     ["--epochs=1", "--max_trials=4", "--resume"]),
    (["--max_trials", "2", "--noresume"], {"max_trials": 4},
     ["--max_trials=4", "--resume"]),
])
def test_resume_argv(argv, more, expected):
    assert entry.resume_argv(argv, more) == expected


def test_command_quotes_what_the_shell_would_split():
    line = entry.command("benchmarks/search.py",
                         ["--project=my run", "--epochs=1"])
    assert line.endswith("search.py '--project=my run' --epochs=1")


def test_next_steps_name_the_runs_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "runs" / "fnas_digits"
    steps = entry.next_steps(str(project), str(project / "best_model.keras"),
                             "pynq-z1", "16", "pipelined", "RESUME")
    assert "--logdir runs/fnas_digits/controller" in steps
    assert ("runs/fnas_digits/best_model.keras --compare --device "
            "pynq-z1,zcu102 --bits 16 --mapping pipelined") in steps
    assert steps.splitlines()[-1] == "    RESUME"
    no_model = entry.next_steps(str(project), None, "zcu102", 8, "shared",
                                "RESUME")
    assert "fnas-latency" not in no_model
    assert "pynq-z1" not in no_model
    on_zcu102 = entry.next_steps(str(project), "m.keras", "xczu9eg", 8,
                                 "shared", "RESUME")
    assert "--device xczu9eg,pynq-z1 --bits 8 --mapping shared" in on_zcu102


def test_interrupted_resumes_only_saved_searches(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["search.py", "--epochs=1",
                                      "--resume"])
    fresh = entry.interrupted("search.py", str(tmp_path))
    assert "before anything was saved" in fresh
    assert fresh.endswith("search.py --epochs=1")
    (tmp_path / "oracle.json").write_text("{}")
    saved = entry.interrupted("search.py", str(tmp_path))
    assert "resume with" in saved
    assert saved.endswith("search.py --epochs=1 --resume")
