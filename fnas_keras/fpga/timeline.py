"""The pipelined mapping's list schedule of row bands (FNAS_NOTES section 5).

Each engine's work is cut into row bands (Tr output rows; one row for a
stream pass). A band starts when its engine is free and every input row it
reads (halo and padding included) has been produced, and lasts the engine's
cycles over its band count. The latency of one image is the finish time of
the last band.

A search runs this once per architecture, so the loop is lean: which
producer band a band waits for depends only on the two engines' row
geometry and is cached (`_last_reads`); the finish times stay a running
loop, max(free, ready) + duration, so the float sums are exactly those of
the definition.
"""

import functools
import operator
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import NamedTuple

from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload


class _Ready(NamedTuple):
    """When each row of a tensor is ready.

    Row r is ready at done[(r - shift) // band], clipped to the producer's
    `rows`; `length` is the tensor's own row count.
    """

    done: Sequence[float]
    band: int
    rows: int
    length: int
    shift: int = 0

    def at(self, row: int) -> float:
        row = min(max(row - self.shift, 0), self.rows - 1)
        return self.done[row // self.band]


_START = _Ready((0.0,), 1, 1, 1)  # a network input: every row ready at 0


def finish(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
           choices: Mapping[tuple[int, int], tiling.Choice]) -> float:
    """List schedule of row bands; returns the last band's finish time.

    Args:
        layers: the layer dicts. A layer reads the layers named by its
            optional "inbound" indices, else the previous layer.
        parsed: their workloads.
        choices: each engine's Choice, keyed by (layer, stage) index.
    """
    return finish_in_order(layers, parsed, [
        choices[(i, k)] for i, pz in enumerate(parsed)
        for k in range(len(pz.stages))])


def finish_in_order(layers: Sequence[dict],
                    parsed: Sequence[workload.Parsed],
                    picked: Sequence[tiling.Choice],
                    owner: Sequence[int] | None = None) -> float:
    """finish, with the Choices listed in stage order.

    Args:
        layers: the layer dicts.
        parsed: their workloads.
        picked: each stage's Choice, in stage order.
        owner: per stage, the engine that runs it (stages of one engine
            run one after another, in order); default: an engine each.
    """
    engines = iter(picked)
    owners = iter(owner) if owner is not None else None
    free: dict[int, float] = {}
    ready: list[_Ready] = []
    last = _START  # the previous layer's output
    for i, (layer, pz) in enumerate(zip(layers, parsed)):
        inbound = layer.get("inbound")
        ins = None if inbound is None else (
            [ready[j] for j in inbound if 0 <= j < i] or [_START])
        # src: the one input of the next engine, or None to merge `ins`.
        src = last if ins is None else ins[0] if len(ins) == 1 else None
        if not pz.stages:
            out_rows = workload.rows(layer["output_shape"])
            last = _free(ins or [src], out_rows, pz.row_shift)
        for w in pz.stages:
            c = next(engines)
            band = 1 if c.tiling is None else c.tiling.Tr
            if owners is not None:
                e = next(owners)
                src = _bands(ins if src is None else [src], w, band,
                             c.cycles, free.get(e, 0.0))
                free[e] = src.done[-1]
            elif src is _START:
                src = _from_start(w, band, c.cycles)
            elif src is None:
                src = _bands(ins, w, band, c.cycles)
            else:
                src = _chain(src, w, band, c.cycles)
            last = src
        ready.append(last)
    return max(r.done[-1] for r in ready)


def _free(ins: list[_Ready], out_rows: int, shift: int) -> _Ready:
    """Ready times through a 0-cycle layer."""
    if len(ins) > 1:
        rows = max(r.rows for r in ins)
        src = _Ready([max(r.at(j) for r in ins) for j in range(rows)], 1,
                     rows, rows)
    else:
        src = ins[0]
    if shift:
        return src._replace(shift=src.shift + shift, length=out_rows)
    if out_rows == src.length:
        return src
    # Re-indexed (Flatten, Reshape): every output row needs every input row.
    return _Ready([src.done[-1]], out_rows, out_rows, out_rows)


def _chain(r: _Ready, w: workload.Workload, band: int,
           cycles: int, start: float = 0.0) -> _Ready:
    """_bands of an engine with one input: the common case, kept lean."""
    n_bands = -(-w.R // band)
    duration = cycles / n_bands
    step = band * w.S
    first = step - w.S + w.D * (w.K - 1) - w.pad_top
    need = _gather(first, step, n_bands, r.shift, r.rows - 1, r.band)
    out: list[float] = []
    append = out.append
    t = start
    for x in need(r.done):
        t = (t if t > x else x) + duration
        append(t)
    return _Ready(out, band, w.R, w.R)


def _bands(ins: list[_Ready], w: workload.Workload, band: int,
           cycles: int, start: float = 0.0) -> _Ready:
    """Runs one engine's row bands; returns its output's ready times.

    The engine's cycles split evenly over its ceil(R / band) bands; band j
    starts at max(engine free, its inputs ready); the engine is free from
    `start`.
    """
    if len(ins) == 1:
        return _chain(ins[0], w, band, cycles, start)
    n_bands = -(-w.R // band)
    duration = cycles / n_bands
    first = (band - 1) * w.S + w.D * (w.K - 1) - w.pad_top
    step = band * w.S
    need = None
    for r in ins:
        done = r.done
        ready = [done[j] for j in _last_reads(first, step, n_bands, r.shift,
                                               r.rows - 1, r.band)]
        need = ready if need is None else list(map(max, need, ready))
    out: list[float] = []
    t = start
    for x in need:
        t = (t if t > x else x) + duration
        out.append(t)
    return _Ready(out, band, w.R, w.R)


@functools.lru_cache(maxsize=4096)
def _from_start(w: workload.Workload, band: int, cycles: int) -> _Ready:
    """_bands of an engine that reads the network input.

    Cached: it depends only on its own engine, and a network's first
    engine is its longest run of bands (the full-size rows).
    """
    return _bands([_START], w, band, cycles)


@functools.lru_cache(maxsize=4096)
def _last_reads(first: int, step: int, n_bands: int, shift: int, top: int,
                size: int) -> tuple[int, ...]:
    """Per band, the producer's band that holds the last row it reads.

    Band j reads input rows up to first + j step; shifted by the producer's
    row shift and clipped to its rows (0 to top), that row is done with the
    producer's band row // size.
    """
    return tuple(min(max(x - shift, 0), top) // size
                 for x in range(first, first + n_bands * step, step))


@functools.lru_cache(maxsize=4096)
def _gather(first: int, step: int, n_bands: int, shift: int, top: int,
            size: int) -> Callable[[Sequence[float]], tuple[float, ...]]:
    """Per band, the ready time of the last input row it reads.

    _last_reads as one C-level itemgetter over the producer's finish
    times: it spares a Python index per band.
    """
    reads = _last_reads(first, step, n_bands, shift, top, size)
    if len(reads) == 1:  # itemgetter of one index gives no tuple
        only = reads[0]
        return lambda done: (done[only],)
    return operator.itemgetter(*reads)
