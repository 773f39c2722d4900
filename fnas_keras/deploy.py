"""Fixed-point truth and export: a child as the FPGA would compute it.

The latency model times a child as an 8- or 16-bit fixed-point design, but
training reports float32 accuracy. `precision_config` chooses each layer's
fixed-point types at the timed word width, from the weights' ranges and the
activations measured on calibration data; `fixed_point_predict` runs
hls4ml's bit-accurate C simulation (compiled with g++) of that design;
`export_hls` writes the hls4ml project (Vitis HLS, streaming I/O) with each
layer's parallelism taken from the latency model's engine for that layer.

Example:
    >>> from fnas_keras import deploy
    >>> probs = deploy.fixed_point_predict(model, x_val, "xc7z020", 16,
    ...                                    calibration=x_train[:256])
    >>> deploy.agreement(probs, model.predict(x_val))  # doctest: +SKIP
    0.99
    >>> deploy.export_hls(model, "xc7z020", 16, "hls", calibration=x_train)
    'hls'
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import math
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from fnas_keras import fpga
from fnas_keras import hls_readme

MIN_BITS, MAX_BITS = 4, 32
CALIBRATION_EXAMPLES = 256
_CACHE_SIZE = 8
_CACHE: collections.OrderedDict = collections.OrderedDict()
# Layers whose kernel is a matrix product hls4ml can share ReuseFactor
# times; the latency model's engine for them is Tm x Tn MAC lanes.
_KERNEL_CLASSES = ("Conv1D", "Conv2D", "Dense")
_POOL_CLASSES = ("AveragePooling1D", "AveragePooling2D",
                 "GlobalAveragePooling1D", "GlobalAveragePooling2D")


class CompilerNotFoundError(RuntimeError):
    """g++, which hls4ml's C simulation is compiled with, is not on PATH."""


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
    bits = _checked_bits(bits)
    x = _calibration(calibration)
    outputs, inputs, linear = _ranges(model, x)
    hls4ml = _hls4ml()
    try:
        config = hls4ml.utils.config_from_keras_model(
            model, granularity="name", backend="Vitis",
            default_precision=f"fixed<{bits},{bits // 2},RND,SAT>")
    except Exception as error:  # noqa: BLE001 - named and re-raised.
        raise _unsupported(model, error) from error
    layers = {layer.name: layer for layer in model.layers}
    for name, entry in config["LayerName"].items():
        _set_layer(entry.setdefault("Precision", {}), name, layers, bits,
                   outputs, inputs, linear)
    return config


def reuse_factors(model: Any, device: Any, bits: int,
                  mapping: str = "pipelined") -> dict[str, dict]:
    """Each layer's hls4ml ReuseFactor from the latency model's engine.

    The latency model gives a convolution or dense layer an engine of
    Tm x Tn MAC lanes; hls4ml computes one output position with
    n_in x n_out / ReuseFactor multipliers. The ReuseFactor is the smallest
    one hls4ml accepts that uses no more multipliers than the engine has.

    Returns:
        Per layer name: tiling, lanes, n_in, n_out, target and reuse factor.

    Raises:
        ValueError: For mapping "shared": hls4ml builds an engine per layer.
    """
    if mapping != "pipelined":
        raise ValueError(
            f"mapping {mapping!r} has no hls4ml counterpart: hls4ml builds "
            "one engine per layer (a dataflow pipeline), which is the "
            "latency model's 'pipelined' mapping; allowed: 'pipelined'")
    report = fpga.analyze(model, device, bits=bits, mapping=mapping)
    layers = {layer.name: layer for layer in model.layers}
    factors = {}
    for row in report.layers:
        layer = layers.get(row.name)
        if row.tiling is None or layer is None or \
                type(layer).__name__ not in _KERNEL_CLASSES:
            continue
        kernel = np.shape(layer.get_weights()[0])
        n_in, n_out = int(np.prod(kernel[:-1])), int(kernel[-1])
        lanes = row.tiling.Tm * row.tiling.Tn
        target = math.ceil(n_in * n_out / lanes)
        factors[row.name] = {
            "tiling": tuple(row.tiling), "lanes": lanes, "n_in": n_in,
            "n_out": n_out, "target": target, "cycles": row.cycles,
            "positions": row.workload.R * row.workload.C,
            "reuse_factor": _valid_reuse_factor(n_in, n_out, target)}
    return factors


def fixed_point_predict(model: Any, x: Any, device: Any, bits: int,
                        calibration: Any = None, *,
                        mapping: str = "pipelined",
                        part: str | None = None) -> np.ndarray:
    """The model's outputs as the fixed-point design computes them.

    Runs hls4ml's bit-accurate C simulation of the design `export_hls`
    writes. The compiled simulation is kept per architecture, weights and
    config within the process; it is built in a temporary directory that is
    removed once the library is loaded.

    Args:
        model: A built Keras model.
        x: Inputs, a numpy array (batch first).
        device: An `fpga.FpgaDevice` or catalogue name.
        bits: Word width (see `precision_config`).
        calibration: Inputs to measure activation ranges on; `x` if None.
        mapping: The latency model's mapping ("pipelined").
        part: The FPGA part number, for a device without one.

    Returns:
        The outputs, float32, of shape `(len(x),) + model output shape`.

    Raises:
        CompilerNotFoundError: When g++ is not on PATH.
        UnsupportedLayerError: When hls4ml cannot convert a layer.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    calibration = x if calibration is None else calibration
    dev, part = _device_and_part(device, part)
    config = _design_config(model, dev, bits, calibration, mapping)
    hls_model = _compiled(model, config, part, dev.clock_mhz)
    out = np.asarray(hls_model.predict(x), dtype=np.float32)
    return out.reshape((len(x),) + tuple(model.outputs[0].shape[1:]))


def export_hls(model: Any, device: Any, bits: int, output_dir: str,
               calibration: Any = None, *, mapping: str = "pipelined",
               part: str | None = None) -> str:
    """Writes the hls4ml project of the timed design.

    Vitis HLS back end, streaming I/O, the device's part and clock, the
    types of `precision_config` and the ReuseFactors of `reuse_factors`.
    Its README.md says how it corresponds to the latency model, where it
    does not, and how to build it.

    Args:
        model: A built Keras model.
        device: An `fpga.FpgaDevice` or catalogue name.
        bits: Word width.
        output_dir: The project directory (created; its files replaced).
        calibration: Inputs to measure activation ranges on (required).
        mapping: The latency model's mapping ("pipelined").
        part: The FPGA part number, for a device without one.

    Returns:
        `output_dir`.
    """
    dev, part = _device_and_part(device, part)
    config = _design_config(model, dev, bits, calibration, mapping)
    hls_model = _convert(model, config, output_dir, part, dev.clock_mhz)
    hls_model.write()
    hls_readme.write(output_dir, model, dev, part, bits,
                     reuse_factors(model, dev, bits, mapping), config)
    return output_dir


def agreement(a: Any, b: Any) -> float:
    """The fraction of examples whose predicted classes (argmax) agree."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.mean(a.argmax(-1) == b.argmax(-1)))


def accuracy(probabilities: Any, labels: Any) -> float:
    """The fraction of examples whose argmax is the label."""
    labels = np.asarray(labels).reshape(-1)
    return float(np.mean(np.asarray(probabilities).argmax(-1) == labels))


def examples(data: Any, limit: int | None = None) -> tuple:
    """The first `limit` (x, y) of numpy arrays, a tuple or a dataset."""
    if isinstance(data, (tuple, list)):
        return np.asarray(data[0])[:limit], np.asarray(data[1])[:limit]
    xs, ys, count = [], [], 0
    for batch in data:
        xs.append(np.asarray(batch[0]))
        ys.append(np.asarray(batch[1]))
        count += len(xs[-1])
        if limit is not None and count >= limit:
            break
    if not xs:
        raise ValueError("the dataset is empty: no examples to evaluate")
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]


def _checked_bits(bits: Any) -> int:
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
    the model inputs' names; pre-activations only for layers with an
    activation, computed by calling the layer with a linear activation.
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
    outputs.update({t.name: (float(x.min()), float(x.max()))
                    for t in model.inputs})
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
    if kind in _KERNEL_CLASSES and weights:
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
    width, integer = type_name.split("<")[1].split(",")[:2]
    return int(integer), int(width) - int(integer)


def _log2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(int(n), 1))))


def _valid_reuse_factor(n_in: int, n_out: int, target: int) -> int:
    """The smallest ReuseFactor >= target that hls4ml accepts.

    hls4ml's rule (FPGABackend._validate_reuse_factor): it divides
    n_in x n_out, and it is a multiple of n_in, or below n_in with
    n_in x n_out / rf a multiple of n_out.
    """
    total = n_in * n_out
    valid = [rf for rf in _divisors(total)
             if (rf % n_in == 0 if rf >= n_in
                 else math.ceil(total / rf) % n_out == 0)]
    above = [rf for rf in valid if rf >= target]
    return min(above) if above else max(valid)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _device_and_part(device: Any, part: str | None) -> tuple[Any, str]:
    dev = fpga.device(device)
    part = part or dev.part
    if not part:
        raise ValueError(
            f"device {dev.name!r} has no part number for the HLS tools; "
            "pass part='xc7z020clg400-1' (the full part, with package and "
            "speed grade) or give the FpgaDevice a part")
    return dev, part


def _design_config(model: Any, device: Any, bits: int, calibration: Any,
                   mapping: str) -> dict:
    """precision_config plus each kernel layer's ReuseFactor and strategy."""
    config = precision_config(model, bits, calibration)
    for name, figures in reuse_factors(model, device, bits,
                                       mapping).items():
        entry = config["LayerName"].setdefault(name, {})
        entry["ReuseFactor"] = figures["reuse_factor"]
        entry["Strategy"] = ("Resource" if figures["reuse_factor"] > 1
                             else "Latency")
    return config


def _compiled(model: Any, config: dict, part: str, clock_mhz: float):
    """The loaded C simulation, compiled once per model, weights, config."""
    digest = hashlib.sha256()
    digest.update(model.to_json().encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(f"{part}@{clock_mhz}".encode())
    key = digest.hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if shutil.which("g++") is None:
        raise CompilerNotFoundError(
            "g++ was not found on PATH: hls4ml's bit-accurate C simulation "
            "is compiled with g++; install it (Debian/Ubuntu: apt-get "
            f"install g++). PATH={os.environ.get('PATH', '')!r}")
    directory = tempfile.mkdtemp(prefix="fnas_hls_")
    try:
        hls_model = _convert(model, config, directory, part, clock_mhz)
        try:
            hls_model.compile()
        except Exception as error:  # noqa: BLE001 - named and re-raised.
            raise RuntimeError(
                f"g++ failed to compile the C simulation of model "
                f"{model.name!r}: {error}") from error
        # The weights are read from the project on the first call.
        shape = (1,) + tuple(model.inputs[0].shape[1:])
        hls_model.predict(np.zeros(shape, dtype=np.float32))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    _CACHE[key] = hls_model
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return hls_model


def _convert(model: Any, config: dict, directory: str, part: str,
             clock_mhz: float):
    hls4ml = _hls4ml()
    try:
        return hls4ml.converters.convert_from_keras_model(
            model, hls_config=copy.deepcopy(config), output_dir=directory,
            backend="Vitis", io_type="io_stream", part=part,
            clock_period=round(1000.0 / clock_mhz, 3))
    except Exception as error:  # noqa: BLE001 - named and re-raised.
        raise _unsupported(model, error) from error


def _unsupported(model: Any, error: Exception) -> UnsupportedLayerError:
    text = str(error)
    named = [f"{layer.name!r} ({type(layer).__name__})"
             for layer in model.layers if type(layer).__name__ in text]
    which = ", ".join(named) if named else "a layer"
    return UnsupportedLayerError(
        f"hls4ml cannot convert {which} of model {model.name!r}: {text}")


def _hls4ml():
    try:
        import hls4ml
    except ImportError as error:
        raise ImportError("fnas_keras.deploy needs hls4ml: pip install "
                          "'hls4ml>=1.3,<1.4'") from error
    return hls4ml
