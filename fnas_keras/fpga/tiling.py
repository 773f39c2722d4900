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
_EPS = 1e-9
# Tr/Tc candidates kept per dimension: the largest tiles by trip count.
_ROW_CANDIDATES = 16
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


def _per_group(w: workload.Workload) -> tuple[int, int]:
    return max(w.M // w.groups, 1), max(w.N // w.groups, 1)


def terms(w: workload.Workload, t: Tiling,
          p: Ports) -> tuple[int, int, int, int]:
    """The per-tile cycles (tI, tW, tComp, tO) of a conv workload."""
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    rows_in = w.S * t.Tr + k_eff - w.S
    cols_in = w.Sw * t.Tc + kw_eff - w.Sw
    t_i = math.ceil(t.Tn * rows_in * cols_in / p.i - _EPS)
    t_w = math.ceil(t.Tm * t.Tn * w.K * w.Kw / p.w - _EPS)
    t_comp = w.K * w.Kw * t.Tr * t.Tc
    t_o = math.ceil(t.Tm * t.Tr * t.Tc / p.o - _EPS)
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
    m, n = _per_group(w)
    t_i, t_w, t_comp, t_o = terms(w, t, p)
    l1 = max(t_i, t_w, t_comp)
    l2 = max(math.ceil(n / t.Tn) * l1, t_o)
    return (w.groups * math.ceil(w.R / t.Tr) * math.ceil(w.C / t.Tc)
            * math.ceil(m / t.Tm) * l2)


def stream_cycles(w: workload.Workload, p: Ports) -> int:
    """Cycles of a streaming pass: the slower of reading and writing."""
    return max(math.ceil(w.in_words / p.i - _EPS),
               math.ceil(w.out_words / p.o - _EPS), 1)


@functools.lru_cache(maxsize=4096)
def stream(w: workload.Workload, p: Ports) -> Choice:
    """A streaming pass as an engine: no DSP, no BRAM, memory-bound."""
    return Choice(None, stream_cycles(w, p), 0, "memory", 0)


def bound(w: workload.Workload, t: Tiling | None, p: Ports) -> str:
    """Roofline verdict: "compute" if tComp sets the pace, else "memory"."""
    if w.kind != "conv" or t is None:
        return "memory"
    _, n = _per_group(w)
    t_i, t_w, t_comp, t_o = terms(w, t, p)
    compute = t_comp >= max(t_i, t_w) and math.ceil(n / t.Tn) * t_comp >= t_o
    return "compute" if compute else "memory"


def _blocks(words: int | np.ndarray, bits: int) -> int | np.ndarray:
    return -(-(words * bits) // BRAM18_BITS)


def bram18(w: workload.Workload, t: Tiling, bits: int) -> int:
    """BRAM18 blocks of an engine, double-buffered (FNAS_NOTES section 5).

    Input 2 Tn ceil(Tr Tc b / 18K), output 2 Tm ceil(Tr Tc b / 18K), weights
    2 Tm Tn ceil(K Kw b / 18K).
    """
    tile = _blocks(t.Tr * t.Tc, bits)
    return (2 * t.Tn * tile + 2 * t.Tm * tile
            + 2 * t.Tm * t.Tn * _blocks(w.K * w.Kw, bits))


def dsp(t: Tiling, bits: int) -> int:
    """DSP slices of Tm x Tn lanes: ceil(Tm Tn dsp_per_mac)."""
    return math.ceil(t.Tm * t.Tn * devices.dsp_per_mac(bits))


def min_bram18(w: workload.Workload, bits: int) -> int:
    """BRAM18 blocks of the smallest tiling (1, 1, 1, 1)."""
    return _min_bram18(w.K * w.Kw, bits)


@functools.lru_cache(maxsize=1024)
def _min_bram18(taps: int, bits: int) -> int:
    return 4 * _blocks(1, bits) + 2 * _blocks(taps, bits)


def candidates(n: int, cap: int | None = None) -> np.ndarray:
    """Tile sizes worth trying for a loop of n: ceil(n / q) for q >= 1.

    A larger tile with the same trip count only costs more per tile, so
    the smallest size for each trip count is the only one that can matter.
    With `cap`, keeps the `cap` largest sizes and always 1.
    """
    sizes = np.unique(-(-n // np.arange(1, n + 1)))[::-1]
    if cap is not None and len(sizes) > cap:
        sizes = np.concatenate([sizes[:cap - 1], [1]])
    return sizes.astype(np.int64)


def _grid_cycles(w: workload.Workload, tm: np.ndarray, tn: np.ndarray,
                 tr: np.ndarray, tc: np.ndarray, p: Ports,
                 bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised layer_cycles and bram18 over broadcast tile arrays."""
    m, n = _per_group(w)
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    taps = w.K * w.Kw
    t_i = np.ceil(tn * (w.S * tr + k_eff - w.S) * (w.Sw * tc + kw_eff - w.Sw)
                  / p.i - _EPS)
    t_w = np.ceil(tm * tn * taps / p.w - _EPS)
    t_o = np.ceil(tm * tr * tc / p.o - _EPS)
    l1 = np.maximum(np.maximum(t_i, t_w), taps * tr * tc)
    l2 = np.maximum(-(-n // tn) * l1, t_o)
    trips = (-(-w.R // tr)) * (-(-w.C // tc)) * (-(-m // tm))
    cycles = w.groups * trips * l2
    tile = _blocks(tr * tc, bits)
    blocks = 2 * (tn + tm) * tile + 2 * tm * tn * _blocks(taps, bits)
    return cycles, blocks


def _key(w: workload.Workload) -> workload.Workload:
    # Row geometry for the schedule does not change the tiling.
    return w._replace(H=0, pad_top=0)


@functools.lru_cache(maxsize=8192)
def _front(w: workload.Workload, p: Ports, bits: int,
           lanes_cap: int) -> tuple[np.ndarray, ...]:
    """All tilings worth keeping, sorted by (cycles, lanes, bram18)."""
    m, n = _per_group(w)
    tm, tn = np.meshgrid(candidates(m), candidates(n), indexing="ij")
    keep = tm * tn <= lanes_cap
    tm, tn = tm[keep][:, None], tn[keep][:, None]
    tr, tc = np.meshgrid(candidates(w.R, _ROW_CANDIDATES),
                         candidates(w.C, _ROW_CANDIDATES), indexing="ij")
    tr, tc = tr.ravel()[None, :], tc.ravel()[None, :]
    cycles, blocks = _grid_cycles(w, tm, tn, tr, tc, p, bits)
    # Per (Tm, Tn): keep only (Tr, Tc) that improve cycles as BRAM grows.
    order = np.lexsort((cycles, blocks), axis=1)
    cycles = np.take_along_axis(cycles, order, axis=1)
    blocks = np.take_along_axis(blocks, order, axis=1)
    best_before = np.minimum.accumulate(cycles, axis=1)
    useful = np.ones_like(cycles, dtype=bool)
    useful[:, 1:] = cycles[:, 1:] < best_before[:, :-1]
    rows_, cols_ = np.nonzero(useful)
    picked = order[rows_, cols_]
    out_tm, out_tn = tm[rows_, 0], tn[rows_, 0]
    out_tr, out_tc = tr[0, picked], tc[0, picked]
    out_c, out_b = cycles[rows_, cols_], blocks[rows_, cols_]
    lanes = out_tm * out_tn
    final = np.lexsort((out_b, lanes, out_c))
    return (out_tm[final], out_tn[final], out_tr[final], out_tc[final],
            lanes[final], out_b[final], out_c[final])


def _more_bands(w: workload.Workload, t: Tiling, cycles: int, bram: int,
                p: Ports, bits: int, slack: float) -> Tiling:
    """The smallest Tr, at the same Tm, Tn, Tc, within slack and BRAM."""
    tr = candidates(w.R, _ROW_CANDIDATES)
    tr = tr[tr < t.Tr]
    if not len(tr):
        return t
    c, b = _grid_cycles(w, np.int64(t.Tm), np.int64(t.Tn), tr,
                        np.int64(t.Tc), p, bits)
    ok = (c <= cycles * (1.0 + slack)) & (b <= bram)
    if not ok.any():
        return t
    return t._replace(Tr=int(tr[ok][-1]))


@functools.lru_cache(maxsize=65536)
def best_tiling(w: workload.Workload, lanes: int, bram: int, p: Ports,
                bits: int, lanes_cap: int | None = None,
                slack: float = 0.0) -> Choice:
    """The tiling with the fewest cycles within a lane and BRAM budget.

    Args:
        w: a "conv" workload.
        lanes: MAC lanes available (DSP share / dsp_per_mac), Tm Tn <= lanes.
        bram: BRAM18 blocks available.
        p: the engine's memory ports.
        bits: word width.
        lanes_cap: the largest lane budget searched (defaults to `lanes`);
            pass the device's so that engines of any share reuse one search.
        slack: with slack > 0, the fastest tiling's Tr is then cut to the
            smallest candidate (the most row bands) that keeps its cycles
            within (1 + slack) times the fewest and fits the BRAM, so that
            the next engine of a pipeline can start sooner.

    Returns:
        The Choice; ties go to fewer cycles, then fewer lanes, then fewer
        blocks.

    Raises:
        ResourceError: not even Tm = Tn = Tr = Tc = 1 fits.
    """
    tm, tn, tr, tc, used, blocks, cycles = _front(
        _key(w), p, bits, max(lanes, lanes_cap or 0))
    fits = (used <= lanes) & (blocks <= bram)
    i = int(fits.argmax())
    if not fits[i]:
        raise ResourceError(
            f"layer {tuple(w[1:8])} (M, N, R, C, K, S, groups) needs at least"
            f" 1 MAC lane and {min_bram18(w, bits)} BRAM18 at {bits} bits; "
            f"its share is {lanes} lanes and {bram} BRAM18")
    t = Tiling(int(tm[i]), int(tn[i]), int(tr[i]), int(tc[i]))
    if slack > 0:
        t = _more_bands(w, t, int(cycles[i]), bram, p, bits, slack)
        return Choice(t, layer_cycles(w, t, p), bram18(w, t, bits),
                      bound(w, t, p), dsp(t, bits))
    return Choice(t, int(cycles[i]), int(blocks[i]), bound(w, t, p),
                  dsp(t, bits))


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
    unique = list(dict.fromkeys(_key(w) for w in ws))
    counts = np.array([sum(_key(w) == u for w in ws) for u in unique])
    if unroll is None:
        tm = _union([candidates(_per_group(u)[0]) for u in unique], lanes)
        tn = _union([candidates(_per_group(u)[1]) for u in unique], lanes)
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
        m, n = _per_group(u)
        t = Tiling(int(min(tm[j], m)), int(min(tn[j], n)), int(trs[j]),
                   int(tcs[j]))
        by_key[u] = Choice(t, layer_cycles(u, t, p), bram18(u, t, bits),
                           bound(u, t, p), dsp(t, bits))
    engine = (int(tm[j]), int(tn[j]))
    return engine, [by_key[_key(w)] for w in ws]


def _shared_layer(w: workload.Workload, tm: np.ndarray, tn: np.ndarray,
                  bram: int, p: Ports, bits: int
                  ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Per (Tm, Tn): the layer's fewest cycles and its (Tr, Tc)."""
    m, n = _per_group(w)
    tme = np.minimum(tm, m)[:, None]
    tne = np.minimum(tn, n)[:, None]
    tr, tc = np.meshgrid(candidates(w.R, _SHARED_ROW_CANDIDATES),
                         candidates(w.C, _SHARED_ROW_CANDIDATES),
                         indexing="ij")
    tr, tc = tr.ravel()[None, :], tc.ravel()[None, :]
    cycles, blocks = _grid_cycles(w, tme, tne, tr, tc, p, bits)
    cycles = np.where(blocks <= bram, cycles, np.inf)
    arg = cycles.argmin(axis=1)
    rows_ = np.arange(len(tm))
    return cycles[rows_, arg], (tr[0, arg], tc[0, arg])
