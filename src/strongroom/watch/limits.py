"""Hard limits, checked before a request runs: what it would take, plus what its project and
institution already took in the limit's window, against their limits and approved jobs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyroaring import BitMap
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strongroom.cohort.crypto import MasterKey
from strongroom.watch import exposure
from strongroom.watch.models import DeclaredJob, MeterRow
from strongroom.watch.policy import WINDOWS, WORDS, Limits, Meter, limits_for

# Requests that count against the rate limit: those touching participant data.
DATA_ACTIONS = ("data.analyse", "data.export", "output.request", "output.download")
SCOPES = (("project", "project_id"), ("institution", "institution_id"))


@dataclass(frozen=True)
class Planned:
    """What a request would take out if it ran."""

    record_members: BitMap | None = None  # master IDs a record-level export would reach
    # before those IDs are built: how many there will be (more than the limit alone is over it,
    # whatever was taken before, so a whole-cohort request is refused without building it)
    record_count: int = 0
    cells: int = 0
    bytes: int = 0
    requests: int = 1


@dataclass(frozen=True)
class Breach:
    scope: str  # project | institution
    target_id: str
    meter: Meter
    limit: int
    used: int  # already taken in the window
    asked: int  # this request

    def sentence(self) -> str:
        return (f"{self.scope} {self.target_id} would exceed its limit of {self.limit:,} "
                f"{WORDS[self.meter]} ({self.used:,} already, {self.asked:,} more asked)")

    def to_json(self) -> dict[str, object]:
        return {"scope": self.scope, "target": self.target_id, "meter": self.meter.value,
                "limit": self.limit, "used": self.used, "asked": self.asked}


@dataclass(frozen=True)
class Allowance:
    """Extra room from approved declared jobs in force now."""

    record_participants: int = 0
    cells: int = 0
    bytes: int = 0
    jobs: tuple[str, ...] = ()  # their ids

    def of(self, meter: Meter) -> int:
        return int(getattr(self, meter.value, 0))


def allowance(db: Session, project_id: str, now: dt.datetime) -> Allowance:
    jobs = db.scalars(select(DeclaredJob).where(
        DeclaredJob.project_id == project_id, DeclaredJob.approved_at.is_not(None),
        DeclaredJob.starts_at <= now, DeclaredJob.ends_at > now)).all()
    return Allowance(sum(j.record_participants for j in jobs), sum(j.cells for j in jobs),
                     sum(j.bytes_out for j in jobs), tuple(sorted(j.id for j in jobs)))


def _metered(db: Session, column: str, target_id: str, meter: Meter,
             since: dt.datetime) -> int:
    where = [getattr(MeterRow, column) == target_id, MeterRow.at >= since]
    if meter is Meter.REQUESTS:
        query = select(func.count()).where(*where, MeterRow.action.in_(DATA_ACTIONS))
    else:
        measure = MeterRow.cells if meter is Meter.CELLS else MeterRow.bytes_out
        query = select(func.coalesce(func.sum(measure), 0)).where(*where)
    return int(db.scalar(query) or 0)


def breaches(db: Session, key: MasterKey, project_id: str, institution_id: str,
             planned: Planned, now: dt.datetime) -> list[Breach]:
    """Every limit ``planned`` would break (empty: it may run)."""
    extra = allowance(db, project_id, now)
    found: list[Breach] = []
    for scope, column in SCOPES:
        target = project_id if scope == "project" else institution_id
        limits: Limits = limits_for(db, scope, target)
        for meter in Meter:
            limit = limits.of(meter) + extra.of(meter)
            since = now - WINDOWS[meter]
            if meter is Meter.RECORD_PARTICIPANTS:
                if planned.record_members is None:
                    if planned.record_count > limit:
                        found.append(Breach(scope, target, meter, limit, 0,
                                            planned.record_count))
                    continue
                before = exposure.union_since(db, key, column, target, since, extra.jobs)
                used = len(before)
                asked = len(planned.record_members - before)  # new participants only
            else:
                asked = {Meter.CELLS: planned.cells, Meter.BYTES: planned.bytes,
                         Meter.REQUESTS: planned.requests}[meter]
                if asked == 0:
                    continue
                used = _metered(db, column, target, meter, since)
            if used + asked > limit:
                found.append(Breach(scope, target, meter, limit, used, asked))
    return found
