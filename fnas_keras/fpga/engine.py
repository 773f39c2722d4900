"""One pipelined engine's tiling: the fastest within its DSP and memory share.

A search calls best_tiling for the same few workloads with many lane,
memory and port budgets (the bandwidth shares move on a grid, the DSP and
memory shares with every network), so the work is layered by what it
depends on:

* `_grid` (per workload, word width and lane cap): every candidate tiling,
  (Tm, Tn) rows by (Tr, Tc) columns, with the parts of its cycles and
  memory that do not depend on the ports, and each row's columns in order
  of their BRAM18.
* `_Front` (per ports as well): per weight placement (tiling.VARIANTS),
  each row's staircase (a column is kept when it is faster than every
  column of the row with fewer or equal BRAM18 before it), all sorted by
  (cycles, lanes, BRAM18, LUTs).
* `best_tiling` (per budget as well): the first entry of the front within
  the budget (lanes, BRAM18, LUTRAM), as a Choice.

A dropped entry always has a kept one in its row and placement with no
more cycles, BRAM18 and LUTs and the same lanes, so the first fit has the
fewest cycles of every tiling and placement within the budget (tested
against an exhaustive search).
"""

import bisect
import functools
from typing import NamedTuple

import numpy as np

from fnas_keras.fpga import memory
from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload

# Tr/Tc candidates kept per dimension: the largest tiles by trip count.
ROW_CANDIDATES = 16


class _Grid(NamedTuple):
    """Every candidate tiling of one workload: (Tm, Tn) rows, (Tr, Tc) columns.

    Columns are in each row's order of BRAM18 (`order`); every array of
    shape (rows, columns) is stored in that order. `extra` holds, per
    weight placement, the rows' (BRAM18, LUTs) beyond the tile banks.
    """

    tm: np.ndarray  # (rows, 1)
    tn: np.ndarray  # (rows, 1)
    tr: np.ndarray  # (rows, columns)
    tc: np.ndarray  # (rows, columns)
    io_blocks: np.ndarray  # input and output banks, BRAM18
    in_words: np.ndarray  # tI numerator
    new_words: np.ndarray  # tI numerator of a resident engine
    out_words: np.ndarray  # tO numerator
    compute: np.ndarray  # tComp
    trips: np.ndarray  # sequential groups ceil(R/Tr) ceil(C/Tc) ceil(M/Tm)
    weight_words: np.ndarray  # tW numerator, (rows, 1)
    passes: np.ndarray  # ceil(N / Tn), (rows, 1)
    extra: tuple[tuple[np.ndarray, np.ndarray], ...]  # by variant
    row_sizes: tuple[int, ...]  # Tr candidates, smallest first


@functools.lru_cache(maxsize=1024)
def _grid(w: workload.Workload, bits: int, lanes_cap: int) -> _Grid | None:
    """The port-independent part of the search (None: no (Tm, Tn) fits)."""
    m, n = tiling.per_group(w)
    tm, tn = np.meshgrid(tiling.candidates(m), tiling.candidates(n),
                         indexing="ij")
    keep = tm * tn <= lanes_cap
    if not keep.any():
        return None
    tm, tn = tm[keep][:, None], tn[keep][:, None]
    row_sizes = tiling.candidates(w.R, ROW_CANDIDATES)
    tr, tc = _columns(w, row_sizes)
    tr, tc = tr[None, :], tc[None, :]
    k_eff, kw_eff = w.D * (w.K - 1) + 1, w.Dw * (w.Kw - 1) + 1
    cols_in = w.Sw * tc + kw_eff - w.Sw
    lanes_in = tiling.in_lanes(w, tm, tn)
    io = (memory.bram18(lanes_in, 2 * (w.S * tr + k_eff - w.S) * cols_in,
                        bits)
          + memory.bram18(tm, 2 * tr * tc, bits))
    order = np.argsort(io, axis=1, kind="stable")
    tr = np.take_along_axis(np.broadcast_to(tr, io.shape), order, axis=1)
    tc = np.take_along_axis(np.broadcast_to(tc, io.shape), order, axis=1)
    cols_in = w.Sw * tc + kw_eff - w.Sw
    banks = tm * tn
    extra = []
    for v in tiling.VARIANTS:
        depth = tiling.weight_depth(w, tm, tn, v)
        if v == tiling.LUTRAM:
            extra.append((0 * banks, memory.lutram(banks, depth, bits)))
        else:
            blocks = memory.bram18(banks, depth, bits)
            if v == tiling.RESIDENT:
                blocks = blocks + tiling.line_buffer_bram18(w, tm, tn, bits)
            extra.append((blocks, 0 * banks))
    return _Grid(
        tm=tm, tn=tn, tr=tr, tc=tc,
        io_blocks=np.take_along_axis(io, order, axis=1),
        in_words=lanes_in * (w.S * tr + k_eff - w.S) * cols_in,
        new_words=lanes_in * w.S * tr * cols_in,
        out_words=tm * tr * tc, compute=w.K * w.Kw * tr * tc,
        trips=tiling.sequential_groups(w) * ((-(-w.R // tr))
                                             * (-(-w.C // tc))
                                             * (-(-m // tm))),
        weight_words=banks * w.K * w.Kw, passes=-(-n // tn),
        extra=tuple(extra), row_sizes=tuple(row_sizes[::-1].tolist()))


def _columns(w: workload.Workload,
             row_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Tr, Tc) candidates, pruned.

    A column goes when an earlier one is no worse in every
    port-independent factor of cycles and memory (tile trips, input tile
    rows x columns, Tr Tc): cycles and BRAM18 never fall as any of them
    grows, at any ports, in any (Tm, Tn) row and placement, so the earlier
    column is as fast, fits whenever the later one fits, and wins ties.
    """
    tr, tc = np.meshgrid(row_sizes, tiling.candidates(w.C, ROW_CANDIDATES),
                         indexing="ij")
    tr, tc = tr.ravel(), tc.ravel()
    k_eff, kw_eff = w.D * (w.K - 1) + 1, w.Dw * (w.Kw - 1) + 1
    factors = np.stack([
        (-(-w.R // tr)) * (-(-w.C // tc)),
        (w.S * tr + k_eff - w.S) * (w.Sw * tc + kw_eff - w.Sw), tr * tc])
    no_worse = (factors[:, :, None] <= factors[:, None, :]).all(axis=0)
    keep = ~np.triu(no_worse, 1).any(axis=0)
    return tr[keep], tc[keep]


def _cycles(g: _Grid, w: workload.Workload, p: tiling.Ports,
            resident: bool) -> np.ndarray:
    """tiling.layer_cycles over the grid, with the same float operations."""
    cycles = (g.new_words if resident else g.in_words) / p.i
    cycles -= tiling.EPS
    np.ceil(cycles, out=cycles)
    if not resident:
        np.maximum(cycles, np.ceil(g.weight_words / p.w - tiling.EPS),
                   out=cycles)
    np.maximum(cycles, g.compute, out=cycles)
    cycles *= g.passes
    t_o = g.out_words / p.o
    t_o -= tiling.EPS
    np.ceil(t_o, out=t_o)
    np.maximum(cycles, t_o, out=cycles)
    cycles *= g.trips
    if resident:
        cycles += tiling.once(w, p, preloaded=True)
    return cycles


class _Front:
    """The tilings worth keeping at one ports setting, fastest first."""

    __slots__ = ("w", "p", "bits", "tm", "tn", "tr", "tc", "cycles",
                 "blocks", "luts", "lanes", "variant", "_fewest_lanes",
                 "_fewest_blocks", "row_sizes", "_choices")

    def __init__(self, w: workload.Workload, p: tiling.Ports, bits: int,
                 g: _Grid | None, variants: tuple[int, ...]) -> None:
        self.w, self.p, self.bits = w, p, bits
        self._choices: dict[tuple[int, float], tiling.Choice] = {}
        if g is None:  # nothing fits the lane cap
            self.tm = self.tn = self.tr = self.tc = self.cycles = []
            self.blocks = self.lanes = self.luts = self.variant = []
            self._fewest_lanes = self._fewest_blocks = []
            self.row_sizes = ()
            return
        parts = []
        for resident in (False, True):
            placements = [v for v in variants
                          if (v == tiling.RESIDENT) == resident]
            if placements:
                parts += _staircase(g, w, p, placements)
        cols = [np.concatenate(c) for c in zip(*parts)]
        cycles, ints = cols[0], np.stack(cols[1:])
        # ints: tm, tn, tr, tc, blocks, luts, lanes, variant
        final = np.lexsort((ints[7], ints[5], ints[4], ints[6], cycles))
        ints = ints[:, final]
        (self.tm, self.tn, self.tr, self.tc, self.blocks, self.luts,
         self.lanes, self.variant) = ints.tolist()
        self.cycles = cycles[final].tolist()
        # The fewest blocks and lanes of any entry up to each one, negated
        # so that they never fall: no entry before where a budget's bisect
        # lands fits it.
        self._fewest_blocks, self._fewest_lanes = (
            -np.minimum.accumulate(ints[[4, 6]], axis=1)).tolist()
        self.row_sizes = g.row_sizes

    def first_fit(self, lanes: int, bram: int, luts: int) -> int:
        """Index of the fastest tiling within the budget, or -1."""
        i = max(bisect.bisect_left(self._fewest_lanes, -lanes),
                bisect.bisect_left(self._fewest_blocks, -bram))
        used, blocks, lut = self.lanes, self.blocks, self.luts
        for j in range(i, len(used)):
            if used[j] <= lanes and blocks[j] <= bram and lut[j] <= luts:
                return j
        return -1

    def choice(self, i: int, slack: float, bram: int,
               luts: int) -> tiling.Choice:
        """Entry i as a Choice, its Tr cut for row bands when slack > 0.

        The cut keeps entry i's (Tm, Tn, Tc) and placement; a streamed
        entry may also become resident (a line buffer makes small bands
        cheap) when that gives more bands within the slack and the
        budget.
        """
        c = self._cut(i, slack, False)
        if slack > 0 and not c.resident:
            r = self._cut(i, slack, True)
            if (r.tiling.Tr < c.tiling.Tr and r.bram18 <= bram
                    and r.lutram <= luts and r.cycles <= c.cycles
                    * (1.0 + slack)):
                return r
        return c

    def _cut(self, i: int, slack: float, resident: bool) -> tiling.Choice:
        key = (i, slack, resident)
        c = self._choices.get(key)
        if c is None:
            c = self._choices[key] = self._make_choice(i, slack, resident)
        return c

    def _make_choice(self, i: int, slack: float,
                     resident: bool) -> tiling.Choice:
        t = tiling.Tiling(self.tm[i], self.tn[i], self.tr[i], self.tc[i])
        variant = tiling.RESIDENT if resident else self.variant[i]
        if slack > 0:
            t = self._more_bands(t, variant, self.cycles[i] * (1.0 + slack),
                                 resident and variant != self.variant[i])
        return tiling.choice(self.w, t, self.p, self.bits, variant, True)

    def _more_bands(self, t: tiling.Tiling, variant: int, most: float,
                    switched: bool) -> tiling.Tiling:
        """The smallest Tr candidate below t's within `most` cycles.

        Only Tr changes, and an engine's memory never grows as Tr shrinks,
        so a smaller Tr always fits what t fitted (`switched`: t's own
        placement differs; Tr = t's is then tried too).
        """
        resident = variant == tiling.RESIDENT
        for tr in self.row_sizes:
            if tr > t.Tr or (tr == t.Tr and not switched):
                break
            banded = tiling.Tiling(t.Tm, t.Tn, tr, t.Tc)
            if tiling.layer_cycles(self.w, banded, self.p, resident,
                                   True) <= most:
                return banded
        return t


def _staircase(g: _Grid, w: workload.Workload, p: tiling.Ports,
               variants: list[int]) -> list[tuple[np.ndarray, ...]]:
    """The entries worth keeping of placements with the same cycles.

    In each row (columns by BRAM18), a column is kept when it is faster
    than every column before it; a placement adds the same BRAM18 or LUTs
    to every column of a row, so the kept columns are the same for all.

    Returns:
        Per placement: cycles, tm, tn, tr, tc, blocks, luts, lanes,
        variant (1-D each).
    """
    cycles = _cycles(g, w, p, variants[0] == tiling.RESIDENT)
    best = np.minimum.accumulate(cycles, axis=1)
    useful = np.ones(cycles.shape, dtype=bool)
    useful[:, 1:] = cycles[:, 1:] < best[:, :-1]
    row, col = np.nonzero(useful)
    tm, tn = g.tm[row, 0], g.tn[row, 0]
    kept = (cycles[row, col], tm, tn, g.tr[row, col], g.tc[row, col])
    io = g.io_blocks[row, col]
    out = []
    for v in variants:
        blocks, luts = g.extra[v]
        out.append(kept + (io + blocks[row, 0], luts[row, 0], tm * tn,
                           np.full(len(row), v)))
    return out


@functools.lru_cache(maxsize=8192)
def _front(w: workload.Workload, p: tiling.Ports, bits: int,
           lanes_cap: int, variants: tuple[int, ...]) -> _Front:
    return _Front(w, p, bits, _grid(w, bits, lanes_cap), variants)


@functools.lru_cache(maxsize=65536)
def best_tiling(w: workload.Workload, lanes: int, bram: int,
                p: tiling.Ports, bits: int, lanes_cap: int | None = None,
                slack: float = 0.0, luts: int = 0) -> tiling.Choice:
    """The tiling with the fewest cycles within a lane and memory budget.

    Args:
        w: a "conv" workload.
        lanes: MAC lanes available (DSP share / dsp_per_mac), Tm Tn <= lanes.
        bram: BRAM18 blocks available (URAM counted as BRAM18).
        p: the engine's memory ports.
        bits: word width.
        lanes_cap: the largest lane budget searched (defaults to `lanes`);
            pass the device's so that engines of any share reuse one search.
        slack: with slack > 0, the fastest tiling's Tr is then cut to the
            smallest candidate (the most row bands) that keeps its cycles
            within (1 + slack) times the fewest, so that the next engine of
            a pipeline can start sooner.
        luts: LUTRAM LUTs available for weight banks (0: none).

    Returns:
        The Choice over every tiling and weight placement; ties go to fewer
        cycles, then fewer lanes, then fewer blocks, then fewer LUTs.

    Raises:
        ResourceError: not even Tm = Tn = Tr = Tc = 1 fits.
    """
    key = tiling.shape_key(w)
    variants = (tiling.STREAMED, tiling.RESIDENT) + (
        (tiling.LUTRAM,) if luts > 0 else ())
    front = _front(key, p, bits, max(lanes, lanes_cap or 0), variants)
    i = front.first_fit(lanes, bram, luts)
    if i < 0:
        raise tiling.ResourceError(
            f"layer {tuple(w[1:8])} (M, N, R, C, K, S, groups) needs at least"
            f" 1 MAC lane and {tiling.min_bram18(w, bits)} BRAM18 at {bits} "
            f"bits; its share is {lanes} lanes and {bram} BRAM18")
    return front.choice(i, slack, bram, luts)
