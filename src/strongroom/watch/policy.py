"""Hard limits, as data: what a project, the person it goes to and their institution may take
out, checked before a request runs. Custodian admins set per-project, per-person and
per-institution overrides; a declared, approved large job raises a project's allowance for its
window (and its lifetime allowance by as much)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom.db import Base
from strongroom.errors import Invalid


class Meter(StrEnum):
    """What a limit counts."""

    RECORD_PARTICIPANTS = "record_participants"  # distinct participants, record-level, 30 days
    # distinct participants, record-level, over the whole life (of a project, a person's
    # projects, an institution's people): a patient drip stays under every window, not this
    LIFETIME_PARTICIPANTS = "lifetime_participants"
    CELLS = "cells"  # cells released (downloaded) per day
    BYTES = "bytes"  # bytes out per day
    REQUESTS = "requests"  # data requests per minute


# How far back each limit looks.
WINDOWS: dict[Meter, dt.timedelta] = {
    Meter.RECORD_PARTICIPANTS: dt.timedelta(days=30),
    Meter.CELLS: dt.timedelta(days=1),
    Meter.BYTES: dt.timedelta(days=1),
    Meter.REQUESTS: dt.timedelta(minutes=1),
    Meter.LIFETIME_PARTICIPANTS: dt.timedelta(days=365 * 200),  # everything ever taken
}

WORDS: dict[Meter, str] = {
    Meter.RECORD_PARTICIPANTS: "distinct participants received record-level in 30 days",
    Meter.CELLS: "cells released in a day",
    Meter.BYTES: "bytes out in a day",
    Meter.REQUESTS: "data requests in a minute",
    Meter.LIFETIME_PARTICIPANTS: "distinct participants received record-level ever",
}


@dataclass(frozen=True)
class Limits:
    """One scope's limits (0 means nothing at all may pass)."""

    record_participants: int
    cells: int
    bytes: int
    requests: int
    lifetime_participants: int
    # what a breach suspends besides the person and the project
    suspend_institution: bool = False

    def of(self, meter: Meter) -> int:
        value: int = getattr(self, meter.value)
        return value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Defaults: a slow drip can expose at most 20,000 participants per project per 30 days
# (the ceiling is 50,000), and 20,000 over the project's whole life unless its approval
# sets more; institutions hold two or three projects' worth. A person, over all their
# projects, gets one project's worth: a second project is not a second allowance.
PROJECT_DEFAULT = Limits(record_participants=20_000, cells=20_000, bytes=200_000_000,
                         requests=60, lifetime_participants=20_000)
PERSON_DEFAULT = PROJECT_DEFAULT
INSTITUTION_DEFAULT = Limits(record_participants=50_000, cells=100_000, bytes=1_000_000_000,
                             requests=240, lifetime_participants=50_000)
DEFAULTS = {"project": PROJECT_DEFAULT, "person": PERSON_DEFAULT,
            "institution": INSTITUTION_DEFAULT}


class LimitRow(Base):
    """An override for one project or institution (only the fields given)."""

    __tablename__ = "watch_limits"

    # project | person | institution
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON)
    set_by: Mapped[str] = mapped_column(String(32))


def parse_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Validate an override: known names, non-negative integers (or a bool to suspend)."""
    known = {f.name: f.type for f in fields(Limits)}
    problems = []
    for name, value in values.items():
        if name not in known:
            problems.append(f"{name!r} is not a limit; use one of: {', '.join(known)}")
        elif name == "suspend_institution":
            if not isinstance(value, bool):
                problems.append("suspend_institution is true or false")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{name} must be a whole number ≥ 0, not {value!r}")
    if problems:
        raise Invalid(problems)
    return dict(values)


def limits_for(db: Session, scope: str, target_id: str) -> Limits:
    base = DEFAULTS[scope]
    row = db.get(LimitRow, (scope, target_id))
    return replace(base, **row.overrides) if row is not None else base


def set_limits(db: Session, scope: str, target_id: str, values: dict[str, Any],
               by: str) -> Limits:
    if scope not in DEFAULTS:
        raise Invalid(f"limits are set for a project, a person or an institution, not "
                      f"{scope!r}")
    row = db.get(LimitRow, (scope, target_id))
    merged = {**(row.overrides if row else {}), **parse_overrides(values)}
    if row is None:
        db.add(LimitRow(scope=scope, target_id=target_id, overrides=merged, set_by=by))
    else:
        row.overrides, row.set_by = merged, by
    return limits_for(db, scope, target_id) if row else replace(DEFAULTS[scope], **merged)


def all_overrides(db: Session) -> list[LimitRow]:
    return list(db.scalars(select(LimitRow).order_by(LimitRow.scope, LimitRow.target_id)))
