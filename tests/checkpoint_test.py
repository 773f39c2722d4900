"""A trial's checkpoint and build config are written atomically."""

import os

import keras
import keras_tuner as kt
import numpy as np
import pytest

import fnas_keras
from fnas_keras import checkpoint
from fnas_keras import data


def small_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    return model


def test_a_write_that_dies_midway_leaves_the_old_checkpoint(tmp_path):
    path = str(tmp_path / "checkpoint.weights.h5")
    model = small_model()
    callback = checkpoint.AtomicSaveBestEpoch(
        kt.Objective("loss", "min"), path
    )
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 1.0})
    with open(path, "rb") as f:
        before = f.read()

    def torn(filepath):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF half a file")
        raise KeyboardInterrupt("killed mid-write")

    model.save_weights = torn
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(1, {"loss": 0.5})
    with open(path, "rb") as f:
        assert f.read() == before
    assert os.listdir(tmp_path) == ["checkpoint.weights.h5"]
    fresh = small_model()
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.get_weights()[0],
                                  model.get_weights()[0])


def test_a_search_writes_loadable_files_and_no_temporaries(
    tmp_path, monkeypatch
):
    saves = []
    save = checkpoint.AtomicSaveBestEpoch._save_model

    def spy(self):
        saves.append(self.filepath)
        save(self)

    monkeypatch.setattr(checkpoint.AtomicSaveBestEpoch, "_save_model", spy)
    def build(hp):
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(hp.Choice("filters", [2, 4]), 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    x, y = data.load_arrays("digits", "train", limit=32)
    tuner = fnas_keras.FNAS(build, objective="val_accuracy", max_trials=1,
                            seed=1, directory=str(tmp_path),
                            project_name="p")
    tuner.oracle.verbose = 0
    tuner.search(x, y, validation_data=(x, y), epochs=2, verbose=0)
    trial_dir = tmp_path / "p" / "trial_0"
    assert saves and saves[0].startswith(str(trial_dir))
    assert sorted(os.listdir(trial_dir)) == [
        "build_config.json", "checkpoint.weights.h5", "trial.json"
    ]
    best = tuner.get_best_models(1)[0]
    assert best.predict(x[:2], verbose=0).shape == (2, 10)
