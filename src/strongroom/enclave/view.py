"""The per-project view: only granted fields, keyed by the project's pseudonyms.

A project sees a table ``participants`` holding ``pid`` (its own pseudonymous ID, never the
master ``eid``) and the participant-table columns of its granted fields, plus each event table
of which at least one field is granted, cut down to ``pid``, the table's index and the granted
columns. Nothing else exists in the project's world, so nothing else can be reached from its
SQL. Rows are ordered by ``pid``: the cohort's own order follows ``eid``, and a row number over
an unordered view would otherwise hand the researcher the master ID's rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl
from polars._typing import PolarsDataType

from strongroom.cohort.dictionary import Dictionary, Role
from strongroom.cohort.model import (
    EID,
    EVENT_TABLES,
    PARTICIPANTS,
    Cohort,
    EventTable,
    event_schema,
    parse_column_name,
)
from strongroom.enclave.sources import Table
from strongroom.errors import Invalid

PID = "pid"

# Polars dtype -> DuckDB type name, and back. Only the types the storage model produces (and a
# few a definition may derive) are known; anything else is refused rather than guessed.
_DUCKDB_TYPES: dict[pl.DataType, str] = {
    pl.Int8(): "TINYINT",
    pl.Int16(): "SMALLINT",
    pl.Int32(): "INTEGER",
    pl.Int64(): "BIGINT",
    pl.UInt8(): "UTINYINT",
    pl.UInt16(): "USMALLINT",
    pl.UInt32(): "UINTEGER",
    pl.UInt64(): "UBIGINT",
    pl.Float32(): "FLOAT",
    pl.Float64(): "DOUBLE",
    pl.Boolean(): "BOOLEAN",
    pl.String(): "VARCHAR",
    pl.Date(): "DATE",
    pl.Datetime("us"): "TIMESTAMP",
    pl.Time(): "TIME",
    pl.Null(): "NULL",
}
_POLARS_TYPES: dict[str, pl.DataType] = {v: k for k, v in _DUCKDB_TYPES.items()}


@dataclass(frozen=True)
class ProjectSchema:
    """What a project may see: table -> column -> DuckDB type name."""

    tables: dict[str, dict[str, str]]

    def granted_columns(self) -> list[tuple[str, str]]:
        """Every (table, column) the project may read, ``pid`` and index columns included."""
        return [(t, c) for t, columns in self.tables.items() for c in columns]

    def has(self, table: str, column: str) -> bool:
        return column in self.tables.get(table, {})

    def merged(self, other: ProjectSchema) -> ProjectSchema:
        """This schema plus ``other``'s tables (e.g. the project's earlier definitions)."""
        return ProjectSchema({**self.tables, **other.tables})


def duckdb_type(dtype: PolarsDataType) -> str:
    """The DuckDB type name of a Polars dtype; lists as ``T[]``. Unknown types are refused."""
    dtype = dtype if isinstance(dtype, pl.DataType) else dtype()
    if isinstance(dtype, pl.List):
        return duckdb_type(dtype.inner) + "[]"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.Decimal):
        return "DOUBLE"
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return "VARCHAR"
    name = _DUCKDB_TYPES.get(dtype)
    if name is None:
        raise Invalid(f"a column of type {dtype} cannot be used in the enclave; "
                      "cast it to a number, text, date or a list of those")
    return name


def polars_type(name: str) -> pl.DataType:
    """The Polars dtype for a DuckDB type name from :func:`duckdb_type`."""
    if name.endswith("[]"):
        return pl.List(polars_type(name[:-2]))
    if name == "TIMESTAMPTZ":
        return pl.Datetime("us", "UTC")
    try:
        return _POLARS_TYPES[name]
    except KeyError:
        raise Invalid(f"the column type {name} is not one the enclave knows") from None


def schema_of(tables: Mapping[str, Table]) -> ProjectSchema:
    """The schema of a set of frames, in DuckDB type names."""
    return ProjectSchema({
        name: {c: duckdb_type(t) for c, t in frame.schema.items()}
        for name, frame in tables.items()
    })


def project_view(
    cohort: Cohort,
    pseudonyms: pl.DataFrame,
    fields: Iterable[int],
    dictionary: Dictionary,
) -> dict[str, pl.DataFrame]:
    """The project's tables: granted columns only, ``pid`` instead of ``eid``.

    Participants without a pseudonym are left out. An event table whose granted fields the
    cohort does not hold appears empty with its schema, so a project's schema depends on its
    grant and the dictionary, not on which events happen to be present.
    """
    granted = _granted(fields, dictionary)
    ids = pseudonyms.select(pl.col(EID).cast(pl.Int64), pl.col(PID).cast(pl.Int64))
    view = {PARTICIPANTS: _participants(cohort.participants, ids, granted, dictionary)}
    for table in EVENT_TABLES:
        columns = [c for c, fid in table.columns.items() if fid in granted]
        if columns:
            view[table.name] = _events(table, cohort.events.get(table.name), columns, ids,
                                       dictionary)
    return view


def _granted(fields: Iterable[int], dictionary: Dictionary) -> set[int]:
    granted = {int(f) for f in fields}
    unknown = sorted(f for f in granted if f not in dictionary)
    if unknown:
        raise Invalid(f"the grant names fields the dictionary does not hold: "
                      f"{', '.join(map(str, unknown))}; grant fields from the dictionary only")
    direct = sorted(f for f in granted if dictionary.field(f).role == Role.DIRECT_IDENTIFIER)
    if direct:
        raise Invalid(f"fields {', '.join(map(str, direct))} are direct identifiers and are "
                      "never part of a project view; remove them from the grant")
    return granted


def _participants(
    table: pl.DataFrame, ids: pl.DataFrame, granted: set[int], dictionary: Dictionary
) -> pl.DataFrame:
    columns = [c for c in table.columns if c != EID and _field_of(c, dictionary) in granted]
    return (
        table.select(EID, *columns)
        .join(ids, on=EID, how="inner")
        .select(PID, *columns)
        .sort(PID)
    )


def _field_of(column: str, dictionary: Dictionary) -> int | None:
    """The field a participant-table column holds; None for anything unexpected (left out)."""
    try:
        return parse_column_name(column, dictionary).field_id
    except (ValueError, KeyError):
        return None


def _events(
    table: EventTable,
    frame: pl.DataFrame | None,
    columns: list[str],
    ids: pl.DataFrame,
    dictionary: Dictionary,
) -> pl.DataFrame:
    index = table.index.value
    if frame is None:
        schema = event_schema(table, dictionary)
        wanted = (EID, index, *columns)
        frame = pl.DataFrame(schema={c: t for c, t in schema.items() if c in wanted})
    present = [c for c in columns if c in frame.columns]
    return (
        frame.select(EID, index, *present)
        .join(ids, on=EID, how="inner")
        .select(PID, index, *present)
        .sort(PID, maintain_order=True)  # a participant's rows keep their stored order
    )


@dataclass(frozen=True)
class Projection:
    """One table of a project's view, described from the cohort's schemas alone: cut from the
    cohort table ``source`` (None: the cohort holds no such table, so the view's is empty),
    keeping ``pid`` and then ``kept`` of the source's columns; ``schema``: the view table's,
    as :func:`project_view` makes it."""

    source: str | None
    kept: tuple[str, ...]
    schema: pl.Schema


def view_plan(
    schemas: Mapping[str, Mapping[str, pl.DataType]],
    fields: Iterable[int],
    dictionary: Dictionary,
) -> dict[str, Projection]:
    """The project's view as :func:`project_view` builds it, from the cohort tables' schemas
    (``schemas``, by table name) instead of their rows: what an engine that keeps the cohort
    elsewhere (a cluster's storage) needs to build the view there, with the same names,
    columns and types."""
    granted = _granted(fields, dictionary)
    held = schemas.get(PARTICIPANTS, {})
    columns = [c for c in held if c != EID and _field_of(c, dictionary) in granted]
    plan = {PARTICIPANTS: Projection(PARTICIPANTS, tuple(columns), pl.Schema(
        {PID: pl.Int64(), **{c: held[c] for c in columns}}))}
    for table in EVENT_TABLES:
        columns = [c for c, fid in table.columns.items() if fid in granted]
        if not columns:
            continue
        index = table.index.value
        source: str | None = table.name
        schema = schemas.get(table.name)
        if schema is None:
            source = None
            wanted = (EID, index, *columns)
            schema = {c: t for c, t in event_schema(table, dictionary).items() if c in wanted}
        present = [c for c in columns if c in schema]
        plan[table.name] = Projection(source, (index, *present), pl.Schema(
            {PID: pl.Int64(), index: schema[index], **{c: schema[c] for c in present}}))
    return plan
