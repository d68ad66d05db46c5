"""Nice rounding steps (1, 2 or 5 × 10ⁿ), and the rounding of released figures to them, shared
by release precision (outputs/precision.py) and the analyses that round their own estimates
(regression, survival, correlation)."""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from dataclasses import dataclass

from strongroom.enclave import margin


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


@dataclass(frozen=True)
class Rounding:
    """How a released figure goes to a multiple of its step: up or down at random, with the
    chance that keeps it unbiased (up with the fraction of a step it is past the multiple
    below), the draw a keyed hash of the exact figure and its step.

    Rounding to the *nearest* multiple has fixed boundaries, and a boundary is a question: an
    attacker who shifts everyone else's values between releases moves a mean across it and
    reads the target's value off where it flips (a BMI to 0.015 in 12 means). Here the same
    figure always rounds the same way (a release can be reproduced), but any change to it,
    however small, draws afresh, so there is no boundary to find; what repeated releases of
    shifted figures can give is an average, and its error falls only as one over the square
    root of their number (a value to a hundredth of its range takes millions). The key is the
    project's secret: without it the draws cannot be foreseen."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("a rounding key needs at least 16 bytes")

    def __call__(self, value: float, step: float, *name: object) -> float:
        """``value`` to a multiple of ``step`` (unchanged when not finite or no step), and
        never finer than the sixth significant digit a release shows: a display that cut a
        finer figure to the nearest would put the fixed boundaries back.

        The draw is of the exact figure and its step; or, given a ``name`` (a released
        cell's), of that name alone. Inside a keyed request (enclave/margin.py) the request's
        key is in it too, so no other request, and no other cell of this one, shares it: a
        draw of the value alone would let a calibrating figure of the same value (the
        accomplices and the target, unconditionally) foretell the conditional one's."""
        if not (math.isfinite(value) and math.isfinite(step)) or step <= 0:
            return value
        if value:
            step = max(step, 10.0 ** (math.floor(math.log10(abs(value))) - SIGNIFICANT + 1))
        scaled = value / step
        below = math.floor(scaled)
        message = repr(name).encode() if name else struct.pack("<dd", value, step)
        digest = hmac.new(self.key, message + margin.salt(), hashlib.sha256).digest()
        draw = int.from_bytes(digest[:8], "big") / 2.0**64
        return round_to_step((below + (scaled - below > draw)) * step, step)


SIGNIFICANT = 6  # the digits a released figure shows (outputs/render.py)


def _clean(step: float, exponent: int) -> float:
    return round(step, max(0, -exponent))
