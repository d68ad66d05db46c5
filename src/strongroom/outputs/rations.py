"""Each person's ration of answers (outputs/answers.py), as the rules of their projects set it.

One object, built once in the composition root (platform.py) and shared by every service
whose outcome can be an answer: the output service (outputs acted on, definitions and jobs
refused by the data, runs past their floor) and the DP queries (a release past its floor).
"""

from __future__ import annotations

import datetime as dt

import yaml
from sqlalchemy.orm import Session

from strongroom.access.authorize import projects_of
from strongroom.access.context import AccessContext, Principal
from strongroom.outputs import answers
from strongroom.outputs.rules import Rules, load_rules, tighten

RULES_FILE = "rules.yaml"  # a project's tightened thresholds, beside its other files


class Rations:
    def __init__(self, ctx: AccessContext, rules: Rules | None = None) -> None:
        self.ctx = ctx
        self.base_rules = rules or load_rules()

    def rules_for(self, project_id: str) -> Rules:
        """The shipped rules, tightened by the project's own file if it has one."""
        path = self.ctx.project_dir(project_id) / RULES_FILE
        if not path.exists():
            return self.base_rules
        return tighten(self.base_rules, yaml.safe_load(path.read_bytes()) or {})

    def of(self, db: Session, person_id: str) -> answers.Ration:
        """One person's ration of answers: their day is the strictest of their projects'
        rules; the other budgets (a year's, the projects' and institutions') are Settings."""
        projects = sorted(projects_of(db, person_id))
        return answers.Ration.strictest([self.rules_for(p) for p in projects] or
                                        [self.base_rules],
                                        answers.Limits.of(self.ctx.settings))

    def reserve(self, db: Session, principal: Principal, project_id: str,
                what: str, at: dt.datetime | None = None) -> int | None:
        """Spend one of the person's answers ahead of work whose outcome would be one: its
        id, or None if the ration is spent (``at``: the moment it is dated, if not now)."""
        return answers.reserve(db, principal.person_id, project_id, self.ctx.clock(),
                               self.of(db, principal.person_id), what, at)

    def give_back(self, db: Session, answer_id: int) -> None:
        answers.give_back(db, answer_id)
