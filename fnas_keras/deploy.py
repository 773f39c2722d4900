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
import time
from typing import Any

import numpy as np

from fnas_keras import fpga
from fnas_keras import hls_readme
from fnas_keras import keras_reader
from fnas_keras import precision

_CACHE_SIZE = 8
_CACHE: collections.OrderedDict = collections.OrderedDict()


UnsupportedLayerError = precision.UnsupportedLayerError
precision_config = precision.precision_config


class CompilerNotFoundError(RuntimeError):
    """g++, which hls4ml's C simulation is compiled with, is not on PATH."""


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
    report = keras_reader.analyze(model, device, bits=bits, mapping=mapping)
    layers = {layer.name: layer for layer in model.layers}
    factors = {}
    for row in report.layers:
        layer = layers.get(row.name)
        if row.tiling is None or layer is None or \
                type(layer).__name__ not in precision.KERNEL_CLASSES:
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
                        part: str | None = None,
                        config: dict | None = None) -> np.ndarray:
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
        config: An hls4ml config to use instead (e.g. `precision_config`'s,
            edited).

    Returns:
        The outputs, float32, of shape `(len(x),) + model output shape`.

    Raises:
        CompilerNotFoundError: When g++ is not on PATH.
        UnsupportedLayerError: When hls4ml cannot convert a layer.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    calibration = x if calibration is None else calibration
    dev, part = _device_and_part(device, part)
    config = config or _design_config(model, dev, bits, calibration, mapping)
    hls_model = _compiled(model, config, part, dev.clock_mhz)
    out = np.asarray(hls_model.predict(x), dtype=np.float32)
    return out.reshape((len(x),) + tuple(model.outputs[0].shape[1:]))


def export_hls(model: Any, device: Any, bits: int, output_dir: str,
               calibration: Any = None, *, mapping: str = "pipelined",
               part: str | None = None, config: dict | None = None) -> str:
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
        config: An hls4ml config to use instead.

    Returns:
        `output_dir`.
    """
    dev, part = _device_and_part(device, part)
    config = config or _design_config(model, dev, bits, calibration, mapping)
    hls_model = _convert(model, config, output_dir, part, dev.clock_mhz)
    hls_model.write()
    hls_readme.write(output_dir, model, dev, part, bits,
                     reuse_factors(model, dev, bits, mapping), config)
    return output_dir


def evaluate(model: Any, x: Any, y: Any, device: Any, bits: int,
             calibration: Any = None, **kwargs: Any) -> dict[str, float]:
    """Float against fixed-point accuracy of a classifier on (x, y).

    Args:
        model, x, device, bits, calibration, kwargs: As for
            `fixed_point_predict`.
        y: Integer labels.

    Returns:
        "float" and "fixed" accuracies, "agreement" (the fraction of equal
        predicted classes) and "seconds" (compile and C simulation).
    """
    floats = model.predict(np.asarray(x, dtype=np.float32), verbose=0)
    started = time.perf_counter()
    fixed = fixed_point_predict(model, x, device, bits, calibration,
                                **kwargs)
    return {"float": accuracy(floats, y), "fixed": accuracy(fixed, y),
            "agreement": agreement(fixed, floats),
            "seconds": time.perf_counter() - started}


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
    config = precision.precision_config(model, bits, calibration)
    for name, figures in reuse_factors(model, device, bits,
                                       mapping).items():
        entry = config["LayerName"].setdefault(name, {})
        entry["ReuseFactor"] = figures["reuse_factor"]
        entry["Strategy"] = ("Resource" if figures["reuse_factor"] > 1
                             else "Latency")
    return config


def _compiled(model: Any, config: dict, part: str, clock_mhz: float):
    """The loaded C simulation, compiled once per model, weights, config."""
    key = _cache_key(model, config, f"{part}@{clock_mhz}")
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


def _cache_key(model: Any, config: dict, target: str) -> str:
    """A digest of the architecture, weights and types, without names.

    Keras numbers the layers of each build anew (conv2d_4, conv2d_8...);
    the same child rebuilt and reloaded computes the same, so it hits.
    """
    layers = [(type(layer).__name__, {k: v for k, v in
                                      layer.get_config().items()
                                      if k != "name"})
              for layer in model.layers]
    digest = hashlib.sha256()
    digest.update(json.dumps(layers, sort_keys=True, default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    types = [config.get("Model"), list(config["LayerName"].values())]
    digest.update(json.dumps(types, sort_keys=True, default=str).encode())
    digest.update(target.encode())
    return digest.hexdigest()


def _convert(model: Any, config: dict, directory: str, part: str,
             clock_mhz: float):
    hls4ml = precision.import_hls4ml()
    try:
        return hls4ml.converters.convert_from_keras_model(
            model, hls_config=copy.deepcopy(config), output_dir=directory,
            backend="Vitis", io_type="io_stream", part=part,
            clock_period=round(1000.0 / clock_mhz, 3))
    except Exception as error:  # noqa: BLE001 - named and re-raised.
        raise precision.unsupported(model, error) from error

