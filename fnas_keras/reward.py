"""Reward rules: how accuracy and FPGA latency become the controller's reward.

The rules follow FNAS_NOTES §4. `accuracy` is the trial's objective value
(higher is better), `latency_ms` the child's modelled FPGA latency and
`spec_ms` the latency specification. A child over the spec is never trained.

"constrained" (the default) uses the latency model as a constraint, not a
teacher: only children within the spec are trained, the reward is the
accuracy alone, and a rejection teaches the controller nothing (its
`rejected` value is None). The controller then normalises the reward by
running statistics of the rewards among feasible children. "fnas" is the
paper's rule, reproduced faithfully: a rejected child counts as accuracy 0
with a penalty, and the reward of a trained one adds a latency term.
"""

from __future__ import annotations

import math
from typing import NamedTuple

RULES = ("constrained", "fnas", "mnas_soft", "mnas_hard", "accuracy")
DEFAULT = "constrained"

# FNAS reference code: rewards are clipped to [-0.1, 0.1] and the accuracy
# baseline b is an exponential moving average, b <- 0.8 b + 0.2 acc.
_CLIP = 0.1
_BASELINE_DECAY = 0.8
# MnasNet's soft-constraint exponent.
_MNAS_W = -0.07


class Reward(NamedTuple):
    """A reward and the accuracy baseline to use for the next one."""

    value: float
    baseline: float | None


def check_rule(rule: str) -> str:
    """Returns `rule` if it is a known reward rule.

    Raises:
        ValueError: If the rule is unknown.
    """
    if rule not in RULES:
        raise ValueError(
            f"unknown reward rule {rule!r}; known: {', '.join(RULES)}"
        )
    return rule


def rejected(rule: str, latency_ms: float, spec_ms: float) -> float | None:
    """The penalty for a child over the spec (never trained).

    Args:
        rule: One of RULES.
        latency_ms: The child's latency; `math.inf` if it does not fit.
        spec_ms: The latency spec.

    Returns:
        The reward: None for "constrained" (no update), -0.1 for "fnas"
        (its formula always clips there), and 0 for the MnasNet rules and
        "accuracy", whose rewards scale accuracy.
    """
    check_rule(rule)
    if rule == "constrained":
        return None
    if rule == "fnas":
        return _clip((spec_ms - latency_ms) / (10.0 * spec_ms) - 1.0)
    return 0.0


def failed(rule: str) -> float:
    """The reward of a child that was within the spec but failed to train.

    Args:
        rule: One of RULES.

    Returns:
        -0.1 for "fnas" and "constrained" (for an accuracy in [0, 1], below
        every trained child), 0 for the MnasNet rules and "accuracy".
    """
    check_rule(rule)
    return -_CLIP if rule in ("fnas", "constrained") else 0.0


def trained(
    rule: str,
    accuracy: float,
    latency_ms: float | None,
    spec_ms: float | None,
    baseline: float | None,
) -> Reward:
    """The reward of a trained child.

    Args:
        rule: One of RULES.
        accuracy: The child's objective value; NaN counts as 0.
        latency_ms: The child's latency, or None when no device is set.
        spec_ms: The latency spec, or None for accuracy alone (plain NAS).
        baseline: The "fnas" rule's moving average of accuracy; None before
            the first trained child, when it starts at that child's accuracy.

    Returns:
        The reward and the updated accuracy baseline ("constrained": the
        accuracy itself; the controller keeps its own statistics).
    """
    check_rule(rule)
    accuracy = 0.0 if math.isnan(accuracy) else float(accuracy)
    if rule == "constrained":
        return Reward(accuracy, baseline)
    has_spec = spec_ms is not None and latency_ms is not None
    if rule in ("fnas", "accuracy"):
        b = accuracy if baseline is None else baseline
        latency_term = 0.0
        if has_spec and rule == "fnas":
            latency_term = latency_ms / (10.0 * spec_ms)
        value = _clip(accuracy - b + latency_term)
        decay = _BASELINE_DECAY
        return Reward(value, decay * b + (1 - decay) * accuracy)
    if not has_spec:
        return Reward(accuracy, baseline)
    ratio = latency_ms / spec_ms
    if rule == "mnas_soft":
        weight = _MNAS_W
    else:
        weight = 0.0 if latency_ms <= spec_ms else -1.0
    return Reward(accuracy * ratio**weight, baseline)


def _clip(value: float) -> float:
    return max(-_CLIP, min(_CLIP, value))
