"""Argument checks shared by the instruments: numbers that must be finite and in range, counts."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_count", "check_number"]


def check_number(name: str, value, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number in ``[low, high]`` (``(low, high]`` with
    ``low_open``), else a ``ValueError`` that names the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    inside = (value > low if low_open else value >= low) and value <= high
    if not math.isfinite(value) or not inside:
        raise ValueError(f"{name} must be a finite number in {'(' if low_open else '['}{_show(low)}, {_show(high)}]; "
                         f"got {value!r}")
    return value


def check_count(name: str, value, low: int = 1, high: int | None = None) -> int:
    """``value`` if it is an integer in ``[low, high]``, else a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in [{low}, {'any' if high is None else high}]; got {value}")
    return value


def _show(bound: float) -> str:
    return "inf" if bound == math.inf else "-inf" if bound == -math.inf else f"{bound:g}"
