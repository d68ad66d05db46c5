"""The dataset definition as analyses read it: checks, level codes, and participants per group.

A definition is a Polars frame with a ``pid`` column (project pseudonyms) in which a participant
may sit on several rows. Counts are of rows (what the SQL says); contributors are the distinct
participants, found here with one sort of a combined (group, pid) key rather than per-group work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom.enclave.results import Cell, CellKind, FloatArray, PidArray
from strongroom.errors import Invalid

PID = "pid"
MISSING = "(missing)"  # the level label of missing values
TOTAL = "Total"  # the label of a margin
MAX_LEVELS = 1000  # more distinct values than this is a list of individuals, not a table
IntArray = npt.NDArray[np.int64]
_KEY_LIMIT = 2**62  # group code × pid span must fit in an int64


def check_schema(frame: pl.DataFrame, columns: list[str]) -> None:
    """Refuse a definition without ``pid`` or ``columns``: its shape only, not its values."""
    if PID not in frame.columns:
        raise Invalid("the dataset definition has no pid column: select the participant "
                      "pseudonym as pid")
    absent = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if absent:
        available = ", ".join(c for c in frame.columns if c != PID) or "none"
        raise Invalid([f"{c!r} is not a column of the dataset definition" for c in absent]
                      + [f"its columns are: {available}"])
    if not frame.schema[PID].is_integer():
        raise Invalid("pid must hold the integer participant pseudonyms")


def prepare(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``pid`` and ``columns`` of ``frame``, checked and normalised, or :class:`Invalid`.

    Floats' NaN become missing (null); categoricals become text; decimals become floats.
    """
    check_schema(frame, columns)
    if frame.height == 0:
        raise Invalid("the dataset definition has no rows")
    if frame[PID].null_count():
        raise Invalid("some rows have no pid: every row must belong to a participant")
    try:
        used = frame.select(pl.col(PID).cast(pl.Int64),
                            *[pl.col(c) for c in dict.fromkeys(columns)])
    except pl.exceptions.InvalidOperationError:
        raise Invalid("pid must hold the integer participant pseudonyms (64-bit)") from None
    return used.with_columns(*[_normalised(used, c) for c in dict.fromkeys(columns)])


def _normalised(frame: pl.DataFrame, name: str) -> pl.Expr:
    dtype = frame.schema[name]
    col = pl.col(name)
    if dtype.is_float():
        # infinite and NaN values count as missing: refusing them would say whether anyone
        # the definition picked out has one
        return pl.when(col.is_finite()).then(col).otherwise(None)
    if isinstance(dtype, pl.Decimal):
        return col.cast(pl.Float64)
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return col.cast(pl.String)
    if (dtype.is_integer() or dtype.is_temporal()
            or isinstance(dtype, (pl.Boolean, pl.String, pl.Null))):
        return col
    raise Invalid(f"{name!r} has type {dtype}, which analyses cannot read: derive a number, "
                  "text or date from it in the dataset definition")


def is_numeric(frame: pl.DataFrame, name: str) -> bool:
    """Numbers and true/false (read as 1/0) are numeric; text and dates are not."""
    dtype = frame.schema[name]
    return dtype.is_numeric() or isinstance(dtype, (pl.Boolean, pl.Null))


def require_numeric(frame: pl.DataFrame, name: str, what: str) -> None:
    if not is_numeric(frame, name):
        raise Invalid(f"{name!r} is not numeric, and {what} needs numbers: derive a number "
                      "from it (or use a frequency table)")


def floats(frame: pl.DataFrame, name: str) -> FloatArray:
    """The column as float64 (nulls become NaN)."""
    return frame[name].cast(pl.Float64).to_numpy().astype(np.float64, copy=False)


def pids(frame: pl.DataFrame) -> PidArray:
    return frame[PID].to_numpy().astype(np.int64, copy=False)


@dataclass
class Levels:
    """A variable's levels in value order, and each row's level (-1: missing, left out)."""

    codes: IntArray
    labels: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def encode(series: pl.Series, missing: bool, limit: int = MAX_LEVELS) -> Levels:
    """Levels sorted by value (numbers numerically); missing values last as "(missing)"."""
    small = _small_integers(series, limit)
    if small is not None:
        codes, labels = small
    else:
        values = series.drop_nulls().unique().sort()
        _check_levels(len(values), limit)
        labels = [str(v) for v in values.cast(pl.String).to_list()]
        codes = (series.replace_strict(values, pl.Series(np.arange(len(values), dtype=np.int64)),
                                       default=-1, return_dtype=pl.Int64)
                 .fill_null(-1).to_numpy().astype(np.int64, copy=False))
    if missing and series.null_count():
        codes = np.where(codes < 0, len(labels), codes)
        labels = [*labels, MISSING]
    return Levels(codes, labels)


def _check_levels(count: int, limit: int) -> None:
    """Refuse a variable of too many levels, naming none: which of several variables met
    the limit first is an answer about the data (the reasons red team)."""
    if count > limit:
        raise Invalid(f"a variable the analysis groups by has more than {limit} distinct "
                      "values (which one is an answer about the data, so it is not said): band "
                      "or group it in the dataset definition (or use a histogram)")


def _small_integers(series: pl.Series, limit: int) -> tuple[IntArray, list[str]] | None:
    """Codes by a lookup table for integers of a narrow range (the usual coded variable):
    a bincount instead of a hash or a sort."""
    if not series.dtype.is_integer() or series.null_count() == len(series):
        return None
    low, high = int(series.min()), int(series.max())  # type: ignore[arg-type]
    if high - low >= 64 * MAX_LEVELS:
        return None
    nulls = series.is_null().to_numpy() if series.null_count() else None
    x = (series.fill_null(low) if nulls is not None else series).to_numpy() - low
    seen = np.bincount(x if nulls is None else x[~nulls], minlength=high - low + 1)
    present = np.flatnonzero(seen)
    _check_levels(len(present), limit)
    lookup = np.full(high - low + 1, -1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    codes = lookup[x]
    if nulls is not None:
        codes[nulls] = -1
    return codes, [str(int(v) + low) for v in present]


def increasing(ids: PidArray) -> bool:
    """Strictly increasing: one row per participant, in pid order (a participant-level
    definition's rows), so that no sort or dedupe is needed."""
    return bool(np.all(ids[1:] > ids[:-1]))


def person_codes(ids: PidArray) -> npt.NDArray[np.intp]:
    """Each row's participant as 0 … m − 1 in pid order (``np.unique``'s inverse), without
    the sort where the rows are one per participant in pid order already."""
    if increasing(ids):
        return np.arange(len(ids))
    return np.unique(ids, return_inverse=True)[1]


def distinct(ids: PidArray) -> PidArray:
    """Sorted unique pids (a sort and a mask: faster than np.unique)."""
    return ids if increasing(ids) else _dedupe_sorted(np.sort(ids))


def _dedupe_sorted(ordered: PidArray) -> PidArray:
    if len(ordered) < 2:
        return ordered
    repeats = ordered[1:] == ordered[:-1]
    if not repeats.any():  # the usual case: one row per participant, no copy needed
        return ordered
    np.logical_not(repeats, out=repeats)
    return ordered[np.r_[True, repeats]]


def group_pids(codes: IntArray, ids: PidArray, n_groups: int) -> list[PidArray]:
    """For each group code 0..n_groups-1, the sorted distinct pids of its rows (-1: skipped).

    One in-place sort of the combined key code·span + pid gives every group's pids, sorted, in
    one array; a participant on several rows of a group is adjacent there and kept once.
    """
    if len(codes) and int(codes.min()) < 0:
        keep = codes >= 0
        codes, ids = codes[keep], ids[keep]
    if len(ids) == 0:
        return [np.empty(0, dtype=np.int64) for _ in range(n_groups)]
    if increasing(ids) and n_groups <= np.iinfo(np.uint16).max:
        # one row each, in order: a stable (radix) sort by group keeps each group's pids
        # in order, and none repeats (a 500,000-row crosstab's int64 sort took 25 ms)
        order = np.argsort(codes.astype(np.uint16), kind="stable")
        ends = np.cumsum(np.bincount(codes, minlength=n_groups))
        return np.split(ids[order], ends[:-1])
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    table: PidArray | None = None
    if n_groups * span >= _KEY_LIMIT:  # pids spread too wide for one key: use their ranks
        table = distinct(ids)
        ids = np.searchsorted(table, ids).astype(np.int64)
        low, span = 0, len(table)
    keys = codes * span
    keys -= low  # before adding the pids, so that no step leaves the int64 range
    keys += ids
    keys.sort()
    keys = _dedupe_sorted(keys)
    bounds = np.searchsorted(keys, np.arange(n_groups + 1, dtype=np.int64) * span)
    blocks = []
    for g in range(n_groups):  # ``keys`` is this function's own array: shift it in place
        block = keys[bounds[g]:bounds[g + 1]]
        block -= g * span - low
        blocks.append(block)
    return [table[b] for b in blocks] if table is not None else blocks


def nearest_rows(x: FloatArray, runs: npt.NDArray[np.int64], at: FloatArray) -> FloatArray:
    """Each row replaced by its participant's row nearest ``at`` (``runs``: each row's
    participant, non-decreasing): on the side of ``at`` it is on, so that release precision
    sees the gaps either side of a quantile, not only distances from it."""
    offset = x - at
    with np.errstate(invalid="ignore"):
        order = np.lexsort((np.abs(offset), runs))  # within each run, the nearest first
    first = np.flatnonzero(np.r_[True, runs[order][1:] != runs[order][:-1]])
    nearest = np.repeat(order[first], np.diff(np.r_[first, len(order)]))
    return at + offset[nearest]


def per_pid(ids: PidArray) -> tuple[IntArray, PidArray, IntArray]:
    """(order, the distinct pids, where each pid's run starts in ``ids[order]``)."""
    order = np.argsort(ids).astype(np.int64)  # the order within a participant is irrelevant
    ordered = ids[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]).astype(np.int64)
    return order, ordered[starts], starts


def last_per_pid(ids: PidArray, index: IntArray) -> tuple[PidArray, IntArray]:
    """The distinct pids and each one's highest ``index`` (a life table's last interval
    followed): the rows themselves where they are one per participant in pid order, without
    the sort and its three copies (at 5,000,000 each was 40 MB)."""
    if increasing(ids):
        return ids, index
    order, people, starts = per_pid(ids)
    return people, (np.maximum.reduceat(index[order], starts) if len(ids) else index)


def own_medians(x: FloatArray, ids: PidArray) -> FloatArray:
    """Each participant's median of their own rows (in pid order): one value per person for
    order statistics, which rows would let one person's extra row decide."""
    frame = pl.DataFrame({"p": ids, "x": x}).group_by("p").agg(pl.col("x").median()).sort("p")
    return frame["x"].to_numpy().astype(np.float64)


def rounded(count: float, base: int | None) -> float:
    """``count`` to the nearest multiple of ``base`` (halves up), or as it is."""
    if base is None:
        return count
    return float(math.floor(count / base + 0.5) * base)


def count_cell(row: tuple[str, ...], column: str, rows: int, contributors: PidArray,
               round_to: int | None, kind: CellKind = CellKind.COUNT, margin: bool = False,
               table: str = "", derived: bool = False) -> Cell:
    """A count of rows whose contributors are distinct participants, rounded if asked."""
    return Cell(row=row, column=column, kind=kind, value=rounded(float(rows), round_to),
                contributors=contributors, margin=margin, table=table, rounded_to=round_to,
                exact=float(rows) if round_to is not None else None, derived=derived)


def finite(value: float) -> float | None:
    """``value`` as a float if it is finite, else None (shown as nothing, never as NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def number(value: float) -> str:
    """A grid edge or quantile as short text: 365.25, 10, 0.5 (no float noise)."""
    text = f"{round(float(value), 10):.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
