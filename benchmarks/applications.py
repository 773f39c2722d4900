"""keras.applications networks through the FPGA latency model.

Builds MobileNetV2, ResNet50, VGG16, EfficientNetB0 and DenseNet121
(weights=None, 224x224x3), reads their layer dicts once, and prints one row
per network, word width and mapping: latency, DSP, BRAM18, LUTRAM (LUTs) and
URAM used.

Run:
    .venv/bin/python benchmarks/applications.py
    .venv/bin/python benchmarks/applications.py --nets=VGG16 --bits=8 \
        --device=zcu102 --mappings=shared,auto
"""

from collections.abc import Iterator

import entry
from absl import flags

from fnas_keras import fpga

NETS = ("MobileNetV2", "ResNet50", "VGG16", "EfficientNetB0", "DenseNet121")

_DEVICE = flags.DEFINE_string("device", "zcu102", "Catalogue device name.")
_NETS = flags.DEFINE_list("nets", list(NETS), "keras.applications names.")
_BITS = flags.DEFINE_list("bits", ["8", "16"], "Word widths.")
_MAPPINGS = flags.DEFINE_list("mappings", ["shared", "pipelined", "auto"],
                              "Mappings (those the model knows).")
_SIZE = flags.DEFINE_integer("size", 224, "Input rows and columns.")

HEADER = (f"{'net':<16}{'bits':>5} {'mapping':<10}{'chosen':<10}"
          f"{'latency_ms':>12}{'DSP':>7}{'BRAM18':>8}{'LUTRAM':>9}"
          f"{'URAM':>6}")


def layers_of(name: str, size: int = 224) -> list[dict]:
    """The layer dicts of a keras.applications net (imports Keras)."""
    import keras

    from fnas_keras import keras_reader

    model = getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3))
    return keras_reader.layer_dicts(model)


def rows(name: str, layers: list[dict], device: str, bits: list[int],
         mappings: list[str]) -> Iterator[str]:
    """One formatted row per (bits, mapping) the model knows."""
    for b in bits:
        for m in mappings:
            if m not in fpga.MAPPINGS:
                continue
            r = fpga.analyze(layers, device, bits=b, mapping=m)
            yield (f"{name:<16}{b:>5} {m:<10}"
                   f"{getattr(r, 'chosen', r.mapping):<10}"
                   f"{r.latency_ms:>12.3f}{r.dsp_used:>7}"
                   f"{r.bram18_used:>8}"
                   f"{_opt(getattr(r, 'lutram_used', None)):>9}"
                   f"{_opt(getattr(r, 'uram_used', None)):>6}")


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def main(argv: list[str]) -> None:
    del argv
    bits = [int(b) for b in _BITS.value]
    dev = fpga.device(_DEVICE.value)
    print(f"device: {dev.name} ({dev.board})")
    print(HEADER)
    for name in _NETS.value:
        layers = layers_of(name, _SIZE.value)
        for line in rows(name, layers, dev.name, bits, _MAPPINGS.value):
            print(line, flush=True)


if __name__ == "__main__":
    entry.run(main)
