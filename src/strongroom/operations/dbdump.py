"""The metadata database as rows, and back: a consistent snapshot of every table, written as
JSON lines, that loads into an empty database of either engine (SQLite or PostgreSQL).

The snapshot is one read: SQLite's online backup API copies the database whole (a consistent
copy while the server writes), PostgreSQL reads in one REPEATABLE READ transaction. Values
keep their Python types through a small tagged form (bytes, timestamps, decimals, JSON
documents), so a row reads back exactly as it was read.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Integer, MetaData, func, insert, select, text

from strongroom import migrations
from strongroom.db import make_engine

VERSION_TABLE = "alembic_version"
BATCH = 5_000


@dataclass(frozen=True)
class TableDump:
    name: str
    rows: int
    lines: bytes  # JSON lines: the column names, then one list of values per row


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$": "f", "v": repr(value)}
    if isinstance(value, bytes | memoryview | bytearray):
        return {"$": "b", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):  # the code writes UTC; SQLite forgets the zone
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return {"$": "t", "v": aware.isoformat()}
    if isinstance(value, dt.date):
        return {"$": "d", "v": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$": "n", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):  # a JSON document
        return {"$": "j", "v": value}
    raise TypeError(f"cannot back up a value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    tag, raw = value["$"], value["v"]
    match tag:
        case "f":
            return float(raw)
        case "b":
            return base64.b64decode(raw)
        case "t":
            return dt.datetime.fromisoformat(raw)
        case "d":
            return dt.date.fromisoformat(raw)
        case "n":
            return decimal.Decimal(raw)
        case "j":
            return raw
    raise ValueError(f"unknown value tag {tag!r}")


@contextmanager
def snapshot(engine: Engine, scratch: Path) -> Iterator[Connection]:
    """A connection that sees one instant of the database, however long it reads."""
    if engine.dialect.name == "sqlite":
        source = engine.url.database
        copy = scratch / f".snapshot-{uuid.uuid4().hex}.db"
        try:
            with sqlite3.connect(str(source)) as src, sqlite3.connect(str(copy)) as dst:
                src.backup(dst)  # one step: a consistent copy
            frozen = make_engine(f"sqlite:///{copy}")
            try:
                with frozen.connect() as con:
                    yield con
            finally:
                frozen.dispose()
        finally:
            for leftover in scratch.glob(f"{copy.name}*"):
                leftover.unlink()
        return
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as con, \
            con.begin():
        yield con


def dump(con: Connection) -> tuple[str | None, list[TableDump]]:
    """Every table's rows (in an order that loads with foreign keys on) and the schema
    revision."""
    meta = MetaData()
    meta.reflect(bind=con)
    revision = None
    if VERSION_TABLE in meta.tables:
        revision = con.execute(select(meta.tables[VERSION_TABLE])).scalar()
    tables = []
    for table in meta.sorted_tables:
        if table.name == VERSION_TABLE:
            continue
        names = [c.name for c in table.columns]
        lines = [json.dumps(names)]
        keys = list(table.primary_key.columns) or list(table.columns)
        for row in con.execute(select(table).order_by(*keys)):
            lines.append(json.dumps([_encode(v) for v in row], separators=(",", ":")))
        tables.append(TableDump(table.name, len(lines) - 1, ("\n".join(lines) + "\n").encode()))
    return revision, tables


def load(engine: Engine, revision: str, tables: dict[str, bytes]) -> int:
    """Create the schema at ``revision`` in an empty database, load every table in one
    transaction, then bring the schema to this release's head. Returns the rows loaded."""
    found = migrations.state(engine)
    if found.schema is not migrations.Schema.EMPTY:
        raise ValueError(f"the database {engine.url.render_as_string(hide_password=True)} "
                         f"already holds tables: restore into an empty one")
    try:
        return _load(engine, revision, tables)
    except BaseException:  # the database was empty: leave it so, for the next try
        leftover = MetaData()
        leftover.reflect(bind=engine)
        leftover.drop_all(bind=engine)
        raise


def _load(engine: Engine, revision: str, tables: dict[str, bytes]) -> int:
    migrations.upgrade(engine, to=revision)
    meta = MetaData()
    loaded = 0
    with engine.begin() as con:
        meta.reflect(bind=con)
        for table in meta.sorted_tables:
            if table.name == VERSION_TABLE or table.name not in tables:
                continue
            lines = tables[table.name].decode().splitlines()
            names = json.loads(lines[0])
            unknown = set(names) - set(table.columns.keys())
            if unknown:
                raise ValueError(f"table {table.name}'s backup has columns the schema at "
                                 f"{revision} lacks: {sorted(unknown)}")
            batch: list[dict[str, Any]] = []
            for line in lines[1:]:
                batch.append(dict(zip(names, map(_decode, json.loads(line)), strict=True)))
                if len(batch) == BATCH:
                    con.execute(insert(table), batch)
                    batch = []
            if batch:
                con.execute(insert(table), batch)
            loaded += len(lines) - 1
            if con.dialect.name == "postgresql":
                _reset_sequences(con, table)
    migrations.upgrade(engine)
    return loaded


def _reset_sequences(con: Connection, table: Any) -> None:
    """Rows loaded with their ids leave PostgreSQL's sequences behind them: move them on."""
    for column in table.primary_key.columns:
        if not isinstance(column.type, Integer):
            continue
        sequence = con.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": column.name}).scalar()
        if sequence:
            top = con.execute(select(func.max(column))).scalar()
            con.execute(text("SELECT setval(:s, :n, false)"), {"s": sequence,
                                                                  "n": (top or 0) + 1})
