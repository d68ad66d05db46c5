"""Deny by default: an action runs only when who-may and when-may both say yes.

Every refusal lists all its reasons (not only the first), is written to the audit log, and is
raised as :class:`~strongroom.errors.Refused` for the server and CLI to show.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from strongroom.access import policies
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Institution, Person, Project, ProjectMember
from strongroom.access.permissions import RULES, Action, Grant, Kind, who_may
from strongroom.access.roles import Role
from strongroom.access.states import ExportStatus, ProjectStatus
from strongroom.audit import EventType
from strongroom.errors import NotFound, Refused, Unavailable


def is_member(db: Session, project: Project, person_id: str) -> bool:
    if project.lead_id == person_id:
        return True
    return db.scalar(select(ProjectMember.person_id).where(
        ProjectMember.project_id == project.id, ProjectMember.person_id == person_id,
    )) is not None


def projects_of(db: Session, person_id: str) -> set[str]:
    """The projects a person leads or is a member of."""
    return set(db.scalars(select(Project.id).where(or_(
        Project.lead_id == person_id,
        Project.id.in_(select(ProjectMember.project_id)
                       .where(ProjectMember.person_id == person_id))))))


def _needs_membership(action: Action, roles: frozenset[Role]) -> bool:
    """Researchers reach only their own projects; overseeing roles reach every project."""
    rule = RULES[action]
    return rule.member and (roles & rule.roles) <= {Role.RESEARCHER}


def grant_reasons(project: Project, grant: Grant | None) -> list[str]:
    if grant is Grant.EXPORT and project.export != ExportStatus.APPROVED:
        return [f"project {project.id} does not hold the export permission (it is "
                f"{project.export}); the access committee must approve it"]
    if grant is Grant.ANALYSE and project.status != ProjectStatus.ACTIVE:
        return [f"project {project.id} no longer holds the analyse permission"]
    return []


def reasons_against(ctx: AccessContext, db: Session, principal: Principal, action: Action,
                    project_id: str | None = None) -> tuple[list[str], Project | None]:
    """Every reason ``principal`` may not take ``action`` now (empty: allowed)."""
    rule = RULES.get(action)
    if not ctx.audit.writing:  # nothing may happen that cannot be recorded
        raise Unavailable("the audit log cannot record right now, so nothing runs until it "
                          "can; tell the custodian's team")
    state = policies.read_control_state(db)  # fails closed before anything else
    reasons = who_may(action, principal.roles)
    if rule is None:
        return reasons, None
    project = None
    if project_id is not None:
        project = db.get(Project, project_id)
        if project is None:
            raise NotFound(f"there is no project {project_id}")
        if not reasons and _needs_membership(action, principal.roles) and not is_member(
                db, project, principal.person_id):
            reasons.append(f"you are not a member of project {project_id}")
        reasons += grant_reasons(project, rule.grant)
    # the person and their institution, read once for the checks below (each reads them by
    # key: the session's identity map holds an object only while something refers to it, so
    # without these references each check read them again)
    held = (db.get(Person, principal.person_id), db.get(Institution, principal.institution_id))
    reasons += policies.account_reasons(db, state, principal, rule)
    reasons += policies.token_reasons(principal, action, rule, project_id)
    if rule.kind is Kind.DATA:
        reasons += policies.data_reasons(db, state, principal, project, ctx.clock().date())
    del held
    return reasons, project


def authorize(ctx: AccessContext, db: Session, principal: Principal, action: Action,
              project_id: str | None = None) -> Project | None:
    """Return the project acted on (if any), or raise Refused naming every reason."""
    reasons, project = reasons_against(ctx, db, principal, action, project_id)
    if reasons:
        ctx.record(EventType.ACCESS_REFUSED, principal, project_id,
                   {"action": action.value, "reasons": reasons})
        raise Refused(reasons)
    return project
