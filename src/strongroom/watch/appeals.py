"""Appeals against automatic suspensions, and their review.

The suspended person, or the lead of their project, files one appeal per alert (kept on the
alert itself). A custodian admin reviews it: *uphold* keeps the suspension; *lift* asks for the
lift of every pause the alert set, through :func:`strongroom.access.pauses.lift`, which for a
suspension takes two different custodian admins. The first admin's "lift" asks; a second
admin's "lift" confirms, and the appeal is lifted once every pause is.

The appeal's states are data (``APPEAL_TRANSITIONS``, with a test that the table is complete).
Races are settled by the database: one decision row per alert (its primary key), moved only by
conditional updates; filing an appeal is an update ``WHERE appeal IS NULL``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from sqlalchemy import String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from strongroom.access import pauses
from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Pause, Project
from strongroom.access.permissions import Action
from strongroom.access.states import PauseState
from strongroom.audit import EventType
from strongroom.db import Base, UTCDateTime, affected
from strongroom.errors import Conflict, Invalid, NotFound, Refused
from strongroom.watch.models import AlertRow

MIN_APPEAL, MIN_REASON, MAX_TEXT = 20, 10, 5000
_ATTEMPTS = 3


class AppealStatus(StrEnum):
    NONE = "none"  # no appeal filed
    PENDING = "pending"  # filed, waiting for a custodian admin
    UPHELD = "upheld"  # reviewed: the suspension stays
    LIFTING = "lifting"  # one admin decided to lift; a second must confirm
    LIFTED = "lifted"  # every pause the alert set is lifted


class AppealMove(StrEnum):
    FILE = "file"
    UPHOLD = "uphold"
    LIFT = "lift"
    CONFIRM = "confirm"


APPEAL_TRANSITIONS: dict[AppealStatus, dict[AppealMove, AppealStatus]] = {
    AppealStatus.NONE: {AppealMove.FILE: AppealStatus.PENDING},
    AppealStatus.PENDING: {AppealMove.UPHOLD: AppealStatus.UPHELD,
                           AppealMove.LIFT: AppealStatus.LIFTING},
    AppealStatus.LIFTING: {AppealMove.CONFIRM: AppealStatus.LIFTED},
    AppealStatus.UPHELD: {},  # final: the suspension is lifted, if ever, through the pauses
    AppealStatus.LIFTED: {},
}


def advance_appeal(current: AppealStatus, move: AppealMove, alert_id: str) -> AppealStatus:
    table = APPEAL_TRANSITIONS[current]
    if move not in table:
        allowed = ", ".join(m.value for m in table) or "nothing (it is final)"
        raise Conflict(f"the appeal on alert {alert_id} is {current.value}: it cannot "
                       f"{move.value}; from {current.value} it can {allowed}")
    return table[move]


class AppealDecision(Base):
    """The review of one alert's appeal: one row per alert, moved by conditional updates."""

    __tablename__ = "watch_appeal_decisions"

    alert_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # upheld | lifting | lifted
    decided_by: Mapped[str] = mapped_column(String(32))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    confirmed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True)
class Suspension:
    pause_id: str
    level: str
    target_id: str | None
    state: PauseState


@dataclass(frozen=True)
class AppealView:
    alert_id: str
    status: AppealStatus
    text: str | None
    by: str | None
    at: dt.datetime | None
    decision: AppealDecision | None
    suspensions: list[Suspension]


def status_of(alert: AlertRow, decision: AppealDecision | None) -> AppealStatus:
    if alert.appeal is None:
        return AppealStatus.NONE
    return AppealStatus.PENDING if decision is None else AppealStatus(decision.status)


def suspensions_of(db: Session, alert: AlertRow) -> list[Suspension]:
    ids = list(alert.suspensions or [])
    if not ids:
        return []
    found = {p.id: p for p in db.scalars(select(Pause).where(Pause.id.in_(ids)))}
    return [Suspension(p.id, p.level, p.target_id, pauses.state_of(p))
            for pid in ids if (p := found.get(pid)) is not None]


def no_appeal(alert_id: str) -> AppealView:
    return AppealView(alert_id, AppealStatus.NONE, None, None, None, None, [])


def view_of(db: Session, alert: AlertRow) -> AppealView:
    decision = db.get(AppealDecision, alert.id)
    return AppealView(alert.id, status_of(alert, decision), alert.appeal, alert.appealed_by,
                      alert.appealed_at, decision, suspensions_of(db, alert))


def _get(db: Session, alert_id: str) -> AlertRow:
    found = db.get(AlertRow, alert_id)
    if found is None:
        raise NotFound(f"there is no alert {alert_id}")
    return found


def _refuse(ctx: AccessContext, principal: Principal, action: Action, alert: AlertRow,
            reasons: list[str]) -> NoReturn:
    ctx.record(EventType.ACCESS_REFUSED, principal, alert.id,
               {"action": action.value, "alert": alert.id, "reasons": reasons})
    raise Refused(reasons)


def _text(value: str, least: int, what: str) -> str:
    text = value.strip()
    if not least <= len(text) <= MAX_TEXT:
        raise Invalid(f"{what} is {least} to {MAX_TEXT:,} characters")
    return text


def appeal(ctx: AccessContext, principal: Principal, alert_id: str, text: str) -> AppealView:
    """File the appeal against the suspensions ``alert_id`` set (once per alert)."""
    body = _text(text, MIN_APPEAL, "an appeal (say why the suspension should be lifted)")
    now = ctx.clock()
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.WATCH_APPEAL)
        alert = _get(db, alert_id)
        role = _appellant(db, principal, alert)
        if role is None:
            _refuse(ctx, principal, Action.WATCH_APPEAL, alert, [
                f"only the suspended person or the lead of the project concerned may appeal "
                f"alert {alert_id}"])
        held = [s for s in suspensions_of(db, alert) if s.state is not PauseState.LIFTED]
        if not held:
            raise Conflict(f"alert {alert_id} holds no suspension (none was set, or every "
                           f"one is lifted already); there is nothing to appeal")
        decision = db.get(AppealDecision, alert.id)
        advance_appeal(status_of(alert, decision), AppealMove.FILE, alert_id)
        done = affected(db.execute(
            update(AlertRow).where(AlertRow.id == alert_id, AlertRow.appeal.is_(None))
            .values(appeal=body, appealed_by=principal.person_id, appealed_at=now)
            .execution_options(synchronize_session=False)))
        if done != 1:
            raise Conflict(f"alert {alert_id} has been appealed already; one appeal per "
                           f"alert is reviewed")
        for name, value in (("appeal", body), ("appealed_by", principal.person_id),
                            ("appealed_at", now)):
            set_committed_value(alert, name, value)
        view = view_of(db, alert)
        ctx.record(EventType.WATCH_APPEAL_FILED, principal, alert_id, {
            "as": role, "person": alert.person_id, "project": alert.project_id,
            "suspensions": [s.pause_id for s in held], "text": body})
    return view


def _appellant(db: Session, principal: Principal, alert: AlertRow) -> str | None:
    """"person" (the one suspended) or "lead" (of the alert's project), else None."""
    if alert.person_id is not None and alert.person_id == principal.person_id:
        return "person"
    if alert.project_id is not None:
        project = db.get(Project, alert.project_id)
        if project is not None and project.lead_id == principal.person_id:
            return "lead"
    return None


def review(ctx: AccessContext, principal: Principal, alert_id: str, lift: bool,
           reason: str) -> AppealView:
    """A custodian admin's decision: uphold, or lift (asks; a second admin's lift confirms)."""
    why = _text(reason, MIN_REASON, "a review's reason (the appellant reads it)")
    if not lift:
        return _uphold(ctx, principal, alert_id, why)
    for _ in range(_ATTEMPTS):
        try:
            return _lift(ctx, principal, alert_id, why)
        except _RacedError:
            continue  # another admin decided at the same moment: decide again on the new state
    raise Conflict(f"the appeal on alert {alert_id} kept changing while you decided; read it "
                   f"again and retry")


class _RacedError(Exception):
    """Another decision was written between this one's read and its write."""


def _pending(ctx: AccessContext, db: Session, principal: Principal,
             alert_id: str) -> tuple[AlertRow, AppealDecision | None, AppealStatus]:
    authorize(ctx, db, principal, Action.WATCH_APPEAL_REVIEW)
    alert = _get(db, alert_id)
    if alert.appealed_by == principal.person_id:
        _refuse(ctx, principal, Action.WATCH_APPEAL_REVIEW, alert, [
            "you filed this appeal; another custodian admin must review it"])
    decision = db.get(AppealDecision, alert_id)
    return alert, decision, status_of(alert, decision)


def _uphold(ctx: AccessContext, principal: Principal, alert_id: str, why: str) -> AppealView:
    with ctx.transaction() as db:
        alert, _, current = _pending(ctx, db, principal, alert_id)
        advance_appeal(current, AppealMove.UPHOLD, alert_id)
        db.add(AppealDecision(alert_id=alert_id, status=AppealStatus.UPHELD.value,
                              decided_by=principal.person_id, decided_at=ctx.clock(),
                              reason=why))
        try:
            db.flush()
        except IntegrityError:  # decided by someone else at the same moment
            raise Conflict(f"the appeal on alert {alert_id} was decided by another custodian "
                           f"admin just now; read it again") from None
        view = view_of(db, alert)
        ctx.record(EventType.WATCH_APPEAL_UPHELD, principal, alert_id, {
            "person": alert.person_id, "project": alert.project_id, "reason": why,
            "suspensions": [s.pause_id for s in view.suspensions]})
    return view


def _lift(ctx: AccessContext, principal: Principal, alert_id: str, why: str) -> AppealView:
    with ctx.transaction() as db:
        alert, decision, current = _pending(ctx, db, principal, alert_id)
        move = AppealMove.CONFIRM if current is AppealStatus.LIFTING else AppealMove.LIFT
        advance_appeal(current, move, alert_id)
        if decision is not None and decision.decided_by == principal.person_id:
            raise Conflict("you asked for this lift; a different custodian admin must "
                           "confirm it")
        held = [s.pause_id for s in suspensions_of(db, alert)
                if s.state is not PauseState.LIFTED]
    for pause_id in held:  # each lift is its own transaction and audit event (access/pauses)
        pauses.lift(ctx, principal, pause_id)
    now = ctx.clock()
    with ctx.transaction() as db:
        alert = _get(db, alert_id)
        everything_lifted = all(s.state is PauseState.LIFTED for s in suspensions_of(db, alert))
        # the first decision asks (LIFT); it is confirmed once every pause is lifted, which
        # may be at once when the pauses needed only one admin or were lifted elsewhere
        target = advance_appeal(current, move, alert_id)
        if target is AppealStatus.LIFTING and everything_lifted:
            target = advance_appeal(target, AppealMove.CONFIRM, alert_id)
        confirmed = target is AppealStatus.LIFTED
        if decision is None:
            db.add(AppealDecision(alert_id=alert_id, status=target.value,
                                  decided_by=principal.person_id, decided_at=now, reason=why,
                                  confirmed_by=principal.person_id if confirmed else None,
                                  confirmed_at=now if confirmed else None))
            try:
                db.flush()
            except IntegrityError:
                raise _RacedError from None
        elif everything_lifted:
            done = affected(db.execute(
                update(AppealDecision).where(AppealDecision.alert_id == alert_id,
                                             AppealDecision.status == decision.status)
                .values(status=target.value, confirmed_by=principal.person_id,
                        confirmed_at=now).execution_options(synchronize_session=False)))
            if done != 1:
                raise _RacedError
        db.expire_all()
        view = view_of(db, alert)
        ctx.record(EventType.WATCH_APPEAL_LIFTED, principal, alert_id, {
            "person": alert.person_id, "project": alert.project_id, "reason": why,
            "status": view.status.value, "confirmed": view.status is AppealStatus.LIFTED,
            "suspensions": {s.pause_id: s.state.value for s in view.suspensions}})
    return view
