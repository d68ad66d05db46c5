"""Watch as one service: limits before a request, metering after it, detectors on every
metered request and security event, and the response (alerts, automatic suspension).

The server composes it: a guard before data routes, a meter after every request. The access
context tells it of every audit event, so failed MFA, refused tokens and new accounts are
watched without access knowing about watch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from typing import Any, NoReturn

import polars as pl
from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from strongroom.access import pauses, shares
from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Person, Project
from strongroom.access.permissions import Action
from strongroom.access.states import PauseLevel
from strongroom.access.tokens import new_id
from strongroom.audit import AuditEvent, EventType
from strongroom.errors import Invalid, NotFound, RateLimited, Refused, is_failure
from strongroom.watch import charges, forecast
from strongroom.watch.detectors import run_all
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.exposure import reserve, union_since
from strongroom.watch.history import METER_SCHEMA, DeclaredWindow, History, Observation
from strongroom.watch.limits import (
    DATA_ACTIONS,
    Breach,
    Planned,
    allowance,
    breaches,
    limits_of,
)
from strongroom.watch.models import AlertRow, DeclaredJob, ExposureRow, MeterRow
from strongroom.watch.policy import WINDOWS, Limits, Meter, limits_for, set_limits
from strongroom.watch.raising import raise_alert
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import Severity

log = logging.getLogger(__name__)

LOOK_BACK = dt.timedelta(days=60)
# Audit events watch reads as security observations (the person is the event's actor).
SECURITY_EVENTS = frozenset({
    EventType.AUTH_LOGIN_FAILED, EventType.AUTH_MFA_FAILED, EventType.AUTH_MFA_REPLAYED,
    EventType.AUTH_LOGIN_LOCKED, EventType.AUTH_TOKEN_REFUSED, EventType.PERSON_CREATED,
    EventType.ACCESS_REFUSED,
})
STATUS_OF = {EventType.PERSON_CREATED: 201, EventType.ACCESS_REFUSED: 403}
# Changes to a project's differential privacy the security team is shown as alerts: a budget
# that grows, a project that leaves DP mode, and an attempt the platform refused.
DP_CHANGES = {EventType.DP_BUDGET_SET: Severity.LOW, EventType.DP_BUDGET_REFUSED: Severity.LOW,
              EventType.DP_MODE_LEFT: Severity.MEDIUM}


def dp_change_signal(event: AuditEvent) -> Signal:
    """The alert for a DP change: who, which project, what changed and the reason given."""
    d = event.details
    reason = str(d.get("reason", ""))
    if event.type is EventType.DP_MODE_LEFT:
        title = f"project {event.subject} left differential-privacy mode"
        reasons = [f"{event.actor} ended the project's DP history after {d.get('answers')} "
                   f"answer(s) spending ε {d.get('epsilon_spent')}: {reason}"]
    elif event.type is EventType.DP_BUDGET_REFUSED:
        title = f"a change to project {event.subject}'s DP budget was refused"
        said = d.get("reasons")
        reasons = [f"{event.actor} asked ({reason}); refused: "
                   + "; ".join(map(str, said if isinstance(said, list) else []))]
    else:
        title = f"project {event.subject}'s DP mode or budget was set"
        reasons = [f"{event.actor} set DP mode {d.get('was_dp_mode')} → {d.get('dp_mode')}, "
                   f"ε {d.get('was_epsilon_total')} → {d.get('epsilon_total')}, δ "
                   f"{d.get('was_delta_total')} → {d.get('delta_total')}: {reason}"]
        mixed = d.get("mixed_access")
        reasons += [f"mixed access: {m}" for m in (mixed if isinstance(mixed, list) else [])]
    evidence = {k: d[k] for k in ("epsilon_total", "was_epsilon_total", "dp_mode",
                                  "epsilon_spent", "answers") if k in d}
    return Signal(detector=event.type.value, severity=DP_CHANGES[event.type],
                  subject=Subject(person_id=event.actor, project_id=event.subject),
                  title=title, reasons=reasons, evidence=evidence,
                  dedup=hashlib.sha256(f"{sorted(evidence.items())}|{reason}".encode())
                  .hexdigest()[:16])


MAX_COUNT = 2**31 - 1  # what the job's integer columns hold on every database
MAX_BYTES = 2**62


# the status of a meter row reserved before its request was served, until its answer is
# known: the CLI's and jobs' rows keep it, as does a request whose client went away
RESERVED = 0


@dataclass
class Ticket:
    """The meter row one request's reservations are written on (none yet: None)."""

    row_id: int | None = None


TICKET: ContextVar[Ticket | None] = ContextVar("strongroom_watch_ticket", default=None)


@dataclass(frozen=True)
class Reservation:
    """A record-level export counted before it runs; cancel it if the export fails."""

    exposure_id: int


class Watch:
    def __init__(self, ctx: AccessContext, *, cohort_size: Callable[[], int] = lambda: 0,
                 policy: DetectorPolicy | None = None,
                 deliver: Callable[[AlertRow], None] | None = None):
        self.ctx = ctx
        self.cohort_size = cohort_size
        self.policy = policy or DetectorPolicy()
        self.deliver = deliver
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        ctx.observers.append(self.on_audit)

    # -- limits, before a request runs -------------------------------------------------------

    def _lock(self, project_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(project_id, threading.Lock())

    def guard(self, principal: Principal | None, project_id: str, action: str,
              planned: Planned, *, charged: str | None = None) -> Reservation | None:
        """Refuse (and suspend) if ``planned`` breaks a limit; else reserve it: its meter row
        (cells, bytes, the request), and any export's participants, written in the same
        transaction as the check, before a byte is read or sent (reserve, then serve).

        ``charged``: the person the data goes to, when not the caller (a custodian making an
        extract for a project's lead): they and the project are suspended over a limit.

        Check and reservation are one step: a lock in this process, and the rows of every
        institution and account it is charged to locked first in the transaction (always in
        one order), so that requests and servers sharing the database cannot each let through
        the last of an allowance (PostgreSQL holds the row locks, SQLite its write lock, until
        the reservation commits).
        """
        now = self.ctx.clock()
        person = charged or (principal.person_id if principal is not None else None)
        ticket = TICKET.get()
        with self._lock(project_id), self.ctx.transaction() as db:
            project = db.get(Project, project_id)
            if project is None:
                raise NotFound(f"there is no project {project_id}")
            lead = db.get(Person, project.lead_id)
            if lead is None:
                raise Invalid(f"project {project_id} has no lead; it cannot be metered")
            own = db.get(Person, person) if person is not None else None
            # charged to the person's own institution and to the project's lead's
            institution = own.institution_id if own is not None else lead.institution_id
            institutions = sorted({lead.institution_id, institution})
            accounts = list(charges.people(db, person)) if person is not None else []
            _lock_rows(db, accounts, project_id)
            if ticket is not None and ticket.row_id is not None:
                planned = replace(planned, requests=0)  # this request is counted already
            found = breaches(db, self.ctx.key, project_id, institutions, planned, now, person)
            breached = [b.target_id for b in found if b.scope == "institution"]
            whole = any(limits_for(db, "institution", i).suspend_institution
                        for i in (breached or institutions))
            subject_institution = breached[0] if breached else institution
            reservation, ahead = None, None
            if not found:
                self._reserve(db, ticket, principal, person, institution, project_id, action,
                              planned, now)
            if not found and planned.record_members is not None:
                jobs = allowance(db, project_id, now).jobs
                row = reserve(db, self.ctx.key, project_id, lead.institution_id, now,
                              planned.record_members, jobs[0] if jobs else None, person)
                db.flush()
                reservation = Reservation(row.id)
                if self.policy.lifetime.enabled:
                    ahead = forecast.signal(
                        forecast.forecasts(db, self.ctx.key, [
                            ("project", project_id), ("person", person),
                            *(("institution", i) for i in institutions)], project_id, now,
                            self.policy.lifetime),
                        Subject(person, institution, project_id), self.policy.lifetime,
                        in_a_job=bool(jobs))
        if found and all(b.whole for b in found):
            self._whole_reached(principal, project_id, action, found)
        if found and all(b.meter is Meter.REQUESTS for b in found):
            self._slow_down(principal, project_id, action, found, now)
        if found:
            self._over_limit(principal, person, project_id, subject_institution, action,
                             found, whole)
        if ahead is not None:  # this export stays within the allowance; the next may not run
            self.respond([ahead], institution_too=whole)
        return reservation

    def _reserve(self, db: Session, ticket: Ticket | None, principal: Principal | None,
                 person: str | None, institution: str, project_id: str, action: str,
                 planned: Planned, now: dt.datetime) -> None:
        """The request's meter row, written with its check: a request served over HTTP has one
        (``ticket``), completed by :meth:`observe` when its answer is ready; one from the CLI
        or a job keeps status 0, reserved and never confirmed by an HTTP answer, as does a
        request whose client went away (it costs what was made)."""
        row = db.get(MeterRow, ticket.row_id) if ticket is not None and \
            ticket.row_id is not None else None
        if row is not None:
            row.cells += planned.cells
            row.bytes_out += planned.bytes
            return
        row = MeterRow(at=now, person_id=person, institution_id=institution,
                       project_id=project_id, action=action[:40],
                       token_id=principal.token_id if principal is not None else None,
                       via=principal.via.value if principal is not None else None,
                       route=f"(reserved) {action}"[:120], status=RESERVED,
                       cells=planned.cells, bytes_out=planned.bytes, rows_scanned=0,
                       participants=0, record_rows=0, near_threshold=0, differencing=0,
                       differencing_within=0, walls=0, diverged=0, late=0, duration_ms=0.0)
        db.add(row)
        db.flush()
        if ticket is not None:
            ticket.row_id = row.id

    def hold(self, principal: Principal, project_id: str, action: str, *, cells: int = 0,
             bytes_out: int = 0) -> None:
        """The limits on a request that takes no record-level rows (an analysis, a definition,
        a download of released cells, a DP query): what the services call before any data is
        read, so that every caller meets them (outputs.service.Gate)."""
        self.guard(principal, project_id, action, Planned(cells=cells, bytes=bytes_out))

    def cancel(self, reservation: Reservation | None) -> None:
        if reservation is None:
            return
        with self.ctx.transaction() as db:
            db.execute(delete(ExposureRow).where(ExposureRow.id == reservation.exposure_id))

    def _slow_down(self, principal: Principal | None, project_id: str, action: str,
                   found: Sequence[Breach], now: dt.datetime) -> None:
        """Over the request rate alone: 429 with the seconds until a request leaves the
        window (or, where the limit itself is none, refused: no wait would do). A
        fast honest script is slowed, not suspended; the detectors that mean
        exfiltration (sweeps, reconstruction, differencing, rewording floods) still suspend."""
        # an institution's share of none is slowed: it grows as projects leave the window
        if any(b.limit < b.asked and b.shared_by == 1 for b in found):
            self._refuse(principal, project_id, action, found,
                         "nothing was run; no request fits within this limit however long "
                         "one waits: a custodian admin can raise it (PUT "
                         "/watch/limits/SCOPE/ID)")
        window = WINDOWS[Meter.REQUESTS]
        with self.ctx.transaction() as db:
            columns = {"project": "project_id", "person": "person_id",
                       "institution": "institution_id"}
            # what each breached limit counted: an institution's share, this project's rows
            oldest = [db.scalar(select(func.min(MeterRow.at)).where(
                charges.meter_taken(db, columns[b.scope], b.target_id),
                *([MeterRow.project_id == project_id] if b.scope == "institution" else []),
                MeterRow.at >= now - window, MeterRow.action.in_(DATA_ACTIONS)))
                for b in found]
        leaves = [o + window for o in oldest if o is not None]
        wait = max(1, math.ceil(((max(leaves) if leaves else now + window) - now)
                                .total_seconds()))
        self.ctx.record(EventType.WATCH_LIMIT_REFUSED, principal or "operator", project_id,
                        {"action": action, "breaches": [b.to_json() for b in found],
                         "retry_after": wait})
        raise RateLimited([*(b.sentence() for b in found),
                           f"nothing was run; slow down and try again in {wait} s (a rate "
                           f"over the limit is refused, not suspended)"], retry_after=wait)

    def _whole_reached(self, principal: Principal | None, project_id: str, action: str,
                       found: Sequence[Breach]) -> None:
        """Only an institution's whole is reached (its projects moved within the window: the
        shares never reach it otherwise): refused, nobody suspended, since what reached it
        is other projects' use as much as this one's."""
        self._refuse(principal, project_id, action, found,
                     "nothing was run and nobody is suspended; a custodian admin can raise "
                     "the institution limit (PUT /watch/limits/institution/ID), or try "
                     "again once the window has passed")

    def _refuse(self, principal: Principal | None, project_id: str, action: str,
                found: Sequence[Breach], closing: str) -> NoReturn:
        """Refused (403) with each breach's sentence and ``closing``, recorded; nobody
        suspended."""
        self.ctx.record(EventType.WATCH_LIMIT_REFUSED, principal or "operator", project_id,
                        {"action": action, "breaches": [b.to_json() for b in found]})
        raise Refused([*(b.sentence() for b in found), closing])

    def _over_limit(self, principal: Principal | None, person: str | None, project_id: str,
                    institution: str, action: str, found: Sequence[Breach],
                    institution_too: bool) -> None:
        sentences = [b.sentence() for b in found]
        signal = Signal(
            detector=f"limit.{found[0].meter.value.replace('_', '-')}", severity=Severity.HIGH,
            subject=Subject(person, institution, project_id),
            title=f"request over a hard limit refused ({action})", reasons=sentences,
            evidence={"action": action, "breaches": [b.to_json() for b in found]},
            suspend=True, dedup=found[0].meter.value)
        alerts = self.respond([signal], institution_too=institution_too)
        self.ctx.record(EventType.WATCH_LIMIT_REFUSED, principal or "operator", project_id,
                        {"action": action, "breaches": [b.to_json() for b in found],
                         "alerts": [a.id for a in alerts]})
        alert = alerts[0].id if alerts else "this refusal"
        raise Refused([*sentences, f"nothing was run and nothing left; the person and the "
                       f"project are suspended until two custodian admins lift it — appeal "
                       f"with `strongroom watch appeal {alert} --text …` (POST "
                       f"/watch/alerts/{alert}/appeal); a large job can be declared and "
                       f"approved in advance (POST /projects/{project_id}/jobs)"])

    # -- metering, after a request -----------------------------------------------------------

    @contextmanager
    def request(self) -> Iterator[Ticket]:
        """While a request is served: the ticket its reservations are written on (the gateway
        holds it around the request, and passes it to :meth:`observe` after)."""
        ticket = Ticket()
        token = TICKET.set(ticket)
        try:
            yield ticket
        finally:
            TICKET.reset(token)

    def observe(self, obs: Observation, ticket: Ticket | None = None) -> list[AlertRow]:
        """Meter one request and run the detectors on it; never raises into the request.

        A request that reserved (``ticket``) completes its own row: one row per request. Its
        reserved cells and bytes stand when it was answered; a request that failed (4xx, 5xx)
        sent nothing, and its reservation is released."""
        try:
            with self.ctx.transaction() as db:
                row = db.get(MeterRow, ticket.row_id) if ticket is not None and \
                    ticket.row_id is not None else None
                if row is None:
                    db.add(obs.to_row())
                else:
                    _complete(row, obs)
            if obs.person_id is None and obs.project_id is None and \
                    obs.institution_id is None:
                return []
            if not self.policy.enabled:  # no detector to judge it: metered, history unread
                return []
            history = self.history(obs)
            signals = run_all(obs, history, self.policy)
            return self.respond(signals) if signals else []
        except BaseException as failure:  # watch must not break the request it watches
            if not is_failure(failure):
                raise
            log.exception("watch could not meter or judge a request")
            return []

    def history(self, obs: Observation) -> History:
        now = obs.at
        since = now - LOOK_BACK
        with self.ctx.transaction() as db:
            # a person's history is every account of the human's (watch/charges.py): a sweep
            # split between two accounts is one sweep. An institution's is its own people's
            # (their networks, their hours), not its projects' members elsewhere. Read in one
            # query, each row once with whose history it is in: the three overlap, mostly
            # (one person's requests in one project of one institution), and reading each
            # apart read most rows three times on every request
            whose = {"person": (charges.meter_taken(db, "person_id", obs.person_id)
                                if obs.person_id is not None else None),
                     "project": (MeterRow.project_id == obs.project_id
                                 if obs.project_id is not None else None),
                     "institution": (MeterRow.institution_id == obs.institution_id
                                     if obs.institution_id is not None else None)}
            held = {name: taken for name, taken in whose.items() if taken is not None}
            cols = [getattr(MeterRow, name) for name in METER_SCHEMA]
            flags = [case((taken, True), else_=False).label(f"in_{name}")
                     for name, taken in held.items()]
            rows = db.execute(select(*cols, *flags).where(or_(*held.values()),
                                                         MeterRow.at >= since)
                              .order_by(MeterRow.at, MeterRow.id)).all() if held else []
            read = pl.DataFrame(rows, schema={**METER_SCHEMA, **{
                f"in_{name}": pl.Boolean() for name in held}}, orient="row")

            rows_only = read.drop([f"in_{name}" for name in held])

            def frame(name: str) -> pl.DataFrame:
                if name not in held:
                    return pl.DataFrame(schema=METER_SCHEMA)
                whose_rows = read.get_column(f"in_{name}")  # a mask, not an expression:
                # a fifteenth of the time (no query plan), and none when every row is theirs
                return rows_only if whose_rows.all() else rows_only.filter(whose_rows)

            person, project, institution = frame("person"), frame("project"), \
                frame("institution")
            # platform-wide, but only the rows detectors count across people by (a token's
            # uses, an address's failed sign-ins): every row of the hour was read on every
            # request, and grew with the platform's traffic
            cols = [getattr(MeterRow, name) for name in METER_SCHEMA]
            shared = [MeterRow.token_id == obs.token_id] if obs.token_id is not None else []
            shared += [MeterRow.source == obs.source] if obs.source else []
            recent = pl.DataFrame(db.execute(select(*cols).where(
                MeterRow.at >= now - dt.timedelta(hours=1), or_(*shared))
                .order_by(MeterRow.at, MeterRow.id)).all() if shared else [],
                schema=METER_SCHEMA, orient="row")
            exposed, allowance_30d = 0, None
            windows: tuple[DeclaredWindow, ...] = ()
            if obs.project_id:
                month = now - dt.timedelta(days=30)
                exposed = len(union_since(db, self.ctx.key, "project_id", obs.project_id,
                                          month))
                allowance_30d = (limits_for(db, "project", obs.project_id).record_participants
                                 + allowance(db, obs.project_id, now).record_participants)
                windows = tuple(DeclaredWindow(j.id, j.starts_at, j.ends_at)
                                for j in db.scalars(select(DeclaredJob).where(
                                    DeclaredJob.project_id == obs.project_id,
                                    DeclaredJob.approved_at.is_not(None),
                                    DeclaredJob.ends_at > month, DeclaredJob.starts_at <= now)))
        return History(now=now, person=person, project=project, institution=institution,
                       recent=recent, exposed_30d=exposed, cohort_size=self.cohort_size(),
                       record_allowance_30d=allowance_30d, declared_jobs=windows)

    def on_audit(self, event: AuditEvent) -> None:
        """Security events from the audit log become observations (failed MFA, bad tokens…);
        changes to a project's differential privacy become alerts of their own."""
        if event.type in DP_CHANGES:
            self.respond([dp_change_signal(event)])
            return
        if event.type not in SECURITY_EVENTS or event.type is EventType.ACCESS_REFUSED:
            return
        person_id = event.actor if event.actor and event.actor.startswith("per_") else None
        if event.type is EventType.PERSON_CREATED:
            person_id = event.subject
        institution = None
        if person_id is not None:
            with self.ctx.transaction() as db:
                person = db.get(Person, person_id)
                institution = person.institution_id if person else None
        details = dict(event.details)
        token = event.subject if event.type is EventType.AUTH_TOKEN_REFUSED else None
        self.observe(Observation(
            at=self.ctx.clock(), action=event.type.value,
            route=str(details.get("why", ""))[:120], status=STATUS_OF.get(event.type, 401),
            person_id=person_id, institution_id=institution, token_id=token,
            source=event.sensitive.get("source"), via=str(details.get("via") or "") or None))

    # -- response ----------------------------------------------------------------------------

    def respond(self, signals: Iterable[Signal], *,
                institution_too: bool = False) -> list[AlertRow]:
        """Alerts for the signals; suspension of person and project where a signal asks."""
        now = self.ctx.clock()
        raised: list[tuple[AlertRow, bool, list[Any]]] = []
        with self.ctx.transaction() as db:
            for signal in signals:
                alert, new = raise_alert(db, signal, now)
                db.flush()
                set_now = []
                if signal.suspend:
                    set_now = self._suspend(db, signal, alert, institution_too)
                    alert.suspensions = [*alert.suspensions, *(p.id for p in set_now)]
                raised.append((alert, new, set_now))
                self.ctx.record(EventType.WATCH_ALERT_RAISED, "watch", alert.id, {
                    "detector": alert.detector, "severity": alert.severity, "new": new,
                    "count": alert.count, "person": alert.person_id,
                    "project": alert.project_id, "institution": alert.institution_id})
                for pause in set_now:
                    self.ctx.record(EventType.WATCH_SUSPENDED, "watch", pause.id, {
                        "level": pause.level, "target": pause.target_id, "alert": alert.id})
        for alert, new, set_now in raised:
            if self.deliver is not None and (new or set_now):
                try:
                    self.deliver(alert)
                except BaseException as failure:
                    if not is_failure(failure):
                        raise
                    log.exception("an alert could not be delivered; it stays in the list")
        return [a for a, _, _ in raised]

    def _suspend(self, db: Session, signal: Signal, alert: AlertRow,
                 institution_too: bool) -> list[Any]:
        s = signal.subject
        reason = f"suspended automatically by watch (alert {alert.id}: {signal.title})"
        # what the institution's other people read: that a limit was broken, not whose, nor
        # which project's, nor what (the alert says so to the custodians)
        whole = ("suspended automatically by watch: a request charged to the institution "
                 "broke a limit set to suspend it; the custodian's team has the alert")
        targets = [(PauseLevel.PERSON, s.person_id, reason),
                   (PauseLevel.PROJECT, s.project_id, reason)]
        if institution_too:
            targets.append((PauseLevel.INSTITUTION, s.institution_id, whole))
        made = []
        for level, target, why in targets:
            if target is not None:
                pause = pauses.suspend(self.ctx, db, level, target, why, alert.id)
                if pause is not None:
                    made.append(pause)
        return made

    # -- policy: limits and declared jobs -----------------------------------------------------

    def set_limits(self, principal: Principal, scope: str, target_id: str,
                   values: dict[str, Any]) -> Limits:
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.WATCH_LIMITS_SET)
            limits = set_limits(db, scope, target_id, values, principal.person_id)
            self.ctx.record(EventType.WATCH_LIMITS_SET, principal, target_id,
                            {"scope": scope, "values": values})
        return limits

    def limits(self, principal: Principal, project_id: str) -> tuple[Limits, Limits, Limits]:
        """What holds for the caller's transfers in the project: the project's limits, the
        caller's own (the smallest of every account of theirs), and their institutions' (the
        smallest of their own institution's and the lead's, each limit separately), each as
        this project's share of it, as it is enforced (watch/limits.py)."""
        with self.ctx.transaction() as db:
            project = authorize(self.ctx, db, principal, Action.PROJECT_READ, project_id)
            assert project is not None
            charged = {_institution_of(db, project), principal.institution_id}
            now = self.ctx.clock()
            institution = _smallest([_share_of(limits_for(db, "institution", i), dict(zip(
                Meter, shares.active_within(db, i, [now - WINDOWS[m] for m in Meter]),
                strict=True))) for i in charged])
            return (limits_for(db, "project", project_id),
                    limits_of(db, "person", principal.person_id), institution)

    def declare_job(self, principal: Principal, project_id: str, description: str, *,
                    record_participants: int = 0, cells: int = 0, bytes_out: int = 0,
                    starts_at: dt.datetime, ends_at: dt.datetime) -> DeclaredJob:
        if not description.strip():
            raise Invalid("describe the job: what it runs and why it needs more")
        if min(record_participants, cells, bytes_out) < 0 or not (
                record_participants or cells or bytes_out):
            raise Invalid("a declared job asks for more of at least one of: "
                          "record_participants, cells, bytes_out (whole numbers ≥ 0)")
        if max(record_participants, cells) > MAX_COUNT or bytes_out > MAX_BYTES:
            raise Invalid(f"a declared job asks for at most {MAX_COUNT:,} participants or "
                          f"cells and {MAX_BYTES:,} bytes")
        if ends_at <= starts_at or ends_at - starts_at > dt.timedelta(days=31):
            raise Invalid("a declared job's window ends after it starts and lasts at most "
                          "31 days")
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.WATCH_JOB_DECLARE, project_id)
            job = DeclaredJob(id=new_id("job"), project_id=project_id,
                              description=description.strip(),
                              record_participants=record_participants, cells=cells,
                              bytes_out=bytes_out, starts_at=starts_at, ends_at=ends_at,
                              declared_by=principal.person_id)
            db.add(job)
            self.ctx.record(EventType.WATCH_JOB_DECLARED, principal, job.id, {
                "project": project_id, "record_participants": record_participants,
                "cells": cells, "bytes_out": bytes_out})
        return job

    def approve_job(self, principal: Principal, job_id: str) -> DeclaredJob:
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.WATCH_LIMITS_SET)
            job = db.get(DeclaredJob, job_id)
            if job is None:
                raise NotFound(f"there is no declared job {job_id}")
            if job.approved_at is not None:
                return job
            job.approved_by, job.approved_at = principal.person_id, self.ctx.clock()
            self.ctx.record(EventType.WATCH_JOB_APPROVED, principal, job_id,
                            {"project": job.project_id})
        return job

    def jobs(self, principal: Principal, project_id: str) -> list[DeclaredJob]:
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.PROJECT_READ, project_id)
            return list(db.scalars(select(DeclaredJob).where(
                DeclaredJob.project_id == project_id).order_by(DeclaredJob.starts_at)))


def _lock_rows(db: Session, accounts: Sequence[str], project_id: str) -> None:
    """Lock what a check-and-reserve counts against, in the one order every charge uses
    (the project, then the accounts, sorted, as outputs/answers.py does) so that two
    requests never wait on each other in a circle. An institution's row is not locked: each
    project counts only against its own share of the institution's limits (watch/limits.py),
    which the project's lock holds, so no request waits for another project's. A no-op
    write: PostgreSQL holds the row locks and SQLite its write lock until the transaction
    ends."""
    db.execute(update(Project).where(Project.id == project_id).values(id=Project.id))
    for account in sorted(accounts):
        db.execute(update(Person).where(Person.id == account).values(id=Person.id))


# what a request's reserved row is completed with; who it was charged to stays as reserved
_COMPLETED = tuple(f.name for f in fields(Observation)
                   if f.name not in ("at", "person_id", "institution_id", "project_id",
                                     "cells", "bytes_out"))


def _complete(row: MeterRow, obs: Observation) -> None:
    reserved = row.action
    for name in _COMPLETED:
        setattr(row, name, getattr(obs, name))
    if reserved in DATA_ACTIONS:  # it took data, whatever its route is named: the rate counts it
        row.action = reserved
    answered = 200 <= obs.status < 400
    row.cells = max(row.cells, obs.cells) if answered else obs.cells
    row.bytes_out = max(row.bytes_out, obs.bytes_out) if answered else obs.bytes_out


def _share_of(limits: Limits, sharing: dict[Meter, int]) -> Limits:
    """A project's share of an institution's limits (access/shares.py), each split among the
    projects active within its meter's window, as watch/limits.py enforces it."""
    def share(meter: Meter) -> int:
        return shares.share(limits.of(meter), sharing[meter])
    return replace(limits, record_participants=share(Meter.RECORD_PARTICIPANTS),
                   cells=share(Meter.CELLS), bytes=share(Meter.BYTES),
                   requests=share(Meter.REQUESTS),
                   lifetime_participants=share(Meter.LIFETIME_PARTICIPANTS))


def _smallest(limits: Sequence[Limits]) -> Limits:
    """Each limit the smallest of ``limits`` (a breach of any suspends the institution)."""
    return Limits(**{f.name: (any if f.type == "bool" else min)(
        getattr(one, f.name) for one in limits) for f in fields(Limits)})


def _institution_of(db: Session, project: Project) -> str:
    lead = db.get(Person, project.lead_id)
    if lead is None:
        raise Invalid(f"project {project.id} has no lead; it cannot be metered")
    return lead.institution_id
