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
        mapping: "pipelined" or "shared".
        layers: one LayerReport per engine or 0-cycle layer, in order.
            May be given as a zero-argument callable that builds them: the
            rows are then built on first access (a search reads only the
            totals), and kept.
        ports: words per cycle on each memory port of the shared engine;
            in a pipelined report, the device's whole bandwidth split over
            three ports, which the engines share by traffic (see each
            LayerReport.ports).

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
            "bits": self.bits,
            "mapping": self.mapping,
            "macs": self.macs,
            "ports_words_per_cycle": self.ports._asdict(),
            "device": dataclasses.asdict(self.device),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def __str__(self) -> str:
        d = self.device
        head = [
            f"{d.name} ({d.board or 'custom'}): {d.dsp} DSP, {d.bram18} "
            f"BRAM18, {d.clock_mhz:g} MHz, {d.dram_gbps:g} GB/s "
            f"[{d.assumptions}]",
            f"{self.mapping} mapping, {self.bits}-bit; "
            + (f"ports {self.ports.i:.3g} words/cycle each (I, W, O)"
               if self.mapping == "shared" else
               f"{3 * self.ports.i:.3g} words/cycle shared among engines by"
               f" traffic (ports I/W/O per engine below)"),
            f"latency {self.latency_ms:.4f} ms ({self.latency_cycles} "
            f"cycles), {self.throughput_fps:.1f} fps, {self.gops:.2f} GOP/s,"
            f" {self.dsp_used}/{d.dsp} DSP, {self.bram18_used}/{d.bram18} "
            f"BRAM18",
        ]
        cols = f"{'layer':<24}{'class':<20}{'M,N,R,C,K,S,g':<26}" \
               f"{'Tm,Tn,Tr,Tc':<16}{'cycles':>12}{'DSP':>6}{'BRAM':>6}" \
               f"  {'ports I/W/O':<17}bound"
        lines = head + ["", cols, "-" * len(cols)]
        for r in self.layers:
            w = "-" if r.workload is None else ",".join(
                str(v) for v in r.workload[1:8])
            t = "-" if r.tiling is None else ",".join(map(str, r.tiling))
            p = "-" if r.ports is None or r.workload is None else \
                "/".join(f"{v:.2g}" for v in r.ports)
            lines.append(f"{r.name[:23]:<24}{r.class_name[:19]:<20}"
                         f"{w:<26}{t:<16}{r.cycles:>12}{r.dsp:>6}"
                         f"{r.bram18:>6}  {p:<17}{r.bound}")
        return "\n".join(lines)

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
