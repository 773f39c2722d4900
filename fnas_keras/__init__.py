"""FNAS for Keras: FPGA-implementation-aware neural architecture search.

`fnas_keras.fpga` is the FPGA performance model and never imports
TensorFlow; `fnas_keras.analyze` is `fpga.analyze` that also reads a built
Keras model; the tuner-facing names load TensorFlow on first use.

Example:
    >>> import fnas_keras
    >>> tuner = fnas_keras.FNAS(build_model, objective="val_accuracy",
    ...                         max_trials=20, device="xc7z020",
    ...                         latency_spec_ms=8.0, directory="runs")
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "analyze": ("fnas_keras.keras_reader", "analyze"),
    "FNAS": ("fnas_keras.tuner", "FNAS"),
    "gated": ("fnas_keras.gating", "gated"),
    "FNASOracle": ("fnas_keras.oracle", "FNASOracle"),
    "FNASHyperModel": ("fnas_keras.hypermodel", "FNASHyperModel"),
    "LatencyConstraint": ("fnas_keras.constraint", "LatencyConstraint"),
    "Controller": ("fnas_keras.controller", "Controller"),
    "fpga": ("fnas_keras.fpga", None),
    "data": ("fnas_keras.data", None),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    """Imports the public names lazily, so `fnas_keras.fpga` stays light."""
    if name not in _LAZY:
        raise AttributeError(f"module 'fnas_keras' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)
