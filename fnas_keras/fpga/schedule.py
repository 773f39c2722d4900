"""A whole network on one FPGA: resource split, pipeline schedule, sequence.

Pipelined (FNAS): one engine per conv or stream workload. DSP and BRAM18 go
first to each engine's minimum (one MAC lane's DSPs; the BRAM of tiling
(1, 1, 1, 1)), the rest in proportion to MACs. All engines run at once and
share the DRAM bandwidth by traffic (fpga.bandwidth): each engine first
picks its tiling with the whole bandwidth, the bandwidth is shared by the
words each port then moves, and the engines pick again with their shares.
An engine's tiling is its fastest within its DSP and BRAM, with Tr then cut
to the most row bands that cost at most SLACK more cycles: one band (Tr = R)
would make the next engine wait for the whole layer. Each engine's work is
cut into row bands (Tr output rows; one row for a stream pass); a band
starts when its engine is free and every input row it reads has been
produced. The latency is the finish time of the last band, between the
slowest engine's time and the sum of all engines' times.

Shared (Zhang et al.): one engine with all resources and the full bandwidth
runs the layers one after another; latency is the sum of their cycles.
"""

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

from fnas_keras.fpga import bandwidth
from fnas_keras.fpga import devices
from fnas_keras.fpga import engine
from fnas_keras.fpga import report
from fnas_keras.fpga import tiling
from fnas_keras.fpga import timeline
from fnas_keras.fpga import workload

# Pipelined mapping: how far above its fewest cycles an engine's tiling may
# go for more row bands (engine.best_tiling's slack), and how many more times
# the bandwidth is re-shared by the traffic at the tilings picked with the
# previous shares (0: once, by the tilings picked with the whole bandwidth).
SLACK = 0.0625
REFINE = 0

_ROWS: dict[tuple, report.LayerReport] = {}
_ROWS_LIMIT = 100_000


class Stage(NamedTuple):
    """One engine's work, located in the layer list."""

    layer: int
    sub: int
    w: workload.Workload


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
    need = sum(minimum)
    if need > total:
        raise tiling.ResourceError(
            f"{len(minimum)} engines need at least {need} {what}; the device"
            f" has {total}")
    rest, norm = total - need, sum(weights)
    if norm <= 0:
        return list(minimum)
    return [m + rest * w // norm for m, w in zip(minimum, weights)]


def pipelined(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
              device: devices.FpgaDevice, bits: int) -> report.LatencyReport:
    """FNAS mapping: an engine per workload, pipelined by row bands."""
    ws = [w for pz in parsed for w in pz.stages]
    budget, macs = _budgets(ws, device, bits)
    whole = tiling.ports(device, bits)
    lanes_cap = int(device.dsp / devices.dsp_per_mac(bits))
    # Traffic at the tilings the engines would pick with the whole
    # bandwidth, then at the tilings they pick with their shares.
    ports = [whole] * len(ws)
    for _ in range(1 + REFINE):
        ports = bandwidth.share(
            ws, [_demand(w, b, p, bits, lanes_cap)
                 for w, b, p in zip(ws, budget, ports)], 3 * whole.i)
    picked = [tiling.stream(w, p) if b is None else
              engine.best_tiling(w, b[0], b[1], p, bits, lanes_cap, SLACK)
              for w, b, p in zip(ws, budget, ports)]  # _choice, inlined
    # The Choice fields, as columns (no engine: all empty).
    _, cycles, bram18, _, dsp = zip(*picked) if picked else ((),) * 5
    return _report(layers, parsed, picked, device, bits, whole, "pipelined",
                   latency=timeline.finish_in_order(layers, parsed, picked),
                   slowest=max(cycles, default=0), dsp_used=sum(dsp),
                   bram_used=sum(bram18), macs=macs, engine_ports=ports)


def _budgets(ws: list[workload.Workload], device: devices.FpgaDevice,
             bits: int) -> tuple[list[tuple[int, int] | None], int]:
    """Per engine, its (MAC lanes, BRAM18) share; and the network's MACs.

    A stream pass needs no share: None.
    """
    dpm = devices.dsp_per_mac(bits)
    conv = [i for i, w in enumerate(ws) if w.kind == "conv"]
    macs, least_bram = zip(*[_needs(ws[i], bits) for i in conv]) if conv \
        else ((), ())
    dsp_share = split(macs, device.dsp, [math.ceil(dpm)] * len(conv), "DSP")
    bram_share = split(macs, device.bram18, least_bram, "BRAM18")
    budget: list[tuple[int, int] | None] = [None] * len(ws)
    for i, d, b in zip(conv, dsp_share, bram_share):
        budget[i] = (int(d / dpm), b)
    return budget, sum(macs)


@functools.lru_cache(maxsize=4096)
def _needs(w: workload.Workload, bits: int) -> tuple[int, int]:
    """A conv engine's MACs and least BRAM18 (the same few recur)."""
    return w.macs, tiling.min_bram18(w, bits)


def _choice(w: workload.Workload, budget: tuple[int, int] | None,
            p: tiling.Ports, bits: int, lanes_cap: int) -> tiling.Choice:
    """An engine's Choice within its budget (None: a stream pass)."""
    if budget is None:
        return tiling.stream(w, p)
    return engine.best_tiling(w, budget[0], budget[1], p, bits, lanes_cap,
                              SLACK)


@functools.lru_cache(maxsize=65536)
def _demand(w: workload.Workload, budget: tuple[int, int] | None,
            p: tiling.Ports, bits: int, lanes_cap: int) -> bandwidth.Traffic:
    """Words per image on an engine's ports at its Choice.

    Cached apart from the Choice: the first pass needs only this.
    """
    return bandwidth.traffic(w, _choice(w, budget, p, bits, lanes_cap).tiling)


def shared(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
           device: devices.FpgaDevice, bits: int,
           unroll: tuple[int, int] | None) -> report.LatencyReport:
    """Zhang et al. mapping: one engine, layers in sequence.

    The engine's buffers are re-partitioned per layer, so it needs the
    largest layer's BRAM18; its DSPs are those of its (Tm, Tn).
    """
    work = stages(parsed)
    p = tiling.ports(device, bits)
    dpm = devices.dsp_per_mac(bits)
    if unroll is not None:
        _check_unroll(unroll, device, bits)
    conv = [s for s in work if s.w.kind == "conv"]
    engine, picked = tiling.shared_tiling(
        [s.w for s in conv], int(device.dsp / dpm), device.bram18, p, bits,
        unroll)
    conv_choices = iter(picked)
    in_order = [next(conv_choices) if s.w.kind == "conv" else
                tiling.stream(s.w, p) for s in work]
    total = sum(c.cycles for c in in_order)
    return _report(layers, parsed, in_order, device, bits, p, "shared",
                   latency=total, slowest=total,
                   dsp_used=math.ceil(engine[0] * engine[1] * dpm),
                   bram_used=max((c.bram18 for c in picked), default=0),
                   macs=sum(s.w.macs for s in conv))


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


def _report(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
            picked: Sequence[tiling.Choice], device: devices.FpgaDevice,
            bits: int, p: tiling.Ports, mapping: str, *, latency: float,
            slowest: int, dsp_used: int, bram_used: int, macs: int,
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
        bram18_used=bram_used, device=device, bits=bits, mapping=mapping,
        layers=functools.partial(_layer_rows, tuple(layers), parsed,
                                 picked, engine_ports or [p] * len(picked)),
        ports=p)


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
                               c.bram18, c.bound, p))
    return row
