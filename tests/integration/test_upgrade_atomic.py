"""An upgrade is all or nothing, and a newer schema is never opened by older code.

Failures are real, not injected: a table a later revision creates already there (an operator's
stray table: the migration fails midway, after earlier revisions ran), a review whose output
is gone (a foreign key the rebuilt tables would break), a column missing (a database no release
made). Each leaves the database as it was, row for row and table for table, at its revision,
with no copy left behind, and says so. A process killed (SIGKILL) at each step of an upgrade
(the moment chosen by patching the step in a real child, as test_audit_outbox does) leaves the
store either at its old revision, whole, or at the new one; upgrading again finishes the job.
"""

from __future__ import annotations

import signal
import sqlite3
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner

import strongroom.platform  # noqa: F401  (every room's tables on Base.metadata)
from strongroom import migrations
from strongroom.audit.verify import verify as audit_verify
from strongroom.cli import app
from strongroom.cohort import recovery
from strongroom.cohort.store import Store, StoreError, source_for
from strongroom.db import Base, make_engine
from strongroom.platform import Platform
from tests.conftest import postgres_schema
from tests.integration.test_upgrade_history import Unpacked, rows, unpack
from tests.kill_points import run_child

OPERATOR = ["--operator", "Upgrade Test", "--reason", "the atomic upgrade test"]
COPY = "metadata.db" + migrations.COPY_SUFFIX


def dump(found: Unpacked) -> tuple[str | None, dict[str, object]]:
    """The database's revision and every table's columns and rows: what 'unchanged' means."""
    engine = make_engine(found.url)
    try:
        with engine.connect() as con:
            has = inspect(con).has_table("alembic_version")
            revision = con.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                if has else None
        return revision, dict(rows(engine))
    finally:
        engine.dispose()


def sqlite_schema(found: Unpacked) -> list[str]:
    with sqlite3.connect(found.root / "metadata.db") as con:
        got = sorted(str(r) for r in con.execute("SELECT type, name, sql FROM sqlite_master"))
    con.close()
    return got


def upgrade(found: Unpacked) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["upgrade", "-d", str(found.root), "--key-file",
                                    str(found.key), *OPERATOR])
    return done.exit_code, done.output


def _execute(found: Unpacked, *statements: str, foreign_keys: bool = True) -> None:
    engine = make_engine(found.url)
    try:
        with engine.connect() as con:
            if not foreign_keys:
                raw = con.connection.dbapi_connection
                assert raw is not None
                raw.execute("PRAGMA foreign_keys=OFF")
            with con.begin():
                for statement in statements:
                    con.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)


# -- failures: nothing changes, and the message says so -------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql",
                                                          marks=pytest.mark.postgres)])
@pytest.mark.usefixtures("no_env_key")
def test_a_migration_failing_midway_changes_nothing(tmp_path: Path, kind: str) -> None:
    # 558d613 (0006) on SQLite: 0007-0010 run, then 0011 meets a genotype_sets already there;
    # 80a1abb (0013) on PostgreSQL: 0014 runs, then 0015 meets access_account_links
    archive, stray = (("558d613-sqlite.tar.gz", "genotype_sets") if kind == "sqlite" else
                      ("80a1abb-postgresql.tar.gz", "access_account_links"))
    with postgres_schema() if kind == "postgresql" else nullcontext() as url:
        found = unpack(archive, tmp_path, url)
        _execute(found, f"CREATE TABLE {stray} (id INTEGER PRIMARY KEY)")
        before = dump(found)
        schema = sqlite_schema(found) if kind == "sqlite" else None
        code, said = upgrade(found)
        assert code == 1, said
        flat = " ".join(said.split())
        assert "failed" in flat and stray in flat and "nothing was changed" in flat
        assert ("restored from the copy taken before the upgrade" in flat if kind == "sqlite"
                else "one transaction, which was rolled back" in flat)
        assert dump(found) == before  # same revision, same tables, every row as it was
        if kind == "sqlite":
            assert sqlite_schema(found) == schema  # no new table, index or column
            assert not (found.root / COPY).exists()
        with pytest.raises(StoreError, match="strongroom upgrade -d"):
            Store.open(found.root, found.key)
        _execute(found, f"DROP TABLE {stray}")  # the operator removes it: now it upgrades
        code, said = upgrade(found)
        assert code == 0, said


@pytest.mark.usefixtures("no_env_key")
def test_a_broken_foreign_key_fails_the_upgrade_and_the_copy_is_put_back(
        tmp_path: Path) -> None:
    """Foreign keys are off while 0003 rebuilds outputs_outputs (the issue's failure: reviews
    reference it), then every key is checked before the commit."""
    found = unpack("606ebb9-sqlite.tar.gz", tmp_path, None)
    _execute(found, "INSERT INTO outputs_reviews (output_id, reviewer, decision, reason, at) "
             "SELECT 'out_gone', reviewer, decision, reason, at FROM outputs_reviews LIMIT 1",
             foreign_keys=False)
    before, schema = dump(found), sqlite_schema(found)
    code, said = upgrade(found)
    flat = " ".join(said.split())
    assert code == 1 and "break a foreign key" in flat and "outputs_reviews" in flat, said
    assert "the database was restored from the copy taken before the upgrade" in flat
    assert dump(found) == before and sqlite_schema(found) == schema
    assert not (found.root / COPY).exists()


@pytest.mark.usefixtures("no_env_key")
def test_a_database_no_release_made_is_refused_unchanged(tmp_path: Path) -> None:
    found = unpack("a964aa2-sqlite.tar.gz", tmp_path, None)
    _execute(found, "ALTER TABLE watch_meter DROP COLUMN differencing_within")
    before, schema = dump(found), sqlite_schema(found)
    code, said = upgrade(found)
    flat = " ".join(said.split())
    assert code == 1 and "differencing_within" in flat and "nothing was changed" in flat
    assert dump(found) == before and sqlite_schema(found) == schema


# -- downgrades --------------------------------------------------------------------------------

@pytest.mark.usefixtures("no_env_key")
def test_a_newer_schema_is_refused_unwritten_with_the_revision_it_has(store: Store) -> None:
    store.close()
    with store.engine.begin() as con:  # as a newer release would leave it
        con.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0099'"))
    store.engine.dispose()
    file = store.sqlite_file()
    before = file.read_bytes() if file is not None else None
    key = store.root.parent / "keys" / "master.key"
    with pytest.raises(StoreError) as refused:
        Store.open(store.root, key)
    said = str(refused.value)
    assert "f00dfeed0099" in said and "newer Strongroom release" in said
    assert migrations.head() in said and "Nothing was changed" in said
    with pytest.raises(StoreError, match="f00dfeed0099"):
        Platform.open(store.root, key)
    args = ["-d", str(store.root), "--key-file", str(key)]
    runner = CliRunner()
    for command in (["upgrade", *args, *OPERATOR], ["store", "check", *args],
                    ["store", "recover", *args, *OPERATOR], ["audit", "verify", *args]):
        done = runner.invoke(app, command)
        assert done.exit_code != 0 and "f00dfeed0099" in done.output, (command, done.output)
    if file is not None:
        assert file.read_bytes() == before  # not a byte written
    raw = Store(store.root, source_for(key))
    try:
        assert migrations.state(raw.engine).revision == "f00dfeed0099"
        with pytest.raises(StoreError, match="newer Strongroom release"):
            recovery.upgrade(raw, Base.metadata)
    finally:
        raw.close()


# -- kill -9 -------------------------------------------------------------------------------

CHILD = r'''
import os, signal, sys
point, root, key = sys.argv[1], sys.argv[2], sys.argv[3]

from alembic.runtime import migration as alembic_migration
from strongroom import migrations
from strongroom.cli import app

removals = []
if point == "copying":  # the copy written aside, not yet renamed into place
    before(migrations.os, "rename", lambda source, _: str(source).endswith(".partial"))
elif point == "copied":  # the copy taken, no revision run
    after(migrations, "_take_copy")
elif point == "midway":  # 0001-0004 run in the transaction, 0005 not yet
    after(alembic_migration.HeadMaintainer, "update_to_step",
          lambda self, step: "0004" in step.to_revisions)
elif point == "checked":  # every revision run and every key checked, not committed
    after(migrations, "_check_foreign_keys")
elif point == "committed":  # committed, the copy not yet removed
    before(migrations, "_remove",
           lambda path: path.name.endswith(migrations.COPY_SUFFIX)
           and (removals.append(path) or len(removals) == 2))
elif point == "restoring":  # failed and rolled back, the copy not yet put back
    before(migrations, "_restore")
app(["upgrade", "-d", root, "--key-file", key, "--operator", "Kill Test", "--reason", "kill"],
    standalone_mode=False)
print("finished")
'''

POINTS = ["copying", "copied", "midway", "checked", "committed", "restoring"]


def crash(found: Unpacked, point: str) -> None:
    done = run_child(CHILD, [point, str(found.root), str(found.key)],
                     drop=["STRONGROOM_MASTER_KEY"])
    assert done.returncode == -signal.SIGKILL, (point, done.returncode, done.stderr[-2000:])
    assert "finished" not in done.stdout


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.usefixtures("no_env_key")
def test_an_upgrade_killed_at_any_step_leaves_the_old_store_or_the_new_one(
        tmp_path: Path, point: str) -> None:
    found = unpack("606ebb9-sqlite.tar.gz", tmp_path, None)
    if point == "restoring":  # a real failure first: a table 0004 would create
        _execute(found, "CREATE TABLE outputs_answers (id INTEGER PRIMARY KEY)")
    before, schema = dump(found), sqlite_schema(found)
    crash(found, point)
    left = found.root / (COPY + ".partial" if point == "copying" else COPY)
    assert left.stat().st_mode & 0o777 == 0o600  # the owner's only, as the database is
    revision, tables = dump(found)
    if point == "committed":  # all of it: the new schema, every row kept
        assert revision == migrations.head()
        engine = make_engine(found.url)
        try:
            assert migrations.differences(engine, Base.metadata) == []
        finally:
            engine.dispose()
        assert set(before[1]) <= set(tables)
    else:  # none of it: the old schema, table for table and row for row
        assert (revision, tables) == before and sqlite_schema(found) == schema
    if point == "restoring":
        _execute(found, "DROP TABLE outputs_answers")
    code, said = upgrade(found)  # a stale copy is no obstacle; the upgrade finishes the job
    assert code == 0, said
    assert ("already at this release's schema" in said) == (point == "committed")
    assert not (found.root / COPY).exists() and not left.exists()
    with Platform.open(found.root, found.key) as platform:
        upgraded = [e for e in platform.audit.entries() if e.type == "store.upgraded"]
        assert len(upgraded) == 1  # the killed run's event committed only if it did
        assert audit_verify(platform.store.engine, public_key=platform.audit.public_key,
                            witness=platform.witness).ok


@pytest.mark.postgres
@pytest.mark.usefixtures("no_env_key")
def test_an_upgrade_killed_midway_on_postgresql_is_rolled_back(tmp_path: Path) -> None:
    with postgres_schema() as url:
        found = unpack("606ebb9-postgresql.tar.gz", tmp_path, url)
        before = dump(found)
        crash(found, "midway")
        assert dump(found) == before
        code, said = upgrade(found)
        assert code == 0, said
