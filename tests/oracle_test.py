"""FNASOracle driven through create/update/end trial, with no model at all."""

import json
import math
import os
from typing import NamedTuple

import keras_tuner as kt
import numpy as np
import pytest

from fnas_keras import decisions
from fnas_keras import fpga
from fnas_keras import gate as gate_module
from fnas_keras import oracle as oracle_module

SPEC_MS = 30.0


class FakeReport(NamedTuple):
    latency_ms: float
    dsp_used: float = 100.0
    bram18_used: float = 50.0
    throughput_fps: float = 1000.0


def latency_of(values):
    """A toy latency model: a * b ms, so (a, b) <= 30 meets the spec."""
    return float(values["a"] * values["b"])


def toy_gate(values):
    return FakeReport(latency_of(values))


def space():
    hps = kt.HyperParameters()
    hps.Choice("a", [1, 2, 3, 4])
    hps.Choice("b", [5, 10, 20])
    return hps


def make_oracle(tmp_path, gate=toy_gate, hps=None, **kwargs):
    options = dict(
        objective=kt.Objective("score", "max"),
        max_trials=5,
        latency_spec_ms=SPEC_MS,
        seed=3,
        hyperparameters=hps if hps is not None else space(),
    )
    options.update(kwargs)
    oracle = oracle_module.FNASOracle(**options)
    oracle._set_project_dir(str(tmp_path), "project")
    oracle.verbose = 0
    oracle.gate = gate
    return oracle


def run_trial(oracle, score, status="COMPLETED"):
    trial = oracle.create_trial("tuner0")
    if trial.status != "RUNNING":
        return trial
    if score is not None:
        oracle.update_trial(trial.trial_id, {"score": score})
    trial.status = status
    oracle.end_trial(trial)
    return trial


def spy_on_rewards(oracle, monkeypatch):
    """The rewards the controller is given, in order."""
    rewards = []
    update = oracle.controller.update

    def spy(decisions, reward):
        rewards.append(reward)
        return update(decisions, reward)

    monkeypatch.setattr(oracle.controller, "update", spy)
    return rewards


@pytest.mark.parametrize("rule", ["fnas", "constrained"])
def test_rejected_children_never_become_trials(tmp_path, rule, monkeypatch):
    oracle = make_oracle(tmp_path, reward=rule)
    rewards = spy_on_rewards(oracle, monkeypatch)
    scores = [0.5 + 0.1 * i for i in range(4)]
    for score in scores:
        run_trial(oracle, score)
    rejected = oracle.rejected()
    assert rejected, "the toy space has over-spec children; some must show"
    penalty = -0.1 if rule == "fnas" else None
    for record in rejected:
        assert record["latency_ms"] > SPEC_MS
        assert latency_of(record["values"]) == record["latency_ms"]
        assert record["spec_ms"] == SPEC_MS
        assert record["reward"] == penalty
    for trial in oracle.trials.values():
        latency = gate_module.metric(trial, "latency_ms")
        assert latency == latency_of(trial.hyperparameters.values)
        assert latency <= SPEC_MS
        assert gate_module.metric(trial, "dsp_used") == 100.0
        directions = {name: trial.metrics.metrics[name].direction
                      for name in FakeReport._fields}
        assert directions == {"latency_ms": "min", "dsp_used": "min",
                              "bram18_used": "min", "throughput_fps": "max"}
    if rule == "fnas":  # Each rejection and each trial is one update.
        assert oracle.controller.step == len(rejected) + 4
        assert rewards.count(-0.1) == len(rejected)
    else:  # Rejections teach nothing; the reward is the accuracy alone.
        assert set(rewards) == set(scores)
        assert len(rewards) == oracle.controller.step >= 4


def test_rejection_log_is_jsonl_in_project_dir(tmp_path):
    oracle = make_oracle(tmp_path)
    run_trial(oracle, 0.7)
    path = os.path.join(tmp_path, "project", "rejected.jsonl")
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    assert lines == oracle.rejected()


def test_fnas_reward_reaches_the_controller(tmp_path, monkeypatch):
    oracle = make_oracle(tmp_path, gate=lambda v: FakeReport(15.0),
                         reward="fnas")
    rewards = []
    update = oracle.controller.update

    def spy(decisions, reward):
        rewards.append(reward)
        return update(decisions, reward)

    monkeypatch.setattr(oracle.controller, "update", spy)
    run_trial(oracle, 0.9)
    run_trial(oracle, 0.95)
    # First child: b starts at its accuracy, reward = L / 10T = 0.05.
    assert rewards[0] == pytest.approx(15.0 / (10 * SPEC_MS))
    # b = 0.8 * 0.9 + 0.2 * 0.9 = 0.9; reward = 0.95 - 0.9 + 0.05 = 0.1.
    assert rewards[1] == pytest.approx(0.1)


@pytest.mark.parametrize("rule", ["fnas", "constrained"])
def test_failed_trial_gets_the_penalty_and_is_not_best(
    tmp_path, monkeypatch, rule
):
    oracle = make_oracle(tmp_path, gate=lambda v: FakeReport(10.0),
                         reward=rule)
    rewards = []
    update = oracle.controller.update
    monkeypatch.setattr(
        oracle.controller,
        "update",
        lambda d, r: (rewards.append(r), update(d, r))[1],
    )
    run_trial(oracle, None, status="FAILED")
    assert rewards == [pytest.approx(-0.1)]
    assert oracle.get_best_trials(3) == []
    good = run_trial(oracle, 0.8)
    assert [t.trial_id for t in oracle.get_best_trials(3)] == [good.trial_id]


def test_a_failed_architecture_is_not_trained_again(tmp_path):
    hps = kt.HyperParameters()
    hps.Choice("a", [1])
    hps.Choice("b", [5, 10])
    oracle = make_oracle(tmp_path, hps=hps, max_rejections=50)
    run_trial(oracle, None, status="FAILED")
    run_trial(oracle, 0.5)
    third = oracle.create_trial("tuner0")
    assert third.status == "STOPPED"
    assert len(oracle.trials) == 2


def test_all_over_spec_stops_with_spec_and_fastest(tmp_path):
    oracle = make_oracle(
        tmp_path, gate=lambda v: FakeReport(40.0 + v["a"]), max_rejections=20
    )
    with pytest.raises(kt.errors.FatalValueError) as error:
        oracle.create_trial("tuner0")
    message = str(error.value)
    assert "20 children in a row" in message
    assert "30.0 ms" in message
    assert "41.000 ms" in message
    assert oracle.trials == {}


def test_children_that_do_not_fit_are_rejected(tmp_path):
    def gate(values):
        if values["a"] > 1:
            raise fpga.ResourceError("needs 900 DSP, device has 220")
        return FakeReport(5.0)

    oracle = make_oracle(tmp_path, gate=gate)
    run_trial(oracle, 0.5)
    for record in oracle.rejected():
        assert record["latency_ms"] is None
        assert "DSP" in record["reason"]
    assert all(
        t.hyperparameters.values["a"] == 1 for t in oracle.trials.values()
    )


def test_default_rule_learns_accuracy_with_normalised_steps(tmp_path):
    oracle = make_oracle(tmp_path)
    assert oracle.reward_rule == "constrained"
    config = oracle.controller.get_config()
    assert config["normalize"] and config["learning_rate"] == 0.007
    paper = make_oracle(tmp_path / "paper", reward="fnas")
    assert not paper.controller.get_config()["normalize"]
    custom = make_oracle(tmp_path / "custom",
                         controller_options={"steps_per_update": 3})
    assert custom.controller.get_config()["steps_per_update"] == 3
    assert custom.controller.get_config()["normalize"]


def test_rejected_children_are_not_judged_twice(tmp_path):
    calls = []

    def counting_gate(values):
        calls.append(json.dumps(values, sort_keys=True))
        return toy_gate(values)

    oracle = make_oracle(tmp_path, gate=counting_gate, max_trials=8)
    while run_trial(oracle, 0.5).status != "STOPPED":
        pass
    assert len(calls) == len(set(calls)) == 12  # Every child, once each.
    assert len(oracle.trials) == 8  # The 8 of 12 within the spec.


def grid(names, size):
    hps = kt.HyperParameters()
    for name in names:
        hps.Choice(name, list(range(1, size + 1)))
    return hps


@pytest.mark.parametrize("rule", ["fnas", "constrained"])
def test_small_feasible_set_is_trained_whole_then_exhausted(
    tmp_path, capsys, rule
):
    # 144 architectures; a + b <= 3 holds for exactly 3 of them.
    oracle = make_oracle(
        tmp_path, hps=grid("ab", 12), max_trials=10, max_rejections=100,
        latency_spec_ms=3.0, reward=rule,
        gate=lambda v: FakeReport(float(v["a"] + v["b"])),
    )
    statuses = [run_trial(oracle, 0.5).status for _ in range(4)]
    assert statuses == ["COMPLETED"] * 3 + ["STOPPED"]
    trained = sorted((t.hyperparameters.values["a"],
                      t.hyperparameters.values["b"])
                     for t in oracle.trials.values())
    assert trained == [(1, 1), (1, 2), (2, 1)]
    judged = {json.dumps(r["values"], sort_keys=True)
              for r in oracle.rejected()}
    assert len(judged) == 141
    out = capsys.readouterr().out
    assert ("Search space exhausted: every one of its 144 architectures "
            "was tried: 3 trained, 141 rejected") in out


def test_large_space_never_claims_exhaustion(tmp_path, capsys):
    # 10^5 combinations, too many to enumerate; after the first child
    # judged, every other is over the spec.
    judged = []

    def gate(values):
        judged.append(values)
        return FakeReport(1.0 if len(judged) == 1 else 99.0)

    oracle = make_oracle(tmp_path, hps=grid("abcde", 10), max_trials=10,
                         max_rejections=30, gate=gate)
    statuses = [run_trial(oracle, 0.5).status for _ in range(2)]
    assert statuses == ["COMPLETED", "STOPPED"]
    out = capsys.readouterr().out
    assert "Search space exhausted" not in out
    assert "No new child within the spec in 30 samples" in out
    assert "the space is not exhausted" in out


def test_exhausted_space_stops(tmp_path):
    hps = kt.HyperParameters()
    hps.Choice("a", [1])
    hps.Choice("b", [5, 10])
    oracle = make_oracle(tmp_path, hps=hps, max_rejections=30)
    statuses = [run_trial(oracle, 0.5).status for _ in range(3)]
    assert statuses == ["COMPLETED", "COMPLETED", "STOPPED"]


def test_max_trials_is_respected(tmp_path):
    oracle = make_oracle(tmp_path, gate=lambda v: FakeReport(1.0),
                         max_trials=2)
    statuses = [run_trial(oracle, 0.5).status for _ in range(3)]
    assert statuses == ["COMPLETED", "COMPLETED", "STOPPED"]


def test_same_seed_same_samples(tmp_path):
    def trials(seed, sub):
        oracle = make_oracle(tmp_path / sub, seed=seed)
        return [run_trial(oracle, 0.5).hyperparameters.values
                for _ in range(4)]

    assert trials(7, "x") == trials(7, "y")
    assert trials(7, "x") != trials(8, "z")


def test_plain_nas_trains_everything(tmp_path):
    oracle = make_oracle(
        tmp_path, enforce_spec=False, reward="accuracy", max_trials=12
    )
    for _ in range(12):
        run_trial(oracle, 0.5)
    latencies = [gate_module.metric(t, "latency_ms")
                 for t in oracle.trials.values()]
    assert oracle.rejected() == []
    assert max(latencies) > SPEC_MS


def test_save_and_reload_restore_the_search(tmp_path):
    oracle = make_oracle(tmp_path)
    for score in (0.6, 0.7):
        run_trial(oracle, score)
    running = oracle.create_trial("tuner0")
    oracle.save()
    weights = oracle.controller.get_weights().copy()

    again = make_oracle(tmp_path)
    again.reload()
    np.testing.assert_array_equal(again.controller.get_weights(), weights)
    assert again.controller.baseline == oracle.controller.baseline
    assert again.controller.step == oracle.controller.step
    assert again._accuracy_baseline == oracle._accuracy_baseline
    assert again.rejected() == oracle.rejected()
    assert again.num_rejected == oracle.num_rejected
    # The trial that was running is retried with the same values.
    retried = again.create_trial("tuner0")
    assert retried.trial_id == running.trial_id
    assert retried.hyperparameters.values == running.hyperparameters.values
    # Both end it alike and continue identically from there.
    for o, trial in ((again, retried), (oracle, running)):
        o.update_trial(trial.trial_id, {"score": 0.8})
        trial.status = "COMPLETED"
        o.end_trial(trial)
    assert (again.create_trial("tuner0").hyperparameters.values
            == oracle.create_trial("tuner0").hyperparameters.values)
    np.testing.assert_array_equal(
        again.controller.get_weights(), oracle.controller.get_weights()
    )


def test_state_stays_json(tmp_path):
    oracle = make_oracle(tmp_path)
    run_trial(oracle, 0.5)
    json.dumps(oracle.get_state())
    files = os.listdir(os.path.join(tmp_path, "project"))
    assert [f for f in files if f.startswith("controller-")] == [
        oracle._controller_file
    ]


def test_corrupted_oracle_json_names_the_file(tmp_path):
    oracle = make_oracle(tmp_path)
    run_trial(oracle, 0.5)
    path = os.path.join(tmp_path, "project", "oracle.json")
    with open(path, "w") as f:
        f.write('{"ongoing_trials": ')
    with pytest.raises(ValueError, match="oracle.json"):
        make_oracle(tmp_path).reload()


def test_corrupted_controller_weights_name_the_file(tmp_path):
    oracle = make_oracle(tmp_path)
    run_trial(oracle, 0.5)
    path = os.path.join(tmp_path, "project", oracle._controller_file)
    with open(path, "wb") as f:
        f.write(b"not a numpy archive")
    with pytest.raises(ValueError, match="controller-"):
        make_oracle(tmp_path).reload()


def test_new_hyperparameters_become_new_decisions(tmp_path):
    oracle = make_oracle(tmp_path, gate=lambda v: FakeReport(1.0))
    run_trial(oracle, 0.5)
    assert oracle.controller.num_decisions == 2
    grown = space()
    grown.Float("lr", 1e-4, 1e-2, sampling="log")
    oracle.update_space(grown)
    trial = run_trial(oracle, 0.5)
    assert oracle.controller.num_decisions == 3
    assert 1e-4 <= trial.hyperparameters.values["lr"] <= 1e-2


def test_empty_space_is_a_clear_error(tmp_path):
    oracle = make_oracle(tmp_path, hps=kt.HyperParameters())
    with pytest.raises(kt.errors.FatalValueError, match="empty"):
        oracle.create_trial("tuner0")


@pytest.mark.parametrize("spec", [0, -1.0, math.nan, math.inf, "5"])
def test_bad_spec_is_a_clear_error(tmp_path, spec):
    with pytest.raises(ValueError, match="latency_spec_ms"):
        make_oracle(tmp_path, latency_spec_ms=spec)


def test_unknown_reward_rule_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="mnas_soft"):
        make_oracle(tmp_path, reward="mnas")


def test_decision_values_cover_every_type():
    def values(register, *args):
        hps = kt.HyperParameters()
        register(hps)
        return decisions.decision_values(hps.space[0], *args)

    assert values(lambda h: h.Choice("c", ["x", "y"])) == ["x", "y"]
    assert values(lambda h: h.Boolean("flag")) == [False, True]
    assert values(lambda h: h.Fixed("f", 3)) == [3]
    assert values(lambda h: h.Int("units", 32, 128, step=32)) == [
        32, 64, 96, 128
    ]
    assert values(lambda h: h.Int("n", 1, 3)) == [1, 2, 3]
    assert values(lambda h: h.Int("big", 1, 1000)) == [
        int(v) for v in np.linspace(1, 1000, 10)
    ]
    logs = values(lambda h: h.Float("lr", 1e-4, 1e-1, sampling="log"), 4)
    np.testing.assert_allclose(logs, [1e-4, 1e-3, 1e-2, 1e-1])
    assert values(lambda h: h.Float("drop", 0.0, 0.5, step=0.25)) == [
        0.0, 0.25, 0.5
    ]


def test_max_episodes_counts_trials_and_rejections(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=50, max_episodes=6)
    while run_trial(oracle, 0.5).status != "STOPPED":
        pass
    assert len(oracle.trials) + oracle.num_rejected == 6
    assert oracle.episodes_left() == 0


def test_trials_record_their_wall_time(tmp_path):
    oracle = make_oracle(tmp_path, gate=lambda v: FakeReport(1.0))
    trial = run_trial(oracle, 0.5)
    start, end = oracle.trial_times[trial.trial_id]
    assert end >= start
    assert gate_module.metric(trial, "wall_time_s") == end - start


def test_a_child_completed_by_the_gate_into_a_tried_one_is_not_retrained(
    tmp_path,
):
    def completing_gate(values):
        values.setdefault("b", 5)  # As a build that registers a new hp.
        return FakeReport(1.0)

    hps = kt.HyperParameters()
    hps.Choice("a", [1, 2])
    oracle = make_oracle(tmp_path, gate=completing_gate, hps=hps,
                         max_rejections=30)
    statuses = [run_trial(oracle, 0.5).status for _ in range(3)]
    assert statuses == ["COMPLETED", "COMPLETED", "STOPPED"]
    trained = [t.hyperparameters.values for t in oracle.trials.values()]
    assert sorted(v["a"] for v in trained) == [1, 2]
    assert all(v["b"] == 5 for v in trained)
