"""Tests for fnas_keras.keras_reader: Keras models -> layer dicts."""

import keras
import pytest

import fnas_keras
from fnas_keras import fpga
from fnas_keras import keras_reader


def tiny(name="tiny", filters=4):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                            name=f"{name}_conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs, name=name)


def test_layer_dicts_of_a_sequential_model():
    model = keras.Sequential([keras.Input((8, 8, 2)),
                              keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(),
                              keras.layers.Dense(5)])
    dicts = keras_reader.layer_dicts(model)
    assert [d["class_name"] for d in dicts] == ["InputLayer", "Conv2D",
                                                "Flatten", "Dense"]
    assert dicts[1]["input_shape"] == (None, 8, 8, 2)
    assert dicts[1]["output_shape"] == (None, 6, 6, 4)
    assert dicts[1]["config"]["filters"] == 4
    assert [d["inbound"] for d in dicts] == [[], [0], [1], [2]]


def test_layer_dicts_of_a_functional_model_with_branches():
    inputs = keras.Input((8, 8, 4))
    a = keras.layers.Conv2D(4, 1, name="a")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(inputs)
    added = keras.layers.Add(name="add")([a, b])
    cat = keras.layers.Concatenate(name="cat")([added, inputs])
    dicts = keras_reader.layer_dicts(keras.Model(inputs, cat))
    index = {d["name"]: i for i, d in enumerate(dicts)}
    assert dicts[index["add"]]["inbound"] == [index["a"], index["b"]]
    assert dicts[index["add"]]["input_shape"] == [(None, 8, 8, 4)] * 2
    assert dicts[index["cat"]]["inbound"] == [index["add"], 0]
    assert dicts[index["cat"]]["output_shape"] == (None, 8, 8, 8)


def test_nested_models_are_flattened_and_wired():
    inner = keras.Sequential([keras.layers.Conv2D(4, 3, padding="same"),
                              keras.layers.ReLU()], name="inner")
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(2, 1, name="first")(inputs)
    x = inner(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    dicts = keras_reader.layer_dicts(keras.Model(inputs, outputs))
    names = [d["class_name"] for d in dicts]
    assert names == ["InputLayer", "Conv2D", "Conv2D", "ReLU", "Dense"]
    assert dicts[2]["inbound"] == [1]
    assert dicts[4]["inbound"] == [3]
    report = keras_reader.analyze(keras.Model(inputs, outputs), "xc7z020")
    assert report.latency_ms > 0


def test_analyze_accepts_a_keras_model():
    report = keras_reader.analyze(tiny(), "zcu102", bits=8)
    assert [r.class_name for r in report.layers] == [
        "InputLayer", "Conv2D", "GlobalAveragePooling2D", "Dense"]


def test_analyze_takes_layer_dicts_as_fpga_analyze_does():
    layers = keras_reader.layer_dicts(tiny())
    assert (keras_reader.analyze(layers, "xc7z020", mapping="shared")
            .to_dict() == fpga.analyze(layers, "xc7z020",
                                       mapping="shared").to_dict())


def test_the_package_top_level_analyzes_a_keras_model():
    model = tiny()
    report = fnas_keras.analyze(model, "xc7z020", bits=8)
    assert report.to_dict() == fpga.analyze(
        keras_reader.layer_dicts(model), "xc7z020", bits=8).to_dict()


def test_an_unbuilt_model_is_named():
    unbuilt = keras.Sequential([keras.layers.Dense(2)], name="loose")
    assert not keras_reader.has_inputs(unbuilt)
    with pytest.raises(ValueError, match="model 'loose' is not built"):
        keras_reader.layer_dicts(unbuilt)
    assert keras_reader.has_inputs(tiny())
