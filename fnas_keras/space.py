"""Space report: how much of a search space meets the spec, before training.

Every architecture of the space the controller searches (each
hyperparameter's decision values) is analysed, or a uniform sample of a
space too large to enumerate. A preset child (`FNASHyperModel`) gives its
layer dicts straight from its values; any other is built (never fitted)
with placeholder weights.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import keras_tuner
import numpy as np

from fnas_keras import decisions
from fnas_keras import fpga
from fnas_keras import gate
from fnas_keras import hypermodel as hypermodel_module


@dataclasses.dataclass(frozen=True)
class SpaceReport:
    """Feasibility of a search space under a latency spec.

    Attributes:
        size: Architectures in the space.
        evaluated: Architectures analysed.
        exhaustive: Whether every architecture was evaluated.
        spec_ms: The latency spec.
        latencies_ms: Latency of each evaluated one (inf: does not fit).
        feasible: How many evaluated ones meet the spec.
        fastest_ms: The lowest latency seen.
        fastest_values: The hyperparameter values of that architecture.
    """

    size: int
    evaluated: int
    exhaustive: bool
    spec_ms: float | None
    latencies_ms: tuple[float, ...]
    feasible: int
    fastest_ms: float
    fastest_values: dict

    @property
    def fraction(self) -> float:
        """Share of the evaluated architectures that meet the spec."""
        return self.feasible / self.evaluated

    def __str__(self) -> str:
        how = "all" if self.exhaustive else "a uniform sample of"
        finite = [x for x in self.latencies_ms if math.isfinite(x)]
        quartiles = []
        if finite:
            quartiles = np.percentile(finite, [0, 25, 50, 75, 100])
        shown = ", ".join(f"{q:.3f}" for q in quartiles)
        return (
            f"Search space: {self.size} architectures; analysed {how} "
            f"{self.evaluated}.\n"
            f"Latency (ms) min, quartiles, max: {shown}\n"
            f"Meet the {self.spec_ms} ms spec: {self.feasible} of "
            f"{self.evaluated} ({100 * self.fraction:.1f}%)\n"
            f"Fastest: {self.fastest_ms:.3f} ms with {self.fastest_values}"
        )


# Architectures enumerated by default: a preset child costs the latency
# model alone, a built one a Keras build as well.
ENUMERATE_PRESET = 20_000
ENUMERATE_BUILT = 1_000


def report(
    hypermodel: Any,
    hyperparameters: keras_tuner.HyperParameters,
    constraint: Any,
    *,
    max_enumerate: int | None = None,
    samples: int = 300,
    seed: int = 0,
    float_values: int = 10,
) -> SpaceReport:
    """Analyses the architectures of a search space.

    Args:
        hypermodel: A keras-tuner HyperModel (or what `get_hypermodel` wraps).
        hyperparameters: The space, as the tuner's oracle holds it.
        constraint: A `LatencyConstraint` giving the device and the spec.
        max_enumerate: Enumerate the space when it is at most this large;
            by default `ENUMERATE_PRESET` for an `FNASHyperModel` (whose
            children are never built) and `ENUMERATE_BUILT` otherwise.
        samples: How many architectures to sample from a larger space.
        seed: Seed of that sample.
        float_values: Points each Float or step-less Int is discretised
            into, as the controller does.

    Returns:
        A SpaceReport.

    Raises:
        ValueError: If there is no constraint, the space is empty, or a
            hyperparameter has a type the search cannot take.
    """
    if constraint is None:
        raise ValueError("a space report needs a device and a latency spec")
    names, choices = _choices(hyperparameters, float_values)
    size = math.prod(len(c) for c in choices)
    preset = hypermodel_module.fast_path(hypermodel)
    if max_enumerate is None:
        max_enumerate = (ENUMERATE_BUILT if preset is None
                         else ENUMERATE_PRESET)
    if size <= max_enumerate:
        combos = list(itertools.product(*choices))
    else:
        rng = np.random.default_rng(seed)
        combos = [tuple(c[rng.integers(len(c))] for c in choices)
                  for _ in range(samples)]
    if preset is not None:
        latencies = [_preset_latency(preset, constraint, dict(zip(names, c)))
                     for c in combos]
    else:
        latencies = [_built_latency(hypermodel, hyperparameters, constraint,
                                    dict(zip(names, c))) for c in combos]
    best = int(np.argmin(latencies))
    spec = constraint.latency_spec_ms
    return SpaceReport(
        size=size,
        evaluated=len(combos),
        exhaustive=size <= max_enumerate,
        spec_ms=spec,
        latencies_ms=tuple(latencies),
        feasible=sum(spec is None or x <= spec for x in latencies),
        fastest_ms=latencies[best],
        fastest_values=dict(zip(names, combos[best])),
    )


def _choices(hyperparameters: keras_tuner.HyperParameters,
             float_values: int) -> tuple[list, list]:
    """Names and decision values of every hyperparameter of the space."""
    names = [hp.name for hp in hyperparameters.space]
    if not names:
        raise ValueError("the search space is empty: nothing to report")
    choices = [decisions.decision_values(hp, float_values)
               for hp in hyperparameters.space]
    return names, choices


def _preset_latency(preset, constraint, values: dict) -> float:
    try:
        _, latency_report = constraint.check_layers(
            preset.layer_dicts(values), preset.child_key(values))
    except fpga.ResourceError:
        return math.inf
    return latency_report.latency_ms


def _built_latency(hypermodel, hyperparameters, constraint,
                   values: dict) -> float:
    hp = hyperparameters.copy()
    hp.values = values
    try:
        with gate.placeholder_weights():
            model = hypermodel.build(hp)
        _, latency_report = constraint.check(model)
    except fpga.ResourceError:
        return math.inf
    return latency_report.latency_ms
