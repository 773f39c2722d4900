"""Hostile input to FNAS gets an error that names the problem.

Oracle-level checks (spec, empty space, corrupt state) live in
oracle_test.py; these go through the tuner as a user's script would.
"""

import math
import os
import shutil

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import fnas_keras
from fnas_keras import data
from fnas_keras import finiteness
from fnas_keras import fpga


def build_model(hp):
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(hp.Choice("filters", [4, 8]), 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def make(directory, build=build_model, **options):
    args = dict(objective="val_accuracy", max_trials=1, device="xc7z020",
                latency_spec_ms=100.0, seed=1, directory=str(directory),
                project_name="p")
    args.update(options)
    return fnas_keras.FNAS(build, **args)


def search(tuner, x=None):
    xs, ys = data.load_arrays("digits", "train", limit=32)
    tuner.oracle.verbose = 0
    if x is not None:
        tuner.search(x, epochs=1, steps_per_epoch=1, verbose=0)
        return
    tuner.search(xs, ys, validation_data=(xs, ys), epochs=1, verbose=0)


def test_unknown_device_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError) as error:
        make(tmp_path, device="zc7020")
    assert "unknown device 'zc7020'" in str(error.value)
    assert "xc7z020" in str(error.value)


@pytest.mark.parametrize("bits", [0, 4, 64, "16"])
def test_bits_outside_8_16_32_list_the_allowed(tmp_path, bits):
    with pytest.raises(ValueError, match="8, 16, 32"):
        make(tmp_path, bits=bits)


@pytest.mark.parametrize("spec", [0, 0.0, -2.0, math.nan])
def test_spec_zero_negative_or_nan(tmp_path, spec):
    with pytest.raises(ValueError, match="latency_spec_ms"):
        make(tmp_path, latency_spec_ms=spec)


def test_empty_search_space(tmp_path):
    def no_hyperparameters(hp):
        return build_model(kt.HyperParameters())

    tuner = make(tmp_path, build=no_hyperparameters)
    with pytest.raises(kt.errors.FatalValueError, match="empty"):
        search(tuner)


class Mystery(keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2.0


def test_unknown_layer_stops_naming_it_and_the_supported(tmp_path):
    def with_mystery(hp):
        model = build_model(hp)
        return keras.Sequential([keras.Input((28, 28, 1)), Mystery(),
                                 *model.layers])

    tuner = make(tmp_path, build=with_mystery)
    with pytest.raises(kt.errors.FatalValueError) as error:
        search(tuner)
    message = str(error.value)
    assert "'Mystery'" in message
    assert "Conv2D" in message and "Dense" in message
    assert tuner.oracle.trials == {}


def test_no_input_shape_says_how_to_give_one(tmp_path):
    def no_input(hp):
        return keras.Sequential([
            keras.layers.Conv2D(hp.Choice("filters", [4, 8]), 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ])

    def batches():
        xs, ys = data.load_arrays("digits", "train", limit=8)
        while True:
            yield xs, ys

    tuner = make(tmp_path, build=no_input)
    with pytest.raises(kt.errors.FatalValueError) as error:
        search(tuner, x=batches())
    assert "input_shape=" in str(error.value)
    assert "keras.Input" in str(error.value)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A finished one-trial search to corrupt copies of."""
    directory = tmp_path_factory.mktemp("done")
    search(make(directory))
    return directory


def corrupt(project, tmp_path, name):
    directory = tmp_path / "copy"
    shutil.copytree(project, directory)
    folder = directory / "p"
    if name == "controller":
        name = next(f for f in os.listdir(folder)
                    if f.startswith("controller-"))
    with open(folder / name, "wb") as f:
        f.write(b'{"truncated": ')
    return directory, name


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["oracle.json", "controller", "tuner0.json",
             os.path.join("trial_0", "trial.json")]
)
def test_corrupt_state_on_resume_names_the_file(project, tmp_path, name):
    directory, name = corrupt(project, tmp_path, name)
    with pytest.raises(ValueError) as error:
        make(directory, overwrite=False)
    assert name in str(error.value)


def test_devices_are_named_in_spec_error_without_device(tmp_path):
    with pytest.raises(ValueError) as error:
        make(tmp_path, device=None)
    assert "needs a device" in str(error.value)
    assert all(name in str(error.value) for name in fpga.devices())


def nan_digits(index):
    x, y = data.load_arrays("digits", "train", limit=32)
    x = x.copy()
    x[index] = np.nan
    return x, y


def test_one_nan_pixel_stops_before_the_first_child(tmp_path):
    x, y = nan_digits((5, 14, 14, 0))
    tuner = make(tmp_path)
    with pytest.raises(ValueError) as error:
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert str(error.value).startswith(
        "x has 1 non-finite value (NaN or infinity) out of 25088, the first "
        "at index [5, 14, 14, 0]"
    )
    assert tuner.oracle.trials == {}


@pytest.mark.parametrize("batch, name", [(0, "validation x"), (3, "x")])
def test_nan_in_a_dataset_stops_the_search_naming_the_batch(
    tmp_path, batch, name
):
    x, y = nan_digits((8 * batch + 3, 3, 4, 0))
    bad = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    good = tf.data.Dataset.from_tensor_slices(
        data.load_arrays("digits", "train", limit=32)
    ).batch(8)
    train, validation = (good, bad) if name == "validation x" else (bad, good)
    tuner = make(tmp_path)
    tuner.oracle.verbose = 0
    with pytest.raises(finiteness.NonFiniteDataError) as error:
        tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    assert str(error.value).startswith(
        f"{name} in batch {batch} has 1 non-finite value (NaN or infinity) "
        "out of 6272, the first at index [3, 3, 4, 0]"
    )
    # Batch 0 is checked before any child; batch 3 during the first fit.
    assert len(tuner.oracle.trials) == (batch > 0)
    assert all(t.status != "COMPLETED" for t in tuner.oracle.trials.values())
