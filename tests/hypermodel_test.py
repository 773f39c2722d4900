"""FNASHyperModel presets and overrides."""

import random

import keras
import keras_tuner as kt
import pytest

from fnas_keras import fpga
from fnas_keras import hypermodel
from fnas_keras import keras_reader


def build(preset="mnist", values=None, **kwargs):
    model_space = hypermodel.FNASHyperModel(preset, **kwargs)
    hp = kt.HyperParameters()
    hp.values.update(values or {})
    return model_space, hp, model_space.build(hp)


def test_mnist_preset_is_the_papers_space():
    space, hp, model = build()
    assert space.space.size == 3**8 == 6561
    names = [h.name for h in hp.space]
    assert names == [
        f"conv_{i}/{kind}" for i in range(4) for kind in ("kernel", "filters")
    ]
    for h in hp.space:
        expected = [5, 7, 14] if h.name.endswith("kernel") else [9, 18, 36]
        assert list(h.values) == expected
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
    assert len(convs) == 4
    for conv in convs:
        config = conv.get_config()
        assert config["padding"] == "same"
        assert config["strides"] == (1, 1)
        assert config["activation"] == "relu"
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    kinds = [type(x).__name__ for x in model.layers[-2:]]
    assert kinds == ["GlobalAveragePooling2D", "Dense"]


def test_values_reach_the_layers():
    values = {"conv_0/kernel": 14, "conv_0/filters": 36}
    _, _, model = build(values=values)
    conv = model.layers[0]
    assert conv.kernel_size == (14, 14)
    assert conv.filters == 36


def test_cifar10_preset_searches_strides_with_batchnorm():
    space, hp, model = build("cifar10")
    assert "conv_0/stride" in hp
    assert list(hp.space[2].values) == [1, 2]
    assert any(
        isinstance(x, keras.layers.BatchNormalization) for x in model.layers
    )
    assert isinstance(model.layers[-2], keras.layers.Flatten)
    assert model.input_shape == (None, 32, 32, 3)


def test_imagenet_preset_has_a_stride_two_stem():
    _, _, model = build("imagenet")
    stem = model.layers[0]
    assert stem.strides == (2, 2)
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)


def test_overrides():
    space, hp, model = build(
        "cifar10", num_layers=2, kernel_sizes=[3], filters=[8, 16],
        strides=[1], input_shape=(16, 16, 1), num_classes=4,
    )
    assert space.space.size == 4
    assert "conv_0/stride" not in hp
    assert model.output_shape == (None, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(preset="mnsit"), "unknown preset 'mnsit'"),
        (dict(num_layers=0), "num_layers"),
        (dict(filters=[]), "filters"),
        (dict(kernel_sizes=[3, 3]), "repeated"),
        (dict(input_shape=(28, 28)), "input_shape"),
        (dict(learning_rate=-1.0), "learning_rate"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hypermodel.FNASHyperModel(**kwargs)


# The fast path: layer dicts from values equal those of the built child.


def sampled_values(model_space, count, seed):
    """`count` random children of the space, plus its first and last."""
    rng = random.Random(seed)
    choices = model_space.choices()
    yield {name: values[0] for name, values in choices}
    yield {name: values[-1] for name, values in choices}
    for _ in range(count):
        yield {name: rng.choice(values) for name, values in choices}


def assert_fast_path_equals_build(model_space, values, device="zcu102"):
    hp = kt.HyperParameters()
    hp.values = dict(values)
    built = keras_reader.layer_dicts(model_space.build(hp))
    fast = model_space.layer_dicts(values)
    assert fast == built
    for mapping in fpga.MAPPINGS:
        assert (fpga.analyze(fast, device, mapping=mapping).to_dict()
                == fpga.analyze(built, device, mapping=mapping).to_dict())


@pytest.mark.parametrize("preset", sorted(hypermodel.PRESETS))
def test_fast_path_equals_the_built_child_on_every_preset(preset):
    model_space = hypermodel.FNASHyperModel(preset)
    for values in sampled_values(model_space, 3, seed=len(preset)):
        assert_fast_path_equals_build(model_space, values)


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("mnist", dict(num_layers=2, kernel_sizes=[3, 9], filters=[1, 5],
                       input_shape=(13, 11, 2), num_classes=3)),
        ("cifar10", dict(num_layers=3, strides=[1, 2, 3],
                         input_shape=(17, 9, 1), num_classes=7)),
        ("imagenet", dict(num_layers=2, filters=[8], kernel_sizes=[1, 5],
                          input_shape=(33, 35, 3), num_classes=5)),
    ],
)
def test_fast_path_equals_the_built_child_with_overrides(preset, overrides):
    model_space = hypermodel.FNASHyperModel(preset, **overrides)
    for values in sampled_values(model_space, 2, seed=1):
        assert_fast_path_equals_build(model_space, values, "xc7z020")


def test_missing_values_take_the_defaults_the_build_gives():
    model_space = hypermodel.FNASHyperModel("cifar10", num_layers=2)
    partial = {"conv_1/kernel": 7, "conv_1/stride": 2}
    hp = kt.HyperParameters()
    hp.values = dict(partial)
    model = model_space.build(hp)
    assert model_space.complete(partial) == hp.values
    assert model_space.layer_dicts(partial) == keras_reader.layer_dicts(model)


def test_choices_are_the_hyperparameters_build_declares():
    model_space = hypermodel.FNASHyperModel("cifar10", num_layers=2)
    hp = kt.HyperParameters()
    model_space.build(hp)
    assert [(h.name, tuple(h.values)) for h in hp.space] == (
        model_space.choices())


def test_child_key_tells_children_and_spaces_apart():
    small = hypermodel.FNASHyperModel("mnist", num_layers=2)
    values = small.complete({})
    other = dict(values, **{"conv_1/filters": 36})
    assert small.child_key(values) == small.child_key({})
    assert small.child_key(values) != small.child_key(other)
    wide = hypermodel.FNASHyperModel("mnist", num_layers=2, filters=[9, 99])
    assert small.child_key(values) != wide.child_key(values)


def test_fast_path_only_for_the_presets_own_build():
    class Custom(hypermodel.FNASHyperModel):
        def build(self, hp):
            return super().build(hp)

    preset = hypermodel.FNASHyperModel("mnist")
    assert hypermodel.fast_path(preset) is preset
    assert hypermodel.fast_path(Custom("mnist")) is None
    assert hypermodel.fast_path(kt.HyperModel()) is None


def counting_builds(model_space):
    builds = []
    build = model_space.build

    def counted(hp):
        builds.append(dict(hp.values))
        return build(hp)

    model_space.build = counted
    return builds


def test_the_tuner_trains_the_child_its_gate_judged(tmp_path):
    import fnas_keras

    model_space = hypermodel.FNASHyperModel("cifar10", num_layers=3)
    builds = counting_builds(model_space)
    tuner = fnas_keras.FNAS(model_space, objective="val_accuracy",
                            device="zcu102", latency_spec_ms=100.0,
                            directory=str(tmp_path), overwrite=True)
    tuner._populate_initial_space()
    builds.clear()
    values = {"conv_1/kernel": 7, "conv_2/stride": 2}
    report = tuner._gate(values)
    assert not builds, "a preset child is judged without a Keras build"
    assert values == model_space.complete(values)
    hp = tuner.oracle.get_space()  # what the trial is built from
    hp.values = dict(values)
    trained = model_space.build(hp)
    assert hp.values == values
    assert (keras_reader.analyze(trained, "zcu102").to_dict()
            == report.to_dict())


def test_the_gate_builds_a_child_whose_space_the_oracle_lacks(tmp_path):
    import fnas_keras

    model_space = hypermodel.FNASHyperModel("mnist", num_layers=2)
    builds = counting_builds(model_space)
    tuner = fnas_keras.FNAS(model_space, objective="val_accuracy",
                            device="xc7z020", latency_spec_ms=100.0,
                            directory=str(tmp_path), overwrite=True)
    values = {}
    report = tuner._gate(values)
    assert len(builds) == 1
    assert values == model_space.complete({})
    assert {h.name for h in tuner.oracle.hyperparameters.space} == set(values)
    assert report.to_dict() == fpga.analyze(
        model_space.layer_dicts(values), "xc7z020").to_dict()
