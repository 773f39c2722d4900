"""Argument checks shared by the modules that take user numbers."""

from __future__ import annotations

import math
from typing import Any


def positive_number(name: str, value: Any) -> float:
    """Returns `value` as a float if it is a finite number > 0.

    Raises:
        ValueError: Naming the argument and the bad value (a non-number,
            zero, a negative number, NaN or infinity).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)
