"""When may: the conditions of time, state and place under which a permitted action may run.

Each check returns sentences a researcher understands; an empty list means "go ahead". The
control state (pauses, revocations) is read afresh on every request, so a revocation or pause
holds from the very next request; if it cannot be read, nothing runs (fail closed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from strongroom.access.context import Principal, Via
from strongroom.access.models import Institution, Pause, Person, Project, Training
from strongroom.access.networks import address_in
from strongroom.access.permissions import Action, Kind, Rule
from strongroom.access.states import (
    InstitutionStatus,
    PauseLevel,
    PersonStatus,
    ProjectStatus,
    Vetting,
)
from strongroom.errors import Unavailable


@dataclass(frozen=True)
class ControlState:
    """The pauses in force, read once per request."""

    pauses: tuple[Pause, ...]

    def paused(self, level: PauseLevel, target: str | None = None) -> Pause | None:
        for pause in self.pauses:
            if pause.level == level.value and pause.target_id == target:
                return pause
        return None


def read_control_state(db: Session) -> ControlState:
    try:
        rows = db.scalars(select(Pause).where(Pause.lifted_at.is_(None))).all()
    except SQLAlchemyError as exc:
        raise Unavailable("the platform's control state (pauses and revocations) cannot be "
                          "read, so nothing runs until it can; tell the custodian's team"
                          ) from exc
    return ControlState(tuple(rows))


def _pause_words(pause: Pause, what: str) -> str:
    return f"{what} is paused since {pause.set_at:%Y-%m-%d %H:%M} UTC ({pause.reason})"


def account_reasons(db: Session, state: ControlState, principal: Principal,
                    rule: Rule) -> list[str]:
    """The person and their institution: these hold for every kind of action."""
    reasons: list[str] = []
    person = db.get(Person, principal.person_id)
    institution = db.get(Institution, principal.institution_id)
    if person is None or institution is None:
        return ["your account no longer exists"]
    if institution.status == InstitutionStatus.REVOKED:
        reasons.append(f"your institution, {institution.name}, has had its access revoked; "
                       f"all its people, sessions, tokens and projects are cut off")
    if person.status == PersonStatus.DEACTIVATED:
        reasons.append("your account has been deactivated")
    pause = state.paused(PauseLevel.PERSON, person.id)
    if pause is not None and rule.kind is not Kind.SELF:
        reasons.append(_pause_words(pause, "your access"))
    return reasons


def token_reasons(principal: Principal, action: Action, rule: Rule,
                  project_id: str | None) -> list[str]:
    if principal.via is not Via.TOKEN:
        return []
    reasons = []
    if not rule.by_token:
        reasons.append("this cannot be done with an API token; sign in instead")
    elif action not in principal.token_actions:
        allowed = ", ".join(sorted(a.value for a in principal.token_actions))
        reasons.append(f"this API token allows only: {allowed}; issue a token that "
                       f"includes {action.value}")
    if project_id is not None and project_id != principal.token_project:
        reasons.append(f"this API token is for project {principal.token_project}, "
                       f"not {project_id}")
    return reasons


def data_reasons(db: Session, state: ControlState, principal: Principal,
                 project: Project | None, today: dt.date) -> list[str]:
    """Conditions on touching participant data: the project, the person, the place."""
    institution = db.get(Institution, principal.institution_id)
    reasons = _paused_above(state, institution)
    if institution is not None:
        if not institution.networks:
            reasons.append(f"{institution.name} has no registered network ranges, so data "
                           f"cannot be reached from anywhere; ask the custodian to register "
                           f"them")
        elif not address_in(principal.source, institution.networks):
            reasons.append(f"you are connecting from outside {institution.name}'s registered "
                           f"networks; connect from your institution's network")
    person = db.get(Person, principal.person_id)
    if person is not None:
        if person.vetting != Vetting.APPROVED:
            reasons.append(f"your vetting is {person.vetting}, not approved; the access "
                           f"team must approve it before you can reach data")
        reasons += training_reasons(db, person.id, today)
    if project is not None:
        reasons += project_reasons(state, project, today)
    return reasons


def _paused_above(state: ControlState, institution: Institution | None) -> list[str]:
    """A pause of the whole platform, or of the person's institution."""
    reasons = []
    pause = state.paused(PauseLevel.PLATFORM)
    if pause is not None:
        reasons.append(_pause_words(pause, "the whole platform"))
    if institution is not None:
        pause = state.paused(PauseLevel.INSTITUTION, institution.id)
        if pause is not None:
            reasons.append(_pause_words(pause, f"access for {institution.name}"))
    return reasons


def recipient_reasons(db: Session, state: ControlState, project: Project,
                      recipient: Person, today: dt.date) -> list[str]:
    """Whether data may go to ``recipient`` on ``project`` whoever asks for it (a custodian
    making an extract for a project's lead included): the platform, the recipient's
    institution, the recipient and the project, each not paused, revoked or ended."""
    institution = db.get(Institution, recipient.institution_id)
    reasons = _paused_above(state, institution)
    if institution is None or institution.status == InstitutionStatus.REVOKED:
        reasons.append(f"the recipient's institution {recipient.institution_id} has had its "
                       f"access revoked")
    if recipient.status == PersonStatus.DEACTIVATED:
        reasons.append(f"the recipient {recipient.id}'s account has been deactivated")
    pause = state.paused(PauseLevel.PERSON, recipient.id)
    if pause is not None:
        reasons.append(_pause_words(pause, f"the recipient {recipient.id}'s access"))
    return reasons + project_reasons(state, project, today)


def training_reasons(db: Session, person_id: str, today: dt.date) -> list[str]:
    latest = db.scalar(select(Training.expires_on).where(Training.person_id == person_id)
                       .order_by(Training.expires_on.desc()).limit(1))
    if latest is None:
        return ["you have no data-security training on record; complete it and ask the "
                "access team to record it"]
    if latest < today:
        return [f"your data-security training expired on {latest:%d %B %Y}; renew it and ask "
                f"the access team to record it"]
    return []


def project_reasons(state: ControlState, project: Project, today: dt.date) -> list[str]:
    reasons = []
    if project.status != ProjectStatus.ACTIVE:
        reasons.append(f"project {project.id} has been {project.status}; its data and key "
                       f"are gone")
    elif today < project.starts_on:
        reasons.append(f"project {project.id} starts on {project.starts_on:%d %B %Y}")
    elif today > project.expires_on:
        reasons.append(f"project {project.id} expired on {project.expires_on:%d %B %Y}; "
                       f"apply to the access committee for an extension")
    pause = state.paused(PauseLevel.PROJECT, project.id)
    if pause is not None:
        reasons.append(_pause_words(pause, f"project {project.id}"))
    return reasons
