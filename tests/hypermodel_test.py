"""FNASHyperModel presets and overrides."""

import keras
import keras_tuner as kt
import pytest

from fnas_keras import hypermodel


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
