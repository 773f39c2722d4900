"""A real search SIGKILLed at chosen moments resumes as if never killed."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from fnas_keras import controller as controller_module
from fnas_keras import storage

SCRIPT = os.path.join(os.path.dirname(__file__), "search_script.py")
MAX_TRIALS = 6
SPEC_MS = 0.2
# Each run resumes the last; together they kill in every phase of a trial.
KILLS = (
    "reject:3",  # a burst of rejections, before any trial exists
    "created:1",  # trial.json written, oracle.json not yet
    "midfit:1",  # inside model.fit
    "reject:1",  # a rejection between trials
    "reported:1",  # metrics reported, trial not ended
    "ended:1",  # trial ended, controller not yet rewarded
    "save:2",  # controller file written, oracle.json not yet
)


def run(directory, kill=None):
    env = dict(os.environ, FNAS_KILL=kill or "", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(directory)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process):
    _, err = process.communicate(timeout=300)
    return process.returncode, err


def outcome(directory):
    """Everything a search leaves that must not depend on the kills."""
    project = os.path.join(directory, "search")
    state = storage.read_json(os.path.join(project, "oracle.json"))
    controller = controller_module.Controller.load(
        os.path.join(project, state["fnas"]["controller_file"])
    )
    trials = []
    for trial_id in sorted(state["end_order"]):
        path = os.path.join(project, f"trial_{trial_id}", "trial.json")
        trial = storage.read_json(path)
        values = trial["hyperparameters"]["values"]
        trials.append((trial_id, trial["status"], trial["score"], values))
    rejected = [
        (r["step"], r["values"], r["latency_ms"])
        for r in storage.read_jsonl(os.path.join(project, "rejected.jsonl"))
    ]
    with open(os.path.join(directory, "fits.log")) as f:
        fits = f.read().splitlines()
    return {
        "trials": trials,
        "rejected": rejected,
        "fits": fits,
        "weights": controller.get_weights(),
        "baseline": controller.baseline,
        "step": controller.step,
        "accuracy_baseline": state["fnas"]["accuracy_baseline"],
    }


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_search_killed_anywhere_resumes_as_if_never_killed(tmp_path):
    reference = run(tmp_path / "reference")
    killed = tmp_path / "killed"
    for kill in KILLS:
        code, err = finish(run(killed, kill))
        assert code == -signal.SIGKILL, f"{kill} was never reached:\n{err}"
    code, err = finish(run(killed))
    assert code == 0, err
    code, err = finish(reference)
    assert code == 0, err

    want, got = outcome(tmp_path / "reference"), outcome(killed)
    # Every trial completed once, none lost, none trained twice.
    assert len(got["trials"]) == MAX_TRIALS
    assert {t[1] for t in got["trials"]} == {"COMPLETED"}
    assert len(got["fits"]) == len(set(got["fits"])) == MAX_TRIALS
    assert got["fits"] == want["fits"]
    assert got["trials"] == want["trials"]
    # The rejection log: no record lost or duplicated, all over the spec.
    assert got["rejected"] == want["rejected"]
    steps = [r[0] for r in got["rejected"]]
    assert len(steps) == len(set(steps)) > 0
    assert all(r[2] is None or r[2] > SPEC_MS for r in got["rejected"])
    # The controller learnt exactly what the uninterrupted one did.
    np.testing.assert_array_equal(got["weights"], want["weights"])
    assert got["baseline"] == want["baseline"]
    assert got["step"] == want["step"]
    assert got["accuracy_baseline"] == want["accuracy_baseline"]
    leftovers = os.listdir(killed / "search")
    assert [f for f in leftovers if f.startswith(".tmp-")] == []
    assert json.dumps(got["trials"])
