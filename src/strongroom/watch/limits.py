"""Hard limits, checked before a request runs: what it would take, plus what its project, the
person it goes to and their institution already took in the limit's window (30 days, a day, a
minute, or the whole life), against their limits and approved jobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

from pyroaring import BitMap
from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from strongroom.access import shares
from strongroom.access.context import Principal
from strongroom.cohort.crypto import MasterKey
from strongroom.watch import charges, exposure
from strongroom.watch.models import DeclaredJob, MeterRow
from strongroom.watch.policy import WINDOWS, WORDS, Limits, Meter, limits_for

# Requests that count against the rate limit: those touching participant data.
DATA_ACTIONS = ("data.analyse", "data.export", "output.request", "output.download")
SCOPES = (("project", "project_id"), ("person", "person_id"),
          ("institution", "institution_id"))
RECORD_METERS = (Meter.RECORD_PARTICIPANTS, Meter.LIFETIME_PARTICIPANTS)
# the widest window a job's room is counted in (the lifetime's is counted by lifetime_extra)
WIDEST = max(w for m, w in WINDOWS.items() if m is not Meter.LIFETIME_PARTICIPANTS)


class Gate(Protocol):
    """The transfer limits on requests that read data but take no record-level rows
    (``Watch.hold``): the services that read data hold them, so no caller can forget them."""

    def hold(self, principal: Principal, project_id: str, action: str, *, cells: int = 0,
             bytes_out: int = 0) -> None: ...


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
    scope: str  # project | person | institution
    target_id: str
    meter: Meter
    limit: int
    used: int  # already taken in the window
    asked: int  # this request
    shared_by: int = 1  # an institution's: its active projects, among which it is split
    whole: bool = False  # an institution's whole, over all its projects (not a share)

    def sentence(self) -> str:
        if self.whole:  # what it counts is other projects' use too: no figure of it shown
            return (f"institution {self.target_id} would exceed its limit of {self.limit:,} "
                    f"{WORDS[self.meter]} over all its projects (a project approved, or a "
                    f"member joining or leaving, within the window moved the shares of it)")
        share = shares.describe(self.shared_by) if self.scope == "institution" else ""
        return (f"{self.scope} {self.target_id} would exceed its limit of {self.limit:,} "
                f"{WORDS[self.meter]}{share} ({self.used:,} already, {self.asked:,} more "
                f"asked)")

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
    """The room the project's approved jobs in force now add."""
    return _room(db.scalars(select(DeclaredJob).where(
        DeclaredJob.project_id == project_id, DeclaredJob.approved_at.is_not(None),
        DeclaredJob.starts_at <= now, DeclaredJob.ends_at > now)).all())


def allowance_jobs(db: Session, now: dt.datetime, institution_id: str, since: dt.datetime
                   ) -> Sequence[DeclaredJob]:
    """Every approved job of the institution's projects in force at any moment from
    ``since`` (a window's start) to now: the room of the institution's whole, which holds
    beside the shares and counts every project's use in the window, that an ended job's
    room let through too (counting only the jobs in force now, the whole fell below what it
    had let through, and refused within a share)."""
    return db.scalars(select(DeclaredJob).where(
        DeclaredJob.project_id.in_(shares.projects_of(institution_id)),
        DeclaredJob.approved_at.is_not(None), DeclaredJob.starts_at <= now,
        DeclaredJob.ends_at > since)).all()


def _room(jobs: Sequence[DeclaredJob]) -> Allowance:
    return Allowance(sum(j.record_participants for j in jobs), sum(j.cells for j in jobs),
                     sum(j.bytes_out for j in jobs), tuple(sorted(j.id for j in jobs)))


def _metered(db: Session, column: str, target_id: str, meters: Sequence[Meter],
             now: dt.datetime, within: str | None = None) -> dict[Meter, int]:
    """What the target has used of each counted meter (cells, bytes, requests) in its window,
    read in one query: every request reads them for every target it is charged to.
    ``within``: only in that project (an institution's share)."""
    if not meters:
        return {}
    since = {meter: now - WINDOWS[meter] for meter in meters}
    counted: list[ColumnElement[int]] = []
    for meter in meters:
        recent = MeterRow.at >= since[meter]
        if meter is Meter.REQUESTS:
            counted.append(func.count(case((and_(recent, MeterRow.action.in_(DATA_ACTIONS)),
                                            1))))
        else:
            measure = MeterRow.cells if meter is Meter.CELLS else MeterRow.bytes_out
            counted.append(func.coalesce(func.sum(case((recent, measure), else_=0)), 0))
    where = [charges.meter_taken(db, column, target_id), MeterRow.at >= min(since.values())]
    if within is not None:
        where.append(MeterRow.project_id == within)
    row = db.execute(select(*counted).where(*where)).one()
    return {meter: int(used or 0) for meter, used in zip(meters, row, strict=True)}


def lifetime_extra(db: Session, project_id: str, institution_id: str | None = None) -> int:
    """What every job ever approved for the project added: room for its whole life too (or,
    ``institution_id``, for every project of that institution)."""
    whose = (DeclaredJob.project_id == project_id if institution_id is None
             else DeclaredJob.project_id.in_(shares.projects_of(institution_id)))
    return int(db.scalar(select(func.coalesce(func.sum(DeclaredJob.record_participants), 0))
                         .where(whose, DeclaredJob.approved_at.is_not(None))) or 0)


def limits_of(db: Session, scope: str, target_id: str) -> Limits:
    """The limits on a target; a person's are the smallest of every account of theirs."""
    if scope != "person":
        return limits_for(db, scope, target_id)
    accounts = [limits_for(db, scope, a) for a in charges.people(db, target_id)]
    return Limits(**{f.name: min(getattr(a, f.name) for a in accounts)
                     for f in fields(Limits)})


def breaches(db: Session, key: MasterKey, project_id: str, institutions: Sequence[str],
             planned: Planned, now: dt.datetime, person_id: str | None = None
             ) -> list[Breach]:
    """Every limit ``planned`` would break (empty: it may run). ``person_id``: the person the
    data goes to (their limits span all their projects and accounts); None for a request that
    goes to no one (the operator's). ``institutions``: every one it is charged to
    (watch/charges.py), each in this project's share of its limits (access/shares.py): only
    this project's use counts against it, so no other project's requests or exports move
    this one's refusals; and each one's whole, over all its projects, which the shares never
    reach while they stand (access/shares.py: it holds the bound when they move)."""
    # the room approved jobs add to the project's own limits, read only where one would be
    # passed without it (most requests pass every limit by far: two queries fewer each).
    # Whether it is read moves the request's time, so only where what decides it is this
    # project's own or this person's: an institution's whole, which counts other projects'
    # use, has its room read every time.
    rooms: dict[tuple[str | None, Meter | None], Allowance] = {}
    whole_jobs: dict[str, Sequence[DeclaredJob]] = {}
    lives: dict[str | None, int] = {}

    def room_of(whole_of: str | None, meter: Meter | None = None) -> Allowance:
        """The project's room in force now, or (``whole_of``) the institution's, of every
        job in force within ``meter``'s window."""
        if whole_of is None:
            if (None, None) not in rooms:
                rooms[None, None] = allowance(db, project_id, now)
            return rooms[None, None]
        assert meter is not None
        if (whole_of, meter) not in rooms:  # every job of the widest window, in one query
            if whole_of not in whole_jobs:
                whole_jobs[whole_of] = allowance_jobs(db, now, whole_of, now - WIDEST)
            rooms[whole_of, meter] = _room([j for j in whole_jobs[whole_of]
                                            if j.ends_at > now - WINDOWS[meter]])
        return rooms[whole_of, meter]

    def life_of(whole_of: str | None) -> int:
        if whole_of not in lives:
            lives[whole_of] = lifetime_extra(db, project_id, whole_of)
        return lives[whole_of]

    def with_room(base: int, meter: Meter, whole_of: str | None) -> int:
        return base + (life_of(whole_of) if meter is Meter.LIFETIME_PARTICIPANTS
                       else room_of(whole_of, meter).of(meter))

    # (scope, target, the project whose share it is: None for a limit counted whole)
    targets = [("project", project_id, None), ("person", person_id, None),
               *(("institution", i, project_id) for i in institutions),
               *(("institution", i, None) for i in institutions)]
    columns = dict(SCOPES)
    read: dict[tuple[str, str], Limits] = {}
    found: list[Breach] = []
    for scope, target, within in targets:
        column = columns[scope]
        if target is None:
            continue
        if (scope, target) not in read:
            read[scope, target] = limits_of(db, scope, target)
        limits = read[scope, target]
        # an institution's whole counts every project's use, that other projects' approved
        # jobs allowed beyond their shares too: so its room is every project's jobs'
        whole_of = target if scope == "institution" and within is None else None
        if whole_of is not None:  # read whatever other projects used
            room_of(whole_of, Meter.RECORD_PARTICIPANTS)
            life_of(whole_of)
        asked = {Meter.CELLS: planned.cells, Meter.BYTES: planned.bytes,
                 Meter.REQUESTS: planned.requests}
        metered = _metered(db, column, target, [m for m in Meter if asked.get(m)], now,
                           within)
        # a share: of the institution's projects active within each meter's window
        sharing = dict(zip(Meter, shares.active_within(
            db, target, [now - WINDOWS[m] for m in Meter]), strict=True)
            ) if within is not None else dict.fromkeys(Meter, 1)
        for meter in Meter:
            shared_by = sharing[meter]
            base = shares.share(limits.of(meter), shared_by)  # the room added if needed
            if meter in RECORD_METERS:
                if planned.record_members is None:
                    if planned.record_count > base and (
                            planned.record_count > (limit := with_room(base, meter, whole_of))):
                        found.append(Breach(scope, target, meter, limit, 0,
                                            planned.record_count, shared_by,
                                            whole_of is not None))
                    continue
                before = exposure.union_since(
                    db, key, column, target, now - WINDOWS[meter],
                    room_of(whole_of, meter).jobs if meter is Meter.RECORD_PARTICIPANTS
                    else None,
                    within=within)
                used, wanted = len(before), len(planned.record_members - before)  # new only
            elif meter in metered:
                used, wanted = metered[meter], asked[meter]
            else:  # nothing of it asked
                continue
            if used + wanted > base and (
                    used + wanted > (limit := with_room(base, meter, whole_of))):
                found.append(Breach(scope, target, meter, limit, used, wanted, shared_by,
                                    whole_of is not None))
    return found
