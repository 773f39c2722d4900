"""Children that fail (build error, NaN loss, out of memory) end as failed
trials with the reason recorded; the controller is penalised and the search
goes on, without training a failing architecture twice."""

import json
import math
import os

import keras
import keras_tuner as kt
import pytest
import tensorflow as tf

import fnas_keras
from fnas_keras import data
from fnas_keras import oracle as oracle_module
from fnas_keras import reward
from tests import finiteness_test
from tests import oracle_test

MODES = ("ok", "build", "nan", "oom")
REASONS = {
    "build": "build exploded",
    "nan": "loss is NaN at epoch 1",
    "oom": "ResourceExhaustedError",
}


def nan_loss(y_true, y_pred):
    return keras.ops.mean(y_pred) * math.nan


def build_model(hp):
    """A tiny CNN whose "mode" decides how (or whether) it fails."""
    mode = hp.Choice("mode", MODES)
    units = hp.Choice("units", [4, 8])
    if mode == "build":
        raise ValueError("build exploded")
    loss = nan_loss if mode == "nan" else "sparse_categorical_crossentropy"
    model = tiny_model(units, loss)
    model.oom = mode == "oom"
    return model


def tiny_model(units, loss):
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(units, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", loss, metrics=["accuracy"])
    return model


class OutOfMemory(keras.callbacks.Callback):
    """Raises what TensorFlow raises when a model does not fit in memory."""

    def on_train_begin(self, logs=None):
        if getattr(self.model, "oom", False):
            raise tf.errors.ResourceExhaustedError(
                None, None, "OOM when allocating tensor of shape [1e9]"
            )


def search(directory, build=build_model, **options):
    x, y = data.load_arrays("digits", "train", limit=64)
    tuner = fnas_keras.FNAS(
        build,
        objective="val_accuracy",
        device="xc7z020",
        latency_spec_ms=1000.0,
        seed=1,
        directory=str(directory),
        project_name="failures",
        **options,
    )
    tuner.oracle.verbose = 0
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=32,
                 callbacks=[OutOfMemory()], verbose=0)
    return tuner


@pytest.mark.slow
def test_failing_children_are_penalised_and_never_retrained(
    tmp_path, monkeypatch
):
    settled = []
    trained_reward = oracle_module.FNASOracle._trained_reward

    def spy(self, trial, update_baseline):
        value = trained_reward(self, trial, update_baseline)
        if update_baseline:
            settled.append((trial.trial_id, value))
        return value

    monkeypatch.setattr(oracle_module.FNASOracle, "_trained_reward", spy)
    # More trials than the space has children: the search can only end by
    # finding every architecture tried, failing ones included.
    tuner = search(tmp_path, max_trials=20, max_rejections=60,
                   max_consecutive_failed_trials=None)
    trials = list(tuner.oracle.trials.values())
    values = [json.dumps(t.hyperparameters.values, sort_keys=True)
              for t in trials]
    assert len(values) == len(set(values)) == len(MODES) * 2
    penalty = reward.rejected("fnas", math.inf, 1000.0)
    for trial in trials:
        mode = trial.hyperparameters.values["mode"]
        if mode == "ok":
            assert trial.status == "COMPLETED"
            continue
        assert trial.status == "FAILED"
        assert REASONS[mode] in trial.message
        assert (trial.trial_id, penalty) in settled
    # Each trial rewarded the controller exactly once.
    assert sorted(t for t, _ in settled) == sorted(tuner.oracle.trials)


@pytest.mark.slow
def test_failures_in_a_row_stop_the_search_with_the_reason(tmp_path):
    def always_fails(hp):
        return tiny_model(hp.Choice("units", [4, 8, 16, 32]), nan_loss)

    with pytest.raises(RuntimeError, match="(?s)consecutive.*loss is NaN"):
        search(tmp_path, build=always_fails, max_trials=10)
    # The failures were saved before the stop: a resume does not retry them.
    project = os.path.join(tmp_path, "failures")
    tuner = fnas_keras.FNAS(
        always_fails, objective="val_accuracy", max_trials=10,
        directory=str(tmp_path), project_name="failures", overwrite=False,
    )
    assert [t.status for t in tuner.oracle.trials.values()] == ["FAILED"] * 3
    assert tuner.oracle._retry_queue == []
    assert tuner.oracle._pending == {}  # Each failure was penalised.
    assert os.path.exists(os.path.join(project, "oracle.json"))


def test_nan_objective_fails_the_trial_and_says_so(tmp_path):
    oracle = oracle_test.make_oracle(
        tmp_path, gate=lambda v: oracle_test.FakeReport(10.0)
    )
    trial = oracle_test.run_trial(oracle, math.nan)
    assert trial.status == "FAILED"
    assert trial.message == "objective score is NaN"
    saved = kt.engine.trial.Trial.load(os.path.join(
        tmp_path, "project", f"trial_{trial.trial_id}", "trial.json"
    ))
    assert saved.message == "objective score is NaN"


@pytest.mark.slow
def test_nan_weights_with_a_finite_loss_fail_the_trial(tmp_path, monkeypatch):
    settled = []
    trained_reward = oracle_module.FNASOracle._trained_reward

    def spy(self, trial, update_baseline):
        value = trained_reward(self, trial, update_baseline)
        if update_baseline:
            settled.append((trial.trial_id, value))
        return value

    monkeypatch.setattr(oracle_module.FNASOracle, "_trained_reward", spy)

    def diverges(hp):
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            finiteness_test.NanGradient(),
            keras.layers.Conv2D(hp.Choice("units", [4, 8]), 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    x, y = data.load_arrays("digits", "train", limit=64)
    # Plain NAS: the FPGA model does not know the test's custom layer.
    tuner = fnas_keras.FNAS(
        diverges, objective="val_accuracy", max_trials=4, max_rejections=30,
        max_consecutive_failed_trials=None, seed=1,
        directory=str(tmp_path), project_name="diverges",
    )
    tuner.oracle.verbose = 0
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=32,
                 verbose=0)
    trials = list(tuner.oracle.trials.values())
    units = sorted(t.hyperparameters.values["units"] for t in trials)
    assert units == [4, 8], "each architecture is tried once, not retried"
    penalty = reward.failed(tuner.oracle.reward_rule)
    for trial in trials:
        assert trial.status == "FAILED"
        assert "nan_gradient/w has 1 non-finite value " in trial.message
        assert (trial.trial_id, penalty) in settled
