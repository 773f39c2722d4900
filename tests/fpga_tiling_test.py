"""Tests for fnas_keras.fpga.tiling: hand-computed cycles and resources."""

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from fnas_keras import fpga
from fnas_keras.fpga import engine
from fnas_keras.fpga import shared
from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload

TWO = tiling.Ports(2.0, 2.0, 2.0)


def conv(M, N, R, C, K, S=1, groups=1):
    return workload.Workload("conv", M=M, N=N, R=R, C=C, K=K, S=S,
                             groups=groups, Kw=K, Sw=S, H=R * S)


def test_compute_bound_conv_by_hand():
    w = conv(M=4, N=2, R=8, C=8, K=3)
    t = tiling.Tiling(2, 1, 4, 4)
    t_i = 1 * (1 * 4 + 3 - 1) * (1 * 4 + 3 - 1) / 2  # 18
    t_w = 2 * 1 * 9 / 2  # 9
    t_comp = 9 * 4 * 4  # 144
    t_o = 2 * 4 * 4 / 2  # 16
    assert tiling.terms(w, t, TWO) == (18, 9, 144, 16)
    l2 = max(math.ceil(2 / 1) * max(t_i, t_w, t_comp), t_o)  # 288
    expected = math.ceil(8 / 4) * math.ceil(8 / 4) * math.ceil(4 / 2) * l2
    assert tiling.layer_cycles(w, t, TWO) == expected == 2304
    assert tiling.bound(w, t, TWO) == "compute"


def test_memory_bound_conv_by_hand():
    w = conv(M=8, N=8, R=4, C=4, K=1)
    p = tiling.Ports(0.5, 0.5, 0.5)
    t = tiling.Tiling(4, 4, 2, 2)
    # tI = 4*2*2/0.5 = 32, tW = 16/0.5 = 32, tComp = 4, tO = 16/0.5 = 32
    assert tiling.terms(w, t, p) == (32, 32, 4, 32)
    assert tiling.layer_cycles(w, t, p) == 2 * 2 * 2 * max(2 * 32, 32)
    assert tiling.bound(w, t, p) == "memory"


def test_strided_input_tile_uses_the_full_formula():
    w = conv(M=1, N=1, R=4, C=4, K=3, S=2)
    t = tiling.Tiling(1, 1, 2, 2)
    # (S Tr + K - S) = 2*2 + 3 - 2 = 5 rows and columns.
    assert tiling.terms(w, t, TWO)[0] == math.ceil(25 / 2)


def test_dense_by_hand():
    w = workload.Workload("conv", M=10, N=36, R=1, C=1)
    t = tiling.Tiling(5, 6, 1, 1)
    # tI = ceil(6/2) = 3, tW = 30/2 = 15, tComp = 1, tO = ceil(5/2) = 3
    assert tiling.terms(w, t, TWO) == (3, 15, 1, 3)
    assert tiling.layer_cycles(w, t, TWO) == 2 * max(6 * 15, 3) == 180


def test_depthwise_by_hand_runs_channels_side_by_side():
    w = conv(M=8, N=8, R=4, C=4, K=3, groups=8)
    t = tiling.Tiling(4, 1, 4, 4)
    # Four channels at once, each from its own input channel:
    # tI = 4 * 36 / 2, tW = 4 * 9 / 2, tComp = 144, tO = 4 * 16 / 2.
    assert tiling.per_group(w) == (8, 1)
    assert tiling.terms(w, t, TWO) == (72, 18, 144, 32)
    # ceil(8 / 4) = 2 channel tiles of L2 = 144 (one group per lane).
    assert tiling.layer_cycles(w, t, TWO) == 2 * 144


def test_resident_weights_and_line_buffer_by_hand():
    w = conv(M=4, N=2, R=8, C=8, K=3)
    t = tiling.Tiling(2, 1, 4, 4)
    # Only the S Tr = 4 new rows of 6 columns: tI = 1 * 4 * 6 / 2 = 12;
    # no tW; L1 = tComp = 144, L2 = 2 * 144; 8 tiles as in Zhang's case.
    assert tiling.resident_input(w, t, TWO) == 12
    # Once per image: 72 weights / 2 and the line buffer's first
    # 2 channels x 2 halo rows x 10 columns / 2.
    assert tiling.once(w, TWO) == 36 + 20
    assert tiling.layer_cycles(w, t, TWO, resident=True) == 2304 + 56
    assert tiling.layer_cycles(w, t, TWO, True, preloaded=True) == 2324
    assert tiling.bound(w, t, TWO, resident=True) == "compute"


def test_pooling_stream_by_hand():
    w = workload.Workload("stream", M=4, N=4, R=4, C=4, K=2, S=2, H=8,
                          in_words=256, out_words=64)
    assert tiling.stream_cycles(w, TWO) == 128
    assert tiling.stream_cycles(w, tiling.Ports(8.0, 8.0, 0.5)) == 128


def test_bram18_formula_packs_banks_by_width_and_depth():
    w = conv(M=4, N=4, R=16, C=16, K=3)
    t = tiling.Tiling(2, 3, 16, 16)
    # 16 bits. Input: 3 banks of 2 x 18 x 18 = 648 words: 1K x 18, one
    # bank a block (512 x 36 would need 2 x 2). Output: 2 banks of
    # 2 x 256 = 512 words share one 512 x 36 block. Weights: 6 banks of
    # 2 x 9 words, two a 512 x 36 block: 3.
    assert tiling.bram18(w, t, 16) == 3 + 1 + 3
    # 8 bits: four lanes a 512 x 36 block: 2 (648 deep) + 1 + 2.
    assert tiling.bram18(w, t, 8) == 2 + 1 + 2
    # The same weights in LUTRAM: 6 banks x 16 bits x ceil(18 / 64) LUTs.
    assert tiling.memory_of(w, t, 16, tiling.LUTRAM) == (4, 96)
    # Resident: each of 6 banks holds ceil(4/2) ceil(4/3) 9 = 36 words
    # (3 blocks), plus a line buffer of 3 banks x ceil(4/3) x 2 x 18 words
    # (2 x 72 deep: 2 blocks).
    assert tiling.memory_of(w, t, 16, tiling.RESIDENT) == (4 + 3 + 2, 0)
    assert tiling.min_bram18(w, 16) == 3


def test_dsp_per_lane():
    assert tiling.dsp(tiling.Tiling(4, 5, 1, 1), 16) == 20
    assert tiling.dsp(tiling.Tiling(4, 5, 1, 1), 32) == 100
    assert tiling.dsp(tiling.Tiling(3, 3, 1, 1), 8) == 5


def test_ports_from_bandwidth_clock_and_word_width():
    dev = fpga.device("xc7z020")  # 1.2 GB/s at 100 MHz: 12 bytes per cycle
    assert tiling.ports(dev, 16) == (2.0, 2.0, 2.0)
    assert tiling.ports(dev, 8) == (4.0, 4.0, 4.0)
    assert tiling.ports(dev, 32, share=0.5) == (0.5, 0.5, 0.5)


def test_candidates_are_the_smallest_size_per_trip_count():
    assert list(tiling.candidates(10)) == [10, 5, 4, 3, 2, 1]
    assert list(tiling.candidates(100, cap=4)) == [100, 50, 34, 1]


def brute_force(w, lanes, bram, p, bits, luts=0):
    m, n = tiling.per_group(w)
    best = None
    for t in itertools.product(range(1, m + 1), range(1, n + 1),
                               range(1, w.R + 1), range(1, w.C + 1)):
        t = tiling.Tiling(*t)
        if t.Tm * t.Tn > lanes:
            continue
        for v in tiling.VARIANTS:
            blocks, used = tiling.memory_of(w, t, bits, v)
            if blocks > bram or used > luts:
                continue
            c = tiling.layer_cycles(w, t, p, v == tiling.RESIDENT, True)
            best = c if best is None else min(best, c)
    return best


small = st.builds(conv, M=st.integers(1, 6), N=st.integers(1, 6),
                  R=st.integers(1, 6), C=st.integers(1, 6),
                  K=st.sampled_from([1, 3, 5]), S=st.sampled_from([1, 2]))


@settings(max_examples=40, deadline=None)
@given(w=small, lanes=st.integers(1, 40), bram=st.integers(3, 120),
       bits=st.sampled_from([8, 16, 32]),
       port=st.sampled_from([0.25, 1.0, 2.0, 7.0]),
       luts=st.sampled_from([0, 50, 1000]))
def test_best_tiling_is_the_exhaustive_optimum_within_budget(
        w, lanes, bram, bits, port, luts):
    p = tiling.Ports(port, port, port)
    if brute_force(w, lanes, bram, p, bits, luts) is None:
        with pytest.raises(fpga.ResourceError):
            engine.best_tiling(w, lanes, bram, p, bits, luts=luts)
        return
    choice = engine.best_tiling(w, lanes, bram, p, bits, luts=luts)
    t = choice.tiling
    variant = (tiling.RESIDENT if choice.resident else
               tiling.LUTRAM if choice.lutram else tiling.STREAMED)
    assert t.Tm * t.Tn <= lanes and choice.bram18 <= bram
    assert choice.lutram <= luts
    assert (choice.bram18, choice.lutram) == tiling.memory_of(
        w, t, bits, variant)
    assert choice.cycles == tiling.layer_cycles(w, t, p, choice.resident,
                                                True)
    assert choice.cycles == brute_force(w, lanes, bram, p, bits, luts)


def test_best_tiling_raises_resource_error_when_nothing_fits():
    w = conv(M=4, N=4, R=8, C=8, K=3)
    with pytest.raises(fpga.ResourceError, match="needs at least"):
        engine.best_tiling(w, 4, 2, TWO, 16)


layers = st.builds(conv, M=st.integers(1, 64), N=st.integers(1, 64),
                   R=st.integers(1, 32), C=st.integers(1, 32),
                   K=st.sampled_from([1, 3, 5, 7]), S=st.sampled_from([1, 2]))


@settings(max_examples=60, deadline=None)
@given(w=layers, extra=st.integers(1, 64), lanes=st.integers(1, 300),
       bits=st.sampled_from([8, 16, 32]))
def test_more_filters_never_make_a_layer_faster(w, extra, lanes, bits):
    bram = 4000
    base = engine.best_tiling(w, lanes, bram, TWO, bits).cycles
    more = w._replace(M=w.M + extra)
    assert engine.best_tiling(more, lanes, bram, TWO, bits).cycles >= base


@settings(max_examples=60, deadline=None)
@given(w=layers, lanes=st.integers(1, 300), bits=st.sampled_from([8, 16]))
def test_a_larger_kernel_never_makes_a_layer_faster(w, lanes, bits):
    bram = 4000
    base = engine.best_tiling(w, lanes, bram, TWO, bits).cycles
    bigger = w._replace(K=w.K + 2, Kw=w.Kw + 2)
    assert engine.best_tiling(bigger, lanes, bram, TWO, bits).cycles >= base


@settings(max_examples=60, deadline=None)
@given(w=layers, lanes=st.integers(2, 300), cut=st.integers(1, 299),
       bram=st.integers(6, 600))
def test_fewer_lanes_never_make_a_layer_faster(w, lanes, cut, bram):
    fewer = max(lanes - cut, 1)
    base = engine.best_tiling(w, lanes, bram, TWO, 16, 300).cycles
    assert engine.best_tiling(w, fewer, bram, TWO, 16, 300).cycles >= base


def test_shared_tiling_uses_one_tm_tn_for_all_layers():
    ws = [conv(8, 3, 16, 16, 3), conv(16, 8, 16, 16, 3),
          conv(16, 16, 8, 8, 1)]
    engine, choices = shared.search(ws, 64, 400, TWO, 16)
    assert engine[0] * engine[1] <= 64
    for w, c in zip(ws, choices):
        assert c.tiling.Tm == min(engine[0], w.M)
        assert c.tiling.Tn == min(engine[1], w.N)
        assert c.bram18 <= 400
        assert c.cycles == tiling.layer_cycles(w, c.tiling, TWO)


def test_shared_tiling_is_no_worse_than_any_fixed_unroll():
    ws = [conv(8, 3, 16, 16, 3), conv(16, 8, 16, 16, 3)]
    _, best = shared.search(ws, 64, 400, TWO, 16)
    total = sum(c.cycles for c in best)
    for unroll in [(1, 1), (8, 8), (16, 4), (4, 3)]:
        _, fixed = shared.search(ws, 64, 400, TWO, 16, unroll)
        assert sum(c.cycles for c in fixed) >= total


@settings(max_examples=60, deadline=None)
@given(w=layers, lanes=st.integers(1, 300), bram=st.integers(3, 400),
       more=st.integers(1, 400), luts=st.integers(0, 5000),
       more_luts=st.integers(1, 5000))
def test_more_bram_or_lutram_never_makes_a_layer_slower(
        w, lanes, bram, more, luts, more_luts):
    try:
        base = engine.best_tiling(w, lanes, bram, TWO, 16, 300,
                                  luts=luts).cycles
    except fpga.ResourceError:
        return
    assert engine.best_tiling(w, lanes, bram + more, TWO, 16, 300,
                              luts=luts).cycles <= base
    assert engine.best_tiling(w, lanes, bram, TWO, 16, 300,
                              luts=luts + more_luts).cycles <= base


@settings(max_examples=60, deadline=None)
@given(w=layers, dsp=st.integers(1, 300), bram=st.integers(3, 400),
       luts=st.integers(0, 5000), port=st.sampled_from([0.5, 2.0, 7.0]))
def test_8_bits_never_slower_than_16_on_the_same_budget(
        w, dsp, bram, luts, port):
    # The same DSPs give twice the lanes at 8 bits, the same bytes per
    # cycle twice the words, the same blocks at least as many banks.
    p16 = tiling.Ports(port, port, port)
    p8 = tiling.Ports(2 * port, 2 * port, 2 * port)
    try:
        slow = engine.best_tiling(w, dsp, bram, p16, 16, luts=luts).cycles
    except fpga.ResourceError:
        return
    fast = engine.best_tiling(w, 2 * dsp, bram, p8, 8, luts=luts).cycles
    assert fast <= slow


def test_depthwise_engine_runs_up_to_its_lanes_in_parallel():
    w = conv(M=32, N=32, R=14, C=14, K=3, groups=32)
    one = engine.best_tiling(w, 1, 4000, TWO, 16)
    many = engine.best_tiling(w, 32, 4000, tiling.Ports(64, 64, 64), 16)
    assert many.tiling.Tm == 32 and many.tiling.Tn == 1
    assert many.cycles * 16 <= one.cycles
