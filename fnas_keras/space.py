"""Space report: how much of a search space meets the spec, before training.

For a space whose hyperparameters are all Choices, every architecture is
built (never fitted) and analysed; a space too large to enumerate is sampled
uniformly instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import keras_tuner
import numpy as np

from fnas_keras import fpga


@dataclasses.dataclass(frozen=True)
class SpaceReport:
    """Feasibility of a search space under a latency spec.

    Attributes:
        size: Architectures in the space.
        evaluated: Architectures built and analysed.
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


def report(
    hypermodel: Any,
    hyperparameters: keras_tuner.HyperParameters,
    constraint: Any,
    *,
    max_enumerate: int = 1000,
    samples: int = 300,
    seed: int = 0,
) -> SpaceReport:
    """Builds and analyses the architectures of an all-Choice space.

    Args:
        hypermodel: A keras-tuner HyperModel (or what `get_hypermodel` wraps).
        hyperparameters: The space, as the tuner's oracle holds it.
        constraint: A `LatencyConstraint` giving the device and the spec.
        max_enumerate: Enumerate the space when it is at most this large.
        samples: How many architectures to sample from a larger space.
        seed: Seed of that sample.

    Returns:
        A SpaceReport.

    Raises:
        ValueError: If there is no constraint, the space is empty, or a
            hyperparameter is not a Choice, Boolean or Fixed.
    """
    if constraint is None:
        raise ValueError("a space report needs a device and a latency spec")
    names, choices = _choices(hyperparameters)
    size = math.prod(len(c) for c in choices)
    if size <= max_enumerate:
        combos = list(itertools.product(*choices))
    else:
        rng = np.random.default_rng(seed)
        combos = [tuple(c[rng.integers(len(c))] for c in choices)
                  for _ in range(samples)]
    latencies = [
        _latency(hypermodel, hyperparameters, constraint, dict(zip(names, c)))
        for c in combos
    ]
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


def _choices(hyperparameters: keras_tuner.HyperParameters):
    """Names and value lists of an all-Choice space."""
    hp_types = keras_tuner.engine.hyperparameters
    names, choices = [], []
    for hp in hyperparameters.space:
        if isinstance(hp, hp_types.Boolean):
            values = [False, True]
        elif isinstance(hp, hp_types.Fixed):
            values = [hp.value]
        elif isinstance(hp, hp_types.Choice):
            values = list(hp.values)
        else:
            raise ValueError(
                f"a space report needs Choice hyperparameters; {hp.name!r} is "
                f"a {type(hp).__name__}"
            )
        names.append(hp.name)
        choices.append(values)
    if not names:
        raise ValueError("the search space is empty: nothing to report")
    return names, choices


def _latency(hypermodel, hyperparameters, constraint, values: dict) -> float:
    hp = hyperparameters.copy()
    hp.values = values
    try:
        _, latency_report = constraint.check(hypermodel.build(hp))
    except fpga.ResourceError:
        return math.inf
    return latency_report.latency_ms
