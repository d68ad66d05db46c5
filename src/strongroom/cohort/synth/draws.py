"""Vectorised sampling helpers shared by the synthetic-cohort modules.

Everything here works on whole columns (one value per participant or per event); nothing loops
over people. Dates are whole days since 1970-01-01 held in int64 arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DAYS_PER_YEAR = 365.25

# Independent random streams, one per stage, so that changing one stage leaves the draws of
# the others (and hence most of a cohort) unchanged. Append new names; never reorder.
STAGES = (
    "ids",
    "demographics",
    "lifestyle",
    "measures",
    "health",
    "selfreport",
    "cancers",
    "conditions",
    "deaths",
    "admissions",
    "codes",
    "missing",
)


def streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(STAGES))
    return {
        name: np.random.Generator(np.random.PCG64(child))
        for name, child in zip(STAGES, children, strict=True)
    }


# -- moments ----------------------------------------------------------------------------


def standardise(x: FloatArray) -> FloatArray:
    if x.size == 0:
        return x
    sd = float(x.std())
    return np.asarray((x - x.mean()) / (sd if sd > 0 else 1.0), dtype=np.float64)


def match_moments(x: FloatArray, mean: float, sd: float) -> FloatArray:
    """Affine map onto a target mean and SD: it keeps every correlation and the shape."""
    return mean + sd * standardise(x)


def match_within(x: FloatArray, mean: float, sd: float, lo: float, hi: float) -> FloatArray:
    """Match mean/SD while staying inside [lo, hi] (an assay's reportable range): alternate
    matching and clipping; a few rounds settle both to well within the sampling noise."""
    for _ in range(4):
        x = np.clip(match_moments(x, mean, sd), lo, hi)
    return x


def lognormal_moments(z: FloatArray, mean: float, sd: float) -> FloatArray:
    """A right-skewed positive variable with the target mean/SD, ordered like ``z``.

    ``z`` is a log-scale structural score; it is standardised, given the log-normal spread that
    the target coefficient of variation implies, exponentiated, then matched exactly.
    """
    sigma = float(np.sqrt(np.log1p((sd / mean) ** 2)))
    return match_moments(np.exp(sigma * standardise(z)), mean, sd)


def skewed_moments(z: FloatArray, mean: float, sd: float, sigma: float) -> FloatArray:
    """Like :func:`lognormal_moments` but with the skew set by ``sigma`` (log-scale spread)."""
    return match_moments(np.exp(sigma * standardise(z)), mean, sd)


def sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))


def intercept_for(score: FloatArray, target: float) -> float:
    """The logistic intercept at which ``sigmoid(a + score)`` averages ``target``.

    Newton's method on an evenly spaced subsample (the mean of 100,000 scores is as good as the
    mean of 500,000 for this purpose, and five times cheaper), kept inside a bisection bracket.
    """
    step = max(1, score.shape[0] // 100_000)
    s = score[::step]
    if s.shape[0] == 0 or not 0 < target < 1:
        return -40.0 if target <= 0 else 40.0
    lo, hi = -40.0, 40.0
    a = float(np.log(target / (1 - target)) - np.median(s))
    for _ in range(30):
        p = sigmoid(a + s)
        mean = float(p.mean())
        if abs(mean - target) < 1e-7:
            break
        lo, hi = (a, hi) if mean < target else (lo, a)
        slope = float((p * (1 - p)).mean())
        nxt = a - (mean - target) / slope if slope > 1e-12 else (lo + hi) / 2
        a = nxt if lo < nxt < hi else (lo + hi) / 2
    return a


def bernoulli_calibrated(rng: np.random.Generator, score: FloatArray, target: float) -> BoolArray:
    """Draw yes/no with log-odds ``a + score``, ``a`` set so the expected share is ``target``."""
    p = sigmoid(intercept_for(score, target) + score)
    return rng.random(score.shape[0]) < p


def by_rank(score: FloatArray, probs: Sequence[float]) -> IntArray:
    """Ordinal categories 0..k-1 with exactly the shares ``probs``, assigned in order of score.

    The score carries the dependencies (age, deprivation …); ranking turns it into a category
    with the marginal distribution UK Biobank reports.
    """
    n = score.shape[0]
    p = np.asarray(probs, dtype=np.float64)
    bounds = np.round(np.cumsum(p / p.sum()) * n).astype(np.int64)
    sizes = np.diff(np.concatenate(([0], bounds)))
    out = np.empty(n, dtype=np.int64)
    out[np.argsort(score, kind="stable")] = np.repeat(np.arange(p.shape[0]), sizes)
    return out


def choice_rows(rng: np.random.Generator, weights: FloatArray) -> IntArray:
    """One category per row of an (n, k) weight matrix."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(weights.shape[0]) * cum[:, -1]
    idx = (cum < u[:, None]).sum(axis=1)
    return np.asarray(np.minimum(idx, weights.shape[1] - 1), dtype=np.int64)


def choice_by_group(rng: np.random.Generator, group: IntArray, probs: FloatArray) -> IntArray:
    """One category per item, drawn from row ``group[i]`` of the (groups, k) table ``probs``."""
    out = np.empty(group.shape[0], dtype=np.int64)
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=probs.shape[0])
    start = 0
    for g, count in enumerate(counts):
        if count == 0:
            continue
        p = probs[g] / probs[g].sum()
        out[order[start : start + count]] = rng.choice(p.shape[0], size=int(count), p=p)
        start += int(count)
    return out


def gamma_frailty(rng: np.random.Generator, n: int, shape: float) -> FloatArray:
    """Mean-one gamma multipliers: the over-dispersion behind negative-binomial counts."""
    return rng.gamma(shape, 1.0 / shape, size=n)


# -- dates ------------------------------------------------------------------------------


def days(year: IntArray | int, month: IntArray | int = 1, day: IntArray | int = 1) -> IntArray:
    """Whole days since 1970-01-01 of calendar dates (day must exist in the month)."""
    y = np.asarray(year, dtype=np.int64)
    m = np.asarray(month, dtype=np.int64)
    d = np.asarray(day, dtype=np.int64)
    months = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]")
    result = months.astype("datetime64[D]").astype(np.int64) + (d - 1)
    return np.asarray(result, dtype=np.int64)


def day_of(date: str) -> int:
    return int(np.datetime64(date, "D").astype(np.int64))


def year_month_day(d: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    dt = d.astype("datetime64[D]")
    months = dt.astype("datetime64[M]")
    years = months.astype("datetime64[Y]")
    year = years.astype(np.int64) + 1970
    month = (months - years).astype(np.int64) + 1
    day = (dt - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def whole_years_between(start: IntArray, end: IntArray) -> IntArray:
    """Completed years from ``start`` to ``end`` (age on a date, as a birthday count)."""
    y0, m0, d0 = year_month_day(start)
    y1, m1, d1 = year_month_day(end)
    before_birthday = (m1 < m0) | ((m1 == m0) & (d1 < d0))
    return np.asarray(y1 - y0 - before_birthday.astype(np.int64), dtype=np.int64)


def years_between(start: IntArray | FloatArray, end: IntArray | FloatArray) -> FloatArray:
    return np.asarray((end - start) / DAYS_PER_YEAR, dtype=np.float64)


def age_weighted_dates(
    rng: np.random.Generator,
    start: IntArray,
    end: IntArray,
    slope_per_year: float | FloatArray,
) -> IntArray:
    """Dates in [start, end] with density proportional to exp(slope × time).

    A positive slope makes events cluster late (incidence rising with age); the inverse CDF
    is closed-form, so each row costs a couple of array operations.
    """
    u = rng.random(start.shape[0])
    length = np.maximum(end - start, 0).astype(np.float64)
    g = np.asarray(slope_per_year, dtype=np.float64) / DAYS_PER_YEAR
    g = np.where(np.abs(g) < 1e-9, 1e-9, g)
    with np.errstate(over="ignore"):
        offset = np.log1p(u * np.expm1(g * length)) / g
    offset = np.clip(np.where(np.isfinite(offset), offset, length), 0.0, length)
    return np.asarray(start + np.floor(offset).astype(np.int64), dtype=np.int64)


def segment_starts(owner: IntArray) -> IntArray:
    """For rows sorted by ``owner``, each row's position within its owner's run (0, 1, 2 …)."""
    n = owner.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(n, dtype=np.bool_)
    new[0] = True
    new[1:] = owner[1:] != owner[:-1]
    first = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    return np.asarray(np.arange(n, dtype=np.int64) - first[run], dtype=np.int64)
