"""The alert lifecycle: list, read, acknowledge, resolve (a reason is required), reopen.

Moves follow ``TRANSITIONS`` in :mod:`strongroom.watch.states`. Each is a conditional update
(``WHERE status = <the status read>``): when two analysts act on one alert at once, exactly one
moves it and the other is told what it has become. Every move is audited; every refusal says
what is wrong and what can be done. Resolving an alert never lifts a suspension: that is an
appeal's review (:mod:`strongroom.watch.appeals`) or the pause switch, with two admins.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action
from strongroom.audit import EventType
from strongroom.db import affected
from strongroom.errors import Conflict, Invalid, NotFound
from strongroom.watch.appeals import AppealDecision, AppealView, no_appeal, view_of
from strongroom.watch.models import AlertRow
from strongroom.watch.states import AlertAction, AlertStatus, Severity, advance

MIN_REASON, MAX_TEXT = 10, 5000
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # what every database's integer holds
_ATTEMPTS = 3

EVENTS: dict[AlertAction, EventType] = {
    AlertAction.ACKNOWLEDGE: EventType.WATCH_ALERT_ACKNOWLEDGED,
    AlertAction.RESOLVE: EventType.WATCH_ALERT_RESOLVED,
    AlertAction.REOPEN: EventType.WATCH_ALERT_REOPENED,
}


@dataclass(frozen=True)
class AlertView:
    alert: AlertRow
    appeal: AppealView

    @property
    def status(self) -> AlertStatus:
        return AlertStatus(self.alert.status)


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts to list; every field narrows (None: any)."""

    status: AlertStatus | None = None
    severity: Severity | None = None
    detector: str | None = None  # exact, or a family ending in "." (e.g. "limit.")
    project_id: str | None = None
    institution_id: str | None = None
    person_id: str | None = None
    since: dt.datetime | None = None  # seen (last_at) at or after this time


def parse_filter(*, status: str | None = None, severity: str | None = None,
                 detector: str | None = None, project_id: str | None = None,
                 institution_id: str | None = None, person_id: str | None = None,
                 since: dt.datetime | None = None) -> AlertFilter:
    """A filter from plain values, naming every value that is wrong."""
    problems: list[str] = []
    state = _enum(AlertStatus, status, "an alert status", problems)
    level = _enum(Severity, severity, "a severity", problems)
    if detector is not None and not 0 < len(detector) <= 48:
        problems.append("a detector name is 1 to 48 characters")
    if since is not None and since.tzinfo is None:
        problems.append("since must carry a time zone (e.g. 2026-11-21T09:00:00Z)")
    if problems:
        raise Invalid(problems)
    return AlertFilter(state, level, detector, project_id, institution_id, person_id, since)


def _enum(kind: Any, value: str | None, what: str, problems: list[str]) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        problems.append(f"{value!r} is not {what}; use one of: "
                        f"{', '.join(v.value for v in kind)}")
        return None


def _filtered(query: Select[AlertRow], flt: AlertFilter) -> Select[AlertRow]:
    if flt.status is not None:
        query = query.where(AlertRow.status == flt.status.value)
    if flt.severity is not None:
        query = query.where(AlertRow.severity == flt.severity.value)
    if flt.detector is not None:
        query = query.where(AlertRow.detector.startswith(flt.detector, autoescape=True)
                            if flt.detector.endswith(".")
                            else AlertRow.detector == flt.detector)
    for column, value in ((AlertRow.project_id, flt.project_id),
                          (AlertRow.institution_id, flt.institution_id),
                          (AlertRow.person_id, flt.person_id)):
        if value is not None:
            query = query.where(column == value)
    if flt.since is not None:
        query = query.where(AlertRow.last_at >= flt.since)
    return query


def list_alerts(ctx: AccessContext, principal: Principal, flt: AlertFilter | None = None,
                *, limit: int = 100, offset: int = 0) -> list[AlertView]:
    """Alerts, most recently seen first; ``limit`` and ``offset`` page through them."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit is 1 to {MAX_LIMIT:,}")
    if not 0 <= offset <= MAX_OFFSET:
        raise Invalid(f"offset is 0 to {MAX_OFFSET:,}")
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.WATCH_READ)
        query = _filtered(select(AlertRow), flt or AlertFilter())
        rows = list(db.scalars(query.order_by(AlertRow.last_at.desc(), AlertRow.id)
                               .limit(limit).offset(offset)))
        decisions = {d.alert_id: d for d in db.scalars(select(AppealDecision).where(
            AppealDecision.alert_id.in_([r.id for r in rows])))} if rows else {}
        return [_view(db, row, decisions) for row in rows]


def _view(db: Session, row: AlertRow,
          decisions: dict[str, AppealDecision] | None = None) -> AlertView:
    if decisions is not None and row.appeal is None:  # the common case costs no query
        return AlertView(row, no_appeal(row.id))
    return AlertView(row, view_of(db, row))


def _get(db: Session, alert_id: str) -> AlertRow:
    found = db.get(AlertRow, alert_id)
    if found is None:
        raise NotFound(f"there is no alert {alert_id}")
    return found


def get(ctx: AccessContext, principal: Principal, alert_id: str) -> AlertView:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.WATCH_READ)
        return _view(db, _get(db, alert_id))


def acknowledge(ctx: AccessContext, principal: Principal, alert_id: str,
                note: str = "") -> AlertView:
    """Someone is on it: open → acknowledged (the note, if any, goes to the audit log)."""
    text = note.strip()
    if len(text) > MAX_TEXT:
        raise Invalid(f"a note is at most {MAX_TEXT:,} characters")
    return _move(ctx, principal, alert_id, AlertAction.ACKNOWLEDGE, text)


def resolve(ctx: AccessContext, principal: Principal, alert_id: str, reason: str) -> AlertView:
    """Close the alert, saying why (false positive, explained, dealt with …)."""
    text = reason.strip()
    if not MIN_REASON <= len(text) <= MAX_TEXT:
        raise Invalid(f"say why the alert is resolved, in {MIN_REASON} to {MAX_TEXT:,} "
                      f"characters: it is kept with the alert and in the audit log")
    return _move(ctx, principal, alert_id, AlertAction.RESOLVE, text)


def reopen(ctx: AccessContext, principal: Principal, alert_id: str,
           reason: str = "") -> AlertView:
    """A resolved alert is open again (its resolution stays in the audit log)."""
    text = reason.strip()
    if len(text) > MAX_TEXT:
        raise Invalid(f"a reason is at most {MAX_TEXT:,} characters")
    return _move(ctx, principal, alert_id, AlertAction.REOPEN, text)


def _values(action: AlertAction, who: str, now: dt.datetime, text: str) -> dict[str, Any]:
    if action is AlertAction.ACKNOWLEDGE:
        return {"acknowledged_by": who, "acknowledged_at": now}
    if action is AlertAction.RESOLVE:
        return {"resolved_by": who, "resolved_at": now, "resolution": text}
    # reopened: it needs acknowledging and resolving afresh
    return {"acknowledged_by": None, "acknowledged_at": None, "resolved_by": None,
            "resolved_at": None, "resolution": None}


def _move(ctx: AccessContext, principal: Principal, alert_id: str, action: AlertAction,
          text: str) -> AlertView:
    for _ in range(_ATTEMPTS):
        with ctx.transaction() as db:
            authorize(ctx, db, principal, Action.WATCH_RESPOND)
            row = _get(db, alert_id)
            current = AlertStatus(row.status)
            try:
                target = advance(current, action, alert_id)
            except Conflict as exc:
                raise Conflict([*exc.reasons, *_who_did(row, current)]) from None
            if action is AlertAction.REOPEN:
                _refuse_duplicate(db, row)
            values = {"status": target.value,
                      **_values(action, principal.person_id, ctx.clock(), text)}
            done = affected(db.execute(
                update(AlertRow).where(AlertRow.id == alert_id,
                                       AlertRow.status == current.value)
                .values(**values).execution_options(synchronize_session=False)))
            if done != 1:
                continue  # moved by someone else meanwhile: read it again and decide again
            for name, value in values.items():
                set_committed_value(row, name, value)
            view = _view(db, row)
            ctx.record(EVENTS[action], principal, alert_id, {
                "detector": row.detector, "from": current.value, "to": target.value,
                "person": row.person_id, "project": row.project_id, "reason": text or None})
        return view
    raise Conflict(f"alert {alert_id} kept changing while you acted on it; read it again "
                   f"and retry")


def _who_did(row: AlertRow, current: AlertStatus) -> list[str]:
    if current is AlertStatus.ACKNOWLEDGED and row.acknowledged_by:
        return [f"{row.acknowledged_by} acknowledged it at {row.acknowledged_at:%Y-%m-%d %H:%M} "
                f"UTC"]
    if current is AlertStatus.RESOLVED and row.resolved_by:
        return [f"{row.resolved_by} resolved it at {row.resolved_at:%Y-%m-%d %H:%M} UTC: "
                f"{row.resolution}"]
    return []


def _refuse_duplicate(db: Session, row: AlertRow) -> None:
    """Two unresolved alerts for one finding would split its repeats: refuse the reopen."""
    other = db.scalar(select(AlertRow.id).where(
        AlertRow.dedup_key == row.dedup_key, AlertRow.id != row.id,
        AlertRow.status != AlertStatus.RESOLVED.value).limit(1))
    if other is not None:
        raise Conflict(f"alert {other} is already open for the same finding since "
                       f"{row.id} was resolved; work on {other} instead")
