"""Distributed FNAS: leases in the oracle, then real processes over gRPC.

The slow tests run a chief and two workers on localhost, each a process of
tests/distributed_script.py. Everything is killed after DEADLINE_S
whatever happens, so a hung chief fails the test, not CI.
"""

from __future__ import annotations

import copy
import glob
import os
import signal
import socket
import subprocess
import sys
import time

import keras_tuner
import pytest

from fnas_keras import gate as gate_module
from fnas_keras import lease
from fnas_keras import oracle as oracle_module
from fnas_keras import storage

SCRIPT = os.path.join(os.path.dirname(__file__), "distributed_script.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_MS = 0.27
MAX_TRIALS = 4
DEADLINE_S = 240


class Clock:
    """A fake monotonic clock for leases."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_oracle(tmp_path, max_trials=2, timeout_s=5.0):
    hps = keras_tuner.HyperParameters()
    hps.Choice("x", list(range(10)))
    oracle = oracle_module.FNASOracle(
        objective=keras_tuner.Objective("score", "max"),
        max_trials=max_trials, seed=1, hyperparameters=hps,
        trial_timeout_s=timeout_s,
    )
    oracle._set_project_dir(str(tmp_path), "project")
    oracle.verbose = 0
    clock = Clock()
    oracle._leases = lease.Leases(timeout_s, clock=clock)
    return oracle, clock


def finish(oracle, trial, score=0.5, status="COMPLETED"):
    """What a worker sends at the end of a trial: its metrics, its end."""
    oracle.update_trial(trial.trial_id, {"score": score})
    ended = copy.deepcopy(trial)
    ended.status = status
    oracle.end_trial(ended)


def can_exit(oracle) -> bool:
    """keras-tuner's oracle_chief.exit_chief condition."""
    return not oracle.ongoing_trials and not oracle.tuner_ids


def test_silent_workers_trial_runs_again_and_the_chief_can_exit(tmp_path):
    oracle, clock = make_oracle(tmp_path)
    lost = oracle.create_trial("tuner1")
    finish(oracle, oracle.create_trial("tuner0"))
    clock.now = 3.0
    assert oracle.create_trial("tuner0").status == "IDLE"
    clock.now = 6.0
    rerun = oracle.create_trial("tuner0")
    assert rerun.trial_id == lost.trial_id and rerun.status == "RUNNING"
    assert "tuner1" not in oracle.tuner_ids
    finish(oracle, rerun)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert can_exit(oracle)
    assert sorted(oracle.end_order) == sorted(oracle.trials)
    assert all(t.status == "COMPLETED" for t in oracle.trials.values())
    assert oracle._run_times[lost.trial_id] == 1


def test_late_end_after_the_rerun_is_ignored(tmp_path):
    oracle, clock = make_oracle(tmp_path, max_trials=1)
    lost = copy.deepcopy(oracle.create_trial("tuner1"))
    clock.now = 6.0
    finish(oracle, oracle.create_trial("tuner0"), score=0.9)
    finish(oracle, lost, score=0.1)
    trial = oracle.trials[lost.trial_id]
    assert oracle.end_order == [lost.trial_id]
    assert trial.score == 0.9 and oracle._run_times[trial.trial_id] == 1


def test_late_completed_end_is_kept_once(tmp_path):
    oracle, clock = make_oracle(tmp_path, max_trials=1)
    lost = copy.deepcopy(oracle.create_trial("tuner1"))
    clock.now = 6.0
    assert oracle.expire_leases() == ["tuner1"]
    assert oracle._retry_queue == [lost.trial_id]
    finish(oracle, lost)
    assert oracle._retry_queue == [] and oracle.end_order == [lost.trial_id]
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert can_exit(oracle)


def test_late_failure_is_left_to_the_rerun(tmp_path):
    oracle, clock = make_oracle(tmp_path, max_trials=1)
    lost = copy.deepcopy(oracle.create_trial("tuner1"))
    clock.now = 6.0
    oracle.expire_leases()
    finish(oracle, lost, status="INVALID")
    assert oracle._retry_queue == [lost.trial_id] and not oracle.end_order


def test_heartbeats_keep_a_long_trial(tmp_path):
    oracle, clock = make_oracle(tmp_path)
    trial = oracle.create_trial("tuner1")
    for step in range(1, 5):
        clock.now = 4.0 * step
        oracle.get_trial(trial.trial_id)
        assert oracle.expire_leases() == []
    assert oracle.ongoing_trials["tuner1"] is trial


def test_trial_reported_before_the_death_is_ended_not_rerun(tmp_path):
    oracle, clock = make_oracle(tmp_path, max_trials=1)
    trial = oracle.create_trial("tuner1")
    oracle.update_trial(trial.trial_id, {"score": 0.7})
    clock.now = 6.0
    oracle.expire_leases()
    assert trial.status == "COMPLETED" and trial.score == 0.7
    assert oracle.end_order == [trial.trial_id] and not oracle._retry_queue


def test_decisions_added_while_a_child_trains_are_filled_in(tmp_path):
    oracle, _ = make_oracle(tmp_path, max_trials=3)
    first = oracle.create_trial("tuner0")
    # Another worker's build reveals a hyperparameter the first child
    # did not have: the controller grows while the first one trains.
    hps = oracle.get_space()
    hps.Choice("y", [1, 2])
    oracle.update_space(hps)
    second = oracle.create_trial("tuner1")
    finish(oracle, first)
    finish(oracle, second)
    assert oracle.controller.step == 2


def test_bad_trial_timeout_is_a_clear_error():
    with pytest.raises(ValueError, match="trial_timeout_s"):
        oracle_module.FNASOracle(objective="val_accuracy",
                                 trial_timeout_s=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """The chief and worker processes of one search, and their logs."""

    def __init__(self, tmp_path, port: int, extra: list[str]):
        self.tmp_path = tmp_path
        self.port = port
        self.extra = extra
        self.procs: dict[str, subprocess.Popen] = {}
        self.deadline = time.monotonic() + DEADLINE_S

    def log(self, tuner_id: str) -> str:
        return str(self.tmp_path / f"{tuner_id}.log")

    def start(self, tuner_id: str, *flags: str, secret: str = "") -> None:
        env = dict(
            os.environ,
            FNAS_ORACLE_SECRET=secret,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(self.port),
            PYTHONPATH=ROOT,
            TF_CPP_MIN_LOG_LEVEL="3",
            CUDA_VISIBLE_DEVICES="",
        )
        out = open(self.tmp_path / f"{tuner_id}.out", "wb")
        cmd = [sys.executable, SCRIPT, "--directory", str(self.tmp_path),
               "--log", self.log(tuner_id), "--max-trials", str(MAX_TRIALS),
               *self.extra, *flags]
        # A session of its own, so the whole process group can be killed.
        self.procs[tuner_id] = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def lines(self, tuner_id: str) -> list[str]:
        if not os.path.exists(self.log(tuner_id)):
            return []
        with open(self.log(tuner_id), encoding="utf-8") as f:
            return f.read().split()

    def wait_for(self, predicate, what: str) -> None:
        while not predicate():
            self._check_time(what)
            time.sleep(0.1)

    def wait_exit(self, tuner_id: str) -> int:
        proc = self.procs[tuner_id]
        while proc.poll() is None:
            self._check_time(f"{tuner_id} to exit")
            time.sleep(0.2)
        return proc.returncode

    def kill(self, tuner_id: str) -> None:
        proc = self.procs[tuner_id]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill_all(self) -> None:
        for tuner_id in self.procs:
            self.kill(tuner_id)

    def output(self) -> str:
        texts = []
        for tuner_id in self.procs:
            path = self.tmp_path / f"{tuner_id}.out"
            text = path.read_bytes().decode(errors="replace")[-3000:]
            texts.append(f"--- {tuner_id} ---\n{text}")
        return "\n".join(texts)

    def _check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            self.kill_all()
            pytest.fail(
                f"timed out after {DEADLINE_S} s waiting for {what}\n"
                + self.output()
            )


@pytest.fixture
def cluster(tmp_path):
    def make(*extra: str) -> Cluster:
        made.append(Cluster(tmp_path, free_port(), list(extra)))
        return made[-1]

    made: list[Cluster] = []
    yield make
    for c in made:
        c.kill_all()


def chief_trials(tmp_path) -> dict:
    """The trials as the chief saved them, by trial id."""
    pattern = str(tmp_path / "digits" / "trial_*" / "trial.json")
    trials = [keras_tuner.engine.trial.Trial.load(p)
              for p in glob.glob(pattern)]
    return {t.trial_id: t for t in trials}


def trained(c: Cluster, tuner_id: str, word: str = "done") -> list[str]:
    words = c.lines(tuner_id)
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == word]


def check_results(tmp_path, done: list[str]) -> None:
    """Every trial completed once, within the spec, with its latency."""
    trials = chief_trials(tmp_path)
    assert len(trials) == MAX_TRIALS
    assert all(t.score < 0.999 for t in trials.values())
    assert sorted(done) == sorted(trials), "each trial is trained once"
    for trial in trials.values():
        assert trial.status == "COMPLETED", trial.trial_id
        latency = gate_module.metric(trial, "latency_ms")
        assert latency is not None and 0 < latency <= SPEC_MS
        assert gate_module.metric(trial, "val_accuracy") is not None
    rejected = storage.read_jsonl(str(tmp_path / "digits" / "rejected.jsonl"))
    assert rejected, "this space and spec must reject some children"
    assert all(r["latency_ms"] is None or r["latency_ms"] > SPEC_MS
               for r in rejected)


@pytest.mark.slow
def test_chief_and_two_workers_complete_a_search(tmp_path, cluster):
    c = cluster("--trial-timeout-s", "30")
    for tuner_id in ("chief", "tuner0", "tuner1"):
        c.start(tuner_id)
    for tuner_id in ("tuner0", "tuner1", "chief"):
        assert c.wait_exit(tuner_id) == 0, c.output()
    done = trained(c, "tuner0") + trained(c, "tuner1")
    started = trained(c, "tuner0", "start") + trained(c, "tuner1", "start")
    assert sorted(started) == sorted(done)
    check_results(tmp_path, done)


@pytest.mark.slow
def test_search_finishes_when_a_worker_dies_mid_fit(tmp_path, cluster):
    # tuner0 finishes the other trials well within the timeout, so it
    # waits (IDLE) for the lost one to come back rather than stopping.
    c = cluster("--trial-timeout-s", "15")
    c.start("chief")
    c.start("tuner1", "--fit-sleep-s", "120")
    c.start("tuner0")
    c.wait_for(lambda: "fit" in c.lines("tuner1"), "tuner1 to start a fit")
    c.kill("tuner1")
    lost = trained(c, "tuner1", "start")
    assert len(lost) == 1 and not trained(c, "tuner1")
    assert c.wait_exit("tuner0") == 0, c.output()
    assert c.wait_exit("chief") == 0, c.output()
    done = trained(c, "tuner0")
    assert lost[0] in done, "the dead worker's trial is run again"
    check_results(tmp_path, done)


def stranger_calls(port: int, trial_id: str) -> dict:
    """What a stranger gets for taking a trial and reporting a score."""
    import grpc
    from keras_tuner.src import protos

    stub = protos.get_service_grpc().OracleStub(
        grpc.insecure_channel(f"127.0.0.1:{port}")
    )
    pb = protos.get_service()
    made_up = keras_tuner.engine.trial.Trial(
        keras_tuner.HyperParameters(), trial_id=trial_id, status="COMPLETED"
    )
    calls = {
        "CreateTrial": pb.CreateTrialRequest(tuner_id="tuner0"),
        "UpdateTrial": pb.UpdateTrialRequest(
            trial_id=trial_id, metrics={"val_accuracy": 0.999}
        ),
        "EndTrial": pb.EndTrialRequest(trial=made_up.to_proto()),
    }
    codes = {}
    for method, request in calls.items():
        try:
            getattr(stub, method)(request, wait_for_ready=True,
                                  timeout=DEADLINE_S / 2)
            codes[method] = "OK"
        except grpc.RpcError as error:
            codes[method] = error.code().name
    return codes


@pytest.mark.slow
def test_a_stranger_is_refused_and_the_search_is_unchanged(tmp_path,
                                                            cluster):
    c = cluster("--trial-timeout-s", "30")
    c.start("chief", secret="s3cret")
    # The chief is up before any worker: the stranger goes first.
    codes = stranger_calls(c.port, "0")
    assert codes == dict.fromkeys(codes, "UNAUTHENTICATED")
    c.start("tuner0", secret="s3cret")
    assert c.wait_exit("tuner0") == 0, c.output()
    assert c.wait_exit("chief") == 0, c.output()
    check_results(tmp_path, trained(c, "tuner0"))
    assert "Refused a call from" in c.output()


@pytest.mark.slow
def test_failures_in_a_row_end_chief_and_workers_with_the_reason(
    tmp_path, cluster
):
    c = cluster("--trial-timeout-s", "30", "--nan-loss")
    for tuner_id in ("chief", "tuner0", "tuner1"):
        c.start(tuner_id)
    codes = {t: c.wait_exit(t) for t in ("tuner0", "tuner1", "chief")}
    assert all(code != 0 for code in codes.values()), c.output()
    out = {t: (tmp_path / f"{t}.out").read_text() for t in codes}
    assert "consecutive failures" in out["chief"]
    for tuner_id in ("tuner0", "tuner1"):
        assert "consecutive failures" in out[tuner_id]
    trials = chief_trials(tmp_path)
    failed = [t for t in trials.values() if t.status == "FAILED"]
    assert len(failed) >= 3
    for trial in failed:  # The workers' tracebacks, kept on the chief.
        assert "Traceback" in trial.message
        assert "loss is NaN at epoch 1" in trial.message
