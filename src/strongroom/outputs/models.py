"""The output tables: checked outputs and the output checkers' reviews of them.

An output's bytes are not in the database: they are a file named by their SHA-256 under the
project's directory (:mod:`strongroom.outputs.files`); the row holds the digest, so the bytes
downloaded can be proven to be the bytes checked and reviewed. Statuses are plain strings
checked against :class:`strongroom.outputs.states.OutputStatus`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime


class OutputRow(Base):
    __tablename__ = "outputs_outputs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "out_…"
    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), index=True)
    requester: Mapped[str] = mapped_column(ForeignKey("access_people.id"))  # ran the analysis
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))  # of the plaintext bytes
    media_type: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger)
    verdict: Mapped[str] = mapped_column(String(32))
    # CheckReport.as_dict(): findings, suppressed cells, rules version, thresholds applied
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    justification: Mapped[str | None] = mapped_column(Text, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))  # AnalysisKind
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the analysis request as given
    requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the check acted on it (hid, removed, or sent it to people): an answer about small groups,
    # rationed per person (rules.yaml ``answers``)
    acted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (Index("ix_outputs_status_created", "status", "created_at"),
                      Index("ix_outputs_requester_created", "requester", "created_at"),
                      # a project's budget of answers is counted by project and period
                      Index("ix_outputs_project_created", "project_id", "created_at"))


class AnswerRow(Base):
    """An answer that is not an output: a dataset definition (or a job) refused once it had
    read the data (a row limit met only if someone's value is large answers a question about
    them). Reserved before the definition runs, charged at once to the person's, the project's
    and the institutions' budgets (strongroom.outputs.answers), so that requests sent at once
    cannot outrun them, and given back (``spent`` false) when the definition was built or
    refused for its text alone."""

    __tablename__ = "outputs_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requester: Mapped[str] = mapped_column(ForeignKey("access_people.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    what: Mapped[str] = mapped_column(String(16))  # "definition"
    spent: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (Index("ix_outputs_answers_requester_created", "requester", "created_at"),
                      Index("ix_outputs_answers_project_created", "project_id", "created_at"))


class ReviewRow(Base):
    """One output checker's decision; the unique pair makes "two different checkers" hold."""

    __tablename__ = "outputs_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    output_id: Mapped[str] = mapped_column(ForeignKey("outputs_outputs.id"), index=True)
    reviewer: Mapped[str] = mapped_column(ForeignKey("access_people.id"))
    decision: Mapped[str] = mapped_column(String(16))  # OutputAction: approve or reject
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("output_id", "reviewer", name="uq_outputs_review_once"),)


class AnalysisRunRow(Base):
    """An analysis submitted to run in the background and polled (strongroom.outputs.runs):
    whose it is, its schedule (fixed at submission from the request and published settings),
    and how it ended: its output, or the refusal's kind and reasons the synchronous call
    would have answered. Kept in the database so that a run a restart lost says so."""

    __tablename__ = "outputs_analysis_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "run_…"
    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), index=True)
    requester: Mapped[str] = mapped_column(ForeignKey("access_people.id"))
    kind: Mapped[str] = mapped_column(String(32))  # the request's kind, as given
    status: Mapped[str] = mapped_column(String(16))  # running, done, refused, failed, lost
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    floor: Mapped[float] = mapped_column(Float)  # its schedule (outputs/timing.py)
    ratio: Mapped[float] = mapped_column(Float)
    output_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(String(32), nullable=True)  # ServiceError.status
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    retry_after: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (Index("ix_outputs_analysis_runs_requester_status", "requester",
                            "status"),)
