"""Each kind of bad input is refused with its field, row and value; good input is typed."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import Cohort
from strongroom.cohort.problems import IngestError
from strongroom.cohort.validate import validate
from tests.conftest import small_cohort


def refused(cohort: Cohort, dictionary: Dictionary, **kwargs: object) -> list[str]:
    with pytest.raises(IngestError) as info:
        validate(cohort, dictionary, "input.csv", **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def with_participant(column: str, row: int, value: str | None) -> Cohort:
    cohort = small_cohort()
    frame = cohort.participants
    values = frame[column].to_list()
    values[row] = value
    return Cohort(frame.with_columns(pl.Series(column, values, pl.String)), cohort.events)


def test_good_input_is_typed(dictionary: Dictionary) -> None:
    cohort = validate(small_cohort(), dictionary, "input.csv")
    p = cohort.participants
    assert p.schema["eid"] == pl.Int64
    assert p.schema["p21001_i0"] == pl.Float64
    assert p.schema["p53_i0"] == pl.Date
    assert p.schema["p31"] == pl.Int64
    assert "_row" not in p.columns
    assert p["p21001_i0"].to_list() == [27.3817, 31.0422, 22.9931]
    d = cohort.events["diagnoses"]
    assert d.schema["array_index"] == pl.Int32
    assert d["date"].to_list()[0] == dt.date(2011, 5, 17)


@pytest.mark.parametrize(
    ("column", "row", "value", "expected"),
    [
        ("p31", 1, "7", "field 31 (Sex), row 2: code is not in coding 9"),
        ("p31", 0, "male", "field 31 (Sex), row 1: expected coded a whole number"),
        ("p34", 2, "1944.5", "field 34 (Year of birth), row 3: expected a whole number"),
        ("p21001_i0", 0, "27,38", "field 21001 (Body mass index (BMI)), row 1: expected a number"),
        ("p21001_i0", 1, "inf", "row 2: expected a number"),
        ("p53_i0", 0, "2008-02-30", "row 1: not a valid date"),
        ("p53_i0", 1, "14/03/2008", "row 2: not a valid date"),
        ("p53_i0", 2, "1899-12-31", "row 3: date before 1900-01-01 is impossible"),
        ("p53_i0", 2, "2999-01-01", "row 3: date is in the future"),
        ("eid", 1, "10000x5", "field eid, row 2: eid is not a whole number"),
        ("eid", 1, "-4", "field eid, row 2: eid must be a positive number"),
        ("eid", 2, "1000017", "field eid, row 3: duplicate eid"),
    ],
)
def test_bad_values_are_refused_precisely(
    dictionary: Dictionary, column: str, row: int, value: str, expected: str
) -> None:
    problems = refused(with_participant(column, row, value), dictionary)
    assert any(expected in p for p in problems), problems
    assert any(repr(value) in p for p in problems), "the value is shown to the custodian"


def test_unknown_field_is_refused(dictionary: Dictionary) -> None:
    cohort = small_cohort()
    frame = cohort.participants.with_columns(pl.lit("1").alias("p99999"))
    problems = refused(Cohort(frame, cohort.events), dictionary)
    assert any("field 99999 is not in the data dictionary" in p for p in problems)


def test_instance_outside_the_field_is_refused(dictionary: Dictionary) -> None:
    cohort = small_cohort()
    frame = cohort.participants.with_columns(pl.lit("120").alias("p4080_i0_a5"))
    problems = refused(Cohort(frame, cohort.events), dictionary)
    assert any("array slots 0–1, not 5" in p for p in problems)


def test_missing_eid_column_is_refused(dictionary: Dictionary) -> None:
    cohort = small_cohort()
    problems = refused(Cohort(cohort.participants.drop("eid"), {}), dictionary)
    assert any("no eid column" in p for p in problems)


def test_event_problems_name_the_table(dictionary: Dictionary) -> None:
    cohort = small_cohort()
    events = cohort.events["diagnoses"].with_columns(
        pl.Series("code", ["I10", "NOT-A-CODE", "C509"]),
        pl.Series("eid", ["1000017", "1000017", "9999999"]),
    )
    problems = refused(Cohort(cohort.participants, {"diagnoses": events}), dictionary)
    assert any("diagnoses: 41270 (Diagnoses - ICD10), row 2: code is not in coding 19" in p
               for p in problems)
    assert any("diagnoses.eid, row 3: event for a participant who is not in the participant"
               in p for p in problems)


def test_duplicate_event_slot_is_refused(dictionary: Dictionary) -> None:
    cohort = small_cohort()
    events = cohort.events["diagnoses"].with_columns(pl.Series("array_index", ["0", "0", "0"]))
    problems = refused(Cohort(cohort.participants, {"diagnoses": events}), dictionary)
    assert any("appear twice in diagnoses" in p for p in problems)


def test_event_before_birth_is_refused_unless_relaxed(dictionary: Dictionary) -> None:
    cohort = small_cohort()
    events = cohort.events["diagnoses"].with_columns(
        pl.Series("date", ["1949-05-17", "2013-09-30", "2015-01-08"]))
    bad = Cohort(cohort.participants, {"diagnoses": events})
    problems = refused(bad, dictionary)
    assert any("[rule event-before-birth]" in p and "row 1" in p for p in problems)
    typed = validate(bad, dictionary, "input.csv", relax=["event-before-birth"])
    assert typed.events["diagnoses"].height == 3
    with pytest.raises(ValueError, match="unknown rule"):
        validate(bad, dictionary, "input.csv", relax=["no-such-rule"])


def test_many_bad_values_are_summarised(dictionary: Dictionary) -> None:
    n = 100
    frame = pl.DataFrame({"eid": [str(1_000_000 + i) for i in range(n)], "p31": ["9"] * n})
    problems = refused(Cohort(frame, {}), dictionary)
    assert len(problems) == 21
    assert "80 more value(s) with the same problem" in problems[-1]


def test_typed_input_is_checked_too(dictionary: Dictionary) -> None:
    frame = pl.DataFrame({"eid": [1, 2], "p34": [1950.0, 1960.25]})
    problems = refused(Cohort(frame, {}), dictionary)
    assert any("field 34 (Year of birth), row 2" in p for p in problems)
