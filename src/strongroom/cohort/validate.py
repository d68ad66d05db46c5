"""Validate a cohort against the data dictionary before anything is stored.

Input arrives as text (CSV, TSV) or typed (Parquet). Every value is parsed into its storage type
and checked: the field must be known, the value must parse as the field's type, a categorical
code must be in the field's coding, a date must exist and be plausible, and eids must be unique.
Every problem names its source, field, row and value; if there is any problem the whole input
is refused (:class:`IngestError`), so a bad file changes nothing.

All checks are vectorised (Polars); the per-problem Python work is bounded by ``PER_COLUMN``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from strongroom.cohort.dictionary import Dictionary, Field
from strongroom.cohort.model import (
    EID,
    EVENT_TABLES,
    PARTICIPANTS,
    Cohort,
    EventTable,
    event_schema,
    parse_column_name,
    storage_dtype,
)
from strongroom.cohort.problems import ROW, IngestError, Problem

PER_COLUMN = 20  # problems listed per column before they are summarised
EARLIEST_DATE = dt.date(1900, 1, 1)

# Rules that look at more than one field. They can be relaxed by name for known-odd data
# (e.g. randomly generated test fixtures); each refusal names its rule so the custodian knows.
RULE_EVENT_BEFORE_BIRTH = "event-before-birth"
CONSISTENCY_RULES = (RULE_EVENT_BEFORE_BIRTH,)
_BIRTH_YEAR = "p34"


@dataclass(frozen=True)
class _Check:
    """A failed check on one column: the rows (mask) where it failed, and why."""

    bad: pl.Series
    message: str


def validate(
    cohort: Cohort,
    dictionary: Dictionary,
    source: str,
    *,
    today: dt.date | None = None,
    relax: Iterable[str] = (),
) -> Cohort:
    """Parse and check every value; return the typed cohort or raise :class:`IngestError`."""
    relaxed = set(relax)
    unknown_rules = relaxed - set(CONSISTENCY_RULES)
    if unknown_rules:
        raise ValueError(
            f"unknown rule(s) to relax: {sorted(unknown_rules)}; known: {list(CONSISTENCY_RULES)}"
        )
    validator = _Validator(dictionary, source, today or dt.date.today())
    participants = validator.participants(cohort.participants)
    events = {
        table.name: validator.events(table, cohort.events[table.name])
        for table in EVENT_TABLES
        if table.name in cohort.events
    }
    for name in cohort.events.keys() - {t.name for t in EVENT_TABLES}:
        validator.problems.append(
            Problem(source, f"unknown table {name!r}; known event tables: "
                    f"{', '.join(t.name for t in EVENT_TABLES)}")
        )
    if participants is not None:
        validator.orphan_events(participants, events)
        if RULE_EVENT_BEFORE_BIRTH not in relaxed:
            validator.events_before_birth(participants, events)
    if validator.problems or participants is None:
        raise IngestError(validator.problems)
    return Cohort(
        participants.drop(ROW).sort(EID),
        {name: frame.drop(ROW).sort(EID, frame.columns[1]) for name, frame in events.items()},
    )


class _Validator:
    def __init__(self, dictionary: Dictionary, source: str, today: dt.date):
        self.dictionary = dictionary
        self.source = source
        self.today = today
        self.problems: list[Problem] = []

    # -- tables ---------------------------------------------------------------------------

    def participants(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        frame = _with_rows(frame)
        if EID not in frame.columns:
            self.problems.append(Problem(self.source, "no eid column: every row needs "
                                         "the participant's eid"))
            return None
        columns: dict[str, pl.Series] = {ROW: frame[ROW], EID: self._eids(frame, "")}
        for name in frame.columns:
            if name in (ROW, EID):
                continue
            try:
                key = parse_column_name(name, self.dictionary)
            except (KeyError, ValueError) as exc:
                self.problems.append(Problem(self.source, _reason(exc), field=name))
                continue
            fld = self.dictionary.field(key.field_id)
            columns[name] = self._column(frame[name], fld, frame[ROW], PARTICIPANTS)
        typed = pl.DataFrame(columns)
        self._duplicates(typed)
        return typed

    def events(self, table: EventTable, frame: pl.DataFrame) -> pl.DataFrame:
        frame = _with_rows(frame)
        schema = event_schema(table, self.dictionary)
        index = table.index.value
        where = f"table {table.name}"
        for required in (EID, index):
            if required not in frame.columns:
                self.problems.append(Problem(self.source, f"{where} has no {required} column"))
                return frame
        columns: dict[str, pl.Series] = {
            ROW: frame[ROW],
            EID: self._eids(frame, table.name),
            index: self._index(frame[index], table, frame[ROW]),
        }
        for name in frame.columns:
            if name in columns:
                continue
            if name not in schema:
                self.problems.append(Problem(
                    self.source,
                    f"{where} has no column {name!r} in this dictionary; "
                    f"expected {', '.join(schema)}",
                    field=name,
                ))
                continue
            fld = self.dictionary.field(table.columns[name])
            columns[name] = self._column(frame[name], fld, frame[ROW], table.name)
        typed = pl.DataFrame(columns)
        dup = typed.select(pl.struct(EID, index).is_duplicated()).to_series()
        self._report(typed[EID].cast(pl.String), typed[ROW], f"{table.name}.{EID}", [
            _Check(dup, f"the same participant and {index} appear twice in {table.name}; "
                        "each field may come from one input only"),
        ])
        return typed

    # -- columns --------------------------------------------------------------------------

    def _eids(self, frame: pl.DataFrame, table: str) -> pl.Series:
        raw = frame[EID]
        eids = _to_integer(raw)
        self._report(raw, frame[ROW], f"{table}.{EID}" if table else EID, [
            _Check(eids.is_null() & raw.is_not_null(), "eid is not a whole number"),
            _Check(raw.is_null(), "eid is missing"),
            _Check(eids.fill_null(1) <= 0, "eid must be a positive number"),
        ])
        return eids

    def _index(self, raw: pl.Series, table: EventTable, rows: pl.Series) -> pl.Series:
        values = _to_integer(raw)
        bound = max(self.dictionary.field(fid).instances if table.index.value == "instance"
                    else self.dictionary.field(fid).arrays
                    for fid in table.field_ids if fid in self.dictionary)
        self._report(raw, rows, f"{table.name}.{table.index.value}", [
            _Check(values.is_null(), f"{table.index.value} must be a whole number"),
            _Check((values < 0) | (values >= bound),
                   f"{table.index.value} must be between 0 and {bound - 1}"),
        ])
        return values.cast(pl.Int32, strict=False)

    def _column(self, raw: pl.Series, fld: Field, rows: pl.Series, table: str) -> pl.Series:
        target = storage_dtype(fld, self.dictionary)
        typed, checks = self._parse(raw, fld, target)
        self._report(raw, rows, f"{fld.field_id} ({fld.name})", checks, table)
        return typed.alias(raw.name)

    def _parse(
        self, raw: pl.Series, fld: Field, target: pl.DataType
    ) -> tuple[pl.Series, list[_Check]]:
        present = raw.is_not_null()
        if raw.dtype == pl.String:
            raw = raw.str.strip_chars()
        if target == pl.Int64:
            typed = _to_integer(raw)
            checks = [_Check(present & typed.is_null(), _expected(fld, "a whole number"))]
        elif target == pl.Float64:
            typed = raw.cast(pl.Float64, strict=False)
            finite = typed.is_finite().fill_null(True)
            checks = [_Check(present & (typed.is_null() | ~finite), _expected(fld, "a number"))]
        elif target == pl.Date:
            typed = _to_date(raw)
            checks = [_Check(present & typed.is_null(),
                             "not a valid date: expected YYYY-MM-DD (e.g. 2008-03-14)")]
            checks += self._date_range(typed)
        elif target == pl.Datetime("us"):
            typed = _to_datetime(raw)
            checks = [_Check(present & typed.is_null(),
                             "not a valid time: expected YYYY-MM-DDTHH:MM:SS")]
        else:
            typed = raw.cast(pl.String)
            checks = []
        if fld.is_categorical:
            checks.append(self._coding_check(typed, fld))
        return typed, checks

    def _coding_check(self, typed: pl.Series, fld: Field) -> _Check:
        coding = self.dictionary.coding_of(fld)
        if coding is None:
            return _Check(pl.Series([False] * typed.len()), "")
        codes = list(coding.codes)
        integer = typed.dtype == pl.Int64
        allowed = pl.Series([int(c) for c in codes]) if integer else pl.Series(codes)
        bad = typed.is_not_null() & ~typed.is_in(allowed.cast(typed.dtype).implode())
        return _Check(bad, f"code is not in coding {coding.coding_id}; "
                           "use a code the data dictionary lists for this field")

    def _date_range(self, typed: pl.Series) -> list[_Check]:
        return [
            _Check(typed < EARLIEST_DATE, f"date before {EARLIEST_DATE.isoformat()} is impossible"),
            _Check(typed > self.today, "date is in the future"),
        ]

    # -- cross-field and cross-table checks -----------------------------------------------

    def _duplicates(self, frame: pl.DataFrame) -> None:
        dup = frame[EID].is_duplicated() & frame[EID].is_not_null()
        self._report(frame[EID].cast(pl.String), frame[ROW], EID, [
            _Check(dup, "duplicate eid: each participant must appear once"),
        ])

    def orphan_events(self, participants: pl.DataFrame, events: dict[str, pl.DataFrame]) -> None:
        known = participants[EID].drop_nulls()
        for name, frame in events.items():
            if EID not in frame.columns:
                continue
            orphan = frame[EID].is_not_null() & ~frame[EID].is_in(known.implode())
            self._report(frame[EID].cast(pl.String), frame[ROW], f"{name}.{EID}", [
                _Check(orphan, "event for a participant who is not in the participant table"),
            ])

    def events_before_birth(
        self, participants: pl.DataFrame, events: dict[str, pl.DataFrame]
    ) -> None:
        if _BIRTH_YEAR not in participants.columns:
            return
        births = participants.select(EID, pl.col(_BIRTH_YEAR).alias("_birth_year"))
        for name, frame in events.items():
            if "date" not in frame.columns or frame["date"].dtype != pl.Date:
                continue
            joined = frame.join(births, on=EID, how="left")
            bad = joined["date"].dt.year() < joined["_birth_year"]
            self._report(joined["date"].cast(pl.String), joined[ROW], f"{name}.date", [
                _Check(bad.fill_null(False),
                       f"event dated before the participant's year of birth (field 34) "
                       f"[rule {RULE_EVENT_BEFORE_BIRTH}]"),
            ])

    # -- reporting ------------------------------------------------------------------------

    def _report(
        self,
        raw: pl.Series,
        rows: pl.Series,
        where: str,
        checks: list[_Check],
        table: str = "",
    ) -> None:
        for check in checks:
            bad = check.bad.fill_null(False)
            count = int(bad.sum())
            if count == 0:
                continue
            label = where if not table or table == PARTICIPANTS else f"{table}: {where}"
            shown = pl.DataFrame({"row": rows, "value": raw.cast(pl.String)}).filter(bad)
            for row, value in shown.head(PER_COLUMN).iter_rows():
                self.problems.append(Problem(self.source, check.message, label, row, value))
            if count > PER_COLUMN:
                self.problems.append(Problem(
                    self.source, f"{count - PER_COLUMN} more value(s) with the same problem",
                    label,
                ))


def _with_rows(frame: pl.DataFrame) -> pl.DataFrame:
    if ROW in frame.columns:
        return frame
    return frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def _to_integer(raw: pl.Series) -> pl.Series:
    """Whole numbers only: "12" and 12.0 parse, "12.5" and "x" do not."""
    if raw.dtype.is_integer():
        return raw.cast(pl.Int64)
    if raw.dtype.is_float():
        whole = raw.is_finite() & (raw == raw.floor())
        return pl.select(pl.when(whole).then(raw.cast(pl.Int64, strict=False))).to_series()
    as_text = raw.cast(pl.String, strict=False)
    return as_text.str.strip_chars().cast(pl.Int64, strict=False)


def _to_date(raw: pl.Series) -> pl.Series:
    if raw.dtype == pl.Date:
        return raw
    if raw.dtype == pl.Datetime:
        return raw.dt.date()
    return raw.cast(pl.String).str.to_date("%Y-%m-%d", strict=False, exact=True)


def _to_datetime(raw: pl.Series) -> pl.Series:
    if raw.dtype == pl.Datetime:
        return raw.cast(pl.Datetime("us"))
    text = raw.cast(pl.String).str.replace(" ", "T", literal=True)
    return text.str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, time_unit="us")


def _expected(fld: Field, what: str) -> str:
    kind = "coded " if fld.is_categorical else ""
    unit = f" in {fld.unit}" if fld.unit else ""
    return f"expected {kind}{what}{unit} for this {fld.value_type.value.replace('_', ' ')} field"


def _reason(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


__all__ = ["CONSISTENCY_RULES", "ROW", "validate"]
