"""The jobs table: one row per submitted job, what it ran and what came of it.

The code itself is not in the database: it is sealed under the project's key beside the
project's other files (service.py), named by the job; the row holds its SHA-256 and each
file's, so what ran can be proven. Statuses are checked against :class:`JobStatus`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime


class JobRow(Base):
    __tablename__ = "jobs_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "job_…"
    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), index=True)
    requester: Mapped[str] = mapped_column(ForeignKey("access_people.id"))
    action: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    code_sha256: Mapped[str] = mapped_column(String(64))  # of the archive as submitted
    files: Mapped[dict[str, str]] = mapped_column(JSON)  # path: SHA-256
    pipeline: Mapped[str] = mapped_column(Text)  # project.yaml as submitted
    # the analyses the job asked for through strongroom.sdc, on the dummy data
    plan: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    outputs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # name: output id
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)  # failed/refused: why
    walls: Mapped[list[str]] = mapped_column(JSON, default=list)  # tries and limits met
    usage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # seconds, memory…
    dummy_log: Mapped[str] = mapped_column(Text, default="")  # the dummy run's, shown freely

    __table_args__ = (Index("ix_jobs_requester_created", "requester", "created_at"),)
