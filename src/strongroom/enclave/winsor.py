"""Winsorised values: rare values are pulled into the bulk, silently and always.

A deterministic check that *acts* only when a small group exists tells whether it exists: a sum
whose contributions are all equal but for one person's is suppressed, a category held by one
person is removed, an outcome constant but for one person cannot be fitted. Each is one bit per
output. So before any statistic is computed, every per-participant contribution that enters it
is clipped to ``[x_(k), x_(n-k+1)]``, the k-th smallest and k-th largest among the statistic's
own participants (k the project's threshold; when n < 2k the bounds cross and everything is
clipped to the median), and a category held by fewer than k participants is counted in the
variable's most common category. The guarantee: *changing the values of fewer than k
participants to anything outside the range held by the others changes nothing that is
released* (the order statistics that bound the clip are then the others' own). What was clipped
is never said: the notes below are the same whatever the data.

Quantiles, minima, maxima and modes are order statistics or held values with their own rules,
and are not clipped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from strongroom.enclave import margin
from strongroom.enclave.analyses.frame import Levels, increasing, person_codes
from strongroom.enclave.results import FloatArray, PidArray

NOTE = ("values are winsorised at the k-th smallest and largest of each statistic's "
        "participants (k the project's threshold; everything at the median below 2k), and "
        "counts of rows per participant likewise, so that no few people's values set a figure")
CATEGORY_NOTE = ("a category held by fewer than k participants (the project's threshold) is "
                 "counted in the variable's most common category")


def rank(k: int, *ranked: FloatArray) -> int:
    """The order statistic a clip of the participants' values ``ranked`` is set at: k plus
    the keyed margin of those values (margin.py, named by what they are, so copies of one
    statistic share it), so that k − 1 accomplices and the target do not make the bound
    exactly when the target has the value asked about; never past n // 2, where the bounds
    would cross (below 2k they are the median anyway)."""
    return min(margin.reach(k, "clip", *map(margin.of, ranked)), ranked[0].size // 2)


def bounds(own: FloatArray, k: int) -> tuple[float, float]:
    """The r-th smallest and r-th largest of ``own`` (one value per participant; NaN
    ignored), r the rank above (k outside a keyed request); both the median when there are
    fewer than 2k; no bounds when k < 1 or nothing is given."""
    x = np.asarray(own, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = x.size
    if k < 1 or n == 0:
        return (-np.inf, np.inf)
    if n < 2 * k:
        middle = float(np.median(x))
        return (middle, middle)
    r = rank(k, x)
    low = float(np.partition(x, r - 1)[r - 1])
    high = float(np.partition(x, n - r)[n - r])
    return (low, high)


def clip(own: FloatArray, k: int) -> FloatArray:
    """Per-participant contributions clipped to their own bounds (NaN kept)."""
    x = np.asarray(own, dtype=np.float64)
    low, high = bounds(x, k)
    return np.clip(x, low, high)


def clip_rows(x: FloatArray, ids: PidArray, k: int) -> FloatArray:
    """Row values clipped to bounds set by participants, not rows: the k-th smallest of each
    participant's lowest row and the k-th largest of each one's highest (below 2k
    participants, the median of their means), so that no few people, however many rows they
    have, set where the clip lies. Missing values (NaN) stay missing."""
    x = np.asarray(x, dtype=np.float64)
    present = np.isfinite(x)
    if k < 1 or not present.any():
        return x
    every = bool(present.all())  # no copies of the rows where every value is present
    kept = ids if every else ids[present]
    one_each = increasing(kept)  # one row per participant, in pid order: rows are people
    codes = None if one_each else person_codes(kept)
    people = len(kept) if codes is None else int(codes.max()) + 1
    values = x if every else x[present]
    if people < 2 * k:
        if codes is None:
            codes = person_codes(kept)
        sums = np.bincount(codes, weights=values, minlength=people)
        middle = float(np.median(sums / np.bincount(codes, minlength=people)))
        low = high = middle
    else:
        if one_each:
            lowest = highest = values
        else:
            assert codes is not None
            lowest = np.full(people, np.inf)
            highest = np.full(people, -np.inf)
            np.minimum.at(lowest, codes, values)
            np.maximum.at(highest, codes, values)
        r = rank(k, lowest, highest)
        low = float(np.partition(lowest, r - 1)[r - 1])
        high = float(np.partition(highest, people - r)[people - r])
    if every:
        return np.clip(x, low, high)
    out = x.copy()
    out[present] = np.clip(values, low, high)
    return out


def row_weights(ids: PidArray, k: int) -> FloatArray:
    """Per row, its participant's clipped number of rows over their number of rows: rows
    weighted so that a participant counts as many rows as the bulk does at most."""
    codes = person_codes(ids)
    rows = np.bincount(codes).astype(np.float64)
    if rows.size == 0 or rows.max() == rows.min():
        return np.ones(len(ids), dtype=np.float64)
    return (clip(rows, k) / rows)[codes]


def weighted_mean_sd(x: FloatArray, w: FloatArray) -> tuple[float | None, float | None]:
    """The mean and sample SD of ``x`` with frequency weights ``w`` (None where undefined)."""
    total = float(w.sum())
    if total <= 0:
        return None, None
    mean = float(np.dot(w, x) / total)
    if total <= 1:
        return mean, None
    return mean, float(np.sqrt(max(0.0, float(np.dot(w, (x - mean) ** 2)) / (total - 1))))


def rare_to_common(codes: npt.NDArray[np.int64], ids: PidArray, levels: int,
                   k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Level codes (−1: missing, kept) with every level held by fewer than its reach (k plus
    the keyed margin of the level's holders, margin.py) distinct participants moved to the
    level held by most (the first on a tie), when that one is held by at least ``k``; and
    which levels remain (a level emptied by the move is gone, label and all)."""
    kept = codes >= 0
    held, holders = _holders(codes[kept].astype(np.int64), ids[kept].astype(np.int64), levels)
    rare = (held > 0) & (held < margin.highest(k)) if k >= 1 \
        else np.zeros(levels, dtype=np.bool_)
    for at in np.flatnonzero(rare).tolist():  # below 2k − 1: by the line of its holders
        rare[at] = margin.short(int(held[at]), k, *margin.THRESHOLD, members=holders(at))
    common = int(np.argmax(held)) if levels else 0
    # the most common category's label leaves: it must be held by k in its own right, or
    # nothing is moved (the safe labels then leave the rare ones out, labels and all)
    if not rare.any() or held[common] < k:
        return codes, np.ones(levels, dtype=np.bool_)
    moved = codes.copy()
    moved[kept] = np.where(rare[codes[kept]], common, codes[kept])
    remain = ~rare
    remain[common] = True
    return moved, remain


def _holders(level: npt.NDArray[np.int64], who: PidArray, levels: int
             ) -> tuple[npt.NDArray[np.int64], Callable[[int], PidArray]]:
    """Each level's count of distinct participants, and a level's participants, sorted."""
    if len(who) == 0 or levels == 0:
        return np.zeros(levels, dtype=np.int64), lambda _: np.empty(0, dtype=np.int64)
    if increasing(who):  # one row each, in order: rows are participants
        return np.bincount(level, minlength=levels), lambda at: who[level == at]
    # distinct (level, participant) pairs as one sorted int64 key: np.unique(axis=1) on
    # stacked pairs took 0.3 s at 500,000 rows, this a sort
    low = int(who.min())
    span = int(who.max()) - low + 1
    key = level * span + (who - low)
    key.sort()
    key = key[np.r_[True, key[1:] != key[:-1]]]
    return (np.bincount(key // span, minlength=levels),
            lambda at: key[key // span == at] % span + low)


def recoded(levels: Levels, ids: PidArray, k: int) -> Levels:
    """``levels`` with its rare levels counted in the most common one, and emptied ones gone."""
    codes, remain = rare_to_common(levels.codes, ids, len(levels), k)
    if remain.all():
        return Levels(codes, levels.labels)
    index = np.cumsum(remain) - 1
    moved = np.where(codes >= 0, index[np.maximum(codes, 0)], -1).astype(np.int64)
    return Levels(moved, [label for label, keep in zip(levels.labels, remain, strict=True)
                          if keep])
