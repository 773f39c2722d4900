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

import math
from collections.abc import Sequence
from typing import NamedTuple

from fnas_keras.fpga import bandwidth
from fnas_keras.fpga import devices
from fnas_keras.fpga import report
from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload

# Pipelined mapping: how far above its fewest cycles an engine's tiling may
# go for more row bands (tiling.best_tiling's slack), and how many more times
# the bandwidth is re-shared by the traffic at the tilings picked with the
# previous shares (0: once, by the tilings picked with the whole bandwidth).
SLACK = 0.0625
REFINE = 0


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
    work = stages(parsed)
    dpm = devices.dsp_per_mac(bits)
    conv = [s for s in work if s.w.kind == "conv"]
    macs = [s.w.macs for s in conv]
    dsp_share = split(macs, device.dsp, [math.ceil(dpm)] * len(conv), "DSP")
    bram_share = split(macs, device.bram18,
                       [tiling.min_bram18(s.w, bits) for s in conv], "BRAM18")
    budget = [(int(d / dpm), b) for d, b in zip(dsp_share, bram_share)]
    lanes_cap = int(device.dsp / dpm)
    whole = tiling.ports(device, bits)

    def pick(ports: list[tiling.Ports]) -> dict:
        budgets = iter(budget)
        return {s[:2]: tiling.best_tiling(s.w, *next(budgets), p, bits,
                                          lanes_cap, SLACK)
                if s.w.kind == "conv" else tiling.stream(s.w, p)
                for s, p in zip(work, ports)}

    # Traffic at the tilings the engines would pick with the whole
    # bandwidth, then at the tilings they pick with their shares.
    ports = [whole] * len(work)
    for _ in range(1 + REFINE):
        choices = pick(ports)
        ports = bandwidth.share(
            [s.w for s in work],
            [bandwidth.traffic(s.w, choices[s[:2]].tiling) for s in work],
            3 * whole.i)
    choices = pick(ports)
    latency = _timeline(layers, parsed, choices)
    used = choices.values()
    return _report(layers, parsed, choices, device, bits,
                   whole, "pipelined",
                   latency=latency,
                   slowest=max((c.cycles for c in used), default=0),
                   dsp_used=sum(c.dsp for c in used),
                   bram_used=sum(c.bram18 for c in used),
                   macs=sum(macs),
                   engine_ports={s[:2]: p for s, p in zip(work, ports)})


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
    choices = {s[:2]: tiling.stream(s.w, p) for s in work
               if s.w.kind != "conv"}
    choices.update((s[:2], c) for s, c in zip(conv, picked))
    total = sum(c.cycles for c in choices.values())
    return _report(layers, parsed, choices, device, bits, p, "shared",
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
            choices: dict, device: devices.FpgaDevice, bits: int,
            p: tiling.Ports, mapping: str, *, latency: float, slowest: int,
            dsp_used: int, bram_used: int, macs: int,
            engine_ports: dict | None = None) -> report.LatencyReport:
    latency_cycles = max(math.ceil(latency), 1)
    seconds = latency_cycles / device.clock_hz
    return report.LatencyReport(
        latency_ms=seconds * 1e3, latency_cycles=latency_cycles,
        throughput_fps=device.clock_hz / max(slowest, 1),
        gops=2.0 * macs / seconds / 1e9, dsp_used=dsp_used,
        bram18_used=bram_used, device=device, bits=bits, mapping=mapping,
        layers=_layer_rows(layers, parsed, choices, engine_ports or {}, p),
        ports=p)


def _layer_rows(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
                choices: dict, ports: dict, default: tiling.Ports
                ) -> tuple[report.LayerReport, ...]:
    rows = []
    for i, (layer, pz) in enumerate(zip(layers, parsed)):
        cls = layer.get("class_name", "?")
        name = layer.get("name") or (layer.get("config") or {}).get("name") \
            or f"{cls.lower()}_{i}"
        if not pz.stages:
            rows.append(report.LayerReport(name, cls, None, None, 0, 0, 0,
                                           "none"))
            continue
        for k, w in enumerate(pz.stages):
            c = choices[(i, k)]
            sub = name if len(pz.stages) == 1 else \
                f"{name}/{('depthwise', 'pointwise')[k]}"
            rows.append(report.LayerReport(sub, cls, w, c.tiling, c.cycles,
                                           c.dsp, c.bram18, c.bound,
                                           ports.get((i, k), default)))
    return tuple(rows)


class _Ready(NamedTuple):
    """When each row of a tensor is ready.

    Row r is ready at done[(r - shift) // band], clipped to the producer's
    `rows`; `length` is the tensor's own row count.
    """

    done: list[float]
    band: int
    rows: int
    length: int
    shift: int = 0

    def at(self, row: int) -> float:
        row = min(max(row - self.shift, 0), self.rows - 1)
        return self.done[row // self.band]


def _timeline(layers: Sequence[dict], parsed: Sequence[workload.Parsed],
              choices: dict) -> float:
    """List schedule of row bands; returns the last band's finish time.

    A layer reads the layers named by its dict's optional "inbound" indices,
    else the previous layer.
    """
    ready: list[_Ready] = []
    for i, (layer, pz) in enumerate(zip(layers, parsed)):
        inbound = layer.get("inbound")
        if inbound is None:
            inbound = (i - 1,) if i else ()
        ins = [ready[j] for j in inbound if 0 <= j < i]
        if not ins:
            ins = [_Ready([0.0], 1, 1, 1)]
        if not pz.stages:
            out_rows = workload.rows(layer["output_shape"])
            ready.append(_free(ins, out_rows, pz.row_shift))
            continue
        for k, w in enumerate(pz.stages):
            c = choices[(i, k)]
            band = 1 if c.tiling is None else c.tiling.Tr
            n_bands = -(-w.R // band)
            ins = [_bands(ins, w, band, n_bands, c.cycles / n_bands)]
        ready.append(ins[0])
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


def _bands(ins: list[_Ready], w: workload.Workload, band: int, n_bands: int,
           duration: float) -> _Ready:
    """Runs one engine's row bands; returns its output's ready times."""
    reach = w.D * (w.K - 1) - w.pad_top
    step = band * w.S
    # The last input row each band reads, clipped and shifted per input.
    lasts = range((band - 1) * w.S + reach, (band - 1) * w.S + reach
                  + n_bands * step, step)
    need = None
    for r in ins:
        top, done, size = r.rows - 1, r.done, r.band
        ready = [done[min(max(x - r.shift, 0), top) // size] for x in lasts]
        need = ready if need is None else list(map(max, need, ready))
    out, t = [], 0.0
    for x in need:
        t = (t if t > x else x) + duration
        out.append(t)
    return _Ready(out, band, w.R, w.R)
