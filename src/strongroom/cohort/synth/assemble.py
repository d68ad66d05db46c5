"""From generated values to the storage model: missingness, answer codes, precision, types.

Missingness follows the dictionary: a field recorded for ``participants`` of ``cohort_size``
people is blank for the rest. Fields measured together go missing together (no blood sample
means no assays; no automated blood-pressure reading means no pulse), as in UK Biobank.
"Do not know" and "prefer not to answer" codes replace a few answers at UK Biobank's rates.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from strongroom.cohort import model
from strongroom.cohort.dictionary import Dictionary, Field, ValueType
from strongroom.cohort.synth.demographics import FEMALE_SHARE
from strongroom.cohort.synth.draws import BoolArray, FloatArray, IntArray, match_moments

# Fields measured at one station: they share a "not done" mask.
GROUPS: tuple[tuple[int, ...], ...] = (
    (50, 21002, 21001, 48, 49, 23099),  # anthropometry
    (36, 4080, 4079, 102),  # automated blood pressure
    (3062, 3063),  # spirometry
    (30000, 30020),  # haematology
    (30690, 30700, 30710, 30740, 30750, 30760, 30780, 30870),  # biochemistry
)
# Later array slots that are more often empty than the first (a third blow, a second reading).
SLOT_GAPS: dict[int, tuple[float, ...]] = {
    4080: (0.0, 0.006), 4079: (0.0, 0.006), 102: (0.0, 0.006),
    3062: (0.0, 0.02, 0.12), 3063: (0.0, 0.02, 0.12),
}  # fmt: skip
# Answer codes at UK Biobank's approximate rates among those asked (the rest of a field's codes
# come from the generators themselves: -7 "none of the above", 20107's per-screen codes, 21000).
ANSWER_CODES: dict[int, dict[int, float]] = {
    709: {-1: 0.0005, -3: 0.002},
    738: {-1: 0.042, -3: 0.097},
    884: {-1: 0.006, -3: 0.003},
    1160: {-1: 0.005, -3: 0.0005},
    1289: {-10: 0.06, -1: 0.007, -3: 0.0005},
    1558: {-3: 0.001},
    2178: {-1: 0.004, -3: 0.001},
    2443: {-1: 0.003, -3: 0.0005},
    6138: {-3: 0.01},
    6150: {-3: 0.003},
    6153: {-1: 0.002, -3: 0.003},
    6177: {-1: 0.002, -3: 0.003},
    20116: {-3: 0.004},
}
GENERATED_ANSWER_CODES = frozenset({21000, 20107})
DEFAULT_ANSWER_RATES = {-1: 0.003, -3: 0.002}
# A field that only makes sense for some answers of another (pack years: ever-smokers).
DEPENDS: dict[int, tuple[int, frozenset[int]]] = {20161: (20116, frozenset({1, 2}))}
# Order of processing: what a derived field is computed from comes first.
FIRST = (50, 21002)
DERIVED_BMI = 21001


def participant_columns(dictionary: Dictionary) -> list[Field]:
    return [f for f in dictionary if model.event_table_of(f.field_id) is None]


def participants(
    rng: np.random.Generator,
    eid: IntArray,
    female: BoolArray,
    values: dict[int, FloatArray],
    texts: dict[int, tuple[list[str], IntArray]],
    dictionary: Dictionary,
) -> pl.DataFrame:
    n = eid.shape[0]
    fields = participant_columns(dictionary)
    present = {f.field_id for f in fields}
    final: dict[int, FloatArray] = {}
    group_base: dict[int, BoolArray] = {}
    for group in GROUPS:
        rates = [_blank_rate(dictionary.field(fid), values, texts, n, female, dictionary)
                 for fid in group if fid in present]  # fmt: skip
        base = np.asarray(rng.random(n) < (min(rates) if rates else 0.0), dtype=np.bool_)
        for fid in group:
            group_base[fid] = base

    order = sorted(fields, key=lambda f: (f.field_id not in FIRST, f.field_id))
    for fld in order:
        fid = fld.field_id
        raw = _raw(rng, fld, values, texts, n, dictionary)
        x = raw.copy()
        if fid in DEPENDS and DEPENDS[fid][0] in final:
            parent = final[DEPENDS[fid][0]][:, 0]
            x[~np.isin(parent, list(DEPENDS[fid][1]))] = np.nan
        if fid == DERIVED_BMI and 50 in final and 21002 in final:
            height, weight = final[50][:, 0], final[21002][:, 0]
            x = (weight / (height / 100) ** 2)[:, None]
        else:
            x = _blank(rng, fld, x, group_base.get(fid), n, female, dictionary)
            x = _answer_codes(rng, fld, x, dictionary)
        final[fid] = _round(fld, x)

    columns: list[pl.Series] = [pl.Series(model.EID, eid, dtype=pl.Int64)]
    for fld in fields:
        dtype = model.storage_dtype(fld, dictionary)
        x = final[fld.field_id]
        for slot in range(fld.arrays):
            name = model.column_name(fld, 0, slot)
            if fld.field_id in texts and dtype == pl.String():
                column = _text(name, texts[fld.field_id][0], x[:, 0])
            else:
                column = _typed(name, x[:, slot] if slot < x.shape[1] else None, n, dtype)
            columns.append(column)
    return pl.DataFrame(columns)


def _raw(
    rng: np.random.Generator,
    fld: Field,
    values: dict[int, FloatArray],
    texts: dict[int, tuple[list[str], IntArray]],
    n: int,
    dictionary: Dictionary,
) -> FloatArray:
    if fld.field_id in texts:
        return texts[fld.field_id][1].astype(np.float64)[:, None]
    if fld.field_id in values:
        return values[fld.field_id]
    return _fallback(rng, fld, n, dictionary)


def _fallback(rng: np.random.Generator, fld: Field, n: int, d: Dictionary) -> FloatArray:
    """A field the generators do not model: plausible values from its dictionary entry alone."""
    if fld.is_numeric and fld.mean is not None and fld.sd:
        return match_moments(rng.standard_normal(n), fld.mean, fld.sd)[:, None]
    coding = d.coding_of(fld)
    if fld.is_categorical and coding is not None and coding.integer_codes:
        missing = set(coding.missing_codes)
        pool = [int(c) for c in (coding.selectable or coding.codes) if c not in missing]
        if pool:
            return np.array(pool, dtype=np.float64)[rng.integers(0, len(pool), n)][:, None]
    return np.full((n, 1), np.nan)


def _blank_rate(
    fld: Field,
    values: dict[int, FloatArray],
    texts: dict[int, tuple[list[str], IntArray]],
    n: int,
    female: BoolArray,
    d: Dictionary,
) -> float:
    """Share of the rows holding a value that must be blanked to match the dictionary."""
    if not fld.participants or n == 0:
        return 0.0
    have = 1.0
    if fld.field_id in values and fld.field_id not in texts:
        have = float((~np.isnan(values[fld.field_id][:, 0])).mean())
    return max(0.0, 1.0 - _target(fld, female, d) / have) if have > 0 else 0.0


def _target(fld: Field, female: BoolArray, d: Dictionary) -> float:
    """Share of all rows that should hold a value (Showcase participants / cohort size)."""
    target = min(fld.participants / d.cohort_size, 1.0)
    if fld.sexed in ("Female", "Male"):
        # The count is of one sex: rescale to this cohort's share of that sex.
        share = float(female.mean()) if fld.sexed == "Female" else float((~female).mean())
        expected = FEMALE_SHARE if fld.sexed == "Female" else 1 - FEMALE_SHARE
        target *= share / expected
    return target


def _blank(
    rng: np.random.Generator,
    fld: Field,
    x: FloatArray,
    base: BoolArray | None,
    n: int,
    female: BoolArray,
    d: Dictionary,
) -> FloatArray:
    if fld.sexed == "Female":
        x[~female] = np.nan
    elif fld.sexed == "Male":
        x[female] = np.nan
    if not fld.participants:
        return x
    have = ~np.isnan(x[:, 0])
    blank = np.zeros(n, dtype=np.bool_)
    if base is not None:
        blank |= base & have
    still = have & ~blank
    want = _target(fld, female, d) * n
    extra = max(0.0, 1.0 - want / max(float(still.sum()), 1.0))
    blank |= still & (rng.random(n) < extra)
    x[blank] = np.nan
    for slot, gap in enumerate(SLOT_GAPS.get(fld.field_id, ())):
        if gap and slot < x.shape[1]:
            x[rng.random(n) < gap, slot] = np.nan
    return x


def _answer_codes(rng: np.random.Generator, fld: Field, x: FloatArray, d: Dictionary) -> FloatArray:
    if fld.field_id in GENERATED_ANSWER_CODES:
        return x
    allowed = {int(c) for c in d.missing_codes(fld)}
    if not allowed:
        return x
    rates = ANSWER_CODES.get(fld.field_id)
    if rates is None:
        rates = {c: r for c, r in DEFAULT_ANSWER_RATES.items() if c in allowed}
    answered = ~np.isnan(x[:, 0])
    u = rng.random(x.shape[0])
    low = 0.0
    for code, rate in rates.items():
        if code not in allowed:
            continue
        hit = answered & (u >= low) & (u < low + rate)
        x[hit, 0] = code
        x[hit, 1:] = np.nan
        low += rate
    return x


def _round(fld: Field, x: FloatArray) -> FloatArray:
    if fld.value_type == ValueType.CONTINUOUS and fld.precision is not None:
        return np.round(x, fld.precision)
    if fld.value_type == ValueType.INTEGER or fld.is_categorical:
        return np.round(x)
    return x


def _text(name: str, labels: list[str], index: FloatArray) -> pl.Series:
    missing = np.isnan(index)
    rows = np.where(missing, 0, index).astype(np.int64)
    picked = pl.Series(name, labels, dtype=pl.String).gather(rows)
    nulls = pl.repeat(None, index.shape[0], dtype=pl.String, eager=True)
    return picked.zip_with(pl.Series(~missing), nulls)


def _typed(name: str, x: FloatArray | None, n: int, dtype: pl.DataType) -> pl.Series:
    if x is None:
        return pl.repeat(None, n, dtype=dtype, eager=True).alias(name)
    series = pl.Series(name, x, dtype=pl.Float64).fill_nan(None)
    if dtype == pl.Date():
        return series.cast(pl.Int32).cast(pl.Date)
    if dtype == pl.String():
        return series.cast(pl.Int64).cast(pl.String)
    return series.cast(dtype)
