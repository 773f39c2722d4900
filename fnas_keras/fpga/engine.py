"""One pipelined engine's tiling: the fastest within its DSP and BRAM share.

A search calls best_tiling for the same few workloads with many lane, BRAM
and port budgets (the bandwidth shares move on a grid, the DSP and BRAM
shares with every network), so the work is layered by what it depends on:

* `_grid` (per workload, word width and lane cap): every candidate tiling
  with the parts of its cycles that do not depend on the ports, ordered as
  each (Tm, Tn) row's staircase is read (by BRAM18 blocks, then by (Tr, Tc)
  candidate index), and the groups of equal blocks in each row.
* `_front` (per ports as well): the tilings worth keeping, sorted by
  (cycles, lanes, blocks). Vectorised over the whole grid at once: the
  cycles, each group's fastest tiling, and a running minimum per row.
* `best_tiling` (per budget as well): the first tiling of the front within
  the budget, and its Choice, built once per front entry.

The results are exactly those of an exhaustive search in that order: the
tie rules (fewer cycles, then fewer lanes, then fewer blocks, then the
first (Tm, Tn) and the first (Tr, Tc) in candidate order) are those of a
stable lexicographic sort of the whole grid.
"""

import bisect
import functools
from typing import NamedTuple

import numpy as np

from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload

# Tr/Tc candidates kept per dimension: the largest tiles by trip count.
ROW_CANDIDATES = 16


class _Grid(NamedTuple):
    """Every candidate tiling of one workload: (Tm, Tn) rows, (Tr, Tc) columns.

    Rows are the (Tm, Tn) pairs within the lane cap, in candidate order;
    columns the (Tr, Tc) pairs by their tile buffers' BRAM18 blocks, then
    by candidate index. A tiling's blocks are 2 (Tm + Tn) tile + weights,
    so in every row they grow with the column: each row's staircase is
    read left to right, and columns of equal tile blocks form the same
    groups in every row. The word counts are the numerators of tI, tW, tO
    (tiling.terms) before the ports.
    """

    tm: np.ndarray  # (rows, 1)
    tn: np.ndarray  # (rows, 1)
    tr: np.ndarray  # (1, columns)
    tc: np.ndarray  # (1, columns)
    blocks: np.ndarray
    in_words: np.ndarray
    weight_words: np.ndarray  # (rows, 1)
    out_words: np.ndarray
    compute: np.ndarray  # tComp, (1, columns)
    passes: np.ndarray  # ceil(N / Tn), (rows, 1)
    trips: np.ndarray  # groups ceil(R/Tr) ceil(C/Tc) ceil(M/Tm)
    groups: tuple[tuple[int, int], ...]  # column ranges of equal blocks
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
    tr, tc, tile = _columns(w, row_sizes, bits)
    tr, tc = tr[None, :], tc[None, :]
    edges = [0, *(np.flatnonzero(np.diff(tile)) + 1).tolist(), len(tile)]
    taps = w.K * w.Kw
    k_eff, kw_eff = w.D * (w.K - 1) + 1, w.Dw * (w.Kw - 1) + 1
    return _Grid(
        tm=tm, tn=tn, tr=tr, tc=tc,
        blocks=(2 * (tn + tm) * tile[None, :]
                + 2 * tm * tn * tiling.blocks_of(taps, bits)),
        in_words=(tn * (w.S * tr + k_eff - w.S)
                  * (w.Sw * tc + kw_eff - w.Sw)),
        weight_words=tm * tn * taps, out_words=tm * tr * tc,
        compute=taps * tr * tc, passes=-(-n // tn),
        trips=w.groups * ((-(-w.R // tr)) * (-(-w.C // tc))
                          * (-(-m // tm))),
        groups=tuple(zip(edges[:-1], edges[1:])),
        row_sizes=tuple(row_sizes[::-1].tolist()))


def _columns(w: workload.Workload, row_sizes: np.ndarray,
             bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Tr, Tc) candidates and tile blocks in staircase order, pruned.

    Sorted by tile blocks, then by candidate index. A column goes when an
    earlier one is no worse in every port-independent factor of cycles
    and blocks (tile blocks, tile trips, input tile rows x columns,
    Tr Tc): cycles never fall as any of them grows, at any ports and in
    any (Tm, Tn) row, so the earlier column is as fast, fits whenever the
    later one fits, and wins ties. About half the columns go.
    """
    tr, tc = np.meshgrid(row_sizes, tiling.candidates(w.C, ROW_CANDIDATES),
                         indexing="ij")
    tr, tc = tr.ravel(), tc.ravel()
    tile = tiling.blocks_of(tr * tc, bits)
    order = np.argsort(tile, kind="stable")
    tr, tc, tile = tr[order], tc[order], tile[order]
    k_eff, kw_eff = w.D * (w.K - 1) + 1, w.Dw * (w.Kw - 1) + 1
    factors = np.stack([
        tile, (-(-w.R // tr)) * (-(-w.C // tc)),
        (w.S * tr + k_eff - w.S) * (w.Sw * tc + kw_eff - w.Sw), tr * tc])
    no_worse = (factors[:, :, None] <= factors[:, None, :]).all(axis=0)
    keep = ~np.triu(no_worse, 1).any(axis=0)
    return tr[keep], tc[keep], tile[keep]


def _cycles(g: _Grid, p: tiling.Ports) -> np.ndarray:
    """tiling.layer_cycles over the grid, with the same float operations.

    In place where it can be: the grid is large and this runs per ports.
    """
    cycles = g.in_words / p.i
    cycles -= tiling.EPS
    np.ceil(cycles, out=cycles)
    np.maximum(cycles, np.ceil(g.weight_words / p.w - tiling.EPS),
               out=cycles)
    np.maximum(cycles, g.compute, out=cycles)
    cycles *= g.passes
    t_o = g.out_words / p.o
    t_o -= tiling.EPS
    np.ceil(t_o, out=t_o)
    np.maximum(cycles, t_o, out=cycles)
    cycles *= g.trips
    return cycles


class _Front:
    """The tilings worth keeping at one ports setting, fastest first.

    In each (Tm, Tn) row, a group of equal blocks offers its fastest tiling
    (the first such column), kept when it beats every group of the row
    with fewer blocks; the kept ones are sorted by (cycles, lanes, blocks),
    stably. The first one within a budget is the budget's best.
    """

    __slots__ = ("w", "p", "bits", "tm", "tn", "tr", "tc", "cycles",
                 "blocks", "lanes", "_fewest_lanes", "_fewest_blocks",
                 "row_sizes", "_choices")

    def __init__(self, w: workload.Workload, p: tiling.Ports, bits: int,
                 g: _Grid | None) -> None:
        self.w, self.p, self.bits = w, p, bits
        self._choices: dict[tuple[int, float], tiling.Choice] = {}
        if g is None:  # nothing fits the lane cap
            self.tm = self.tn = self.tr = self.tc = self.cycles = []
            self.blocks = self.lanes = []
            self._fewest_lanes = self._fewest_blocks = []
            self.row_sizes = ()
            return
        cycles = _cycles(g, p)
        row, col = _staircase(g, cycles)
        tm, tn, blocks = g.tm[row, 0], g.tn[row, 0], g.blocks[row, col]
        cycles = cycles[row, col]
        final = np.lexsort((blocks, tm * tn, cycles))
        # One gather and one conversion for all the integer columns.
        ints = np.stack([tm, tn, g.tr[0, col], g.tc[0, col], blocks,
                         tm * tn])[:, final]
        self.tm, self.tn, self.tr, self.tc, self.blocks, self.lanes = (
            ints.tolist())
        self.cycles = cycles[final].tolist()
        # The fewest blocks and lanes of any entry up to each one, negated
        # so that they never fall: no entry before where a budget's bisect
        # lands fits it.
        self._fewest_blocks, self._fewest_lanes = (
            -np.minimum.accumulate(ints[4:], axis=1)).tolist()
        self.row_sizes = g.row_sizes

    def first_fit(self, lanes: int, bram: int) -> int:
        """Index of the fastest tiling within the budget, or -1."""
        i = max(bisect.bisect_left(self._fewest_lanes, -lanes),
                bisect.bisect_left(self._fewest_blocks, -bram))
        used, blocks = self.lanes, self.blocks
        for j in range(i, len(used)):
            if used[j] <= lanes and blocks[j] <= bram:
                return j
        return -1

    def choice(self, i: int, slack: float) -> tiling.Choice:
        """Entry i as a Choice, its Tr cut for row bands when slack > 0."""
        key = (i, slack)
        c = self._choices.get(key)
        if c is None:
            c = self._choices[key] = self._make_choice(i, slack)
        return c

    def _make_choice(self, i: int, slack: float) -> tiling.Choice:
        w, p, bits = self.w, self.p, self.bits
        t = tiling.Tiling(self.tm[i], self.tn[i], self.tr[i], self.tc[i])
        if slack <= 0:
            return tiling.Choice(t, int(self.cycles[i]), self.blocks[i],
                                 tiling.bound(w, t, p), tiling.dsp(t, bits))
        t, cycles = self._more_bands(t, self.cycles[i] * (1.0 + slack))
        return tiling.Choice(t, cycles, tiling.bram18(w, t, bits),
                             tiling.bound(w, t, p), tiling.dsp(t, bits))

    def _more_bands(self, t: tiling.Tiling,
                    most: float) -> tuple[tiling.Tiling, int]:
        """The smallest Tr candidate below t's within `most` cycles.

        Only Tr changes, and a tiling's blocks never grow as Tr shrinks, so
        a smaller Tr always fits the BRAM that t fitted.
        """
        for tr in self.row_sizes:
            if tr >= t.Tr:
                break
            banded = tiling.Tiling(t.Tm, t.Tn, tr, t.Tc)
            cycles = tiling.layer_cycles(self.w, banded, self.p)
            if cycles <= most:
                return banded, cycles
        return t, tiling.layer_cycles(self.w, t, self.p)


def _staircase(g: _Grid, cycles: np.ndarray) -> tuple[np.ndarray, ...]:
    """(row, column) of the entries worth keeping, in staircase order.

    Each (row, group) offers its fastest column (np.argmin: the first);
    it is kept when it beats every earlier group of its row.
    """
    if len(g.groups) == 1:  # one group per row: each row's fastest
        return np.arange(len(cycles)), cycles.argmin(axis=1)
    starts = [s for s, _ in g.groups]
    fastest = np.minimum.reduceat(cycles, starts, axis=1)
    useful = np.ones(fastest.shape, dtype=bool)
    useful[:, 1:] = (fastest[:, 1:]
                     < np.minimum.accumulate(fastest, axis=1)[:, :-1])
    row, group = np.nonzero(useful)
    first = np.column_stack([s + cycles[:, s:e].argmin(axis=1)
                             for s, e in g.groups])
    return row, first[row, group]


@functools.lru_cache(maxsize=8192)
def _front(w: workload.Workload, p: tiling.Ports, bits: int,
           lanes_cap: int) -> _Front:
    return _Front(w, p, bits, _grid(w, bits, lanes_cap))


@functools.lru_cache(maxsize=65536)
def best_tiling(w: workload.Workload, lanes: int, bram: int,
                p: tiling.Ports, bits: int, lanes_cap: int | None = None,
                slack: float = 0.0) -> tiling.Choice:
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
    front = _front(tiling.shape_key(w), p, bits, max(lanes, lanes_cap or 0))
    i = front.first_fit(lanes, bram)
    if i < 0:
        raise tiling.ResourceError(
            f"layer {tuple(w[1:8])} (M, N, R, C, K, S, groups) needs at least"
            f" 1 MAC lane and {tiling.min_bram18(w, bits)} BRAM18 at {bits} "
            f"bits; its share is {lanes} lanes and {bram} BRAM18")
    return front.choice(i, slack)
