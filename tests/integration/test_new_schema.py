"""A new SQLite database is brought to head by copying a schema migrated once per process
(migrations._head_schema): it must be what running every migration on it makes.

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
