"""Datasets for FNAS: TFDS image sets and an offline default.

Every dataset yields `(image, label)` batches. Images are `float32` in
`[0, 1]` with shape `(batch, height, width, channels)`; labels are `int32`
class indices, ready for `sparse_categorical_crossentropy`.

The offline default, `"digits"`, is scikit-learn's real 8x8 handwritten
digits (shipped with scikit-learn, no network), resized to 28x28x1 so that
the MNIST search space applies. It is split 80/20, stratified by class with a
fixed seed, into `"train"` (1437 images) and `"validation"` (360 images).

Every dataset accepts the splits `"train"`, `"validation"` and `"test"`.
`"test"` is an alias of `"validation"`: there is no third held-out set, and
`"validation"` maps onto each TFDS dataset's real evaluation split (`"test"`
for MNIST and CIFAR, `"validation"` for the ImageNet family).

Large-image sets (`imagenet2012`, `imagenette`) get the standard ImageNet
preprocessing at `image_size` (default 224): an Inception-style random crop
and a random horizontal flip for training, a central crop of 0.875 and a
resize for evaluation. Small sets keep their size unless `image_size` is
given.

Example:
    >>> from fnas_keras import data
    >>> spec = data.info("digits")
    >>> spec.input_shape, spec.num_classes
    ((28, 28, 1), 10)
    >>> train = data.load("digits", "train", batch_size=32)
    >>> x, y = data.load_arrays("digits", "validation")
"""

import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

SPLITS = ("train", "validation", "test")
CROP_FRACTION = 0.875
DEFAULT_LARGE_SIZE = 224
IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")

_DIGITS_SIZE = 28
_DIGITS_SEED = 0
_DIGITS_VALIDATION_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a search script needs to know about a dataset, without loading.

    Attributes:
        name: The dataset name, as given to `load`.
        input_shape: `(height, width, channels)` of the images `load` yields.
        num_classes: Number of label classes.
        splits: The split names `load` accepts.

    Example:
        >>> data.info("cifar10")
        DatasetSpec(name='cifar10', input_shape=(32, 32, 3), num_classes=10,
                    splits=('train', 'validation', 'test'))
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    splits: tuple[str, ...] = SPLITS


@dataclasses.dataclass(frozen=True)
class _Entry:
    """Static facts about one dataset; `shape` is None for variable sizes."""

    shape: tuple[int, int, int] | None
    num_classes: int
    eval_split: str = "test"
    large: bool = False


_CATALOG = {
    "digits": _Entry((_DIGITS_SIZE, _DIGITS_SIZE, 1), 10),
    "mnist": _Entry((28, 28, 1), 10),
    "fashion_mnist": _Entry((28, 28, 1), 10),
    "cifar10": _Entry((32, 32, 3), 10),
    "cifar100": _Entry((32, 32, 3), 100),
    "imagenette": _Entry(None, 10, "validation", large=True),
    "imagenet_resized/32x32": _Entry((32, 32, 3), 1000, "validation"),
    "imagenet2012": _Entry(None, 1000, "validation", large=True),
}


def names() -> list[str]:
    """Returns the names `load` and `info` accept, the offline default first."""
    return list(_CATALOG)


def info(name: str, image_size: int | None = None) -> DatasetSpec:
    """Describes a dataset without loading it.

    Args:
        name: A name from `names()`.
        image_size: The `image_size` that will be given to `load`, if any.

    Returns:
        A `DatasetSpec` whose `input_shape` matches what `load` yields.

    Raises:
        ValueError: If `name` is unknown or `image_size` is below 1.
    """
    entry = _entry(name)
    size = _output_size(entry, image_size)
    channels = entry.shape[2] if entry.shape else 3
    return DatasetSpec(name, (size[0], size[1], channels), entry.num_classes)


def load_arrays(
    name: str, split: str, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads the offline digits set as numpy arrays for `model.fit(x, y)`.

    Args:
        name: Must be `"digits"`; TFDS sets are only available via `load`.
        split: `"train"`, `"validation"` or `"test"` (alias of validation).
        limit: Keep only the first `limit` examples.

    Returns:
        `(x, y)`: `x` float32 of shape `(n, 28, 28, 1)` in `[0, 1]`, `y` int32
        of shape `(n,)`.

    Raises:
        ValueError: If `name` is not `"digits"`, `split` is unknown or
            `limit` is below 1.
    """
    _entry(name)
    if name != "digits":
        raise ValueError(
            f"load_arrays supports only 'digits', not {name!r}; "
            "use load() for TFDS datasets"
        )
    _check_split(split)
    _check_limit(limit)
    x, y = _digits()
    index = _digits_indices(split)[:limit]
    return x[index], y[index]


def load(
    name: str,
    split: str,
    *,
    batch_size: int,
    image_size: int | None = None,
    data_dir: str | None = None,
    shuffle: bool | None = None,
    seed: int = 0,
    limit: int | None = None,
    cache: bool | None = None,
    shuffle_buffer: int = 10_000,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Builds a batched `(image, label)` pipeline for a named dataset.

    The stages follow the TFDS performance guide: map (decode, scale,
    deterministic resize) -> cache -> shuffle -> random augmentation (large
    training sets only) -> batch -> prefetch with AUTOTUNE.

    Args:
        name: A name from `names()`.
        split: `"train"`, `"validation"` or `"test"` (alias of validation).
        batch_size: Examples per batch, at least 1.
        image_size: Output height and width. Defaults to the native size for
            small sets and to 224 for large-image sets.
        data_dir: TFDS data directory; TFDS's default when None.
        shuffle: Shuffle the examples; defaults to True for `"train"` only.
        seed: Seed for shuffling and random augmentation.
        limit: Keep only the first `limit` examples, for quick runs.
        cache: Cache the mapped examples in memory; defaults to True except
            for large-image sets, which do not fit in memory.
        shuffle_buffer: Size of the shuffle buffer.
        drop_remainder: Drop the last batch if it is smaller than the others.

    Returns:
        A `tf.data.Dataset` of `(float32 images in [0, 1], int32 labels)`.

    Raises:
        ValueError: If `name`, `split`, `batch_size`, `image_size` or `limit`
            is invalid.
        ImageNetFilesMissingError: If `imagenet2012` is neither prepared nor
            its archives present in the TFDS manual directory.
    """
    entry = _entry(name)
    _check_split(split)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    _check_limit(limit)
    size = _output_size(entry, image_size)
    training = split == "train"
    cache = not entry.large if cache is None else cache
    shuffle = training if shuffle is None else shuffle
    if name == "digits":
        ds = tf.data.Dataset.from_tensor_slices(load_arrays(name, split, limit))
    else:
        ds = _tfds_source(name, split, entry, data_dir, limit)
    augment = entry.large and training
    prepare = functools.partial(
        _prepare, size=None if augment else size, central=entry.large
    )
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    if augment:
        ds = ds.map(functools.partial(_inception_crop, size=size, seed=seed),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def fit_data(
    name: str,
    *,
    batch_size: int,
    limit: int | None = None,
    data_dir: str | None = None,
) -> tuple[tuple, dict]:
    """Training and validation data as `search`/`fit` arguments.

    Args:
        name: A dataset name from `names()`.
        batch_size: Examples per batch.
        limit: Use only the first N training examples.
        data_dir: TFDS data directory.

    Returns:
        `(args, kwargs)` for `tuner.search(*args, **kwargs)`: numpy arrays
        for "digits", batched datasets at the dataset's own size otherwise.
    """
    if name == "digits":
        x, y = load_arrays("digits", "train", limit=limit)
        validation = load_arrays("digits", "validation")
        return (x, y), {"validation_data": validation,
                        "batch_size": batch_size}
    size = info(name).input_shape[0]
    common = dict(batch_size=batch_size, data_dir=data_dir, image_size=size)
    train = load(name, "train", limit=limit, **common)
    validation = load(name, "validation", **common)
    return (train,), {"validation_data": validation}


class ImageNetFilesMissingError(FileNotFoundError):
    """ImageNet is not prepared and its archives are not in the manual dir."""


def imagenet_manual_dir(data_dir: str | None = None) -> str:
    """Returns where TFDS looks for the ImageNet tar files.

    Args:
        data_dir: TFDS data directory; TFDS's default when None.

    Returns:
        `<data_dir>/downloads/manual`.
    """
    import tensorflow_datasets as tfds

    root = os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR)
    return os.path.join(root, "downloads", "manual")


def _entry(name: str) -> _Entry:
    if name not in _CATALOG:
        raise ValueError(
            f"unknown dataset {name!r}; known: {', '.join(names())}"
        )
    return _CATALOG[name]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: "
                         f"{', '.join(SPLITS)}")


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 or None, got {limit}")


def _output_size(entry: _Entry, image_size: int | None) -> tuple[int, int]:
    if image_size is not None:
        if image_size < 1:
            raise ValueError(f"image_size must be at least 1, got {image_size}")
        return image_size, image_size
    if entry.shape is None:
        return DEFAULT_LARGE_SIZE, DEFAULT_LARGE_SIZE
    return entry.shape[0], entry.shape[1]


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits, resized to 28x28x1 and scaled to [0, 1]."""
    from sklearn import datasets

    bunch = datasets.load_digits()
    images = bunch.images[..., None].astype(np.float32) / 16.0
    size = (_DIGITS_SIZE, _DIGITS_SIZE)
    resized = tf.image.resize(images, size, method="bilinear").numpy()
    x = np.clip(resized, 0.0, 1.0).astype(np.float32)
    x.setflags(write=False)
    y = bunch.target.astype(np.int32)
    y.setflags(write=False)
    return x, y


@functools.lru_cache(maxsize=2)
def _digits_indices(split: str) -> np.ndarray:
    """Indices of one digits split: 80/20 stratified with a fixed seed."""
    from sklearn import model_selection

    _, y = _digits()
    train, validation = model_selection.train_test_split(
        np.arange(len(y)),
        test_size=_DIGITS_VALIDATION_FRACTION,
        stratify=y,
        random_state=_DIGITS_SEED,
    )
    return np.sort(train if split == "train" else validation)


def _tfds_source(
    name: str,
    split: str,
    entry: _Entry,
    data_dir: str | None,
    limit: int | None,
) -> tf.data.Dataset:
    """Reads raw `(uint8 image, label)` pairs from TFDS, first `limit` only."""
    import tensorflow_datasets as tfds

    if name == "imagenet2012":
        _check_imagenet_files(data_dir)
    real_split = "train" if split == "train" else entry.eval_split
    ds = tfds.load(name, split=real_split, data_dir=data_dir,
                   as_supervised=True, shuffle_files=False)
    return ds.take(limit) if limit is not None else ds


def _check_imagenet_files(data_dir: str | None) -> None:
    """Raises our own error when TFDS would fail for want of the archives."""
    import tensorflow_datasets as tfds

    if tfds.builder("imagenet2012", data_dir=data_dir).is_prepared():
        return
    manual_dir = imagenet_manual_dir(data_dir)
    missing = [tar for tar in IMAGENET_TARS
               if not os.path.isfile(os.path.join(manual_dir, tar))]
    if missing:
        raise ImageNetFilesMissingError(
            "imagenet2012 needs a manual download: put "
            f"{' and '.join(IMAGENET_TARS)} (from image-net.org) into "
            f"{manual_dir}/ (the TFDS manual_dir, <data_dir>/downloads/"
            f"manual); missing: {', '.join(missing)}"
        )


def _prepare(image, label, *, size, central):
    """Scales to float32 [0, 1]; crops (evaluation) and resizes if asked."""
    image = tf.image.convert_image_dtype(image, tf.float32)
    if size is not None:
        if central:
            image = _central_crop(image)
        if central or tuple(image.shape[:2]) != size:
            image = tf.image.resize(image, size, method="bilinear")
            image = tf.clip_by_value(image, 0.0, 1.0)
    return image, tf.cast(label, tf.int32)


def _central_crop(image):
    """The centred square of side 0.875 * min(height, width)."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.cast(
        CROP_FRACTION * tf.cast(tf.minimum(height, width), tf.float32),
        tf.int32,
    )
    side = tf.maximum(side, 1)
    top = (height - side + 1) // 2
    left = (width - side + 1) // 2
    return tf.image.crop_to_bounding_box(image, top, left, side, side)


def _inception_crop(image, label, *, size, seed):
    """Random crop of 8%-100% area, aspect 3/4-4/3, then a random flip."""
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, size, method="bilinear")
    image = tf.image.random_flip_left_right(image, seed=seed)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape((size[0], size[1], 3))
    return image, label
