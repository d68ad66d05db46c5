"""Running checked SQL in a DuckDB connection that can reach nothing but the project's tables.

The guard (:mod:`strongroom.enclave.sqlguard`) decides what SQL may say; this module makes sure
that even SQL that slipped past it could do no harm: the database is in memory with external
access (files, network), extension loading, reading Python variables and spilling to disk
switched off and its configuration locked, so no statement can switch them back on; the tables
a query reads are copied into it (real tables, not views over Python objects). Memory, threads,
run time and result size are bounded.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import polars as pl
from polars._typing import PolarsDataType

from strongroom.errors import DataRefusal, Invalid

log = logging.getLogger(__name__)

_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Limits:
    """What queries may use. ``seconds`` bounds each query's run time; ``max_rows`` the rows a
    query could produce, judged from its SQL before it runs (enclave/sizes.py; twice the
    project's largest table if that is more); ``memory`` and ``threads`` bound the database
    that queries with these limits share, so one greedy query can make concurrent ones fail
    rather than the server."""

    memory: str = "512MB"
    threads: int = 2
    seconds: float = 10.0
    max_rows: int = 5_000_000
    # which shared database queries with these limits run in: real-data requests share one
    # (""), builds over dummy data another ("dummy", enclave.service.dummy_inputs), so that
    # what a concurrent real-data request holds (memory, threads) never decides what an
    # unscheduled, unrationed download of dummy data can build
    pool: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)", self.memory):
            raise ValueError(f"memory limit {self.memory!r} is not like '512MB'")
        if self.threads < 1 or self.seconds <= 0 or self.max_rows < 1:
            raise ValueError("threads, seconds and max_rows must be positive")


def locked_connection(
    tables: Mapping[str, pl.DataFrame], limits: Limits
) -> duckdb.DuckDBPyConnection:
    """A connection of its own holding copies of ``tables``, in a locked database.

    The tables are temporary tables of this connection: no other connection sees them, and
    they go when it is closed (:func:`release`). The database they live in was locked before
    it held anything (:func:`_database`).
    """
    con = _database(limits).cursor()
    try:
        for name, frame in tables.items():
            if not _TABLE_NAME.fullmatch(name):
                raise Invalid(f"{name!r} is not a table name (lower-case letters, digits, _)")
            # a real table, so that nothing later scans a Python object by name
            con.register("_incoming", frame.to_arrow())
            con.execute(f'CREATE TEMP TABLE "{name}" AS SELECT * FROM "_incoming"')  # noqa: S608
            con.unregister("_incoming")
    except duckdb.OutOfMemoryException:
        # an earlier definition's size is data (it can hang on one person's value), so this
        # refusal is an answer: a DataRefusal, rationed by the output service, never free
        con.close()
        raise DataRefusal(f"the tables the query reads need more than the memory limit of "
                          f"{limits.memory}; read fewer columns") from None
    except BaseException:
        con.close()
        raise
    return con


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Close a connection from :func:`locked_connection`; its tables go with it."""
    con.close()


# One in-memory database per (memory, threads, pool), opened once and locked before it holds any
# table: opening a database costs 15-25 ms of a grouped count's budget, a connection to an
# open one almost nothing. Requests never share tables (each has temporary tables of its own,
# found before anything in the shared catalog), and what runs is always one checked SELECT
# wrapped as a subquery (:func:`run`), which cannot create anything there.
_DATABASES: dict[tuple[str, int, str], duckdb.DuckDBPyConnection] = {}
_OPENING = threading.Lock()


def _database(limits: Limits) -> duckdb.DuckDBPyConnection:
    key = (limits.memory, limits.threads, limits.pool)
    with _OPENING:
        database = _DATABASES.get(key)
        if database is None:
            database = duckdb.connect(":memory:")
            # temp_directory first: it may not change once external access is off. Without
            # one, nothing unencrypted spills to disk; a query over the memory limit fails.
            for setting in (
                "SET temp_directory = ''",
                f"SET memory_limit = '{limits.memory}'",
                f"SET threads = {int(limits.threads)}",
                "SET python_enable_replacements = false",  # no Python variables by name
                "SET autoinstall_known_extensions = false",
                "SET autoload_known_extensions = false",
                "SET allow_community_extensions = false",
                "SET enable_external_access = false",
                "SET lock_configuration = true",
            ):
                database.execute(setting)
            _DATABASES[key] = database
    return database


@atexit.register
def _close_databases() -> None:
    with _OPENING:
        for database in _DATABASES.values():
            database.close()
        _DATABASES.clear()


def run(con: duckdb.DuckDBPyConnection, sql: str, limits: Limits,
        max_rows: int | None = None) -> pl.DataFrame:
    """The result of one checked SELECT, stopped after ``limits.seconds`` or ``max_rows`` rows.

    ``max_rows`` (at least ``limits.max_rows``): what the query's size bound was checked
    against (enclave/sizes.py), so that a checked query never meets this limit; it stays as
    a safety net."""
    most = max(limits.max_rows, max_rows or 0)
    bounded = f"SELECT * FROM ({sql}) AS _result LIMIT {most + 1}"  # noqa: S608
    lock = threading.Lock()
    state = {"running": True, "stopped": False}

    def stop() -> None:
        with lock:  # never interrupt a connection whose query has already finished
            if state["running"]:
                state["stopped"] = True
                con.interrupt()

    # DuckDB notices an interrupt between chunks of work: a join that multiplies one chunk's
    # rows a billion-fold can overrun the limit by seconds (the memory limit still holds)
    timer = threading.Timer(limits.seconds, stop)  # cancelled below, whatever happens
    timer.start()
    try:
        try:
            # bound here, before a row is read: the query's own mistakes are found now, and
            # only these may be told for free (Invalid)
            relation = con.sql(bounded)
        except duckdb.Error as exc:
            raise failure(exc, limits, timed_out=state["stopped"]) from None
        frame = plain_types(relation.pl())
    except duckdb.Error as exc:
        # met while executing, that is once rows are read: whatever its class (a binder's,
        # a catalog's, a permission's error met only on some values), it can hang on them
        raise failure(exc, limits, timed_out=state["stopped"], executing=True) from None
    except pl.exceptions.PolarsError:
        raise stopped(limits) from None
    finally:
        with lock:
            state["running"] = False
        timer.cancel()
    if frame.height > most:
        raise stopped(limits)
    return frame


def stopped(limits: Limits) -> DataRefusal:
    """Why a query stopped once it read the data: one sentence, whatever stopped it. Which of
    the limits or which kind of value stopped it is itself an answer about the data (the red
    team read three outcomes from one rationed refusal), so the reason names them all and
    the custodian's log has the kind."""
    return DataRefusal(
        # no apostrophe: the reasons' quoting (outputs/service.py _QUOTED) would take it
        f"the query stopped once it had read the data: it met one of the limits of the "
        f"enclave (the time limit of {limits.seconds:g} s, the memory limit of "
        f"{limits.memory}, {limits.max_rows:,} rows) or a value or type it could not keep or "
        f"convert (a text that is not a number, a number out of the range of its type or "
        f"past 64 bits, an INTERVAL, an input a function cannot take). Which one is an answer "
        f"about the data, so it is not said. Try the query on the dummy data of the project, "
        f"use TRY_CAST, narrow it with WHERE, select fewer columns or split it into "
        f"definitions")


def plain_types(frame: pl.DataFrame) -> pl.DataFrame:
    """DuckDB's decimals (``sum`` of integers is a 38-digit one) as 64-bit numbers."""
    # not strict: a value too large for 64 bits becomes NULL, since an error would answer
    # "is anyone's total that large?" (sqlguard.harden does the same inside the query)
    casts = [pl.col(c).cast(_plain(t), strict=False) for c, t in frame.schema.items()
             if _plain(t) != t]
    return frame.with_columns(casts) if casts else frame


def _plain(dtype: PolarsDataType) -> PolarsDataType:
    if isinstance(dtype, pl.Decimal):
        return pl.Int64() if dtype.scale == 0 else pl.Float64()
    if isinstance(dtype, pl.List):
        return pl.List(_plain(dtype.inner))
    return dtype


# Errors about the query text itself: their messages name the query's own words, not data.
_QUERY_ERRORS = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                 duckdb.SyntaxException, duckdb.NotImplementedException)


def failure(exc: duckdb.Error, limits: Limits, timed_out: bool,
            executing: bool = False) -> Invalid:
    """A DuckDB error as a reason for the researcher, without participant values: a mistake
    in the query (:class:`Invalid`), or a failure that the data may have caused
    (:class:`DataRefusal`). ``executing``: met once the query ran (it had bound), when rows
    were read: never a mistake of the query's, whatever its class (the red team,
    tests/integration/test_redteam_reasons.py: a free ``Invalid`` there was a free bit)."""
    if timed_out or isinstance(exc, duckdb.InterruptException) or executing:
        log.info("a query stopped once it had read the data: %s%s", type(exc).__name__,
                 " (its time limit)" if timed_out else "")
        return stopped(limits)
    if isinstance(exc, duckdb.PermissionException):
        return Invalid("the query tried to reach files, the network, extensions or settings, "
                       "which the enclave does not allow; use the project's tables only")
    if isinstance(exc, _QUERY_ERRORS):
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Invalid(f"DuckDB could not run the query: {first_line}")
    log.info("a query stopped: %s", type(exc).__name__)
    return stopped(limits)


def needed(
    tables: Mapping[str, pl.DataFrame], used: Mapping[str, set[str]]
) -> dict[str, pl.DataFrame]:
    """Only the tables and columns a query reads, so a locked connection copies no more.

    A table read without naming a column (``count(*)``) keeps its first column.
    """
    missing = sorted(set(used) - set(tables))
    if missing:
        raise Invalid(f"the tables {', '.join(missing)} are in the project's schema but not "
                      "loaded; ask the custodian to check the project view")
    out: dict[str, pl.DataFrame] = {}
    for name, columns in used.items():
        frame = tables[name]
        keep = [c for c in frame.columns if c in columns] or frame.columns[:1]
        out[name] = frame.select(keep)
    return out
