from __future__ import annotations

import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import (
    EVENT_TABLES,
    FieldKey,
    column_name,
    event_schema,
    event_table,
    event_table_of,
    parse_column_name,
    storage_dtype,
)


@pytest.mark.parametrize(
    ("field_id", "instance", "array", "name"),
    [(31, 0, 0, "p31"), (21001, 0, 0, "p21001_i0"), (4080, 0, 1, "p4080_i0_a1"),
     (21001, 3, 0, "p21001_i3")],
)
def test_column_names_round_trip(
    dictionary: Dictionary, field_id: int, instance: int, array: int, name: str
) -> None:
    assert column_name(dictionary.field(field_id), instance, array) == name
    assert parse_column_name(name, dictionary) == FieldKey(field_id, instance, array)


@pytest.mark.parametrize(
    ("name", "message"),
    [("p21001", "does not fit field 21001"), ("p31_i0", "does not fit"),
     ("p21001_i4", "instances 0–3, not 4"), ("bmi", "not a storage column name"),
     ("p99999", "not in the data dictionary")],
)
def test_bad_column_names(dictionary: Dictionary, name: str, message: str) -> None:
    with pytest.raises((ValueError, KeyError), match=message):
        parse_column_name(name, dictionary)


def test_storage_types(dictionary: Dictionary) -> None:
    assert storage_dtype(dictionary.field(31), dictionary) == pl.Int64
    assert storage_dtype(dictionary.field(41270), dictionary) == pl.String
    assert storage_dtype(dictionary.field(53), dictionary) == pl.Date
    assert storage_dtype(dictionary.field(36), dictionary) == pl.String


def test_event_tables_are_complete_and_disjoint() -> None:
    seen: set[int] = set()
    for table in EVENT_TABLES:
        assert not seen & set(table.field_ids), f"{table.name} shares a field"
        seen |= set(table.field_ids)
        assert event_table(table.name) is table
        for fid in table.field_ids:
            assert event_table_of(fid) is table
    assert event_table_of(31) is None
    with pytest.raises(KeyError, match="no event table"):
        event_table("nope")


def test_event_schema(dictionary: Dictionary) -> None:
    schema = event_schema(event_table("diagnoses"), dictionary)
    assert schema == {"eid": pl.Int64(), "array_index": pl.Int32(), "code": pl.String(),
                      "date": pl.Date()}
    deaths = event_schema(event_table("deaths"), dictionary)
    assert list(deaths) == ["eid", "instance", "date", "cause", "age"]
