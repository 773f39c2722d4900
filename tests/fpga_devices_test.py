"""Tests for fnas_keras.fpga.devices: the catalogue and FpgaDevice."""

import dataclasses
import math

import pytest

from fnas_keras import fpga

PARTS = ("xc7z020", "xc7a50t", "xc7z045", "xczu3eg", "xczu9eg", "xc7vx485t",
         "xcvu9p", "xcu250")


def test_catalogue_has_every_part_of_the_notes():
    assert tuple(fpga.devices()) == PARTS


def test_resources_are_the_datasheet_figures():
    # FNAS_NOTES section 6; BRAM18 = 2 x BRAM36.
    dev = fpga.device("xc7z020")
    assert (dev.dsp, dev.bram18, dev.clock_mhz) == (220, 280, 100)
    assert fpga.device("zcu102").dsp == 2520
    assert fpga.device("zcu102").bram18 == 2 * 912
    assert fpga.device("u250").bram18 == 2 * 2688


@pytest.mark.parametrize("alias,part", [
    ("pynq-z1", "xc7z020"), ("ZedBoard", "xc7z020"), ("zcu102", "xczu9eg"),
    ("ZC706", "xc7z045"), ("vc707", "xc7vx485t"), ("Ultra96", "xczu3eg"),
    ("u250", "xcu250"), ("arty-a7", "xc7a50t"), ("VCU118", "xcvu9p"),
    ("XC7Z020", "xc7z020")])
def test_board_aliases_are_case_insensitive(alias, part):
    assert fpga.device(alias) is fpga.device(part)


def test_unknown_device_lists_known_names():
    with pytest.raises(ValueError,
                       match=r"unknown device 'zc7020'; known: xc7z020, "):
        fpga.device("zc7020")


def test_device_passes_an_fpga_device_through():
    dev = fpga.FpgaDevice("mine", dsp=10, bram18=20, clock_mhz=50,
                          dram_gbps=1.0)
    assert fpga.device(dev) is dev


def test_every_catalogue_device_states_its_assumptions():
    for dev in fpga.devices().values():
        assert dev.assumptions and dev.board
        assert dev.clock_mhz > 0 and dev.dram_gbps > 0


def test_custom_device_is_one_call_and_frozen():
    dev = fpga.FpgaDevice("tiny", dsp=4, bram18=8, clock_mhz=100,
                          dram_gbps=0.4)
    assert dev.bytes_per_cycle() == pytest.approx(4.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev.dsp = 5


@pytest.mark.parametrize("field,value", [
    ("dsp", 0), ("dsp", -3), ("dsp", 2.5), ("bram18", 0),
    ("clock_mhz", 0), ("clock_mhz", -1.0), ("clock_mhz", math.nan),
    ("dram_gbps", math.inf), ("dram_gbps", 0.0)])
def test_custom_device_rejects_bad_fields(field, value):
    kwargs = dict(name="bad", dsp=10, bram18=10, clock_mhz=100.0,
                  dram_gbps=1.0)
    kwargs[field] = value
    with pytest.raises(ValueError, match=f"{field}.*{value!r}"):
        fpga.FpgaDevice(**kwargs)


def test_dsp_per_mac_follows_the_notes():
    assert fpga.dsp_per_mac(32) == 5
    assert fpga.dsp_per_mac(16) == 1
    assert fpga.dsp_per_mac(8) == 0.5


def test_bits_other_than_8_16_32_are_rejected():
    with pytest.raises(ValueError, match="bits must be one of 8, 16, 32, got "
                                         "12"):
        fpga.dsp_per_mac(12)


def test_peak_gops_is_two_ops_per_lane_per_cycle():
    dev = fpga.device("zcu102")
    assert dev.peak_gops(16) == pytest.approx(2 * 2520 * 100e6 / 1e9)
    assert dev.peak_gops(8) == pytest.approx(2 * 5040 * 100e6 / 1e9)


def test_catalogue_parts_carry_their_full_part_number():
    for name, dev in fpga.devices().items():
        assert dev.part.startswith(name), (name, dev.part)
    assert fpga.device("pynq-z1").part == "xc7z020clg400-1"
    assert fpga.FpgaDevice("mine", dsp=1, bram18=1, clock_mhz=1,
                           dram_gbps=1).part == ""


def test_catalogue_has_luts_lutram_and_uram_of_the_notes():
    dev = fpga.device("xc7z020")
    assert (dev.luts, dev.lutram, dev.uram) == (53200, 17400, 0)
    assert fpga.device("zcu102").lutram == 144000
    assert fpga.device("vcu118").uram == 960
    assert fpga.device("u250").uram == 1280
    for d in fpga.devices().values():
        assert 0 < d.lutram < d.luts


def test_custom_device_defaults_to_no_lutram_or_uram():
    dev = fpga.FpgaDevice("mine", dsp=10, bram18=20, clock_mhz=50,
                          dram_gbps=1.0)
    assert (dev.luts, dev.lutram, dev.uram) == (0, 0, 0)
    with pytest.raises(ValueError, match="lutram must be a non-negative "
                                         "integer, got -1"):
        fpga.FpgaDevice("bad", dsp=1, bram18=1, clock_mhz=1, dram_gbps=1,
                        lutram=-1)
    with pytest.raises(ValueError, match=r"lutram \(9\) cannot exceed luts"):
        fpga.FpgaDevice("bad", dsp=1, bram18=1, clock_mhz=1, dram_gbps=1,
                        luts=8, lutram=9)
