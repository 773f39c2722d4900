"""The shared engine's search (Zhang et al.): one (Tm, Tn) for all layers.

A layer with fewer channels than Tm or Tn leaves lanes idle; a depthwise
layer runs min(Tm Tn, channels) channels side by side. Each layer then takes
its own (Tr, Tc) and weight placement, the fastest within the engine's
memory (re-partitioned per layer).
"""

import numpy as np

from fnas_keras.fpga import tiling
from fnas_keras.fpga import workload

# Tr/Tc candidates kept per dimension (the largest tiles by trip count;
# engine.ROW_CANDIDATES for pipelined engines).
_ROW_CANDIDATES = 10


def _union(sizes: list[np.ndarray], cap: int) -> np.ndarray:
    values = np.unique(np.concatenate(sizes))
    return values[values <= cap]


def search(ws: list[workload.Workload], lanes: int, bram: int,
                  p: tiling.Ports, bits: int,
                  unroll: tuple[int, int] | None = None, luts: int = 0
                  ) -> tuple[tuple[int, int], list[tiling.Choice]]:
    """One engine for all layers: a unified (Tm, Tn), per-layer Tr and Tc.

    The (Tm, Tn) minimising the summed cycles is searched over the union of
    the layers' candidate sizes (Zhang et al.); a layer with fewer channels
    than Tm or Tn leaves lanes idle, and a depthwise layer runs
    min(Tm Tn, channels) channels side by side. The engine's buffers are
    re-partitioned per layer, so each layer's tiling and weight placement
    must fit the whole BRAM18 pool and LUTRAM budget.

    Args:
        ws: the "conv" workloads, in order (repeats allowed).
        lanes: MAC lanes of the engine.
        bram: BRAM18 blocks of the engine (URAM included as equivalents).
        p: memory ports.
        bits: word width.
        unroll: a fixed (Tm, Tn), or None to search.
        luts: LUTRAM LUTs of the engine.

    Returns:
        The engine's (Tm, Tn), and one Choice per workload with Tm and Tn
        clipped to the layer's channels.

    Raises:
        ResourceError: some layer cannot fit at any (Tr, Tc).
    """
    if not ws:
        return (0, 0), []
    keys = [tiling.shape_key(w) for w in ws]
    unique = list(dict.fromkeys(keys))
    counts = np.array([keys.count(u) for u in unique])
    if unroll is None:
        sizes = [tiling.per_group(u) for u in unique]
        tm = _union([tiling.candidates(m) for m, _ in sizes], lanes)
        tn = _union([tiling.candidates(n) for _, n in sizes], lanes)
        tm, tn = np.meshgrid(tm, tn, indexing="ij")
        keep = tm * tn <= lanes
        tm, tn = tm[keep], tn[keep]
    else:
        tm, tn = np.array([unroll[0]]), np.array([unroll[1]])
    total = np.zeros(len(tm))
    best = []
    for u, count in zip(unique, counts):
        cycles, arg = _shared_layer(u, tm, tn, bram, luts, p, bits)
        total += count * cycles
        best.append(arg)
    order = np.lexsort((tn, tm * tn, total))
    j = int(order[0])
    if not np.isfinite(total[j]):
        raise tiling.ResourceError(
            f"a layer does not fit {bram} BRAM18 at {bits} bits even at "
            f"Tr = Tc = 1 with (Tm, Tn) = ({int(tm[j])}, {int(tn[j])})")
    by_key = {}
    for u, (trs, tcs, variants) in zip(unique, best):
        tme, tne = _clip(u, tm[j:j + 1], tn[j:j + 1])
        t = tiling.Tiling(int(tme[0]), int(tne[0]), int(trs[j]), int(tcs[j]))
        by_key[u] = tiling.choice(u, t, p, bits, int(variants[j]))
    engine = (int(tm[j]), int(tn[j]))
    return engine, [by_key[tiling.shape_key(w)] for w in ws]


def _clip(w: workload.Workload, tm: np.ndarray,
          tn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The engine's (Tm, Tn) as a layer uses it."""
    m, n = tiling.per_group(w)
    if tiling.channel_parallel(w):
        return np.minimum(tm * tn, m), np.ones_like(tn)
    return np.minimum(tm, m), np.minimum(tn, n)


def _shared_layer(w: workload.Workload, tm: np.ndarray, tn: np.ndarray,
                  bram: int, luts: int, p: tiling.Ports, bits: int
                  ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Per (Tm, Tn): the layer's fewest cycles, its (Tr, Tc) and variant."""
    tme, tne = _clip(w, tm, tn)
    tme, tne = tme[:, None], tne[:, None]
    tr, tc = np.meshgrid(tiling.candidates(w.R, _ROW_CANDIDATES),
                         tiling.candidates(w.C, _ROW_CANDIDATES),
                         indexing="ij")
    tr, tc = tr.ravel()[None, :], tc.ravel()[None, :]
    per_variant = []
    for v in tiling.VARIANTS:
        cycles, blocks, used = tiling.grid_cycles(w, tme, tne, tr, tc, p,
                                                  bits, v)
        per_variant.append(np.where((blocks <= bram) & (used <= luts),
                                    cycles, np.inf))
    cycles = np.concatenate(per_variant, axis=1)
    arg = cycles.argmin(axis=1)
    width = tr.shape[1]
    rows_ = np.arange(len(tm))
    col = arg % width
    return cycles[rows_, arg], (tr[0, col], tc[0, col], arg // width)
