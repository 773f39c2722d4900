"""Fixed-point types for a Keras model, chosen from its data.

`precision_config` gives hls4ml's per-layer config at a total word width:
weights and biases from their ranges, each layer's result from the
activations measured on calibration inputs, and accumulators as wide as
the worst case needs, so that they never overflow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_BITS, MAX_BITS = 4, 32
CALIBRATION_EXAMPLES = 256
# Layers whose kernel is one matrix product per output position.
KERNEL_CLASSES = ("Conv1D", "Conv2D", "Dense")
_POOL_CLASSES = ("AveragePooling1D", "AveragePooling2D",
                 "GlobalAveragePooling1D", "GlobalAveragePooling2D")


class UnsupportedLayerError(ValueError):
    """hls4ml cannot convert a layer of the model."""


def precision_config(model: Any, bits: int, calibration: Any) -> dict:
    """The hls4ml config with per-layer fixed-point types at `bits` wide.

    Weights and biases get `ap_fixed<bits, I>` with I from their largest
    magnitude; every layer result gets `ap_fixed<bits, I>` (`ap_ufixed`
    when it is never negative, as after ReLU) with I from the activations
    measured on `calibration`, rounding and saturating. Accumulators of
    convolutions, dense and average pooling are as wide as the worst case
    needs: they hold every product exactly and never overflow.

    Args:
        model: A built Keras model.
        bits: Total word width, 4 to 32 (the latency model times 8 or 16).
        calibration: Representative inputs (a few hundred training
            examples; the first 256 are used).

    Returns:
        hls4ml's per-layer config (`granularity="name"`): edit
        `config["LayerName"][name]["Precision"]` to override a type.

    Raises:
        ValueError: For bits outside 4..32 or no calibration data.
        UnsupportedLayerError: When hls4ml cannot read a layer.
    """
    bits = checked_bits(bits)
    x = _calibration(calibration)
    outputs, inputs, linear = _ranges(model, x)
    hls4ml = import_hls4ml()
    try:
        config = hls4ml.utils.config_from_keras_model(
            model, granularity="name", backend="Vitis",
            default_precision=f"fixed<{bits},{bits // 2},RND,SAT>")
    except Exception as error:  # noqa: BLE001 - named and re-raised.
        raise unsupported(model, error) from error
    layers = {layer.name: layer for layer in model.layers}
    for name, entry in config["LayerName"].items():
        _set_layer(entry.setdefault("Precision", {}), name, layers, bits,
                   outputs, inputs, linear)
    return config


def checked_bits(bits: Any) -> int:
    """`bits` as an int, or a ValueError naming it and the allowed range."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) \
            or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from {MIN_BITS} to "
                         f"{MAX_BITS} (the latency model times 8 or 16), "
                         f"got {bits!r}")
    return int(bits)


def _calibration(calibration: Any) -> np.ndarray:
    if calibration is None:
        raise ValueError(
            "calibration data is needed to choose activation ranges: pass "
            "calibration=x_train[:256] (a few hundred training inputs)")
    x = np.asarray(calibration, dtype=np.float32)[:CALIBRATION_EXAMPLES]
    if not len(x):
        raise ValueError("calibration is empty; pass a few hundred inputs")
    return x


def _ranges(model: Any, x: np.ndarray) -> tuple[dict, dict, dict]:
    """(min, max) of each layer's output, its input, and its pre-activation.

    Inputs are keyed by the layer's name, outputs by the layer's and by
    the model's InputLayers' names (a single input); pre-activations only
    for layers with an activation, computed by calling the layer with a
    linear activation.
    """
    import keras

    layers = [layer for layer in model.layers
              if not isinstance(layer.input, (list, tuple))]
    probe = keras.Model(model.inputs, [layer.output for layer in layers]
                        + [layer.input for layer in layers])
    values = probe.predict(x, batch_size=64, verbose=0)
    values = values if isinstance(values, list) else [values]
    span = [(float(np.min(v)), float(np.max(v))) for v in values]
    outputs = {layer.name: span[i] for i, layer in enumerate(layers)}
    # The probe's InputLayers are the model's, with their names.
    outputs.update({layer.name: (float(x.min()), float(x.max()))
                    for layer in probe.layers
                    if type(layer).__name__ == "InputLayer"})
    inputs = {layer.name: span[len(layers) + i]
              for i, layer in enumerate(layers)}
    linear = {}
    for i, layer in enumerate(layers):
        if _activation(layer) is not None:
            linear[layer.name] = _linear_span(layer, values[len(layers) + i])
    return outputs, inputs, linear


def _linear_span(layer: Any, x: np.ndarray) -> tuple[float, float]:
    import keras

    saved = layer.activation
    layer.activation = keras.activations.linear
    try:
        out = [keras.ops.convert_to_numpy(layer(x[i:i + 64]))
               for i in range(0, len(x), 64)]
    finally:
        layer.activation = saved
    return (float(min(o.min() for o in out)), float(max(o.max() for o in out)))


def _activation(layer: Any) -> str | None:
    name = layer.get_config().get("activation")
    return None if name in (None, "linear") or not isinstance(name, str) \
        else name


def _set_layer(precision: dict, name: str, layers: dict, bits: int,
               outputs: dict, inputs: dict, linear: dict) -> None:
    """Sets one hls4ml layer's types (hls4ml names a fused activation
    `<layer>_<activation>`; it has the layer's output range)."""
    layer = layers.get(name)
    if layer is None:
        owner = next((lay for n, lay in layers.items()
                      if name == f"{n}_{_activation(lay)}"), None)
        span = outputs.get(name) or (owner and outputs[owner.name])
        if span and "result" in precision:
            precision["result"] = _type(span, bits)
        return
    span = linear.get(name) or outputs.get(name)
    if "result" in precision and span:
        precision["result"] = _type(span, bits)
    weights = layer.get_weights()
    kind = type(layer).__name__
    if kind in KERNEL_CLASSES and weights:
        _set_kernel(precision, layer, weights, bits, inputs[name])
    elif kind == "BatchNormalization":
        scale, shift = _batchnorm(layer)
        precision["scale"] = _type(_span(scale), bits)
        precision["bias"] = _type(_span(shift), bits)
    elif kind in _POOL_CLASSES and "accum" in precision:
        window = np.prod(layer.input.shape[1:-1]) if "Global" in kind \
            else np.prod(layer.get_config()["pool_size"])
        integer, fraction = _fields(_type(inputs[name], bits))
        precision["accum"] = _accum(integer + _log2(window) + 1,
                                    fraction + bits)


def _set_kernel(precision: dict, layer: Any, weights: list, bits: int,
                input_span: tuple) -> None:
    kernel = weights[0]
    precision["weight"] = _type(_span(kernel), bits, signed=True)
    bias_int = 1
    if len(weights) > 1:
        precision["bias"] = _type(_span(weights[1]), bits, signed=True)
        bias_int = _fields(precision["bias"])[0]
    w_int, w_frac = _fields(precision["weight"])
    x_type = _type(input_span, bits)
    x_int, x_frac = _fields(x_type)
    x_mag = x_int - (0 if x_type.startswith("ufixed") else 1)
    n_in = int(np.prod(np.shape(kernel)[:-1]))
    # |sum of n_in products + bias| < 2^(w_int-1+x_mag) n_in + 2^(b-1).
    integer = max(w_int - 1 + x_mag + _log2(n_in), bias_int - 1) + 2
    precision["accum"] = _accum(integer, w_frac + x_frac)


def _batchnorm(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    config = layer.get_config()
    weights = dict(zip([w.path.split("/")[-1] for w in layer.weights],
                       layer.get_weights()))
    gamma = weights.get("gamma", 1.0)
    beta = weights.get("beta", 0.0)
    scale = gamma / np.sqrt(weights["moving_variance"] + config["epsilon"])
    return np.asarray(scale), np.asarray(beta - weights["moving_mean"] * scale)


def _span(values: Any) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.min()), float(values.max())


def _type(span: tuple[float, float], bits: int,
          signed: bool | None = None) -> str:
    """The narrowest-integer `fixed<bits,I>` holding span (saturating at
    most one step below a power-of-two maximum)."""
    low, high = span
    signed = low < 0 if signed is None else signed
    peak = max(abs(low), abs(high))
    integer = 1 if not peak > 0 else math.ceil(math.log2(peak)) + signed
    integer = min(max(integer, signed - bits + 2), bits + 32)
    kind = "fixed" if signed else "ufixed"
    return f"{kind}<{bits},{integer},RND,SAT>"


def _accum(integer: int, fraction: int) -> str:
    return f"fixed<{integer + fraction},{integer}>"


def _fields(type_name: str) -> tuple[int, int]:
    """(integer bits, fraction bits) of "fixed<W,I,...>"."""
    width, integer = type_name.split("<")[1].rstrip(">").split(",")[:2]
    return int(integer), int(width) - int(integer)


def _log2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(int(n), 1))))


def unsupported(model: Any, error: Exception) -> UnsupportedLayerError:
    text = str(error)
    named = [f"{layer.name!r} ({type(layer).__name__})"
             for layer in model.layers if type(layer).__name__ in text]
    which = ", ".join(named) if named else "a layer"
    return UnsupportedLayerError(
        f"hls4ml cannot convert {which} of model {model.name!r}: {text}")


def import_hls4ml():
    try:
        import hls4ml
    except ImportError as error:
        raise ImportError("fnas_keras.deploy needs hls4ml: pip install "
                          "'hls4ml>=1.3,<1.4'") from error
    return hls4ml
