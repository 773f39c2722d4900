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

import functools
from typing import NamedTuple

import numpy as np

from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload

# Tr/Tc candidates kept per dimension: the largest tiles by trip count.
ROW_CANDIDATES = 16


class _Grid(NamedTuple):
    """Every candidate tiling of one workload, in staircase order.

    Entries run row by row ((Tm, Tn) pairs in candidate order), in a row by
    BRAM18 blocks, then by (Tr, Tc) candidate index. The word counts are
    the per-tile numerators of tI, tW, tO (tiling.terms) before the ports.
    """

    tm: np.ndarray
    tn: np.ndarray
    tr: np.ndarray
    tc: np.ndarray
    blocks: np.ndarray
    in_words: np.ndarray
    weight_words: np.ndarray
    out_words: np.ndarray
    compute: np.ndarray  # tComp
    passes: np.ndarray  # ceil(N / Tn)
    trips: np.ndarray  # groups ceil(R/Tr) ceil(C/Tc) ceil(M/Tm)
    starts: np.ndarray  # first entry of each (row, blocks) group
    sizes: np.ndarray  # entries per group
    group: np.ndarray  # group of each entry
    slot: np.ndarray  # each group's cell in a (rows, widest row) table
    opens_row: np.ndarray  # whether a group is its row's first
    table: tuple[int, int]  # (rows, groups in the widest row)
    row_sizes: np.ndarray  # Tr candidates, largest first


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
    tr, tc = np.meshgrid(row_sizes, tiling.candidates(w.C, ROW_CANDIDATES),
                         indexing="ij")
    tr, tc = tr.ravel()[None, :], tc.ravel()[None, :]
    shape = (tm.shape[0], tr.shape[1])
    row = np.broadcast_to(np.arange(shape[0])[:, None], shape).ravel()
    col = np.broadcast_to(np.arange(shape[1])[None, :], shape).ravel()
    taps = w.K * w.Kw
    k_eff, kw_eff = w.D * (w.K - 1) + 1, w.Dw * (w.Kw - 1) + 1
    tile = tiling.blocks_of(tr * tc, bits)
    blocks = (2 * (tn + tm) * tile
              + 2 * tm * tn * tiling.blocks_of(taps, bits)).ravel()
    order = np.lexsort((col, blocks, row))
    every = {
        "tm": tm, "tn": tn, "tr": tr, "tc": tc,
        "in_words": tn * (w.S * tr + k_eff - w.S)
        * (w.Sw * tc + kw_eff - w.Sw),
        "weight_words": tm * tn * taps, "out_words": tm * tr * tc,
        "compute": taps * tr * tc, "passes": -(-n // tn),
        "trips": w.groups * ((-(-w.R // tr)) * (-(-w.C // tc))
                             * (-(-m // tm)))}
    flat = {k: np.broadcast_to(v, shape).ravel()[order]
            for k, v in every.items()}
    blocks, row = blocks[order], row[order]
    return _Grid(blocks=blocks, row_sizes=row_sizes,
                 **flat, **_groups(row, blocks))


def _groups(row: np.ndarray, blocks: np.ndarray) -> dict:
    """Runs of equal (row, blocks) in staircase order, and their table."""
    change = np.ones(len(row), dtype=bool)
    change[1:] = (row[1:] != row[:-1]) | (blocks[1:] != blocks[:-1])
    starts = np.flatnonzero(change)
    group = np.cumsum(change) - 1
    group_row = row[starts]
    opens_row = np.ones(len(starts), dtype=bool)
    opens_row[1:] = group_row[1:] != group_row[:-1]
    first_of_row = np.maximum.accumulate(
        np.where(opens_row, np.arange(len(starts)), 0))
    position = np.arange(len(starts)) - first_of_row
    width = int(position.max()) + 1
    return {"starts": starts, "sizes": np.diff(np.append(starts, len(row))),
            "group": group, "slot": group_row * width + position,
            "opens_row": opens_row,
            "table": (int(group_row.max()) + 1, width)}


def _cycles(g: _Grid, p: tiling.Ports) -> np.ndarray:
    """tiling.layer_cycles over the grid, with the same float operations."""
    t_i = np.ceil(g.in_words / p.i - tiling.EPS)
    t_w = np.ceil(g.weight_words / p.w - tiling.EPS)
    t_o = np.ceil(g.out_words / p.o - tiling.EPS)
    l1 = np.maximum(np.maximum(t_i, t_w), g.compute)
    return g.trips * np.maximum(g.passes * l1, t_o)


class _Front:
    """The tilings worth keeping at one ports setting, fastest first.

    Per (Tm, Tn) row, a tiling is kept when it is faster than every tiling
    of that row with fewer blocks (and than those with as many blocks and
    an earlier (Tr, Tc)); the kept ones are sorted by (cycles, lanes,
    blocks), stably. The first one within a budget is the budget's best.
    """

    __slots__ = ("w", "p", "bits", "tm", "tn", "tr", "tc", "lanes",
                 "blocks", "cycles", "row_sizes", "_banded", "_choices")

    def __init__(self, w: workload.Workload, p: tiling.Ports, bits: int,
                 g: _Grid | None) -> None:
        self.w, self.p, self.bits = w, p, bits
        self._banded: dict[float, np.ndarray] = {}
        self._choices: dict[tuple[int, float], tiling.Choice] = {}
        if g is None:
            empty = np.zeros(0, dtype=np.int64)
            self.tm = self.tn = self.tr = self.tc = empty
            self.lanes = self.blocks = self.cycles = self.row_sizes = empty
            return
        cycles = _cycles(g, p)
        kept = _staircase(g, cycles)
        final = kept[np.lexsort((g.blocks[kept], g.tm[kept] * g.tn[kept],
                                 cycles[kept]))]
        self.tm, self.tn, self.tr, self.tc = (g.tm[final], g.tn[final],
                                              g.tr[final], g.tc[final])
        self.lanes = self.tm * self.tn
        self.blocks = g.blocks[final]
        self.cycles = cycles[final]
        self.row_sizes = g.row_sizes

    def first_fit(self, lanes: int, bram: int) -> int:
        """Index of the fastest tiling within the budget, or -1."""
        fits = (self.lanes <= lanes) & (self.blocks <= bram)
        i = int(fits.argmax()) if len(fits) else 0
        return i if len(fits) and fits[i] else -1

    def choice(self, i: int, slack: float) -> tiling.Choice:
        """Entry i as a Choice, its Tr cut for row bands when slack > 0."""
        key = (i, slack)
        c = self._choices.get(key)
        if c is None:
            c = self._choices[key] = self._make_choice(i, slack)
        return c

    def _make_choice(self, i: int, slack: float) -> tiling.Choice:
        w, p, bits = self.w, self.p, self.bits
        t = tiling.Tiling(int(self.tm[i]), int(self.tn[i]), int(self.tr[i]),
                          int(self.tc[i]))
        if slack > 0:
            t = t._replace(Tr=int(self._banded_rows(slack)[i]))
            return tiling.Choice(t, tiling.layer_cycles(w, t, p),
                                 tiling.bram18(w, t, bits),
                                 tiling.bound(w, t, p), tiling.dsp(t, bits))
        return tiling.Choice(t, int(self.cycles[i]), int(self.blocks[i]),
                             tiling.bound(w, t, p), tiling.dsp(t, bits))

    def _banded_rows(self, slack: float) -> np.ndarray:
        """Per entry, the smallest Tr candidate below its own within slack.

        Only Tr changes, and a tiling's blocks never grow as Tr shrinks, so
        a smaller Tr always fits the BRAM its entry fitted.
        """
        rows = self._banded.get(slack)
        if rows is None:
            sizes = self.row_sizes[None, :]
            c, _ = tiling.grid_cycles(self.w, self.tm[:, None],
                                      self.tn[:, None], sizes,
                                      self.tc[:, None], self.p, self.bits)
            ok = ((sizes < self.tr[:, None])
                  & (c <= self.cycles[:, None] * (1.0 + slack)))
            last = ok.shape[1] - 1 - ok[:, ::-1].argmax(axis=1)
            rows = np.where(ok.any(axis=1), self.row_sizes[last], self.tr)
            self._banded[slack] = rows
        return rows


def _staircase(g: _Grid, cycles: np.ndarray) -> np.ndarray:
    """Grid entries worth keeping, in staircase order.

    Each (row, blocks) group offers its fastest entry (the first such in
    (Tr, Tc) order); it is kept when it beats every earlier group of its
    row.
    """
    fastest = np.minimum.reduceat(cycles, g.starts)
    table = np.full(g.table[0] * g.table[1], np.inf)
    table[g.slot] = fastest
    before = np.minimum.accumulate(table.reshape(g.table), axis=1).ravel()
    useful = g.opens_row | (fastest < before[g.slot - 1])
    hits = np.flatnonzero(cycles == np.repeat(fastest, g.sizes))
    first = np.ones(len(hits), dtype=bool)
    first[1:] = g.group[hits[1:]] != g.group[hits[:-1]]
    return hits[first][useful]


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
