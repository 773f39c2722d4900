"""Speed of the FPGA latency model over the paper's whole MNIST space.

Enumerates the 6,561 MNIST architectures of FNAS (28x28x1 input; four Conv2D
layers, stride 1, same padding, ReLU, kernel in {5, 7, 14} and filters in
{9, 18, 36} each; GlobalAveragePooling2D; Dense(10, softmax)), analyses each
on a device through the full model (parsing, tiling search, pipeline
schedule), and prints archs_per_second, the latency distribution and how
many architectures meet the spec.

Run:
    .venv/bin/python benchmarks/analyzer.py --latency_spec_ms=3.0
    .venv/bin/python benchmarks/analyzer.py --limit=50 --mapping=auto
"""

import itertools
import time
from collections.abc import Iterator

import entry
import numpy as np
from absl import flags

from fnas_keras import fpga

KERNELS = (5, 7, 14)
FILTERS = (9, 18, 36)
N_CONV = 4
INPUT = (28, 28, 1)
CLASSES = 10

_DEVICE = flags.DEFINE_string("device", "xc7z020", "Catalogue device name.")
_BITS = flags.DEFINE_integer("bits", 16, "Word width: 8, 16 or 32.")
_MAPPING = flags.DEFINE_enum("mapping", "pipelined", list(fpga.MAPPINGS),
                             "Network mapping.")
_SPEC = flags.DEFINE_float("latency_spec_ms", 3.0, "Latency spec in ms.")
_LIMIT = flags.DEFINE_integer("limit", 0,
                              "Analyse only the first N architectures "
                              "(0: all 6,561).")

entry.check_flags(device=entry.device, bits=entry.bits,
                  latency_spec_ms=entry.positive, limit=entry.at_least(0))


def conv(filters: int, kernel: int, channels: int) -> dict:
    """A Conv2D layer dict as layer.get_config() and the shapes give it."""
    h, w, _ = INPUT
    return {"class_name": "Conv2D",
            "config": {"filters": filters, "kernel_size": (kernel, kernel),
                       "strides": (1, 1), "padding": "same",
                       "dilation_rate": (1, 1), "groups": 1,
                       "activation": "relu"},
            "input_shape": (None, h, w, channels),
            "output_shape": (None, h, w, filters)}


def mnist_space() -> Iterator[tuple[tuple[int, int], ...]]:
    """Every architecture as ((kernel, filters), ...) per conv layer."""
    choices = list(itertools.product(KERNELS, FILTERS))
    return itertools.product(choices, repeat=N_CONV)


def mnist_layers(arch: tuple[tuple[int, int], ...]) -> list[dict]:
    """The layer dicts of one MNIST architecture (no Keras needed)."""
    h, w, channels = INPUT
    layers = []
    for kernel, filters in arch:
        layers.append(conv(filters, kernel, channels))
        channels = filters
    layers.append({"class_name": "GlobalAveragePooling2D",
                   "config": {"keepdims": False},
                   "input_shape": (None, h, w, channels),
                   "output_shape": (None, channels)})
    layers.append({"class_name": "Dense",
                   "config": {"units": CLASSES, "activation": "softmax"},
                   "input_shape": (None, channels),
                   "output_shape": (None, CLASSES)})
    return layers


def run(device: str, bits: int, mapping: str, spec_ms: float,
        limit: int = 0) -> dict:
    """Analyses the space; returns the figures main() prints.

    Args:
        device: catalogue name.
        bits: word width.
        mapping: one of fpga.MAPPINGS.
        spec_ms: latency spec in ms.
        limit: analyse only the first `limit` architectures (0: all).

    Returns:
        {"archs", "seconds", "archs_per_second" (first pass, cold caches),
        "archs_per_second_warm" (second pass), "latency_ms" (array),
        "meet_spec"}.
    """
    archs = list(mnist_space())
    if limit:
        archs = archs[:limit]
    nets = [mnist_layers(a) for a in archs]  # built outside the timing
    dev = fpga.device(device)
    latency, seconds = _timed_pass(nets, dev, bits, mapping)
    # A search analyses many children in one process: after the first
    # pass the tiling tables it built are reused, the model still runs.
    _, warm_seconds = _timed_pass(nets, dev, bits, mapping)
    return {"archs": len(nets), "seconds": seconds,
            "archs_per_second": len(nets) / seconds,
            "archs_per_second_warm": len(nets) / warm_seconds,
            "latency_ms": latency,
            "meet_spec": int((latency <= spec_ms).sum())}


def _timed_pass(nets: list, dev: fpga.FpgaDevice, bits: int,
                mapping: str) -> tuple[np.ndarray, float]:
    """Latencies of every network, and the seconds that took."""
    start = time.perf_counter()
    latency = np.array([fpga.analyze(n, dev, bits=bits,
                                     mapping=mapping).latency_ms
                        for n in nets])
    return latency, time.perf_counter() - start


def main(argv: list[str]) -> None:
    del argv
    out = run(_DEVICE.value, _BITS.value, _MAPPING.value, _SPEC.value,
              _LIMIT.value)
    q = np.percentile(out["latency_ms"], [0, 25, 50, 75, 100])
    print(f"device: {_DEVICE.value} bits: {_BITS.value} mapping: "
          f"{_MAPPING.value}")
    print(f"archs: {out['archs']} in {out['seconds']:.3f} s")
    print(f"archs_per_second: {out['archs_per_second']:.0f} (first pass, "
          f"cold caches)")
    print(f"archs_per_second_warm: {out['archs_per_second_warm']:.0f} "
          f"(second pass, tiling tables reused)")
    print("latency_ms min/q1/median/q3/max: "
          + " / ".join(f"{v:.4f}" for v in q))
    print(f"meet_spec ({_SPEC.value:g} ms): {out['meet_spec']} of "
          f"{out['archs']}")


if __name__ == "__main__":
    entry.run(main, tensorflow=False)
