"""FNASHyperModel: the paper's child-CNN search spaces as keras-tuner presets.

Each searched layer `i` exposes Choice hyperparameters with stable names:
`conv_{i}/kernel`, `conv_{i}/filters` and, where the preset searches it,
`conv_{i}/stride`. See FNAS_NOTES §2 for where each space comes from.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import keras
import keras_tuner


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """One preset: the input, the head and the per-layer choices.

    Attributes:
        input_shape: (height, width, channels) of one example.
        num_classes: Width of the softmax head.
        num_layers: How many searched convolution layers.
        kernel_sizes: Choices for each layer's square kernel.
        filters: Choices for each layer's output channels.
        strides: Choices for each layer's stride; (1,) is not searched.
        batch_norm: Whether each layer is Conv -> ReLU -> BatchNorm.
        head: "gap" (GlobalAveragePooling2D) or "flatten" before the Dense.
        stem_filters: Filters of a fixed stride-2 3x3 stem; 0 for no stem.
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    num_layers: int
    kernel_sizes: tuple[int, ...]
    filters: tuple[int, ...]
    strides: tuple[int, ...] = (1,)
    batch_norm: bool = False
    head: str = "gap"
    stem_filters: int = 0

    @property
    def size(self) -> int:
        """Number of architectures in the space."""
        per_layer = len(self.kernel_sizes) * len(self.filters)
        return (per_layer * len(self.strides)) ** self.num_layers


PRESETS = {
    # The FNAS reference code's MNIST space, exactly: 3^8 = 6,561 children.
    "mnist": SearchSpace(
        input_shape=(28, 28, 1),
        num_classes=10,
        num_layers=4,
        kernel_sizes=(5, 7, 14),
        filters=(9, 18, 36),
    ),
    # The shape of the follow-up work's CIFAR-10 space (FNAS_NOTES §2).
    "cifar10": SearchSpace(
        input_shape=(32, 32, 3),
        num_classes=10,
        num_layers=6,
        kernel_sizes=(1, 3, 5, 7),
        filters=(24, 36, 48, 64),
        strides=(1, 2),
        batch_norm=True,
        head="flatten",
    ),
    # The same shape for 224x224 ImageNet: a stride-2 stem brings the map
    # to 112x112, searched stride-2 layers shrink it, and a global pooling
    # head keeps the classifier small.
    "imagenet": SearchSpace(
        input_shape=(224, 224, 3),
        num_classes=1000,
        num_layers=8,
        kernel_sizes=(1, 3, 5, 7),
        filters=(32, 64, 128, 256),
        strides=(1, 2),
        batch_norm=True,
        head="gap",
        stem_filters=32,
    ),
}


class FNASHyperModel(keras_tuner.HyperModel):
    """Builds the child CNNs of an FNAS search space.

    Args:
        preset: "mnist" (the paper's space), "cifar10" or "imagenet".
        input_shape: Overrides the preset's (height, width, channels).
        num_classes: Overrides the preset's number of classes.
        num_layers: Overrides the number of searched layers.
        kernel_sizes: Overrides the kernel-size choices of every layer.
        filters: Overrides the filter-count choices of every layer.
        strides: Overrides the stride choices of every layer.
        learning_rate: Adam's learning rate for every child.
        name: Optional name of the hypermodel.

    Raises:
        ValueError: For an unknown preset or an invalid override.

    Example:
        >>> hypermodel = FNASHyperModel("mnist")
        >>> hypermodel.space.size
        6561
    """

    def __init__(
        self,
        preset: str = "mnist",
        *,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        num_layers: int | None = None,
        kernel_sizes: Sequence[int] | None = None,
        filters: Sequence[int] | None = None,
        strides: Sequence[int] | None = None,
        learning_rate: float = 1e-3,
        name: str | None = None,
    ):
        super().__init__(name=name or f"fnas_{preset}", tunable=True)
        if preset not in PRESETS:
            raise ValueError(
                f"unknown preset {preset!r}; known: {', '.join(PRESETS)}"
            )
        overrides = {
            "input_shape": input_shape,
            "num_classes": num_classes,
            "num_layers": num_layers,
            "kernel_sizes": kernel_sizes,
            "filters": filters,
            "strides": strides,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        self.preset = preset
        self.space = _validated(
            dataclasses.replace(PRESETS[preset], **_as_tuples(overrides))
        )
        if not (learning_rate > 0 and math.isfinite(learning_rate)):
            raise ValueError(
                f"learning_rate must be a positive number, got {learning_rate}"
            )
        self.learning_rate = learning_rate

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds and compiles one child network for the values in `hp`."""
        space = self.space
        layers = [keras.Input(shape=space.input_shape)]
        if space.stem_filters:
            layers += _conv(space.stem_filters, 3, 2, space.batch_norm)
        for i in range(space.num_layers):
            kernel = hp.Choice(f"conv_{i}/kernel", list(space.kernel_sizes))
            width = hp.Choice(f"conv_{i}/filters", list(space.filters))
            stride = space.strides[0]
            if len(space.strides) > 1:
                stride = hp.Choice(f"conv_{i}/stride", list(space.strides))
            layers += _conv(width, kernel, stride, space.batch_norm)
        if space.head == "flatten":
            layers.append(keras.layers.Flatten())
        else:
            layers.append(keras.layers.GlobalAveragePooling2D())
        layers.append(
            keras.layers.Dense(space.num_classes, activation="softmax")
        )
        # One constructor call builds the model once; Sequential.add would
        # rebuild it after every layer.
        model = keras.Sequential(layers, name="child")
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


def _conv(filters: int, kernel: int, stride: int, batch_norm: bool) -> list:
    """One searched layer: Conv -> ReLU (-> BatchNorm), as in FNAS_NOTES §2."""
    conv = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", activation="relu"
    )
    return [conv, keras.layers.BatchNormalization()] if batch_norm else [conv]


def _as_tuples(overrides: dict) -> dict:
    """Turns list overrides into tuples so the space stays hashable."""
    return {
        k: tuple(v) if isinstance(v, (list, tuple)) else v
        for k, v in overrides.items()
    }


def _validated(space: SearchSpace) -> SearchSpace:
    """Checks every field of a space, naming the bad value."""
    if len(space.input_shape) != 3 or min(space.input_shape) < 1:
        raise ValueError(
            f"input_shape must be (height, width, channels) of positive ints, "
            f"got {space.input_shape}"
        )
    for field in ("num_classes", "num_layers"):
        value = getattr(space, field)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{field} must be an int >= 1, got {value!r}")
    for field in ("kernel_sizes", "filters", "strides"):
        values = getattr(space, field)
        if not values or any(
            not isinstance(v, int) or isinstance(v, bool) or v < 1
            for v in values
        ):
            raise ValueError(
                f"{field} must be a non-empty list of ints >= 1, got {values}"
            )
        if len(set(values)) != len(values):
            raise ValueError(f"{field} has repeated values: {values}")
    return space
