"""Alembic's environment: Strongroom passes its own connection (``strongroom.migrations``);
run from the command line (``make migration``) it compares the code's tables with a scratch
database to write the next revision."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from strongroom.db import UTCDateTime


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # revisions hold plain SQLAlchemy types, so they never change when the code's types do
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes.get("connection")
if connection is None:  # a developer writing a revision: every room's tables
    import strongroom.platform  # noqa: F401
    from strongroom.db import Base, make_engine

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as con:
        context.configure(connection=con, target_metadata=Base.metadata,
                          render_item=_render_item, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:  # the caller's transaction holds every revision: an upgrade is all or nothing
    context.configure(connection=connection, render_as_batch=True,
                      transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
