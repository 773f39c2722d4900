"""The README.md of an exported hls4ml project: what it is, how to build it.

It says how the project corresponds to the design the latency model timed
(the part, clock, word width and each layer's parallelism), where it does
not, and the Vitis HLS commands that build it.
"""

from __future__ import annotations

import os
from typing import Any

_BUILD_OPT = """array set opt {
    reset      1
    csim       1
    synth      1
    cosim      0
    validation 0
    export     1
    vsynth     0
    fifo_opt   0
}
"""

_DIFFERENCES = """\
## Where it does not correspond

* **Memory.** The latency model tiles each layer and streams its weights and
  feature-map tiles from DRAM through double-buffered on-chip buffers, so a
  layer may be memory-bound. hls4ml keeps every weight on chip and streams
  activations between layers through FIFOs and line buffers: there is no
  DRAM traffic, and a network whose weights do not fit on the part will
  not fit here either.
* **Cycles.** An hls4ml layer computes one output position every
  ReuseFactor cycles, so a layer of R x C output positions takes about
  R x C x ReuseFactor cycles; the model's compute term is
  ceil(M/Tm) ceil(N/Tn) K^2 R C. They agree when the lanes divide the
  layer; when hls4ml has no ReuseFactor for the engine's exact lane count,
  the next larger one (fewer multipliers, more cycles) is used, shown
  below.
* **Parallelism within a layer** is the lane count only: hls4ml does not
  tile rows and columns (Tr, Tc), and its multipliers are shared per
  output position, not per Tm x Tn block.
* **8-bit MACs.** The model counts two 8-bit MACs per DSP48; whether Vitis
  HLS packs them so is up to the tool.
* **Layers without a kernel** (pooling, activations, padding that hls4ml
  inserts for `padding="same"`) are streaming stages here, as in the
  model, but their cost is the tool's.
* **Numbers.** The fixed-point types below are exactly what the C
  simulation (`fnas_keras.deploy.fixed_point_predict`) computes with; the
  softmax keeps hls4ml's 18-bit lookup tables.
"""

_COMMANDS = """\
## Build it

The C simulation runs anywhere with g++ (no vendor tool):

```sh
python -c "import hls4ml; m = hls4ml.converters.link_existing_project('.'); \\
m.compile()"
```

Synthesis and implementation need AMD Vitis HLS (2023.2 or later) on PATH.
`build_opt.tcl` selects the steps (here: C simulation, C synthesis, IP
export; set `cosim 1` for RTL co-simulation, `vsynth 1` for Vivado
synthesis):

```sh
cd {directory}
vitis-run --tcl build_prj.tcl --mode hls     # Vitis 2024.1 and later
vitis_hls -f build_prj.tcl                   # Vitis HLS 2023.2
```

The synthesis report lands in
`myproject_prj/solution1/syn/report/myproject_csynth.rpt`: compare its
latency and DSP count with the table above.
"""


def write(directory: str, model: Any, device: Any, part: str, bits: int,
          factors: dict[str, dict], config: dict) -> str:
    """Writes README.md and build_opt.tcl into an exported project.

    Args:
        directory: The hls4ml project directory.
        model: The Keras model exported.
        device: The FpgaDevice it was timed on.
        part: The full part number the project targets.
        bits: The word width.
        factors: `deploy.reuse_factors(...)` of the model.
        config: The hls4ml config the project was written with.

    Returns:
        The README's path.
    """
    with open(os.path.join(directory, "build_opt.tcl"), "w") as f:
        f.write(_BUILD_OPT)
    text = "\n".join([
        f"# {model.name}: hls4ml project of the timed design",
        "",
        f"Part `{part}` ({device.name}, {device.board or 'custom board'}), "
        f"clock {device.clock_mhz:g} MHz, {bits}-bit fixed point, "
        "Vitis HLS back end, streaming I/O (`io_stream`), one engine per "
        "layer as in the latency model's pipelined mapping.",
        "",
        "## Each layer's engine",
        "",
        "ReuseFactor = ceil(n_in x n_out / (Tm x Tn)), rounded up to one "
        "hls4ml accepts, so each layer has at most the multipliers the "
        "latency model gave its engine.",
        "",
        _engine_table(factors),
        "",
        "## Fixed-point types",
        "",
        _types_table(config),
        "",
        _DIFFERENCES,
        _COMMANDS.format(directory=directory),
    ])
    path = os.path.join(directory, "README.md")
    with open(path, "w") as f:
        f.write(text)
    return path


def _engine_table(factors: dict[str, dict]) -> str:
    rows = ["| layer | Tm,Tn,Tr,Tc | lanes | n_in x n_out | ReuseFactor "
            "(target) | multipliers | model cycles | hls4ml cycles (about) |",
            "|---|---|---|---|---|---|---|---|"]
    for name, f in factors.items():
        total = f["n_in"] * f["n_out"]
        rf = f["reuse_factor"]
        rows.append(
            f"| {name} | {','.join(map(str, f['tiling']))} | {f['lanes']} "
            f"| {f['n_in']} x {f['n_out']} | {rf} ({f['target']}) | "
            f"{total // rf} | {f['cycles']} | {f['positions'] * rf} |")
    return "\n".join(rows)


def _types_table(config: dict) -> str:
    rows = ["| layer | types |", "|---|---|"]
    for name, entry in config["LayerName"].items():
        types = ", ".join(f"{k} `{v}`" for k, v in
                          entry.get("Precision", {}).items())
        rows.append(f"| {name} | {types} |")
    return "\n".join(rows)
