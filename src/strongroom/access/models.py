"""The access tables: institutions, people, projects, credentials, pauses.

Statuses are plain strings checked against the enums in :mod:`strongroom.access.states`, so
the database stays readable and portable between SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, validates

from strongroom.access.names import name_key
from strongroom.db import Base, UTCDateTime


class Institution(Base):
    __tablename__ = "access_institutions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    jurisdiction: Mapped[str] = mapped_column(String(100))
    networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Person(Base):
    __tablename__ = "access_people"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("access_institutions.id"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # the TOTP secret, encrypted
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    mfa_confirmed: Mapped[bool] = mapped_column(default=False)
    vetting: Mapped[str] = mapped_column(String(16), default="pending")
    status: Mapped[str] = mapped_column(String(16), default="active")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # who the account belongs to, across accounts (strongroom.access.identity): the ORCID iD
    # (canonical 0000-0000-0000-000X; not unique: two accounts with one share an allowance)
    # and the name's key (strongroom.access.names), stored so a lookup is a query, not a scan
    orcid: Mapped[str | None] = mapped_column(String(19), nullable=True, index=True)
    name_key: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)

    @validates("name")
    def _keep_name_key(self, _: str, value: str) -> str:
        self.name_key = name_key(value)  # whoever sets a name sets its key
        return value


class AccountLink(Base):
    """A custodian's word on two accounts: the same human (``same``: they share one person
    allowance, transitively) or two humans that only look alike (``distinct``: the name and
    domain rule does not join that pair). Ended, never deleted: the history stays readable."""

    __tablename__ = "access_account_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"), index=True)
    same_as: Mapped[str] = mapped_column(ForeignKey("access_people.id"), index=True)
    relation: Mapped[str] = mapped_column(String(16))  # "same" or "distinct"
    reason: Mapped[str] = mapped_column(Text)
    linked_by: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PersonRole(Base):
    __tablename__ = "access_person_roles"

    person_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class Training(Base):
    __tablename__ = "access_training"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"), index=True)
    course: Mapped[str] = mapped_column(String(200))
    completed_on: Mapped[dt.date]
    expires_on: Mapped[dt.date]


class Project(Base):
    __tablename__ = "access_projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    purpose: Mapped[str] = mapped_column(Text)
    lead_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"))
    starts_on: Mapped[dt.date]
    expires_on: Mapped[dt.date]
    status: Mapped[str] = mapped_column(String(16), default="active")
    export: Mapped[str] = mapped_column(String(16), default="none")
    export_requested_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    export_approved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    key_id: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProjectMember(Base):
    __tablename__ = "access_project_members"

    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"), primary_key=True)


class FieldGrant(Base):
    __tablename__ = "access_field_grants"

    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), primary_key=True)
    field_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class GenotypeGrant(Base):
    """A project whose members may analyse the genotypes (GWAS inside the enclave): granted
    apart from fields, because genomes are the one thing a participant can never replace."""

    __tablename__ = "access_genotype_grants"

    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), primary_key=True)
    granted_by: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "access_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), index=True)
    actions: Mapped[list[str]] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebSession(Base):
    __tablename__ = "access_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_digest: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LoginAttempt(Base):
    """Recent login attempts, for rate limits by account and by source address (hashed)."""

    __tablename__ = "access_login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email_digest: Mapped[str] = mapped_column(String(64))
    source_digest: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool]

    __table_args__ = (
        Index("ix_login_attempts_email_at", "email_digest", "at"),
        Index("ix_login_attempts_source_at", "source_digest", "at"),
    )


class Pause(Base):
    __tablename__ = "access_pauses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(32))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lift_requested_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lift_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # "manual" (a person paused it) or "suspension" (watch did, for alert ``alert_id``)
    kind: Mapped[str] = mapped_column(String(16), default="manual")
    alert_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
