"""FPGA devices: the resources the performance model budgets against.

The catalogue holds the parts of FNAS_NOTES section 6. DSP and BRAM counts
are datasheet figures (BRAM18 = 2 x BRAM36). Clocks and DRAM bandwidths are
not on the datasheets; the values chosen here are conservative and stated in
`assumptions` so that every report can show them:

* clock: 100 MHz on every Zynq/7-series/Zynq-UltraScale+ part (the FNAS
  reference code and the authors' ZCU102 work use 100 MHz), 200 MHz on the
  large Virtex UltraScale+ parts (HLS kernels there close timing at 300 MHz).
* bandwidth: half the peak of the board's DRAM interface, a sustained rate an
  HLS accelerator reaches through AXI; XC7Z020 uses 1.2 GB/s, which gives the
  reference code's 2 words per cycle on each of the three memory ports at
  16 bits and 100 MHz.
"""

import dataclasses
import math

_BRAM18_PER_BRAM36 = 2

# DSP48 slices per multiply-accumulate lane (FNAS_NOTES section 5): a float32
# MAC takes 5, a 16-bit fixed-point MAC 1, and two 8-bit MACs pack into one.
_DSP_PER_MAC: dict[int, float] = {8: 0.5, 16: 1.0, 32: 5.0}


def dsp_per_mac(bits: int) -> float:
    """DSP slices per MAC lane at a word width.

    Args:
        bits: 8, 16 or 32.

    Returns:
        0.5, 1.0 or 5.0.

    Raises:
        ValueError: bits is not one of 8, 16, 32.
    """
    if isinstance(bits, bool) or bits not in _DSP_PER_MAC:
        raise ValueError(f"bits must be one of 8, 16, 32, got {bits!r}")
    return _DSP_PER_MAC[bits]


@dataclasses.dataclass(frozen=True)
class FpgaDevice:
    """An FPGA's resources as the performance model sees them.

    Attributes:
        name: part name, e.g. "xc7z020".
        dsp: DSP slices available to the accelerator.
        bram18: 18 Kb block RAMs available to the accelerator.
        clock_mhz: accelerator clock in MHz.
        dram_gbps: sustained DRAM bandwidth in GB/s (1e9 bytes per second),
            shared by all memory ports.
        board: the board the part sits on, for display only.
        part: the full part number that vendor tools take (package, speed
            grade), e.g. "xc7z020clg400-1"; empty when unknown.
        assumptions: how clock and bandwidth were chosen, for the report.
        luts: LUTs of the part (for display; 0 when unknown).
        lutram: LUTRAM-capable LUTs (SLICEM LUT6, 64 x 1 bit each) that
            the accelerator may use as small RAM banks; 0 (the default):
            every bank is BRAM.
        uram: UltraRAM blocks (288 Kb, UltraScale+ only); 0 (the default):
            none.

    Raises:
        ValueError: a resource, clock or bandwidth is not a positive finite
            number; the message names the field and the value.

    Example:
        >>> dev = FpgaDevice("mypart", dsp=100, bram18=200, clock_mhz=150,
        ...                  dram_gbps=2.0)
        >>> dev.peak_gops(bits=16)
        30.0
    """

    name: str
    dsp: int
    bram18: int
    clock_mhz: float
    dram_gbps: float
    board: str = ""
    assumptions: str = "user-defined device"
    part: str = ""
    luts: int = 0
    lutram: int = 0
    uram: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got "
                             f"{self.name!r}")
        for field in ("dsp", "bram18"):
            value = getattr(self, field)
            if (isinstance(value, bool) or not isinstance(value, int)
                    or value <= 0):
                raise ValueError(f"{field} must be a positive integer, got "
                                 f"{value!r}")
        for field in ("luts", "lutram", "uram"):
            value = getattr(self, field)
            if (isinstance(value, bool) or not isinstance(value, int)
                    or value < 0):
                raise ValueError(f"{field} must be a non-negative integer, "
                                 f"got {value!r}")
        if self.luts and self.lutram > self.luts:
            raise ValueError(f"lutram ({self.lutram}) cannot exceed luts "
                             f"({self.luts})")
        for field in ("clock_mhz", "dram_gbps"):
            value = getattr(self, field)
            if (isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{field} must be a positive finite number, "
                                 f"got {value!r}")

    @property
    def clock_hz(self) -> float:
        """The accelerator clock in Hz."""
        return self.clock_mhz * 1e6

    def bytes_per_cycle(self) -> float:
        """DRAM bytes per accelerator clock cycle, all ports together."""
        return self.dram_gbps * 1e9 / self.clock_hz

    def peak_gops(self, bits: int = 16) -> float:
        """Compute roof: 2 ops per MAC lane per cycle, in GOP/s."""
        lanes = self.dsp / dsp_per_mac(bits)
        return 2.0 * lanes * self.clock_hz / 1e9


def _part(name: str, board: str, dsp: int, bram36: int, clock_mhz: float,
          dram_gbps: float, why: str, part: str,
          luts: tuple[int, int, int]) -> FpgaDevice:
    return FpgaDevice(name=name, dsp=dsp, bram18=bram36 * _BRAM18_PER_BRAM36,
                      clock_mhz=clock_mhz, dram_gbps=dram_gbps, board=board,
                      assumptions=why, part=part, luts=luts[0],
                      lutram=luts[1], uram=luts[2])


_CATALOGUE: dict[str, FpgaDevice] = {
    d.name: d for d in (
        _part("xc7z020", "PYNQ-Z1 / ZedBoard", 220, 140, 100, 1.2,
              "100 MHz and 2 words/cycle per port at 16 bits, as the FNAS "
              "reference code (3 ports x 2 x 2 B x 100 MHz = 1.2 GB/s)",
              "xc7z020clg400-1", (53200, 17400, 0)),
        _part("xc7a50t", "Arty A7", 120, 75, 100, 0.67,
              "100 MHz; half the peak of 16-bit DDR3L at 667 MT/s",
              "xc7a50ticsg324-1L", (32600, 9600, 0)),
        _part("xc7z045", "ZC706", 900, 545, 100, 2.1,
              "100 MHz; half the 4.2 GB/s peak of the PS DDR3",
              "xc7z045ffg900-2", (218600, 70400, 0)),
        _part("xczu3eg", "Ultra96", 360, 216, 100, 2.1,
              "100 MHz; half the peak of 32-bit LPDDR4 at 1066 MT/s",
              "xczu3eg-sbva484-1-e", (70560, 28800, 0)),
        _part("xczu9eg", "ZCU102", 2520, 912, 100, 8.5,
              "100 MHz as the authors' ZCU102 work; half the peak of "
              "64-bit PS DDR4 at 2133 MT/s",
              "xczu9eg-ffvb1156-2-e", (274080, 144000, 0)),
        _part("xc7vx485t", "VC707", 2800, 1030, 100, 6.4,
              "100 MHz; half the peak of 64-bit DDR3 at 1600 MT/s",
              "xc7vx485tffg1761-2", (303600, 130800, 0)),
        _part("xcvu9p", "VCU118", 6840, 2160, 200, 9.6,
              "200 MHz; half the peak of one 64-bit DDR4-2400 channel",
              "xcvu9p-flga2104-2L-e", (1182240, 591840, 960)),
        _part("xcu250", "Alveo U250", 12288, 2688, 200, 38.5,
              "200 MHz; half the peak of 4 x DDR4 at 19.25 GB/s",
              "xcu250-figd2104-2L-e", (1728000, 791040, 1280)),
    )
}

_ALIASES: dict[str, str] = {
    "pynq-z1": "xc7z020", "pynq": "xc7z020", "zedboard": "xc7z020",
    "arty-a7": "xc7a50t", "zc706": "xc7z045", "ultra96": "xczu3eg",
    "zcu102": "xczu9eg", "vc707": "xc7vx485t", "vcu118": "xcvu9p",
    "u250": "xcu250", "alveo-u250": "xcu250",
}


def devices() -> dict[str, FpgaDevice]:
    """Returns the catalogue, keyed by part name (aliases not included).

    Returns:
        A new dict of part name to FpgaDevice, in catalogue order.
    """
    return dict(_CATALOGUE)


def aliases() -> dict[str, str]:
    """Returns the board-name aliases, alias to part name."""
    return dict(_ALIASES)


def device(name: "str | FpgaDevice") -> FpgaDevice:
    """Looks up a part or board name, case-insensitively.

    Args:
        name: a part name ("xc7z020"), a board alias ("pynq-z1"), or an
            FpgaDevice, which is returned unchanged.

    Returns:
        The FpgaDevice.

    Raises:
        ValueError: the name is unknown; the message lists the known ones.
    """
    if isinstance(name, FpgaDevice):
        return name
    if not isinstance(name, str):
        raise ValueError(f"device must be a name or an FpgaDevice, got "
                         f"{name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _CATALOGUE:
        return _CATALOGUE[key]
    known = ", ".join(list(_CATALOGUE) + list(_ALIASES))
    raise ValueError(f"unknown device {name!r}; known: {known}")
