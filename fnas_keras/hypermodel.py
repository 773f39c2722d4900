"""FNASHyperModel: the paper's child-CNN search spaces as keras-tuner presets.

Each searched layer `i` exposes Choice hyperparameters with stable names:
`conv_{i}/kernel`, `conv_{i}/filters` and, where the preset searches it,
`conv_{i}/stride`. See FNAS_NOTES §2 for where each space comes from.

The fast path: `layer_dicts(values)` gives a child's layer dicts straight
from its hyperparameter values, equal to those read from the built model,
so the latency gate and the space report never build a preset child.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any
from typing import Mapping
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
        >>> layers = hypermodel.layer_dicts({"conv_0/kernel": 7})  # no build
        >>> [d["class_name"] for d in layers][:2]
        ['InputLayer', 'Conv2D']
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
        values = {name: hp.Choice(name, list(choices))
                  for name, choices in self.choices()}
        layers = [keras.Input(shape=self.space.input_shape)]
        layers += [_new_layer(*layer) for layer in self._plan(values)]
        # One constructor call builds the model once; Sequential.add would
        # rebuild it after every layer.
        model = keras.Sequential(layers, name="child")
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def choices(self) -> list[tuple[str, tuple]]:
        """Each searched hyperparameter's name and choices, in build order.

        The first choice is the default, as for `hp.Choice`.
        """
        return list(_choices(self.space))

    def complete(self, values: Mapping[str, Any]) -> dict:
        """A child's value of every searched hyperparameter.

        Args:
            values: Hyperparameter values; a missing one takes its default,
                as `build` gives it.

        Returns:
            name -> value for every name of `choices()`, in order.
        """
        return {name: values.get(name, choices[0])
                for name, choices in _choices(self.space)}

    def child_key(self, values: Mapping[str, Any]) -> tuple:
        """A child's identity for caches: its space and completed values."""
        return (self.space, *self.complete(values).values())

    def layer_dicts(self, values: Mapping[str, Any]) -> list[dict]:
        """The child's layer dicts, straight from its values (no Keras build).

        Equal to `keras_reader.layer_dicts(self.build(hp))` for hp holding
        `values`: same class names, configs, shapes, names and inbound
        indices, so the latency model gives the same report.

        Args:
            values: Hyperparameter values, completed as by `complete`.

        Returns:
            The layer dicts, the InputLayer first.
        """
        shape = (None, *self.space.input_shape)
        out = [{"class_name": "InputLayer", "name": "input_0", "config": {},
                "input_shape": shape, "output_shape": shape, "inbound": []}]
        policy = keras.config.dtype_policy().name
        for index, layer in enumerate(self._plan(self.complete(values)), 1):
            cached = _layer_dict(*layer, shape, policy)
            # Fresh dicts, so that a caller's edits stay its own.
            out.append({**cached, "config": {**cached["config"]},
                        "inbound": [index - 1]})
            shape = cached["output_shape"]
        return out

    def _plan(self, values: Mapping[str, Any]) -> list[tuple]:
        """The child's layers after the Input as (kind, name, args) tuples.

        One recipe for both paths: `build` makes each with `_new_layer`,
        `layer_dicts` reads each with `_layer_dict`.
        """
        space = self.space
        plan = []
        if space.stem_filters:
            plan.append(("conv", "stem", (space.stem_filters, 3, 2)))
            if space.batch_norm:
                plan.append(("batch_norm", "stem_bn", ()))
        default_stride = space.strides[0]
        for name, kernel, filters, stride, norm in _slots(space):
            args = (values[filters], values[kernel],
                    values.get(stride, default_stride))
            plan.append(("conv", name, args))
            if space.batch_norm:
                plan.append(("batch_norm", norm, ()))
        head = "flatten" if space.head == "flatten" else "global_pool"
        plan.append((space.head, head, ()))
        plan.append(("dense", "classifier", (space.num_classes,)))
        return plan


def fast_path(hypermodel: Any) -> FNASHyperModel | None:
    """The hypermodel when its children's layer dicts need no build.

    Args:
        hypermodel: What a tuner holds: a HyperModel, or keras-tuner's
            wrapper of a `build_model(hp)` function.

    Returns:
        The FNASHyperModel, or None when the child must be built: any other
        hypermodel, or a subclass whose own `build` the dicts would not
        describe.
    """
    if (isinstance(hypermodel, FNASHyperModel)
            and type(hypermodel).build is FNASHyperModel.build):
        return hypermodel
    return None


@functools.lru_cache(maxsize=64)
def _choices(space: SearchSpace) -> tuple[tuple[str, tuple], ...]:
    out = []
    for i in range(space.num_layers):
        out.append((f"conv_{i}/kernel", space.kernel_sizes))
        out.append((f"conv_{i}/filters", space.filters))
        if len(space.strides) > 1:
            out.append((f"conv_{i}/stride", space.strides))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _slots(space: SearchSpace) -> tuple[tuple[str, ...], ...]:
    """Per searched layer: its name, its hyperparameters', its norm's."""
    return tuple((f"conv_{i}", f"conv_{i}/kernel", f"conv_{i}/filters",
                  f"conv_{i}/stride", f"conv_{i}_bn")
                 for i in range(space.num_layers))


def _new_layer(kind: str, name: str, args: tuple) -> keras.layers.Layer:
    """The Keras layer of one recipe entry."""
    if kind == "conv":
        filters, kernel, stride = args
        return keras.layers.Conv2D(filters, kernel, strides=stride,
                                   padding="same", activation="relu",
                                   name=name)
    if kind == "batch_norm":
        return keras.layers.BatchNormalization(name=name)
    if kind == "flatten":
        return keras.layers.Flatten(name=name)
    if kind == "gap":
        return keras.layers.GlobalAveragePooling2D(name=name)
    return keras.layers.Dense(args[0], activation="softmax", name=name)


@functools.lru_cache(maxsize=8192)
def _layer_dict(kind: str, name: str, args: tuple, shape: tuple,
                policy: str) -> dict:
    """One layer's dict, as `keras_reader` reads it from a built child.

    Callers copy the result (it is shared) and add "inbound".
    """
    class_name, config = _config(kind, args, policy)
    return {"class_name": class_name, "name": name,
            "config": {**config, "name": name}, "input_shape": shape,
            "output_shape": _output_shape(kind, args, shape)}


@functools.lru_cache(maxsize=1024)
def _config(kind: str, args: tuple, policy: str) -> tuple[str, dict]:
    """Class name and `get_config()` of a layer, made once per distinct one.

    The config is read from a Keras layer that is constructed but never
    built (no weights), so it is exactly what a built child reports;
    `policy` (the global dtype policy, which the config records) keys it.
    """
    del policy
    layer = _new_layer(kind, "template", args)
    return type(layer).__name__, layer.get_config()


def _output_shape(kind: str, args: tuple, shape: tuple) -> tuple:
    """A layer's output shape (batch dim first) from its input shape."""
    if kind == "conv":
        filters, _, stride = args
        _, h, w, _ = shape
        # padding="same": ceil(size / stride).
        return (None, -(-h // stride), -(-w // stride), filters)
    if kind == "flatten":
        return (None, math.prod(shape[1:]))
    if kind == "gap":
        return (None, shape[-1])
    if kind == "dense":
        return (None, args[0])
    return shape


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
