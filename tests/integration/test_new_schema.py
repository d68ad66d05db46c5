"""A new SQLite database is brought to head by copying a schema migrated once per process
(migrations._head_schema), a new PostgreSQL one by sending again the statements that migrated
the process's first (migrations._new_database): each must be what running every migration on
it makes.

Compared as SQLite describes it (columns, foreign keys, indexes, triggers and views), not by
each table's CREATE text: Alembic's batch rebuild of a table writes its foreign keys in an
order that varies from one run to the next (two step-by-step migrations differ the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

import strongroom.platform  # noqa: F401  (every room's tables on Base.metadata)
from strongroom import migrations
from strongroom.db import Base, make_engine


def schema(engine: Engine) -> dict[str, Any]:
    with engine.connect() as con:
        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in con.exec_driver_sql(sql).all()]

        tables = [name for (name,) in rows("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "ORDER BY name")]
        described: dict[str, Any] = {
            "revision": rows("SELECT version_num FROM alembic_version"),
            "journal": rows("PRAGMA journal_mode"),
            "broken": rows("PRAGMA foreign_key_check"),
            "others": rows("SELECT type, name, tbl_name, sql FROM sqlite_master "
                           "WHERE type != 'table' ORDER BY type, name"),
        }
        for table in tables:
            described[table] = (
                rows(f'PRAGMA table_xinfo("{table}")'),
                # (table, from, to, on update, on delete, match): not the ids, which follow order
                sorted(r[2:] for r in rows(f'PRAGMA foreign_key_list("{table}")')),
                sorted((r[1], r[2], r[3], r[4], rows(f'PRAGMA index_info("{r[1]}")'))
                       for r in rows(f'PRAGMA index_list("{table}")')),
            )
        return described


def test_a_new_database_gets_what_every_migration_makes(tmp_path: Path) -> None:
    copied = make_engine(f"sqlite:///{tmp_path / 'copied.db'}")
    stepped = make_engine(f"sqlite:///{tmp_path / 'stepped.db'}")
    try:
        applied = migrations.upgrade(copied)  # empty, to "head": the copy
        # the head named, not "head": every revision runs on the file, one after another
        assert migrations.upgrade(stepped, to=migrations.head()) == applied
        assert applied == [f"{n:04d}" for n in range(1, int(migrations.head()) + 1)]
        made, migrated = schema(copied), schema(stepped)
        assert made.keys() == migrated.keys()
        assert {k for k in made if made[k] != migrated[k]} == set()
        assert len(made) > 40 and made["revision"] == [(migrations.head(),)]
        assert made["journal"] == [("wal",)] and made["broken"] == []
        assert migrations.differences(copied, Base.metadata) == []
        assert migrations.state(copied).schema is migrations.Schema.CURRENT
        assert migrations.upgrade(copied) == []  # at head: nothing more to do
    finally:
        copied.dispose()
        stepped.dispose()


def pg_schema(engine: Engine) -> dict[str, Any]:
    """A PostgreSQL schema as its catalogue describes it, the schema's own name left out."""
    with engine.connect() as con:
        name = con.exec_driver_sql("SELECT current_schema()").scalar_one()

        def rows(sql: str) -> list[tuple[Any, ...]]:
            found = con.exec_driver_sql(sql, {"s": name}).all()
            return sorted(tuple(str(v).replace(f"{name}.", "") for v in r) for r in found)

        return {
            "revision": rows("SELECT version_num FROM alembic_version"),
            "columns": rows(
                "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, "
                "column_default, character_maximum_length, numeric_precision, udt_name "
                "FROM information_schema.columns WHERE table_schema = %(s)s"),
            "constraints": rows(
                "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) "
                "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %(s)s"),
            "indexes": rows("SELECT tablename, indexname, indexdef FROM pg_indexes "
                            "WHERE schemaname = %(s)s"),
            "sequences": rows("SELECT sequence_name, data_type, start_value, increment "
                              "FROM information_schema.sequences WHERE sequence_schema = %(s)s"),
            "triggers": rows("SELECT event_object_table, trigger_name, action_statement "
                             "FROM information_schema.triggers WHERE trigger_schema = %(s)s"),
        }


def test_a_new_postgresql_database_replays_what_every_migration_makes() -> None:
    """The process's first new PostgreSQL database is migrated step by step and its
    statements recorded; the next is brought to head by sending them again. Both are what
    every migration makes (a third, migrated to the head named, is the yardstick)."""
    from tests.conftest import postgres_schema

    migrations._RECORDED.clear()
    with postgres_schema() as first, postgres_schema() as second, \
            postgres_schema() as third:
        engines = [make_engine(u) for u in (first, second, third)]
        try:
            recorded = migrations.upgrade(engines[0])
            assert len(migrations._RECORDED) == 1  # recorded, to be replayed
            statements = next(iter(migrations._RECORDED.values()))
            assert any(s.sql.lstrip().upper().startswith("CREATE TABLE") for s in statements)
            assert migrations.upgrade(engines[1]) == recorded  # replayed
            assert migrations.upgrade(engines[2], to=migrations.head()) == recorded
            made = [pg_schema(e) for e in engines]
            assert len(made[0]["columns"]) > 200 and made[0]["revision"] == [
                (migrations.head(),)]
            assert made[1] == made[0] and made[2] == made[0]
            for engine in engines:
                assert migrations.differences(engine, Base.metadata) == []
                assert migrations.state(engine).schema is migrations.Schema.CURRENT
                assert migrations.upgrade(engine) == []
        finally:
            for engine in engines:
                engine.dispose()


def test_a_migration_that_writes_a_row_is_never_replayed() -> None:
    """A recorded run that inserted anything but its revision would copy what it drew (a
    key, an id, a time) into every new database: such a run is not recorded."""
    assert migrations._writes_no_row('CREATE TABLE "x" (id INTEGER)')
    assert migrations._writes_no_row("UPDATE outputs_outputs SET acted=%(acted)s")
    assert migrations._writes_no_row(
        "INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING version_num")
    assert migrations._writes_no_row('INSERT INTO "alembic_version" (version_num) VALUES (1)')
    assert not migrations._writes_no_row("INSERT INTO access_people (id) VALUES (%(id)s)")
    assert not migrations._writes_no_row("insert into keys select 1")
