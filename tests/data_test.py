"""Tests for fnas_keras.data: the offline digits set and mocked TFDS sets.

Run: .venv/bin/python -m pytest -q tests/data_test.py
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from fnas_keras import data

TFDS_NAMES = [name for name in data.names() if name != "digits"]
MOCK_EXAMPLES = 5


def _first_batch(ds):
    images, labels = next(iter(ds))
    return images.numpy(), labels.numpy()


def _fake_imagenet_archives(root):
    manual = os.path.join(root, "downloads", "manual")
    os.makedirs(manual)
    for tar in data.IMAGENET_TARS:
        open(os.path.join(manual, tar), "wb").close()


def test_names_lists_the_offline_default_and_every_tfds_set():
    assert data.names()[0] == "digits"
    assert set(TFDS_NAMES) == {
        "mnist", "fashion_mnist", "cifar10", "cifar100", "imagenette",
        "imagenet_resized/32x32", "imagenet2012",
    }


def test_digits_batches_have_mnist_shape_and_unit_range():
    images, labels = _first_batch(data.load("digits", "train", batch_size=16))
    assert images.shape == (16, 28, 28, 1)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.max() > 0.5
    assert labels.dtype == np.int32 and labels.shape == (16,)


def test_digits_arrays_cover_ten_classes_in_an_80_20_split():
    x_train, y_train = data.load_arrays("digits", "train")
    x_val, y_val = data.load_arrays("digits", "validation")
    assert x_train.shape == (1437, 28, 28, 1)
    assert x_val.shape == (360, 28, 28, 1)
    assert set(y_train) == set(y_val) == set(range(10))
    assert data.info("digits").num_classes == 10


def test_digits_split_is_deterministic():
    x1, y1 = data.load_arrays("digits", "validation")
    data._digits_indices.cache_clear()
    x2, y2 = data.load_arrays("digits", "validation")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_digits_splits_are_disjoint_and_complete():
    train = set(data._digits_indices("train"))
    validation = set(data._digits_indices("validation"))
    assert not train & validation
    assert len(train | validation) == 1797


def test_digits_test_split_aliases_validation():
    _, y_val = data.load_arrays("digits", "validation")
    _, y_test = data.load_arrays("digits", "test")
    np.testing.assert_array_equal(y_val, y_test)


def test_limit_takes_the_first_examples():
    x, y = data.load_arrays("digits", "train", limit=10)
    x_all, y_all = data.load_arrays("digits", "train")
    assert x.shape[0] == 10
    np.testing.assert_array_equal(y, y_all[:10])
    ds = data.load("digits", "train", batch_size=4, limit=10)
    assert sum(int(labels.shape[0]) for _, labels in ds) == 10


def test_evaluation_order_is_stable_and_training_is_shuffled():
    _, y_val = data.load_arrays("digits", "validation")
    ds = data.load("digits", "validation", batch_size=360)
    np.testing.assert_array_equal(_first_batch(ds)[1], y_val)
    _, y_train = data.load_arrays("digits", "train")
    ds = data.load("digits", "train", batch_size=1437, seed=3)
    shuffled = _first_batch(ds)[1]
    assert not np.array_equal(shuffled, y_train)
    np.testing.assert_array_equal(np.sort(shuffled), np.sort(y_train))


def test_digits_image_size_resizes():
    ds = data.load("digits", "validation", batch_size=2, image_size=32)
    assert _first_batch(ds)[0].shape == (2, 32, 32, 1)
    assert data.info("digits", image_size=32).input_shape == (32, 32, 1)


@pytest.mark.parametrize("name", TFDS_NAMES)
@pytest.mark.parametrize("split", ["train", "validation"])
def test_tfds_sets_give_batches_of_the_declared_shape(name, split, tmp_path):
    if name == "imagenet2012":
        _fake_imagenet_archives(str(tmp_path))
    size = 40 if data.info(name).input_shape[0] > 32 else None
    spec = data.info(name, image_size=size)
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES,
                                policy=tfds.testing.MockPolicy.USE_CODE):
        ds = data.load(name, split, batch_size=4, image_size=size,
                       data_dir=str(tmp_path))
        images, labels = _first_batch(ds)
    assert images.shape == (4,) + spec.input_shape
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert labels.dtype == np.int32
    assert ((labels >= 0) & (labels < spec.num_classes)).all()


@pytest.mark.parametrize("name", ["mnist", "imagenette"])
def test_tfds_limit_and_image_size_apply(name):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES,
                                policy=tfds.testing.MockPolicy.USE_CODE):
        ds = data.load(name, "train", batch_size=2, image_size=16, limit=3)
        shapes = [tuple(images.shape) for images, _ in ds]
    channels = data.info(name).input_shape[2]
    assert shapes == [(2, 16, 16, channels), (1, 16, 16, channels)]


def test_default_size_of_large_sets_is_224():
    assert data.info("imagenet2012").input_shape == (224, 224, 3)
    assert data.info("imagenette").input_shape == (224, 224, 3)
    assert data.info("cifar10").input_shape == (32, 32, 3)
    assert data.info("imagenet_resized/32x32").num_classes == 1000


def test_imagenet_without_archives_names_the_manual_dir(tmp_path):
    manual_dir = os.path.join(str(tmp_path), "downloads", "manual")
    with pytest.raises(data.ImageNetFilesMissingError) as error:
        data.load("imagenet2012", "train", batch_size=8,
                  data_dir=str(tmp_path))
    message = str(error.value)
    assert manual_dir in message
    assert "ILSVRC2012_img_train.tar" in message
    assert "ILSVRC2012_img_val.tar" in message
    assert isinstance(error.value, FileNotFoundError)


def test_unknown_name_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="'mnistt'.*digits.*cifar10"):
        data.load("mnistt", "train", batch_size=8)
    with pytest.raises(ValueError, match="mnistt"):
        data.info("mnistt")


def test_unknown_split_is_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match="'dev'.*train, validation"):
        data.load("digits", "dev", batch_size=8)
    with pytest.raises(ValueError, match="'dev'"):
        data.load_arrays("digits", "dev")


def test_bad_batch_size_and_limit_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        data.load("digits", "train", batch_size=0)
    with pytest.raises(ValueError, match="limit"):
        data.load("digits", "train", batch_size=8, limit=0)


def test_load_arrays_refuses_tfds_sets():
    with pytest.raises(ValueError, match="load\\(\\)"):
        data.load_arrays("mnist", "train")


@pytest.mark.parametrize(
    "name, split, real",
    [
        ("mnist", "validation", "test"),
        ("cifar100", "test", "test"),
        ("imagenette", "validation", "validation"),
        ("imagenet_resized/32x32", "test", "validation"),
        ("fashion_mnist", "train", "train"),
    ],
)
def test_validation_maps_to_the_real_tfds_split(name, split, real,
                                                monkeypatch):
    asked = []

    def fake_load(dataset, *, split, **kwargs):
        asked.append(split)
        raise RuntimeError("stop")

    monkeypatch.setattr(tfds, "load", fake_load)
    with pytest.raises(RuntimeError, match="stop"):
        data.load(name, split, batch_size=2)
    assert asked == [real]


def test_fit_data_gives_search_arguments_for_digits():
    args, kwargs = data.fit_data("digits", batch_size=8, limit=40)
    x, y = args
    assert x.shape == (40, 28, 28, 1) and y.shape == (40,)
    xv, yv = kwargs["validation_data"]
    assert xv.shape[1:] == (28, 28, 1) and len(xv) == len(yv)
    assert kwargs["batch_size"] == 8
