"""The FNAS performance abstraction model: FPGA latency from layer shapes.

Numpy only: it never imports Keras or TensorFlow. `fnas_keras.analyze` reads a
Keras model into layer dicts first.

Example:
    >>> from fnas_keras import fpga
    >>> conv = {"class_name": "Conv2D",
    ...         "config": {"filters": 8, "kernel_size": 3, "padding": "same"},
    ...         "input_shape": (None, 28, 28, 1),
    ...         "output_shape": (None, 28, 28, 8)}
    >>> report = fpga.analyze([conv], "pynq-z1", bits=16)
    >>> report.latency_ms > 0
    True
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

from fnas_keras.fpga import devices as _devices
from fnas_keras.fpga import report as _report
from fnas_keras.fpga import schedule as _schedule
from fnas_keras.fpga import tiling as _tiling
from fnas_keras.fpga import workload as _workload

FpgaDevice = _devices.FpgaDevice
device = _devices.device
# Note: this function shadows the submodule name `fnas_keras.fpga.devices`;
# reach the module itself with importlib.import_module if ever needed.
devices = _devices.devices
aliases = _devices.aliases
dsp_per_mac = _devices.dsp_per_mac
LatencyReport = _report.LatencyReport
LayerReport = _report.LayerReport
ResourceError = _tiling.ResourceError
Tiling = _tiling.Tiling
Workload = _workload.Workload

MAPPINGS = ("pipelined", "shared", "auto")
BITS = (8, 16, 32)

__all__ = ["BITS", "MAPPINGS", "FpgaDevice", "LatencyReport", "LayerReport",
           "ResourceError", "Tiling", "Workload", "aliases", "analyze",
           "check", "device", "devices", "dsp_per_mac"]


def analyze(model_or_layers: Any, device: "str | FpgaDevice", *,
            bits: int = 16, mapping: str = "pipelined",
            unroll: tuple[int, int] | None = None) -> LatencyReport:
    """Estimates a network's FPGA latency and resources.

    Args:
        model_or_layers: a list of layer dicts (for a Keras model, use
            `fnas_keras.analyze`, which reads it into these)
            `{"class_name", "config", "input_shape", "output_shape"}` with an
            optional "inbound" list of producer indices (default: the
            previous layer) and an optional "name".
        device: an FpgaDevice or a catalogue name ("xc7z020", "zcu102").
        bits: word width, 8, 16 or 32.
        mapping: "pipelined" (FNAS: engines per layer or per segment of
            layers, pipelined by row bands), "shared" (one engine, layers
            in sequence) or "auto" (the faster of the two; the report's
            `mapping` names it and its `requested` is "auto").
        unroll: with mapping="shared", a fixed (Tm, Tn) instead of the
            searched one.

    Returns:
        The LatencyReport.

    Raises:
        ValueError: bad bits, mapping, unroll or device, or an unsupported
            layer.
        ResourceError: the network cannot fit the device.
    """
    check(device, bits, mapping)
    dev = _devices.device(device)
    if unroll is not None and mapping != "shared":
        raise ValueError(f"unroll applies to mapping='shared', not "
                         f"{mapping!r}")
    layers = _as_layers(model_or_layers)
    parsed = _workload.parse_all(layers)
    if mapping == "shared":
        return _schedule.shared(layers, parsed, dev, bits, unroll)
    if mapping == "pipelined":
        return _schedule.pipelined(layers, parsed, dev, bits)
    return _auto(layers, parsed, dev, bits)


def _auto(layers: Sequence[dict], parsed: list, dev: FpgaDevice,
          bits: int) -> LatencyReport:
    """The faster of pipelined and shared (ties: shared, one engine)."""
    fast = _schedule.shared(layers, parsed, dev, bits, None)
    try:
        piped = _schedule.pipelined(layers, parsed, dev, bits)
    except ResourceError:
        piped = None
    if piped is not None and piped.latency_cycles < fast.latency_cycles:
        fast = piped
    return dataclasses.replace(fast, requested="auto")


def check(device: "str | FpgaDevice", bits: int, mapping: str) -> None:
    """Validates analyze's settings without a network.

    Raises:
        ValueError: unknown device, bits not in 8/16/32, or unknown mapping.
    """
    _devices.device(device)
    _devices.dsp_per_mac(bits)
    if mapping not in MAPPINGS:
        raise ValueError(f"unknown mapping {mapping!r}; allowed: "
                         f"{', '.join(MAPPINGS)}")


def _as_layers(model_or_layers: Any) -> Sequence[dict]:
    if isinstance(model_or_layers, (list, tuple)):
        if not model_or_layers:
            raise ValueError("no layers to analyze")
        return model_or_layers
    raise ValueError(f"expected a list of layer dicts, got "
                     f"{type(model_or_layers).__name__}; for a Keras model "
                     f"use fnas_keras.analyze(model, ...)")
