"""Pivot between UK Biobank's wide layout and the storage model (participants + event tables).

In the wide layout a hospital diagnosis is spread over two columns at the same array slot
(``41270-0.3`` holds the code, ``41280-0.3`` its date); a death over columns at the same instance
(``40000-1.0`` date, ``40001-1.0`` cause). ``model.EVENT_TABLES`` says which fields belong
together and which index pairs them; here each slot becomes one event row, and back.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import (
    EID,
    EVENT_TABLES,
    Cohort,
    EventTable,
    FieldKey,
    Index,
    check_key,
    column_name,
    event_table,
    event_table_of,
    parse_column_name,
    storage_dtype,
)
from strongroom.cohort.problems import ROW, Problem


def slot_of(key: FieldKey, table: EventTable) -> int:
    """The index value (array slot or instance) that pairs this column with its siblings."""
    return key.array if table.index == Index.ARRAY else key.instance


def key_at(field_id: int, slot: int, table: EventTable) -> FieldKey:
    return (FieldKey(field_id, 0, slot) if table.index == Index.ARRAY
            else FieldKey(field_id, slot, 0))


def check_keys(
    keys: Mapping[str, FieldKey], dictionary: Dictionary, source: str
) -> tuple[dict[str, FieldKey], list[Problem]]:
    """The columns whose keys the dictionary accepts, and a problem for each one it does not."""
    accepted: dict[str, FieldKey] = {}
    problems: list[Problem] = []
    owner: dict[FieldKey, str] = {}
    for name, key in keys.items():
        if key.field_id not in dictionary:
            problems.append(Problem(
                source,
                f"field {key.field_id} is not in the data dictionary; column dropped "
                "(add the field to the dictionary to ingest it)",
                field=name,
            ))
            continue
        fld = dictionary.field(key.field_id)
        try:
            check_key(key, fld)
        except ValueError as exc:
            problems.append(Problem(source, f"{exc}; column dropped", field=name))
            continue
        table = event_table_of(key.field_id)
        # An event table pairs columns by one index only; the other must be 0.
        if table is not None and (key.instance if table.index == Index.ARRAY else key.array):
            other = "instance" if table.index == Index.ARRAY else "array slot"
            problems.append(Problem(
                source,
                f"field {key.field_id} is stored in event table {table.name!r}, indexed by "
                f"{table.index.value}; {other} {key.instance or key.array} cannot be stored; "
                "column dropped",
                field=name,
            ))
            continue
        if key in owner:
            problems.append(Problem(
                source,
                f"duplicate column: same field, instance and array as {owner[key]!r}; dropped",
                field=name,
            ))
            continue
        owner[key] = name
        accepted[name] = key
    return accepted, problems


def to_model(
    frame: pl.DataFrame,
    keys: Mapping[str, FieldKey],
    dictionary: Dictionary,
    source: str,
) -> tuple[Cohort, list[Problem]]:
    """Wide UKB columns to the participant table and the long event tables.

    ``frame`` holds ``eid``, optionally ``_row``, and the data columns named in ``keys``
    (columns not in ``keys`` are ignored). Participant columns get their storage (RAP) names.
    For each event table, the columns of its fields at one array slot (or instance) form one
    event row; rows whose values are all missing are skipped. Columns the dictionary refuses
    are dropped and reported, as is a missing eid column.
    """
    accepted, problems = check_keys(keys, dictionary, source)
    if EID not in frame.columns:
        # Reported once here; the tables are still built (without eid) so that every other
        # problem in the file is found in the same pass.
        problems.append(Problem(
            source,
            "no participant ID column (expected 'eid', 'f.eid' or 'participant.eid')",
            field=EID,
        ))
    ids = [name for name in (EID, ROW) if name in frame.columns]

    in_tables = {name: key for name, key in accepted.items() if event_table_of(key.field_id)}
    plain = sorted((key, name) for name, key in accepted.items() if name not in in_tables)
    participants = frame.select(
        *ids,
        *(pl.col(name).alias(column_name(dictionary.field(key.field_id), key.instance, key.array))
          for key, name in plain),
    )
    events: dict[str, pl.DataFrame] = {}
    for table in EVENT_TABLES:
        mine = {key: name for name, key in in_tables.items() if key.field_id in table.field_ids}
        if mine:
            events[table.name] = _events(frame, ids, table, mine, dictionary)
    return Cohort(participants, events), problems


def _events(
    frame: pl.DataFrame,
    ids: list[str],
    table: EventTable,
    columns: Mapping[FieldKey, str],
    dictionary: Dictionary,
) -> pl.DataFrame:
    present = {column: fid for column, fid in table.columns.items() if fid in dictionary}
    dtypes = {fid: _dtype_of(fid, frame, columns, dictionary) for fid in present.values()}
    index = table.index.value
    parts = []
    for slot in sorted({slot_of(key, table) for key in columns}):
        values = []
        for column, fid in present.items():
            source = columns.get(key_at(fid, slot, table))
            values.append(pl.col(source).alias(column) if source is not None
                          else pl.lit(None, dtypes[fid]).alias(column))
        parts.append(
            frame.lazy()
            .select(*ids, pl.lit(slot, pl.Int32).alias(index), *values)
            .filter(~pl.all_horizontal(pl.col(list(present)).is_null()))
        )
    # Lazy concat lets Polars scan the slots in parallel; relaxed for typed inputs whose
    # slots disagree (validation reports the values, not the concat).
    order = [*ids[-1:], index]  # source order: by _row (or eid), then slot
    return pl.concat(parts, how="vertical_relaxed").sort(order).collect()


def _dtype_of(
    field_id: int,
    frame: pl.DataFrame,
    columns: Mapping[FieldKey, str],
    dictionary: Dictionary,
) -> pl.DataType:
    """The dtype for a slot a field has no column at: that of its other columns, else text
    when the input is all text, else its storage type."""
    for key, name in columns.items():
        if key.field_id == field_id:
            return frame.schema[name]
    data = [dtype for name, dtype in frame.schema.items() if name not in (EID, ROW)]
    if all(dtype == pl.String for dtype in data):
        return pl.String()
    return storage_dtype(dictionary.field(field_id), dictionary)


def from_model(cohort: Cohort, dictionary: Dictionary) -> tuple[pl.DataFrame, dict[str, FieldKey]]:
    """The storage model back to one wide frame: ``eid`` then one column per (field, instance,
    array) that holds at least one value, named by its storage (RAP) name, in key order.

    Raises ``ValueError`` on a cohort no wide file can represent: duplicate or missing eids in
    the participant table, two events at the same index for one participant, an index or
    column the dictionary does not allow.
    """
    participants = cohort.participants.drop(ROW, strict=False)
    if EID not in participants.columns:
        raise ValueError("the participant table has no eid column")
    if participants[EID].null_count() or participants[EID].is_duplicated().any():
        raise ValueError("the participant table has missing or duplicate eids")
    keys = {name: parse_column_name(name, dictionary)
            for name in participants.columns if name != EID}

    wide = participants
    for name, events in cohort.events.items():
        pivot, table_keys = _pivot(events.drop(ROW, strict=False), event_table(name), dictionary)
        keys |= table_keys
        # Participants keep their order; anyone known only from events comes after them.
        orphans = pivot.select(EID).join(wide.select(EID), on=EID, how="anti")
        if orphans.height:
            wide = pl.concat([wide, orphans], how="diagonal_relaxed")
        wide = wide.join(pivot, on=EID, how="left", maintain_order="left")

    counts = _null_counts(wide)
    kept = sorted((key, name) for name, key in keys.items() if counts[name] < wide.height)
    return wide.select(EID, *(name for _, name in kept)), {name: key for key, name in kept}


def _null_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Nulls per data column (Arrow keeps the count, so this is cheap)."""
    return {name: frame[name].null_count() for name in frame.columns if name != EID}


def _pivot(
    events: pl.DataFrame, table: EventTable, dictionary: Dictionary
) -> tuple[pl.DataFrame, dict[str, FieldKey]]:
    """An event table wide: eid and one column per (field, slot) holding a value."""
    index = table.index.value
    for needed in (EID, index):
        if needed not in events.columns:
            raise ValueError(f"event table {table.name!r} has no {needed!r} column")
    values = [column for column in table.columns if column in events.columns]
    unknown = set(events.columns) - {EID, index, *values}
    if unknown:
        raise ValueError(f"event table {table.name!r} has unknown columns {sorted(unknown)}")
    if not values or events.is_empty():
        return events.select(EID).clear(), {}
    try:
        # One pivot for all the table's fields: they share the index, and Polars refuses a
        # second value in one cell, i.e. two events at the same index for a participant.
        wide = events.pivot(on=index, index=EID, values=values, column_naming="combine")
    except pl.exceptions.ComputeError as exc:
        raise ValueError(
            f"event table {table.name!r} has two events at the same {index} for a participant; "
            "the wide layout has one slot per index"
        ) from exc
    counts = _null_counts(wide)
    names: dict[str, str] = {}
    keys: dict[str, FieldKey] = {}
    for pivoted, nulls in counts.items():
        if nulls == wide.height:  # e.g. the ICD-9 code at a slot where all are ICD-10
            continue
        column, _, slot = pivoted.rpartition("_")
        fld = dictionary.field(table.columns[column])
        key = key_at(fld.field_id, int(slot), table)
        check_key(key, fld)
        names[pivoted] = column_name(fld, key.instance, key.array)
        keys[names[pivoted]] = key
    return wide.select(EID, *(pl.col(old).alias(new) for old, new in names.items())), keys
