"""One person's exact and differentially private access to the same fields, across projects.

DP mode promises that a project's answers on a field are noisy; a member who also reads that
field exactly through another project (in exact mode) can check, correct or average the noise
away with the exact answers. The promise holds per project, not per person: so every change
that can make such a pair (a project made, a member added, fields granted, a mode set) shows
the committee each pair it leaves, and ``Settings.refuse_exact_beside_dp`` refuses the change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.access.models import FieldGrant, Project, ProjectMember
from strongroom.access.states import ProjectStatus
from strongroom.errors import Conflict
from strongroom.privacy.budget import BudgetRow


@dataclass(frozen=True)
class MixedAccess:
    """A person who reads ``fields`` exactly in some projects and under DP in others."""

    person_id: str
    fields: list[int]
    dp_projects: list[str]
    exact_projects: list[str]

    def sentence(self) -> str:
        return (f"{self.person_id} reads field(s) {', '.join(map(str, self.fields))} exactly "
                f"in {', '.join(self.exact_projects)} and under differential privacy in "
                f"{', '.join(self.dp_projects)}")

    def as_dict(self) -> dict[str, object]:
        return {"person": self.person_id, "fields": self.fields,
                "dp_projects": self.dp_projects, "exact_projects": self.exact_projects}


def mixed_access(db: Session, project_id: str, people: Collection[str]) -> list[MixedAccess]:
    """Each of ``people``'s fields read both ways, in pairs that involve ``project_id``.

    Active projects only (an ended project reads nothing); a project with no budget row is
    in exact mode. Read inside the transaction making the change, after it is flushed.
    """
    if not people:
        return []
    rows = db.execute(
        select(ProjectMember.person_id, ProjectMember.project_id, FieldGrant.field_id,
               BudgetRow.dp_mode)
        .join(Project, Project.id == ProjectMember.project_id)
        .join(FieldGrant, FieldGrant.project_id == ProjectMember.project_id)
        .outerjoin(BudgetRow, BudgetRow.project_id == ProjectMember.project_id)
        .where(ProjectMember.person_id.in_(sorted(people)),
               Project.status == ProjectStatus.ACTIVE))
    # person -> field -> (DP projects, exact projects)
    sides: dict[str, dict[int, tuple[set[str], set[str]]]] = defaultdict(dict)
    for person, project, field, dp_mode in rows:
        dp, exact = sides[person].setdefault(field, (set(), set()))
        (dp if dp_mode else exact).add(project)
    found = []
    for person in sorted(sides):
        pairs = {field: both for field, both in sides[person].items()
                 if both[0] and both[1] and project_id in both[0] | both[1]}
        if pairs:
            found.append(MixedAccess(
                person, sorted(pairs),
                sorted(set().union(*(dp for dp, _ in pairs.values()))),
                sorted(set().union(*(exact for _, exact in pairs.values())))))
    return found


def refuse(found: list[MixedAccess], project_id: str) -> None:
    """Refuse the change that made ``found`` (the policy's answer), naming every pair."""
    if found:
        raise Conflict([f"this change to {project_id} would let " + m.sentence() for m in found]
                       + ["the platform's policy (Settings.refuse_exact_beside_dp) refuses "
                          "exact and DP access to the same field for one person: grant other "
                          "fields, or put the projects in the same mode"])
