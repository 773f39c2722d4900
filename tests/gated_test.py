"""fnas_keras.gating.gated: the latency gate on keras-tuner's own tuners.

The space: two conv layers, kernel {5, 14} x filters {9, 36} each, 16
children on the xc7z020 at 16 bits, 0.26 to 21.7 ms; a 1.75 ms spec keeps 6.
"""

import json
import os
import shutil

import keras
import keras_tuner
import numpy as np
import pytest

import fnas_keras
from fnas_keras import constraint
from fnas_keras import data
from fnas_keras import gating as gated_module
from fnas_keras import hypermodel

SPEC_MS = 1.75


def space(kernels=(5, 14), filters=(9, 36)):
    return hypermodel.FNASHyperModel(
        "mnist", num_layers=2, kernel_sizes=kernels, filters=filters
    )


def make(tuner_class, path, spec=SPEC_MS, kernels=(5, 14), filters=(9, 36),
         **kwargs):
    kwargs.setdefault("overwrite", True)
    kwargs.setdefault("device", "xc7z020")
    return fnas_keras.gated(tuner_class)(
        space(kernels, filters),
        objective="val_accuracy",
        latency_spec_ms=spec,
        directory=str(path),
        project_name="p",
        seed=1,
        **kwargs,
    )


def latency(values):
    """The child's latency, computed here independently of the tuner."""
    hp = keras_tuner.HyperParameters()
    hp.values = {k: v for k, v in values.items() if not k.startswith("tuner")}
    gate = constraint.LatencyConstraint("xc7z020", SPEC_MS, bits=16)
    return gate.check(space().build(hp))[1].latency_ms


def architecture(values):
    return tuple(sorted((k, v) for k, v in values.items()
                        if not k.startswith("tuner/")))


def drive(tuner, accuracy, limit=50):
    """Runs the oracle as a search would, with made-up accuracies, no fit."""
    oracle = tuner.oracle
    if tuner.constraint is not None:
        oracle.gate = tuner._gate
    for _ in range(limit):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            return
        score = accuracy(trial.hyperparameters.values)
        oracle.update_trial(trial.trial_id, {"val_accuracy": score})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)


def by_filters(values):
    """Made up: more filters, more accuracy (pulls toward the rejected)."""
    return sum(v for k, v in values.items() if k.endswith("filters")) / 72


def rejected_log(path):
    with open(os.path.join(path, "p", "rejected.jsonl")) as f:
        return [json.loads(line) for line in f]


def trials(tuner):
    return list(tuner.oracle.trials.values())


# The oracles, without training ----------------------------------------


def test_random_search_trains_only_children_within_the_spec(tmp_path):
    tuner = make(keras_tuner.RandomSearch, tmp_path, max_trials=5)
    drive(tuner, by_filters)
    done = trials(tuner)
    assert len(done) == 5  # max_trials counts trained children only
    assert all(latency(t.hyperparameters.values) <= SPEC_MS for t in done)
    log = rejected_log(tmp_path)
    assert log and all(r["latency_ms"] > SPEC_MS for r in log)
    assert tuner.oracle.num_rejected == len(log)
    archs = [architecture(r["values"]) for r in log]
    assert len(set(archs)) == len(archs)
    assert not set(archs) & {architecture(t.hyperparameters.values)
                             for t in done}


def test_every_trial_records_the_latency_metrics(tmp_path):
    tuner = make(keras_tuner.RandomSearch, tmp_path, max_trials=3)
    drive(tuner, by_filters)
    for trial in trials(tuner):
        values = trial.hyperparameters.values
        got = trial.metrics.get_last_value("latency_ms")
        assert got == pytest.approx(latency(values))
        assert trial.metrics.get_last_value("dsp_used") > 0
        assert trial.metrics.get_last_value("bram18_used") > 0


def test_bayesian_is_told_rejected_children_are_bad(tmp_path):
    tuner = make(keras_tuner.BayesianOptimization, tmp_path, max_trials=6,
                 num_initial_points=2)
    proposals = []
    base = keras_tuner.oracles.BayesianOptimizationOracle.populate_space

    def spy(self, trial_id):
        response = base(self, trial_id)
        if response.get("values"):
            proposals.append(architecture(response["values"]))
        return response

    keras_tuner.oracles.BayesianOptimizationOracle.populate_space = spy
    try:
        drive(tuner, by_filters)
    finally:
        keras_tuner.oracles.BayesianOptimizationOracle.populate_space = base
    done = trials(tuner)
    assert len(done) == 6
    assert all(latency(t.hyperparameters.values) <= SPEC_MS for t in done)
    log = rejected_log(tmp_path)
    rejected = [architecture(r["values"]) for r in log]
    assert len(set(rejected)) == len(rejected)
    # Once rejected, a child is proposed again at most once more (the
    # oracle then replaces that proposal with a gated random draw).
    for arch in set(rejected):
        assert proposals.count(arch) <= 2
    # The process's data holds every rejected child at the worst score.
    x, y = tuner.oracle._vectorize_trials()
    assert len(x) == len(done) + len(log)
    assert np.all(y[-len(log):] == np.max(y))


def test_grid_search_steps_over_rejected_points_and_ends(tmp_path):
    # Defaults first: (14, 36, 14, 36), 21.7 ms, is over the spec.
    tuner = make(keras_tuner.GridSearch, tmp_path, max_trials=100,
                 kernels=(14, 5), filters=(36, 9))
    drive(tuner, by_filters)
    done = trials(tuner)
    archs = [architecture(t.hyperparameters.values) for t in done]
    assert len(done) == 6 == len(set(archs))  # all 6 children within spec
    assert all(latency(t.hyperparameters.values) <= SPEC_MS for t in done)
    assert len(rejected_log(tmp_path)) == 10


def test_hyperband_budget_counts_only_trained_children(tmp_path):
    tuner = make(keras_tuner.Hyperband, tmp_path, max_epochs=2, factor=2,
                 hyperband_iterations=1)
    drive(tuner, by_filters)
    done = trials(tuner)
    fresh = [t for t in done if "tuner/trial_id" not in
             t.hyperparameters.values]
    plain = make(keras_tuner.Hyperband, tmp_path / "plain", spec=None,
                 max_epochs=2, factor=2, hyperband_iterations=1,
                 device=None)
    drive(plain, by_filters)
    assert len(done) == len(trials(plain))  # the same budget of trials
    assert all(latency(t.hyperparameters.values) <= SPEC_MS for t in done)
    assert len({architecture(t.hyperparameters.values) for t in fresh}) \
        == len(fresh)
    for trial in done:
        assert trial.metrics.get_last_value("latency_ms") <= SPEC_MS


def test_a_user_oracle_is_asked_again_after_a_rejection(tmp_path):
    class Biggest(keras_tuner.Oracle):
        """Proposes children from the slowest down."""

        order = [(14, 36, 14, 36), (14, 36, 14, 9), (14, 9, 5, 9),
                 (5, 9, 5, 9)]

        def populate_space(self, trial_id):
            if not self.order:
                return {"status": "STOPPED", "values": None}
            k0, f0, k1, f1 = self.order.pop(0)
            return {"status": "RUNNING", "values": {
                "conv_0/kernel": k0, "conv_0/filters": f0,
                "conv_1/kernel": k1, "conv_1/filters": f1}}

    oracle = Biggest(objective="val_accuracy", max_trials=10)
    tuner = fnas_keras.gated(keras_tuner.Tuner)(
        oracle=oracle, hypermodel=space(), device="xc7z020",
        latency_spec_ms=SPEC_MS, directory=str(tmp_path), project_name="p",
        overwrite=True,
    )
    drive(tuner, by_filters)
    assert [t.hyperparameters.values["conv_0/kernel"]
            for t in trials(tuner)] == [14, 5]
    assert len(rejected_log(tmp_path)) == 2


def test_resume_neither_loses_nor_repeats_rejections(tmp_path):
    tuner = make(keras_tuner.RandomSearch, tmp_path, max_trials=3)
    drive(tuner, by_filters)
    project = tmp_path / "p"
    saved = tmp_path / "saved.json"
    shutil.copy(project / "oracle.json", saved)
    resumed = make(keras_tuner.RandomSearch, tmp_path, max_trials=5,
                   overwrite=False)
    drive(resumed, by_filters)
    before = len(rejected_log(tmp_path))
    # A kill before the last save: the oracle is as it was after trial 3,
    # the log has all rejections since, and its last line is torn.
    shutil.copy(saved, project / "oracle.json")
    for trial_dir in ("trial_3", "trial_4"):
        shutil.rmtree(project / trial_dir)
    with open(project / "rejected.jsonl", "a") as f:
        f.write('{"step": 99, "values": {"conv_0/ker')
    again = make(keras_tuner.RandomSearch, tmp_path, max_trials=5,
                 overwrite=False)
    drive(again, by_filters)
    log = rejected_log(tmp_path)
    archs = [architecture(r["values"]) for r in log]
    assert len(set(archs)) == len(archs) >= before
    assert len(trials(again)) == 5
    assert all(latency(t.hyperparameters.values) <= SPEC_MS
               for t in trials(again))


def test_bad_arguments_say_what_is_allowed(tmp_path):
    with pytest.raises(TypeError, match="keras-tuner Tuner class"):
        fnas_keras.gated(int)
    with pytest.raises(ValueError, match="unknown device"):
        make(keras_tuner.RandomSearch, tmp_path, device="zc7020")
    with pytest.raises(ValueError, match="needs a device"):
        make(keras_tuner.RandomSearch, tmp_path, device=None)
    with pytest.raises(ValueError, match="latency_spec_ms"):
        make(keras_tuner.RandomSearch, tmp_path, spec=-1.0)
    with pytest.raises(ValueError, match="display"):
        make(keras_tuner.RandomSearch, tmp_path, display="fancy")


def test_all_children_over_the_spec_stop_with_a_clear_error(tmp_path):
    tuner = make(keras_tuner.RandomSearch, tmp_path, spec=0.1,
                 max_rejections=5, max_trials=3)
    with pytest.raises(keras_tuner.errors.FatalValueError,
                       match="over the latency spec of 0.1 ms"):
        drive(tuner, by_filters)


def test_the_class_is_a_subclass_and_cached():
    cls = fnas_keras.gated(keras_tuner.Hyperband)
    assert issubclass(cls, keras_tuner.Hyperband)
    assert cls is fnas_keras.gated(keras_tuner.Hyperband)
    assert cls.__name__ == "GatedHyperband"
    assert fnas_keras.gated(cls) is cls
    assert issubclass(cls, gated_module.GatedTuner)


# Real searches, with a spy on fit --------------------------------------


@pytest.fixture
def fitted(monkeypatch):
    """Latencies of the children keras fits, measured from their layers."""
    seen = []
    fit = keras.Model.fit
    gate = constraint.LatencyConstraint("xc7z020", SPEC_MS, bits=16)

    def spy(self, *args, **kwargs):
        seen.append(gate.check(self)[1].latency_ms)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return seen


def search(tuner):
    x, y = data.load_arrays("digits", "train", limit=48)
    xv, yv = data.load_arrays("digits", "validation", limit=24)
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, batch_size=24,
                 verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("tuner_class, options, trained", [
    (keras_tuner.RandomSearch, {"max_trials": 3}, 3),
    (keras_tuner.BayesianOptimization,
     {"max_trials": 3, "num_initial_points": 2}, 3),
    (keras_tuner.GridSearch, {"max_trials": 100}, 6),
    (keras_tuner.Hyperband,
     {"max_epochs": 2, "factor": 2, "hyperband_iterations": 1}, None),
])
def test_no_child_over_the_spec_is_fitted(tmp_path, fitted, tuner_class,
                                          options, trained):
    tuner = make(tuner_class, tmp_path, display="lines", **options)
    search(tuner)
    done = trials(tuner)
    assert fitted and max(fitted) <= SPEC_MS
    assert len(fitted) == len(done)
    if trained is not None:
        assert len(done) == trained
    assert all(t.status == "COMPLETED" for t in done)
    assert all(t.metrics.get_last_value("latency_ms") <= SPEC_MS
               for t in done)
    assert tuner.oracle.num_rejected == len(rejected_log(tmp_path)) > 0
    best = tuner.get_best_models(1)[0]
    assert best is not None
