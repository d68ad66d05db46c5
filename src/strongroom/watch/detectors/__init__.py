"""Behaviour-based detectors: pure functions of an observation and its history.

Each detector returns the signals it sees (usually none). :func:`run_all` runs the enabled ones
and then applies the policy that is not any one detector's business: only detectors listed in
``auto_suspend`` may suspend; an approved declared job caps the volume detectors; several
detectors agreeing on one request suspend even when none is extreme alone; and a detector
that fails says so as a signal of its own, so that nothing is silent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from strongroom.errors import is_failure
from strongroom.watch.detectors import accounts, baselines, coverage, jobs, network, queries
from strongroom.watch.detectors.frames import person_subject, sharing
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import RANK, Severity

log = logging.getLogger(__name__)

Detector = Callable[[Observation, History, DetectorPolicy], list[Signal]]

DETECTORS: dict[str, Detector] = {
    "baseline.volume": baselines.volume,
    "baseline.cadence": baselines.cadence,
    "baseline.hours": baselines.hours,
    "coverage.allowance": coverage.allowance,
    "coverage.sweep": coverage.sweep,
    "queries.rewording": queries.rewording,
    "queries.reconstruction": queries.reconstruction,
    "queries.differencing": queries.differencing,
    "queries.near-threshold": queries.near_threshold,
    "queries.overrun": queries.overrun,
    "network.new": network.new_network,
    "network.travel": network.travel,
    "network.token-replay": network.token_replay,
    "accounts.new-accounts": accounts.new_accounts,
    "accounts.refused-token": accounts.refused_token,
    "accounts.auth-failures": accounts.auth_failures,
    "jobs.sandbox": jobs.sandbox,
    "jobs.shape": jobs.shape,
}

FAILED = "watch.detector-failed"
CORROBORATED = "watch.corroborated"


def run_all(obs: Observation, history: History,
            policy: DetectorPolicy | None = None) -> list[Signal]:
    """Every enabled detector's signals on ``obs``, with the policy applied."""
    policy = policy or DetectorPolicy()
    found: list[Signal] = []
    with sharing():
        for name, detect in DETECTORS.items():
            if name not in policy.enabled:
                continue
            try:
                found += detect(obs, history, policy)
            except BaseException as exc:  # one broken detector must not blind the others
                if not is_failure(exc):
                    raise
                log.exception("detector %s failed", name)
                found.append(_failure(name, exc, obs))
    found = [_governed(s, history, policy) for s in found]
    corroborated = _corroborated(found, obs, policy)
    return [*found, corroborated] if corroborated is not None else found


def _governed(signal: Signal, history: History, policy: DetectorPolicy) -> Signal:
    """The signal as the policy allows it: suspension only for detectors allowed to, and
    volume detectors capped while a declared job of the project is in force."""
    jobs = [j.job_id for j in history.declared_jobs if j.in_force(history.now)]
    if jobs and signal.detector in policy.declared_job_caps:
        return replace(signal, severity=min(signal.severity, Severity.LOW, key=RANK.__getitem__),
                       suspend=False,
                       reasons=[*signal.reasons, f"An approved declared job is in force for "
                                f"this project ({', '.join(jobs)}): reported at low "
                                f"severity, no suspension."],
                       evidence={**signal.evidence, "declared_jobs": jobs})
    if signal.suspend and signal.detector not in policy.auto_suspend:
        return replace(signal, suspend=False)
    return signal


def _corroborated(signals: list[Signal], obs: Observation,
                  policy: DetectorPolicy) -> Signal | None:
    """One signal asking for suspension when enough groups of detectors agree on a person."""
    c = policy.corroboration
    if not c.enabled or obs.person_id is None or any(s.suspend for s in signals):
        return None
    group_of = {name: group for group, names in c.groups for name in names}
    best: dict[str, Severity] = {}
    for s in signals:
        group = group_of.get(s.detector)
        if group is not None and s.subject.person_id == obs.person_id and (
                group not in best or RANK[s.severity] > RANK[best[group]]):
            best[group] = s.severity
    medium = sorted(g for g, sev in best.items() if RANK[sev] >= RANK[Severity.MEDIUM])
    high = sorted(g for g, sev in best.items() if RANK[sev] >= RANK[Severity.HIGH])
    if len(medium) < c.medium_groups and len(high) < c.high_groups:
        return None
    agreeing = sorted({s.detector for s in signals if group_of.get(s.detector) in medium})
    return Signal(
        detector=CORROBORATED, severity=Severity.HIGH, subject=person_subject(obs),
        title=f"several detectors agree on person {obs.person_id}: {', '.join(medium)}",
        reasons=[f"On one request {len(medium)} groups of detectors reported at medium or "
                 f"above ({', '.join(medium)}; {len(high)} at high: "
                 f"{', '.join(high) or 'none'}), from {', '.join(agreeing)}. Suspension "
                 f"follows from {c.medium_groups} groups at medium or {c.high_groups} at "
                 f"high, even when none is extreme alone."],
        evidence={"groups": {g: sev.value for g, sev in best.items()}, "detectors": agreeing,
                  "medium_groups": c.medium_groups, "high_groups": c.high_groups},
        suspend=True,
        dedup=obs.at.date().isoformat())


def _failure(name: str, exc: BaseException, obs: Observation) -> Signal:
    # the exception's type only: its message could quote data the detector was reading
    return Signal(
        detector=FAILED, severity=Severity.MEDIUM,
        subject=Subject(obs.person_id, obs.institution_id, obs.project_id),
        title=f"detector {name} failed",
        reasons=[f"The detector {name} raised {type(exc).__name__} on a request to "
                 f"{obs.route} ({obs.action}); its verdict on this request is missing. The "
                 f"server log has the traceback; the other detectors ran."],
        evidence={"detector": name, "error": type(exc).__name__, "action": obs.action},
        dedup=name)
