"""Patient leakers against the transfer limits: record-level campaigns that stay under every
window's limit, run day by day through the extract service (the one gate every caller meets,
API, console, CLI or Python), with what left read custodian-side from the exposures.

Each campaign says which (person, project) pairs take part and which pages of the cohort (by
master-ID order) each takes on each day; ``scale`` shrinks the pages and the platform's limits
alike, so the test suite runs the same campaigns on a small cohort that the benchmark runs at
full size.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyroaring import BitMap

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.permissions import Action
from strongroom.attacks.world import AttackWorld
from strongroom.errors import ServiceError
from strongroom.extracts.service import create_extract
from strongroom.watch.exposure import union_since
from strongroom.watch.policy import DEFAULTS

Page = tuple[int, int, int]  # (taker, first row, rows)


@dataclass(frozen=True)
class Campaign:
    name: str
    people: int  # distinct people taking part …
    projects_each: int  # … each leading this many projects
    one_institution: bool  # all the people of one institution
    days: int
    pages: Callable[[int, float], list[Page]]  # (day, scale) → what is taken that day
    # the allowance that must hold it: the lifetime limit of this scope
    held_by: str  # project | person | institution
    # how the takers stand: each leads their projects ("lead"), each is a member of a project
    # led at another institution ("member": a ring), or they are accounts of one human, the
    # same name at the same e-mail domain ("accounts")
    standing: str = "lead"

    def rows(self, scale: float) -> int:
        """The cohort it needs: every row it would take if never stopped."""
        return max(first + n for day in range(self.days)
                   for _, first, n in self.pages(day, scale))


@dataclass(frozen=True)
class Outcome:
    campaign: str
    out: int  # distinct participants received, all its takers together
    stopped_day: int | None  # the first day a take was refused (None: never)
    allowance: int  # the lifetime allowance that should hold it
    reason: str  # the first refusal's first reason

    @property
    def held(self) -> bool:
        return self.stopped_day is not None and self.out <= self.allowance


def _retaking(day: int, scale: float) -> list[Page]:  # 600 new and 300 already taken a day
    new, again = round(600 * scale), round(300 * scale)
    return [(0, max(0, new * day - again), new + min(again, new * day))]


def _two_projects(day: int, scale: float) -> list[Page]:  # just under each project's window
    size = round(19_800 * scale)
    return [(0, 2 * size * day, size), (1, 2 * size * day + size, size)]


def _institution(day: int, scale: float) -> list[Page]:  # three people, 600 new each a day
    size = round(600 * scale)
    return [(i, size * (3 * day + i), size) for i in range(3)]


def _accounts(day: int, scale: float) -> list[Page]:  # two accounts, 600 new each a day
    size = round(600 * scale)
    return [(i, size * (2 * day + i), size) for i in range(2)]


def _window_drip(day: int, scale: float) -> list[Page]:  # the 30-day allowance, spread evenly
    size = round(20_000 * scale / 30)
    return [(0, size * day, size)]


CAMPAIGNS = [
    Campaign("re-taking drip: 600 new and 300 repeats a day", 1, 1, False, 80, _retaking,
             "project"),
    Campaign("one person, two projects, each just under its 30-day limit", 1, 2, False, 3,
             _two_projects, "person"),
    Campaign("three people of one institution, 600 new each a day", 3, 1, True, 60,
             _institution, "institution"),
    Campaign("a drip at exactly the 30-day allowance (667 a day)", 1, 1, False, 80,
             _window_drip, "project"),
    Campaign("a ring: three people of one institution, members of projects led elsewhere",
             3, 1, True, 60, _institution, "institution", "member"),
    Campaign("one human, two accounts, 600 new each a day", 2, 1, True, 60, _accounts,
             "person", "accounts"),
]


def scaled_limits(scale: float) -> dict[str, dict[str, int]]:
    """Each scope's default limits on participants, shrunk with the campaigns."""
    return {scope: {"record_participants": round(limits.record_participants * scale),
                    "lifetime_participants": round(limits.lifetime_participants * scale)}
            for scope, limits in DEFAULTS.items()}


def run(world: AttackWorld, campaign: Campaign, scale: float = 1.0,
        limits: dict[str, dict[str, int]] | None = None) -> Outcome:
    """Run one campaign in new people and projects of ``world``; the clock moves a day a day.
    ``limits``: each scope's limits to set (default: the defaults, scaled)."""
    takers = _takers(world, campaign)
    limits = scaled_limits(scale) if limits is None else limits
    admin = world.staff("custodian-admin")
    scopes = {"project": {p for _, p in takers}, "person": {w.person_id for w, _ in takers},
              "institution": {w.institution_id for w, _ in takers}}
    for scope, targets in scopes.items():
        for target in targets:
            world.platform.watch.set_limits(admin, scope, target, limits[scope])
    start = world.clock()
    stopped, reason = None, ""
    with tempfile.TemporaryDirectory() as folder:
        for day in range(campaign.days):
            for n, (taker, first, size) in enumerate(campaign.pages(day, scale)):
                who, project = takers[taker]
                try:
                    create_extract(world.platform.access, who, project, "parquet",
                                   Path(folder) / f"{day}-{n}.parquet",
                                   store=world.platform.store, watch=world.platform.watch,
                                   action=Action.DATA_EXPORT, rows=slice(first, first + size))
                except ServiceError as refusal:
                    stopped, reason = day, refusal.reasons[0]
                    break
            if stopped is not None:
                break
            world.clock.advance(24 * 3600)
    allowance = _limit(campaign.held_by, limits)
    return Outcome(campaign.name, _taken(world, takers, start), stopped, allowance, reason)


def _takers(world: AttackWorld, campaign: Campaign) -> list[tuple[Principal, str]]:
    takers: list[tuple[Principal, str]] = []
    institution = None
    name = f"Alex Morgan {next(world.serial)}" if campaign.standing == "accounts" else None
    for _ in range(campaign.people):
        if campaign.standing == "member":  # a colleague joins a project led elsewhere
            lead, project = world.researcher()
            world.grant_export(lead, project)
            who = world.person("researcher", institution)
            projects.add_member(world.platform.access, world.staff("custodian-admin"),
                                project, who.person_id)
            mine = [project]
        else:
            who, project = world.researcher(institution, name=name)
            mine = [project] + [world.project(who) for _ in range(campaign.projects_each - 1)]
            for p in mine:
                world.grant_export(who, p)
        if campaign.one_institution:
            institution = who.institution_id
        takers += [(who, p) for p in mine]
    return takers


def _limit(scope: str, limits: dict[str, dict[str, int]]) -> int:
    return limits[scope]["lifetime_participants"]


def _taken(world: AttackWorld, takers: list[tuple[Principal, str]],
           since: dt.datetime) -> int:
    """Distinct participants every taker's projects received (custodian-side truth)."""
    with world.platform.access.transaction() as db:
        return len(BitMap.union(BitMap(), *(
            union_since(db, world.platform.access.key, "project_id", project, since)
            for _, project in takers)))

