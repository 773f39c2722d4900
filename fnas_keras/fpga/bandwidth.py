"""DRAM bandwidth of the pipelined mapping, shared among engines by traffic.

All engines of a pipelined design run at once and share the board's DRAM
bandwidth. An even split starves the big convolutions to feed engines that
move almost nothing, so each memory port of each engine (input, weight,
output) gets a part of the device's words per cycle in proportion to the
words it moves per image: `share = traffic ** EXPONENT / sum(traffic **
EXPONENT)` over every port of every engine.

EXPONENT = 1 equalises the engines' transfer times (best for the slowest
stage, i.e. throughput); EXPONENT = 1/2 minimises the sum of the transfer
times, the latency of stages that cannot overlap (Lagrange: minimise
sum(d / b) subject to sum(b) = B gives b proportional to sqrt(d)). The
model's figure of merit is one image's latency through a pipeline that
only partly overlaps, so it uses the square root.

The traffic depends on the tiling, and the tiling on the ports, so the
schedule first lets each engine pick its tiling with the whole bandwidth,
shares the bandwidth by the traffic at those tilings, and lets the engines
pick again with their shares (schedule.REFINE more rounds if set).
Shares are rounded down to a grid of 2 ** (1 / LEVELS_PER_OCTAVE) steps
below the device's total, so that the tiling searches are cached across
networks and the ports never sum to more than the device has.

An engine with one output row (global pooling, Dense on a vector) waits for
its whole input, so in a single-branch network it runs while every other
engine of the image is idle: it gets the whole bandwidth instead.
"""

import functools
from collections.abc import Sequence

import numpy as np

from fnas_keras.fpga import devices
from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload

EXPONENT = 0.5
LEVELS_PER_OCTAVE = 2
# The smallest share: 2 ** -24 of the device (a port that moves nothing
# gets 0).
_MAX_LEVEL = 24 * LEVELS_PER_OCTAVE
# The shares on the grid, 2 ** (-k / LEVELS_PER_OCTAVE) for each level k:
# looked up, not recomputed per network (the same np.exp2 values).
_SHARES = np.exp2(-np.arange(_MAX_LEVEL + 1) / LEVELS_PER_OCTAVE).tolist()
_BELOW_GRID = 2.0 ** (-_MAX_LEVEL / LEVELS_PER_OCTAVE - 1)

Traffic = tuple[float, float, float]
_NOTHING: Traffic = (0.0, 0.0, 0.0)


def words_per_cycle(device: devices.FpgaDevice, bits: int) -> float:
    """The device's DRAM bandwidth in words of `bits` per clock cycle."""
    devices.dsp_per_mac(bits)  # validates bits
    return device.bytes_per_cycle() / (bits / 8)


@functools.lru_cache(maxsize=65536)
def traffic(w: workload.Workload, t: tiling.Tiling | None,
            resident: bool = False) -> Traffic:
    """Words an engine moves per image on its input, weight, output ports.

    A conv engine loads each tile's inputs (with halo) and weights once per
    tile and stores each output tile once, as the tile model counts them.
    With `resident`, the weights stay on chip from image to image (a
    pipelined engine) and only each tile's new input rows are loaded
    (tiling.resident_input). With t None, the whole layer is one tile
    (the compulsory traffic). A stream pass reads its inputs and writes
    its output once.
    """
    if w.kind != "conv":
        return float(w.in_words), 0.0, float(w.out_words)
    m, n = tiling.per_group(w)
    if t is None:
        t = tiling.Tiling(m, n, w.R, w.C)
    k_eff = w.D * (w.K - 1) + 1
    kw_eff = w.Dw * (w.Kw - 1) + 1
    rows_in = w.S * t.Tr + k_eff - w.S
    cols_in = w.Sw * t.Tc + kw_eff - w.Sw
    outer = (tiling.sequential_groups(w) * -(-w.R // t.Tr) * -(-w.C // t.Tc)
             * -(-m // t.Tm))
    inner = outer * -(-n // t.Tn)
    lanes_in = tiling.in_lanes(w, t.Tm, t.Tn)
    if resident:  # new rows per tile, the line buffer's first rows once
        inputs = (inner * lanes_in * w.S * t.Tr * cols_in
                  + tiling.line_buffer_words(w))
        weights = 0  # preloaded: a pipelined engine keeps its weights
    else:
        inputs = inner * lanes_in * rows_in * cols_in
        weights = inner * t.Tm * t.Tn * w.K * w.Kw
    return (float(inputs), float(weights),
            float(outer * t.Tm * t.Tr * t.Tc))


def _levels(shares: np.ndarray) -> np.ndarray:
    """The grid level k of each share, rounded down (0: the whole device).

    A share s rounds down to 2 ** (-k / LEVELS_PER_OCTAVE); a share of 0
    to the lowest level. Overwrites `shares`.
    """
    # A share below the lowest level, 0 included, rounds to the lowest
    # level; raising it to _BELOW_GRID first spares log2(0) and the cost
    # of silencing its warning.
    np.maximum(shares, _BELOW_GRID, out=shares)
    # log2(s) * -L is exactly -log2(s) * L. A share is at most 1, so k is
    # at least ceil(-1e-9) = -0.0 and needs no clipping below. Each step
    # in place: the same ufuncs, without an array per step.
    k = np.log2(shares, out=shares)
    k *= -LEVELS_PER_OCTAVE
    k -= 1e-9
    np.ceil(k, out=k)
    np.minimum(k, _MAX_LEVEL, out=k)
    return k.astype(np.intp)


def alone(w: workload.Workload) -> bool:
    """Whether an engine runs while the rest of its image's engines idle.

    An engine with one output row (global pooling, Dense on a vector) can
    start only once every row of its input exists, i.e. after everything
    upstream of it, and everything downstream waits for its one row.
    """
    return w.R == 1


def share(work: Sequence[workload.Workload | None],
          demands: Sequence[Traffic], total: float) -> list[tiling.Ports]:
    """Splits `total` words per cycle over the engines' ports.

    Args:
        work: the engines' workloads (None: an engine of several layers,
            never `alone`).
        demands: per engine, the (input, weight, output) words per image.
        total: the device's words per cycle.

    Returns:
        Per engine, its Ports. An engine that runs `alone` gets the whole
        bandwidth, split evenly over its three ports as the shared engine's
        is; each port of the other engines gets a part of `total` in
        proportion to its words per image ** EXPONENT, rounded down to the
        grid.
    """
    whole = _ports(total / 3, total / 3, total / 3)
    lone = [w is not None and alone(w) for w in work]
    # A lone engine's ports get no weight (0 ** EXPONENT = 0: EXPONENT > 0).
    weights = np.array([_NOTHING if a else d for a, d in zip(lone, demands)],
                       dtype=float) ** EXPONENT
    norm = np.add.reduce(weights, axis=None) or 1.0  # weights.sum()
    levels = _levels(np.divide(weights, norm, out=weights)).tolist()
    return [whole if a else _on_grid(total, *k) for a, k in zip(lone, levels)]


@functools.lru_cache(maxsize=4096)
def _ports(i: float, w: float, o: float) -> tiling.Ports:
    return tiling.Ports(i, w, o)


@functools.lru_cache(maxsize=16384)
def _on_grid(total: float, i: int, w: int, o: int) -> tiling.Ports:
    """Ports at grid levels i, w, o of `total` (Python floats, as before)."""
    return tiling.Ports(total * _SHARES[i], total * _SHARES[w],
                        total * _SHARES[o])
