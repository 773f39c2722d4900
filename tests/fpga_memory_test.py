"""Tests for fnas_keras.fpga.memory: BRAM18, LUTRAM and URAM by hand."""

import numpy as np
import pytest

from fnas_keras import fpga
from fnas_keras.fpga import memory


@pytest.mark.parametrize("banks,depth,bits,blocks", [
    (2, 512, 16, 1),   # two 16-bit banks share one 512 x 36 block
    (4, 512, 8, 1),    # four 8-bit banks
    (3, 512, 16, 2),   # the third bank needs a second block
    (1, 1024, 16, 1),  # deeper: 1K x 18
    (1, 1025, 16, 2),
    (1, 2048, 8, 1),   # 2K x 9
    (2, 600, 16, 2),   # 1K x 18, one bank a block
    (1, 512, 32, 1),   # 32 bits fit the 36-bit width
    (1, 1024, 32, 2),  # 512 x 36 twice deep, or 1K x 18 twice wide
    (5, 18, 16, 3),    # shallow kernels: two banks a block
    (0, 100, 16, 0), (4, 0, 16, 0),
])
def test_bram18_packs_by_width_and_depth(banks, depth, bits, blocks):
    assert memory.bram18(banks, depth, bits) == blocks


def test_bram18_is_vectorised():
    got = memory.bram18(np.array([2, 3]), np.array([512, 512]), 16)
    assert got.tolist() == [1, 2]


def test_bram18_never_grows_with_fewer_bits():
    for banks in (1, 3, 7, 64):
        for depth in (9, 100, 513, 5000, 20000):
            b32, b16, b8 = (memory.bram18(banks, depth, b)
                            for b in (32, 16, 8))
            assert b8 <= b16 <= b32


def test_lutram_is_64_words_a_lut_per_bit():
    assert memory.lutram(1, 64, 16) == 16
    assert memory.lutram(1, 65, 16) == 32
    assert memory.lutram(9, 18, 8) == 72


def test_uram_extends_the_pool_and_is_reported_beyond_bram18():
    dev = fpga.device("u250")
    assert memory.blocks(dev) == dev.bram18 + 8 * 1280
    assert memory.split_pool(100, dev) == (100, 0)
    assert memory.split_pool(dev.bram18 + 9, dev) == (dev.bram18, 2)
    assert memory.blocks(fpga.device("zcu102")) == 1824
