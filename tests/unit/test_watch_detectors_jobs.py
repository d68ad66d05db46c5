"""``jobs.sandbox`` and ``jobs.shape``: a job that tried its walls; a job whose real run ended
otherwise than its dummy run (the mark of a job's one answer asked for on purpose), and jobs
that keep ending at a late step of the ladder."""

from __future__ import annotations

import datetime as dt

from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.history import Observation
from strongroom.watch.states import Severity
from tests.unit.watch_patterns import NOW, Researcher, judge, named, normal_days, spaced

ALICE = Researcher()
JOB = "JOB /projects/{project_id}/jobs"


def job(at: dt.datetime, **kw: int) -> Observation:
    return ALICE.obs(at, route=JOB, via="job", **kw)


def test_an_honest_job_raises_nothing() -> None:
    past = normal_days(ALICE, days=20)
    signals = judge(job(NOW, rows_scanned=3000), past)
    assert named(signals, "jobs.shape") == [] and named(signals, "jobs.sandbox") == []


def test_one_job_that_ended_otherwise_on_the_real_data_is_an_alert() -> None:
    found = named(judge(job(NOW, diverged=1)), "jobs.shape")
    assert [s.severity for s in found] == [Severity.MEDIUM]
    assert found[0].evidence["diverged"] == 1 and not found[0].suspend


def test_several_in_the_window_are_high_and_suspend_only_if_the_custodian_says() -> None:
    past = [job(at, diverged=1) for at in spaced(NOW - dt.timedelta(days=3), 2,
                                                 dt.timedelta(hours=5))]
    found = named(judge(job(NOW, diverged=1), past), "jobs.shape")
    assert [s.severity for s in found] == [Severity.HIGH]
    assert found[0].evidence["diverged"] == 3 and not found[0].suspend
    strict = DetectorPolicy(auto_suspend=DetectorPolicy().auto_suspend | {"jobs.shape"})
    found = named(judge(job(NOW, diverged=1), past, strict), "jobs.shape")
    assert found[0].suspend
    # outside the window, they are forgotten
    old = [job(at, diverged=1) for at in spaced(NOW - dt.timedelta(days=20), 2,
                                                dt.timedelta(hours=5))]
    found = named(judge(job(NOW, diverged=1), old), "jobs.shape")
    assert [s.severity for s in found] == [Severity.MEDIUM]


def test_a_late_end_alerts_only_when_it_repeats() -> None:
    assert named(judge(job(NOW, late=1)), "jobs.shape") == []
    past = [job(at, late=1) for at in spaced(NOW - dt.timedelta(days=2), 2,
                                             dt.timedelta(hours=3))]
    found = named(judge(job(NOW, late=1), past), "jobs.shape")
    assert [s.severity for s in found] == [Severity.MEDIUM] and found[0].evidence["late"] == 3
    more = [job(at, late=1) for at in spaced(NOW - dt.timedelta(days=2), 5,
                                             dt.timedelta(hours=3))]
    found = named(judge(job(NOW, late=1), more), "jobs.shape")
    assert [s.severity for s in found] == [Severity.HIGH]


def test_a_job_that_tried_its_walls_is_high() -> None:
    found = named(judge(job(NOW, walls=2)), "jobs.sandbox")
    assert [s.severity for s in found] == [Severity.HIGH]
