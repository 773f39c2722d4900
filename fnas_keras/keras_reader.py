"""Keras models -> the latency model's layer dicts.

The only place that walks a Keras graph. It reads a built model
(Sequential or functional, nested models flattened, multi-input layers) by
duck typing, so neither it nor `fnas_keras.fpga` imports TensorFlow.
`analyze` is `fpga.analyze` for a Keras model as well as for layer dicts.

Example:
    >>> from fnas_keras import keras_reader
    >>> layers = keras_reader.layer_dicts(model)  # doctest: +SKIP
    >>> report = keras_reader.analyze(model, "xc7z020")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from fnas_keras import fpga


def analyze(model_or_layers: Any, device: "str | fpga.FpgaDevice",
            **settings: Any) -> "fpga.LatencyReport":
    """`fpga.analyze` for a built Keras model or a list of layer dicts.

    Args:
        model_or_layers: a built Keras model, or layer dicts.
        device: an FpgaDevice or a catalogue name.
        **settings: what `fpga.analyze` takes (bits, mapping, unroll).

    Returns:
        The LatencyReport.

    Raises:
        ValueError: the model is not built, or what `fpga.analyze` raises.
        fpga.ResourceError: the network cannot fit the device.
    """
    layers = model_or_layers
    if not isinstance(model_or_layers, (list, tuple)):
        layers = layer_dicts(model_or_layers)
    return fpga.analyze(layers, device, **settings)


def has_inputs(model: Any) -> bool:
    """Whether a Keras model knows its inputs (and so its input shape)."""
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


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
    if not has_inputs(model):
        raise ValueError(f"model {getattr(model, 'name', model)!r} is not "
                         f"built; call it on data or build it with an input "
                         f"shape first")
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
