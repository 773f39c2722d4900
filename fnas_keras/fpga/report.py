"""LatencyReport and LayerReport: what the performance model returns."""

import dataclasses
from typing import Any

from fnas_keras.fpga import devices
from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One engine (or one 0-cycle layer) of a network.

    Attributes:
        name: the Keras layer name ("conv1"; "sep/pointwise" for the second
            engine of a separable convolution).
        class_name: the Keras class.
        workload: (M, N, R, C, K, S, groups) as a Workload, or None for a
            0-cycle layer.
        tiling: (Tm, Tn, Tr, Tc), or None for a stream pass or a 0-cycle
            layer.
        cycles: the engine's busy cycles per image.
        dsp: DSP slices of the engine.
        bram18: BRAM18 blocks of the engine.
        bound: "compute" or "memory" (roofline), or "none" for 0 cycles.
        ports: the engine's memory ports (input, weight, output) in words
            per cycle, or None for a 0-cycle layer. Pipelined engines share
            the DRAM bandwidth by traffic (fpga.bandwidth); the shared
            engine has it all.
        lutram: LUTs of the engine's LUTRAM weight banks.
        resident: whether the layer's whole weights stay on chip (loaded
            once per image rather than once per tile).

    Example:
        >>> row = LayerReport("fc", "Dense", None, None, 0, 0, 0, "none")
        >>> row.to_dict()["cycles"]
        0
    """

    name: str
    class_name: str
    workload: workload.Workload | None
    tiling: tiling.Tiling | None
    cycles: int
    dsp: int
    bram18: int
    bound: str
    ports: tiling.Ports | None = None
    lutram: int = 0
    resident: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; workload and tiling as small dicts."""
        w = self.workload
        return {
            "name": self.name,
            "class_name": self.class_name,
            "workload": None if w is None else {
                "M": w.M, "N": w.N, "R": w.R, "C": w.C, "K": w.K, "S": w.S,
                "groups": w.groups},
            "tiling": None if self.tiling is None else self.tiling._asdict(),
            "cycles": self.cycles,
            "dsp": self.dsp,
            "bram18": self.bram18,
            "lutram": self.lutram,
            "resident_weights": self.resident,
            "bound": self.bound,
            "ports_words_per_cycle": None if self.ports is None
            else self.ports._asdict(),
        }


@dataclasses.dataclass(frozen=True)
class LatencyReport:
    """A network's FPGA latency and resources under one mapping.

    Attributes:
        latency_ms: end-to-end latency of one image in milliseconds.
        latency_cycles: the same in clock cycles.
        throughput_fps: images per second in steady state (pipelined: set by
            the slowest engine; shared: 1 / latency).
        gops: 2 x MACs / latency, in GOP/s.
        dsp_used: DSP slices used.
        bram18_used: BRAM18 blocks used.
        device: the FpgaDevice.
        bits: word width.
        mapping: the mapping used, "pipelined" or "shared".
        layers: one LayerReport per engine or 0-cycle layer, in order.
            May be given as a zero-argument callable that builds them: the
            rows are then built on first access (a search reads only the
            totals), and kept.
        ports: words per cycle on each memory port of the shared engine;
            in a pipelined report, the device's whole bandwidth split over
            three ports, which the engines share by traffic (see each
            LayerReport.ports).
        lutram_used: LUTRAM LUTs used (weight banks).
        uram_used: URAM blocks used (beyond the part's BRAM18; one URAM
            stands for fpga.memory.URAM_AS_BRAM18 BRAM18).
        engines: engines of the design: 1 for the shared mapping; per-layer
            engines or segments in the pipelined one.
        requested: the mapping asked for: "auto" picks the faster of
            "pipelined" and "shared" (the one in `mapping`).

    Example:
        >>> from fnas_keras import fpga
        >>> r = fpga.analyze(layers, "xc7z020")  # doctest: +SKIP
        >>> print(r)  # a table  # doctest: +SKIP
    """

    latency_ms: float
    latency_cycles: int
    throughput_fps: float
    gops: float
    dsp_used: int
    bram18_used: int
    device: devices.FpgaDevice
    bits: int
    mapping: str
    layers: tuple[LayerReport, ...]
    ports: tiling.Ports
    lutram_used: int = 0
    uram_used: int = 0
    engines: int = 1
    requested: str = ""

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image."""
        return sum(r.workload.macs for r in self.layers if r.workload)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the figures, the device and every layer."""
        return {
            "latency_ms": self.latency_ms,
            "latency_cycles": self.latency_cycles,
            "throughput_fps": self.throughput_fps,
            "gops": self.gops,
            "dsp_used": self.dsp_used,
            "bram18_used": self.bram18_used,
            "lutram_used": self.lutram_used,
            "uram_used": self.uram_used,
            "bits": self.bits,
            "mapping": self.mapping,
            "requested_mapping": self.requested or self.mapping,
            "engines": self.engines,
            "macs": self.macs,
            "ports_words_per_cycle": self.ports._asdict(),
            "device": dataclasses.asdict(self.device),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def __str__(self) -> str:
        d = self.device
        head = [
            f"{d.name} ({d.board or 'custom'}): {d.dsp} DSP, {d.bram18} "
            f"BRAM18, {d.lutram} LUTRAM LUTs, {d.uram} URAM, "
            f"{d.clock_mhz:g} MHz, {d.dram_gbps:g} GB/s",
            f"  [{d.assumptions}]",
            f"{self._mapping_line()}, {self.bits}-bit; "
            + (f"ports {self.ports.i:.3g} words/cycle each (I, W, O)"
               if self.mapping == "shared" else
               f"{3 * self.ports.i:.3g} words/cycle shared among engines by"
               f" traffic (ports I/W/O per engine below)"),
            "memory: banks packed into BRAM18 by width and depth (512 x 36 "
            "feeds two 16-bit or four 8-bit lanes); 1 URAM = 8 BRAM18;",
            "  weight banks in BRAM18, in LUTRAM (64 x 1 bit a LUT) or "
            "resident (all weights on chip, a line buffer of K - S rows; "
            + ("kept from image to image" if self.mapping == "pipelined"
               else "loaded once per image") + ")",
            "depthwise: Tm channels side by side; pipelined engines start "
            "once the input rows of their first row band exist",
            f"latency {self.latency_ms:.4f} ms ({self.latency_cycles} "
            f"cycles), {self.throughput_fps:.1f} fps, {self.gops:.2f} GOP/s,"
            f" {self.dsp_used}/{d.dsp} DSP, {self.bram18_used}/{d.bram18} "
            f"BRAM18, {self.lutram_used}/{d.lutram} LUTRAM, "
            f"{self.uram_used}/{d.uram} URAM",
        ]
        cols = f"{'layer':<24}{'class':<20}{'M,N,R,C,K,S,g':<24}" \
               f"{'Tm,Tn,Tr,Tc':<16}{'cycles':>12}{'DSP':>6}{'BRAM':>6}" \
               f"{'LUTRAM':>8}  {'ports I/W/O':<17}bound"
        lines = head + ["", cols, "-" * len(cols)]
        for r in self.layers:
            w = "-" if r.workload is None else ",".join(
                str(v) for v in r.workload[1:8])
            t = "-" if r.tiling is None else ",".join(map(str, r.tiling))
            p = "-" if r.ports is None or r.workload is None else \
                "/".join(f"{v:.2g}" for v in r.ports)
            lines.append(f"{r.name[:23]:<24}{r.class_name[:19]:<20}"
                         f"{w:<24}{t:<16}{r.cycles:>12}{r.dsp:>6}"
                         f"{r.bram18:>6}{r.lutram:>8}  {p:<17}{r.bound}"
                         + (" resident" if r.resident else ""))
        lines.append("(resident: the layer's weights stay on chip)")
        return "\n".join(lines)

    def _mapping_line(self) -> str:
        what = f"{self.mapping} mapping"
        if self.mapping == "pipelined":
            what += (f" ({self.engines} engine"
                     f"{'s' if self.engines != 1 else ''})")
        if self.requested == "auto":
            what = f"auto: {what} (the faster of pipelined and shared)"
        return what

    def plot(self, path: str | None = None) -> Any:
        """Bar chart of cycles per engine (matplotlib, imported lazily).

        Args:
            path: where to save a PNG, or None to only return the figure.

        Returns:
            The matplotlib Figure.
        """
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        busy = [r for r in self.layers if r.cycles]
        fig, ax = pyplot.subplots(figsize=(max(6, len(busy) * 0.3), 4))
        colours = ["tab:blue" if r.bound == "compute" else "tab:orange"
                   for r in busy]
        ax.bar(range(len(busy)), [r.cycles for r in busy], color=colours)
        ax.set_xticks(range(len(busy)), [r.name for r in busy], rotation=90,
                      fontsize=6)
        ax.set_ylabel("cycles (blue: compute-bound, orange: memory-bound)")
        ax.set_title(f"{self.device.name} {self.mapping} {self.bits}-bit: "
                     f"{self.latency_ms:.3f} ms")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


class _LazyRows:
    """The data descriptor behind LatencyReport.layers.

    The frozen dataclass's __init__ stores the field through
    object.__setattr__, which calls __set__ here: a callable is kept as is
    and called on the first read, whose tuple replaces it. Equality, repr,
    asdict and replace all read the attribute, so they see the tuple.
    """

    _SLOT = "_layers"

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._SLOT] = value

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self._SLOT]
        if callable(value):
            value = obj.__dict__[self._SLOT] = value()
        return value


# Installed after the dataclass is made, so that the field keeps no default.
LatencyReport.layers = _LazyRows()  # type: ignore[assignment]
