"""Projects: approved applications with members, field grants, dates and two permissions.

*Analyse* comes with an active project; *export* is rarer: a member asks, and only an
access-committee member can approve it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from strongroom.access import pseudonyms
from strongroom.access.authorize import authorize, projects_of
from strongroom.access.closing import close_project, destroy_project_files
from strongroom.access.context import AccessContext, Principal
from strongroom.access.keys import new_project_key
from strongroom.access.models import FieldGrant, GenotypeGrant, Person, Project, ProjectMember
from strongroom.access.people import roles_of
from strongroom.access.permissions import READERS, Action
from strongroom.access.roles import Role
from strongroom.access.states import ExportStatus, ProjectStatus, advance
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.cohort.dictionary import Field
from strongroom.db import affected
from strongroom.errors import Conflict, Invalid, NotFound
from strongroom.privacy import mixed_access
from strongroom.privacy.mixed_access import MixedAccess

MAX_YEARS = 5  # UK Biobank approves access for three years, extendable


@dataclass(frozen=True)
class ProjectView:
    project: Project
    members: list[str]
    fields: list[int]
    # members who read one of its fields exactly in one project and under DP in another
    mixed: list[MixedAccess] = field(default_factory=list)
    genotypes: bool = False  # holds a genotype grant


def get(db: Session, project_id: str) -> Project:
    found = db.get(Project, project_id)
    if found is None:
        raise NotFound(f"there is no project {project_id}")
    return found


def _members(db: Session, project_id: str) -> list[str]:
    return list(db.scalars(select(ProjectMember.person_id)
                           .where(ProjectMember.project_id == project_id)
                           .order_by(ProjectMember.person_id)))


def granted_fields(db: Session, project_id: str) -> list[int]:
    return list(db.scalars(select(FieldGrant.field_id)
                           .where(FieldGrant.project_id == project_id)
                           .order_by(FieldGrant.field_id)))


def has_genotypes(db: Session, project_id: str) -> bool:
    """Whether the project holds a genotype grant (GWAS inside the enclave)."""
    return db.get(GenotypeGrant, project_id) is not None


def view(db: Session, project: Project, reader: Principal | None = None) -> ProjectView:
    """The project; its mixed access every member's for the committee and overseers (or a
    change, ``reader`` None), the reader's own for anyone else: every member's named other
    projects, other institutions' included, and moved with their modes and grants."""
    members = _members(db, project.id)
    whose = members if reader is None or reader.roles & READERS else [
        m for m in members if m == reader.person_id]
    return ProjectView(project, members, granted_fields(db, project.id),
                       mixed_access.mixed_access(db, project.id, whose),
                       has_genotypes(db, project.id))


def checked_view(ctx: AccessContext, db: Session, project: Project) -> ProjectView:
    """The project as a change left it (flushed, not committed): the mixed access it makes is
    shown, or refused when the platform's policy says so (the transaction then rolls back)."""
    db.flush()
    result = view(db, project)
    if ctx.settings.refuse_exact_beside_dp:
        mixed_access.refuse(result.mixed, project.id)
    return result


def _mixed(result: ProjectView) -> dict[str, object]:
    """The audit event's record of what the committee was shown."""
    return {"mixed_access": [m.as_dict() for m in result.mixed]} if result.mixed else {}


def check_fields(ctx: AccessContext, fields: Iterable[int]) -> list[int]:
    wanted = sorted(set(fields))
    unknown = [f for f in wanted if f not in ctx.dictionary.fields]
    if unknown:
        raise Invalid(f"field(s) {', '.join(map(str, unknown))} are not in the data "
                      f"dictionary; see docs/reference/data-dictionary.md")
    return wanted


def _researcher(db: Session, person_id: str, what: str) -> Person:
    person = db.get(Person, person_id)
    if person is None:
        raise NotFound(f"there is no person {person_id} to be the project's {what}")
    if Role.RESEARCHER not in roles_of(db, person_id):
        raise Invalid(f"{person_id} cannot be a project {what}: they do not have the "
                      f"researcher role")
    return person


def create(ctx: AccessContext, principal: Principal | None, *, title: str, purpose: str,
           lead_id: str, starts_on: dt.date, expires_on: dt.date,
           fields: Iterable[int] = (), members: Iterable[str] = ()) -> ProjectView:
    problems = []
    if not 1 <= len(title.strip()) <= 300:
        problems.append("title must be 1 to 300 characters")
    if len(purpose.strip()) < 20:
        problems.append("describe the purpose in at least 20 characters, as approved")
    if expires_on <= starts_on:
        problems.append(f"the project must expire ({expires_on}) after it starts "
                        f"({starts_on})")
    elif (expires_on - starts_on).days > 366 * MAX_YEARS:
        problems.append(f"a project lasts at most {MAX_YEARS} years; renew it instead")
    if problems:
        raise Invalid(problems)
    granted = check_fields(ctx, fields)
    project_id = new_id("prj")
    key, sealed = new_project_key(ctx.key, project_id)
    with ctx.transaction() as db:
        if principal is not None:
            authorize(ctx, db, principal, Action.PROJECT_CREATE)
        _researcher(db, lead_id, "lead")
        member_ids = sorted(set(members) - {lead_id})
        for member in member_ids:
            _researcher(db, member, "member")
        project = Project(id=project_id, title=title.strip(), purpose=purpose.strip(),
                          lead_id=lead_id, starts_on=starts_on, expires_on=expires_on,
                          status=ProjectStatus.ACTIVE, export=ExportStatus.NONE,
                          key_sealed=sealed, key_id=key.key_id,
                          created_by=principal.person_id if principal else "operator",
                          created_at=ctx.clock())
        db.add(project)
        db.flush()
        db.add_all(ProjectMember(project_id=project_id, person_id=m)
                   for m in [lead_id, *member_ids])
        db.add_all(FieldGrant(project_id=project_id, field_id=f) for f in granted)
        made = checked_view(ctx, db, project)
        actor = principal or "operator"
        ctx.record(EventType.PROJECT_CREATED, actor, project_id,
                   {"title": project.title, "lead": lead_id, "members": member_ids,
                    "fields": granted, "starts_on": starts_on.isoformat(),
                    "expires_on": expires_on.isoformat(), "key_id": key.key_id,
                    **_mixed(made)})
    if ctx.cohort_eids is not None:
        issued = pseudonyms.issue(ctx, project, ctx.cohort_eids())
        ctx.record(EventType.PROJECT_PSEUDONYMS_ISSUED, actor, project_id, {"count": issued})
    with ctx.transaction() as db:
        return view(db, get(db, project_id))


def _visible(db: Session, principal: Principal) -> list[Project]:
    projects = list(db.scalars(select(Project).order_by(Project.created_at)))
    if not principal.roles & {Role.CUSTODIAN_ADMIN, Role.ACCESS_COMMITTEE,
                              Role.SECURITY_ANALYST, Role.AUDITOR,
                              Role.OUTPUT_CHECKER}:
        mine = projects_of(db, principal.person_id)  # led or a member of
        projects = [p for p in projects if p.id in mine]
    if principal.token_project is not None:
        projects = [p for p in projects if p.id == principal.token_project]
    return projects


def list_visible(ctx: AccessContext, principal: Principal) -> list[ProjectView]:
    """Every project for overseeing roles; a researcher's own projects for researchers."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_READ)
        return [view(db, p, principal) for p in _visible(db, principal)]


def titles(ctx: AccessContext, principal: Principal) -> dict[str, str]:
    """The titles of the projects ``principal`` may read, by ID (``list_visible``'s projects,
    without the rest of each view): what a page names beside a project's ID."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_READ)
        return {p.id: p.title for p in _visible(db, principal)}


def people_on(ctx: AccessContext, principal: Principal) -> dict[str, str]:
    """The names of the people on the projects ``principal`` may read (each lead and
    member), by ID: the names a page may show beside IDs to a reader without
    ``person.read`` (a researcher: their own projects' people, nobody else; an output
    checker: the people of the projects whose outputs they check)."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_READ)
        ids = set()
        for project in _visible(db, principal):
            ids |= {project.lead_id, *_members(db, project.id)}
        return {pid: name for pid, name in
                db.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))}


def read(ctx: AccessContext, principal: Principal, project_id: str) -> ProjectView:
    with ctx.transaction() as db:
        project = authorize(ctx, db, principal, Action.PROJECT_READ, project_id)
        assert project is not None
        return view(db, project, principal)


def _open_project(db: Session, project_id: str) -> Project:
    project = get(db, project_id)
    if project.status != ProjectStatus.ACTIVE:
        raise Conflict(f"project {project_id} is {project.status}; it cannot be changed")
    return project


def add_member(ctx: AccessContext, principal: Principal, project_id: str,
               person_id: str) -> ProjectView:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_WRITE)
        project = _open_project(db, project_id)
        _researcher(db, person_id, "member")
        if person_id in _members(db, project_id):
            raise Conflict(f"{person_id} is already a member of {project_id}")
        db.add(ProjectMember(project_id=project_id, person_id=person_id))
        db.flush()
        result = checked_view(ctx, db, project)
        ctx.record(EventType.PROJECT_MEMBER_ADDED, principal, project_id,
                   {"person": person_id, **_mixed(result)})
    return result


def remove_member(ctx: AccessContext, principal: Principal, project_id: str,
                  person_id: str) -> ProjectView:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_WRITE)
        project = _open_project(db, project_id)
        if person_id == project.lead_id:
            raise Conflict(f"{person_id} leads {project_id}; a project keeps its lead")
        gone = affected(db.execute(delete(ProjectMember).where(
            ProjectMember.project_id == project_id,
            ProjectMember.person_id == person_id)))
        if not gone:
            raise Conflict(f"{person_id} is not a member of {project_id}")
        result = view(db, project)
        ctx.record(EventType.PROJECT_MEMBER_REMOVED, principal, project_id, {"person": person_id})
    return result


def set_fields(ctx: AccessContext, principal: Principal, project_id: str,
               fields: Iterable[int]) -> ProjectView:
    """Replace the project's field grants (the audit event lists what was added and removed)."""
    wanted = check_fields(ctx, fields)
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_WRITE)
        project = _open_project(db, project_id)
        before = set(granted_fields(db, project_id))
        db.execute(delete(FieldGrant).where(FieldGrant.project_id == project_id))
        db.add_all(FieldGrant(project_id=project_id, field_id=f) for f in wanted)
        db.flush()
        result = checked_view(ctx, db, project)
        added, removed = sorted(set(wanted) - before), sorted(before - set(wanted))
        if added:
            ctx.record(EventType.PROJECT_FIELDS_GRANTED, principal, project_id,
                       {"fields": added, **_mixed(result)})
        if removed:
            ctx.record(EventType.PROJECT_FIELDS_REVOKED, principal, project_id,
                       {"fields": removed})
    return result


def set_genotypes(ctx: AccessContext, principal: Principal, project_id: str,
                  granted: bool) -> ProjectView:
    """Grant or withdraw the project's genotype grant (audited; a no-op is refused so the log
    never says a grant changed when it did not)."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_WRITE)
        project = _open_project(db, project_id)
        held = db.get(GenotypeGrant, project_id)
        if granted == (held is not None):
            raise Conflict(f"{project_id} {'already holds' if granted else 'holds no'} "
                           "genotype grant")
        if granted:
            db.add(GenotypeGrant(project_id=project_id, granted_by=principal.person_id,
                                 granted_at=ctx.clock()))
        else:
            db.delete(held)
        result = checked_view(ctx, db, project)
        ctx.record(EventType.PROJECT_GENOTYPES_GRANTED if granted
                   else EventType.PROJECT_GENOTYPES_REVOKED, principal, project_id, {})
    return result


def request_export(ctx: AccessContext, principal: Principal, project_id: str,
                   justification: str) -> ProjectView:
    if len(justification.strip()) < 20:
        raise Invalid("explain in at least 20 characters why record-level data must leave")
    with ctx.transaction() as db:
        project = authorize(ctx, db, principal, Action.EXPORT_REQUEST, project_id)
        assert project is not None
        project.export = advance(ExportStatus(project.export), "request",
                                 f"{project_id}'s export permission")
        project.export_requested_by = principal.person_id
        result = view(db, project, principal)
        ctx.record(EventType.PROJECT_EXPORT_REQUESTED, principal, project_id,
                   {"justification": justification.strip()})
    return result


def decide_export(ctx: AccessContext, principal: Principal, project_id: str,
                  approve: bool) -> ProjectView:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.EXPORT_APPROVE)
        project = _open_project(db, project_id)
        if approve and project.export_requested_by == principal.person_id:
            raise Conflict("the person who asked for export cannot approve it")
        project.export = advance(ExportStatus(project.export),
                                 "approve" if approve else "decline",
                                 f"{project_id}'s export permission")
        project.export_approved_by = principal.person_id if approve else None
        result = view(db, project)
        ctx.record(EventType.PROJECT_EXPORT_APPROVED if approve else EventType.PROJECT_UPDATED,
                   principal, project_id, {"export": project.export})
    return result


def close(ctx: AccessContext, principal: Principal, project_id: str, *, revoke: bool,
          reason: str) -> ProjectView:
    """End (normally) or revoke (for cause) a project: its key is destroyed either way."""
    if not reason.strip():
        raise Invalid("give a reason; it is kept in the audit log")
    status = ProjectStatus.REVOKED if revoke else ProjectStatus.ENDED
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PROJECT_CLOSE)
        project = get(db, project_id)
        close_project(db, project, status, ctx.clock())
        result = view(db, project)
        ctx.record(EventType.PROJECT_REVOKED if revoke else EventType.PROJECT_ENDED,
                   principal, project_id, {"reason": reason.strip()})
        ctx.record(EventType.PROJECT_KEY_DESTROYED, principal, project_id, {})
    destroy_project_files(ctx, [project_id])  # unreadable once the key went with the commit
    return result


def schema(ctx: AccessContext, principal: Principal, project_id: str) -> list[Field]:
    """The fields a project may analyse: the first thing a researcher reads, a data access."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.DATA_ANALYSE, project_id)
        granted = granted_fields(db, project_id)
        ctx.record(EventType.DATA_ACCESSED, principal, project_id, {"what": "schema"})
    return [ctx.dictionary.fields[f] for f in granted]


MAX_CODES = 1000  # codes returned by one coding lookup: search or page for the rest


@dataclass(frozen=True)
class CodingView:
    """A coding's codes and meanings (public metadata), as far as one lookup returns them."""

    coding_id: int
    total: int  # codes matching the search
    codes: list[tuple[str, str]]  # (code, meaning), in the coding's order


def coding(ctx: AccessContext, principal: Principal, project_id: str, coding_id: int, *,
           search: str | None = None, offset: int = 0, limit: int = 100) -> CodingView:
    """The codes of a coding one of the project's granted fields uses, optionally only those
    whose code or meaning holds ``search`` (any case): how a researcher reads what a coded
    column's values mean before defining with it."""
    if not 1 <= limit <= MAX_CODES or offset < 0:
        raise Invalid(f"limit must be 1 to {MAX_CODES} and offset 0 or more")
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.DATA_ANALYSE, project_id)
        granted = granted_fields(db, project_id)
    used = {ctx.dictionary.fields[f].coding_id for f in granted}
    if coding_id not in used:
        raise NotFound(f"no field this project may analyse uses coding {coding_id}; the "
                       "schema (GET /projects/{id}/schema) names each field's coding")
    codes = list(ctx.dictionary.codings[coding_id].codes.items())
    if search:
        wanted = search.casefold()
        codes = [(c, m) for c, m in codes if wanted in c.casefold() or wanted in m.casefold()]
    return CodingView(coding_id, len(codes), codes[offset:offset + limit])
