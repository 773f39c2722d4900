"""LatencyConstraint: a network's verdict against a latency spec.

A Keras model is read into layer dicts by `keras_reader`; the verdict on
layer dicts is cached per architecture.
"""

import json
from collections.abc import Hashable
from collections.abc import Sequence
from typing import Any

from fnas_keras import fpga
from fnas_keras import keras_reader
from fnas_keras import validation


def _key(layers: Sequence[dict]) -> str:
    """An architecture's identity: the layer dicts without layer names."""
    plain = []
    for layer in layers:
        config = {k: v for k, v in (layer.get("config") or {}).items()
                  if k != "name"}
        plain.append([layer.get("class_name"), config,
                      layer.get("input_shape"), layer.get("output_shape"),
                      layer.get("inbound")])
    return json.dumps(plain, sort_keys=True, default=str)

class LatencyConstraint:
    """Accepts or rejects a network against an FPGA latency spec.

    Args:
        device: an FpgaDevice or a catalogue name.
        latency_spec_ms: the spec in milliseconds, positive and finite;
            None only measures (every network passes).
        bits: word width, 8, 16 or 32.
        mapping: one of `fpga.MAPPINGS` ("pipelined", "shared", ...).
        input_shape: the input shape without the batch dim, used to build a
            model that is not built yet.

    Raises:
        ValueError: bad spec, bits, device or mapping (checked at once).

    Example:
        >>> gate = LatencyConstraint("xc7z020", latency_spec_ms=8.0,
        ...                          input_shape=(28, 28, 1))
        >>> ok, report = gate.check(model)  # doctest: +SKIP
        >>> gate.cache_info()
        {'hits': 0, 'misses': 0, 'size': 0}
    """

    def __init__(self, device: "str | fpga.FpgaDevice",
                 latency_spec_ms: float | None, bits: int = 16,
                 mapping: str = "pipelined",
                 input_shape: Sequence[int] | None = None) -> None:
        fpga.check(device, bits, mapping)
        self.device = fpga.device(device)
        self.latency_spec_ms = None
        if latency_spec_ms is not None:
            self.latency_spec_ms = validation.positive_number(
                "latency_spec_ms", latency_spec_ms)
        self.bits = bits
        self.mapping = mapping
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self._cache: dict[Hashable, tuple[bool, fpga.LatencyReport]] = {}
        self._hits = 0
        self._misses = 0

    def check(self, model: Any) -> tuple[bool, fpga.LatencyReport]:
        """Verdict for a Keras model, building it on input_shape if needed.

        Returns:
            (latency <= spec, or True with no spec; the LatencyReport).

        Raises:
            ValueError: the model is not built and no input shape is known,
                or a layer is unsupported.
            fpga.ResourceError: the network cannot fit the device.
        """
        if (not getattr(model, "built", False)
                or not keras_reader.has_inputs(model)):
            self._build(model)
        return self.check_layers(keras_reader.layer_dicts(model))

    def check_layers(self, layers: Sequence[dict], key: Hashable = None
                     ) -> tuple[bool, fpga.LatencyReport]:
        """Verdict for layer dicts; cached per architecture.

        Args:
            layers: the network's layer dicts.
            key: the architecture's identity, when the caller has one that
                is cheaper to get than a digest of the dicts (a preset
                child's values); it must differ between architectures.
        """
        if key is None:
            key = _key(layers)
        if key in self._cache:
            self._hits += 1
            return self._cache[key]
        self._misses += 1
        report = fpga.analyze(list(layers), self.device, bits=self.bits,
                              mapping=self.mapping)
        spec = self.latency_spec_ms
        verdict = (spec is None or report.latency_ms <= spec, report)
        self._cache[key] = verdict
        return verdict

    def cache_info(self) -> dict[str, int]:
        """Cache hits, misses and size so far."""
        return {"hits": self._hits, "misses": self._misses,
                "size": len(self._cache)}

    def _build(self, model: Any) -> None:
        if self.input_shape is None:
            raise ValueError(
                f"model {getattr(model, 'name', model)!r} is not built and "
                f"no input shape is known; pass input_shape= to "
                f"LatencyConstraint or add a keras.Input to the model")
        shape = self.input_shape
        if shape and shape[0] is not None:
            shape = (None,) + shape
        model.build(shape)

