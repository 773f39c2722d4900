"""On-chip memory as the silicon offers it (FNAS_NOTES second section 7).

An engine keeps its tile buffers in banks, one bank per MAC lane that
reads it: Tn (or, for depthwise, one per channel lane) input banks, Tm
output banks, Tm x Tn weight banks. Banks of one kind are read at the same
address in the same cycle, so they pack side by side:

* BRAM18 (18 Kb) in simple dual-port mode is 512 x 36, 1K x 18, 2K x 9,
  4K x 4, 8K x 2 or 16K x 1. A 512 x 36 block holds the same 512 words of
  two 16-bit or four 8-bit banks (pack by width); a deeper bank spans
  several blocks (pack by depth). The cheapest geometry is taken.
* LUTRAM: a SLICEM LUT6 is a 64 x 1-bit RAM, so a bank of d words of b bits
  costs b ceil(d / 64) LUTs. Weight banks may live there (a shallow kernel
  per lane), against the device's LUTRAM-capable LUTs.
* URAM (UltraScale+): a block of 4K x 72. Its fixed 72-bit width packs
  shallow banks poorly, so the model counts one URAM as URAM_AS_BRAM18 (8)
  BRAM18, half its capacity: it extends the BRAM18 pool, and what a design
  needs beyond the part's BRAM18 is reported as URAM.

Double-buffered banks hold two tiles (the write and the read half of a
simple dual-port RAM): twice the words.
"""

import functools
import math

import numpy as np

from fnas_keras.fpga import devices

# BRAM18 geometries in simple dual-port mode: (depth, width in bits).
BRAM18_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2),
                 (16384, 1))
LUTRAM_DEPTH = 64
URAM_AS_BRAM18 = 8


def bram18(banks: "int | np.ndarray", depth: "int | np.ndarray",
           bits: int) -> "int | np.ndarray":
    """BRAM18 blocks of `banks` banks of `depth` words of `bits` each.

    The cheapest geometry: with width w >= bits, floor(w / bits) banks
    share a block; with w < bits, a bank spans ceil(bits / w) blocks side
    by side; ceil(depth / geometry depth) blocks deep. 0 banks or 0 words
    take no block. Works on numpy arrays element-wise.
    """
    if isinstance(banks, int) and isinstance(depth, int):
        return _bram18(banks, depth, bits)
    best = None
    for rows, width in BRAM18_SHAPES:
        deep = -(-depth // rows)
        if width >= bits:
            per = width // bits
            blocks = -(-banks // per) * deep
        else:
            blocks = banks * -(-bits // width) * deep
        best = blocks if best is None else np.minimum(best, blocks)
    return best if isinstance(best, np.ndarray) else int(best)


@functools.lru_cache(maxsize=65536)
def _bram18(banks: int, depth: int, bits: int) -> int:
    """bram18 for Python ints (no numpy: a search calls it per Choice)."""
    if banks <= 0 or depth <= 0:
        return 0
    best = None
    for rows, width in BRAM18_SHAPES:
        deep = -(-depth // rows)
        if width >= bits:
            blocks = -(-banks // (width // bits)) * deep
        else:
            blocks = banks * -(-bits // width) * deep
        if best is None or blocks < best:
            best = blocks
    return best


def lutram(banks: "int | np.ndarray", depth: "int | np.ndarray",
           bits: int) -> "int | np.ndarray":
    """LUTs of `banks` LUTRAM banks of `depth` words of `bits` each."""
    return banks * bits * -(-depth // LUTRAM_DEPTH)


def blocks(device: devices.FpgaDevice) -> int:
    """The device's memory pool in BRAM18: BRAM18 plus URAM equivalents."""
    return device.bram18 + URAM_AS_BRAM18 * device.uram


def split_pool(used: int, device: devices.FpgaDevice) -> tuple[int, int]:
    """(BRAM18, URAM) behind `used` pool blocks: BRAM18 first."""
    extra = max(used - device.bram18, 0)
    return used - extra, math.ceil(extra / URAM_AS_BRAM18)
