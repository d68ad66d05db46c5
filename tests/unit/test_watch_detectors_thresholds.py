"""Each threshold pinned: just under it a detector is quiet, just over it it speaks.

The other detector tests judge realistic attacks and normal work, far from the thresholds;
these build small histories in which one threshold is the one that binds, so that halving or
doubling any of them fails a test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.watch.history import Observation
from strongroom.watch.signals import Signal
from strongroom.watch.states import Severity
from tests.unit.watch_patterns import (
    ELSEWHERE,
    HOTEL,
    NOW,
    OFFICE,
    VPN,
    Researcher,
    digest,
    judge,
    last,
    named,
    spaced,
)

ALICE = Researcher()
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def level(signals: list[Signal], detector: str) -> Severity | None:
    """The severity of the detector's (person-level) signal, None when it is quiet."""
    found = [s for s in named(signals, detector) if s.evidence.get("level", "person")
             == "person"]
    return found[0].severity if found else None


# -- baseline.volume -------------------------------------------------------------------------

STEADY = [1_000 + 10 * (i % 5) for i in range(20)]  # median 1,020: the ratio binds
NOISY = [200] * 9 + [1_000] * 2 + [1_800] * 9  # median 1,000, spread 1,186: k binds


def volume(past: list[int], today: int, meter: str = "cells") -> Signal | None:
    rows = [ALICE.obs(NOW - d * DAY, "output.download", **{meter: v})  # type: ignore[arg-type]
            for d, v in enumerate(past, start=1)]
    return volume_with(rows, today, meter)


def volume_with(past: list[Observation], today: int, meter: str = "cells") -> Signal | None:
    """The person-level volume signal on a download of ``today`` (cells or another meter)."""
    obs = ALICE.obs(NOW, "output.download", **{meter: today})  # type: ignore[arg-type]
    found = [s for s in named(judge(obs, past), "baseline.volume")
             if s.evidence["level"] == "person"]
    return found[0] if found else None


@pytest.mark.parametrize(("past", "today", "expected"), [
    (STEADY, 7_900, None), (STEADY, 8_400, Severity.MEDIUM),  # 8 × the median
    (STEADY, 15_000, Severity.MEDIUM), (STEADY, 15_600, Severity.HIGH),  # 15 ×
    (NOISY, 12_500, None), (NOISY, 13_200, Severity.MEDIUM),  # median + 10 spreads
    (NOISY, 30_000, Severity.MEDIUM), (NOISY, 31_500, Severity.HIGH),  # + 25 spreads
])
def test_volume_bars(past: list[int], today: int, expected: Severity | None) -> None:
    signal = volume(past, today)
    assert (signal.severity if signal else None) is expected
    if expected is Severity.HIGH:
        assert signal is not None and signal.suspend


@pytest.mark.parametrize(("today", "expected"), [
    (950, None), (1_050, Severity.MEDIUM), (9_500, Severity.MEDIUM), (10_500, Severity.HIGH)])
def test_volume_floors_over_a_median_of_zero(today: int, expected: Severity | None) -> None:
    signal = volume([0] * 20, today, "record_rows")
    assert (signal.severity if signal else None) is expected


@pytest.mark.parametrize(("days", "judged"), [(6, False), (7, True)])
def test_volume_needs_seven_days(days: int, judged: bool) -> None:
    assert (volume([1_000] * days, 20_000) is not None) is judged


# -- baseline.cadence ------------------------------------------------------------------------

def cadence(past_hours: list[int], last_hour: int) -> Severity | None:
    rows = []
    for i, count in enumerate(past_hours):  # two past hours a day, at 10:00 and 14:00
        start = NOW.replace(hour=10 + 4 * (i % 2), minute=0) - (1 + i // 2) * DAY
        rows += [ALICE.obs(at, "project.read") for at in
                 spaced(start, count, HOUR / max(count, 1))]
    flood = [ALICE.obs(at, "project.read")
             for at in spaced(NOW - 50 * dt.timedelta(minutes=1), last_hour,
                              50 * dt.timedelta(minutes=1) / last_hour)]
    obs, before = last(flood)
    return level(judge(obs, [*rows, *before]), "baseline.cadence")


@pytest.mark.parametrize(("past", "count", "expected"), [
    ([5] * 30, 115, None), ([5] * 30, 125, Severity.MEDIUM),  # the floor of 120
    ([20] * 29 + [100], 145, None), ([20] * 29 + [100], 155, Severity.MEDIUM),  # 1.5 × 100
    ([10] * 15 + [50] * 15, 260, None), ([10] * 15 + [50] * 15, 275, Severity.MEDIUM),  # k
    ([60] * 30, 235, None), ([60] * 30, 245, Severity.MEDIUM),  # 4 × the median
])
def test_cadence_bars(past: list[int], count: int, expected: Severity | None) -> None:
    assert cadence(past, count) is expected


@pytest.mark.parametrize(("past", "count", "expected"), [
    ([5] * 30, 990, Severity.MEDIUM), ([5] * 30, 1_010, Severity.HIGH),  # the floor of 1,000
    ([300] * 30, 2_950, Severity.MEDIUM), ([300] * 30, 3_050, Severity.HIGH),  # 10 × 300
    ([200, 400] * 15, 3_950, Severity.MEDIUM), ([200, 400] * 15, 4_060, Severity.HIGH),
])  # the last: median 300 + 25 spreads of 148
def test_cadence_extreme(past: list[int], count: int, expected: Severity) -> None:
    assert cadence(past, count) is expected


@pytest.mark.parametrize(("hours", "judged"), [(15, False), (20, True)])
def test_cadence_needs_twenty_past_hours(hours: int, judged: bool) -> None:
    assert (cadence([5] * hours, 130) is not None) is judged


# -- baseline.hours --------------------------------------------------------------------------

def hours(days: int, per_day: int, at_three: int, burst: int) -> Severity | None:
    """A person working 08:00–18:00 (``per_day`` requests a day for ``days`` days, of which
    ``at_three`` in all fell at 03:00), then ``burst`` requests at 03:00 today."""
    rows = []
    for d in range(1, days + 1):
        start = NOW.replace(hour=8, minute=0) - d * DAY
        rows += [ALICE.obs(at, "project.read")
                 for at in spaced(start, per_day, 10 * HOUR / per_day)]
    rows += [ALICE.obs(NOW.replace(hour=3) - d * DAY, "project.read")
             for d in range(1, at_three + 1)]
    night = NOW.replace(hour=3, minute=0)
    obs, before = last([ALICE.obs(at, "project.read")
                        for at in spaced(night, burst, 50 * dt.timedelta(seconds=60) / burst)])
    return level(judge(obs, sorted([*rows, *before], key=lambda o: o.at)), "baseline.hours")


@pytest.mark.parametrize(("days", "per_day", "at_three", "burst", "expected"), [
    (15, 20, 2, 28, None), (15, 20, 2, 32, Severity.MEDIUM),  # 30 in a rare hour
    (15, 20, 4, 32, None),  # 4 of 304 (1.3 %) is not rare; 2 (0.7 %) is
    (15, 200, 20, 45, None), (15, 200, 20, 55, Severity.MEDIUM),  # 2.5 × 20 an hour
    (12, 4, 0, 40, None), (12, 5, 0, 40, Severity.MEDIUM),  # 48 or 60 past requests
    (9, 20, 1, 40, None), (10, 20, 1, 40, Severity.MEDIUM),  # 10 past days
    (15, 20, 2, 290, Severity.MEDIUM), (15, 20, 2, 310, Severity.HIGH),
])
def test_hours_bars(days: int, per_day: int, at_three: int, burst: int,
                    expected: Severity | None) -> None:
    assert hours(days, per_day, at_three, burst) is expected


# -- coverage ----------------------------------------------------------------------------------

def export(at: dt.datetime = NOW, rows: int = 500) -> Observation:
    return ALICE.obs(at, "data.export", record_rows=rows, participants=rows)


@pytest.mark.parametrize(("exposed", "expected"), [
    (38_000, None), (42_000, Severity.HIGH)])  # 10 % of the cohort, under 25 % of 400,000
def test_coverage_of_the_cohort(exposed: int, expected: Severity | None) -> None:
    signals = judge(export(), exposed_30d=exposed, allowance=400_000, cohort_size=400_000)
    assert level(signals, "coverage.allowance") is expected


@pytest.mark.parametrize(("exposed", "expected"), [
    (4_900, None), (5_100, Severity.LOW), (9_900, Severity.LOW), (10_100, Severity.MEDIUM),
    (15_900, Severity.MEDIUM), (16_100, Severity.HIGH)])
def test_coverage_levels(exposed: int, expected: Severity | None) -> None:
    signals = judge(export(), exposed_30d=exposed, allowance=20_000, cohort_size=10_000_000)
    assert level(signals, "coverage.allowance") is expected


@pytest.mark.parametrize(("days", "per_day", "exposed", "sweep"), [
    (4, 1_000, 3_900, False), (4, 1_100, 4_400, True),  # four days and 20 % of 20,000
    (3, 2_000, 6_000, False),  # three days are not four, and 30 % is not 40 %
    (2, 3_900, 7_800, False), (2, 4_100, 8_200, True),  # two days and 40 %
    (4, 1_500, 4_500, False),  # 4,500 of 6,000 reached (75 %) is not new enough
    (4, 1_500, 5_100, True),  # 85 %
])
def test_sweep_rules(days: int, per_day: int, exposed: int, sweep: bool) -> None:
    drip = [export(NOW - d * DAY, per_day) for d in range(days - 1, -1, -1)]
    obs, before = last(drip)
    signals = named(judge(obs, before, exposed_30d=exposed, allowance=20_000),
                    "coverage.sweep")
    assert bool(signals) is sweep


# -- queries.rewording -------------------------------------------------------------------------

def rewording(habit: int, count: int) -> Severity | None:
    """``habit`` distinct queries of one shape in a past hour, then ``count`` now."""
    def variants(n: int, start: dt.datetime, shape: str) -> list[Observation]:
        return [ALICE.obs(at, query_shape=digest(shape), query_digest=digest(shape, start, i))
                for i, at in enumerate(spaced(start, n, 50 * dt.timedelta(minutes=1) / n))]
    past = variants(habit, (NOW - 3 * DAY).replace(minute=0), "habit") if habit else []
    obs, before = last(variants(count, NOW - 50 * dt.timedelta(minutes=1), "now"))
    return level(judge(obs, [*past, *before]), "queries.rewording")


@pytest.mark.parametrize(("habit", "count", "expected"), [
    (0, 24, None), (0, 26, Severity.MEDIUM), (0, 59, Severity.MEDIUM), (0, 61, Severity.HIGH),
    (20, 38, None), (20, 42, Severity.MEDIUM),  # 2 × the busiest past hour
    (20, 78, Severity.MEDIUM), (20, 82, Severity.HIGH),  # 4 ×
])
def test_rewording_bars(habit: int, count: int, expected: Severity | None) -> None:
    assert rewording(habit, count) is expected


# -- queries.reconstruction --------------------------------------------------------------------

def analyses(past: list[int], today: int, width: int = 100, usual: int = 5_000,
             near_share: float = 0.0) -> Signal | None:
    rows = [ALICE.obs(NOW - d * DAY - i * dt.timedelta(seconds=30), participants=usual)
            for d, count in enumerate(past, start=1) for i in range(count)]
    flagged = round(near_share * today)
    now = [ALICE.obs(at, participants=width, near_threshold=1 if i < flagged else 0)
           for i, at in enumerate(spaced(NOW - 3 * HOUR, today, 3 * HOUR / today))]
    obs, before = last(now)
    found = named(judge(obs, sorted([*rows, *before], key=lambda o: o.at)),
                  "queries.reconstruction")
    return found[0] if found else None


@pytest.mark.parametrize(("past", "today", "expected"), [
    ([3] * 10, 58, None), ([3] * 10, 62, Severity.MEDIUM),  # the floor of 60
    ([3] * 10, 148, Severity.MEDIUM), ([3] * 10, 152, Severity.HIGH),  # 150
    ([15] * 10, 88, None), ([15] * 10, 92, Severity.MEDIUM),  # 6 × the median
    ([15] * 10, 178, Severity.MEDIUM), ([15] * 10, 182, Severity.HIGH),  # 12 ×
])
def test_reconstruction_bars(past: list[int], today: int, expected: Severity | None) -> None:
    signal = analyses(past, today)
    assert (signal.severity if signal else None) is expected


@pytest.mark.parametrize(("today", "expected"), [
    (320, None), (335, Severity.MEDIUM), (610, Severity.MEDIUM), (640, Severity.HIGH)])
def test_reconstruction_spread_binds_for_a_variable_person(today: int,
                                                           expected: Severity | None) -> None:
    """Median 30, spread 29.7: unusual above 30 + 10 × 29.7 = 327 (6 × 30 is only 180),
    extreme above 30 + 20 × 29.7 = 623 (12 × 30 is 360)."""
    signal = analyses([10, 50] * 5, today, width=50_000, usual=50_000)
    assert (signal.severity if signal else None) is expected


@pytest.mark.parametrize(("width", "usual", "near_share", "narrow"), [
    (950, 5_000, 0.0, True), (1_100, 5_000, 0.0, False),  # at most 1,000 participants
    (9_000, 100_000, 0.0, True), (11_000, 100_000, 0.0, False),  # or a tenth of the usual
    (50_000, 50_000, 0.28, False), (50_000, 50_000, 0.32, True),  # or 30 % near-threshold
])
def test_reconstruction_narrowness_decides_suspension(width: int, usual: int,
                                                      near_share: float, narrow: bool) -> None:
    signal = analyses([3] * 10, 160, width=width, usual=usual, near_share=near_share)
    assert signal is not None and signal.severity is Severity.HIGH
    assert signal.evidence["narrow"] is narrow and signal.suspend is narrow


@pytest.mark.parametrize(("days", "expected"), [(4, None), (5, Severity.MEDIUM)])
def test_reconstruction_needs_five_days_unless_narrow_and_extreme(
        days: int, expected: Severity | None) -> None:
    signal = analyses([3] * days, 100)
    assert (signal.severity if signal else None) is expected
    early = analyses([3] * 4, 160)
    assert early is not None and early.severity is Severity.HIGH and not early.suspend


# -- queries.near-threshold --------------------------------------------------------------------

def near(count: int, showing: int, cells_each: int, past: int = 0,
         past_showing: int = 0) -> Severity | None:
    """``count`` analyses in the last hours, ``showing`` of them (the last ones) with
    ``cells_each`` near-threshold cells; two days before, ``past`` analyses of which
    ``past_showing`` had one."""
    old = [ALICE.obs(NOW - 2 * DAY - i * dt.timedelta(minutes=5), participants=5_000,
                     near_threshold=1 if i < past_showing else 0) for i in range(past)]
    new = [ALICE.obs(at, participants=40, near_threshold=cells_each if i >= count - showing
                     else 0)
           for i, at in enumerate(spaced(NOW - 5 * HOUR, count, 5 * HOUR / count))]
    obs, before = last(new)
    return level(judge(obs, sorted([*old, *before], key=lambda o: o.at)),
                 "queries.near-threshold")


@pytest.mark.parametrize(("count", "showing", "each", "past", "past_showing", "expected"), [
    (9, 9, 2, 0, 0, None), (11, 11, 2, 0, 0, Severity.MEDIUM),  # 20 near-threshold cells
    (19, 19, 2, 0, 0, Severity.MEDIUM), (21, 21, 2, 0, 0, Severity.HIGH),  # 40 cells
    (40, 11, 2, 0, 0, None), (40, 13, 2, 0, 0, Severity.MEDIUM),  # in 30 % of analyses
    (100, 48, 2, 0, 0, Severity.MEDIUM), (100, 52, 2, 0, 0, Severity.HIGH),  # 50 % extreme
    (50, 21, 3, 100, 15, None), (50, 24, 3, 100, 15, Severity.MEDIUM),  # 3 × a past 15 %
    (50, 19, 3, 100, 4, Severity.MEDIUM), (50, 21, 3, 100, 4, Severity.HIGH),  # 10 × 4 %
    (50, 23, 3, 45, 2, Severity.MEDIUM), (50, 23, 3, 55, 2, Severity.HIGH),  # 50+ past
    # a past share rests on at least 50 analyses: one sparse table among four is 1 in 50,
    # not a quarter that would need 75 % today (the watch scenario's tracker, winsorised)
    (12, 7, 14, 4, 1, Severity.HIGH), (12, 7, 14, 50, 13, None),
])
def test_near_threshold_bars(count: int, showing: int, each: int, past: int,
                             past_showing: int, expected: Severity | None) -> None:
    assert near(count, showing, each, past=past, past_showing=past_showing) is expected


# -- networks ------------------------------------------------------------------------------------

def worked(days: int, source: str = OFFICE[0]) -> list[Observation]:
    return [ALICE.obs(NOW - d * DAY - HOUR, source=source) for d in range(1, days + 1)]


@pytest.mark.parametrize(("days", "new"), [(4, False), (5, True)])
def test_a_new_network_needs_five_past_days(days: int, new: bool) -> None:
    assert bool(named(judge(ALICE.obs(NOW, source=HOTEL), worked(days)), "network.new")) is new


@pytest.mark.parametrize(("first_seen", "new"), [(20 * HOUR, True), (30 * HOUR, False)])
def test_a_network_stays_new_for_a_day(first_seen: dt.timedelta, new: bool) -> None:
    before = [*worked(10), ALICE.obs(NOW - first_seen, source=HOTEL)]
    before.sort(key=lambda o: o.at)
    assert bool(named(judge(ALICE.obs(NOW, source=HOTEL), before), "network.new")) is new


@pytest.mark.parametrize(("minutes", "travel"), [(9, True), (11, False)])
def test_travel_is_two_networks_within_ten_minutes(minutes: int, travel: bool) -> None:
    office = ALICE.obs(NOW - dt.timedelta(minutes=minutes), source=OFFICE[1])
    signals = judge(ALICE.obs(NOW, source=ELSEWHERE), [*worked(10), office])
    assert bool(named(signals, "network.travel")) is travel


@pytest.mark.parametrize(("vpn_days", "travel"), [(1, True), (2, False)])
def test_a_network_used_on_two_past_days_is_usual(vpn_days: int, travel: bool) -> None:
    past = sorted([*worked(10), *(ALICE.obs(NOW - d * DAY - HOUR, source=VPN)
                                  for d in range(2, 2 + vpn_days))], key=lambda o: o.at)
    office = ALICE.obs(NOW - dt.timedelta(minutes=3), source=OFFICE[0])
    signals = judge(ALICE.obs(NOW, source=VPN), [*past, office])
    assert bool(named(signals, "network.travel")) is travel


@pytest.mark.parametrize(("pattern", "replay"), [
    ("ABABAB", True),  # three from each, five switches
    ("AABABAA", False),  # two from B
    ("AAABBBA", False),  # two switches
    ("AABBAB", True),  # three switches
])
def test_token_replay_needs_three_from_each_and_three_switches(pattern: str,
                                                               replay: bool) -> None:
    sources = {"A": OFFICE[0], "B": ELSEWHERE}
    uses = [ALICE.obs(at, token_id=ALICE.token_id, via="token", source=sources[c])
            for at, c in zip(spaced(NOW - dt.timedelta(minutes=6), len(pattern),
                                    dt.timedelta(minutes=1)), pattern, strict=True)]
    obs, before = last(uses)
    assert bool(named(judge(obs, before), "network.token-replay")) is replay


# -- accounts ------------------------------------------------------------------------------------

def created(count: int, every: dt.timedelta) -> Severity | None:
    made = [Observation(at=at, action="person.created", route="", status=201,
                        person_id=f"per_new{i}", institution_id="ins_uni")
            for i, at in enumerate(spaced(NOW - (count - 1) * every, count, every))]
    obs, before = last(made)
    found = named(judge(obs, before), "accounts.new-accounts")
    return found[0].severity if found else None


@pytest.mark.parametrize(("count", "every", "expected"), [
    (4, dt.timedelta(minutes=10), None), (5, dt.timedelta(minutes=10), Severity.MEDIUM),
    (9, 2 * HOUR, None), (10, 2 * HOUR, Severity.MEDIUM),  # 10 in a day, 1 an hour
    (9, dt.timedelta(minutes=5), Severity.MEDIUM), (10, dt.timedelta(minutes=5),
                                                     Severity.HIGH),
    (19, dt.timedelta(minutes=70), Severity.MEDIUM), (20, dt.timedelta(minutes=70),
                                                       Severity.HIGH),
])
def test_new_accounts_bars(count: int, every: dt.timedelta, expected: Severity | None) -> None:
    assert created(count, every) is expected


def failures(count: int, people: tuple[str | None, ...], action: str = "auth.login.failed"
             ) -> list[Signal]:
    made = [Observation(at=at, action=action, route="wrong password", status=401,
                        person_id=people[i % len(people)], source=ELSEWHERE)
            for i, at in enumerate(spaced(NOW - dt.timedelta(minutes=12), count,
                                          dt.timedelta(minutes=12) / count))]
    obs, before = last(made)
    return named(judge(obs, before), "accounts.auth-failures")


@pytest.mark.parametrize(("count", "people", "expected"), [
    (9, ("per_a", "per_b", "per_c"), None), (10, ("per_a", "per_b", "per_c"), Severity.HIGH),
    (10, ("per_a", "per_b"), Severity.MEDIUM),  # two accounts: not spraying
])
def test_failures_from_one_address(count: int, people: tuple[str, ...],
                                   expected: Severity | None) -> None:
    found = [s for s in failures(count, people) if "source" in s.evidence]
    assert (found[0].severity if found else None) is expected


@pytest.mark.parametrize(("count", "action", "expected"), [
    (4, "auth.login.failed", None), (5, "auth.login.failed", Severity.MEDIUM),
    (2, "auth.mfa.failed", None), (3, "auth.mfa.failed", Severity.HIGH),
])
def test_failures_for_one_person(count: int, action: str, expected: Severity | None) -> None:
    found = [s for s in failures(count, ("per_alice",), action) if "source" not in s.evidence]
    assert (found[0].severity if found else None) is expected


@pytest.mark.parametrize(("uses", "expected"), [(4, Severity.LOW), (5, Severity.MEDIUM)])
def test_an_expired_token_becomes_medium_with_use(uses: int, expected: Severity) -> None:
    refused = [ALICE.obs(at, "auth.token.refused", route="it expired on 2026-03-01 00:00 UTC",
                         status=401, token_id=ALICE.token_id)
               for at in spaced(NOW - 4 * HOUR, uses, HOUR)]
    obs, before = last(refused)
    (signal,) = named(judge(obs, [*worked(10), *before]), "accounts.refused-token")
    assert signal.severity is expected


# -- windows: how far back each detector looks ----------------------------------------------

@pytest.mark.parametrize(("oldest", "expected"), [
    (23 * HOUR, Severity.HIGH), (25 * HOUR, Severity.MEDIUM)])
def test_differencing_counts_a_day(oldest: dt.timedelta, expected: Severity) -> None:
    tries = [ALICE.obs(NOW - oldest, differencing=1),
             *(ALICE.obs(NOW - m * dt.timedelta(minutes=1), differencing=1) for m in (30, 0))]
    obs, before = last(tries)
    assert level(judge(obs, before), "queries.differencing") is expected


@pytest.mark.parametrize(("oldest", "expected"), [(23 * HOUR, Severity.MEDIUM), (25 * HOUR, None)])
def test_near_threshold_counts_a_day(oldest: dt.timedelta, expected: Severity | None) -> None:
    early = [ALICE.obs(NOW - oldest + i * dt.timedelta(minutes=1), participants=40,
                       near_threshold=2) for i in range(2)]
    recent = [ALICE.obs(at, participants=40, near_threshold=2)
              for at in spaced(NOW - HOUR, 9, dt.timedelta(minutes=7.5))]
    obs, before = last([*early, *recent])
    assert level(judge(obs, before), "queries.near-threshold") is expected


@pytest.mark.parametrize(("days_back", "expected"), [(20, None), (40, Severity.MEDIUM)])
def test_near_threshold_past_share_is_thirty_days(days_back: int,
                                                  expected: Severity | None) -> None:
    past = [ALICE.obs(NOW - days_back * DAY - i * dt.timedelta(minutes=5), participants=5_000,
                      near_threshold=1 if i < 15 else 0) for i in range(100)]
    now = [ALICE.obs(at, participants=40, near_threshold=3 if i >= 29 else 0)
           for i, at in enumerate(spaced(NOW - 5 * HOUR, 50, 6 * dt.timedelta(minutes=1)))]
    obs, before = last(now)
    assert level(judge(obs, sorted([*past, *before], key=lambda o: o.at)),
                 "queries.near-threshold") is expected


@pytest.mark.parametrize(("span", "expected"), [
    (dt.timedelta(minutes=55), Severity.MEDIUM), (dt.timedelta(minutes=70), None)])
def test_rewording_counts_an_hour(span: dt.timedelta, expected: Severity | None) -> None:
    flood = [ALICE.obs(at, query_shape=digest("w"), query_digest=digest("w", i))
             for i, at in enumerate(spaced(NOW - span, 28, span / 27))]
    obs, before = last(flood)
    assert level(judge(obs, before), "queries.rewording") is expected


@pytest.mark.parametrize(("habit_days_back", "expected"), [(20, None), (40, Severity.MEDIUM)])
def test_rewording_habit_is_thirty_days(habit_days_back: int,
                                        expected: Severity | None) -> None:
    start = (NOW - habit_days_back * DAY).replace(minute=0)
    habit = [ALICE.obs(at, query_shape=digest("h"), query_digest=digest("h", i))
             for i, at in enumerate(spaced(start, 30, dt.timedelta(minutes=1)))]
    flood = [ALICE.obs(at, query_shape=digest("f"), query_digest=digest("f", i))
             for i, at in enumerate(spaced(NOW - 45 * dt.timedelta(minutes=1), 45,
                                           dt.timedelta(minutes=1)))]
    obs, before = last(flood)
    assert level(judge(obs, [*habit, *before]), "queries.rewording") is expected


@pytest.mark.parametrize(("spacing", "replay"), [
    (dt.timedelta(minutes=1.8), True), (dt.timedelta(minutes=2.2), False)])
def test_token_replay_counts_ten_minutes(spacing: dt.timedelta, replay: bool) -> None:
    sources = [OFFICE[0], ELSEWHERE] * 3
    uses = [ALICE.obs(at, token_id=ALICE.token_id, via="token", source=src)
            for at, src in zip(spaced(NOW - 5 * spacing, 6, spacing), sources, strict=True)]
    obs, before = last(uses)
    assert bool(named(judge(obs, before), "network.token-replay")) is replay


@pytest.mark.parametrize(("span", "expected"), [
    (dt.timedelta(minutes=14), Severity.MEDIUM), (dt.timedelta(minutes=16), None)])
def test_failures_count_a_quarter_of_an_hour(span: dt.timedelta,
                                             expected: Severity | None) -> None:
    made = [Observation(at=at, action="auth.login.failed", route="wrong password", status=401,
                        person_id="per_alice", source=ELSEWHERE)
            for at in spaced(NOW - span, 5, span / 4)]
    obs, before = last(made)
    found = [s for s in named(judge(obs, before), "accounts.auth-failures")
             if "source" not in s.evidence]
    assert (found[0].severity if found else None) is expected


def test_baselines_look_back_as_far_as_their_policy_says() -> None:
    """Volume, hours and reconstruction learn from 60 days, cadence from 30: history only
    older than half of that still counts."""
    old = [ALICE.obs(NOW - d * DAY, "output.download", cells=1_000) for d in range(40, 60)]
    signal = volume_with(old, 8_400)
    assert signal is not None and signal.severity is Severity.MEDIUM
    hourly = [ALICE.obs(NOW - d * DAY - m * dt.timedelta(minutes=1), "project.read")
              for d in range(18, 28) for m in range(0, 120, 24)]  # 5 an hour, two hours a day
    flood = [ALICE.obs(at, "project.read") for at in spaced(NOW - 50 * dt.timedelta(
        minutes=1), 130, dt.timedelta(seconds=23))]
    obs, before = last(flood)
    assert level(judge(obs, [*hourly, *before]), "baseline.cadence") is Severity.MEDIUM
    night = NOW.replace(hour=3, minute=0)
    worked_then = [ALICE.obs(at, "project.read") for d in range(35, 50)
                   for at in spaced(NOW.replace(hour=8, minute=0) - d * DAY, 20, 30 * MINUTE)]
    burst = [ALICE.obs(at, "project.read") for at in spaced(night, 40, MINUTE)]
    obs, before = last(burst)
    assert level(judge(obs, [*worked_then, *before]), "baseline.hours") is Severity.MEDIUM
    analysed = [ALICE.obs(NOW - d * DAY - i * MINUTE, participants=5_000)
                for d in range(35, 45) for i in range(3)]
    today = [ALICE.obs(at, participants=100) for at in spaced(NOW - 3 * HOUR, 100, 108 * SECOND)]
    obs, before = last(today)
    assert level(judge(obs, [*analysed, *before]), "queries.reconstruction") is Severity.MEDIUM


def test_cadence_forgets_hours_older_than_thirty_days() -> None:
    hourly = [ALICE.obs(NOW - d * DAY - m * dt.timedelta(minutes=1), "project.read")
              for d in range(35, 45) for m in range(0, 120, 24)]
    flood = [ALICE.obs(at, "project.read") for at in spaced(NOW - 50 * dt.timedelta(
        minutes=1), 130, dt.timedelta(seconds=23))]
    obs, before = last(flood)
    assert level(judge(obs, [*hourly, *before]), "baseline.cadence") is None
