"""Audit events written in the same transaction as the change they record.

A change and its event commit together or not at all: the event goes into ``audit_outbox``
through the change's own connection or session, and the audit writer later moves it into the
Merkle log (deleting the outbox row in the transaction that appends the entry). A crash before
the commit leaves neither; after it, both, with the event waiting in the outbox until a writer
drains it (at once when the writer runs in this process, else when the next one starts).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from strongroom.audit.events import AuditEvent, leaf_tail
from strongroom.audit.tables import OUTBOX


def stage(db: Connection | Session, event: AuditEvent, salt_key: bytes) -> None:
    """Write ``event`` in ``db``'s open transaction (it is logged once that commits)."""
    if event.at is not None and event.at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    db.execute(insert(OUTBOX).values(
        at=event.at or dt.datetime.now(dt.UTC), type=str(event.type), actor=event.actor,
        subject=event.subject, tail=leaf_tail(event, salt_key)))


def waiting(db: Connection | Session) -> int:
    """Events committed with their change but not yet in the log."""
    return int(db.execute(select(func.count()).select_from(OUTBOX)).scalar_one())
