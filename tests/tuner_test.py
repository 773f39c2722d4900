"""FNAS as a drop-in tuner: a tiny real search on the offline digits data."""

import keras
import keras_tuner as kt
import pytest
import tiny_cnn

import fnas_keras
from fnas_keras import data

SPEC_MS = 0.27


def build_model(hp):
    """A model function written for kt.RandomSearch: no Input layer, an Int
    loop count, Int with step, Choice, Boolean and a log Float with no step.
    """
    model = keras.Sequential()
    tiny_cnn.add_conv_stack(model, hp, max_layers=3)
    if hp.Boolean("pool"):
        model.add(keras.layers.MaxPooling2D())
    learning_rate = hp.Float("lr", 1e-3, 1e-2, sampling="log")
    return tiny_cnn.finish(model, keras.optimizers.Adam(learning_rate))


def run_script(tuner_class, directory, **tuner_args):
    """The user's script; only the tuner class and its arguments change."""
    x, y = data.load_arrays("digits", "train", limit=256)
    xv, yv = data.load_arrays("digits", "validation", limit=128)
    tuner = tuner_class(
        build_model,
        objective="val_accuracy",
        directory=str(directory),
        project_name="digits",
        overwrite=True,
        **tuner_args,
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, batch_size=64,
                 verbose=0)
    return tuner


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Runs one small FNAS search and records every model that was fitted."""
    fits = []
    original = keras.Model.fit

    def spy(model, *args, **kwargs):
        fits.append(model)
        return original(model, *args, **kwargs)

    keras.Model.fit = spy
    try:
        tuner = run_script(
            fnas_keras.FNAS,
            tmp_path_factory.mktemp("fnas"),
            max_trials=4,
            device="xc7z020",
            latency_spec_ms=SPEC_MS,
            seed=2,
        )
    finally:
        keras.Model.fit = original
    return tuner, fits


@pytest.mark.slow
def test_random_search_script_runs_unchanged_with_fnas(tmp_path, fitted):
    baseline = run_script(kt.RandomSearch, tmp_path, max_trials=1)
    assert len(baseline.oracle.trials) == 1
    tuner, _ = fitted
    assert len(tuner.oracle.trials) == 4


@pytest.mark.slow
def test_every_trained_child_meets_the_spec(fitted):
    tuner, fits = fitted
    assert len(fits) == 4
    for model in fits:
        ok, report = tuner.constraint.check(model)
        assert ok and report.latency_ms <= SPEC_MS
    for row in tuner.trials_table():
        assert row["status"] == "COMPLETED"
        assert 0 < row["latency_ms"] <= SPEC_MS
        assert row["dsp_used"] > 0 and row["bram18_used"] > 0


@pytest.mark.slow
def test_no_rejected_child_was_fitted(fitted):
    tuner, fits = fitted
    rejected = tuner.rejected()
    assert rejected, "this space and spec must reject some children"
    trained = [row["values"] for row in tuner.trials_table()]
    for record in rejected:
        assert record["latency_ms"] > SPEC_MS
        assert record["values"] not in trained
    fitted_latencies = [tuner.constraint.check(m)[1].latency_ms for m in fits]
    assert max(fitted_latencies) <= SPEC_MS


@pytest.mark.slow
def test_results_show_latency(fitted, capsys):
    tuner, _ = fitted
    tuner.results_summary(2)
    out = capsys.readouterr().out
    assert "latency_ms" in out and "xc7z020" in out
    best = tuner.get_best_hyperparameters(1)[0]
    assert tuner.latency_report(best).latency_ms <= SPEC_MS
    model = tuner.get_best_models(1)[0]
    assert model.output_shape[-1] == 10


def test_spec_without_device_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs a device"):
        fnas_keras.FNAS(build_model, objective="val_accuracy",
                        latency_spec_ms=1.0, directory=str(tmp_path))


def test_unknown_device_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown device 'zc7020'"):
        fnas_keras.FNAS(build_model, objective="val_accuracy",
                        device="zc7020", latency_spec_ms=1.0,
                        directory=str(tmp_path))


@pytest.mark.parametrize("bits", [4, 12, 64])
def test_bad_bits_are_a_clear_error(tmp_path, bits):
    with pytest.raises(ValueError, match=f"{bits}"):
        fnas_keras.FNAS(build_model, objective="val_accuracy",
                        device="xc7z020", latency_spec_ms=1.0, bits=bits,
                        directory=str(tmp_path))


@pytest.mark.slow
def test_controller_progress_is_in_tensorboard(fitted):
    from tensorboard.backend.event_processing import event_accumulator

    tuner, _ = fitted
    log = event_accumulator.EventAccumulator(
        f"{tuner.project_dir}/controller"
    ).Reload()
    tags = set(log.Tags()["tensors"])
    assert {"controller/reward", "controller/baseline", "controller/entropy",
            "search/rejection_rate", "search/best_feasible_score"} <= tags
    rewards = log.Tensors("controller/reward")
    assert len(rewards) == tuner.oracle.controller.step


def test_placeholder_weights_build_the_same_layers_cheaply():
    from fnas_keras import gate
    from fnas_keras import keras_reader

    hp = kt.HyperParameters()
    hp.values.update({"num_layers": 2, "pool": True})
    normal = build_model(hp)
    normal.build((None, 28, 28, 1))
    with gate.placeholder_weights():
        placeholder = build_model(hp)
        placeholder.build((None, 28, 28, 1))
    assert all(not w.numpy().any() for w in placeholder.weights)
    assert any(w.numpy().any() for w in normal.weights)
    strip = [{k: v for k, v in d.items() if k != "name"}
             for d in keras_reader.layer_dicts(normal)]
    same = [{k: v for k, v in d.items() if k != "name"}
            for d in keras_reader.layer_dicts(placeholder)]
    for a, b in zip(strip, same):
        a["config"].pop("name", None)
        b["config"].pop("name", None)
    assert strip == same
    fresh = build_model(hp)
    fresh.build((None, 28, 28, 1))
    assert any(w.numpy().any() for w in fresh.weights), "restored after"


def test_gate_completes_the_values_it_judged(tmp_path):
    tuner = fnas_keras.FNAS(build_model, objective="val_accuracy",
                            device="xc7z020", latency_spec_ms=1.0,
                            input_shape=(28, 28, 1), directory=str(tmp_path))
    values = {"num_layers": 3, "filters_0": 16, "kernel_0": 5,
              "pool": False, "lr": 1e-3}
    report = tuner._gate(values)
    # The loop's new layers took their defaults, and the trial gets them.
    assert values["filters_2"] == 4 and values["kernel_2"] == 3
    hp = tuner.oracle.get_space()
    hp.values = dict(values)
    _, again = tuner.constraint.check(build_model(hp))
    assert again.latency_ms == report.latency_ms


@pytest.mark.slow
def test_a_device_without_a_spec_measures_every_child(tmp_path):
    tuner = run_script(fnas_keras.FNAS, tmp_path, max_trials=2,
                       device="xc7z020", seed=1)
    assert tuner.rejected() == []
    rows = tuner.trials_table()
    assert len(rows) == 2
    assert all(row["latency_ms"] > 0 for row in rows)
