"""Rationed answers: whether the check acted on an output is itself an answer.

A deterministic check that hides a cell, removes a category or sends an output to people tells
the researcher that a small group exists: one yes/no question per request, which no rule on the
numbers can hide (only noise can, see docs/explanation/output-check.md). So each person has a
ration of outputs acted on automatically (rules.yaml ``answers``), counted across all their
projects; once it is spent, every output of theirs goes to the output checkers, acted on or
not, so the verdict itself answers nothing until the window moves on.

The ration is one per person, so the strictest of their projects' rules sets it; it is read
and spent under a lock on the person (a no-op write), in the transaction that records the
output, so requests sent at once cannot each see the same unspent ration.

A dataset definition is not an output, but one refused once it has read the data (the row,
time or memory limit met only when someone's value crosses a threshold) answers a question
too. Its answer is reserved before it runs (:func:`reserve`, an ``outputs_answers`` row) and
given back if it was built; once the ration is spent, definitions are refused before they
read anything, with a text that depends on nothing but the ration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from strongroom.access.models import Person
from strongroom.outputs.models import AnswerRow, OutputRow
from strongroom.outputs.rules import Rules
from strongroom.outputs.verdicts import SEVERITY, Finding, Verdict

RULE = "answers"


def acted(verdict: Verdict, suppressed: set[int]) -> bool:
    """Whether the check did anything to an output but release it whole."""
    return verdict is not Verdict.RELEASE or bool(suppressed)


@dataclass(frozen=True)
class Ration:
    """How many outputs acted on a person may see answered in a window, and what the rest get."""

    max_acted: int
    window_hours: int
    verdict: Verdict

    @classmethod
    def strictest(cls, rules: Iterable[Rules]) -> Ration:
        """The tightest ration of several projects' rules (one person, one ration)."""
        every = list(rules)
        return cls(min(r.answers_max_acted for r in every),
                   max(r.answers_window_hours for r in every),
                   max((r.answers_verdict for r in every), key=SEVERITY.__getitem__))


def used(db: Session, person_id: str, now: dt.datetime, ration: Ration) -> int:
    """The person's answers within the ration's window, in every project: outputs acted on,
    and definitions refused once they read the data (or being built: reserved)."""
    since = now - dt.timedelta(hours=ration.window_hours)
    outputs = db.scalar(select(func.count()).select_from(OutputRow).where(
        OutputRow.requester == person_id, OutputRow.acted.is_(True),
        OutputRow.created_at >= since)) or 0
    others = db.scalar(select(func.count()).select_from(AnswerRow).where(
        AnswerRow.requester == person_id, AnswerRow.spent.is_(True),
        AnswerRow.created_at >= since)) or 0
    return int(outputs) + int(others)


def rationed(db: Session, person_id: str, now: dt.datetime, ration: Ration) -> Finding | None:
    """A finding that sends the output to people when the person's ration is spent.

    Takes the person's lock first: the caller spends the ration (records an output acted on)
    in the same transaction, so the count it read cannot move under it."""
    db.execute(update(Person).where(Person.id == person_id).values(id=Person.id))
    if used(db, person_id, now, ration) < ration.max_acted:
        return None
    # the constant, never the count: outputs withheld do not count (they answered nothing),
    # and a count that moved with them would answer what they held
    return Finding(RULE, ration.verdict, (
        f"the output check has acted on {ration.max_acted} of your outputs in the last "
        f"{ration.window_hours} hours (hidden cells, removed categories or findings for "
        f"people), the most it answers automatically: whether it acts says whether a small "
        f"group exists, so every output of yours goes to the output checkers, whatever it "
        f"holds, until fewer than {ration.max_acted} fall within that window"))


def reserve(db: Session, person_id: str, project_id: str, now: dt.datetime, ration: Ration,
            what: str) -> int | None:
    """Spend one answer ahead of work whose refusal would be one (a definition), under the
    person's lock: the answer's id, or None when the ration is already spent."""
    if rationed(db, person_id, now, ration) is not None:
        return None
    row = AnswerRow(requester=person_id, project_id=project_id, created_at=now, what=what,
                    spent=True)
    db.add(row)
    db.flush()
    return int(row.id)


def give_back(db: Session, answer_id: int) -> None:
    """The work answered nothing about the data (built, or refused for its text alone)."""
    db.execute(update(AnswerRow).where(AnswerRow.id == answer_id).values(spent=False))
