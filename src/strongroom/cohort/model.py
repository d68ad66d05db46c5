"""The storage model: one row per participant, plus long event tables.

UK Biobank ships hospital diagnoses as 213 array slots of codes (field 41270) beside 213 slots of
dates (41280); Strongroom stores them as one row per event. The mapping from UKB fields to event
tables is declared here as data (``EVENT_TABLES``) so that readers, writers, the synthetic cohort
and the store all agree on it.

Participant-table columns are named in the UK Biobank RAP style: ``p{field}``, with ``_i{instance}``
when the field has several instances and ``_a{array}`` when it has several array slots
(``p31``, ``p21001_i0``, ``p4080_i0_a1``). ``eid`` is the custodian's master participant ID and the
one direct identifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from strongroom.cohort.dictionary import Dictionary, Field, Role, ValueType

EID = "eid"
EID_ROLE = Role.DIRECT_IDENTIFIER
PARTICIPANTS = "participants"


@dataclass(frozen=True, order=True)
class FieldKey:
    """One UK Biobank data column: field, instance (visit) and array slot."""

    field_id: int
    instance: int = 0
    array: int = 0


class Index(StrEnum):
    """Which index of the UKB wide layout an event row comes from."""

    ARRAY = "array_index"  # hospital records: one slot per event
    INSTANCE = "instance"  # death and cancer registries: one instance per event


@dataclass(frozen=True)
class EventTable:
    """A long table built from a group of UKB fields that describe the same events."""

    name: str
    index: Index
    columns: Mapping[str, int]  # storage column -> UKB field ID
    description: str

    @property
    def field_ids(self) -> tuple[int, ...]:
        return tuple(self.columns.values())

    def column_of(self, field_id: int) -> str:
        for column, fid in self.columns.items():
            if fid == field_id:
                return column
        raise KeyError(f"field {field_id} is not part of event table {self.name}")


EVENT_TABLES: tuple[EventTable, ...] = (
    EventTable(
        "diagnoses",
        Index.ARRAY,
        {"code": 41270, "date": 41280},
        "Hospital inpatient diagnoses: ICD-10 code and date first recorded",
    ),
    EventTable(
        "diagnoses_icd9",
        Index.ARRAY,
        {"code": 41271, "date": 41281},
        "Hospital inpatient diagnoses before ICD-10: ICD-9 code and date first recorded",
    ),
    EventTable(
        "operations",
        Index.ARRAY,
        {"code": 41272, "date": 41282},
        "Hospital operative procedures: OPCS-4 code and date first recorded",
    ),
    EventTable(
        "operations_opcs3",
        Index.ARRAY,
        {"code": 41273, "date": 41283},
        "Hospital operative procedures before OPCS-4: OPCS-3 code and date first recorded",
    ),
    EventTable(
        "deaths",
        Index.INSTANCE,
        {"date": 40000, "cause": 40001, "age": 40007},
        "Death register: date, underlying (primary) cause (ICD-10) and age at death",
    ),
    EventTable(
        "cancers",
        Index.INSTANCE,
        {
            "date": 40005,
            "code": 40006,
            "code_icd9": 40013,
            "age": 40008,
            "histology": 40011,
            "behaviour": 40012,
        },
        "Cancer register: date, ICD-10 (or ICD-9) code, age, histology and behaviour",
    ),
)

_EVENT_FIELDS: dict[int, EventTable] = {
    fid: table for table in EVENT_TABLES for fid in table.field_ids
}
TABLE_NAMES: tuple[str, ...] = (PARTICIPANTS, *(t.name for t in EVENT_TABLES))


def event_table(name: str) -> EventTable:
    for table in EVENT_TABLES:
        if table.name == name:
            return table
    raise KeyError(f"no event table named {name!r}; known: {', '.join(TABLE_NAMES[1:])}")


def event_table_of(field_id: int) -> EventTable | None:
    """The event table a field is stored in, or None for participant-table fields."""
    return _EVENT_FIELDS.get(field_id)


# -- participant-table column names ------------------------------------------------------

_STORAGE_NAME = re.compile(r"p(?P<field>\d+)(?:_i(?P<instance>\d+))?(?:_a(?P<array>\d+))?")


def column_name(fld: Field, instance: int = 0, array: int = 0) -> str:
    """The participant-table column for one instance and array slot of a field."""
    name = f"p{fld.field_id}"
    if fld.instances > 1:
        name += f"_i{instance}"
    if fld.arrays > 1:
        name += f"_a{array}"
    return name


def parse_column_name(name: str, dictionary: Dictionary) -> FieldKey:
    """The inverse of :func:`column_name`; refuses names that do not fit the field's layout."""
    match = _STORAGE_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"column {name!r} is not a storage column name (expected p<field>…)")
    fld = dictionary.field(int(match["field"]))
    key = FieldKey(fld.field_id, int(match["instance"] or 0), int(match["array"] or 0))
    if name != column_name(fld, key.instance, key.array):
        raise ValueError(
            f"column {name!r} does not fit field {fld.field_id} "
            f"({fld.instances} instance(s), {fld.arrays} array slot(s))"
        )
    check_key(key, fld)
    return key


def check_key(key: FieldKey, fld: Field) -> None:
    """Refuse an instance or array slot the dictionary says the field does not have."""
    if not 0 <= key.instance < fld.instances:
        raise ValueError(
            f"field {fld.field_id} ({fld.name}) has instances 0–{fld.instances - 1}, "
            f"not {key.instance}"
        )
    if not 0 <= key.array < fld.arrays:
        raise ValueError(
            f"field {fld.field_id} ({fld.name}) has array slots 0–{fld.arrays - 1}, "
            f"not {key.array}"
        )


# -- types ----------------------------------------------------------------------------------


def storage_dtype(fld: Field, dictionary: Dictionary) -> pl.DataType:
    """The typed column a field is stored as."""
    vt = fld.value_type
    if vt == ValueType.INTEGER:
        return pl.Int64()
    if vt == ValueType.CONTINUOUS:
        return pl.Float64()
    if vt == ValueType.DATE:
        return pl.Date()
    if vt == ValueType.TIME:
        return pl.Datetime("us")
    if fld.is_categorical:
        coding = dictionary.coding_of(fld)
        return pl.Int64() if coding is not None and coding.integer_codes else pl.String()
    return pl.String()


def participants_schema(dictionary: Dictionary, columns: list[str]) -> dict[str, pl.DataType]:
    """Schema of a participant table holding ``columns`` (storage names)."""
    schema: dict[str, pl.DataType] = {EID: pl.Int64()}
    for name in columns:
        key = parse_column_name(name, dictionary)
        schema[name] = storage_dtype(dictionary.field(key.field_id), dictionary)
    return schema


def event_schema(table: EventTable, dictionary: Dictionary) -> dict[str, pl.DataType]:
    """Schema of an event table: eid, its index, then one column per field it groups."""
    schema: dict[str, pl.DataType] = {EID: pl.Int64(), table.index.value: pl.Int32()}
    for column, fid in table.columns.items():
        if fid in dictionary:
            schema[column] = storage_dtype(dictionary.field(fid), dictionary)
    return schema


# -- the cohort -----------------------------------------------------------------------------


@dataclass
class Cohort:
    """A cohort in the storage model: the participant table and the event tables present."""

    participants: pl.DataFrame
    events: dict[str, pl.DataFrame]

    def tables(self) -> Iterator[tuple[str, pl.DataFrame]]:
        yield PARTICIPANTS, self.participants
        for table in EVENT_TABLES:
            if table.name in self.events:
                yield table.name, self.events[table.name]

    @property
    def n_participants(self) -> int:
        return self.participants.height
