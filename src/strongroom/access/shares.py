"""An institution's budgets, split among its projects.

An institution's limits (answers a day and a year, outputs/answers.py; cells, bytes, requests
and record-level participants, watch/limits.py) hold across all its projects. Pooled, one
project's use of them moved another project's refusals: a colleague's kept answer, or their
requests, read from a free request of another project (a red team, session 60). So each
project draws only its own share: the limit split evenly among the institution's active
projects, with only that project's use counted against it. The shares add up to no more than
the limit, so a second project still adds nothing; what moves a share is the number of
projects, which the custodian approves, never what anyone asked. A project that ended within
a limit's window keeps its share there (its use is still counted), and a share is never
rounded up, so the shares add up to no more than the limit throughout a window. The
institution's whole, over all its projects, is checked beside the shares and is not reached
while they stand; it holds the bound where they move within a window all the same (a project
approved, or a member joining or leaving, part-way through), the one case in which a refusal
reads other projects' use, and its refusal names no count of theirs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from strongroom.access.models import Person, Project, ProjectMember
from strongroom.access.states import ProjectStatus


def projects_of(institution_id: str) -> Select[str]:
    """The projects an institution's people lead or are members of, in any state."""
    people = select(Person.id).where(Person.institution_id == institution_id)
    joined = select(ProjectMember.project_id).where(ProjectMember.person_id.in_(people))
    return select(Project.id).where(or_(Project.lead_id.in_(people), Project.id.in_(joined)))


def active_projects(db: Session, institution_id: str, since: dt.datetime | None = None
                    ) -> int:
    """The projects an institution's limits are split among (at least 1): those its people
    lead or are members of that are active, and (``since``: a limit's window or period
    start) those that ended within it. An ended project's use stays counted in the
    institution's window, so its share stays allotted until the window passes it: re-split
    among fewer projects at once, the shares would add up to more than the limit, and the
    institution's whole would then refuse within a share, reading the others' use."""
    return active_within(db, institution_id, [since])[0]


def active_within(db: Session, institution_id: str, sinces: Sequence[dt.datetime | None]
                  ) -> list[int]:
    """:func:`active_projects` for each of ``sinces``, in one query."""
    live = Project.status == ProjectStatus.ACTIVE.value
    counts = [func.count(case((live if since is None
                               else or_(live, Project.closed_at >= since), 1)))
              for since in sinces]
    found = db.execute(select(*counts).where(
        Project.id.in_(projects_of(institution_id)))).one()
    return [max(1, int(n or 0)) for n in found]


def share(limit: int, shared_by: int) -> int:
    """One project's share of an institution's ``limit``: never more than an even split, so
    the shares add up to no more than the limit. Less than one (more projects than the
    limit) is none: the refusal names the share, and the custodian raises the limit."""
    return 0 if limit <= 0 else limit // max(1, shared_by)


def describe(shared_by: int) -> str:
    """How a share is named in a refusal (no apostrophes: a reason's quoted spans are taken
    for labels, outputs/labels.py)."""
    return (", the share of this project (the limit split evenly among the projects of the "
            "institution active within its window)"
            if shared_by > 1 else "")  # how many: the institution's
