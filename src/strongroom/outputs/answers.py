"""Rationed answers: whether the check acted on an output is itself an answer.

A deterministic check that hides a cell, removes a category or sends an output to people tells
the researcher that a small group exists: one yes/no question per request, which no rule on the
numbers can hide (only noise can, see docs/explanation/output-check.md). So the outputs acted
on automatically are answers, and answers are budgeted **where the people are**:

- per person (rules.yaml ``answers.max_acted`` a day, the strictest of their projects' rules,
  and ``Settings.answers_person_year`` a year), across all their projects;
- per project (``answers_project_day``, ``answers_project_year``), whoever of its members asks;
- per institution (``answers_institution_day``, ``answers_institution_year``): the asker's own
  institution and the project's lead institution (its lead's), if different, are both charged,
  each in the project's share of it: the limit split evenly among the institution's projects
  (those its people lead or are members of) active within the period, or ended within it. A
  share counts only its own project's answers, so no project's budget moves with another's:
  pooled, a colleague's definition kept as an answer (the data refused it) or given back (it
  was built) left the institution's last answer spent or not, and another project's free
  request read that bit of data it may not see (a red team, 16 of 16, nothing spent). The
  shares add up to no more than the limit, so a second project still adds nothing.

Every answer is charged to every budget that applies to it, and the smallest remaining decides:
a second member, a second project, a second institution or a second account adds nothing
beyond the budgets they share. Once any applicable budget is spent, every output goes to the
output checkers, acted on or not, so the verdict answers nothing until that budget renews.

What counts as an answer: an output the check acted on (:func:`acted`); an output it did not
act on only because a shown group sat just over the threshold, within the band the keyed
margins draw from (k ≤ n < 2k − 1, enclave/margin.py: :func:`near`), since another draw would
have acted on it; a checker's decision on a withheld output; and work whose refusal by the
data would be one (a dataset definition, a job), reserved before it runs (:func:`reserve`, an
``outputs_answers`` row) and given back if the data said nothing.

Windows are fixed periods, not rolling ones: a day is a period of ``window_hours`` (24: the UTC
day) and a year one of ``Settings.answers_year_days`` days, both counted from the Unix epoch.
So the moment a budget renews depends on nothing asked, and a refusal can say it (a rolling
window renews when its oldest answer ages out, which would date that answer). A budget is
read and charged under row locks taken in one order (the project, then the person's
accounts; a no-op write), in the transaction that records the output or the reservation, so
requests sent at once, by one person or by many, cannot each see the same unspent answer. An
institution's row is not locked: each share is its project's, which the project's lock holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from strongroom.access import shares
from strongroom.access.context import Settings
from strongroom.access.identity import accounts_of
from strongroom.access.models import Person, Project
from strongroom.outputs.models import AnswerRow, OutputRow
from strongroom.outputs.rules import Rules
from strongroom.outputs.verdicts import SEVERITY, Finding, Verdict

RULE = "answers"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ASK = ("to ask for a larger budget, write to the data access team of the custodian (a "
       "custodian admin), who sets them")


def acted(verdict: Verdict, suppressed: set[int]) -> bool:
    """Whether the check did anything to an output but release it whole."""
    return verdict is not Verdict.RELEASE or bool(suppressed)


def near(sizes: Iterable[int], threshold: int) -> bool:
    """Whether a group shown sat where the check could have acted on it: from the threshold
    up to the highest line a keyed margin draws (k ≤ n < 2k − 1, enclave/margin.py). Released
    whole, such an output still answers the question its line was drawn for (k − 1
    accomplices and a target just over the line), so it is an answer too."""
    if threshold < 2:
        return False
    return any(threshold <= n < 2 * threshold - 1 for n in sizes)


class Scope(StrEnum):
    PERSON = "person"
    PROJECT = "project"
    INSTITUTION = "institution"


class Window(StrEnum):
    DAY = "day"
    YEAR = "year"


@dataclass(frozen=True)
class Limits:
    """The budgets beyond a person's day (which is rules.yaml's), from the custodian's
    :class:`~strongroom.access.context.Settings`."""

    person_year: int = 200
    project_day: int = 30
    project_year: int = 400
    institution_day: int = 60
    institution_year: int = 1000
    year_days: int = 365

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.answers_person_year, settings.answers_project_day,
                   settings.answers_project_year, settings.answers_institution_day,
                   settings.answers_institution_year, settings.answers_year_days)


@dataclass(frozen=True)
class Ration:
    """A person's day (how many answers, over how many hours, and the verdict of what is
    asked once any budget is spent), and the other budgets' limits."""

    max_acted: int
    window_hours: int
    verdict: Verdict
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def strictest(cls, rules: Iterable[Rules], limits: Limits | None = None) -> Ration:
        """The tightest ration of several projects' rules (one person, one ration)."""
        every = list(rules)
        return cls(min(r.answers_max_acted for r in every),
                   max(r.answers_window_hours for r in every),
                   max((r.answers_verdict for r in every), key=SEVERITY.__getitem__),
                   limits or Limits())

    def period(self, window: Window, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The fixed period of ``window`` that holds ``now``: its start and its end."""
        length = (dt.timedelta(hours=self.window_hours) if window is Window.DAY
                  else dt.timedelta(days=self.limits.year_days))
        start = EPOCH + length * ((now - EPOCH) // length)
        return start, start + length

    def limit(self, scope: Scope, window: Window, shared_by: int = 1) -> int:
        """A budget's limit; an institution's is its project's share (``shared_by``: the
        institution's active projects)."""
        if scope is Scope.PERSON:
            return self.max_acted if window is Window.DAY else self.limits.person_year
        if scope is Scope.PROJECT:
            return (self.limits.project_day if window is Window.DAY
                    else self.limits.project_year)
        return shares.share(self.limits.institution_day if window is Window.DAY
                            else self.limits.institution_year, shared_by)


@dataclass(frozen=True)
class Budget:
    """One budget that applies to an answer: whose, over which period, and how much of it is
    spent."""

    scope: Scope
    subject: str  # the person's, project's or institution's id
    window: Window
    limit: int
    used: int
    renews: dt.datetime
    role: str = ""  # an institution's: "yours", "the project lead's", or both
    shared_by: int = 1  # an institution's: its active projects, among which it is split
    whole: bool = False  # an institution's whole, over all its projects (not a share)

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)

    def describe(self) -> str:
        # no apostrophes: a reason's quoted spans are taken for labels (outputs/labels.py)
        whose = {Scope.PERSON: "your own",
                 Scope.PROJECT: f"project {self.subject}:",
                 Scope.INSTITUTION: f"institution {self.subject} ({self.role})"
                                    f"{', over all its projects' if self.whole else ''}:"
                 }[self.scope]
        share = shares.describe(self.shared_by) if self.scope is Scope.INSTITUTION else ""
        return (f"{whose} budget of {self.limit} answers a {self.window.value}{share} "
                f"({self.left} left; it renews at {self.renews:%Y-%m-%d %H:%M} UTC)")


@dataclass(frozen=True)
class Spent:
    """The budgets with nothing left: why an answer is refused, in words that depend on the
    budgets alone (their limits and fixed periods), never on what was asked."""

    budgets: tuple[Budget, ...]

    @property
    def renews(self) -> dt.datetime:
        return max(b.renews for b in self.budgets)

    def explain(self) -> str:
        return ("answers spent: " + "; ".join(b.describe() for b in self.budgets)
                + f". Answers flow again at {self.renews:%Y-%m-%d %H:%M} UTC; " + ASK)

    def finding(self, verdict: Verdict) -> Finding:
        return Finding(RULE, verdict, (
            "the output check has answered as many questions as it may (outputs it hid, "
            "removed or found something in, outputs with a group just over its line, and "
            "definitions or jobs refused by the data: whether it acts says whether a small "
            "group exists), so every output goes to the output checkers, whatever it holds, "
            "until the budget renews. " + self.explain()))


def institutions(db: Session, person_id: str, project_id: str | None) -> dict[str, str]:
    """The institutions an answer of ``person_id`` in ``project_id`` is charged to, with
    their role: the person's own and the project lead's."""
    own = db.scalar(select(Person.institution_id).where(Person.id == person_id))
    lead = None if project_id is None else db.scalar(
        select(Person.institution_id).join(Project, Project.lead_id == Person.id)
        .where(Project.id == project_id))
    roles: dict[str, list[str]] = {}
    for institution, role in ((own, "yours"), (lead, "the project lead")):
        if institution is not None:
            roles.setdefault(institution, []).append(role)
    return {i: " and ".join(r) for i, r in roles.items()}


def lock(db: Session, person_id: str, project_id: str | None) -> None:
    """Row locks on everything an answer is charged to, always in one order (the project,
    then the person's accounts by id, as watch/service.py does): requests sent at once wait
    for each other. An institution's share is its project's, held by the project's lock: no
    request waits for another project's."""
    if project_id is not None:
        db.execute(update(Project).where(Project.id == project_id).values(id=Project.id))
    for account in accounts_of(db, person_id):  # sorted: every account of the human
        db.execute(update(Person).where(Person.id == account).values(id=Person.id))


def budgets(db: Session, person_id: str, project_id: str | None, now: dt.datetime,
            ration: Ration, charged: dict[str, str] | None = None,
            excluding: int | None = None) -> list[Budget]:
    """Every budget an answer of ``person_id`` in ``project_id`` is charged to, with what is
    spent of it in its current period (``excluding``: an answer reserved by the work being
    charged, not counted against it)."""
    if charged is None:
        charged = institutions(db, person_id, project_id)
    periods = {w: ration.period(w, now) for w in Window}
    starts = [periods[Window.DAY][0], periods[Window.YEAR][0]]
    one = {w: 1 for w in Window}
    # (scope, subject, role, the projects it is shared by in each window's period, whole)
    subjects: list[tuple[Scope, str, str, dict[Window, int], bool]] = [
        (Scope.PERSON, person_id, "", one, False)]
    if project_id is not None:
        subjects.append((Scope.PROJECT, project_id, "", one, False))
        subjects += [(Scope.INSTITUTION, i, role, dict(zip(Window, shares.active_within(
                          db, i, [periods[w][0] for w in Window]), strict=True)), False)
                     for i, role in sorted(charged.items())]
        # and each institution's whole, over all its projects: the shares add up to no more
        # (access/shares.py), it holds the bound where they move within a period
        subjects += [(Scope.INSTITUTION, i, role, one, True)
                     for i, role in sorted(charged.items())]
    counts = _tally(db, list(accounts_of(db, person_id)), project_id,
                    sorted(charged) if project_id is not None else [], starts, excluding)
    return [Budget(scope, subject, window, ration.limit(scope, window, shared_by[window]),
                   used, periods[window][1], role, shared_by[window], whole)
            for (scope, subject, role, shared_by, whole), used_in in zip(subjects, counts,
                                                                         strict=True)
            for window, used in zip(Window, used_in, strict=True)]


# made once: an alias of Person builds its column collection anew each time it is made
_ASKER, _LEAD = aliased(Person, name="asker"), aliased(Person, name="lead")


def _tally(db: Session, accounts: list[str], project_id: str | None, charged: list[str],
           starts: list[dt.datetime], excluding: int | None = None) -> list[list[int]]:
    """Answers since each of ``starts`` (outputs acted on, and answers spent), per budget: the
    person's (asked from any of ``accounts``), the project's (if any), then each institution's
    share in ``charged`` (the project's answers asked by its people, or all of them if it
    leads the project), then each one's whole (the same over all projects). One query per
    table for every budget at once: the ration is read on every request."""
    total: list[list[int]] | None = None
    for table in (OutputRow, AnswerRow):
        spent = table.acted if table is OutputRow else table.spent  # type: ignore[union-attr]
        asker, lead = _ASKER, _LEAD
        whose: list[ColumnElement[bool]] = [table.requester.in_(accounts)]
        if project_id is not None:
            whose.append(table.project_id == project_id)
        whose += [and_(table.project_id == project_id,
                       or_(asker.institution_id == i, lead.institution_id == i))
                  for i in charged]
        whose += [or_(asker.institution_id == i, lead.institution_id == i) for i in charged]
        query = select(*(func.coalesce(func.sum(case((and_(table.created_at >= s, w), 1),
                                                     else_=0)), 0)
                         for w in whose for s in starts))
        if charged:  # outer joins: a row the person's or project's budget counts stays in
            query = (query.outerjoin(asker, asker.id == table.requester)
                     .outerjoin(Project, Project.id == table.project_id)
                     .outerjoin(lead, lead.id == Project.lead_id))
        query = query.where(spent.is_(True), table.created_at >= min(starts), or_(*whose))
        if excluding is not None and table is AnswerRow:
            query = query.where(AnswerRow.id != excluding)
        row = [int(n or 0) for n in db.execute(query).one()]
        found = [row[k:k + len(starts)] for k in range(0, len(row), len(starts))]
        total = found if total is None else [[a + b for a, b in zip(x, y, strict=True)]
                                             for x, y in zip(total, found, strict=True)]
    assert total is not None
    return total


def used(db: Session, person_id: str, now: dt.datetime, ration: Ration) -> int:
    """The person's answers in the current day, in every project: outputs acted on (or near
    the line), and definitions or jobs refused once they read the data (or reserved)."""
    return _tally(db, list(accounts_of(db, person_id)), None, [],
                  [ration.period(Window.DAY, now)[0]])[0][0]


def spent(db: Session, person_id: str, project_id: str | None, now: dt.datetime,
          ration: Ration, excluding: int | None = None) -> Spent | None:
    """Lock every budget an answer here is charged to, and say which are spent (None: none).

    The caller charges the answer (records an output acted on, or a reservation) in the same
    transaction, so the counts read here cannot move under it."""
    charged = institutions(db, person_id, project_id)
    lock(db, person_id, project_id)
    empty = tuple(b for b in budgets(db, person_id, project_id, now, ration, charged,
                                     excluding) if b.left <= 0)
    return Spent(empty) if empty else None


def rationed(db: Session, person_id: str, project_id: str | None, now: dt.datetime,
             ration: Ration, excluding: int | None = None) -> Finding | None:
    """A finding that sends the output to people when a budget it would be charged to is
    spent (see :func:`spent`; ``excluding``: the output's own reservation, still held)."""
    found = spent(db, person_id, project_id, now, ration, excluding)
    return None if found is None else found.finding(ration.verdict)


def charge(db: Session, person_id: str, project_id: str, now: dt.datetime, ration: Ration,
           what: str, at: dt.datetime | None = None) -> int | Spent:
    """Spend one answer ahead of work whose refusal would be one (a definition, a job),
    charged to every budget at once under their locks: the answer's id, or what is spent.
    ``at``: the moment it is dated (counted in that period and every earlier one from now
    on), if not now: an analysis's, its earliest answer's moment (outputs/service.py)."""
    found = spent(db, person_id, project_id, now, ration)
    if found is not None:
        return found
    row = AnswerRow(requester=person_id, project_id=project_id, created_at=at or now,
                    what=what, spent=True)
    db.add(row)
    db.flush()
    return int(row.id)


def reserve(db: Session, person_id: str, project_id: str, now: dt.datetime, ration: Ration,
            what: str, at: dt.datetime | None = None) -> int | None:
    """:func:`charge`, None when a budget is spent."""
    got = charge(db, person_id, project_id, now, ration, what, at)
    return got if isinstance(got, int) else None


def give_back(db: Session, answer_id: int) -> None:
    """The work answered nothing about the data (built, or refused for its text alone)."""
    db.execute(update(AnswerRow).where(AnswerRow.id == answer_id).values(spent=False))
