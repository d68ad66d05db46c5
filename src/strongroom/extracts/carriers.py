"""Which columns carry fingerprint marks, with what amplitude, and embedding on typed values.

A mark moves one cell by ``±δ`` where ``δ`` is one unit of the column's recorded precision
(``Field.precision`` decimals): the marked value is still a value the instrument could have
recorded, on the same grid, with the same type. A column carries marks only when

- it is a measurement (``Role.MEASUREMENT``), or its field is explicitly allow-listed — never
  sex, ethnicity, codes, dates or identifiers, whose every value means something exact;
- it is numeric (integer or continuous) with a recorded precision, and its values lie on that
  grid (a column whose values are not on the grid would betray the marks);
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

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.density >= 1.0:
            del out["density"]  # manifests of full-density carriers read as they always did
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Carrier:
        return cls(column=str(data["column"]), field_id=int(data["field_id"]),
                   decimals=int(data["decimals"]), amplitude=float(data["amplitude"]),
                   sd=float(data["sd"]), low=float(data["low"]), high=float(data["high"]),
                   density=float(data.get("density", 1.0)))

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
            return (~np.isnan(values) & (values - self.amplitude >= self.low - self.amplitude / 2)
                    & (values + self.amplitude <= self.high + self.amplitude / 2))


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
    must still be numeric, on their grid and fine enough.
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
        if fld.value_type not in (ValueType.INTEGER, ValueType.CONTINUOUS):
            skipped[column] = f"value type is {fld.value_type.value}, not numeric"
            continue
        if fld.precision is None:
            skipped[column] = "the dictionary records no precision for it"
            continue
        values = frame[column].cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
        if len(values) < MIN_VALUES:
            skipped[column] = f"fewer than {MIN_VALUES} values"
            continue
        amplitude = 10.0 ** -fld.precision
        sd = float(np.std(values, ddof=1))
        density = 1.0
        if not amplitude <= MAX_SHARE_OF_SD * sd:
            density = min(MAX_DENSITY, VAR_SHARE * sd * sd / amplitude**2) if sd > 0 else 0.0
            if density < MIN_DENSITY:
                share = amplitude / sd if sd > 0 else float("inf")
                skipped[column] = (f"one unit of recorded precision ({amplitude:g}) is "
                                   f"{share:.2%} of its SD: even {MIN_DENSITY:.0%} of its "
                                   f"cells marked would move its variance by more than "
                                   f"{VAR_SHARE:g} of itself")
                continue
        if _on_grid(values, fld.precision) < ON_GRID:
            skipped[column] = f"its values are not on its recorded grid ({fld.precision} decimals)"
            continue
        carriers.append(Carrier(column=column, field_id=fld.field_id, decimals=fld.precision,
                                amplitude=amplitude, sd=sd, low=float(values.min()),
                                high=float(values.max()),
                                density=math.floor(density * 1e6) / 1e6))
    return Choice(carriers, skipped)


def embed(values: pl.Series, carrier: Carrier, marked: np.ndarray,
          ones: np.ndarray) -> pl.Series:
    """``values`` with the marks applied: ``+δ`` where ``ones``, ``−δ`` elsewhere in ``marked``.

    ``marked`` (bool, per row) is ``carrier.markable(values)``; ``ones`` (bool, per marked row)
    the recipient's symbols. The result keeps the column's type and its recorded grid.
    """
    master = values.cast(pl.Float64).fill_null(np.nan).to_numpy()
    shift = np.zeros(len(master))
    shift[marked] = np.where(ones, carrier.amplitude, -carrier.amplitude)
    out = np.round(master + shift, carrier.decimals)
    return pl.Series(values.name, out, dtype=pl.Float64).fill_nan(None).cast(values.dtype)


def fingerprint(frame: pl.DataFrame, carriers: Iterable[Carrier], bias_key: bytes,
                key: bytes) -> pl.DataFrame:
    """``frame`` (master ``eid`` + columns) with one recipient's marks in every carrier."""
    eids = frame[EID].cast(pl.Int64).to_numpy()
    marked_columns = []
    for carrier in carriers:
        values = frame[carrier.column]
        marked = (carrier.markable(values.cast(pl.Float64).fill_null(np.nan).to_numpy())
                  & carrier.chosen(bias_key, eids))
        where = eids[marked]
        tags = np.full(len(where), codes.column_tag(carrier.column), dtype=np.uint64)
        ones = codes.symbols(key, where, tags, codes.thresholds(bias_key, where, tags))
        marked_columns.append(embed(values, carrier, marked, ones))
    return frame.with_columns(marked_columns)
