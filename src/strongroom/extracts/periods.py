"""Dates coarsened to the calendar: recognising a suspect's month, quarter, year or week.

A leaked date column may have been truncated (``2008-05-17`` → ``2008-05-01``). Such dates
share one day of the month (months, quarters, years: whatever the anchor, the 1st or the
15th) or one weekday (weeks), while day-level dates spread over all of them. Linkage then
compares them on their period's scale, and detection reads a mark only where ``m ± δ`` fall
in different periods (``accuse.read_calendar``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHARE = 0.9  # share of dates on one day of the month (or weekday) for a truncation
PERIOD_DAYS = {"week": 7.0, "month": 30.4375, "quarter": 91.3125, "year": 365.25}
_UNIX_WEEKDAY = 3  # 1970-01-01 was a Thursday: (days + 3) % 7 is 0 on Mondays
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True)
class Calendar:
    """A suspect's date truncation: the period and its phase (the weekday a week starts on;
    the month, counted from January, a quarter or year starts on)."""

    period: str
    phase: int = 0

    @property
    def days(self) -> float:
        return PERIOD_DAYS[self.period]

    def bins(self, days: np.ndarray) -> np.ndarray:
        """The period each day (since 1970-01-01) falls in, as a number; NaN stays NaN."""
        days = np.asarray(days, dtype=np.float64)
        present = np.isfinite(days)
        whole = np.floor(np.where(present, days, 0.0)).astype(np.int64)
        if self.period == "week":
            label = (whole + _UNIX_WEEKDAY - self.phase) // 7
        else:
            months = whole.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
            label = (months - self.phase) // _MONTHS[self.period]
        return np.where(present, label.astype(np.float64), np.nan)


def infer_calendar(days: np.ndarray) -> Calendar | None:
    """The truncation ≥ 90% of ``days`` (since 1970-01-01) sit on, coarsest first; None for
    dates at day level."""
    days = np.asarray(days, dtype=np.float64)
    whole = np.floor(days[np.isfinite(days)]).astype(np.int64)
    if len(whole) == 0:
        return None
    dates = whole.astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    day_of_month = (dates - months.astype("datetime64[D]")).astype(np.int64)
    if _mode_share(day_of_month) >= SHARE:
        month_index = months.astype(np.int64)
        if _mode_share(month_index % 12) >= SHARE:
            return Calendar("year", _mode(month_index % 12))
        if _mode_share(month_index % 3) >= SHARE:
            return Calendar("quarter", _mode(month_index % 3))
        return Calendar("month")
    weekday = (whole + _UNIX_WEEKDAY) % 7
    if _mode_share(weekday) >= SHARE:
        return Calendar("week", _mode(weekday))
    return None


def _mode(values: np.ndarray) -> int:
    found, counts = np.unique(values, return_counts=True)
    return int(found[np.argmax(counts)])


def _mode_share(values: np.ndarray) -> float:
    return float(np.max(np.unique(values, return_counts=True)[1]) / len(values))
