"""The Keras side of the latency model: models -> layer dicts -> verdicts.

`layer_dicts` reads a built Keras model (Sequential or functional, nested
models flattened, multi-input layers) by duck typing, so `fnas_keras.fpga`
never needs TensorFlow. `LatencyConstraint` turns a model into a verdict
against a latency spec and caches it per architecture.
"""

import json
from collections.abc import Sequence
from typing import Any

from fnas_keras import fpga
from fnas_keras import validation


def layer_dicts(model: Any) -> list[dict]:
    """Reads a built Keras model into the latency model's layer dicts.

    Each dict has "class_name", "config", "input_shape" (a tuple, or a list
    of tuples for a multi-input layer), "output_shape", "name" and "inbound"
    (indices of the dicts producing its inputs). Nested models are flattened
    in place; their inputs are wired to the outer producers.

    Args:
        model: a built Keras Sequential or functional model.

    Returns:
        The layer dicts in topological order, InputLayers first.

    Raises:
        ValueError: the model is not built (it has no symbolic inputs), or a
            layer cannot be located in the model's graph.
    """
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError) as e:
        raise ValueError(f"model {getattr(model, 'name', model)!r} is not "
                         f"built; call it on data or build it with an input "
                         f"shape first") from e
    if not inputs:
        raise ValueError(f"model {getattr(model, 'name', model)!r} is not "
                         f"built; it has no inputs")
    out: list[dict] = []
    _walk(model, None, out, {})
    return out


def _shape(tensor: Any) -> tuple:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _walk(model: Any, sources: list[int] | None, out: list[dict],
          outer: dict[int, int]) -> None:
    """Appends a model's layers to `out`; maps its outputs into `outer`."""
    producer: dict[int, int] = {}
    graph = _graph_nodes(model)
    for k, t in enumerate(model.inputs):
        if sources is None:
            out.append({"class_name": "InputLayer", "name": f"input_{k}",
                        "config": {}, "input_shape": _shape(t),
                        "output_shape": _shape(t), "inbound": []})
            producer[id(t)] = len(out) - 1
        else:
            producer[id(t)] = sources[k]
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        node = _node_in(layer, producer, graph)
        srcs = [producer[id(t)] for t in node.input_tensors]
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):
            inner: dict[int, int] = {}
            _walk(layer, srcs, out, inner)
            for t_out, t_in in zip(node.output_tensors, layer.outputs):
                producer[id(t_out)] = inner[id(t_in)]
            continue
        shapes = [_shape(t) for t in node.input_tensors]
        out.append({
            "class_name": type(layer).__name__, "name": layer.name,
            "config": layer.get_config(),
            "input_shape": shapes[0] if len(shapes) == 1 else shapes,
            "output_shape": _shape(node.output_tensors[0]),
            "inbound": srcs})
        for t in node.output_tensors:
            producer[id(t)] = len(out) - 1
    for t in model.outputs:
        outer[id(t)] = producer[id(t)]


def _graph_nodes(model: Any) -> set[int]:
    """Ids of the calls that lead from the model's inputs to its outputs.

    A layer keeps a node per call, and a reloaded or rebuilt model has
    stale ones; walking back from the outputs finds the live graph.
    """
    seen: set[int] = set()
    inputs = {id(t) for t in model.inputs}
    stack = list(model.outputs)
    while stack:
        tensor = stack.pop()
        history = getattr(tensor, "_keras_history", None)
        if id(tensor) in inputs or history is None:
            continue
        node = history[0]._inbound_nodes[history[1]]
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.input_tensors)
    return seen


def _node_in(layer: Any, producer: dict[int, int], graph: set[int]) -> Any:
    """The layer's call in this graph, whose inputs are all known."""
    nodes = list(getattr(layer, "_inbound_nodes", []))
    live = [n for n in nodes if id(n) in graph] or nodes
    for node in reversed(live):
        tensors = list(node.input_tensors)
        if tensors and all(id(t) in producer for t in tensors):
            return node
    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not "
                     f"connected to the model's inputs")


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
        mapping: "pipelined" or "shared".
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
        self._cache: dict[str, tuple[bool, fpga.LatencyReport]] = {}
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
        if not getattr(model, "built", False) or not _has_inputs(model):
            self._build(model)
        return self.check_layers(layer_dicts(model))

    def check_layers(self, layers: Sequence[dict]
                     ) -> tuple[bool, fpga.LatencyReport]:
        """Verdict for layer dicts; cached per architecture."""
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


def _has_inputs(model: Any) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False
