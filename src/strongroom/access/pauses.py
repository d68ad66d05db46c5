"""The pause switch, at platform, institution, project and person level.

A pause stops data work at once (read on every request). Anyone allowed may pause; lifting a
platform or institution pause takes two different custodian admins: one asks, another confirms.
Watch suspends automatically with the same mechanism (a pause of kind "suspension"); lifting a
suspension, at any level, also takes two custodian admins.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Institution, Pause, Person, Project
from strongroom.access.permissions import Action
from strongroom.access.states import TWO_PERSON_LIFT, PauseLevel, PauseState, advance
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.errors import Conflict, Invalid, NotFound

MANUAL = "manual"
SUSPENSION = "suspension"
WATCH = "watch"  # the actor recorded for automatic suspensions

TARGETS: dict[PauseLevel, type[Institution] | type[Project] | type[Person] | None] = {
    PauseLevel.PLATFORM: None,
    PauseLevel.INSTITUTION: Institution,
    PauseLevel.PROJECT: Project,
    PauseLevel.PERSON: Person,
}


@dataclass(frozen=True)
class PauseView:
    pause: Pause
    state: PauseState


def state_of(pause: Pause) -> PauseState:
    if pause.lifted_at is not None:
        return PauseState.LIFTED
    if pause.lift_requested_by is not None:
        return PauseState.LIFT_REQUESTED
    return PauseState.ACTIVE


def _level(level: str) -> PauseLevel:
    try:
        return PauseLevel(level)
    except ValueError:
        raise Invalid(f"{level!r} is not a pause level; use one of: "
                      f"{', '.join(v.value for v in PauseLevel)}") from None


def set_pause(ctx: AccessContext, principal: Principal, level: str, target_id: str | None,
              reason: str) -> PauseView:
    parsed = _level(level)
    if not reason.strip():
        raise Invalid("give a reason for the pause; it is shown to those it stops")
    table = TARGETS[parsed]
    if (table is None) != (target_id is None):
        raise Invalid("a platform pause has no target; the other levels need the id of the "
                      "institution, project or person to pause")
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PAUSE_SET)
        if table is not None and db.get(table, target_id) is None:
            raise NotFound(f"there is no {parsed.value} {target_id}")
        if db.scalar(select(Pause.id).where(Pause.level == parsed.value,
                                            Pause.target_id == target_id,
                                            Pause.lifted_at.is_(None))):
            raise Conflict(f"that {parsed.value} is already paused")
        pause = Pause(id=new_id("pau"), level=parsed.value, target_id=target_id,
                      reason=reason.strip(), set_by=principal.person_id, set_at=ctx.clock(),
                      kind=MANUAL)
        db.add(pause)
        ctx.record(EventType.PAUSE_SET, principal, pause.id,
                   {"level": parsed.value, "target": target_id, "reason": pause.reason})
    return PauseView(pause, PauseState.ACTIVE)


def needs_two(pause: Pause) -> bool:
    """Whether lifting ``pause`` takes two different custodian admins."""
    return PauseLevel(pause.level) in TWO_PERSON_LIFT or pause.kind == SUSPENSION


def suspend(ctx: AccessContext, db: Session, level: PauseLevel, target_id: str,
            reason: str, alert_id: str) -> Pause | None:
    """Watch's automatic suspension, inside the caller's transaction (None: already paused).

    The caller records the audit event once the transaction has committed.
    """
    if db.scalar(select(Pause.id).where(Pause.level == level.value,
                                        Pause.target_id == target_id,
                                        Pause.lifted_at.is_(None))):
        return None
    pause = Pause(id=new_id("pau"), level=level.value, target_id=target_id, reason=reason,
                  set_by=WATCH, set_at=ctx.clock(), kind=SUSPENSION, alert_id=alert_id)
    db.add(pause)
    return pause


def list_pauses(ctx: AccessContext, principal: Principal,
                include_lifted: bool = False) -> list[PauseView]:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PAUSE_READ)
        query = select(Pause).order_by(Pause.set_at)
        if not include_lifted:
            query = query.where(Pause.lifted_at.is_(None))
        return [PauseView(p, state_of(p)) for p in db.scalars(query)]


def _get(db: Session, pause_id: str) -> Pause:
    pause = db.get(Pause, pause_id)
    if pause is None:
        raise NotFound(f"there is no pause {pause_id}")
    return pause


def lift(ctx: AccessContext, principal: Principal, pause_id: str) -> PauseView:
    """Lift a pause; for platform and institution pauses the first call only asks."""
    now = ctx.clock()
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PAUSE_LIFT)
        pause = _get(db, pause_id)
        current = state_of(pause)
        two_person = needs_two(pause)
        if two_person and current is PauseState.ACTIVE:
            advance(current, "request-lift", f"pause {pause_id}")
            pause.lift_requested_by, pause.lift_requested_at = principal.person_id, now
            event = EventType.PAUSE_LIFT_REQUESTED
        else:
            if two_person and pause.lift_requested_by == principal.person_id:
                raise Conflict("you asked for this lift; a different custodian admin must "
                               "confirm it")
            advance(current, "lift", f"pause {pause_id}")
            pause.lifted_by, pause.lifted_at = principal.person_id, now
            event = EventType.PAUSE_LIFTED
        result = PauseView(pause, state_of(pause))
        ctx.record(event, principal, pause_id, {"level": pause.level, "target": pause.target_id,
                                                "kind": pause.kind})
    return result
