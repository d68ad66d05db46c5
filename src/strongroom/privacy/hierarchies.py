"""Generalisation hierarchies: for each quasi-identifier, the levels it may be coarsened to.

A hierarchy is data: a column name and a tuple of levels, level 0 being the values as they
are and the last one ``*`` (any value). Each level is a rule applied to whole columns at once,
and each is a coarsening of the one below it (values that share a label at one level share it
at every level above), which is what makes the anonymisation lattice monotone.

From the data dictionary (``for_column``):

| field | levels |
|---|---|
| year of birth (34) | year, 5-year band, 10-year band, 20-year band, * |
| month of birth (52) | month, quarter, * |
| dates (``Role.EVENT_DATE`` and every date field) | day, month, quarter, year, * |
| ICD-10 codes (coding 19) | code, 3-character category, block, chapter, * |
| Townsend deprivation index (189) | value, quintile (of the table's values), * |
| ethnic background (21000) | code, group (White, Mixed, Asian, Black, Chinese, other), * |
| assessment centre (54) | centre, nation (England, Scotland, Wales), * |
| other numbers | value, bands of w, 2w and 4w (w a round number, about 16 bands), * |
| other categories and text | value, * |

Bands start at 0 (``Bands.origin``) unless an extract's key chose another origin inside the
narrowest band (``with_origin``, ``origin_grid``; ``gate.check(..., origins=...)``): the
widths, level names and label format stay the same.

ICD-10 chapter ranges are the WHO's (public facts); blocks are read from the dictionary's
coding 19 (the "Block A00-A09" entries). A missing value stays missing at every level below
``*``; at ``*`` every row reads the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Dictionary, Field, Role, ValueType
from strongroom.errors import Invalid
from strongroom.privacy.classes import check_columns
from strongroom.privacy.fields import field_of

ANY = "*"
TARGET_BANDS = 16  # the first band level aims at about this many bands over the range
ICD10_CODING = 19
ETHNICITY_FIELD = 21000
CENTRE_FIELD = 54
YEAR_OF_BIRTH_FIELD = 34
MONTH_OF_BIRTH_FIELD = 52
TOWNSEND_FIELD = 189

# WHO ICD-10 (2019) chapters: first and last 3-character category of each.
ICD10_CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("A00", "B99", "I"), ("C00", "D48", "II"), ("D50", "D89", "III"), ("E00", "E90", "IV"),
    ("F00", "F99", "V"), ("G00", "G99", "VI"), ("H00", "H59", "VII"), ("H60", "H95", "VIII"),
    ("I00", "I99", "IX"), ("J00", "J99", "X"), ("K00", "K93", "XI"), ("L00", "L99", "XII"),
    ("M00", "M99", "XIII"), ("N00", "N99", "XIV"), ("O00", "O99", "XV"), ("P00", "P96", "XVI"),
    ("Q00", "Q99", "XVII"), ("R00", "R99", "XVIII"), ("S00", "T98", "XIX"),
    ("U00", "U99", "XXII"), ("V01", "Y98", "XX"), ("Z00", "Z99", "XXI"),
)
# UK Biobank assessment centres outside England (coding 10), by nation.
CENTRE_NATIONS: dict[str, str] = {
    "11003": "Wales", "11022": "Wales", "11023": "Wales",
    "11004": "Scotland", "11005": "Scotland",
}
_ICD10 = re.compile(r"[A-Z][0-9]{2}[0-9A-Z]{0,4}")


# -- rules: one per kind of level -------------------------------------------------------------

@dataclass(frozen=True)
class Keep:
    """The values as they are."""

    def apply(self, series: pl.Series) -> pl.Series:
        return series

    def describe(self) -> str:
        return "as recorded"


@dataclass(frozen=True)
class Everything:
    """Every row reads ``*``."""

    def apply(self, series: pl.Series) -> pl.Series:
        return pl.Series(series.name, [ANY] * series.len(), dtype=pl.String)

    def describe(self) -> str:
        return "any value (*)"


@dataclass(frozen=True)
class Bands:
    """Numbers in bands ``[origin + i·width, origin + (i+1)·width)``.

    Every band level of one column shares its origin, so bands of w, 2w and 4w still nest.
    The origin is 0 unless an extract's key chose another (``with_origin``).
    """

    width: float
    integer: bool  # label integer bands "1950–1954", others "[1.5, 2)"
    origin: float = 0.0

    def apply(self, series: pl.Series) -> pl.Series:
        values = series.cast(pl.Float64).fill_nan(None)
        low = (((values - self.origin) / self.width + 1e-9).floor() * self.width
               + self.origin)
        if self.integer:
            lo = low.cast(pl.Int64)
            labels = lo.cast(pl.String) + "–" + (lo + int(self.width) - 1).cast(pl.String)
        else:
            labels = ("[" + low.round(9).cast(pl.String) + ", "
                      + (low + self.width).round(9).cast(pl.String) + ")")
        return labels.alias(series.name)

    def describe(self) -> str:
        return f"bands of {_fmt(self.width)}"


@dataclass(frozen=True)
class Quantiles:
    """Numbers in quantile groups of the table's values: Q1 … Qn, edges fixed when built."""

    edges: tuple[float, ...]  # inner cut points, ascending

    def apply(self, series: pl.Series) -> pl.Series:
        values = series.cast(pl.Float64).fill_nan(None)
        names = pl.Series([f"Q{g}" for g in range(1, len(self.edges) + 2)])
        group = np.searchsorted(np.asarray(self.edges), values.to_numpy(), side="left")
        labels = names.gather(np.minimum(group, names.len() - 1))
        return pl.select(pl.when(values.is_null()).then(None).otherwise(labels)
                         ).to_series().alias(series.name)

    def describe(self) -> str:
        return f"{len(self.edges) + 1} quantile groups"


@dataclass(frozen=True)
class DatePart:
    """A date truncated to its month, quarter or year."""

    part: str  # "month" | "quarter" | "year"

    def apply(self, series: pl.Series) -> pl.Series:
        dates = series if series.dtype == pl.Date else series.cast(pl.Date, strict=False)
        year = dates.dt.year().cast(pl.String)
        if self.part == "year":
            out = year
        elif self.part == "quarter":
            out = year + "-Q" + dates.dt.quarter().cast(pl.String)
        else:
            out = year + "-" + dates.dt.month().cast(pl.String).str.zfill(2)
        return out.alias(series.name)

    def describe(self) -> str:
        return self.part


@dataclass(frozen=True)
class Lookup:
    """Values mapped to groups by a table; values not in it keep a label of their own."""

    name: str
    mapping: Mapping[str, str]
    other: str | None = None  # label for values not in the table (None: the value itself)

    def apply(self, series: pl.Series) -> pl.Series:
        text = _as_text(series)
        if self.other is None:
            return text.replace(dict(self.mapping)).alias(series.name)
        return text.replace_strict(dict(self.mapping), default=self.other,
                                   return_dtype=pl.String).alias(series.name)

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class Icd10:
    """ICD-10 codes to their 3-character category, block or chapter."""

    part: str  # "category" | "block" | "chapter"
    blocks: tuple[tuple[str, str], ...] = ()  # (first, last) category of each block

    def apply(self, series: pl.Series) -> pl.Series:
        text = _as_text(series).str.strip_chars().str.to_uppercase().str.replace(r"\.", "")
        category = text.str.slice(0, 3)
        if self.part == "category":
            return category.alias(series.name)
        unique = category.drop_nulls().unique()
        keys = np.array([_icd_key(c) for c in unique.to_list()], dtype=np.int64)
        if self.part == "chapter":
            labels = _ranges(keys, [(a, b) for a, b, _ in ICD10_CHAPTERS],
                             [f"Chapter {n}" for _, _, n in ICD10_CHAPTERS])
        else:
            labels = _ranges(keys, list(self.blocks), [f"{a}-{b}" for a, b in self.blocks])
        mapping = dict(zip(unique.to_list(), labels, strict=True))
        return category.replace_strict(mapping, default=None,
                                       return_dtype=pl.String).alias(series.name)

    def describe(self) -> str:
        return f"ICD-10 {self.part}"


Rule = Keep | Everything | Bands | Quantiles | DatePart | Lookup | Icd10


def _fmt(value: float) -> str:
    return f"{value:g}"


def _as_text(series: pl.Series) -> pl.Series:
    if series.dtype == pl.String:
        return series
    if series.dtype.is_float():
        floats = series.fill_nan(None)
        whole = floats.drop_nulls()
        if whole.len() and bool((whole == whole.round(0)).all()):
            return floats.cast(pl.Int64).cast(pl.String)
        return floats.cast(pl.String)
    return series.cast(pl.String)


def _icd_key(category: str) -> int:
    """A sortable number for a 3-character category (A00 → 0, Z99 → 2599); −1 if not one."""
    if len(category) < 3 or not category[0].isalpha() or not category[1:3].isdigit():
        return -1
    return (ord(category[0]) - ord("A")) * 100 + int(category[1:3])


def _ranges(keys: np.ndarray, ranges: Sequence[tuple[str, str]], labels: Sequence[str]
            ) -> list[str]:
    """The label of the range each key falls in ("other" outside every range)."""
    starts = np.array([_icd_key(a) for a, _ in ranges], dtype=np.int64)
    ends = np.array([_icd_key(b) for _, b in ranges], dtype=np.int64)
    order = np.argsort(starts)
    starts, ends = starts[order], ends[order]
    ordered = [labels[i] for i in order]
    at = np.searchsorted(starts, keys, side="right") - 1
    out = []
    for key, i in zip(keys.tolist(), at.tolist(), strict=True):
        out.append(ordered[i] if key >= 0 and i >= 0 and key <= ends[i] else "other")
    return out


# -- hierarchies ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Level:
    name: str
    rule: Rule


@dataclass(frozen=True)
class Hierarchy:
    """A column's levels, from the values as recorded (0) to ``*`` (the last)."""

    column: str
    levels: tuple[Level, ...]
    source: str = ""  # where the levels come from (a field, the column's type, a table)

    @property
    def height(self) -> int:
        return len(self.levels)

    def apply(self, series: pl.Series, level: int) -> pl.Series:
        """The column at ``level``: vectorised; missing stays missing below ``*``."""
        if not 0 <= level < self.height:
            raise Invalid(f"{self.column} has levels 0–{self.height - 1}, not {level}")
        return self.levels[level].rule.apply(series).alias(series.name)

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "source": self.source,
                "levels": [{"level": i, "name": lv.name, "rule": lv.rule.describe()}
                           for i, lv in enumerate(self.levels)]}

    @classmethod
    def from_table(cls, column: str, rows: Sequence[Sequence[str]],
                   names: Sequence[str] | None = None) -> Hierarchy:
        """ARX's layout: one row per value, ``value;level1;…;*``; every row as long."""
        widths = {len(r) for r in rows}
        if len(widths) != 1 or min(widths) < 2:
            raise Invalid(f"the hierarchy for {column} needs rows of equal length (value, "
                          f"then one label per level)")
        height = widths.pop()
        levels = [Level(names[0] if names else "value", Keep())]
        for i in range(1, height):
            mapping = {str(r[0]): str(r[i]) for r in rows}
            name = names[i] if names and i < len(names) else f"level {i}"
            if {*mapping.values()} == {ANY}:
                levels.append(Level(ANY, Everything()))
            else:
                levels.append(Level(name, Lookup(name, mapping)))
        if not isinstance(levels[-1].rule, Everything):
            levels.append(Level(ANY, Everything()))
        return cls(column, tuple(levels), "table")


def _top(levels: list[Level]) -> tuple[Level, ...]:
    return (*levels, Level(ANY, Everything()))


def year_of_birth(column: str) -> Hierarchy:
    return Hierarchy(column, _top([Level("year", Keep()),
                                   Level("5-year band", Bands(5, integer=True)),
                                   Level("10-year band", Bands(10, integer=True)),
                                   Level("20-year band", Bands(20, integer=True))]),
                     "year of birth")


def month(column: str) -> Hierarchy:
    quarters = {str(m): f"Q{(m - 1) // 3 + 1}" for m in range(1, 13)}
    return Hierarchy(column, _top([Level("month", Keep()),
                                   Level("quarter", Lookup("quarter", quarters))]),
                     "month")


def dates(column: str) -> Hierarchy:
    return Hierarchy(column, _top([Level("day", Keep()), Level("month", DatePart("month")),
                                   Level("quarter", DatePart("quarter")),
                                   Level("year", DatePart("year"))]), "date")


def icd10(column: str, dictionary: Dictionary | None = None) -> Hierarchy:
    blocks = _icd10_blocks(dictionary)
    levels = [Level("code", Keep()), Level("category", Icd10("category"))]
    if blocks:
        levels.append(Level("block", Icd10("block", blocks)))
    levels.append(Level("chapter", Icd10("chapter")))
    return Hierarchy(column, _top(levels), "ICD-10")


def _icd10_blocks(dictionary: Dictionary | None) -> tuple[tuple[str, str], ...]:
    coding = dictionary.codings.get(ICD10_CODING) if dictionary else None
    if coding is None:
        return ()
    found = []
    for code in coding.codes:
        if code.startswith("Block "):
            first, _, last = code[6:].partition("-")
            if _icd_key(first) >= 0 and _icd_key(last) >= 0:
                found.append((first, last))
    return tuple(sorted(found, key=lambda b: _icd_key(b[0])))


def quintiles(column: str, series: pl.Series) -> Hierarchy:
    values = series.cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
    edges = tuple(float(e) for e in np.quantile(values, [0.2, 0.4, 0.6, 0.8])) if \
        values.size else ()
    return Hierarchy(column, _top([Level("value", Keep()),
                                   Level("quintile", Quantiles(tuple(sorted(set(edges)))))]),
                     "quintiles")


def ethnicity(column: str, dictionary: Dictionary) -> Hierarchy:
    coding = dictionary.codings.get(1001)
    codes = coding.codes if coding else {}
    groups = {code: codes.get(code[0], code) if len(code) == 4 and code[0] in codes
              else ("not stated" if code.startswith("-") else codes.get(code, code))
              for code in codes}
    return Hierarchy(column, _top([Level("code", Keep()),
                                   Level("group", Lookup("ethnic group", groups))]),
                     "ethnic background")


def centre(column: str, dictionary: Dictionary) -> Hierarchy:
    coding = dictionary.codings.get(10)
    codes = coding.codes if coding else {}
    nations = {code: CENTRE_NATIONS.get(code, "England") for code in codes}
    return Hierarchy(column, _top([Level("centre", Keep()),
                                   Level("nation", Lookup("nation", nations))]),
                     "assessment centre")


def numeric_bands(column: str, series: pl.Series, integer: bool) -> Hierarchy:
    """Value, then nested bands of w, 2w, 4w with w a round number, then *."""
    values = series.cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
    span = float(values.max() - values.min()) if values.size else 0.0
    width = _round_width(span / TARGET_BANDS, integer)
    levels = [Level("value", Keep())]
    if span > 0:
        levels += [Level(f"bands of {_fmt(w)}", Bands(w, integer=integer))
                   for w in (width, 2 * width, 4 * width)]
    return Hierarchy(column, _top(levels), "numeric bands")


def _round_width(raw: float, integer: bool) -> float:
    """The smallest of 1, 2, 5 × 10ⁿ at or above ``raw`` (at least 2 for integers)."""
    if raw <= 0:
        return 2.0 if integer else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    width = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-12))
    return max(width, 2.0) if integer else width


def band_widths(hierarchy: Hierarchy) -> list[float]:
    """The widths of the hierarchy's band levels, narrowest first (none: it has no bands)."""
    return sorted(lv.rule.width for lv in hierarchy.levels if isinstance(lv.rule, Bands))


def with_origin(hierarchy: Hierarchy, origin: float) -> Hierarchy:
    """The same hierarchy with every band level starting at ``origin`` (so they still nest:
    each width is a multiple of the narrowest, and ``origin`` is below the narrowest)."""
    levels = tuple(Level(lv.name, replace(lv.rule, origin=origin))
                   if isinstance(lv.rule, Bands) else lv for lv in hierarchy.levels)
    return Hierarchy(hierarchy.column, levels, hierarchy.source)


def origin_grid(width: float, unit: float, choices: int) -> tuple[float, ...]:
    """``choices`` band origins on the column's ``unit`` grid, strictly inside (0, ``width``)
    and spread over it: ``⌊u·n/(choices + 1)⌋`` units for u = 1 … choices, n = width / unit.

    Empty when the narrowest band holds fewer than ``choices + 1`` units (or is not a whole
    number of them): such a column keeps origin 0. Origin 0 itself is never offered: it is
    what every un-keyed tool produces, so a copy at origin 0 says nothing of its source.
    """
    if unit <= 0 or width <= 0:
        return ()
    n = round(width / unit)
    if n < choices + 1 or abs(n * unit - width) > 1e-9 * width:
        return ()
    return tuple(round((u * n // (choices + 1)) * unit, 12) for u in range(1, choices + 1))


def categories(column: str) -> Hierarchy:
    return Hierarchy(column, _top([Level("value", Keep())]), "categories")


# -- choosing a hierarchy for a column --------------------------------------------------------

def for_field(column: str, fld: Field, dictionary: Dictionary, series: pl.Series) -> Hierarchy:
    """The hierarchy the dictionary implies for one column of field ``fld``."""
    if fld.field_id == YEAR_OF_BIRTH_FIELD:
        return year_of_birth(column)
    if fld.field_id == MONTH_OF_BIRTH_FIELD:
        return month(column)
    if fld.field_id == TOWNSEND_FIELD:
        return quintiles(column, series)
    if fld.field_id == ETHNICITY_FIELD:
        return ethnicity(column, dictionary)
    if fld.field_id == CENTRE_FIELD:
        return centre(column, dictionary)
    if fld.value_type == ValueType.DATE or (fld.role == Role.EVENT_DATE
                                            and series.dtype.is_temporal()):
        return dates(column)
    if fld.coding_id == ICD10_CODING:
        return icd10(column, dictionary)
    if fld.is_numeric and series.dtype.is_numeric():
        return numeric_bands(column, series,
                             integer=fld.value_type == ValueType.INTEGER or fld.precision == 0)
    return categories(column)


def for_series(column: str, series: pl.Series, dictionary: Dictionary | None = None
               ) -> Hierarchy:
    """A hierarchy from the column's type alone (files that are not in the dictionary)."""
    dtype = series.dtype
    if dtype == pl.Date or dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
        return dates(column)
    if dtype.is_integer():
        return numeric_bands(column, series, integer=True)
    if dtype.is_float():
        return numeric_bands(column, series, integer=False)
    if dtype == pl.String and _looks_like_icd10(series):
        return icd10(column, dictionary)
    return categories(column)


def _looks_like_icd10(series: pl.Series) -> bool:
    sample = series.drop_nulls().unique().head(1000).to_list()
    return bool(sample) and sum(bool(_ICD10.fullmatch(str(v).replace(".", "")))
                                for v in sample) >= 0.9 * len(sample)


@dataclass(frozen=True)
class Hierarchies:
    """The hierarchy of every quasi-identifier column, and, for dictionary columns, the field
    each belongs to (columns of one field are generalised together)."""

    by_column: dict[str, Hierarchy]
    groups: dict[str, list[str]] = field(default_factory=dict)  # attribute -> its columns

    def attributes(self) -> list[str]:
        return list(self.groups) if self.groups else list(self.by_column)

    def columns_of(self, attribute: str) -> list[str]:
        return self.groups.get(attribute, [attribute])


def build(frame: pl.DataFrame, columns: Sequence[str], dictionary: Dictionary | None = None,
          overrides: Mapping[str, Hierarchy] | None = None) -> Hierarchies:
    """Hierarchies for ``columns``: given ones first, then the dictionary's, then by type.

    Columns of the same dictionary field form one attribute (one level for all of them);
    their bands are cut from their pooled values so that the levels line up.
    """
    check_columns(frame, columns, "quasi-identifier")
    groups: dict[str, list[str]] = {}
    found: dict[str, Field | None] = {}
    for column in columns:
        fld = field_of(column, dictionary) if dictionary else None
        found[column] = fld
        given = overrides is not None and column in overrides
        attribute = f"field {fld.field_id}" if fld is not None and not given else column
        groups.setdefault(attribute, []).append(column)
    by_column: dict[str, Hierarchy] = {}
    for members in groups.values():
        pooled = (pl.concat([frame[m].cast(pl.Float64, strict=False) for m in members])
                  if len(members) > 1 else None)
        for column in members:
            fld = found[column]
            if overrides and column in overrides:
                by_column[column] = overrides[column]
            elif fld is not None and dictionary is not None:
                by_column[column] = for_field(column, fld, dictionary,
                                              frame[column] if pooled is None else pooled)
            else:
                by_column[column] = for_series(column, frame[column], dictionary)
    return Hierarchies(by_column, groups)
