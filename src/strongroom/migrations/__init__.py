"""Schema versions of the metadata database (Alembic revisions in ``versions/``).

Every schema change ships as a revision here. A store's database carries the revision it is at
(Alembic's ``alembic_version`` table); the code opens only a database at its own head revision
and says what to do otherwise: ``strongroom upgrade DIR`` for an older one, the newer release
(or a backup) for a newer one. Nothing here creates a table anywhere else.
"""

from __future__ import annotations

import enum
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect
from sqlalchemy.pool import StaticPool

HERE = Path(__file__).parent
BASELINE = "0001"
# a table every release since the baseline has: tables without a version are that release's
MARKER_TABLE = "cohort_versions"


class Schema(enum.Enum):
    CURRENT = "current"  # at the code's head revision
    EMPTY = "empty"  # no table at all
    UNVERSIONED = "unversioned"  # tables from before schema versions (16a023a or earlier)
    OLDER = "older"  # an earlier revision: `strongroom upgrade`
    NEWER = "newer"  # a revision this code does not know: a newer release made it


@dataclass(frozen=True)
class SchemaState:
    schema: Schema
    revision: str | None  # the database's revision (None when it has none)
    head: str


def newer_schema(found: SchemaState) -> str:
    """Why a database a newer release made is refused (a downgrade), and what to do."""
    return (f"the metadata database is at schema revision {found.revision}, which this release "
            f"does not know (it knows up to {found.head}): a newer Strongroom release made or "
            f"upgraded it, and this older one must not write to it. Nothing was changed. Run "
            f"that release or a newer one, or restore a backup this release made")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


@cache
def _script() -> ScriptDirectory:
    """The revisions, read once per process (reading them loads every revision's module)."""
    return ScriptDirectory.from_config(_config())


def head() -> str:
    found = _script().get_current_head()
    assert found is not None
    return found


def _known(revision: str) -> bool:
    return any(s.revision == revision for s in _script().walk_revisions())


def state(engine: Engine) -> SchemaState:
    """Where the database stands against the code; reads only."""
    top = head()
    with engine.connect() as con:
        revision = MigrationContext.configure(con).get_current_revision()
        tables = set(inspect(con).get_table_names()) - {"alembic_version"}
    if revision is None:
        return SchemaState(Schema.UNVERSIONED if MARKER_TABLE in tables else Schema.EMPTY,
                           None, top)
    if revision == top:
        return SchemaState(Schema.CURRENT, revision, top)
    return SchemaState(Schema.OLDER if _known(revision) else Schema.NEWER, revision, top)


class UpgradeError(Exception):
    """An upgrade that did not happen; the message says what the database holds now."""


@dataclass(frozen=True)
class Late:
    """A revision merged in beneath revisions that had already shipped without it: a store
    stamped at one of ``stamped`` by such a release never ran it, though Alembic's chain says
    it did. Whether it ran is read from what it makes (``table``, or ``column`` in it)."""
    revision: str
    stamped: frozenset[str]
    table: str
    column: str | None = None


# 0006 (the audit outbox) and 0007 were written on branches beside 0007 and 0008, each on 0005:
# from d333bc7 (0007 on 0005) until 79ab28d put 0006 under 0007, releases stamped their stores
# 0007 or 0008 with no audit_outbox; the trace branch (0008 on 0005, before 6f65838 put 0008
# on 0007) stamped them 0008 with neither. Such a store has the missing ones applied first,
# in order: each only adds its own table or columns, which nothing between touches.
LATE = (
    Late("0006", frozenset({"0007", "0008"}), "audit_outbox"),
    Late("0007", frozenset({"0008"}), "privacy_budgets", "left_at"),
)


def _skipped(engine: Engine, revision: str | None) -> list[str]:
    """The late revisions a database stamped ``revision`` never ran (see :data:`LATE`)."""
    late = [lr for lr in LATE if revision in lr.stamped]
    if not late:
        return []
    with engine.connect() as con:
        seen = inspect(con)
        tables = set(seen.get_table_names())
        return [lr.revision for lr in late
                if lr.table not in tables or (lr.column is not None and lr.column not in
                                               {c["name"] for c in seen.get_columns(lr.table)})]


def _apply(con: Connection, revisions: list[str]) -> None:
    """Run ``revisions``' own upgrade steps, in order, in the caller's transaction (for the
    late ones a store's stamp skips: Alembic's own upgrade would not run them)."""
    script = _script()
    with Operations.context(MigrationContext.configure(con)):
        for revision in revisions:
            found = script.get_revision(revision)
            assert found is not None and found.module is not None
            found.module.upgrade()


def upgrade(engine: Engine, to: str = "head",
            then: Callable[[Connection, list[str]], None] | None = None) -> list[str]:
    """Bring the database to the head revision (or ``to``), all or nothing (an unversioned
    database is adopted by the baseline). ``then`` runs last in the upgrade's transaction with
    the revisions applied (the upgrade's audit event commits with it; raising there undoes the
    upgrade). Returns the revisions applied; raises :class:`UpgradeError` saying what
    happened to the database when any step fails. A revision the database's release skipped
    though its stamp is past it (:data:`LATE`) is applied first and listed first.

    PostgreSQL: every revision runs in one transaction (its DDL is transactional). SQLite: the
    same, with foreign keys off while tables are rebuilt (the pragma only takes effect outside
    a transaction) and every foreign key checked before commit; and a copy of the database,
    taken under the upgrade's write lock, is restored if anything fails."""
    before = state(engine)
    if before.schema is Schema.NEWER:
        raise UpgradeError(newer_schema(before))
    script = _script()
    target = before.head if to == "head" else to
    late = _skipped(engine, before.revision)
    done = late + list(reversed([s.revision
                                 for s in script.iterate_revisions(target, before.revision)]))
    discard_stale_copy(engine)
    if not done:
        return []
    file = _sqlite_file(engine)
    if file is not None and before.schema is Schema.EMPTY and to == "head" and then is None:
        _copy_head_schema(engine)  # a new database: nothing in it to migrate
        return done
    if file is None:
        try:
            if before.schema is Schema.EMPTY and to == "head" and then is None:
                _new_database(engine, done)
            else:
                with engine.begin() as con:
                    _migrate(con, to, done, then, late)
        except Exception as exc:
            raise UpgradeError(f"the upgrade to {target} failed ({_said(exc)}); nothing was "
                               f"changed: it ran in one transaction, which was rolled "
                               f"back") from exc
        return done
    return _upgrade_sqlite(engine, file, to, target, done, then, late)


@cache
def _head_schema() -> sqlite3.Connection:
    """An empty SQLite database at the head revision, in memory: made once per process by
    the same migrations, in the same way (foreign keys off while tables are rebuilt, then
    checked), that upgrade an empty database file."""
    memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    engine = create_engine("sqlite://", creator=lambda: memory, poolclass=StaticPool)

    @event.listens_for(engine, "begin")
    def _begin(con: Connection) -> None:  # pysqlite's own BEGIN handling is off
        con.exec_driver_sql("BEGIN IMMEDIATE")

    with engine.connect() as con, con.begin():
        _migrate(con, "head", [], None, [])
        _check_foreign_keys(con)
    return memory


def _copy_head_schema(engine: Engine) -> None:
    """Bring a new, empty SQLite database to head by copying :func:`_head_schema` into it
    (SQLite's backup API: one step, under the database's write lock; a WAL database stays
    WAL). The same tables, indexes and revision as running every migration on it, in a
    fraction of the time: a new store (tests make hundreds) needs no per-step rebuilds."""
    with engine.connect() as con:
        raw = con.connection.dbapi_connection
        assert raw is not None
        _head_schema().backup(raw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Statement:
    sql: str
    parameters: Any
    many: bool


# what brought this process's first new database of each server version to head, replayed
# on the next ones (see _new_database)
_RECORDED: dict[tuple[object, ...], tuple[_Statement, ...]] = {}


def _new_database(engine: Engine, done: list[str]) -> None:
    """Bring a new, empty database (PostgreSQL) to head, in one transaction: the first one
    of its server version in this process by every migration, recording each statement sent;
    the next ones by sending those statements again, in order. The same statements in the
    same order on an empty schema make the same schema (tests/integration/test_new_schema.py
    compares the two) in a fifteenth of the CPU: Alembic's per-step work is done once per
    process, not for each of the hundreds of stores tests make. A run that wrote any row but
    its revision is never replayed (a value it drew would be copied to every database)."""
    with engine.begin() as con:
        key = (con.dialect.name, con.dialect.server_version_info, done[-1])
        recorded = _RECORDED.get(key)
        if recorded is not None:
            cursor = con.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            for statement in recorded:
                if statement.many:
                    cursor.executemany(statement.sql, statement.parameters)
                else:
                    cursor.execute(statement.sql, statement.parameters)
            return
        sent: list[_Statement] = []

        def record(_con: Connection, _cursor: object, sql: str, parameters: Any,
                   _context: object, many: bool) -> None:
            sent.append(_Statement(sql, parameters, many))

        event.listen(con, "before_cursor_execute", record)
        try:
            _migrate(con, "head", done, None, [])
        finally:
            event.remove(con, "before_cursor_execute", record)
    if all(_writes_no_row(s.sql) for s in sent):
        _RECORDED[key] = tuple(sent)


def _writes_no_row(sql: str) -> bool:
    """Whether a statement of a new database's migration leaves no row but the revision's:
    an INSERT into anything but ``alembic_version`` might write a value drawn on the run."""
    words = sql.split(None, 3)
    return not words or words[0].upper() != "INSERT" or (
        len(words) > 2 and words[2].strip('"').lower() == "alembic_version")


def _migrate(con: Connection, to: str, done: list[str],
             then: Callable[[Connection, list[str]], None] | None, late: list[str]) -> None:
    _apply(con, late)
    config = _config()
    config.attributes["connection"] = con
    command.upgrade(config, to)
    if then is not None:
        then(con, done)


COPY_SUFFIX = ".before-upgrade"  # the copy taken before an upgrade, beside the database
KEPT_SUFFIX = ".upgrade-failed"  # that copy, kept when restoring it failed


def _sqlite_file(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def _upgrade_sqlite(engine: Engine, file: Path, to: str, target: str, done: list[str],
                    then: Callable[[Connection, list[str]], None] | None,
                    late: list[str]) -> list[str]:
    copy = file.with_name(file.name + COPY_SUFFIX)
    kept = file.with_name(file.name + KEPT_SUFFIX)
    if kept.exists():
        raise UpgradeError(
            f"an earlier upgrade failed and could not restore its copy of the database, kept "
            f"at {kept}. Nothing was changed. Stop Strongroom, copy {kept} over {file} (and "
            f"remove {file}-wal and {file}-shm), then remove {kept} and upgrade again")
    try:
        with engine.connect() as con:
            raw = con.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, or it is ignored
            try:
                with con.begin():  # BEGIN IMMEDIATE: no one writes until this ends
                    _take_copy(file, copy)
                    _migrate(con, to, done, then, late)
                    _check_foreign_keys(con)
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
    except Exception as exc:
        raise UpgradeError(_restore(engine, file, copy, kept, target, exc)) from exc
    _remove(copy)
    return done


def discard_stale_copy(engine: Engine) -> None:
    """Remove the copy an upgrade killed before it finished left beside a SQLite database: it
    is never needed, since the upgrade commits in one SQLite transaction, so the database
    itself is either as it was or upgraded (and a stale copy keeps deleted rows alive)."""
    file = _sqlite_file(engine)
    if file is not None:
        _remove(file.with_name(file.name + COPY_SUFFIX))
        _remove(file.with_name(file.name + COPY_SUFFIX + ".partial"))


def _take_copy(file: Path, copy: Path) -> None:
    """The database as it stands (its write-ahead log included), through SQLite's backup API
    from a second connection: the upgrade's own holds the write lock, so the copy is exactly
    what the upgrade starts from. Written aside, then renamed: a copy is whole or absent."""
    partial = copy.with_name(copy.name + ".partial")
    _remove(partial)
    # the owner's only, as the database is (sqlite3 would make it with the umask's mode)
    os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    source = sqlite3.connect(file)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.rename(partial, copy)
    _fsync_dir(copy.parent)


def _check_foreign_keys(con: Connection) -> None:
    """Every foreign key holds (they were off while tables were rebuilt)."""
    broken = con.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({f"{row[0]} → {row[2]}" for row in broken})
        raise UpgradeError(f"{len(broken)} row(s) break a foreign key after the migrations "
                           f"({', '.join(tables)}): the database was damaged before the "
                           f"upgrade")


def _restore(engine: Engine, file: Path, copy: Path, kept: Path, target: str,
             exc: Exception) -> str:
    """Put the copy back (the upgrade's transaction was rolled back already; the copy makes
    sure of it) and say what the database holds now."""
    failed = f"the upgrade to {target} failed ({_said(exc)})"
    if not copy.exists():  # it failed before the copy was taken: the transaction held all
        return (f"{failed}; nothing was changed: it failed before its first change, and its "
                f"transaction was rolled back")
    engine.dispose()  # no pooled connection holds the old pages
    try:
        source = sqlite3.connect(copy)
        try:
            target_con = sqlite3.connect(file, timeout=60)
            try:
                source.backup(target_con)
                target_con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                target_con.close()
        finally:
            source.close()
    except sqlite3.Error as error:
        os.rename(copy, kept)
        _fsync_dir(kept.parent)
        return (f"{failed}, and restoring the copy taken before it failed too ({error}). "
                f"The upgrade's transaction was rolled back, so the database is most likely "
                f"unchanged, but the copy is kept at {kept}: stop Strongroom, copy it over "
                f"{file} (and remove {file}-wal and {file}-shm), then remove {kept}")
    _remove(copy)
    return (f"{failed}; nothing was changed: the database was restored from the copy taken "
            f"before the upgrade")


def _said(exc: BaseException) -> str:
    """The failure in one line (a driver's first line: later ones can quote a row)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _remove(path: Path) -> None:
    if path.exists():
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def differences(engine: Engine | Connection, metadata: MetaData) -> list[str]:
    """How the database's tables differ from ``metadata`` (the code's), one line each; empty
    when they agree. Alembic's comparison, so it reads what upgrade would have to change; on
    a connection, what that connection sees (an upgrade's, before it commits)."""
    if isinstance(engine, Connection):
        diffs = compare_metadata(MigrationContext.configure(engine), metadata)
    else:
        with engine.connect() as con:
            diffs = compare_metadata(MigrationContext.configure(con), metadata)
    return [_describe(d) for d in diffs]


def _describe(diff: object) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(d) for d in diff)
    if isinstance(diff, tuple) and diff:
        kind, *rest = diff
        names = [getattr(r, "name", None) or str(r) for r in rest if r is not None]
        return f"{kind}: {', '.join(n for n in names if n)}"
    return str(diff)
