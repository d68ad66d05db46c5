"""``queries.overrun``: a person's analyses that keep running past their schedule's floor (the
meter's ``late`` column, set by the output service for every caller), the mark of response
time read on purpose; a job's own late end stays ``jobs.shape``'s."""

from __future__ import annotations

import datetime as dt

from strongroom.jobs.service import ROUTE
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.detectors.queries import JOB_ROUTE
from strongroom.watch.history import Observation
from strongroom.watch.states import Severity
from tests.unit.watch_patterns import NOW, Researcher, judge, named, normal_days, spaced

ALICE = Researcher()


def late(at: dt.datetime, **kw: object) -> Observation:
    return ALICE.obs(at, late=1, **kw)


def overruns(count: int, start: dt.datetime) -> list[Observation]:
    return [late(at) for at in spaced(start, count, dt.timedelta(minutes=20))]


def test_honest_analyses_within_their_floor_raise_nothing() -> None:
    past = normal_days(ALICE, days=20)
    assert named(judge(ALICE.obs(NOW, rows_scanned=3000), past), "queries.overrun") == []


def test_one_or_two_overruns_in_a_day_are_a_loaded_machine() -> None:
    assert named(judge(late(NOW)), "queries.overrun") == []
    past = overruns(1, NOW - dt.timedelta(hours=2))
    assert named(judge(late(NOW), past), "queries.overrun") == []


def test_three_in_a_day_alert_and_six_are_high_without_suspending_by_default() -> None:
    found = named(judge(late(NOW), overruns(2, NOW - dt.timedelta(hours=2))),
                  "queries.overrun")
    assert [s.severity for s in found] == [Severity.MEDIUM]
    assert found[0].evidence["late"] == 3 and not found[0].suspend
    found = named(judge(late(NOW), overruns(5, NOW - dt.timedelta(hours=3))),
                  "queries.overrun")
    assert [s.severity for s in found] == [Severity.HIGH]
    assert found[0].evidence["late"] == 6 and not found[0].suspend
    strict = DetectorPolicy(auto_suspend=DetectorPolicy().auto_suspend | {"queries.overrun"})
    found = named(judge(late(NOW), overruns(5, NOW - dt.timedelta(hours=3)), strict),
                  "queries.overrun")
    assert found[0].suspend


def test_overruns_of_earlier_days_are_forgotten() -> None:
    old = overruns(5, NOW - dt.timedelta(days=3))
    assert named(judge(late(NOW), old), "queries.overrun") == []


def test_analyses_a_job_planned_count_but_a_job_s_own_late_end_does_not() -> None:
    planned = [late(at, route=ROUTE + " sdc", via="job")
               for at in spaced(NOW - dt.timedelta(hours=2), 2, dt.timedelta(minutes=20))]
    found = named(judge(late(NOW, route=ROUTE + " sdc", via="job"), planned),
                  "queries.overrun")
    assert [s.severity for s in found] == [Severity.MEDIUM]
    # nor is a planned analysis's overrun a late job
    assert named(judge(late(NOW, route=ROUTE + " sdc", via="job"), planned),
                 "jobs.shape") == []
    ends = [late(at, route=JOB_ROUTE, via="job")
            for at in spaced(NOW - dt.timedelta(hours=2), 2, dt.timedelta(minutes=20))]
    assert named(judge(late(NOW, route=JOB_ROUTE, via="job"), ends), "queries.overrun") == []
    assert named(judge(late(NOW, route=JOB_ROUTE, via="job"), ends), "jobs.shape") != []


def test_the_job_route_is_the_job_service_s() -> None:
    assert JOB_ROUTE == ROUTE
