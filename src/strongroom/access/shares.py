"""An institution's budgets, split among its projects.

An institution's limits (answers a day and a year, outputs/answers.py; cells, bytes, requests
and record-level participants, watch/limits.py) hold across all its projects. Pooled, one
project's use of them moved another project's refusals: a colleague's kept answer, or their
requests, read from a free request of another project (a red team, session 60). So each
project draws only its own share: the limit split evenly among the institution's active
projects, with only that project's use counted against it. The shares add up to no more than
the limit, so a second project still adds nothing; what moves a share is the number of
projects, which the custodian approves, never what anyone asked. The institution's whole,
over all its projects (ended ones too), is checked beside the shares: it is never reached
while the shares stand, and holds the bound when they move (a project made or ended within a
period would otherwise let the shares add up to more) or pass it (a share's floor of one).
That check alone reads other projects' use, and only where the shares were outgrown.
"""

from __future__ import annotations

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from strongroom.access.models import Person, Project, ProjectMember
from strongroom.access.states import ProjectStatus


def projects_of(institution_id: str) -> Select[str]:
    """The projects an institution's people lead or are members of, in any state."""
    people = select(Person.id).where(Person.institution_id == institution_id)
    joined = select(ProjectMember.project_id).where(ProjectMember.person_id.in_(people))
    return select(Project.id).where(or_(Project.lead_id.in_(people), Project.id.in_(joined)))


def active_projects(db: Session, institution_id: str) -> int:
    """The active projects an institution's limits are split among: those its people lead
    or are members of (at least 1)."""
    found = db.scalar(select(func.count()).select_from(Project).where(
        Project.status == ProjectStatus.ACTIVE.value,
        Project.id.in_(projects_of(institution_id))))
    return max(1, int(found or 0))


def share(limit: int, shared_by: int) -> int:
    """One project's share of an institution's ``limit``: at least one where the limit lets
    anything through (0 lets nothing), so an institution of more projects than its limit
    still answers; the institution's whole, checked beside the shares, holds the bound."""
    return 0 if limit <= 0 else max(1, limit // max(1, shared_by))


def describe(shared_by: int) -> str:
    """How a share is named in a refusal (no apostrophes: a reason's quoted spans are taken
    for labels, outputs/labels.py)."""
    return (", the share of this project (the limit split evenly among the active projects "
            "of the institution)" if shared_by > 1 else "")  # how many: the institution's
