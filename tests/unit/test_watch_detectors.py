"""The detector registry and the policy run_all applies: every detector runs, a crashing one
becomes a signal, only permitted detectors suspend, declared jobs cap volume, several
detectors together suspend — and a normal workload suspends nobody."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from strongroom.watch import detectors
from strongroom.watch.detectors import CORROBORATED, DETECTORS, FAILED, run_all
from strongroom.watch.detectors.frames import SECURITY_ACTIONS, between, daily
from strongroom.watch.detectors.policy import ALL_DETECTORS, DetectorPolicy
from strongroom.watch.history import DeclaredWindow, History, Observation, frame_of
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import Severity
from tests.unit.watch_patterns import (
    ELSEWHERE,
    NOW,
    Researcher,
    history_for,
    judge,
    last,
    named,
    normal_days,
    spaced,
)

ALICE = Researcher()


@pytest.fixture(scope="module", autouse=True)
def measured_speed() -> Iterator[None]:
    """How long run_all takes after one request of a busy person (200 requests a day,
    60 days): printed, not asserted (run pytest with -s to see it)."""
    busy = Researcher(per_day=200)
    obs, past = last(normal_days(busy, busy=[3], trips=[6, 7, 8], trip_shift=5))
    history = history_for(obs, past)
    run_all(obs, history)
    times = []
    for _ in range(30):
        started = time.perf_counter()
        run_all(obs, history)
        times.append((time.perf_counter() - started) * 1000)
    print(f"\nrun_all on a busy person's 60-day history ({history.person.height:,} rows): "
          f"median {statistics.median(times):.2f} ms, max {max(times):.2f} ms")
    yield


# -- the registry and the policy -------------------------------------------------------------

def test_the_policy_and_the_registry_name_the_same_detectors() -> None:
    policy = DetectorPolicy()
    assert set(ALL_DETECTORS) == set(DETECTORS)
    assert len(ALL_DETECTORS) == len(set(ALL_DETECTORS))
    assert policy.enabled == set(DETECTORS)
    assert policy.auto_suspend <= set(DETECTORS)
    assert policy.declared_job_caps <= set(DETECTORS)
    grouped = [name for _, names in policy.corroboration.groups for name in names]
    assert sorted(grouped) == sorted(DETECTORS), "each detector in exactly one group"


def test_the_default_allowance_is_the_hard_limits_default() -> None:
    from strongroom.watch.policy import PROJECT_DEFAULT

    assert DetectorPolicy().coverage.default_allowance == PROJECT_DEFAULT.record_participants


def test_security_events_are_told_apart_from_requests() -> None:
    assert {"auth.mfa.failed", "auth.token.refused", "person.created"} <= SECURITY_ACTIONS
    assert not {"data.analyse", "data.export", "output.download", "person.read",
                "public", "pause.set"} & SECURITY_ACTIONS


def test_time_windows_are_the_same_on_sorted_and_unsorted_frames() -> None:
    """Windows are binary searches on sorted frames and filters otherwise: same rows."""
    frame = frame_of(normal_days(ALICE, days=10))
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=1)
    start, end = NOW - dt.timedelta(days=3), NOW - dt.timedelta(days=1)
    window = between(frame, start, end)
    assert window.height > 20
    assert window.equals(between(shuffled, start, end).sort("at"))
    assert between(frame, start).equals(between(shuffled, start).sort("at"))
    days, totals = daily(frame)
    again, totals_again = daily(shuffled)
    assert (days == again).all() and (totals == totals_again).all()
    assert totals[:, -1].sum() == frame.height


def test_run_all_runs_every_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []
    for name, detect in list(DETECTORS.items()):
        def spy(obs: Observation, history: History, policy: DetectorPolicy,
                name: str = name, detect: detectors.Detector = detect) -> list[Signal]:
            called.append(name)
            return detect(obs, history, policy)
        monkeypatch.setitem(DETECTORS, name, spy)
    run_all(ALICE.obs(NOW), history_for(ALICE.obs(NOW)))
    assert sorted(called) == sorted(ALL_DETECTORS)


def test_a_disabled_detector_does_not_run() -> None:
    obs, before = last([ALICE.obs(at, "auth.mfa.failed", route="wrong code", status=401)
                        for at in spaced(NOW - dt.timedelta(minutes=5), 4,
                                         dt.timedelta(seconds=30))])
    assert named(judge(obs, before), "accounts.auth-failures")
    policy = DetectorPolicy(enabled=frozenset(ALL_DETECTORS) - {"accounts.auth-failures"})
    assert not named(judge(obs, before, policy), "accounts.auth-failures")


def test_a_crashing_detector_becomes_a_signal_and_the_others_still_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(DETECTORS, "baseline.cadence", broken)
    obs, before = last([ALICE.obs(at, "auth.mfa.failed", route="wrong code", status=401)
                        for at in spaced(NOW - dt.timedelta(minutes=5), 4,
                                         dt.timedelta(seconds=30))])
    signals = judge(obs, before)
    (failed,) = [s for s in signals if s.detector == FAILED]
    assert failed.severity is Severity.MEDIUM and not failed.suspend
    assert failed.evidence == {"detector": "baseline.cadence", "error": "ZeroDivisionError",
                               "action": "auth.mfa.failed"}
    assert "baseline.cadence" in failed.title
    assert named(signals, "accounts.auth-failures"), "the other detectors ran"


# -- what run_all does with signals ------------------------------------------------------------

@pytest.fixture(scope="module")
def bulk() -> tuple[Observation, list[Observation]]:
    """A bulk paginated export after 60 normal days."""
    pages = [ALICE.obs(at, "data.export", route="POST /projects/{project_id}/extracts",
                       record_rows=1_000, participants=1_000, bytes_out=400_000,
                       query_shape="s", query_digest=f"d{i}")
             for i, at in enumerate(spaced(NOW - dt.timedelta(minutes=10), 30,
                                           dt.timedelta(seconds=20)))]
    obs, before = last(pages)
    return obs, [*normal_days(ALICE, until=NOW - dt.timedelta(hours=3)), *before]


def test_only_detectors_allowed_to_suspend_do(bulk: tuple[Observation, list[Observation]]
                                              ) -> None:
    obs, past = bulk
    assert any(s.suspend for s in named(judge(obs, past), "baseline.volume"))
    quiet = DetectorPolicy(auto_suspend=frozenset())
    signals = judge(obs, past, quiet)
    assert named(signals, "baseline.volume") and not any(s.suspend for s in signals)


def test_an_approved_declared_job_caps_volume_detectors(
        bulk: tuple[Observation, list[Observation]]) -> None:
    obs, past = bulk
    job = DeclaredWindow("job_1", NOW - dt.timedelta(hours=1), NOW + dt.timedelta(days=2))
    signals = judge(obs, past, declared=(job,), exposed_30d=30_000, allowance=50_000)
    capped = [s for s in signals if s.detector in DetectorPolicy().declared_job_caps]
    assert {s.detector for s in capped} >= {"baseline.volume", "queries.rewording"}
    assert not named(signals, "coverage.allowance"), "the job's pages are its allowance"
    assert all(s.severity is Severity.LOW and not s.suspend for s in capped)
    assert all("job_1" in s.reasons[-1] and s.evidence["declared_jobs"] == ["job_1"]
               for s in capped)
    assert not any(s.suspend for s in signals)
    assert not named(signals, CORROBORATED)


def fake(detector: str, severity: Severity) -> detectors.Detector:
    def detect(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
        return [Signal(detector, severity, Subject(obs.person_id, None, None), "t", ["1"])]
    return detect


@pytest.mark.parametrize(("reports", "corroborated"), [
    ({"baseline.volume": Severity.MEDIUM, "baseline.hours": Severity.MEDIUM,
      "network.travel": Severity.MEDIUM}, True),
    ({"baseline.volume": Severity.HIGH, "queries.rewording": Severity.HIGH}, True),
    # a busy day at a conference: more volume, faster, odd hours, a new network
    ({"baseline.volume": Severity.MEDIUM, "baseline.cadence": Severity.MEDIUM,
      "baseline.hours": Severity.MEDIUM, "network.new": Severity.LOW}, False),
    ({"baseline.volume": Severity.HIGH, "baseline.cadence": Severity.HIGH}, False),
])
def test_several_groups_of_detectors_together_suspend(
        monkeypatch: pytest.MonkeyPatch, reports: dict[str, Severity],
        corroborated: bool) -> None:
    for name in DETECTORS:
        monkeypatch.setitem(DETECTORS, name, fake(name, reports[name]) if name in reports
                            else (lambda o, h, p: []))
    signals = judge(ALICE.obs(NOW), [])
    found = named(signals, CORROBORATED)
    assert bool(found) is corroborated
    if found:
        assert found[0].suspend and found[0].severity is Severity.HIGH
        assert found[0].subject.person_id == ALICE.person_id
    assert not any(s.suspend for s in signals if s.detector != CORROBORATED)


# -- a normal workload ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [11, 13])
def test_a_normal_ten_days_suspend_nobody(seed: int) -> None:
    """Every request of a researcher's last ten days judged in its history: two busy days, a
    conference abroad (a hotel network, hours shifted by six), a VPN now and then."""
    r = Researcher(per_day=30 + 10 * (seed - 11), start_hour=7 + seed % 3)
    observations = normal_days(r, seed=seed, busy=[2, 8], trips=[4, 5, 6], trip_shift=6)
    frame = frame_of(observations)
    seen: Counter[tuple[str, str]] = Counter()
    judged = 0
    for i, obs in enumerate(observations):
        if obs.at < NOW - dt.timedelta(days=10):
            continue
        for s in run_all(obs, history_for(obs, frame.slice(0, i))):
            assert not s.suspend, f"{s.detector} suspended: {s.reasons}"
            seen[(s.detector, s.severity.value)] += 1
        judged += 1
    assert judged > 150
    assert set(seen) <= {("network.new", "low")}, seen
    assert seen[("network.new", "low")] > 0, "the trip's hotel network is reported"


def test_an_attacker_on_a_stolen_session_is_seen_from_several_sides() -> None:
    """A night-time bulk pull from a new network: several detectors, and a suspension."""
    night = NOW.replace(hour=2, minute=0)
    past = normal_days(ALICE, until=night)
    pull = [replace(ALICE.obs(at, "data.export", route="POST /projects/{project_id}/extracts",
                              record_rows=1_000, participants=1_000, query_shape="x",
                              query_digest=f"x{i}"), source=ELSEWHERE)
            for i, at in enumerate(spaced(night, 40, dt.timedelta(seconds=30)))]
    obs, before = last(pull)
    signals = judge(obs, [*past, *before])
    assert {"baseline.volume", "baseline.hours", "network.new",
            "queries.rewording"} <= {s.detector for s in signals}
    assert any(s.suspend for s in signals)
