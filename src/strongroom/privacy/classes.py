"""Equivalence classes: the rows that share every quasi-identifier value, found without loops.

Each column becomes dense integer codes (0 = missing, then the values in sorted order), the
columns combine into one integer key by mixed radix, and the keys become class ids. Class ids
follow the sorted key, so they do not depend on the order of the rows.

Missing values (null, and NaN in float columns) are a value of their own by default: a blank
year of birth is as telling as any year. ``missing="ignore"`` leaves rows with any missing
quasi-identifier out of every class instead; that is pandas' ``groupby`` default, so pycanon
behaves that way, and it understates risk (those rows are still in the file). It exists to
compare with such tools, not to release data with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from strongroom.errors import Invalid

Missing = Literal["value", "ignore"]
MISSING_POLICIES: tuple[Missing, ...] = ("value", "ignore")
_KEY_LIMIT = 2**62  # mixed-radix keys stay below this, so int64 never overflows
_DIRECT_RANGE = 4  # integer columns spanning at most 4 × rows are coded by offset, not sorting


@dataclass(frozen=True)
class ColumnCodes:
    """One column as integers: 0 for missing, 1… for the values in sorted order."""

    codes: np.ndarray  # int64 per row
    cardinality: int  # every code is below this
    missing: int  # rows with a missing value


@dataclass(frozen=True)
class Classes:
    """Which class each row is in, and how large each class is."""

    ids: np.ndarray  # int64 per row, 0 … count−1; −1 for rows left out
    sizes: np.ndarray  # int64 per class
    left_out: int = 0  # rows in no class (missing="ignore" only)

    @property
    def count(self) -> int:
        return int(self.sizes.size)

    @property
    def k(self) -> int:
        """The smallest class size (0 when there are no classes)."""
        return int(self.sizes.min()) if self.sizes.size else 0

    @property
    def rows(self) -> int:
        """Rows in some class."""
        return int(self.sizes.sum())

    def row_sizes(self) -> np.ndarray:
        """The size of each row's class (0 for rows left out)."""
        out = np.zeros(self.ids.size, dtype=np.int64)
        inside = self.ids >= 0
        out[inside] = self.sizes[self.ids[inside]]
        return out


def column_codes(series: pl.Series) -> ColumnCodes:
    """Dense codes for one column; refuses types that hold several values per cell."""
    s = _comparable(series)
    missing = s.null_count()
    if s.len() == missing:
        return ColumnCodes(np.zeros(s.len(), dtype=np.int64), 1, missing)
    if s.dtype.is_integer():
        lo, hi = int(s.min()), int(s.max())  # type: ignore[arg-type]
        if hi - lo <= _DIRECT_RANGE * max(s.len(), 1):
            values = s.cast(pl.Int64).fill_null(lo - 1).to_numpy()
            return ColumnCodes(values - (lo - 1), hi - lo + 2, missing)
    if s.dtype == pl.String:
        levels = s.drop_nulls().unique().sort()
        codes = s.cast(pl.Enum(levels)).to_physical().cast(pl.Int64) + 1
        return ColumnCodes(codes.fill_null(0).to_numpy(), levels.len() + 1, missing)
    ranks = s.rank("dense").cast(pl.Int64)
    return ColumnCodes(ranks.fill_null(0).to_numpy(), int(ranks.max() or 0) + 1, missing)  # type: ignore[arg-type]


def _comparable(series: pl.Series) -> pl.Series:
    """The column in a type with a total order and nulls for every missing value."""
    dtype = series.dtype
    if dtype in (pl.List, pl.Array, pl.Struct, pl.Object) or isinstance(
            dtype, pl.List | pl.Array | pl.Struct | pl.Object):
        raise Invalid(f"column {series.name!r} holds {dtype} values, several per cell; "
                      f"give one value per cell (one column per array slot)")
    if dtype.is_float():
        return series.fill_nan(None)
    if dtype == pl.Boolean:
        return series.cast(pl.Int8)
    if isinstance(dtype, pl.Categorical | pl.Enum) or dtype in (pl.Categorical, pl.Enum):
        return series.cast(pl.String)
    if dtype.is_decimal():
        return series.cast(pl.Float64)
    if dtype.is_temporal():
        return series.to_physical()
    return series


def combine(columns: Sequence[ColumnCodes], rows: int) -> tuple[np.ndarray, int]:
    """One integer key per row from several columns' codes, and the key's cardinality.

    The key is made dense again (order kept) whenever the next column would take it past a
    few times the rows, so that :func:`densify` counts instead of sorting."""
    key = np.zeros(rows, dtype=np.int64)
    cardinality = 1
    direct = _DIRECT_RANGE * max(rows, 1)
    for column in columns:
        grown = cardinality * column.cardinality
        if grown >= _KEY_LIMIT or (grown > direct and 1 < cardinality <= direct):
            key, cardinality = densify(key, cardinality)
        key = key * column.cardinality + column.codes
        cardinality *= column.cardinality
    return key, cardinality


def densify(key: np.ndarray, cardinality: int) -> tuple[np.ndarray, int]:
    """Codes 0 … m−1 in key order for the m distinct keys."""
    if cardinality <= _DIRECT_RANGE * max(key.size, 1):
        present = np.bincount(key, minlength=cardinality) > 0
        remap = np.cumsum(present) - 1
        return remap[key], int(present.sum())
    unique, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.int64, copy=False), int(unique.size)


def classes_of_key(key: np.ndarray, cardinality: int) -> Classes:
    """Class ids (in key order) and sizes for a per-row key."""
    ids, count = densify(key, cardinality)
    return Classes(ids, np.bincount(ids, minlength=count).astype(np.int64))


def equivalence_classes(frame: pl.DataFrame, columns: Sequence[str],
                        missing: Missing = "value") -> Classes:
    """The equivalence classes of ``frame`` over ``columns`` (vectorised)."""
    check_columns(frame, columns, "quasi-identifier")
    if missing not in MISSING_POLICIES:
        raise Invalid(f"missing must be one of {', '.join(MISSING_POLICIES)}, not {missing!r}")
    codes = [column_codes(frame[c]) for c in columns]
    key, cardinality = combine(codes, frame.height)
    if missing == "value" or not any(c.missing for c in codes):
        return classes_of_key(key, cardinality)
    absent = np.zeros(frame.height, dtype=bool)
    for column in codes:
        absent |= column.codes == 0
    inner = classes_of_key(key[~absent], cardinality)
    ids = np.full(frame.height, -1, dtype=np.int64)
    ids[~absent] = inner.ids
    return Classes(ids, inner.sizes, int(absent.sum()))


def check_columns(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    """Refuse names the table does not have, or names given twice."""
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise Invalid(f"{what} column(s) {', '.join(map(repr, absent))} are not in the table; "
                      f"its columns are {', '.join(frame.columns[:30])}"
                      f"{' …' if frame.width > 30 else ''}")
    twice = sorted({c for c in columns if list(columns).count(c) > 1})
    if twice:
        raise Invalid(f"{what} column(s) {', '.join(map(repr, twice))} are named twice")
