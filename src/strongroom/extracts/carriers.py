"""Which columns carry fingerprint marks, with what amplitude, and embedding on typed values.

A mark moves one cell by ``±δ`` where ``δ`` is one unit of the column's recorded precision
(``Field.precision`` decimals): the marked value is still a value the instrument could have
recorded, on the same grid, with the same type. A column carries marks only when

- it is a measurement (``Role.MEASUREMENT``), or its field is explicitly allow-listed — never
  sex, ethnicity, codes, dates or identifiers unless the custodian allow-lists the field;
- it is numeric (integer or continuous) with a recorded precision, and its values lie on that
  grid (a column whose values are not on the grid would betray the marks) — or it is an
  allow-listed date (below);
- one unit of precision is at most 0.5% of the column's standard deviation (in the data being
  extracted), so a mark is far below any clinically or statistically meaningful change.

Cells whose marked value could leave the column's observed range (its minimum or maximum,
within one unit) are left unmarked, so an extract's range is the cohort's.

**Sparse marks** carry coarse measurements whose unit is above 0.5% of the SD (integers such
as blood pressure or pulse, waist to the centimetre, height and weight to 0.1): only a keyed
share ``f`` (the carrier's *density*) of their cells is marked, ``±δ`` as above, with
``f·δ² ≤ VAR_SHARE·SD²`` (2.5·10⁻⁶) and ``f ≤ MAX_DENSITY`` (10%). That bound is set by
regressions, not by means or correlations: any independent perturbation of a predictor
attenuates its coefficient by ``f·δ²/SD²``, and the reference regressions' standard errors
shrink with ``n`` (measured at 50,000 participants: at 5·10⁻⁴, ±1 marks on 5–10% of
blood-pressure cells kept |Δmean| ≤ 2·10⁻⁴ SD and |Δcorr| ≤ 5·10⁻⁴ but moved a coefficient by
0.08 SE; at 2.5·10⁻⁵, height marked in 10% of cells moved the weight-on-height-and-BMI
regression by 0.05 SE; the shift grows as √n). The mean moves by ``0 ± δ·√(f/n)``. Which
cells are marked is drawn once, system-wide, from the bias key (every recipient marks the same
cells, as with the biases), so a single copy does not show them.
A column needing a density below ``MIN_DENSITY`` (1%) carries none.

**Dates** carry marks only when the custodian allow-lists their field (day-level dates
allowed for this extract): a date is read as whole days since 1970-01-01, ``δ`` is one day, and
the marks are always sparse, with the density of the same rule (an SD of hundreds of days
puts it at the cap, ``MAX_DENSITY``). The column stays a date column (``pl.Date`` in and out;
``kind`` is ``"date"`` in the manifest). A date is a quasi-identifier, so the extract is marked
before the risk gate measures k (``service.create_extract``): the file, marks included, is what
meets k.

*On a month's edges* (``edges``, issue 57; carriers made before it have none): where the
rule allows at least ``EDGE_SHARE`` of the cells (2 days in 30.4, 6.6%: dates whose SD is
over about 160 days), every date on the first or last day of its month is marked, and the
rest of the rule's share is a keyed share (``density``) of the other days. An edge mark moves
its date across the month's edge or not by the recipient's symbol (the 31st to the 1st, or to
the 30th; the 1st to the 2nd, or to the 31st before), so a copy whose dates were truncated to
their month still shows every edge mark: truncation, the cheapest way to blur a date, no
longer erases them (a quarter keeps a third of them, a year a twelfth). Month counts move by
the marks that cross, in both directions (measured in ``benchmarks/extracts.py``); the mean
and SD as for any sparse mark.

Utility: each marked cell moves by ``(2x − 1)·δ`` with ``x ~ Bernoulli(p)`` and ``p``
symmetric about 1/2 over positions, so the mean shift is ``0 ± δ/√n`` (≤ 0.005 SD/√n) and the
variance grows by ``δ²`` (≤ 2.5·10⁻⁵ of the variance): correlations change by well under 10⁻³
and regression coefficients by a small fraction of a standard error (measured in
``benchmarks/extracts.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Dictionary, Role, ValueType
from strongroom.cohort.model import EID, parse_column_name
from strongroom.extracts import codes

MAX_SHARE_OF_SD = 0.005  # δ ≤ 0.5% of the column's SD
ON_GRID = 0.999  # share of a column's values that must lie on its recorded grid
MIN_VALUES = 20  # fewer values than this: no meaningful SD, no marks
VAR_SHARE = 2.5e-6  # sparse marks: f·δ² ≤ this share of the column's variance …
MAX_DENSITY = 0.1  # … marking at most this share of its cells …
MIN_DENSITY = 0.01  # … and at least this share, or none
NUMBER, DATE = "number", "date"  # what a carrier's values are (dates: whole days since 1970)
ORDER = "order"  # the order of a multi-answer field's codes (``orders.py``): no value moves
DAY = 1.0  # a date carrier's amplitude: one day
EDGE_SHARE = 24 / 365.25  # dates on the first or last day of their month


def as_numbers(series: pl.Series) -> np.ndarray:
    """``series`` as float64 with NaN where missing; dates (and date-times) as whole days
    since 1970-01-01, which is how carriers, linkage and detection compare them."""
    if series.dtype == pl.Datetime:
        series = series.cast(pl.Date)
    if series.dtype == pl.Date:
        series = series.cast(pl.Int32)
    out: np.ndarray = series.cast(pl.Float64).fill_nan(None).fill_null(np.nan).to_numpy()
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class Carrier:
    """One column that carries marks, and everything detection needs to read them back."""

    column: str
    field_id: int
    decimals: int  # recorded precision
    amplitude: float  # δ: one unit of recorded precision
    sd: float  # the column's SD when the extract was made
    low: float  # observed minimum: cells within δ of it stay unmarked
    high: float  # observed maximum
    density: float = 1.0  # share of cells marked (keyed, system-wide); 1 for fine columns
    kind: str = NUMBER  # NUMBER, or DATE: values are whole days since 1970-01-01
    edges: bool = False  # dates: only the first and last day of a month are marked

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.density >= 1.0:
            del out["density"]  # manifests of full-density carriers read as they always did
        if self.kind == NUMBER:
            del out["kind"]  # as do numeric carriers' (every manifest before date carriers)
        if not self.edges:
            del out["edges"]  # and date carriers made before marks on a month's edges
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Carrier:
        return cls(column=str(data["column"]), field_id=int(data["field_id"]),
                   decimals=int(data["decimals"]), amplitude=float(data["amplitude"]),
                   sd=float(data["sd"]), low=float(data["low"]), high=float(data["high"]),
                   density=float(data.get("density", 1.0)),
                   kind=_kind(str(data.get("kind", NUMBER))),
                   edges=bool(data.get("edges", False)))

    def chosen(self, bias_key: bytes, eids: np.ndarray) -> np.ndarray:
        """Which participants' cells of this column are marked at all (all, at density 1)."""
        eids = np.asarray(eids, dtype=np.int64)
        if self.density >= 1.0:
            return np.ones(len(eids), dtype=np.bool_)
        tag = np.array(codes.column_tag("\0density " + self.column), dtype=np.uint64)
        return codes.prf_u32(bias_key, eids, tag) < np.uint32(round(self.density * codes.SCALE))

    def markable(self, master: np.ndarray) -> np.ndarray:
        """Which master values get a mark (present, and a step from the range's ends)."""
        values = np.asarray(master, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            out: np.ndarray = (~np.isnan(values)
                               & (values - self.amplitude >= self.low - self.amplitude / 2)
                               & (values + self.amplitude <= self.high + self.amplitude / 2))
        return out

    def marked(self, bias_key: bytes, eids: np.ndarray, master: np.ndarray,
               among: np.ndarray | None = None) -> np.ndarray:
        """Which cells carry a mark (``among`` them, when given): markable and chosen; on a
        carrier with ``edges``, every markable date on a month's edge, and a keyed share
        ``density`` of the others."""
        eids = np.asarray(eids, dtype=np.int64)
        out = self.markable(master)
        if among is not None:
            out &= among
        edge = out & month_edge(master) if self.edges else None
        if edge is not None:
            out &= ~edge
        out[out] = self.chosen(bias_key, eids[out])
        if edge is not None:
            out |= edge
        return out


def month_edge(days: np.ndarray) -> np.ndarray:
    """Whether each date (whole days since 1970-01-01; NaN: no) is the first or last day of
    its month."""
    days = np.asarray(days, dtype=np.float64)
    present = np.isfinite(days)
    whole = np.where(present, days, 0.0).astype(np.int64)
    month = whole.astype("datetime64[D]").astype("datetime64[M]")
    first = month.astype("datetime64[D]").astype(np.int64)
    last = (month + 1).astype("datetime64[D]").astype(np.int64) - 1
    out: np.ndarray = present & ((whole == first) | (whole == last))
    return out


def _kind(kind: str) -> str:
    if kind not in (NUMBER, DATE, ORDER):
        raise ValueError(f"a carrier's kind is {NUMBER!r}, {DATE!r} or {ORDER!r}, not "
                         f"{kind!r}: the manifest was written by a newer version or altered")
    return kind


@dataclass(frozen=True)
class Choice:
    """The carriers chosen among an extract's columns, and why each other column is not one."""

    carriers: list[Carrier]
    skipped: dict[str, str]  # column -> reason


def _on_grid(values: np.ndarray, decimals: int) -> float:
    scaled = values * 10.0**decimals
    return float(np.mean(np.abs(scaled - np.rint(scaled)) <= 1e-6 + 4e-16 * np.abs(scaled)))


def choose(frame: pl.DataFrame, dictionary: Dictionary, columns: Iterable[str],
           allow: Iterable[int] = ()) -> Choice:
    """The columns of ``frame`` (storage names) that may carry marks, with reasons for others.

    ``allow`` lists field ids that may carry marks although they are not measurements; they
    must still be numeric, on their grid and fine enough — or dates (``pl.Date`` columns),
    which then carry sparse ±1-day marks.
    """
    allowed = set(allow)
    carriers: list[Carrier] = []
    skipped: dict[str, str] = {}
    for column in columns:
        try:
            key = parse_column_name(column, dictionary)
        except (ValueError, KeyError):
            skipped[column] = "not a cohort column"
            continue
        fld = dictionary.field(key.field_id)
        if fld.role is not Role.MEASUREMENT and fld.field_id not in allowed:
            skipped[column] = f"role is {fld.role.value}, not measurement (and not allow-listed)"
            continue
        if fld.value_type is ValueType.DATE:
            found = _date_carrier(frame[column], fld.field_id)
        elif fld.value_type not in (ValueType.INTEGER, ValueType.CONTINUOUS):
            found = f"value type is {fld.value_type.value}, not numeric or a date"
        elif fld.precision is None:
            found = "the dictionary records no precision for it"
        else:
            found = _numeric_carrier(frame[column], fld.field_id, fld.precision)
        if isinstance(found, str):
            skipped[column] = found
        else:
            carriers.append(found)
    return Choice(carriers, skipped)


def _sparse_density(sd: float, amplitude: float) -> float | str:
    """The share of cells a coarse column may mark (``f·δ² ≤ VAR_SHARE·SD²``, at most
    ``MAX_DENSITY``), or why it may mark none."""
    density = min(MAX_DENSITY, VAR_SHARE * sd * sd / amplitude**2) if sd > 0 else 0.0
    if density < MIN_DENSITY:
        share = amplitude / sd if sd > 0 else float("inf")
        return (f"one unit of recorded precision ({amplitude:g}) is {share:.2%} of its SD: "
                f"even {MIN_DENSITY:.0%} of its cells marked would move its variance by more "
                f"than {VAR_SHARE:g} of itself")
    return math.floor(density * 1e6) / 1e6


def _numeric_carrier(series: pl.Series, field_id: int, decimals: int) -> Carrier | str:
    values = as_numbers(series)
    values = values[~np.isnan(values)]
    if len(values) < MIN_VALUES:
        return f"fewer than {MIN_VALUES} values"
    amplitude = 10.0 ** -decimals
    sd = float(np.std(values, ddof=1))
    density = 1.0
    if not amplitude <= MAX_SHARE_OF_SD * sd:
        sparse = _sparse_density(sd, amplitude)
        if isinstance(sparse, str):
            return sparse
        density = sparse
    if _on_grid(values, decimals) < ON_GRID:
        return f"its values are not on its recorded grid ({decimals} decimals)"
    return Carrier(column=str(series.name), field_id=field_id, decimals=decimals,
                   amplitude=amplitude, sd=sd, low=float(values.min()),
                   high=float(values.max()), density=density)


def _date_carrier(series: pl.Series, field_id: int) -> Carrier | str:
    """An allow-listed date: sparse ±1-day marks, whatever its SD (a day is a fine unit for
    dates that span years, but a date is also a quasi-identifier: mark as few as the rule
    allows, never every cell)."""
    if series.dtype != pl.Date:
        return (f"a date field stored as {series.dtype}, not as dates: its values cannot be "
                f"moved by a day and stay what they were")
    values = as_numbers(series)
    values = values[~np.isnan(values)]
    if len(values) < MIN_VALUES:
        return f"fewer than {MIN_VALUES} values"
    sd = float(np.std(values, ddof=1))
    density = _sparse_density(sd, DAY)
    if isinstance(density, str):
        return density
    low, high = float(values.min()), float(values.max())
    if density < EDGE_SHARE:  # too few marks for every edge: a keyed share of all cells
        return Carrier(column=str(series.name), field_id=field_id, decimals=0, amplitude=DAY,
                       sd=sd, low=low, high=high, density=density, kind=DATE)
    # every date on a month's edge, and the rest of the rule's share from the other days
    rest = math.floor((density - EDGE_SHARE) / (1 - EDGE_SHARE) * 1e6) / 1e6
    return Carrier(column=str(series.name), field_id=field_id, decimals=0, amplitude=DAY,
                   sd=sd, low=low, high=high, density=rest, kind=DATE, edges=True)


def embed(values: pl.Series, carrier: Carrier, marked: np.ndarray,
          ones: np.ndarray) -> pl.Series:
    """``values`` with the marks applied: ``+δ`` where ``ones``, ``−δ`` elsewhere in ``marked``.

    ``marked`` (bool, per row) is ``carrier.markable(values)``; ``ones`` (bool, per marked row)
    the recipient's symbols. The result keeps the column's type and its recorded grid (a
    date column stays a date column, moved by whole days).
    """
    master = as_numbers(values)
    shift = np.zeros(len(master))
    shift[marked] = np.where(ones, carrier.amplitude, -carrier.amplitude)
    out = pl.Series(values.name, np.round(master + shift, carrier.decimals),
                    dtype=pl.Float64).fill_nan(None)
    if values.dtype == pl.Date:
        return out.cast(pl.Int32).cast(pl.Date)  # whole days since 1970-01-01
    return out.cast(values.dtype)


def fingerprint(frame: pl.DataFrame, carriers: Iterable[Carrier], bias_key: bytes,
                key: bytes) -> pl.DataFrame:
    """``frame`` (master ``eid`` + columns) with one recipient's marks in every carrier."""
    eids = frame[EID].cast(pl.Int64).to_numpy()
    marked_columns = []
    for carrier in carriers:
        if carrier.kind == ORDER:  # no value moves: ``orders.embed`` reorders a field's codes
            continue
        values = frame[carrier.column]
        marked = carrier.marked(bias_key, eids, as_numbers(values))
        where = eids[marked]
        tags = np.full(len(where), codes.column_tag(carrier.column), dtype=np.uint64)
        ones = codes.symbols(key, where, tags, codes.thresholds(bias_key, where, tags))
        marked_columns.append(embed(values, carrier, marked, ones))
    return frame.with_columns(marked_columns)
