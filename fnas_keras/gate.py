"""The latency gate: what a child goes through before it may train.

The tuner turns each sampled child into layer dicts: a preset child
(`FNASHyperModel`) straight from its hyperparameter values, any other one
by building it with placeholder weights (no fit) on the input shape read
from the search data. The oracle runs the dicts through the latency model
and judges the report against the spec. A child over the spec is rejected
and never trained.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any
from typing import Callable
from typing import Iterator
from typing import NamedTuple
from typing import Sequence

import keras
import numpy as np

from fnas_keras import constraint as constraint_module
from fnas_keras import fpga
from fnas_keras import validation

Gate = Callable[[dict], "fpga.LatencyReport | None"]

# The report's figures each trial records as metrics.
REPORT_METRICS = ("latency_ms", "dsp_used", "bram18_used", "throughput_fps")


def metric(trial, name: str) -> float | None:
    """The last value of a trial's metric, or None if it has none."""
    if not trial.metrics.exists(name):
        return None
    return trial.metrics.get_last_value(name)


class Settings(NamedTuple):
    """What a tuner's hardware arguments come to."""

    device: fpga.FpgaDevice | None
    latency_spec_ms: float | None
    enforce_spec: bool
    constraint: constraint_module.LatencyConstraint | None


def settings(
    device: "str | fpga.FpgaDevice | None",
    latency_spec_ms: float | None,
    *,
    bits: int,
    mapping: str,
    enforce_spec: bool | None,
    input_shape: Sequence[int] | None,
) -> Settings:
    """Checks a tuner's hardware arguments and builds its latency gate.

    With no device there is no gate; with a device and no spec, latency is
    measured and no child is rejected.

    Raises:
        ValueError: A spec without a device, an unknown device, bits or
            mapping, or a spec that is not a finite number > 0.
    """
    if latency_spec_ms is not None and device is None:
        raise ValueError(
            f"latency_spec_ms={latency_spec_ms} needs a device to model "
            f"latency on; known devices: {', '.join(fpga.devices())}"
        )
    dev = None if device is None else fpga.device(device)
    spec = None
    if latency_spec_ms is not None:
        spec = validation.positive_number("latency_spec_ms", latency_spec_ms)
    enforce = spec is not None if enforce_spec is None else bool(enforce_spec)
    gate = None
    if dev is not None:
        gate = constraint_module.LatencyConstraint(
            dev, spec, bits=bits, mapping=mapping, input_shape=input_shape
        )
    return Settings(dev, spec, enforce, gate)


class Verdict(NamedTuple):
    """The gate's judgement of one child."""

    rejected: bool
    latency_ms: float | None
    figures: dict | None
    reason: str
    seconds: float


def judge(
    gate: Gate | None,
    values: dict,
    spec_ms: float | None,
    enforce_spec: bool,
) -> Verdict:
    """Runs the gate on one child's hyperparameter values.

    A child that does not fit on the device at all is rejected with an
    infinite latency; one that does not build (the gate returns None)
    passes, and its trial fails.

    Args:
        gate: Values -> `fpga.LatencyReport`, or None when there is no
            latency model (every child passes).
        values: The child's hyperparameter values.
        spec_ms: The latency spec, or None.
        enforce_spec: Whether a child over the spec is rejected.

    Returns:
        The verdict; `figures` (see `REPORT_METRICS`) is set exactly when
        the gate returned a report.
    """
    if gate is None:
        return Verdict(False, None, None, "", 0.0)
    started = time.perf_counter()
    try:
        report = gate(values)
    except fpga.ResourceError as error:
        seconds = time.perf_counter() - started
        return Verdict(True, math.inf, None, str(error), seconds)
    seconds = time.perf_counter() - started
    if report is None:  # The child did not build; its trial fails.
        return Verdict(False, None, None, "", seconds)
    latency = report.latency_ms
    over = enforce_spec and spec_ms is not None and latency > spec_ms
    figures = {name: float(getattr(report, name)) for name in REPORT_METRICS}
    return Verdict(over, latency, figures, "over spec", seconds)


@contextlib.contextmanager
def placeholder_weights() -> Iterator[None]:
    """Initialises new Keras weights with zeros inside the block.

    The gate builds a child only to read its layer shapes and then drops
    it; random initialisation is most of that build's cost, and a rejected
    child must stay cheap. Backends without the hook initialise as usual.

    Example:
        >>> with placeholder_weights():
        ...     model = hypermodel.build(hp)
    """
    variable = keras.Variable
    original = getattr(variable, "_initialize_with_initializer", None)
    if original is None or not hasattr(variable, "_initialize"):
        yield
        return

    def zeros(self, initializer):
        self._initialize(keras.ops.zeros(self._shape, dtype=self._dtype))

    variable._initialize_with_initializer = zeros
    try:
        yield
    finally:
        variable._initialize_with_initializer = original


def infer_input_shape(
    fit_args: Sequence[Any], fit_kwargs: dict
) -> tuple[int, ...] | None:
    """Reads the shape of one example from what `search` was given.

    Returns:
        The shape without the batch dimension, or None when the data is of
        a kind whose shape cannot be read (the model then needs an Input).
    """
    x = fit_args[0] if fit_args else fit_kwargs.get("x")
    if x is None:
        return None
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        spec = spec[0] if isinstance(spec, tuple) else spec
        shape = getattr(spec, "shape", None)
        if shape is None or shape.rank is None:
            return None
        return shape_or_none(shape[1:])
    if hasattr(x, "shape"):
        return shape_or_none(np.shape(x)[1:])
    return None


def shape_or_none(shape: Sequence[Any] | None) -> tuple[int, ...] | None:
    """A shape as a tuple of ints, or None if it or any dimension is None."""
    if shape is None:
        return None
    dims = tuple(shape)
    if any(d is None for d in dims):
        return None
    return tuple(int(d) for d in dims)
