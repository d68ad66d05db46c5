"""Schema versions of the metadata database (Alembic revisions in ``versions/``).

Every schema change ships as a revision here. A store's database carries the revision it is at
(Alembic's ``alembic_version`` table); the code opens only a database at its own head revision
and says what to do otherwise: ``strongroom upgrade DIR`` for an older one, the newer release
(or a backup) for a newer one. Nothing here creates a table anywhere else.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect

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


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def head() -> str:
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def _known(revision: str) -> bool:
    return any(s.revision == revision
               for s in ScriptDirectory.from_config(_config()).walk_revisions())


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


def upgrade(engine: Engine, to: str = "head",
            then: Callable[[Connection, list[str]], None] | None = None) -> list[str]:
    """Bring the database to the head revision (or ``to``) in one transaction (an unversioned
    database is adopted by the baseline); ``then`` runs in that transaction with the revisions
    applied (the upgrade's audit event commits with it). Returns the revisions applied."""
    before = state(engine)
    if before.schema is Schema.NEWER:
        raise ValueError(f"the database is at revision {before.revision}, which this "
                         f"release does not know (its newest is {before.head})")
    script = ScriptDirectory.from_config(_config())
    start = before.revision
    target = before.head if to == "head" else to
    applied = [s.revision for s in script.iterate_revisions(target, start)]
    if not applied:
        return []
    config = _config()
    done = list(reversed(applied))
    with engine.begin() as con:
        config.attributes["connection"] = con
        command.upgrade(config, to)
        if then is not None:
            then(con, done)
    return done


def differences(engine: Engine, metadata: MetaData) -> list[str]:
    """How the database's tables differ from ``metadata`` (the code's), one line each; empty
    when they agree. Alembic's comparison, so it reads what upgrade would have to change."""
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
