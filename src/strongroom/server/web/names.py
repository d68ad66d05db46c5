"""Names beside IDs: what a person reads on a page is who and what, not ``per_…``.

Only what the person may read is named (institutions, projects, people, each through its own
service and permission); an ID they may not read stays an ID.
"""

from __future__ import annotations

import re

from strongroom.access import institutions, people, projects
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action, who_may

ID = re.compile(r"\b(?:ins|prj|per)_[0-9a-f]+\b")


def readable(ctx: AccessContext, who: Principal) -> dict[str, str]:
    """Each institution's, project's and person's name, by ID, that ``who`` may read."""
    found: dict[str, str] = {}
    if not who_may(Action.INSTITUTION_READ, who.roles):
        found |= {i.id: i.name for i in institutions.list_all(ctx, who)}
    if not who_may(Action.PROJECT_READ, who.roles):
        found |= {v.project.id: v.project.title for v in projects.list_visible(ctx, who)}
    if not who_may(Action.PERSON_READ, who.roles):
        found |= {p.id: p.name for p, _ in people.list_all(ctx, who)}
    return found


def beside(text: str, names: dict[str, str]) -> str:
    """``text`` with each ID it holds that has a name written as “name (ID)”."""
    return ID.sub(lambda m: f"{names[m.group(0)]} ({m.group(0)})" if m.group(0) in names
                  else m.group(0), text)
