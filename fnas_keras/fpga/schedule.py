"""A whole network on one FPGA: resource split, pipeline schedule, sequence.

Pipelined (FNAS): engines run at once, pipelined by row bands, and the
fastest of these splits is kept:

* per-layer engines: one engine per conv or stream workload. DSP, the
  memory pool (BRAM18 and URAM) and LUTRAM go first to each engine's
  minimum (one MAC lane; the BRAM18 of tiling (1, 1, 1, 1)), the rest in
  proportion to MACs; then once more in proportion to each engine's
  lane-cycles at that split (its cycles x its lanes), which balances the
  stage times; the faster of the two splits is kept.
* segments (networks of more than SEGMENT_FROM conv engines, where
  per-layer engines starve): consecutive layers share one engine with a
  unified (Tm, Tn), for k = 2, 4, 8, ... segments of about equal MACs, and
  one segment, which is the shared engine.

All engines share the DRAM bandwidth by traffic (fpga.bandwidth). A
per-layer engine's tiling is its fastest within its share, with Tr then cut
to the most row bands that cost at most SLACK more cycles: one band
(Tr = R) would make the next engine wait for the whole layer (a line
buffer: an engine starts once the rows its first band reads exist). Each
engine's work is cut into row bands (Tr output rows; one row for a stream
pass); a band starts when its engine is free and every input row it reads
has been produced. The latency is the finish time of the last band,
between the slowest engine's time and the sum of all engines' times.

Shared (Zhang et al.): one engine with all resources and the full bandwidth
runs the layers one after another; latency is the sum of their cycles.
"""

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

from fnas_keras.fpga import bandwidth
from fnas_keras.fpga import devices
from fnas_keras.fpga import engine
from fnas_keras.fpga import memory
from fnas_keras.fpga import report
from fnas_keras.fpga import shared as shared_engine
from fnas_keras.fpga import tiling
from fnas_keras.fpga import timeline
from fnas_keras.fpga import workload

# Pipelined mapping: how far above its fewest cycles an engine's tiling may
# go for more row bands (engine.best_tiling's slack), and how many more times
# the bandwidth is re-shared by the traffic at the tilings picked with the
# previous shares (0: once, by the tilings picked with the whole bandwidth).
SLACK = 0.0625
REFINE = 0
# Segments are tried when a network has more conv engines than this.
SEGMENT_FROM = 8

_ROWS: dict[tuple, report.LayerReport] = {}
_ROWS_LIMIT = 100_000


class Stage(NamedTuple):
    """One engine's work, located in the layer list."""

    layer: int
    sub: int
    w: workload.Workload


class _Budget(NamedTuple):
    """A conv engine's share: MAC lanes, pool BRAM18, LUTRAM LUTs."""

    lanes: int
    bram: int
    luts: int


def stages(parsed: Sequence[workload.Parsed]) -> list[Stage]:
    """Every workload of every layer, in order."""
    return [Stage(i, k, w) for i, p in enumerate(parsed)
            for k, w in enumerate(p.stages)]


def split(weights: Sequence[int], total: int, minimum: Sequence[int],
          what: str) -> list[int]:
    """Minimum per engine, then the rest in proportion to the weights.

    Raises:
        ResourceError: the minimums alone exceed the total.
    """
    rest, norm = _rest(total, minimum, what), sum(weights)
    if norm <= 0:
        return list(minimum)
    return [m + int(rest * w // norm) for m, w in zip(minimum, weights)]


def _rest(total: int, minimum: Sequence[int], what: str) -> int:
    """What is left of `total` after the minimums.

    Raises:
        ResourceError: the minimums alone exceed the total.
    """
    need = sum(minimum)
    if need > total:
        raise tiling.ResourceError(
            f"{len(minimum)} engines need at least {need} {what}; the device"
            f" has {total}")
    return total - need


def pipelined(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
              device: devices.FpgaDevice, bits: int) -> report.LatencyReport:
    """FNAS mapping: the fastest split into pipelined engines."""
    ws = [w for pz in parsed for w in pz.stages]
    best = _per_layer(layers, parsed, ws, device, bits)
    n_conv = sum(w.kind == "conv" for w in ws)
    if n_conv <= SEGMENT_FROM:
        return best
    k = 2
    while k < n_conv:
        try:
            best = min(best, _segmented(layers, parsed, ws, device, bits, k),
                       key=_rank)
        except tiling.ResourceError:
            pass
        k *= 2
    one = shared(layers, parsed, device, bits, None)
    if _rank(one) < _rank(best):
        best = dataclasses.replace(one, mapping="pipelined",
                                   requested="pipelined")
    return best


def _rank(r: report.LatencyReport) -> tuple[int, float]:
    return r.latency_cycles, -r.throughput_fps


def _per_layer(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
               ws: list[workload.Workload], device: devices.FpgaDevice,
               bits: int) -> report.LatencyReport:
    """An engine per workload, resources split by MACs, then balanced."""
    shares = _Shares(ws, device, bits)
    budget = shares.budgets()
    whole = tiling.ports(device, bits)
    lanes_cap = int(device.dsp / devices.dsp_per_mac(bits))
    # Traffic at the tilings the engines would pick with the whole
    # bandwidth, then at the tilings they pick with their shares.
    ports = [whole] * len(ws)
    for _ in range(1 + REFINE):
        ports = bandwidth.share(
            ws, [_demand(w, b, p, bits, lanes_cap)
                 for w, b, p in zip(ws, budget, ports)], 3 * whole.i)
    picked = _pick(ws, budget, ports, bits, lanes_cap)
    latency = timeline.finish_in_order(layers, parsed, picked)
    balanced = shares.balanced(budget, picked)
    if balanced is not None:
        again = _pick(ws, balanced, ports, bits, lanes_cap)
        if again != picked:
            late = timeline.finish_in_order(layers, parsed, again)
            if late < latency:
                picked, latency = again, late
    return _pipeline_report(layers, parsed, picked, device, bits, whole,
                            latency, sum(shares.macs), ports, len(picked))


def _pick(ws: list[workload.Workload], budget: list[_Budget | None],
          ports: list[tiling.Ports], bits: int,
          lanes_cap: int) -> list[tiling.Choice]:
    return [tiling.stream(w, p) if b is None else
            engine.best_tiling(w, b.lanes, b.bram, p, bits, lanes_cap, SLACK,
                               b.luts)
            for w, b, p in zip(ws, budget, ports)]  # _choice, inlined


def _pipeline_report(layers: Sequence[dict],
                     parsed: Sequence[workload.Parsed],
                     picked: list[tiling.Choice], device: devices.FpgaDevice,
                     bits: int, whole: tiling.Ports, latency: float,
                     macs: int, ports: list[tiling.Ports],
                     engines: int) -> report.LatencyReport:
    # The Choice fields, as columns (no engine: all empty).
    _, cycles, blocks, _, dsp, luts, _ = (zip(*picked) if picked
                                          else ((),) * 7)
    return _report(layers, parsed, picked, device, bits, whole, "pipelined",
                   latency=latency, slowest=max(cycles, default=0),
                   dsp_used=sum(dsp), pool_used=sum(blocks),
                   lutram_used=sum(luts), macs=macs, engine_ports=ports,
                   engines=engines)


class _Shares:
    """Splits a network's resources over its conv engines.

    What the split needs of the network (its conv engines, their
    minimums) is worked out once and serves both rounds of _per_layer.
    """

    __slots__ = ("conv", "macs", "dpm", "engines", "resources")

    def __init__(self, ws: list[workload.Workload],
                 device: devices.FpgaDevice, bits: int) -> None:
        self.dpm = devices.dsp_per_mac(bits)
        self.conv = [i for i, w in enumerate(ws) if w.kind == "conv"]
        needs = [_needs(ws[i], bits) for i in self.conv]
        self.macs = [m for m, _ in needs]
        self.engines = len(ws)
        n = len(self.conv)
        # Per resource (DSP, pool BRAM18, LUTRAM LUTs): what is left after
        # the minimums, and each engine's minimum.
        self.resources = [
            (_rest(total, least, what), least) for total, least, what in (
                (device.dsp, [math.ceil(self.dpm)] * n, "DSP"),
                (memory.blocks(device), [b for _, b in needs], "BRAM18"),
                (device.lutram, [0] * n, "LUTRAM LUTs"))]

    def budgets(self, weights: Sequence[float] | None = None
                ) -> list[_Budget | None]:
        """Per engine, its share: minimums first, the rest by `weights`.

        Weights default to the MACs; a stream pass needs no share: None.
        """
        by = self.macs if weights is None else weights
        norm = sum(by)
        if norm <= 0:  # the minimums alone, as split gives them
            by, norm = [0] * len(self.conv), 1
        (dsp, least_dsp), (bram, least_bram), (luts, least_luts) = \
            self.resources
        dpm = self.dpm
        budget: list[_Budget | None] = [None] * self.engines
        # split() of each resource, the three in one pass.
        for i, w, d, b, u in zip(self.conv, by, least_dsp, least_bram,
                                 least_luts):
            budget[i] = _Budget(int((d + int(dsp * w // norm)) / dpm),
                                b + int(bram * w // norm),
                                u + int(luts * w // norm))
        return budget

    def balanced(self, budget: list[_Budget | None],
                 picked: list[tiling.Choice]) -> list[_Budget | None] | None:
        """Shares by lane-cycles (cycles x lanes) at the first split.

        An engine that took longer than its MACs' worth gets more, one
        that finished early gives some back: the stage times even out.
        None when there is nothing to balance.
        """
        if len(self.conv) < 2:
            return None
        return self.budgets([picked[i].cycles * budget[i].lanes
                             for i in self.conv])


@functools.lru_cache(maxsize=4096)
def _needs(w: workload.Workload, bits: int) -> tuple[int, int]:
    """A conv engine's MACs and least BRAM18 (the same few recur)."""
    return w.macs, tiling.min_bram18(w, bits)


def _choice(w: workload.Workload, budget: _Budget | None,
            p: tiling.Ports, bits: int, lanes_cap: int) -> tiling.Choice:
    """An engine's Choice within its budget (None: a stream pass)."""
    if budget is None:
        return tiling.stream(w, p)
    return engine.best_tiling(w, budget.lanes, budget.bram, p, bits,
                              lanes_cap, SLACK, budget.luts)


@functools.lru_cache(maxsize=65536)
def _demand(w: workload.Workload, budget: _Budget | None,
            p: tiling.Ports, bits: int, lanes_cap: int) -> bandwidth.Traffic:
    """Words per image on an engine's ports at its Choice.

    Cached apart from the Choice: the first pass needs only this.
    """
    c = _choice(w, budget, p, bits, lanes_cap)
    return bandwidth.traffic(w, c.tiling, c.resident)


def _segmented(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
               ws: list[workload.Workload], device: devices.FpgaDevice,
               bits: int, k: int) -> report.LatencyReport:
    """k segments of consecutive workloads, each on one shared engine."""
    owner = _cuts(ws, k)
    n_seg = owner[-1] + 1
    groups = [[w for w, o in zip(ws, owner) if o == s] for s in range(n_seg)]
    convs = [[w for w in g if w.kind == "conv"] for g in groups]
    macs = [sum(w.macs for w in c) for c in convs]
    dpm = devices.dsp_per_mac(bits)
    least = [max((tiling.min_bram18(w, bits) for w in c), default=0)
             for c in convs]
    dsp = split(macs, device.dsp, [math.ceil(dpm) if c else 0
                                   for c in convs], "DSP")
    bram = split(macs, memory.blocks(device), least, "BRAM18")
    luts = split(macs, device.lutram, [0] * n_seg, "LUTRAM LUTs")
    whole = tiling.ports(device, bits)
    seg_traffic = [tuple(map(sum, zip(*[bandwidth.traffic(w, None)
                                         for w in g]))) for g in groups]
    ports = bandwidth.share([None] * n_seg, seg_traffic, 3 * whole.i)
    chosen: list[list[tiling.Choice]] = []
    for s in range(n_seg):
        _, conv_choices = shared_engine.search(
            convs[s], int(dsp[s] / dpm), bram[s], ports[s], bits,
            luts=luts[s])
        it = iter(conv_choices)
        chosen.append([next(it) if w.kind == "conv"
                       else tiling.stream(w, ports[s]) for w in groups[s]])
    picked = [c for seg in chosen for c in seg]
    engine_ports = [ports[o] for o in owner]
    latency = timeline.finish_in_order(layers, parsed, picked, owner)
    seg_cycles = [sum(c.cycles for c in seg) for seg in chosen]
    r = _pipeline_report(layers, parsed, picked, device, bits, whole,
                         latency, sum(macs), engine_ports, n_seg)
    return dataclasses.replace(
        r, throughput_fps=device.clock_hz / max(max(seg_cycles), 1),
        dsp_used=sum(math.ceil(max((c.tiling.Tm * c.tiling.Tn
                                    for c in seg if c.tiling), default=0)
                               * dpm) for seg in chosen),
        **_pool_fields(sum(max((c.bram18 for c in seg), default=0)
                           for seg in chosen), device),
        lutram_used=sum(max((c.lutram for c in seg), default=0)
                        for seg in chosen))


def _cuts(ws: list[workload.Workload], k: int) -> list[int]:
    """Per workload, its segment: k runs of about equal MACs.

    A segment ends after the workload whose running MACs first reach its
    share; stream passes stay with the conv before them.
    """
    total = sum(w.macs for w in ws) or 1
    owner, seg, run = [], 0, 0
    for w in ws:
        if w.kind == "conv" and run >= total * (seg + 1) / k and seg < k - 1:
            seg += 1
        owner.append(seg)
        run += w.macs
    return owner


def shared(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
           device: devices.FpgaDevice, bits: int,
           unroll: tuple[int, int] | None) -> report.LatencyReport:
    """Zhang et al. mapping: one engine, layers in sequence.

    The engine's buffers are re-partitioned per layer, so it needs the
    largest layer's BRAM18 and LUTRAM; its DSPs are those of its (Tm, Tn).
    """
    work = stages(parsed)
    p = tiling.ports(device, bits)
    dpm = devices.dsp_per_mac(bits)
    if unroll is not None:
        _check_unroll(unroll, device, bits)
    conv = [s for s in work if s.w.kind == "conv"]
    engine_, picked = shared_engine.search(
        [s.w for s in conv], int(device.dsp / dpm), memory.blocks(device),
        p, bits, unroll, device.lutram)
    conv_choices = iter(picked)
    in_order = [next(conv_choices) if s.w.kind == "conv" else
                tiling.stream(s.w, p) for s in work]
    total = sum(c.cycles for c in in_order)
    return _report(layers, parsed, in_order, device, bits, p, "shared",
                   latency=total, slowest=total,
                   dsp_used=math.ceil(engine_[0] * engine_[1] * dpm),
                   pool_used=max((c.bram18 for c in picked), default=0),
                   lutram_used=max((c.lutram for c in picked), default=0),
                   macs=sum(s.w.macs for s in conv), engines=1)


def _check_unroll(unroll: tuple[int, int], device: devices.FpgaDevice,
                  bits: int) -> None:
    ok = (isinstance(unroll, (tuple, list)) and len(unroll) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1
        for v in unroll))
    if not ok:
        raise ValueError(f"unroll must be (Tm, Tn), two positive integers, "
                         f"got {unroll!r}")
    need = math.ceil(unroll[0] * unroll[1] * devices.dsp_per_mac(bits))
    if need > device.dsp:
        raise ValueError(f"unroll (Tm, Tn) = {tuple(unroll)} needs {need} DSP"
                         f" at {bits} bits; {device.name} has {device.dsp}")


def _pool_fields(pool_used: int,
                 device: devices.FpgaDevice) -> dict[str, int]:
    """bram18_used and uram_used behind a count of pool blocks."""
    b, u = memory.split_pool(pool_used, device)
    return {"bram18_used": b, "uram_used": u}


def _report(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
            picked: Sequence[tiling.Choice], device: devices.FpgaDevice,
            bits: int, p: tiling.Ports, mapping: str, *, latency: float,
            slowest: int, dsp_used: int, pool_used: int, lutram_used: int,
            macs: int, engines: int,
            engine_ports: Sequence[tiling.Ports] | None = None
            ) -> report.LatencyReport:
    """The LatencyReport; `picked` and `engine_ports` in stage order.

    Its layer rows are built on first access: a search reads only the
    totals, and the rows cost as much as the rest of the schedule.
    """
    latency_cycles = max(math.ceil(latency), 1)
    seconds = latency_cycles / device.clock_hz
    return report.LatencyReport(
        latency_ms=seconds * 1e3, latency_cycles=latency_cycles,
        throughput_fps=device.clock_hz / max(slowest, 1),
        gops=2.0 * macs / seconds / 1e9, dsp_used=dsp_used,
        device=device, bits=bits, mapping=mapping,
        layers=functools.partial(_layer_rows, tuple(layers), parsed,
                                 picked, engine_ports or [p] * len(picked)),
        ports=p, lutram_used=lutram_used, engines=engines,
        requested=mapping, **_pool_fields(pool_used, device))


def _layer_rows(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
                picked: Sequence[tiling.Choice],
                ports: Sequence[tiling.Ports]
                ) -> tuple[report.LayerReport, ...]:
    engines = zip(picked, ports)
    rows = []
    for i, (layer, pz) in enumerate(zip(layers, parsed)):
        cls = layer.get("class_name", "?")
        name = layer.get("name") or (layer.get("config") or {}).get("name") \
            or f"{cls.lower()}_{i}"
        if not pz.stages:
            rows.append(_row(name, cls, None, None, None))
            continue
        for k, w in enumerate(pz.stages):
            sub = name if len(pz.stages) == 1 else \
                f"{name}/{('depthwise', 'pointwise')[k]}"
            rows.append(_row(sub, cls, w, *next(engines)))
    return tuple(rows)


def _row(name: str, cls: str, w: workload.Workload | None,
         c: tiling.Choice | None, p: tiling.Ports | None
         ) -> report.LayerReport:
    """The LayerReport of one engine (w None: a 0-cycle layer).

    One instance per distinct row: a search builds the same few rows over
    and over, a frozen dataclass costs more to build than to look up, and
    sharing is safe because it is immutable.
    """
    key = (name, cls, w, c, p)
    row = _ROWS.get(key)
    if row is None:
        if len(_ROWS) >= _ROWS_LIMIT:
            _ROWS.clear()
        row = _ROWS[key] = (
            report.LayerReport(name, cls, None, None, 0, 0, 0, "none")
            if w is None or c is None else
            report.LayerReport(name, cls, w, c.tiling, c.cycles, c.dsp,
                               c.bram18, c.bound, p, c.lutram, c.resident))
    return row
