"""Robust statistics for baselines: median and MAD, and the bars a value is judged against.

The median and the median absolute deviation (scaled by 1.4826, so that it estimates the
standard deviation of normal data) are not pulled up by the few busy days every researcher
has, nor by an attack already under way on some past days, as a mean and standard deviation
would be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAD_SCALE = 1.4826


@dataclass(frozen=True)
class Bars:
    """A baseline and where a value above it becomes unusual (alert) and extreme."""

    median: float
    spread: float  # 1.4826 × MAD
    alert: float
    extreme: float
    samples: int  # past days (or hours) the baseline rests on

    def evidence(self) -> dict[str, float | int]:
        return {"median": round(self.median, 2), "spread": round(self.spread, 2),
                "alert_at": round(self.alert, 2), "extreme_at": round(self.extreme, 2),
                "baseline_samples": self.samples}


def median_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 × MAD of each column of ``values`` (samples × measures), zeros when
    there are no samples. Baselines are tens of days: NumPy, not a query plan."""
    if values.shape[0] == 0:
        return np.zeros(values.shape[1:]), np.zeros(values.shape[1:])
    medians = np.median(values, axis=0)
    return medians, MAD_SCALE * np.median(np.abs(values - medians), axis=0)


def bars(median: float, spread: float, samples: int, *, k: float, k_extreme: float,
         ratio: float, extreme_ratio: float, floor: float, extreme_floor: float) -> Bars:
    """Alert above median + k·spread, at least ``ratio`` × median (a steady subject, whose
    MAD is about zero, still varies) and at least ``floor``; extreme likewise with the
    extreme parameters."""
    alert = max(median + k * spread, ratio * median, floor)
    extreme = max(median + k_extreme * spread, extreme_ratio * median, extreme_floor, alert)
    return Bars(median, spread, alert, extreme, samples)
