"""Nice rounding steps (1, 2 or 5 × 10ⁿ), shared by release precision (outputs/precision.py)
and the models that round their own estimates (analyses/regression.py)."""

from __future__ import annotations

import math


def nice_step(size: float) -> float:
    """The smallest of 1, 2, 5 × 10ⁿ that is at least ``size`` (0 for no size)."""
    if not math.isfinite(size) or size <= 0:
        return 0.0
    exponent = math.floor(math.log10(size))
    for factor in (1, 2, 5, 10):
        step = factor * 10.0**exponent
        if step >= size * (1 - 1e-12):
            return _clean(step, exponent)
    return _clean(10.0 ** (exponent + 1), exponent + 1)


def round_to_step(value: float, step: float) -> float:
    """``value`` to the nearest multiple of ``step``, without binary noise in its digits."""
    decimals = max(0, -math.floor(math.log10(step)))
    return round(round(value / step) * step, decimals)


def _clean(step: float, exponent: int) -> float:
    return round(step, max(0, -exponent))
