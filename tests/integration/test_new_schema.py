"""A new SQLite database is brought to head by copying a schema migrated once per process
(migrations._head_schema): it must be exactly what running every migration on it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

import strongroom.platform  # noqa: F401  (every room's tables on Base.metadata)
from strongroom import migrations
from strongroom.db import Base, make_engine


def schema(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as con:
        return (con.exec_driver_sql("SELECT type, name, tbl_name, sql FROM sqlite_master "
                                    "ORDER BY type, name").all(),
                con.exec_driver_sql("SELECT version_num FROM alembic_version").all(),
                con.exec_driver_sql("PRAGMA journal_mode").scalar(),
                con.exec_driver_sql("PRAGMA foreign_key_check").all())


def test_a_new_database_gets_what_every_migration_makes(tmp_path: Path) -> None:
    copied = make_engine(f"sqlite:///{tmp_path / 'copied.db'}")
    stepped = make_engine(f"sqlite:///{tmp_path / 'stepped.db'}")
    try:
        applied = migrations.upgrade(copied)  # empty, to "head": the copy
        # the head named, not "head": every revision runs on the file, one after another
        assert migrations.upgrade(stepped, to=migrations.head()) == applied
        assert applied == [f"{n:04d}" for n in range(1, int(migrations.head()) + 1)]
        assert schema(copied) == schema(stepped)
        tables, revision, journal, broken = schema(copied)
        assert len(tables) > 40 and revision == [(migrations.head(),)]
        assert journal == "wal" and broken == []
        assert migrations.differences(copied, Base.metadata) == []
        assert migrations.state(copied).schema is migrations.Schema.CURRENT
        assert migrations.upgrade(copied) == []  # at head: nothing more to do
    finally:
        copied.dispose()
        stepped.dispose()
