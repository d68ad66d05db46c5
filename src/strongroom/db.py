"""The metadata database: SQLAlchemy 2 on SQLite by default, PostgreSQL in production.

Domain packages declare their tables on :class:`Base`; this module only makes engines.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CursorResult, DateTime, Dialect, Engine, Result, create_engine, event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    """Declarative base shared by every domain package's tables."""


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored in UTC and read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return None if value is None else value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if not isinstance(value, dt.datetime):
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and foreign keys, as production databases have."""
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            # deleted rows (a destroyed project key, an ended session) are zeroed on disk
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

    return engine


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (typed: ``Session.execute`` returns a plain Result)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def purge_deleted(engine: Engine) -> None:
    """Make deleted bytes (a destroyed key) unrecoverable from the database files.

    SQLite: ``secure_delete`` zeroes freed pages in the main file, but the write-ahead log still
    holds earlier copies of those pages until it is checkpointed and truncated. PostgreSQL keeps
    old row versions until VACUUM, which cannot run inside the caller's transaction: run it from
    maintenance (see docs/explanation/access-control.md).
    """
    if engine.dialect.name == "sqlite":
        with engine.connect() as con:
            con.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def create_all(engine: Engine) -> None:
    Base.metadata.create_all(engine)
