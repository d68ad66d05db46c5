"""Institutions: who they are, where they connect from, and revocation that cascades."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strongroom.access.authorize import authorize
from strongroom.access.closing import close_project, destroy_project_files
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import ApiToken, Institution, Person, Project, WebSession
from strongroom.access.networks import BadNetworkError, parse_networks
from strongroom.access.permissions import Action
from strongroom.access.states import InstitutionStatus, ProjectStatus, advance
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.db import affected
from strongroom.errors import Conflict, Invalid, NotFound


def _check_fields(name: str, country: str, jurisdiction: str) -> None:
    problems = []
    if not 1 <= len(name.strip()) <= 200:
        problems.append("name must be 1 to 200 characters")
    if len(country) != 2 or not country.isalpha() or not country.isupper():
        problems.append(f"country {country!r} must be an ISO 3166 two-letter code such as GB")
    if not 1 <= len(jurisdiction.strip()) <= 100:
        problems.append("jurisdiction must be 1 to 100 characters, e.g. 'UK GDPR'")
    if problems:
        raise Invalid(problems)


def _networks(ranges: Sequence[str]) -> list[str]:
    try:
        return parse_networks(ranges)
    except BadNetworkError as exc:
        raise Invalid(str(exc)) from None


def get(db: Session, institution_id: str) -> Institution:
    found = db.get(Institution, institution_id)
    if found is None:
        raise NotFound(f"there is no institution {institution_id}")
    return found


def create(ctx: AccessContext, principal: Principal | None, *, name: str, country: str,
           jurisdiction: str, networks: Sequence[str] = ()) -> Institution:
    """Register an institution (``principal`` None only when bootstrapping an empty platform)."""
    _check_fields(name, country, jurisdiction)
    ranges = _networks(networks)
    with ctx.transaction() as db:
        if principal is not None:
            authorize(ctx, db, principal, Action.INSTITUTION_WRITE)
        if db.scalar(select(Institution.id).where(Institution.name == name.strip())):
            raise Conflict(f"an institution named {name.strip()!r} already exists")
        institution = Institution(id=new_id("ins"), name=name.strip(), country=country,
                                  jurisdiction=jurisdiction.strip(), networks=ranges,
                                  status=InstitutionStatus.ACTIVE, created_at=ctx.clock())
        db.add(institution)
        ctx.record(EventType.INSTITUTION_CREATED, principal or "operator", institution.id,
                   {"name": institution.name, "country": country, "networks": ranges})
    return institution


def list_all(ctx: AccessContext, principal: Principal) -> list[Institution]:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.INSTITUTION_READ)
        return list(db.scalars(select(Institution).order_by(Institution.name)))


def read(ctx: AccessContext, principal: Principal, institution_id: str) -> Institution:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.INSTITUTION_READ)
        return get(db, institution_id)


def update_details(ctx: AccessContext, principal: Principal, institution_id: str, *,
                   name: str | None = None, jurisdiction: str | None = None,
                   networks: Sequence[str] | None = None) -> Institution:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.INSTITUTION_WRITE)
        institution = get(db, institution_id)
        _check_fields(name if name is not None else institution.name, institution.country,
                      jurisdiction if jurisdiction is not None else institution.jurisdiction)
        changed: dict[str, object] = {}
        if name is not None:
            institution.name = changed["name"] = name.strip()
        if jurisdiction is not None:
            institution.jurisdiction = changed["jurisdiction"] = jurisdiction.strip()
        if networks is not None:
            institution.networks = _networks(networks)
            changed["networks"] = institution.networks
        try:
            db.flush()
        except IntegrityError:
            raise Conflict(f"an institution named {name!r} already exists") from None
        ctx.record(EventType.INSTITUTION_UPDATED, principal, institution_id, changed)
    return institution


def revoke(ctx: AccessContext, principal: Principal, institution_id: str,
           reason: str) -> Institution:
    """Cut the institution off: its people's sessions and tokens end, its projects close."""
    if not reason.strip():
        raise Invalid("give a reason for the revocation; it is kept in the audit log")
    now = ctx.clock()
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.INSTITUTION_REVOKE)
        institution = get(db, institution_id)
        institution.status = advance(InstitutionStatus(institution.status), "revoke",
                                     f"institution {institution_id}")
        institution.revoked_at, institution.revoked_reason = now, reason.strip()
        people = select(Person.id).where(Person.institution_id == institution_id)
        sessions = affected(db.execute(update(WebSession).where(
            WebSession.person_id.in_(people), WebSession.ended_at.is_(None),
        ).values(ended_at=now, ended_reason="institution revoked")))
        tokens = affected(db.execute(update(ApiToken).where(
            ApiToken.person_id.in_(people), ApiToken.revoked_at.is_(None),
        ).values(revoked_at=now)))
        projects = list(db.scalars(select(Project).where(
            Project.lead_id.in_(people), Project.status == ProjectStatus.ACTIVE)))
        for project in projects:
            close_project(db, project, ProjectStatus.REVOKED, now)
            ctx.record(EventType.PROJECT_REVOKED, principal, project.id,
                       {"because": f"institution {institution_id} revoked"})
            ctx.record(EventType.PROJECT_KEY_DESTROYED, principal, project.id, {})
        ctx.record(EventType.INSTITUTION_REVOKED, principal, institution_id,
                   {"reason": reason.strip(), "sessions_ended": sessions,
                    "tokens_revoked": tokens, "projects_revoked": [p.id for p in projects]})
    # the keys went with the commit: the files left are unreadable, so removing them after
    # (a crash in between leaves ciphertext nobody can open) needs no event of its own
    destroy_project_files(ctx, [p.id for p in projects])
    return institution


def reinstate(ctx: AccessContext, principal: Principal, institution_id: str) -> Institution:
    """Let the institution's people sign in again; its closed projects stay closed."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.INSTITUTION_REVOKE)
        institution = get(db, institution_id)
        institution.status = advance(InstitutionStatus(institution.status), "reinstate",
                                     f"institution {institution_id}")
        institution.revoked_at = institution.revoked_reason = None
        ctx.record(EventType.INSTITUTION_REINSTATED, principal, institution_id, {})
    return institution
