"""Exposure over a lifetime (strongroom.watch.forecast, the lifetime limits): patient leakers
that stay under every 30-day window are stopped before their lifetime allowance, whether they
drip through one project, spread over a person's projects or over an institution's people.

Guarantee under test: no project, person or institution receives more distinct participants
record-level over its life than its lifetime allowance, through any caller of the extract
service; and at the pace of a drip, it is suspended before it gets there. Truth is read from
the exposures custodian-side; the campaigns are strongroom.attacks.leakers at 1/20 scale, each
drip in days rather than weeks (see ``limits``; the benchmark runs them at full size, for as
long as they last: benchmarks/exposure_campaigns.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroaring import BitMap
from sqlalchemy import select

from strongroom.access.models import Pause
from strongroom.attacks import leakers
from strongroom.attacks.world import AttackWorld
from strongroom.errors import Refused
from strongroom.watch.detectors.policy import DetectorPolicy, LifetimePolicy
from strongroom.watch.limits import Planned
from strongroom.watch.models import AlertRow

pytestmark = pytest.mark.slow
SCALE = 0.05
# a drip's lifetime allowances, as a share of the defaults (the 30-day windows' stay whole)
LIFETIME_SHARE = 0.25


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackWorld]:
    need = max(c.rows(SCALE) for c in leakers.CAMPAIGNS)
    built = AttackWorld.build(Path(tmp_path_factory.mktemp("lifetime")), cohort=need)
    yield built
    built.close()


def limits(campaign: leakers.Campaign) -> dict[str, dict[str, int]]:
    """The default limits at SCALE; for a drip (less than a quarter of its allowance on its
    first day), the lifetime allowances a quarter of that. The same forecast then stops it
    (a week from the allowance at its pace) on day 3 to 6 rather than 12 to 27, while every
    30-day window stays out of reach; a campaign that takes its allowance at once keeps it."""
    scaled = leakers.scaled_limits(SCALE)
    first_day = sum(n for _, _, n in campaign.pages(0, SCALE))
    if first_day >= LIFETIME_SHARE * scaled[campaign.held_by]["lifetime_participants"]:
        return scaled
    return {scope: {**values, "lifetime_participants":
                    round(values["lifetime_participants"] * LIFETIME_SHARE)}
            for scope, values in scaled.items()}


@pytest.mark.parametrize("campaign", leakers.CAMPAIGNS, ids=lambda c: c.name)
def test_a_patient_leaker_is_stopped_before_the_lifetime_allowance(
        world: AttackWorld, campaign: leakers.Campaign) -> None:
    outcome = leakers.run(world, campaign, SCALE, limits(campaign))
    assert outcome.held, outcome
    assert outcome.out > outcome.allowance / 2  # it did take a lot first: the pace showed
    assert "lifetime allowance" in outcome.reason or "limit" in outcome.reason


def test_the_hard_lifetime_limit_holds_without_the_forecast(world: AttackWorld) -> None:
    """With the forecast switched off, the limit itself refuses the export that would cross
    it, counting only participants not received before."""
    watch = world.platform.watch
    saved = watch.policy
    watch.policy = dataclasses.replace(saved, lifetime=LifetimePolicy(enabled=False))
    try:
        who, project = world.researcher()
        admin = world.staff("custodian-admin")
        watch.set_limits(admin, "project", project,
                         {"record_participants": 10_000, "lifetime_participants": 1_000})
        for day in range(3):
            watch.guard(who, project, "data.export",
                        Planned(record_members=BitMap(range(day * 300, day * 300 + 300))))
            world.clock.advance(40 * 24 * 3600)  # past every 30-day window
        # 100 new: exactly the allowance, however many were taken before
        watch.guard(who, project, "data.export", Planned(record_members=BitMap(range(1000))))
        with pytest.raises(Refused, match="distinct participants received record-level ever"):
            watch.guard(who, project, "data.export",
                        Planned(record_members=BitMap(range(1000, 1001))))
    finally:
        watch.policy = saved


def test_an_honest_project_re_exporting_its_population_is_not_suspended(
        world: AttackWorld) -> None:
    """A study population taken once, then again as it is updated, adds nothing new: the
    pace falls to nothing, and only the first, large take raises a warning."""
    who, project = world.researcher()
    watch = world.platform.watch
    population = BitMap(range(50_000, 50_000 + 600))
    for _ in range(20):
        watch.guard(who, project, "data.export", Planned(record_members=population))
        world.clock.advance(3 * 24 * 3600)
    with world.platform.access.transaction() as db:
        held = db.scalars(select(Pause).where(Pause.target_id.in_([project, who.person_id]),
                                              Pause.lifted_at.is_(None))).all()
        warned = db.scalars(select(AlertRow).where(AlertRow.project_id == project)).all()
    assert held == []
    assert {a.detector for a in warned} <= {"coverage.lifetime"}


def test_the_policy_has_a_forecast_by_default() -> None:
    policy = DetectorPolicy().lifetime
    assert policy.enabled and policy.suspend_days < policy.warn_days
