"""Keras layer dicts -> loop-nest workloads, through a registry by class_name.

A layer dict is `{"class_name", "config", "input_shape", "output_shape"}`,
config as `layer.get_config()` gives it, shapes with the batch dim (None)
first; a multi-input layer has a list of input shapes. Shapes are
channels_last unless the config says "channels_first".

Each layer becomes zero or more `Workload`s (FNAS_NOTES section 5):
* "conv": the loop nest M x N x R x C x K x Kw with stride S, Sw, dilation
  D, Dw and `groups` independent groups (M and N count all groups).
* "stream": a pass over memory with no MACs (pooling, Add, Concatenate,
  Multiply); bounded by the memory ports.
Folded and fused layers (BatchNormalization, activations, Flatten, ...) give
none: they cost 0 cycles.
"""

import functools
import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

Shape = tuple[Any, ...]
LayerDict = dict[str, Any]


class Workload(NamedTuple):
    """One engine's work. Rows are the pipelined dimension.

    Attributes:
        kind: "conv" or "stream".
        M: output channels (all groups).
        N: input channels (all groups).
        R: output rows.
        C: output columns (all non-row spatial positions).
        K: kernel rows (pool rows for "stream").
        S: row stride.
        groups: independent channel groups (depthwise: channels).
        Kw: kernel columns.
        Sw: column stride.
        D: row dilation.
        Dw: column dilation.
        H: input rows, for the pipeline's row dependencies.
        pad_top: zero rows above the input (row dependencies).
        in_words: words read per image ("stream"; all inputs).
        out_words: words written per image ("stream").
    """

    kind: str
    M: int
    N: int
    R: int
    C: int
    K: int = 1
    S: int = 1
    groups: int = 1
    Kw: int = 1
    Sw: int = 1
    D: int = 1
    Dw: int = 1
    H: int = 1
    pad_top: int = 0
    in_words: int = 0
    out_words: int = 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image (0 for a stream pass)."""
        if self.kind != "conv":
            return 0
        return (self.M * (self.N // self.groups) * self.R * self.C
                * self.K * self.Kw)


class Parsed(NamedTuple):
    """What a layer dict becomes.

    Attributes:
        stages: the workloads, run one after another on separate engines.
        row_shift: for a 0-cycle layer, output row r holds input row
            r - row_shift (ZeroPadding2D shifts rows down by its top pad).
    """

    stages: tuple[Workload, ...]
    row_shift: int = 0


Parser = Callable[[dict, list[Shape], Shape], Parsed]
# class_name -> (parser, the config fields it reads).
_REGISTRY: dict[str, tuple[Parser, tuple[str, ...]]] = {}
# A search parses the same few layers over and over: results are cached on
# the class, the config fields the parser reads and the shapes.
_CACHE: dict[tuple, Parsed] = {}
_CACHE_LIMIT = 100_000
_CONV_FIELDS = ("kernel_size", "strides", "padding", "dilation_rate",
                "groups", "data_format", "depth_multiplier")


def register(*class_names: str, fields: tuple[str, ...] = ()
             ) -> Callable[[Parser], Parser]:
    """Registers a parser for Keras class names (a decorator).

    Args:
        *class_names: the Keras classes the parser handles.
        fields: every config key the parser reads (the cache key).
    """

    def wrap(fn: Parser) -> Parser:
        for name in class_names:
            _REGISTRY[name] = (fn, fields)
        return fn

    return wrap


def _freeze(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        if isinstance(value, (list, tuple)):
            return tuple(_freeze(v) for v in value)
        if isinstance(value, dict):
            return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
        return repr(value)


def supported() -> list[str]:
    """The class names the model knows, sorted."""
    return sorted(_REGISTRY)


def rows(shape: Shape) -> int:
    """Rows of a tensor: its first spatial dim, or 1 for a flat vector."""
    return int(shape[1]) if len(shape) >= 3 else 1


def parse(layer: LayerDict) -> Parsed:
    """Turns one layer dict into its workloads.

    Args:
        layer: `{"class_name", "config", "input_shape", "output_shape"}`.

    Returns:
        The Parsed stages and row shift.

    Raises:
        ValueError: the class is not supported (the message names it and
            lists the supported ones), or a shape is malformed.
    """
    name = layer.get("class_name")
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"unsupported layer {name!r}; supported: "
                         f"{', '.join(supported())}")
    fn, fields = entry
    config = layer.get("config") or {}
    key = (name, tuple(map(config.get, fields)),
           layer.get("input_shape"), layer.get("output_shape"))
    try:
        parsed = _CACHE.get(key)
    except TypeError:  # lists from JSON
        key = _freeze(key)
        parsed = _CACHE.get(key)
    if parsed is None:
        inputs = input_shapes(layer)
        output = _shape(layer.get("output_shape"), name)
        parsed = fn(config, inputs, output)
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = parsed
    return parsed


def input_shapes(layer: LayerDict) -> list[Shape]:
    """The layer's input shapes as a list (one per input)."""
    raw = layer.get("input_shape")
    name = layer.get("class_name")
    if isinstance(raw, (list, tuple)) and raw and all(
            isinstance(s, (list, tuple)) for s in raw):
        return [_shape(s, name) for s in raw]
    return [_shape(raw, name)]


def _shape(raw: Any, name: str | None) -> Shape:
    if not isinstance(raw, (list, tuple)) or len(raw) < 1:
        raise ValueError(f"layer {name!r}: bad shape {raw!r}")
    try:
        return _valid_shape(tuple(raw))
    except (ValueError, TypeError):
        raise ValueError(f"layer {name!r}: shape {tuple(raw)!r} must be "
                         f"fully defined apart from the batch dim") from None


@functools.lru_cache(maxsize=4096)
def _valid_shape(raw: tuple) -> Shape:
    # Cached: a search sees the same few shapes over and over.
    dims = raw[1:]
    if any(isinstance(d, bool) or not isinstance(d, int) or d <= 0
           for d in dims):
        raise ValueError(raw)
    return (None,) + dims


def _last(shape: Shape, config: dict) -> Shape:
    """Moves channels last if the config says channels_first."""
    if config.get("data_format") == "channels_first" and len(shape) >= 3:
        return (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return shape


def _pair(value: Any, rank: int) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        vals = [int(v) for v in value]
    else:
        vals = [int(value)] * rank
    return (vals[0], vals[1]) if rank >= 2 else (vals[0], 1)


def _grid(shape: Shape) -> tuple[int, int]:
    """(rows, columns) of a channels-last tensor; columns fold the rest."""
    spatial = shape[1:-1]
    if not spatial:
        return 1, 1
    return int(spatial[0]), int(math.prod(spatial[1:]))


def _pad_top(config: dict, h: int, r: int, k: int, s: int, d: int) -> int:
    padding = str(config.get("padding", "valid")).lower()
    k_eff = d * (k - 1) + 1
    if padding == "causal":
        return k_eff - 1
    if padding == "same":
        return max((r - 1) * s + k_eff - h, 0) // 2
    return 0


def _conv(config: dict, src: Shape, out: Shape, m: int, n: int,
          groups: int) -> Workload:
    src, out = _last(src, config), _last(out, config)
    rank = len(src) - 2
    k, kw = _pair(config.get("kernel_size", 1), rank)
    s, sw = _pair(config.get("strides", 1), rank)
    d, dw = _pair(config.get("dilation_rate", 1), rank)
    h, _ = _grid(src)
    r, c = _grid(out)
    return Workload("conv", M=m, N=n, R=r, C=c, K=k, S=s, groups=groups,
                    Kw=kw, Sw=sw, D=d, Dw=dw, H=h,
                    pad_top=_pad_top(config, h, r, k, s, d))


@register("Conv1D", "Conv2D", fields=_CONV_FIELDS)
def _parse_conv(config: dict, inputs: list[Shape], out: Shape) -> Parsed:
    src = _last(inputs[0], config)
    groups = int(config.get("groups", 1) or 1)
    m = int(_last(out, config)[-1])
    return Parsed((_conv(config, inputs[0], out, m, int(src[-1]), groups),))


@register("DepthwiseConv1D", "DepthwiseConv2D",
          fields=_CONV_FIELDS)
def _parse_depthwise(config: dict, inputs: list[Shape],
                     out: Shape) -> Parsed:
    # One group per input channel, N = 1 per group (FNAS_NOTES section 5).
    n = int(_last(inputs[0], config)[-1])
    m = int(_last(out, config)[-1])
    return Parsed((_conv(config, inputs[0], out, m, n, n),))


@register("SeparableConv1D", "SeparableConv2D",
          fields=_CONV_FIELDS)
def _parse_separable(config: dict, inputs: list[Shape],
                     out: Shape) -> Parsed:
    # Depthwise then pointwise: two engines, the second row-aligned.
    src = _last(inputs[0], config)
    n = int(src[-1])
    mid_channels = n * int(config.get("depth_multiplier", 1))
    out_last = _last(out, config)
    depthwise = _conv(config, inputs[0], out, mid_channels, n, n)
    r, c = _grid(out_last)
    pointwise = Workload("conv", M=int(out_last[-1]), N=mid_channels, R=r,
                         C=c, H=r)
    return Parsed((depthwise, pointwise))


@register("Dense", "EinsumDense")
def _parse_dense(config: dict, inputs: list[Shape], out: Shape) -> Parsed:
    # A 1x1 convolution over every position of the leading dims.
    src = inputs[0]
    r, c = _grid(src)
    return Parsed((Workload("conv", M=int(out[-1]), N=int(src[-1]), R=r,
                            C=c, H=r),))


def _stream(inputs: list[Shape], out: Shape, k: int = 1, s: int = 1,
            pad_top: int = 0) -> Parsed:
    in_words = sum(int(math.prod(x[1:])) for x in inputs)
    out_words = int(math.prod(out[1:]))
    _, c = _grid(out)
    return Parsed((Workload("stream", M=int(out[-1]), N=int(inputs[0][-1]),
                            R=rows(out), C=c, K=k, S=s,
                            H=max(rows(x) for x in inputs),
                            pad_top=pad_top, in_words=in_words,
                            out_words=out_words),))


@register("MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
          "AveragePooling2D",
          fields=("pool_size", "strides", "padding", "data_format"))
def _parse_pool(config: dict, inputs: list[Shape], out: Shape) -> Parsed:
    src, dst = _last(inputs[0], config), _last(out, config)
    rank = len(src) - 2
    k, _ = _pair(config.get("pool_size", 2), rank)
    strides = config.get("strides")
    s, _ = _pair(k if strides is None else strides, rank)
    h, _ = _grid(src)
    pad = _pad_top(config, h, rows(dst), k, s, 1)
    return _stream([src], dst, k=k, s=s, pad_top=pad)


@register("GlobalAveragePooling1D", "GlobalAveragePooling2D",
          "GlobalMaxPooling1D", "GlobalMaxPooling2D",
          fields=("data_format",))
def _parse_global_pool(config: dict, inputs: list[Shape],
                       out: Shape) -> Parsed:
    # One output row that reads every input row.
    src = _last(inputs[0], config)
    return _stream([src], (None, 1, int(src[-1])), k=rows(src))


@register("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
          "Concatenate", "UpSampling1D", "UpSampling2D", "Resizing")
def _parse_elementwise(config: dict, inputs: list[Shape],
                       out: Shape) -> Parsed:
    # Row-aligned streaming: output row r reads input row r (or a resized
    # row; the schedule clips to the input's last row).
    return _stream(inputs, out)


@register("ZeroPadding1D", "ZeroPadding2D", fields=("padding",))
def _parse_zero_padding(config: dict, inputs: list[Shape],
                        out: Shape) -> Parsed:
    # Padding is address generation in the next engine: 0 cycles.
    pad = config.get("padding", 1)
    if isinstance(pad, (list, tuple)):
        first = pad[0]
        top = first[0] if isinstance(first, (list, tuple)) else first
    else:
        top = pad
    return Parsed((), row_shift=int(top))


@register("Cropping1D", "Cropping2D", fields=("cropping",))
def _parse_cropping(config: dict, inputs: list[Shape], out: Shape) -> Parsed:
    crop = config.get("cropping", 0)
    first = crop[0] if isinstance(crop, (list, tuple)) else crop
    top = first[0] if isinstance(first, (list, tuple)) else first
    return Parsed((), row_shift=-int(top))


@register("InputLayer", "BatchNormalization", "Activation", "ReLU",
          "LeakyReLU", "ELU", "PReLU", "Softmax", "Flatten", "Reshape",
          "Dropout", "SpatialDropout1D", "SpatialDropout2D", "AlphaDropout",
          "GaussianDropout", "GaussianNoise", "Rescaling", "Normalization",
          "Identity", "ActivityRegularization", "Masking")
def _parse_free(config: dict, inputs: list[Shape], out: Shape) -> Parsed:
    # Folded into the neighbouring engine (BN, Normalization, Rescaling are
    # affine), fused into its output (activations) or pure re-indexing.
    return Parsed(())


def parse_all(layers: Sequence[LayerDict]) -> list[Parsed]:
    """Parses every layer dict, in order."""
    return [parse(layer) for layer in layers]
