"""The metadata database: SQLAlchemy 2 on SQLite by default, PostgreSQL in production.

Domain packages declare their tables on :class:`Base`; this module only makes engines.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    DateTime,
    Dialect,
    Engine,
    Result,
    create_engine,
    event,
)
from sqlalchemy.exc import DBAPIError, OperationalError
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


# How long a SQLite transaction waits for the one writer before it fails (then: "database is
# busy", a 503 the client may retry): longer than any transaction the platform holds.
SQLITE_WAIT_SECONDS = 60.0


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and foreign keys, as production databases have,
    and one writer at a time (:class:`_OneWriter`)."""
    if not url.startswith("sqlite"):
        return create_engine(url, future=True)
    memory = url in ("sqlite://", "sqlite:///:memory:")
    # many request threads wait their turn for the writer: the pool must not be what fails
    engine = create_engine(url, future=True, connect_args={"timeout": SQLITE_WAIT_SECONDS},
                           **({} if memory else {"pool_size": 8, "max_overflow": -1}))

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # the driver's own transaction handling off: the "begin" event says how to begin
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        # deleted rows (a destroyed project key, an ended session) are zeroed on disk
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    _OneWriter(engine)
    return engine


class _OneWriter:
    """SQLite's transactions, one at a time in this process, each holding the write lock from
    its first statement (``BEGIN IMMEDIATE``).

    A deferred transaction that reads and then writes fails at once with "database is locked"
    when another connection wrote in between (its snapshot is stale, and SQLite's busy wait
    cannot help); thirty clients made that an HTTP 500 in three. Taking the write lock at
    BEGIN makes every transaction wait its turn instead, in this process on a lock (first come,
    first served) and against other processes (the CLI beside the server) on SQLite's busy
    timeout. A transaction begun on a thread that already holds the writer (a read nested in a
    write) begins deferred: waiting for itself would never end.
    """

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._holder: tuple[Connection, int] | None = None  # and the thread that began it
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)

    def _begin(self, conn: Connection) -> None:
        holder = self._holder
        if holder is not None and holder[1] == threading.get_ident():
            conn.exec_driver_sql("BEGIN")
            return
        if not self._lock.acquire(timeout=SQLITE_WAIT_SECONDS):
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(
                f"database is busy: no turn to write within {SQLITE_WAIT_SECONDS:g} s"))
        self._holder = (conn, threading.get_ident())
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._end(conn)
            raise

    def _end(self, conn: Connection) -> None:
        holder = self._holder
        if holder is not None and holder[0] is conn:
            self._holder = None
            self._lock.release()


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
        # outside any transaction (in one, SQLite refuses: "database table is locked"); the
        # driver's own handling is off (make_engine), so the statement runs as it is
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def create_all(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def explain(exc: DBAPIError, url_in: str = "the data directory's strongroom.yaml") -> str:
    """What a failed database call means to an operator, and what to do about it (the caller
    says what it did or did not change). The driver's first line is quoted: later lines can
    carry a row's values (PostgreSQL's DETAIL), which never go into a message."""
    said = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    low = str(exc.orig).lower()
    if "disk is full" in low or "no space left" in low or "could not extend file" in low:
        return (f"the disk holding the metadata database is full ({said}). Free space there, "
                f"then run the command again")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (f"the metadata database is damaged ({said}). Restore it from a backup; "
                f"`strongroom store check -d DIR` says what the data directory holds, and "
                f"`strongroom store recover -d DIR --operator NAME --reason TEXT` rebuilds the "
                f"cohort's records from its sealed versions")
    if busy(exc):
        return (f"the metadata database is busy ({said}): every transaction waited its turn "
                f"for {SQLITE_WAIT_SECONDS:g} s. Try again; if it persists, something holds "
                f"a transaction open (another process on the same SQLite file), or the load "
                f"needs PostgreSQL")
    if isinstance(exc, OperationalError) and any(word in low for word in (
            "connect", "refused", "timeout", "timed out", "could not translate host",
            "unable to open database file", "server closed")):
        return (f"cannot reach the metadata database ({said}). Check that its server is "
                f"running and reachable (or, for SQLite, that the file's directory exists and "
                f"is readable), and the database URL in {url_in}")
    return (f"the metadata database failed ({said}). `strongroom store check -d DIR` says "
            f"whether the store is consistent")


def busy(exc: BaseException) -> bool:
    """The database had no turn to give within its wait (SQLite's lock, PostgreSQL's lock or
    statement timeout): a request to try again, not a fault."""
    if not isinstance(exc, OperationalError):
        return False
    low = str(exc.orig).lower()
    return any(word in low for word in ("database is locked", "database is busy",
                                        "lock timeout", "deadlock detected"))
