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
N count one group's channels.

fpga.engine searches a pipelined engine's tiling; `shared_tiling` below
searches the shared engine's.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from fnas_keras.fpga import devices
from fnas_keras.fpga import workload

BRAM18_BITS = 18 * 1024
# Memory ports of an engine: input, weight, output (FNAS_NOTES section 5).
N_PORTS = 3
# Floating-point slack for ceil(words / words-per-cycle).
EPS = 1e-9
# Tr/Tc candidates kept per dimension by the shared engine's search (the
# largest tiles by trip count; engine.ROW_CANDIDATES for pipelined ones).
_SHARED_ROW_CANDIDATES = 10


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
    """An engine's tiling (None for a stream pass) and what it costs."""

    tiling: Tiling | None
    cycles: int
    bram18: int
    bound: str
    dsp: int


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


def per_group(w: workload.Workload) -> tuple[int, int]:
    """(M, N) of one group: the loop bounds Tm and Tn tile."""
    return max(w.M // w.groups, 1), max(w.N // w.groups, 1)


def terms(w: workload.Workload, t: Tiling,
          p: Ports) -> tuple[int, int, int, int]:
    """The per-tile cycles (tI, tW, tComp, tO) of a conv workload."""
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    rows_in = w.S * t.Tr + k_eff - w.S
    cols_in = w.Sw * t.Tc + kw_eff - w.Sw
    t_i = math.ceil(t.Tn * rows_in * cols_in / p.i - EPS)
    t_w = math.ceil(t.Tm * t.Tn * w.K * w.Kw / p.w - EPS)
    t_comp = w.K * w.Kw * t.Tr * t.Tc
    t_o = math.ceil(t.Tm * t.Tr * t.Tc / p.o - EPS)
    return t_i, t_w, t_comp, t_o


def layer_cycles(w: workload.Workload, t: Tiling, p: Ports) -> int:
    """Cycles of a conv workload at a fixed tiling (one image).

    Args:
        w: a "conv" workload.
        t: the tiling; each tile size must lie in [1, its loop bound].
        p: the engine's memory ports.

    Returns:
        groups * ceil(R/Tr) ceil(C/Tc) ceil(M/Tm) L2.
    """
    m, n = per_group(w)
    t_i, t_w, t_comp, t_o = terms(w, t, p)
    l1 = max(t_i, t_w, t_comp)
    l2 = max(math.ceil(n / t.Tn) * l1, t_o)
    return (w.groups * math.ceil(w.R / t.Tr) * math.ceil(w.C / t.Tc)
            * math.ceil(m / t.Tm) * l2)


def stream_cycles(w: workload.Workload, p: Ports) -> int:
    """Cycles of a streaming pass: the slower of reading and writing."""
    return max(math.ceil(w.in_words / p.i - EPS),
               math.ceil(w.out_words / p.o - EPS), 1)


@functools.lru_cache(maxsize=4096)
def stream(w: workload.Workload, p: Ports) -> Choice:
    """A streaming pass as an engine: no DSP, no BRAM, memory-bound."""
    return Choice(None, stream_cycles(w, p), 0, "memory", 0)


def bound(w: workload.Workload, t: Tiling | None, p: Ports) -> str:
    """Roofline verdict: "compute" if tComp sets the pace, else "memory"."""
    if w.kind != "conv" or t is None:
        return "memory"
    _, n = per_group(w)
    t_i, t_w, t_comp, t_o = terms(w, t, p)
    compute = t_comp >= max(t_i, t_w) and math.ceil(n / t.Tn) * t_comp >= t_o
    return "compute" if compute else "memory"


def blocks_of(words: int | np.ndarray, bits: int) -> int | np.ndarray:
    """BRAM18 blocks that hold `words` words of `bits` (one buffer)."""
    return -(-(words * bits) // BRAM18_BITS)


def bram18(w: workload.Workload, t: Tiling, bits: int) -> int:
    """BRAM18 blocks of an engine, double-buffered (FNAS_NOTES section 5).

    Input 2 Tn ceil(Tr Tc b / 18K), output 2 Tm ceil(Tr Tc b / 18K), weights
    2 Tm Tn ceil(K Kw b / 18K).
    """
    tile = blocks_of(t.Tr * t.Tc, bits)
    return (2 * t.Tn * tile + 2 * t.Tm * tile
            + 2 * t.Tm * t.Tn * blocks_of(w.K * w.Kw, bits))


def dsp(t: Tiling, bits: int) -> int:
    """DSP slices of Tm x Tn lanes: ceil(Tm Tn dsp_per_mac)."""
    return math.ceil(t.Tm * t.Tn * devices.dsp_per_mac(bits))


def min_bram18(w: workload.Workload, bits: int) -> int:
    """BRAM18 blocks of the smallest tiling (1, 1, 1, 1)."""
    return _min_bram18(w.K * w.Kw, bits)


@functools.lru_cache(maxsize=1024)
def _min_bram18(taps: int, bits: int) -> int:
    return 4 * blocks_of(1, bits) + 2 * blocks_of(taps, bits)


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
                tr: np.ndarray, tc: np.ndarray, p: Ports,
                bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised layer_cycles and bram18 over broadcast tile arrays."""
    m, n = per_group(w)
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    taps = w.K * w.Kw
    t_i = np.ceil(tn * (w.S * tr + k_eff - w.S) * (w.Sw * tc + kw_eff - w.Sw)
                  / p.i - EPS)
    t_w = np.ceil(tm * tn * taps / p.w - EPS)
    t_o = np.ceil(tm * tr * tc / p.o - EPS)
    l1 = np.maximum(np.maximum(t_i, t_w), taps * tr * tc)
    l2 = np.maximum(-(-n // tn) * l1, t_o)
    trips = (-(-w.R // tr)) * (-(-w.C // tc)) * (-(-m // tm))
    cycles = w.groups * trips * l2
    tile = blocks_of(tr * tc, bits)
    blocks = 2 * (tn + tm) * tile + 2 * tm * tn * blocks_of(taps, bits)
    return cycles, blocks


@functools.lru_cache(maxsize=4096)
def shape_key(w: workload.Workload) -> workload.Workload:
    """w without its row geometry (H, pad_top): a cache key for tilings.

    The schedule needs the geometry; the tile model does not, so layers
    that differ only in it share one search.
    """
    return w._replace(H=0, pad_top=0)


def _union(sizes: list[np.ndarray], cap: int) -> np.ndarray:
    values = np.unique(np.concatenate(sizes))
    return values[values <= cap]


def shared_tiling(ws: list[workload.Workload], lanes: int, bram: int,
                  p: Ports, bits: int,
                  unroll: tuple[int, int] | None = None
                  ) -> tuple[tuple[int, int], list[Choice]]:
    """One engine for all layers: a unified (Tm, Tn), per-layer Tr and Tc.

    The (Tm, Tn) minimising the summed cycles is searched over the union of
    the layers' candidate sizes (Zhang et al.); a layer with fewer channels
    than Tm or Tn leaves lanes idle. The engine's buffers are shared, so each
    layer's tiling must fit the whole BRAM budget.

    Args:
        ws: the "conv" workloads, in order (repeats allowed).
        lanes: MAC lanes of the engine.
        bram: BRAM18 blocks of the engine.
        p: memory ports.
        bits: word width.
        unroll: a fixed (Tm, Tn), or None to search.

    Returns:
        The engine's (Tm, Tn), and one Choice per workload with Tm and Tn
        clipped to the layer's channels.

    Raises:
        ResourceError: some layer cannot fit at any (Tr, Tc).
    """
    if not ws:
        return (0, 0), []
    unique = list(dict.fromkeys(shape_key(w) for w in ws))
    counts = np.array([sum(shape_key(w) == u for w in ws) for u in unique])
    if unroll is None:
        tm = _union([candidates(per_group(u)[0]) for u in unique], lanes)
        tn = _union([candidates(per_group(u)[1]) for u in unique], lanes)
        tm, tn = np.meshgrid(tm, tn, indexing="ij")
        keep = tm * tn <= lanes
        tm, tn = tm[keep], tn[keep]
    else:
        tm, tn = np.array([unroll[0]]), np.array([unroll[1]])
    total = np.zeros(len(tm))
    best = []
    for u, count in zip(unique, counts):
        cycles, arg = _shared_layer(u, tm, tn, bram, p, bits)
        total += count * cycles
        best.append(arg)
    order = np.lexsort((tn, tm * tn, total))
    j = int(order[0])
    if not np.isfinite(total[j]):
        raise ResourceError(
            f"a layer does not fit {bram} BRAM18 at {bits} bits even at "
            f"Tr = Tc = 1 with (Tm, Tn) = ({int(tm[j])}, {int(tn[j])})")
    by_key = {}
    for u, (trs, tcs) in zip(unique, best):
        m, n = per_group(u)
        t = Tiling(int(min(tm[j], m)), int(min(tn[j], n)), int(trs[j]),
                   int(tcs[j]))
        by_key[u] = Choice(t, layer_cycles(u, t, p), bram18(u, t, bits),
                           bound(u, t, p), dsp(t, bits))
    engine = (int(tm[j]), int(tn[j]))
    return engine, [by_key[shape_key(w)] for w in ws]


def _shared_layer(w: workload.Workload, tm: np.ndarray, tn: np.ndarray,
                  bram: int, p: Ports, bits: int
                  ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Per (Tm, Tn): the layer's fewest cycles and its (Tr, Tc)."""
    m, n = per_group(w)
    tme = np.minimum(tm, m)[:, None]
    tne = np.minimum(tn, n)[:, None]
    tr, tc = np.meshgrid(candidates(w.R, _SHARED_ROW_CANDIDATES),
                         candidates(w.C, _SHARED_ROW_CANDIDATES),
                         indexing="ij")
    tr, tc = tr.ravel()[None, :], tc.ravel()[None, :]
    cycles, blocks = grid_cycles(w, tme, tne, tr, tc, p, bits)
    cycles = np.where(blocks <= bram, cycles, np.inf)
    arg = cycles.argmin(axis=1)
    rows_ = np.arange(len(tm))
    return cycles[rows_, arg], (tr[0, arg], tc[0, arg])
