"""The tile model (FNAS_NOTES section 5; Zhang et al., FPGA 2015).

An engine unrolls Tm x Tn MAC lanes and pipelines the K x Kw x Tr x Tc loops.
Per tile, in cycles (each memory transfer rounded up to whole cycles):

* input load   tI = ceil(Tn (S Tr + K' - S)(Sw Tc + Kw' - Sw) / I_p),
  K' = D (K - 1) + 1 the dilated kernel extent
* weight load  tW = ceil(Tm Tn K Kw / W_p)
* compute      tComp = K Kw Tr Tc
* output store tO = ceil(Tm Tr Tc / O_p)

With double buffering L1 = max(tI, tW, tComp), L2 = max(ceil(N/Tn) L1, tO) and
a layer takes groups * ceil(R/Tr) ceil(C/Tc) ceil(M/Tm) L2 cycles, where M and
N count one group's channels. A depthwise layer's Tm lanes run Tm channels
side by side (each reads its own input channel, Tn = 1).

An engine places its weights streamed per tile (BRAM18 or LUTRAM banks, the
terms above) or resident (whole on chip, with a line buffer: tW leaves L1
and tI loads only new rows); its memory is packed by fpga.memory.

fpga.engine searches a pipelined engine's tiling; fpga.shared the shared
engine's.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from fnas_keras.fpga import devices
from fnas_keras.fpga import memory
from fnas_keras.fpga import workload

# Memory ports of an engine: input, weight, output (FNAS_NOTES section 5).
N_PORTS = 3
# Floating-point slack for ceil(words / words-per-cycle).
EPS = 1e-9


class ResourceError(ValueError):
    """A network does not fit the device even at the smallest tiling."""


class Ports(NamedTuple):
    """Words per cycle on an engine's input, weight and output ports."""

    i: float
    w: float
    o: float


class Tiling(NamedTuple):
    """Tile sizes: output channels, input channels, rows, columns."""

    Tm: int
    Tn: int
    Tr: int
    Tc: int


class Choice(NamedTuple):
    """An engine's tiling (None for a stream pass) and what it costs.

    bram18 counts the memory pool (BRAM18, then URAM equivalents);
    lutram the LUTs of LUTRAM weight banks; resident is True when the
    layer's whole weights stay on chip (loaded once, not once per tile).
    """

    tiling: Tiling | None
    cycles: int
    bram18: int
    bound: str
    dsp: int
    lutram: int = 0
    resident: bool = False


# Weight placements an engine may choose: streamed per tile into BRAM18
# or LUTRAM banks (Zhang et al.), or resident: the layer's whole weights
# on chip (BRAM18), loaded once per image (the shared engine) or kept from
# image to image (a pipelined engine owns its layer), with a line buffer
# that keeps
# the last K - S input rows of every channel, so that a tile loads only
# its S Tr new input rows (a dataflow engine).
STREAMED, LUTRAM, RESIDENT = 0, 1, 2
VARIANTS = (STREAMED, LUTRAM, RESIDENT)


def ports(device: devices.FpgaDevice, bits: int,
          share: float = 1.0) -> Ports:
    """Memory ports from DRAM bandwidth, clock and word width.

    The device's bytes per cycle, in words of `bits`, split evenly over the
    three ports, times `share` (the engine's part of the bandwidth).

    Args:
        device: the FPGA.
        bits: word width, 8, 16 or 32.
        share: fraction of the DRAM bandwidth this engine gets, in (0, 1].

    Returns:
        Ports in words per cycle.
    """
    devices.dsp_per_mac(bits)  # validates bits
    words = device.bytes_per_cycle() / (bits / 8) / N_PORTS * share
    return Ports(words, words, words)


def channel_parallel(w: workload.Workload) -> bool:
    """Depthwise: one group per input channel, run side by side.

    Each of Tm lanes computes one output channel from its own input channel
    (channel parallelism), instead of one group after another.
    """
    return w.groups > 1 and w.groups == w.N


def per_group(w: workload.Workload) -> tuple[int, int]:
    """(M, N) the loop bounds Tm and Tn tile.

    One group's channels; a depthwise layer's Tm tiles all its channels
    and Tn is 1.
    """
    if channel_parallel(w):
        return w.M, 1
    return max(w.M // w.groups, 1), max(w.N // w.groups, 1)


def sequential_groups(w: workload.Workload) -> int:
    """Groups run one after another (1 for depthwise)."""
    return 1 if channel_parallel(w) else w.groups


def in_lanes(w: workload.Workload, tm: "int | np.ndarray",
             tn: "int | np.ndarray") -> "int | np.ndarray":
    """Input channels of a tile: Tn, or ceil(Tm / multiplier) depthwise."""
    if channel_parallel(w):
        return -(-tm // max(w.M // w.N, 1))
    return tn


def weight_words(w: workload.Workload) -> int:
    """The layer's weights in words (all groups)."""
    return w.M * per_group(w)[1] * w.K * w.Kw


def halo_rows(w: workload.Workload) -> int:
    """Input rows a row band shares with the one before: K' - S."""
    return max(w.D * (w.K - 1) + 1 - w.S, 0)


def input_width(w: workload.Workload) -> int:
    """Input columns a whole output row reads."""
    return (w.C - 1) * w.Sw + w.Dw * (w.Kw - 1) + 1


def line_buffer_words(w: workload.Workload) -> int:
    """Words of a resident engine's line buffer: K' - S rows, every
    channel, the full width."""
    return w.N * halo_rows(w) * input_width(w)


def once(w: workload.Workload, p: Ports, preloaded: bool = False) -> int:
    """A resident engine's one-time loads per image: the line buffer's
    first rows, and its weights unless they stay from image to image
    (`preloaded`: an engine of the pipelined mapping owns its layer)."""
    lines = math.ceil(line_buffer_words(w) / p.i - EPS)
    if preloaded:
        return lines
    return math.ceil(weight_words(w) / p.w - EPS) + lines


def terms(w: workload.Workload, t: Tiling,
          p: Ports) -> tuple[int, int, int, int]:
    """The per-tile cycles (tI, tW, tComp, tO) of a conv workload."""
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    rows_in = w.S * t.Tr + k_eff - w.S
    cols_in = w.Sw * t.Tc + kw_eff - w.Sw
    t_i = math.ceil(in_lanes(w, t.Tm, t.Tn) * rows_in * cols_in / p.i - EPS)
    t_w = math.ceil(t.Tm * t.Tn * w.K * w.Kw / p.w - EPS)
    t_comp = w.K * w.Kw * t.Tr * t.Tc
    t_o = math.ceil(t.Tm * t.Tr * t.Tc / p.o - EPS)
    return t_i, t_w, t_comp, t_o


def layer_cycles(w: workload.Workload, t: Tiling, p: Ports,
                 resident: bool = False, preloaded: bool = False) -> int:
    """Cycles of a conv workload at a fixed tiling (one image).

    Args:
        w: a "conv" workload.
        t: the tiling; each tile size must lie in [1, its loop bound].
        p: the engine's memory ports.
        resident: the weights stay on chip and a line buffer keeps the
            last K' - S input rows: tW leaves L1, tI loads only new rows,
            and `once` is added.
        preloaded: resident weights stay from image to image (no load).

    Returns:
        groups * ceil(R/Tr) ceil(C/Tc) ceil(M/Tm) L2 (groups: those run in
        sequence), plus the one weight load when resident.
    """
    m, n = per_group(w)
    t_i, t_w, t_comp, t_o = terms(w, t, p)
    if resident:
        t_i = resident_input(w, t, p)
        l1 = max(t_i, t_comp)
    else:
        l1 = max(t_i, t_w, t_comp)
    l2 = max(math.ceil(n / t.Tn) * l1, t_o)
    cycles = (sequential_groups(w) * math.ceil(w.R / t.Tr)
              * math.ceil(w.C / t.Tc) * math.ceil(m / t.Tm) * l2)
    if resident:
        cycles += once(w, p, preloaded)
    return cycles


def resident_input(w: workload.Workload, t: Tiling, p: Ports) -> int:
    """tI of a resident engine: only the S Tr new rows of its tile."""
    cols_in = w.Sw * t.Tc + w.Dw * (w.Kw - 1) + 1 - w.Sw
    return math.ceil(in_lanes(w, t.Tm, t.Tn) * w.S * t.Tr * cols_in / p.i
                     - EPS)


def stream_cycles(w: workload.Workload, p: Ports) -> int:
    """Cycles of a streaming pass: the slower of reading and writing."""
    return max(math.ceil(w.in_words / p.i - EPS),
               math.ceil(w.out_words / p.o - EPS), 1)


@functools.lru_cache(maxsize=4096)
def stream(w: workload.Workload, p: Ports) -> Choice:
    """A streaming pass as an engine: no DSP, no BRAM, memory-bound."""
    return Choice(None, stream_cycles(w, p), 0, "memory", 0)


def bound(w: workload.Workload, t: Tiling | None, p: Ports,
          resident: bool = False) -> str:
    """Roofline verdict: "compute" if tComp sets the pace, else "memory"."""
    if w.kind != "conv" or t is None:
        return "memory"
    _, n = per_group(w)
    t_i, t_w, t_comp, t_o = terms(w, t, p)
    if resident:
        t_i, t_w = resident_input(w, t, p), 0
    compute = t_comp >= max(t_i, t_w) and math.ceil(n / t.Tn) * t_comp >= t_o
    return "compute" if compute else "memory"


def io_bram18(w: workload.Workload, t: Tiling,
              bits: int) -> "int | np.ndarray":
    """BRAM18 of the double-buffered input and output tile banks.

    One input bank per input lane holding the tile with its halo, one
    output bank per output lane holding Tr x Tc words, packed by
    fpga.memory.
    """
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    rows_in = w.S * t.Tr + k_eff - w.S
    cols_in = w.Sw * t.Tc + kw_eff - w.Sw
    return (memory.bram18(in_lanes(w, t.Tm, t.Tn), 2 * rows_in * cols_in,
                          bits)
            + memory.bram18(t.Tm, 2 * t.Tr * t.Tc, bits))


def weight_depth(w: workload.Workload, tm: "int | np.ndarray",
                 tn: "int | np.ndarray", variant: int) -> "int | np.ndarray":
    """Words per weight bank: two kernels (double-buffered) when streamed,
    every kernel the lane ever uses when resident."""
    if variant != RESIDENT:
        return 2 * w.K * w.Kw
    m, n = per_group(w)
    return (sequential_groups(w) * (-(-m // tm)) * (-(-n // tn))
            * w.K * w.Kw)


def memory_of(w: workload.Workload, t: Tiling, bits: int,
              variant: int = STREAMED) -> tuple[int, int]:
    """(BRAM18, LUTRAM LUTs) of an engine at a tiling and weight placement.

    Tm x Tn weight banks, in BRAM18 (STREAMED, RESIDENT) or LUTRAM; a
    resident engine's line buffer in BRAM18 too.
    """
    depth = weight_depth(w, t.Tm, t.Tn, variant)
    banks = t.Tm * t.Tn
    blocks = int(io_bram18(w, t, bits))
    if variant == RESIDENT:
        blocks += int(line_buffer_bram18(w, t.Tm, t.Tn, bits))
    if variant == LUTRAM:
        return blocks, int(memory.lutram(banks, depth, bits))
    return blocks + int(memory.bram18(banks, depth, bits)), 0


def bram18(w: workload.Workload, t: Tiling, bits: int,
           variant: int = STREAMED) -> int:
    """BRAM18 blocks of an engine (memory_of's first figure)."""
    return memory_of(w, t, bits, variant)[0]


def line_buffer_bram18(w: workload.Workload, tm: "int | np.ndarray",
                       tn: "int | np.ndarray",
                       bits: int) -> "int | np.ndarray":
    """BRAM18 of a resident engine's line buffer: a bank per input lane."""
    lanes = in_lanes(w, tm, tn)
    depth = -(-w.N // lanes) * halo_rows(w) * input_width(w)
    return memory.bram18(lanes, depth, bits)


def dsp(t: Tiling, bits: int) -> int:
    """DSP slices of Tm x Tn lanes: ceil(Tm Tn dsp_per_mac)."""
    return math.ceil(t.Tm * t.Tn * devices.dsp_per_mac(bits))


def min_bram18(w: workload.Workload, bits: int) -> int:
    """BRAM18 blocks of the smallest tiling (1, 1, 1, 1), weights in BRAM."""
    return bram18(shape_key(w), Tiling(1, 1, 1, 1), bits)


def candidates(n: int, cap: int | None = None) -> np.ndarray:
    """Tile sizes worth trying for a loop of n: ceil(n / q) for q >= 1.

    A larger tile with the same trip count only costs more per tile, so
    the smallest size for each trip count is the only one that can matter.
    With `cap`, keeps the `cap` largest sizes and always 1.
    """
    # ceil(n / q) never grows with q: the sizes come out largest first, and
    # np.unique (whose first call imports numpy.ma) is not needed.
    sizes = -(-n // np.arange(1, max(n, 0) + 1, dtype=np.int64))
    sizes = sizes[np.append(True, sizes[1:] != sizes[:-1])[:len(sizes)]]
    if cap is not None and len(sizes) > cap:
        sizes = np.concatenate([sizes[:cap - 1], [1]])
    return sizes.astype(np.int64)


def grid_cycles(w: workload.Workload, tm: np.ndarray, tn: np.ndarray,
                tr: np.ndarray, tc: np.ndarray, p: Ports, bits: int,
                variant: int = STREAMED, preloaded: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised layer_cycles and memory_of over broadcast tile arrays.

    Returns:
        (cycles, BRAM18, LUTRAM LUTs) arrays.
    """
    m, n = per_group(w)
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    taps = w.K * w.Kw
    rows_in = w.S * tr + k_eff - w.S
    cols_in = w.Sw * tc + kw_eff - w.Sw
    lanes_in = in_lanes(w, tm, tn)
    new_rows = w.S * tr if variant == RESIDENT else rows_in
    t_i = np.ceil(lanes_in * new_rows * cols_in / p.i - EPS)
    t_o = np.ceil(tm * tr * tc / p.o - EPS)
    l1 = np.maximum(t_i, taps * tr * tc)
    if variant != RESIDENT:
        l1 = np.maximum(l1, np.ceil(tm * tn * taps / p.w - EPS))
    l2 = np.maximum(-(-n // tn) * l1, t_o)
    trips = (-(-w.R // tr)) * (-(-w.C // tc)) * (-(-m // tm))
    cycles = sequential_groups(w) * trips * l2
    blocks = (memory.bram18(lanes_in, 2 * rows_in * cols_in, bits)
              + memory.bram18(tm, 2 * tr * tc, bits))
    if variant == RESIDENT:
        cycles = cycles + once(w, p, preloaded)
        blocks = blocks + line_buffer_bram18(w, tm, tn, bits)
    depth = weight_depth(w, tm, tn, variant)
    if variant == LUTRAM:
        luts = memory.lutram(tm * tn, depth, bits) + 0 * blocks
    else:
        blocks = blocks + memory.bram18(tm * tn, depth, bits)
        luts = 0 * blocks
    return cycles, blocks, luts


@functools.lru_cache(maxsize=4096)
def shape_key(w: workload.Workload) -> workload.Workload:
    """w without its row geometry (H, pad_top): a cache key for tilings.

    The schedule needs the geometry; the tile model does not, so layers
    that differ only in it share one search.
    """
    return w._replace(H=0, pad_top=0)


def choice(w: workload.Workload, t: Tiling, p: Ports, bits: int,
           variant: int = STREAMED, preloaded: bool = False) -> Choice:
    """The Choice of a conv engine at a tiling and weight placement."""
    resident = variant == RESIDENT
    blocks, luts = memory_of(w, t, bits, variant)
    return Choice(t, layer_cycles(w, t, p, resident, preloaded), blocks,
                  bound(w, t, p, resident), dsp(t, bits), luts, resident)


