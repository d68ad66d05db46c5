"""Frequency tables, crosstabs and histograms: counts of participants.

A COUNT's value is the number of distinct participants in its group, never the number of
rows: a definition that repeats one participant's row as many times as their value (or once
more only if they have an attribute) would otherwise move a count by that person alone while
the participants behind it stay the same. (Counts of rows, e.g. of hospital episodes, are
asked for with aggregate SQL, where each participant's rows are checked as their
contribution.) Every combination of a crosstab is a cell, zero ones included; margins are
marked so that secondary suppression can protect a hidden cell from being recovered from
totals. A percentage sits in table "percent" on the same row (and column) as the count it
comes from, its contributors being the numerator's participants and ``denominator`` the
denominator's. When counts are rounded, percentages are computed from the rounded counts so
that they give nothing finer away.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from strongroom.enclave import winsor
from strongroom.enclave.analyses.frame import (
    TOTAL,
    count_cell,
    distinct,
    encode,
    floats,
    group_pids,
    number,
    pids,
    require_numeric,
)
from strongroom.enclave.analyses.spec import CrosstabSpec, FrequencySpec, HistogramSpec
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, PidArray, Result
from strongroom.errors import Invalid

PERCENT_TABLE = "percent"
MAX_CELLS = 10_000
DEFAULT_BINS = 10


def frequency(spec: FrequencySpec, frame: pl.DataFrame, k: int = 0) -> Result:
    """One COUNT per value of ``spec.variable`` plus a total; PERCENT of the total if asked.
    A value held by fewer than ``k`` participants is counted in the most common one
    (winsor.py), so no category disappears and no other count moves with it."""
    ids = pids(frame)
    levels = winsor.recoded(encode(frame[spec.variable], spec.missing), ids, k)
    kept = levels.codes >= 0
    members = group_pids(levels.codes, ids, len(levels))
    everyone = distinct(ids[kept])
    cells = [count_cell((label,), "count", who.size, who, spec.round_to)
             for label, who in zip(levels.labels, members, strict=True)]
    cells.append(count_cell((TOTAL,), "count", everyone.size, everyone, spec.round_to,
                            margin=True))
    if spec.percentages:  # the total's own 100% is left out (see _crosstab_percents)
        total = cells[-1]
        cells += [_percent(c, total.value, everyone, "percent") for c in cells[:-1]]
    return Result(AnalysisKind.FREQUENCY, spec.model_dump(mode="json"), cells,
                  notes=_rounding_note(spec.round_to, spec.percentages) + _category_note(k))


def crosstab(spec: CrosstabSpec, frame: pl.DataFrame, k: int = 0) -> Result:
    """Counts for every (row, column) combination, margins, and percentages if asked; a row
    or column category held by fewer than ``k`` participants is counted in the most common."""
    ids = pids(frame)
    rows = winsor.recoded(encode(frame[spec.rows], spec.missing), ids, k)
    cols = winsor.recoded(encode(frame[spec.columns], spec.missing), ids, k)
    n_rows, n_cols = len(rows), len(cols)
    if n_rows * n_cols > MAX_CELLS:
        raise Invalid(f"a crosstab of {spec.rows!r} by {spec.columns!r} would have more than "
                      f"{MAX_CELLS:,} cells: band or group them in the dataset definition")
    codes = rows.codes * n_cols
    codes += cols.codes
    row_codes, col_codes = rows.codes, cols.codes
    if min(int(row_codes.min()), int(col_codes.min())) < 0:  # missing values left out
        kept = (row_codes >= 0) & (col_codes >= 0)
        ids, codes, row_codes, col_codes = ids[kept], codes[kept], row_codes[kept], col_codes[kept]
    members = group_pids(codes, ids, n_rows * n_cols)
    counts = np.array([m.size for m in members], dtype=np.int64).reshape(n_rows, n_cols)
    want_margins = spec.margins or spec.percentages != "none"
    row_members = group_pids(row_codes, ids, n_rows) if want_margins else []
    col_members = group_pids(col_codes, ids, n_cols) if want_margins else []
    everyone = distinct(ids)
    r = spec.round_to

    inner = [[count_cell((rows.labels[i],), cols.labels[j], int(counts[i, j]),
                         members[i * n_cols + j], r) for j in range(n_cols)]
             for i in range(n_rows)]
    row_totals = [count_cell((rows.labels[i],), TOTAL, row_members[i].size, row_members[i], r,
                             margin=True) for i in range(n_rows)] if want_margins else []
    col_totals = [count_cell((TOTAL,), cols.labels[j], col_members[j].size, col_members[j],
                             r, margin=True) for j in range(n_cols)] if want_margins else []
    grand = count_cell((TOTAL,), TOTAL, everyone.size, everyone, r, margin=True)

    cells: list[Cell] = []
    for i in range(n_rows):
        cells += inner[i]
        if spec.margins:
            cells.append(row_totals[i])
    if spec.margins:
        cells += [*col_totals, grand]
    if spec.percentages != "none":
        cells += _crosstab_percents(spec.percentages, inner, row_totals, col_totals, grand,
                                    spec.margins)
    return Result(AnalysisKind.CROSSTAB, spec.model_dump(mode="json"), cells,
                  notes=_rounding_note(r, spec.percentages != "none") + _category_note(k))


def _category_note(k: int) -> list[str]:
    """The same for every table of a project: it never says whether anything was moved."""
    return [winsor.CATEGORY_NOTE] if k >= 1 else []


def _crosstab_percents(how: str, inner: list[list[Cell]], row_totals: list[Cell],
                       col_totals: list[Cell], grand: Cell, margins: bool) -> list[Cell]:
    """Each count over its row's, column's or the grand total, margins included if shown.

    A margin over itself (a row total as a row percentage, the grand total) is always 100%
    and is left out: it says nothing, and would only look like a 100% share to the check.
    """
    def over(i: int | None, j: int | None) -> Cell:
        if how == "row":
            return grand if i is None else row_totals[i]
        if how == "column":
            return grand if j is None else col_totals[j]
        return grand

    pairs = [(cell, over(i, j)) for i, line in enumerate(inner) for j, cell in enumerate(line)]
    if margins:
        pairs += [(total, over(i, None)) for i, total in enumerate(row_totals)]
        pairs += [(total, over(None, j)) for j, total in enumerate(col_totals)]
        pairs.append((grand, grand))
    return [_percent(cell, den.value, den.contributors, cell.column)
            for cell, den in pairs if cell is not den]


def _percent(count: Cell, total: float | None, denominator: PidArray, column: str) -> Cell:
    """``count`` as a percentage of ``total``; None where the total is zero."""
    value = None
    if count.value is not None and total:
        value = 100.0 * count.value / total
    return Cell(row=count.row, column=column, kind=CellKind.PERCENT, value=value,
                contributors=count.contributors, denominator=denominator, margin=count.margin,
                table=PERCENT_TABLE)


def _rounding_note(round_to: int | None, percentages: bool) -> list[str]:
    if round_to is None:
        return []
    note = f"counts are rounded to the nearest multiple of {round_to}"
    return [note + (", and percentages are computed from the rounded counts" if percentages
                    else "")]


def histogram(spec: HistogramSpec, frame: pl.DataFrame, k: int = 0) -> Result:
    """COUNT per bin. With ``bins``, edges are drawn from the values winsorised at the k-th
    participant from either end (winsor.clip_rows) and rounded outward, so neither the data's
    own minimum and maximum nor one participant past everyone else moves them (the target at
    101 beside thirty people at 100 made six bins of 20 instead of ten of 10); the values
    beyond are counted in the end bins. With ``edges``, values outside go to open-ended bins,
    both always shown (a zero is held like a few by the check): an open bin shown only when
    someone is past the last edge said so of one person, whatever the check then hid."""
    require_numeric(frame, spec.variable, "a histogram")
    x = floats(frame, spec.variable)
    present = ~np.isnan(x)
    x, ids = x[present], pids(frame)[present]
    notes = _rounding_note(spec.round_to, False)
    if len(x) == 0:
        return Result(AnalysisKind.HISTOGRAM, spec.model_dump(mode="json"), [],
                      notes=[*notes, f"{spec.variable!r} has no values"])
    if spec.edges is None and k >= 1:
        x = winsor.clip_rows(x, ids, k)
        notes.append(f"values beyond about the {k}th participant from either end are "
                     "counted in the end bins")
    edges = (np.asarray(spec.edges, dtype=np.float64) if spec.edges is not None
             else nice_edges(float(x.min()), float(x.max()), spec.bins or DEFAULT_BINS))
    k = len(edges) - 1
    # bin i holds [edges[i], edges[i+1]); the last bin is closed, so the top edge falls in it
    index = np.searchsorted(edges, x, side="right") - 1
    index[x == edges[-1]] = k - 1
    below, above = x < edges[0], x > edges[-1]
    index[below], index[above] = k, k + 1  # the open-ended bins (none with drawn edges)
    members = group_pids(index.astype(np.int64), ids, k + 2)
    counts = [m.size for m in members]
    labels = [f"[{number(edges[i])}, {number(edges[i + 1])})" for i in range(k)]
    labels[-1] = labels[-1][:-1] + "]"
    opened = spec.edges is not None  # from the request alone, never from the data
    cells = []
    if opened:
        cells.append(count_cell((f"< {number(edges[0])}",), "count", int(counts[k]), members[k],
                                spec.round_to))
    cells += [count_cell((labels[i],), "count", int(counts[i]), members[i], spec.round_to)
              for i in range(k)]
    if opened:
        cells.append(count_cell((f"> {number(edges[-1])}",), "count", int(counts[k + 1]),
                                members[k + 1], spec.round_to))
    return Result(AnalysisKind.HISTOGRAM, spec.model_dump(mode="json"), cells, notes=notes)


def nice_edges(low: float, high: float, bins: int) -> np.ndarray:
    """Edges on a round step (1, 2, 2.5 or 5 × 10^k) covering [low, high] in about ``bins``."""
    span = high - low
    raw = span / bins if span > 0 else max(abs(low), 1.0) / 10
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-12))
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    if stop <= start:
        stop = start + step
    count = round((stop - start) / step)
    decimals = max(0, -math.floor(math.log10(step)) + 1)
    return np.round(start + step * np.arange(count + 1), decimals)
