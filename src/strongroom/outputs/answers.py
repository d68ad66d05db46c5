"""Rationed answers: whether the check acted on an output is itself an answer.

A deterministic check that hides a cell, removes a category or sends an output to people tells
the researcher that a small group exists: one yes/no question per request, which no rule on the
numbers can hide (only noise can, see docs/explanation/output-check.md). So each person has a
ration of outputs acted on automatically (rules.yaml ``answers``), counted across all their
projects; once it is spent, every output of theirs goes to the output checkers, acted on or
not, so the verdict itself answers nothing until the window moves on.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strongroom.outputs.models import OutputRow
from strongroom.outputs.rules import Rules
from strongroom.outputs.verdicts import Finding, Verdict

RULE = "answers"


def acted(verdict: Verdict, suppressed: set[int]) -> bool:
    """Whether the check did anything to an output but release it whole."""
    return verdict is not Verdict.RELEASE or bool(suppressed)


def used(db: Session, person_id: str, now: dt.datetime, rules: Rules) -> int:
    """The person's outputs acted on within the rules' window, in every project."""
    since = now - dt.timedelta(hours=rules.answers_window_hours)
    return int(db.scalar(select(func.count()).select_from(OutputRow).where(
        OutputRow.requester == person_id, OutputRow.acted.is_(True),
        OutputRow.created_at >= since)) or 0)


def rationed(db: Session, person_id: str, now: dt.datetime, rules: Rules) -> Finding | None:
    """A finding that sends the output to people when the person's ration is spent."""
    spent = used(db, person_id, now, rules)
    if spent < rules.answers_max_acted:
        return None
    # the constant, never the count: outputs withheld do not count (they answered nothing),
    # and a count that moved with them would answer what they held
    return Finding(RULE, rules.answers_verdict, (
        f"the output check has acted on {rules.answers_max_acted} of your outputs in the last "
        f"{rules.answers_window_hours} hours (hidden cells, removed categories or findings for "
        f"people), the most it answers automatically: whether it acts says whether a small "
        f"group exists, so every output of yours goes to the output checkers, whatever it "
        f"holds, until fewer than {rules.answers_max_acted} fall within that window"))
