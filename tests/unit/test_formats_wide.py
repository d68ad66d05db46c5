"""Pivoting between the wide UKB layout and the storage model's event tables, both ways."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary, Field, Role, ValueType
from strongroom.cohort.formats.wide import ROW, from_model, to_model
from strongroom.cohort.model import Cohort, FieldKey
from tests.unit.test_formats import small_dictionary, typed_cohort

D = small_dictionary()


def wide_text(columns: dict[str, list[str | None]]) -> tuple[pl.DataFrame, dict[str, FieldKey]]:
    """A frame as a text reader hands it over, keyed by ukbconv names."""
    frame = pl.DataFrame({"eid": ["1", "2", "3"], ROW: [1, 2, 3], **columns},
                         schema_overrides={ROW: pl.Int64, **dict.fromkeys(columns, pl.String)})
    keys = {}
    for name in columns:
        field, rest = name.split("-")
        instance, array = rest.split(".")
        keys[name] = FieldKey(int(field), int(instance), int(array))
    return frame, keys


def test_array_slots_become_events_with_code_and_date_paired() -> None:
    frame, keys = wide_text({
        "34-0.0": ["1950", "1960", "1970"],
        "41270-0.0": ["I10", None, "E119"],
        "41270-0.3": ["C509", None, None],
        "41280-0.0": ["2001-01-01", None, "2003-03-03"],
        "41280-0.3": ["2004-04-04", None, "2005-05-05"],
        "41280-0.7": [None, None, None],  # an empty slot makes no events
    })
    cohort, problems = to_model(frame, keys, D, "in.csv")
    assert problems == []
    assert cohort.participants.columns == ["eid", ROW, "p34"]
    d = cohort.events["diagnoses"]
    assert d.schema == {"eid": pl.String, ROW: pl.Int64, "array_index": pl.Int32,
                        "code": pl.String, "date": pl.String}
    assert d.rows() == [
        ("1", 1, 0, "I10", "2001-01-01"),
        ("1", 1, 3, "C509", "2004-04-04"),  # the code at slot 3 with the date at slot 3
        ("3", 3, 0, "E119", "2003-03-03"),
        ("3", 3, 3, None, "2005-05-05"),
    ]


def test_instances_become_events() -> None:
    frame, keys = wide_text({
        "40000-0.0": ["2010-01-01", None, None],
        "40001-0.0": ["I10", None, None],
        "40000-1.0": [None, None, "2012-02-02"],
        "40001-1.0": ["C509", None, "E119"],
        "40007-1.0": [None, None, "70.5"],
    })
    cohort, problems = to_model(frame, keys, D, "in.csv")
    assert problems == []
    assert cohort.events["deaths"].rows() == [
        ("1", 1, 0, "2010-01-01", "I10", None),
        ("1", 1, 1, None, "C509", None),
        ("3", 3, 1, "2012-02-02", "E119", "70.5"),
    ]
    assert cohort.participants.columns == ["eid", ROW]


def test_a_table_field_absent_from_the_file_is_a_null_column() -> None:
    frame, keys = wide_text({"41270-0.0": ["I10", None, None]})
    cohort, _ = to_model(frame, keys, D, "in.csv")
    assert cohort.events["diagnoses"].rows() == [("1", 1, 0, "I10", None)]
    assert cohort.events["diagnoses"].schema["date"] == pl.String


def test_typed_input_keeps_its_types() -> None:
    frame = pl.DataFrame({
        "eid": [1, 2], ROW: [1, 2],
        "a": [dt.date(2001, 1, 1), None], "b": [None, "I10"],
    }, schema_overrides={ROW: pl.Int64})
    cohort, problems = to_model(frame, {"a": FieldKey(41280, 0, 5), "b": FieldKey(41270, 0, 6)},
                                D, "in.parquet")
    assert problems == []
    d = cohort.events["diagnoses"]
    assert d.schema["date"] == pl.Date  # also at slot 6, where the file has no date column
    assert d.rows() == [(1, 1, 5, None, dt.date(2001, 1, 1)), (2, 2, 6, "I10", None)]


def test_to_model_refuses_what_the_dictionary_refuses() -> None:
    frame, keys = wide_text({
        "31-0.0": ["0", "1", "0"],
        "99999-0.0": ["x", "y", "z"],
        "31-1.0": ["0", "1", "0"],
        "41270-0.213": ["I10", None, None],
    })
    keys["again"] = FieldKey(31)
    frame = frame.with_columns(pl.col("31-0.0").alias("again"))
    cohort, problems = to_model(frame, keys, D, "in.csv")
    assert [(p.field, p.message) for p in problems] == [
        ("99999-0.0", "field 99999 is not in the data dictionary; column dropped "
                      "(add the field to the dictionary to ingest it)"),
        ("31-1.0", "field 31 (field 31) has instances 0–0, not 1; column dropped"),
        ("41270-0.213", "field 41270 (field 41270) has array slots 0–212, not 213; "
                        "column dropped"),
        ("again", "duplicate column: same field, instance and array as '31-0.0'; dropped"),
    ]
    assert cohort.participants.columns == ["eid", ROW, "p31"]
    assert cohort.events == {}


def test_an_event_field_cannot_use_the_other_index() -> None:
    # A dictionary in which the hospital fields had visits would not fit the model's table.
    fields = dict(D.fields)
    fields[41270] = Field(41270, "codes", ValueType.CATEGORICAL_MULTIPLE, Role.SENSITIVE,
                          coding_id=19, instances=2, arrays=213)
    fields[40000] = Field(40000, "date of death", ValueType.DATE, Role.EVENT_DATE,
                          instances=2, arrays=2)
    wider = Dictionary(fields, dict(D.codings))
    frame, keys = wide_text({"41270-1.0": ["I10", None, None],
                             "40000-0.1": ["2001-01-01", None, None]})
    cohort, problems = to_model(frame, keys, wider, "in.csv")
    assert [p.field for p in problems] == ["41270-1.0", "40000-0.1"]
    assert "indexed by array_index; instance 1 cannot be stored" in problems[0].message
    assert "indexed by instance; array slot 1 cannot be stored" in problems[1].message
    assert cohort.events == {}


# -- back to wide ------------------------------------------------------------------------


def test_from_model_pivots_events_back_to_their_slots() -> None:
    wide, keys = from_model(typed_cohort(), D)
    assert wide.columns[0] == "eid"
    assert list(keys.values()) == sorted(keys.values())
    assert keys["p41270_a3"] == FieldKey(41270, 0, 3)
    assert keys["p40001_i1"] == FieldKey(40001, 1, 0)
    row = wide.row(0, named=True)
    assert (row["p41270_a0"], row["p41280_a0"]) == ("I10", dt.date(2011, 5, 17))
    assert (row["p41270_a3"], row["p41280_a3"]) == ("C509", dt.date(2015, 1, 2))
    row = wide.row(1, named=True)
    assert (row["p41270_a3"], row["p41280_a3"]) == (None, dt.date(2019, 12, 31))
    assert (row["p40000_i1"], row["p40001_i1"], row["p40007_i1"]) == (
        dt.date(2020, 2, 2), "I10", 59.5)
    # only columns that hold a value: no empty slots, no all-null participant column
    assert "p41270_a1" not in wide.columns and "p20002_i0_a0" not in wide.columns
    assert "p40000_i0" not in wide.columns


def test_from_model_inverts_to_model() -> None:
    cohort = typed_cohort()
    wide, keys = from_model(cohort, D)
    back, problems = to_model(wide, keys, D, "round trip")
    assert problems == []
    p = cohort.participants.drop("p20002_i0_a0")
    assert back.participants.select(p.columns).equals(p)
    for name, events in cohort.events.items():
        assert back.events[name].equals(events), name


def test_participants_known_only_from_events_are_kept() -> None:
    cohort = typed_cohort()
    extra = cohort.events["deaths"].with_columns(pl.lit(9, pl.Int64).alias("eid"))
    wide, _ = from_model(Cohort(cohort.participants, {"deaths": extra}), D)
    assert wide["eid"].to_list() == [1000017, 1000025, 9]
    assert wide.filter(pl.col("eid") == 9)["p40001_i1"].to_list() == ["I10"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: Cohort(pl.concat([c.participants, c.participants.head(1)]), c.events),
         "missing or duplicate eids"),
        (lambda c: Cohort(c.participants.drop("eid"), c.events), "no eid column"),
        (lambda c: Cohort(c.participants.rename({"p31": "p31_i1"}), c.events),
         "does not fit field 31"),
        (lambda c: Cohort(c.participants, {"deaths": c.events["deaths"].with_columns(
            pl.lit(2, pl.Int32).alias("instance"))}), "has instances 0–1, not 2"),
        (lambda c: Cohort(c.participants, {"deaths": c.events["deaths"].with_columns(
            pl.lit("x").alias("colour"))}), "unknown columns \\['colour'\\]"),
        (lambda c: Cohort(c.participants, {"deaths": c.events["deaths"].drop("instance")}),
         "has no 'instance' column"),
        (lambda c: Cohort(c.participants, {"diagnoses": pl.concat(
            [c.events["diagnoses"], c.events["diagnoses"].tail(1)])}),
         "two events at the same array_index"),
    ],
)
def test_from_model_refuses_what_no_wide_file_can_hold(change: object, message: str) -> None:
    assert callable(change)
    with pytest.raises(ValueError, match=message):
        from_model(change(typed_cohort()), D)


def test_empty_tables_pivot_to_nothing() -> None:
    cohort = typed_cohort()
    empty = {"diagnoses": cohort.events["diagnoses"].clear(),
             "deaths": cohort.events["deaths"].select("eid", "instance")}
    wide, keys = from_model(Cohort(cohort.participants, empty), D)
    assert not any(k.field_id in (41270, 41280, 40000, 40001, 40007) for k in keys.values())
    assert wide.height == 2
    wide, keys = from_model(Cohort(cohort.participants.clear(), empty), D)
    assert (wide.shape, keys) == ((0, 1), {})
