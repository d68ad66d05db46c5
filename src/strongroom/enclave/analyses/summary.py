"""Summary statistics of numeric variables, one row of cells per variable.

Each cell carries what its disclosure rule reads: a mean its per-participant magnitudes (for
the dominance rules) and the number of distinct values (a mean of identical values tells every
value); a quantile the participants strictly below and above it; min, max and mode how many
participants hold the shown value (``holders``), and the mode its holders as contributors.
Statistics are over rows (what the SQL would say); contributors are distinct participants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from strongroom import sets
from strongroom.enclave import winsor
from strongroom.enclave.analyses.frame import (
    count_cell,
    distinct,
    finite,
    floats,
    nearest_rows,
    number,
    own_medians,
    per_pid,
    pids,
    require_numeric,
)
from strongroom.enclave.analyses.spec import SummarySpec
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, FloatArray, PidArray, Result

NAMED_QUANTILES = {"median": 0.5, "q25": 0.25, "q75": 0.75}


@dataclass
class _Values:
    """One variable's non-missing values, by row and by participant."""

    x: FloatArray  # row values
    ids: PidArray  # row pids
    ordered: FloatArray  # values sorted: rows, or each participant's median if any has several
    people: PidArray  # distinct pids, sorted
    lowest: FloatArray  # each participant's smallest value (aligned with ``people``)
    highest: FloatArray
    magnitude: FloatArray  # each participant's sum of |x|
    total: FloatArray  # each participant's sum of x (Cell.values)
    distinct_values: int
    order: PidArray  # per_pid(ids): the rows by participant, and where each one's run starts
    starts: PidArray


def summary(spec: SummarySpec, frame: pl.DataFrame, k: int = 0) -> Result:
    """The asked statistics, then the asked quantiles, for every variable in turn. Means and
    SDs are of values winsorised at the k-th smallest and largest participant (winsor.py),
    rows weighted so that no participant counts more rows than the bulk; quantiles, minima,
    maxima and modes are of the values as they are."""
    for name in spec.variables:
        require_numeric(frame, name, "a summary")
    cells: list[Cell] = []
    ids = pids(frame)
    for name in spec.variables:
        cells += _variable(spec, name, _values(floats(frame, name), ids), k)
    notes = ([winsor.NOTE] if k >= 1 and {"mean", "sd"} & set(spec.statistics) else [])
    return Result(AnalysisKind.SUMMARY, spec.model_dump(mode="json"), cells, notes=notes)


@dataclass
class _Clipped:
    """A variable's winsorised figures: mean, SD, and each participant's share of them."""

    mean: float | None
    sd: float | None
    total: FloatArray  # each participant's weighted sum of clipped values (Cell.values)
    magnitude: FloatArray
    distinct_values: int


def _clipped(v: _Values, k: int) -> _Clipped:
    if len(v.x) == 0:
        return _Clipped(None, None, v.total, v.magnitude, 0)
    x = winsor.clip_rows(v.x, v.ids, k)
    w = winsor.row_weights(v.ids, k)
    mean, sd = winsor.weighted_mean_sd(x, w)
    total = np.add.reduceat((w * x)[v.order], v.starts)
    magnitude = np.add.reduceat((w * np.abs(x))[v.order], v.starts)
    return _Clipped(finite(mean) if mean is not None else None,
                    finite(sd) if sd is not None else None, total, magnitude,
                    int(sets.distinct(x).size))


def _values(column: FloatArray, ids: PidArray) -> _Values:
    present = ~np.isnan(column)
    x, who = column[present], ids[present]
    ordered = np.sort(x)
    if len(x) == 0:
        empty, none = np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
        return _Values(x, who, ordered, none, empty, empty, empty, empty, 0, none, none)
    order, people, starts = per_pid(who)
    by_pid = x[order]
    changes = int(np.count_nonzero(ordered[1:] != ordered[:-1]))
    if len(people) < len(x):
        # order statistics of participants, each by the median of their own rows: of rows,
        # one participant's extra row broke a tie that everyone else's identical rows made
        # (rows 0 and 1 each, the target a third, 1 if obese: the median was the bit)
        ordered = np.sort(own_medians(x, who))
    return _Values(x, who, ordered, people, np.minimum.reduceat(by_pid, starts),
                   np.maximum.reduceat(by_pid, starts), np.add.reduceat(np.abs(by_pid), starts),
                   np.add.reduceat(by_pid, starts), changes + 1, order, starts)


def _variable(spec: SummarySpec, name: str, v: _Values, k: int) -> list[Cell]:
    row = (name,)
    n = len(v.x)
    cells: list[Cell] = []
    c = _clipped(v, k) if {"mean", "sd"} & set(spec.statistics) else None
    for statistic in spec.statistics:
        if statistic == "n":  # participants with a value, not rows: a count of people
            cells.append(count_cell(row, "n", len(v.people), v.people, spec.round_to))
        elif statistic == "mean":
            assert c is not None
            cells.append(Cell(row, "mean", CellKind.MEAN, c.mean if n else None,
                              v.people, magnitudes=c.magnitude,
                              distinct_values=c.distinct_values, values=c.total,
                              winsorised=k >= 1))
        elif statistic == "sd":
            assert c is not None
            cells.append(Cell(row, "sd", CellKind.SD, c.sd if n > 1 else None,
                              v.people, distinct_values=c.distinct_values, values=c.total,
                              winsorised=k >= 1))
        elif statistic in NAMED_QUANTILES:
            kind = CellKind.MEDIAN if statistic == "median" else CellKind.QUANTILE
            cells.append(_quantile(row, statistic, kind, NAMED_QUANTILES[statistic], v))
        elif statistic in ("min", "max"):
            cells.append(_extreme(row, statistic, v))
        else:
            cells.append(_mode(row, v))
    cells += [_quantile(row, f"p{number(q * 100)}", CellKind.QUANTILE, q, v)
              for q in spec.quantiles]
    return cells


def _quantile(row: tuple[str, ...], column: str, kind: CellKind, q: float, v: _Values) -> Cell:
    if len(v.x) == 0:
        return Cell(row, column, kind, None, v.people, below=0, above=0, values=v.total,
                    level=q)
    value = sorted_quantile(v.ordered, q)
    # a participant with rows on both sides counts on both sides: each side is who could be
    # pinned down by it
    return Cell(row, column, kind, value, v.people,
                below=int(np.count_nonzero(v.lowest < value)),
                above=int(np.count_nonzero(v.highest > value)), values=_nearest(v, value),
                level=q)


def _nearest(v: _Values, value: float) -> FloatArray:
    """Per participant, their row nearest ``value``, on its own side: what release precision
    measures a quantile's neighbours and gaps by. A quantile is of rows, so a participant's
    total says nothing of it: others with rows far below and far above, totals packed around
    the target's, must not make the step small."""
    order, starts = v.order, v.starts
    if len(starts) == len(order):
        # a row each: their own, which is their total (one array for every quantile)
        return v.total
    runs = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    at = np.full(len(order), value)
    return nearest_rows(v.x[order], runs, at)[starts]


def sorted_quantile(ordered: FloatArray, q: float) -> float:
    """numpy's default (linear) quantile of already sorted values, without sorting again."""
    h = (len(ordered) - 1) * q
    below = math.floor(h)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (h - below) * (ordered[above] - ordered[below]))


def _extreme(row: tuple[str, ...], which: str, v: _Values) -> Cell:
    kind = CellKind.MIN if which == "min" else CellKind.MAX
    if len(v.x) == 0:
        return Cell(row, which, kind, None, v.people, holders=0)
    own = v.lowest if which == "min" else v.highest
    value = float(own.min() if which == "min" else own.max())
    return Cell(row, which, kind, value, v.people, holders=int(np.count_nonzero(own == value)),
                distinct_values=v.distinct_values)


def _mode(row: tuple[str, ...], v: _Values) -> Cell:
    """The value held by the most participants (the smallest on a tie; by participants, not
    rows, so that one participant's extra row cannot break a tie that everyone else's rows
    made); contributors hold it."""
    if len(v.x) == 0:
        return Cell(row, "mode", CellKind.MODE, None, v.people, holders=0, distinct_values=0)
    held = (pl.DataFrame({"p": v.ids, "x": v.x}).unique().group_by("x").len()
            .sort(["len", "x"], descending=[True, False]))
    value = float(held["x"][0])
    holders = distinct(v.ids[v.x == value])
    return Cell(row, "mode", CellKind.MODE, value, holders, holders=len(holders),
                distinct_values=v.distinct_values)
