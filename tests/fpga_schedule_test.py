"""Tests for fnas_keras.fpga.schedule and fpga.analyze: whole networks."""

import math

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from fnas_keras import fpga
from fnas_keras.fpga import engine
from fnas_keras.fpga import schedule
from fnas_keras.fpga import tiling
from fnas_keras.fpga import timeline
from fnas_keras.fpga import workload


def conv(filters, kernel, shape, strides=1, padding="same"):
    h, w, c = shape
    if padding == "same":
        out = (-(-h // strides), -(-w // strides))
    else:
        out = ((h - kernel) // strides + 1, (w - kernel) // strides + 1)
    return {"class_name": "Conv2D",
            "config": {"filters": filters, "kernel_size": kernel,
                       "strides": strides, "padding": padding},
            "input_shape": (None, h, w, c),
            "output_shape": (None, *out, filters)}


def mnist(arch=((5, 9), (7, 18), (14, 36), (5, 9))):
    layers, c = [], 1
    for kernel, filters in arch:
        layers.append(conv(filters, kernel, (28, 28, c)))
        c = filters
    layers.append({"class_name": "GlobalAveragePooling2D", "config": {},
                   "input_shape": (None, 28, 28, c),
                   "output_shape": (None, c)})
    layers.append({"class_name": "Dense", "config": {"units": 10},
                   "input_shape": (None, c), "output_shape": (None, 10)})
    return layers


def test_split_gives_minimums_then_shares_by_macs():
    assert schedule.split([1, 3], 10, [1, 1], "DSP") == [1 + 2, 1 + 6]
    assert schedule.split([0, 0], 10, [2, 2], "DSP") == [2, 2]
    with pytest.raises(fpga.ResourceError, match="3 engines need at least 6"
                                                 " DSP; the device has 5"):
        schedule.split([1, 1, 1], 5, [2, 2, 2], "DSP")


def test_pipelined_latency_lies_between_slowest_stage_and_sum():
    report = fpga.analyze(mnist(), "xc7z020")
    cycles = [r.cycles for r in report.layers]
    assert max(cycles) <= report.latency_cycles <= sum(cycles)
    assert report.throughput_fps == pytest.approx(100e6 / max(cycles))


def test_pipelined_engines_stay_within_the_device():
    dev = fpga.device("xc7z020")
    report = fpga.analyze(mnist(), dev, bits=16)
    assert report.dsp_used <= dev.dsp and report.bram18_used <= dev.bram18
    assert report.dsp_used == sum(r.dsp for r in report.layers)
    for r in report.layers:
        if r.tiling is not None:
            assert r.dsp >= 1


def test_shared_latency_is_the_sum_of_layers():
    report = fpga.analyze(mnist(), "xc7z020", mapping="shared")
    assert report.latency_cycles == sum(r.cycles for r in report.layers)
    tm_tn = {(r.tiling.Tm, r.tiling.Tn) for r in report.layers
             if r.tiling is not None and r.workload.M >= 36}
    assert len(tm_tn) == 1


def choice(tr, cycles):
    return tiling.Choice(tiling.Tiling(1, 1, tr, 1), cycles, 0, "compute", 1)


def chain(kernel):
    layers = [conv(2, kernel, (4, 4, 2)), conv(2, kernel, (4, 4, 2))]
    return layers, workload.parse_all(layers)


def test_row_band_pipeline_by_hand_1x1():
    # Two layers of 4 rows in bands of 2 rows, 50 cycles a band. Layer 2's
    # first band needs rows 0-1 (ready at 50) and ends at 100; its second
    # needs rows 2-3 (ready at 100) and ends at 150.
    layers, parsed = chain(kernel=1)
    choices = {(0, 0): choice(2, 100), (1, 0): choice(2, 100)}
    assert timeline.finish(layers, parsed, choices) == 150


def test_row_band_pipeline_by_hand_3x3_waits_for_the_halo():
    # With a 3x3 kernel (pad 1) layer 2's first band reads row 2, produced
    # by layer 1's second band at 100: it ends at 150, the next at 200.
    layers, parsed = chain(kernel=3)
    choices = {(0, 0): choice(2, 100), (1, 0): choice(2, 100)}
    assert timeline.finish(layers, parsed, choices) == 200


def test_inbound_indices_wire_a_residual_add():
    a = conv(4, 3, (8, 8, 4))
    b = conv(4, 3, (8, 8, 4))
    add = {"class_name": "Add", "config": {},
           "input_shape": [(None, 8, 8, 4)] * 2,
           "output_shape": (None, 8, 8, 4), "inbound": [0, 1]}
    b["inbound"] = [0]
    report = fpga.analyze([a, b, add], "zcu102")
    cycles = [r.cycles for r in report.layers]
    assert max(cycles) <= report.latency_cycles <= sum(cycles)


def test_zero_padding_and_flatten_pass_rows_through():
    layers = [
        {"class_name": "ZeroPadding2D", "config": {"padding": ((1, 1),
                                                               (1, 1))},
         "input_shape": (None, 8, 8, 3), "output_shape": (None, 10, 10, 3)},
        conv(4, 3, (10, 10, 3), strides=2, padding="valid"),
        {"class_name": "Flatten", "config": {},
         "input_shape": (None, 4, 4, 4), "output_shape": (None, 64)},
        {"class_name": "Dense", "config": {"units": 3},
         "input_shape": (None, 64), "output_shape": (None, 3)},
    ]
    report = fpga.analyze(layers, "xc7z020")
    busy = [r.cycles for r in report.layers if r.cycles]
    assert len(busy) == 2
    assert report.latency_cycles == pytest.approx(sum(busy), abs=1)


def test_unroll_fixes_the_shared_engine():
    report = fpga.analyze(mnist(), "xc7z020", mapping="shared",
                          unroll=(4, 2))
    assert report.dsp_used == 8
    assert all(r.tiling.Tm <= 4 and r.tiling.Tn <= 2
               for r in report.layers if r.tiling is not None)


def test_unroll_over_the_dsp_budget_is_an_error():
    with pytest.raises(ValueError, match=r"unroll \(Tm, Tn\) = \(16, 16\) "
                                         r"needs 256 DSP.*has 220"):
        fpga.analyze(mnist(), "xc7z020", mapping="shared", unroll=(16, 16))
    with pytest.raises(ValueError, match="two positive integers"):
        fpga.analyze(mnist(), "xc7z020", mapping="shared", unroll=(0, 2))
    with pytest.raises(ValueError, match="mapping='shared'"):
        fpga.analyze(mnist(), "xc7z020", unroll=(2, 2))


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="bits must be one of 8, 16, 32, got"
                                         " 12"):
        fpga.analyze(mnist(), "xc7z020", bits=12)
    with pytest.raises(ValueError, match="unknown mapping 'pipeline'; "
                                         "allowed: pipelined, shared"):
        fpga.analyze(mnist(), "xc7z020", mapping="pipeline")
    with pytest.raises(ValueError, match="unknown device 'zc7020'"):
        fpga.analyze(mnist(), "zc7020")
    with pytest.raises(ValueError, match="unsupported layer 'GRU'"):
        fpga.analyze([{"class_name": "GRU", "config": {},
                       "input_shape": (None, 4, 2),
                       "output_shape": (None, 3)}], "xc7z020")
    with pytest.raises(ValueError, match="no layers"):
        fpga.analyze([], "xc7z020")


@pytest.mark.parametrize("mapping", ["pipelined", "shared"])
def test_network_too_big_for_a_tiny_device(mapping):
    tiny = fpga.FpgaDevice("tiny", dsp=2, bram18=2, clock_mhz=100,
                           dram_gbps=0.5)
    with pytest.raises(fpga.ResourceError):
        fpga.analyze(mnist(), tiny, mapping=mapping)


def test_resource_error_is_a_value_error():
    assert issubclass(fpga.ResourceError, ValueError)


def test_more_dsps_never_slow_the_shared_engine():
    small = fpga.FpgaDevice("s", dsp=20, bram18=280, clock_mhz=100,
                            dram_gbps=1.2)
    big = fpga.FpgaDevice("b", dsp=220, bram18=280, clock_mhz=100,
                          dram_gbps=1.2)
    for m in ("shared",):
        assert (fpga.analyze(mnist(), big, mapping=m).latency_cycles
                <= fpga.analyze(mnist(), small, mapping=m).latency_cycles)


@st.composite
def networks(draw):
    h = draw(st.integers(4, 32))
    shape = (h, h, draw(st.integers(1, 8)))
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "depthwise", "pool", "bn"]))
        hh, ww, c = shape
        if kind == "conv":
            k = draw(st.sampled_from([1, 3, 5]))
            s = draw(st.sampled_from([1, 2]))
            layers.append(conv(draw(st.integers(1, 48)), k, shape, s))
        elif kind == "depthwise":
            layers.append({"class_name": "DepthwiseConv2D",
                           "config": {"kernel_size": 3, "padding": "same"},
                           "input_shape": (None, *shape),
                           "output_shape": (None, *shape)})
        elif kind == "pool" and hh >= 2:
            out = (hh // 2, ww // 2, c)
            layers.append({"class_name": "MaxPooling2D",
                           "config": {"pool_size": 2, "padding": "valid"},
                           "input_shape": (None, *shape),
                           "output_shape": (None, *out)})
        else:
            layers.append({"class_name": "BatchNormalization", "config": {},
                           "input_shape": (None, *shape),
                           "output_shape": (None, *shape)})
        shape = layers[-1]["output_shape"][1:]
    layers.append({"class_name": "Flatten", "config": {},
                   "input_shape": (None, *shape),
                   "output_shape": (None, math.prod(shape))})
    layers.append({"class_name": "Dense", "config": {"units": 10},
                   "input_shape": (None, math.prod(shape)),
                   "output_shape": (None, 10)})
    return layers


@settings(max_examples=60, deadline=None)
@given(layers=networks(), bits=st.sampled_from([8, 16, 32]),
       mapping=st.sampled_from(["pipelined", "shared"]),
       device=st.sampled_from(["xc7z020", "zcu102", "u250"]))
def test_every_valid_network_has_a_positive_finite_latency(
        layers, bits, mapping, device):
    report = fpga.analyze(layers, device, bits=bits, mapping=mapping)
    assert math.isfinite(report.latency_ms) and report.latency_ms > 0
    assert report.latency_cycles >= 1
    assert 0 < report.gops < fpga.device(device).peak_gops(bits)
    cycles = [r.cycles for r in report.layers]
    assert max(cycles) <= report.latency_cycles <= sum(cycles) + 1


def test_bandwidth_goes_where_the_traffic_is():
    # A big conv, then a Dense(2) at every position: the conv moves more
    # words, so its ports get more of the DRAM bandwidth.
    big = conv(64, 3, (32, 32, 64))
    tiny = {"class_name": "Dense", "config": {"units": 2},
            "input_shape": (None, 32, 32, 64),
            "output_shape": (None, 32, 32, 2)}
    dev = fpga.device("zcu102")
    report = fpga.analyze([big, tiny], dev)
    conv_bw, dense_bw = (sum(r.ports) for r in report.layers)
    total = dev.bytes_per_cycle() / 2
    assert conv_bw > 0.5 * total and conv_bw > dense_bw
    assert conv_bw + dense_bw <= total * (1 + 1e-9)


def test_share_is_by_traffic_rounded_down_and_lone_engines_get_it_all():
    from fnas_keras.fpga import bandwidth

    w = workload.Workload("conv", M=8, N=8, R=8, C=8)
    vec = workload.Workload("conv", M=8, N=8, R=1, C=1)
    ports = bandwidth.share([w, w, vec], [(100, 0, 0), (0, 400, 0),
                                          (1, 1, 1)], 12.0)
    # sqrt(100) : sqrt(400) = 1 : 2 of 12 words/cycle is 4 and 8; rounded
    # down to 2 ** (k / 2) of 12: 12 / 2 ** 1.5 = 4.24 > 4, so 12 / 4 = 3,
    # and 8 stays 12 / 2 ** 0.5 = 8.49 > 8, so 12 / 2 = 6.
    assert ports[0].i == pytest.approx(3.0) and ports[1].w == pytest.approx(6)
    assert ports[0].w < 1e-5 and ports[1].i < 1e-5
    assert ports[2] == (4.0, 4.0, 4.0)  # one output row: runs alone


def test_traffic_counts_each_tile_transfer():
    from fnas_keras.fpga import bandwidth

    w = workload.Workload("conv", M=4, N=2, R=8, C=8, K=3, Kw=3, H=8)
    # Tiles: 2 x 2 (rows, cols) x 2 (M) x 2 (N) = 16 input and weight
    # loads, 8 output stores.
    t = tiling.Tiling(2, 1, 4, 4)
    assert bandwidth.traffic(w, t) == (16 * 6 * 6, 16 * 2 * 9, 8 * 2 * 16)
    assert bandwidth.traffic(w, None) == (2 * 10 * 10, 4 * 2 * 9, 4 * 64)


def test_slack_trades_a_few_cycles_for_more_row_bands():
    w = workload.Workload("conv", M=16, N=16, R=28, C=28, K=5, Kw=5, H=28)
    p = tiling.Ports(2.0, 2.0, 2.0)
    fast = engine.best_tiling(w, 64, 200, p, 16)
    banded = engine.best_tiling(w, 64, 200, p, 16, slack=0.0625)
    assert banded.tiling.Tr < fast.tiling.Tr
    assert fast.cycles <= banded.cycles <= 1.0625 * fast.cycles
    assert banded.cycles == tiling.layer_cycles(w, banded.tiling, p,
                                                banded.resident, True)
    assert banded.bram18 <= 200


def test_a_chain_of_small_convs_overlaps_in_the_pipeline():
    layers, c = [], 8
    for _ in range(6):
        layers.append(conv(8, 3, (32, 32, c)))
    report = fpga.analyze(layers, "zcu102")
    cycles = [r.cycles for r in report.layers]
    assert all(r.tiling.Tr < 32 for r in report.layers)
    assert max(cycles) <= report.latency_cycles < 0.5 * sum(cycles)


def test_auto_is_the_faster_mapping_and_says_so():
    for arch in (((5, 9), (7, 18), (14, 36), (5, 9)),
                 ((5, 18), (5, 18), (5, 36), (7, 36))):
        layers = mnist(arch)
        piped = fpga.analyze(layers, "xc7z020", mapping="pipelined")
        shared = fpga.analyze(layers, "xc7z020", mapping="shared")
        auto = fpga.analyze(layers, "xc7z020", mapping="auto")
        best = min(piped, shared, key=lambda r: r.latency_cycles)
        assert auto.latency_cycles == best.latency_cycles
        assert auto.mapping == best.mapping and auto.requested == "auto"
        assert auto.to_dict()["requested_mapping"] == "auto"
        assert auto.to_dict()["mapping"] == best.mapping
        assert f"auto: {best.mapping} mapping" in str(auto)
    assert "auto" in fpga.MAPPINGS
    fpga.check("xc7z020", 16, "auto")


def test_unroll_is_only_for_shared_even_with_auto():
    with pytest.raises(ValueError, match="mapping='shared'"):
        fpga.analyze(mnist(), "xc7z020", mapping="auto", unroll=(2, 2))


@settings(max_examples=30, deadline=None)
@given(layers=networks(), more=st.integers(1, 2000),
       luts=st.integers(1, 20000))
def test_more_bram_or_lutram_never_slows_the_shared_engine(layers, more,
                                                          luts):
    base = fpga.FpgaDevice("b", dsp=64, bram18=60, clock_mhz=100,
                           dram_gbps=1.2)
    try:
        slow = fpga.analyze(layers, base, mapping="shared").latency_cycles
    except fpga.ResourceError:
        return
    for dev in (fpga.FpgaDevice("m", dsp=64, bram18=60 + more,
                                clock_mhz=100, dram_gbps=1.2),
                fpga.FpgaDevice("l", dsp=64, bram18=60, clock_mhz=100,
                                dram_gbps=1.2, luts=luts, lutram=luts)):
        assert fpga.analyze(layers, dev,
                            mapping="shared").latency_cycles <= slow


@settings(max_examples=30, deadline=None)
@given(layers=networks(), device=st.sampled_from(["xc7z020", "zcu102"]))
def test_8_bits_never_slower_than_16_on_the_same_part(layers, device):
    # The shared engine (and every engine, fpga_tiling_test); the
    # pipelined split's bandwidth shares and balancing are heuristics that
    # can pick a slightly slower split at 8 bits.
    fast = fpga.analyze(layers, device, bits=8, mapping="shared")
    slow = fpga.analyze(layers, device, bits=16, mapping="shared")
    assert fast.latency_cycles <= slow.latency_cycles


def test_depthwise_runs_many_channels_at_once():
    layer = {"class_name": "DepthwiseConv2D",
             "config": {"kernel_size": 3, "padding": "same"},
             "input_shape": (None, 56, 56, 144),
             "output_shape": (None, 56, 56, 144)}
    report = fpga.analyze([layer], "zcu102", mapping="shared")
    (row,) = report.layers
    assert row.tiling.Tn == 1 and row.tiling.Tm > 1
    assert row.dsp == row.tiling.Tm
    # One lane per group would take groups x R x C x K^2 cycles at least.
    assert row.cycles * 10 < 144 * 56 * 56 * 9


def deep_chain(n=12):
    layers, c = [], 3
    for i in range(n):
        layers.append(conv(16 + 8 * (i % 3), 3, (32, 32, c)))
        c = layers[-1]["output_shape"][-1]
    return layers


def test_deep_pipelined_is_never_slower_than_shared():
    layers = deep_chain()
    for bits in (8, 16):
        piped = fpga.analyze(layers, "zcu102", bits=bits)
        shared = fpga.analyze(layers, "zcu102", bits=bits, mapping="shared")
        assert piped.mapping == "pipelined"
        assert piped.latency_cycles <= shared.latency_cycles
        if piped.engines == 1:  # the one segment: the shared engine
            assert piped.latency_cycles == shared.latency_cycles
            assert "(1 engine)" in str(piped)


def test_segments_share_engines_and_run_their_layers_in_order():
    layers = deep_chain()
    parsed = workload.parse_all(layers)
    ws = [w for p in parsed for w in p.stages]
    owner = schedule._cuts(ws, 3)
    assert owner == sorted(owner) and set(owner) == {0, 1, 2}
    report = schedule._segmented(layers, parsed, ws, fpga.device("zcu102"),
                                 16, 3)
    assert report.engines == 3
    seg = [sum(r.cycles for r, o in zip(report.layers, owner) if o == s)
           for s in range(3)]
    # A segment runs its layers one after another: at least its sum.
    assert max(seg) <= report.latency_cycles <= sum(seg) + 1
    assert report.dsp_used <= 2520
