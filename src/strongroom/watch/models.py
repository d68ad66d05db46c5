"""The watch tables: one meter row per request, alerts, declared jobs, exposure sets.

A meter row holds counts and digests only: never a participant value, a query's literal
constants or a secret. Addresses are kept because "a new network" is what some detectors look
for; they are the same addresses the audit log keeps (sealed there).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime


class MeterRow(Base):
    """One request, as the gateway saw it and as the services measured it."""

    __tablename__ = "watch_meter"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    institution_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)  # network address
    via: Mapped[str | None] = mapped_column(String(16), nullable=True)  # session | token | cli
    action: Mapped[str] = mapped_column(String(40))  # Action value, or "public"
    route: Mapped[str] = mapped_column(String(120))  # "POST /projects/{project_id}/analyses"
    status: Mapped[int] = mapped_column(Integer)  # HTTP status (or 200/403 for the CLI)
    rows_scanned: Mapped[int] = mapped_column(BigInteger, default=0)
    participants: Mapped[int] = mapped_column(Integer, default=0)  # distinct contributing
    cells: Mapped[int] = mapped_column(Integer, default=0)  # cells released (downloads)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    record_rows: Mapped[int] = mapped_column(Integer, default=0)  # record-level rows exported
    near_threshold: Mapped[int] = mapped_column(Integer, default=0)  # cells just over it
    # the output check's differencing findings: against what was released, and between an
    # output's own cells
    differencing: Mapped[int] = mapped_column(Integer, default=0)
    differencing_within: Mapped[int] = mapped_column(Integer, default=0)
    # a job's tries at its sandbox's walls (jobs/sandbox.py)
    walls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # a job whose real run ended otherwise than its dummy run; one that ended at a late step
    # of the ladder (jobs/service.py): the shape of what it showed varied with the data
    diverged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    late: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    query_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)  # exact query
    query_shape: Mapped[str | None] = mapped_column(String(64), nullable=True)  # constants out
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (
        Index("ix_watch_meter_person_at", "person_id", "at"),
        Index("ix_watch_meter_project_at", "project_id", "at"),
        Index("ix_watch_meter_institution_at", "institution_id", "at"),
    )


class AlertRow(Base):
    """One alert; repeats of the same finding on the same subject raise ``count``."""

    __tablename__ = "watch_alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "alr_…"
    detector: Mapped[str] = mapped_column(String(48), index=True)  # e.g. "limit.record-level"
    severity: Mapped[str] = mapped_column(String(16))  # Severity
    status: Mapped[str] = mapped_column(String(16), index=True)  # AlertStatus
    dedup_key: Mapped[str] = mapped_column(String(200), index=True)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    institution_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)  # counts and digests only
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=1)
    suspensions: Mapped[list[str]] = mapped_column(JSON)  # pause ids set because of it
    acknowledged_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    appeal: Mapped[str | None] = mapped_column(Text, nullable=True)
    appealed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    appealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeclaredJob(Base):
    """A large job declared by a project and approved in advance by a custodian admin."""

    __tablename__ = "watch_declared_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "job_…"
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    description: Mapped[str] = mapped_column(Text)
    record_participants: Mapped[int] = mapped_column(Integer, default=0)  # extra allowance
    cells: Mapped[int] = mapped_column(Integer, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    declared_by: Mapped[str] = mapped_column(String(32))
    approved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ExposureRow(Base):
    """The master IDs one record-level export reached (a sealed roaring bitmap)."""

    __tablename__ = "watch_exposures"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    institution_id: Mapped[str] = mapped_column(String(32), index=True)
    # the person it went to (the project's lead, for exports a custodian made for it): their
    # limits span all their projects
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    participants: Mapped[int] = mapped_column(Integer)
    members_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # taken under an approved declared job: counts against the job while it runs, and not
    # against the project's ordinary limit once it has ended
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
