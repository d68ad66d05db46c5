"""Detectors of volume and queries: each against an attack and against normal work (a busy
day, a conference trip, a researcher whose habits would fool a fixed threshold)."""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.history import DeclaredWindow, Observation, frame_of
from strongroom.watch.states import Severity
from tests.unit.watch_patterns import (
    ELSEWHERE,
    NOW,
    OFFICE,
    Researcher,
    digest,
    judge,
    last,
    named,
    normal_days,
    replace,
    spaced,
)

ALICE = Researcher()
EXPORT = "POST /projects/{project_id}/extracts"


@pytest.fixture(scope="module")
def history() -> list[Observation]:
    """Alice's last 60 days of ordinary work, up to NOW (a Wednesday afternoon)."""
    return normal_days(ALICE, until=NOW - dt.timedelta(hours=3))


def pages(count: int, rows: int, start: dt.datetime, every: dt.timedelta = dt.timedelta(
        seconds=20), r: Researcher = ALICE, **kw: object) -> list[Observation]:
    """A paginated record-level export: one page of ``rows`` participants per request."""
    return [r.obs(at, "data.export", route=EXPORT, record_rows=rows, participants=rows,
                  bytes_out=rows * 400, query_shape=digest("export-shape"),
                  query_digest=digest("export", i), **kw)  # type: ignore[arg-type]
            for i, at in enumerate(spaced(start, count, every))]


def judge_all(observations: list[Observation], past: list[Observation],
              **kw: object) -> list:
    """Every signal raised on each of ``observations`` in turn (each in its history)."""
    found = []
    for i, obs in enumerate(observations):
        found += judge(obs, [*past, *observations[:i]], **kw)  # type: ignore[arg-type]
    return found


# -- baseline.volume -------------------------------------------------------------------------

def test_a_bulk_paginated_export_is_extreme_and_suspends(history: list[Observation]) -> None:
    obs, before = last(pages(30, 1_000, NOW - dt.timedelta(minutes=10)))
    signals = named(judge(obs, [*history, *before]), "baseline.volume")
    person = [s for s in signals if s.evidence["level"] == "person"]
    assert person and person[0].severity is Severity.HIGH and person[0].suspend
    meters = person[0].evidence["meters"]
    assert meters["record_rows"]["today"] == 30_000 and meters["record_rows"]["extreme"]
    assert "median was 0" in " ".join(person[0].reasons)
    levels = {s.evidence["level"] for s in signals}
    assert levels == {"person", "project", "institution"}


def test_a_small_export_alerts_without_suspending(history: list[Observation]) -> None:
    obs, before = last(pages(2, 1_000, NOW - dt.timedelta(minutes=5)))
    (signal, *_) = named(judge(obs, [*history, *before]), "baseline.volume")
    assert signal.severity is Severity.MEDIUM and not signal.suspend
    assert signal.evidence["meters"]["record_rows"]["today"] == 2_000


def test_an_extreme_day_without_enough_history_alerts_but_does_not_suspend() -> None:
    short = normal_days(ALICE, days=12, until=NOW - dt.timedelta(hours=3))
    obs, before = last(pages(30, 1_000, NOW - dt.timedelta(minutes=10)))
    (signal, *_) = named(judge(obs, [*short, *before]), "baseline.volume")
    assert signal.severity is Severity.HIGH and not signal.suspend
    assert "fewer than the 14 needed" in " ".join(signal.reasons)


def test_a_newcomer_is_not_judged_on_volume() -> None:
    obs, before = last(pages(30, 1_000, NOW - dt.timedelta(minutes=10)))
    assert not named(judge(obs, before), "baseline.volume")  # the hard limits hold them


def test_busy_days_and_conference_trips_raise_no_volume_alert() -> None:
    """Three times the usual work today, and a conference (hotel network, hours shifted)."""
    for seed in (1, 2, 3):
        busy = normal_days(ALICE, seed=seed, busy=[0])
        today = [o for o in busy if o.at >= NOW.replace(hour=0, minute=0)]
        assert len(today) > 40
        trip = normal_days(ALICE, seed=seed, busy=[0], trips=[0, 1, 2], trip_shift=5,
                           until=NOW.replace(hour=22, minute=30))
        for observations in (busy, trip):
            obs, before = last(observations)
            assert not named(judge(obs, before), "baseline.volume")
            assert not named(judge(obs, before), "baseline.cadence")


def test_an_institution_in_parallel_is_seen_at_institution_level(
        history: list[Observation]) -> None:
    """Three colleagues each take a modest export; together the institution is far above."""
    people = [Researcher(person_id=f"per_{n}", token_id=f"tok_{n}", project_id=f"prj_{n}")
              for n in ("bob", "carol", "dan")]
    past = [*history, *(o for i, r in enumerate(people) for o in normal_days(r, seed=10 + i))]
    exports = sorted((o for r in people for o in pages(4, 1_000, NOW - dt.timedelta(
        minutes=20), r=r)), key=lambda o: o.at)
    obs, before = last(exports)
    levels = {s.evidence["level"]: s for s in named(judge(obs, [*past, *before]),
                                                     "baseline.volume")}
    assert levels["institution"].evidence["meters"]["record_rows"]["today"] == 12_000
    assert levels["institution"].severity is Severity.HIGH
    assert levels["person"].severity is Severity.MEDIUM  # 4,000 alone is only unusual


# -- baseline.cadence ------------------------------------------------------------------------

def test_a_scripted_flood_of_requests_breaks_the_cadence(history: list[Observation]) -> None:
    flood = [ALICE.obs(at, "project.read", route="GET /projects/{project_id}")
             for at in spaced(NOW - dt.timedelta(minutes=50), 600, dt.timedelta(seconds=5))]
    obs, before = last(flood)
    (signal,) = named(judge(obs, [*history, *before]), "baseline.cadence")
    assert signal.severity is Severity.MEDIUM and signal.evidence["last_hour"] == 600
    assert signal.evidence["busiest_past_hour"] < 60


def test_cadence_never_suspends_by_default(history: list[Observation]) -> None:
    flood = [ALICE.obs(at, "project.read", route="GET /projects/{project_id}")
             for at in spaced(NOW - dt.timedelta(minutes=50), 1_500, dt.timedelta(seconds=2))]
    obs, before = last(flood)
    (signal,) = named(judge(obs, [*history, *before]), "baseline.cadence")
    assert signal.severity is Severity.HIGH and not signal.suspend  # not in auto_suspend


# -- baseline.hours --------------------------------------------------------------------------

def test_an_off_hours_burst_is_reported(history: list[Observation]) -> None:
    night = NOW.replace(hour=3, minute=0)
    burst = [ALICE.obs(at, query_shape=digest("s", i % 5), query_digest=digest("q", i),
                       participants=50_000)
             for i, at in enumerate(spaced(night, 60, dt.timedelta(seconds=40)))]
    obs, before = last(burst)
    (signal,) = named(judge(obs, [*normal_days(ALICE, until=night), *before]),
                      "baseline.hours")
    assert signal.severity is Severity.MEDIUM and signal.evidence["burst"] == 60
    assert signal.evidence["hour"] == 3 and signal.evidence["hour_share"] < 0.01
    assert "08:00–18:00" in signal.evidence["usual_hours"]


def test_a_conference_in_another_time_zone_is_not_an_off_hours_burst() -> None:
    evening = NOW.replace(hour=22, minute=30)
    trip = normal_days(ALICE, busy=[0], trips=[0, 1, 2], trip_shift=5, until=evening)
    late = [o for o in trip if o.at.hour >= 19 and o.at.date() == evening.date()]
    assert late, "the trip puts work in hours the person rarely used"
    for obs in late:
        assert not named(judge(obs, [o for o in trip if o.at < obs.at]), "baseline.hours")


@pytest.mark.slow  # days of a script's requests, judged at every fourth: about ten seconds
def test_a_script_keeps_its_own_pace_when_its_owner_travels() -> None:
    bot = Researcher(person_id="per_bot", token_id="tok_bot", per_day=400)
    evening = NOW.replace(hour=22, minute=30)
    judged = 0
    for seed in range(1, 9):
        trip = normal_days(bot, seed=seed, trips=[0], trip_shift=5, until=evening)
        today = [o for o in trip if o.at.date() == evening.date()]
        if not 0.7 * bot.per_day <= len(today) <= 1.3 * bot.per_day:
            continue  # an ordinary day's pace, not a busy one
        frame = frame_of(trip)
        busiest = 0
        for i, obs in enumerate(trip):
            if obs.at.date() == evening.date() and obs.at.hour >= 19:
                busiest = max(busiest, sum(obs.at - dt.timedelta(hours=1) < o.at <= obs.at
                                           for o in trip[max(i - 200, 0):i + 1]))
                if i % 4 == 0:  # every fourth request: the burst builds over many
                    assert not named(judge(obs, frame.slice(0, i)), "baseline.hours")
        assert busiest >= 30, "more than a burst's worth, at the script's own pace"
        judged += 1
        if judged == 2:
            break
    assert judged == 2


def test_a_usual_hour_is_never_off_hours(history: list[Observation]) -> None:
    burst = [ALICE.obs(at) for at in spaced(NOW - dt.timedelta(minutes=30), 80,
                                            dt.timedelta(seconds=20))]
    obs, before = last(burst)
    assert not named(judge(obs, [*history, *before]), "baseline.hours")


# -- coverage.allowance and coverage.sweep ----------------------------------------------------

def export(at: dt.datetime = NOW, rows: int = 500, r: Researcher = ALICE) -> Observation:
    return r.obs(at, "data.export", route=EXPORT, record_rows=rows, participants=rows)


@pytest.mark.parametrize(("exposed", "severity"), [
    (6_000, Severity.LOW), (11_000, Severity.MEDIUM), (17_000, Severity.HIGH)])
def test_coverage_warns_early_through_the_allowance(exposed: int, severity: Severity) -> None:
    (signal,) = named(judge(export(), exposed_30d=exposed, allowance=20_000),
                      "coverage.allowance")
    assert signal.severity is severity and not signal.suspend
    assert signal.evidence["allowance_30d"] == 20_000
    assert f"{exposed:,}" in signal.reasons[0]


def test_coverage_of_a_large_share_of_the_cohort_is_high_whatever_the_allowance() -> None:
    (signal,) = named(judge(export(), exposed_30d=60_000, allowance=400_000,
                            cohort_size=500_000), "coverage.allowance")
    assert signal.severity is Severity.HIGH and signal.evidence["cohort_share"] == 0.12
    assert signal.evidence["share"] == 0.15


def test_coverage_uses_the_default_allowance_when_none_is_given() -> None:
    (signal,) = named(judge(export(), exposed_30d=17_000), "coverage.allowance")
    assert signal.evidence["allowance_30d"] == DetectorPolicy().coverage.default_allowance


def test_coverage_is_quiet_below_a_quarter_and_on_requests_that_export_nothing() -> None:
    assert not named(judge(export(), exposed_30d=4_000, allowance=20_000),
                     "coverage.allowance")
    analysis = ALICE.obs(NOW, participants=300_000)
    assert not named(judge(analysis, exposed_30d=17_000, allowance=20_000),
                     "coverage.allowance")


@pytest.mark.parametrize(("per_day", "days"), [(1_000, 4), (5_000, 2)])
def test_a_slow_drip_through_the_cohort_is_a_sweep_and_suspends(per_day: int,
                                                                 days: int) -> None:
    drip = [export(NOW - dt.timedelta(days=d), rows=per_day) for d in range(days - 1, -1, -1)]
    obs, before = last(drip)
    assert not named(judge(before[-1], before[:-1], exposed_30d=per_day * (days - 1)),
                     "coverage.sweep"), "a day earlier it was not yet a sweep"
    (signal,) = named(judge(obs, before, exposed_30d=per_day * days), "coverage.sweep")
    assert signal.severity is Severity.HIGH and signal.suspend
    assert signal.evidence["export_days"] == days and signal.evidence["novelty"] == 1.0


def test_re_exports_of_one_study_population_are_not_a_sweep() -> None:
    again = [export(NOW - dt.timedelta(days=d), rows=4_000) for d in (9, 6, 3, 0)]
    obs, before = last(again)
    assert not named(judge(obs, before, exposed_30d=4_500), "coverage.sweep")
    one_day = [export(NOW - dt.timedelta(minutes=m), rows=3_000) for m in (20, 10, 0)]
    obs, before = last(one_day)
    assert not named(judge(obs, before, exposed_30d=9_000), "coverage.sweep")


def test_a_bulk_export_taken_in_quick_pages_is_a_rush_and_suspends() -> None:
    """Pages of an eighth of the allowance every 15 s: the fourth reaches half of it."""
    pages = [export(NOW - dt.timedelta(seconds=15 * (3 - i)), rows=2_500) for i in range(4)]
    obs, before = last(pages)
    assert not named(judge(before[-1], before[:-1], exposed_30d=7_500), "coverage.sweep")
    (signal,) = named(judge(obs, before, exposed_30d=10_000), "coverage.sweep")
    assert signal.severity is Severity.HIGH and signal.suspend
    assert signal.evidence["exports_in_window"] == 4 and signal.evidence["novelty"] == 1.0


@pytest.mark.parametrize(("minutes_apart", "rows", "exposed"), [
    (30, 2_500, 10_000),  # the same pages over an hour and a half: not one hour's rush
    (5, 1_000, 4_000),  # four quick small exports: a fifth of the allowance
    (5, 2_500, 4_000),  # four quick pages of the same people (novelty 40 %)
])
def test_what_is_not_a_rush(minutes_apart: int, rows: int, exposed: int) -> None:
    pages = [export(NOW - dt.timedelta(minutes=minutes_apart * (3 - i)), rows=rows)
             for i in range(4)]
    obs, before = last(pages)
    assert not named(judge(obs, before, exposed_30d=exposed), "coverage.sweep")


def test_occasional_extracts_of_different_groups_are_not_a_sweep() -> None:
    """Three extracts in a month, each of a different small group: a study's work."""
    now_and_then = [export(NOW - dt.timedelta(days=d), rows=2_500) for d in (20, 9, 0)]
    obs, before = last(now_and_then)
    assert not named(judge(obs, before, exposed_30d=7_500), "coverage.sweep")


def test_a_finished_declared_job_is_not_mistaken_for_a_sweep() -> None:
    start = NOW - dt.timedelta(days=6)
    job = DeclaredWindow("job_1", start, start + dt.timedelta(days=3))
    pages = [export(start + dt.timedelta(hours=1, minutes=20 * i), rows=10_000)
             for i in range(3)]
    obs, before = last([*pages, export(NOW, rows=1_500)])
    assert not named(judge(obs, before, exposed_30d=31_500, declared=(job,)),
                     "coverage.sweep")
    assert not named(judge(obs, before, exposed_30d=31_500, declared=(job,)),
                     "coverage.allowance")  # 1,500 outside the job: under a quarter
    (unexplained,) = named(judge(obs, before, exposed_30d=31_500), "coverage.sweep")
    assert unexplained.suspend, "without the job on record the same rows are a sweep"


# -- queries.rewording -----------------------------------------------------------------------

def reworded(count: int, start: dt.datetime, shape: str = "probe") -> list[Observation]:
    return [ALICE.obs(at, query_shape=digest(shape), query_digest=digest(shape, i),
                      participants=20_000)
            for i, at in enumerate(spaced(start, count, dt.timedelta(seconds=15)))]


@pytest.mark.parametrize(("count", "severity", "suspend"), [
    (40, Severity.MEDIUM, False), (150, Severity.HIGH, True)])
def test_a_flood_of_rewordings_is_caught(history: list[Observation], count: int,
                                         severity: Severity, suspend: bool) -> None:
    obs, before = last(reworded(count, NOW - dt.timedelta(minutes=45)))
    (signal,) = named(judge(obs, [*history, *before]), "queries.rewording")
    assert signal.severity is severity and signal.suspend is suspend
    assert signal.evidence["distinct_queries"] == count
    assert signal.evidence["shape"] == digest("probe")


def test_a_researcher_trying_a_few_cut_points_is_not_a_flood(
        history: list[Observation]) -> None:
    obs, before = last(reworded(20, NOW - dt.timedelta(minutes=30)))
    assert not named(judge(obs, [*history, *before]), "queries.rewording")


def test_someone_who_always_sweeps_parameters_is_judged_against_their_habit(
        history: list[Observation]) -> None:
    habit = [o for d in (8, 6, 2) for o in reworded(60, NOW - dt.timedelta(days=d), "sweep")]
    obs, before = last(reworded(70, NOW - dt.timedelta(minutes=40), "sweep"))
    assert not named(judge(obs, [*history, *habit, *before]), "queries.rewording")
    obs, before = last(reworded(70, NOW - dt.timedelta(minutes=40)))
    assert not named(judge(obs, [*history, *habit, *before]), "queries.rewording")


# -- queries.reconstruction ------------------------------------------------------------------

def narrow(count: int, start: dt.datetime, width: int = 80) -> list[Observation]:
    return [ALICE.obs(at, query_shape=digest("n", i % 40), query_digest=digest("narrow", i),
                      participants=width + i % 50)
            for i, at in enumerate(spaced(start, count, dt.timedelta(seconds=6)))]


def test_many_narrow_analyses_are_a_reconstruction_attempt(
        history: list[Observation]) -> None:
    obs, before = last(narrow(500, NOW - dt.timedelta(minutes=55)))
    (signal,) = named(judge(obs, [*history, *before]), "queries.reconstruction")
    assert signal.severity is Severity.HIGH and signal.suspend
    assert signal.evidence["analyses_today"] >= 500
    assert signal.evidence["median_participants"] < 200


def test_many_analyses_with_near_threshold_cells_are_narrow(
        history: list[Observation]) -> None:
    cells = [replace(o, participants=40_000, near_threshold=2)
             for o in narrow(500, NOW - dt.timedelta(minutes=55))]
    obs, before = last(cells)
    (signal,) = named(judge(obs, [*history, *before]), "queries.reconstruction")
    assert signal.suspend and signal.evidence["narrow"]


def test_many_broad_analyses_alert_without_suspending(history: list[Observation]) -> None:
    broad = [replace(o, participants=150_000) for o in narrow(500, NOW - dt.timedelta(
        minutes=55))]
    obs, before = last(broad)
    (signal,) = named(judge(obs, [*history, *before]), "queries.reconstruction")
    assert signal.severity is Severity.HIGH and not signal.suspend
    assert not signal.evidence["narrow"]


def test_a_busy_day_of_analyses_is_not_a_reconstruction() -> None:
    for seed in (1, 2, 3):
        busy = normal_days(ALICE, seed=seed, busy=[0])
        for obs in busy[-30:]:
            assert not named(judge(obs, [o for o in busy if o.at < obs.at]),
                             "queries.reconstruction")


# -- queries.differencing --------------------------------------------------------------------

@pytest.mark.parametrize(("meter", "attempts", "severity", "suspend"), [
    # against what was released: one an accident, two unusual, three an attempt
    ("differencing", 1, None, False), ("differencing", 2, Severity.MEDIUM, False),
    ("differencing", 3, Severity.HIGH, True),
    # between an output's own cells (a count beside a mean a few lack, stepped through
    # bands): nothing released to subtract from, so many only alert and never suspend
    ("differencing_within", 9, None, False), ("differencing_within", 10, Severity.MEDIUM, False),
    ("differencing_within", 40, Severity.MEDIUM, False)])
def test_repeated_differencing_is_an_attempt(history: list[Observation], meter: str,
                                             attempts: int, severity: Severity | None,
                                             suspend: bool) -> None:
    tries = [ALICE.obs(at, participants=30_000, **{meter: 2})
             for at in spaced(NOW - dt.timedelta(hours=3), attempts, dt.timedelta(minutes=3))]
    obs, before = last(tries)
    signals = named(judge(obs, [*history, *before]), "queries.differencing")
    if severity is None:
        assert not signals
    else:
        (signal,) = signals
        assert signal.severity is severity and signal.suspend is suspend
        assert signal.evidence["requests"] == attempts


def test_within_and_against_released_are_counted_apart(history: list[Observation]) -> None:
    """Many blocks between an output's own cells do not make one against the ledger an
    attempt: two of those are needed for an alert and three for a suspension."""
    sitting = [ALICE.obs(at, differencing_within=1)
               for at in spaced(NOW - dt.timedelta(hours=3), 12, dt.timedelta(minutes=3))]
    once = ALICE.obs(NOW, differencing=1, differencing_within=1)
    signals = named(judge(once, [*history, *sitting]), "queries.differencing")
    assert [s.suspend for s in signals] == [False]
    assert signals[0].dedup.startswith("within|")


# -- queries.near-threshold ------------------------------------------------------------------

def small_groups(count: int, near: int, start: dt.datetime, r: Researcher = ALICE,
                 width: int = 30) -> list[Observation]:
    """Analyses of small groups, each showing ``near`` cells just over the threshold."""
    return [r.obs(at, participants=width, near_threshold=near, query_shape=digest("g", i % 7),
                  query_digest=digest("group", i))
            for i, at in enumerate(spaced(start, count, dt.timedelta(minutes=2)))]


def test_a_tracker_of_small_groups_is_caught(history: list[Observation]) -> None:
    obs, before = last(small_groups(25, 2, NOW - dt.timedelta(hours=1)))
    (signal,) = named(judge(obs, [*history, *before]), "queries.near-threshold")
    assert signal.severity is Severity.HIGH and signal.suspend
    assert signal.evidence["near_threshold"] >= 50  # the day's ordinary tables add a few
    assert signal.evidence["share"] >= 0.5 > 0.1 > signal.evidence["past_share"]
    assert signal.evidence["median_participants"] == 30


def test_a_short_tracker_alerts_without_suspending(history: list[Observation]) -> None:
    obs, before = last(small_groups(12, 2, NOW - dt.timedelta(hours=1)))
    (signal,) = named(judge(obs, [*history, *before]), "queries.near-threshold")
    assert signal.severity is Severity.MEDIUM and not signal.suspend


def test_a_newcomer_tracker_is_caught_on_the_share_alone() -> None:
    obs, before = last(small_groups(25, 2, NOW - dt.timedelta(hours=1)))
    (signal,) = named(judge(obs, before), "queries.near-threshold")
    assert signal.severity is Severity.HIGH and signal.evidence["share"] == 1.0


def test_ordinary_tables_with_a_sparse_corner_are_not_a_tracker(
        history: list[Observation]) -> None:
    for seed in (1, 2, 3):
        busy = normal_days(ALICE, seed=seed, busy=[0])
        for obs in (o for o in busy[-40:] if o.near_threshold):
            assert not named(judge(obs, [o for o in busy if o.at < obs.at]),
                             "queries.near-threshold")


def test_a_rare_disease_researcher_is_judged_against_their_own_share() -> None:
    rare = Researcher(person_id="per_rare", token_id="tok_rare")
    past = [o for d in range(3, 25) for o in small_groups(6, 2, NOW - dt.timedelta(days=d),
                                                          r=rare)]
    obs, before = last(small_groups(15, 2, NOW - dt.timedelta(hours=1), r=rare))
    assert not named(judge(obs, [*past, *before]), "queries.near-threshold")


def test_an_attack_from_a_new_network_is_not_confused_with_work(
        history: list[Observation]) -> None:
    """Different detectors, one request: each says what it saw (a sanity check that signals
    from one request keep their own evidence)."""
    obs, before = last(pages(30, 1_000, NOW - dt.timedelta(minutes=10), source=ELSEWHERE))
    signals = judge(obs, [*history, *before])
    assert {s.detector for s in signals} >= {"baseline.volume", "network.new"}
    assert all(s.evidence for s in signals)
    assert OFFICE[0] not in " ".join(r for s in signals for r in s.reasons)
