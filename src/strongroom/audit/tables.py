"""The audit log's two tables. Entries are never updated or deleted by Strongroom."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime

# INTEGER PRIMARY KEY on SQLite makes seq the rowid: no second index, ordered scans for free
_SEQ = BigInteger().with_variant(Integer, "sqlite")


class AuditEntryRow(Base):
    """One leaf. ``payload`` is the canonical leaf; the other columns are copies for queries."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str | None] = mapped_column(String(128), index=True)
    subject: Mapped[str | None] = mapped_column(String(128), index=True)
    payload: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpointRow(Base):
    """A signed tree head. ``frontier`` lets a restarted log carry on without reading every leaf."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    key_id: Mapped[str] = mapped_column(String(64))
    frontier: Mapped[bytes] = mapped_column(LargeBinary)


ENTRIES: Table = AuditEntryRow.__table__  # type: ignore[assignment]
CHECKPOINTS: Table = AuditCheckpointRow.__table__  # type: ignore[assignment]




class AuditOutboxRow(Base):
    """An event written in the transaction of the change it records, not yet in the log.

    The audit writer moves rows into ``audit_entries`` and deletes them in one transaction, so
    a row is either here or in the log, never both and never neither. ``tail`` is the leaf's
    details and sensitive values, already hashed: nothing here is in the clear that the log
    itself would not hold.
    """

    __tablename__ = "audit_outbox"

    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(128))
    tail: Mapped[str] = mapped_column(Text)


OUTBOX: Table = AuditOutboxRow.__table__  # type: ignore[assignment]
