"""Coverage: how much of the cohort a project has received record-level in 30 days.

``coverage.allowance`` warns early as the distinct participants exposed climb through the
project's 30-day allowance (the hard limit refuses at 100 %). ``coverage.sweep`` sees a drip:
exports on several days that keep reaching participants not exported before, as a walk through
the cohort does, where legitimate re-exports of one study population overlap.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from strongroom.watch.detectors.frames import between, n, pct, person_subject
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal
from strongroom.watch.states import Severity

LEVEL_SEVERITY = (Severity.LOW, Severity.MEDIUM, Severity.HIGH)
WINDOW = dt.timedelta(days=30)


def allowance(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Distinct participants exposed in 30 days past 25 / 50 / 80 % of the allowance."""
    p = policy.coverage
    if obs.project_id is None or obs.record_rows <= 0:
        return []
    limit = _allowance(history, policy)
    exposed, _, declared = _undeclared(history)
    share = exposed / limit if limit > 0 else float(exposed > 0)
    passed = [level for level in p.levels if share >= level]
    cohort = exposed / history.cohort_size if history.cohort_size > 0 else 0.0
    if not passed and cohort < p.cohort_share:
        return []
    severity = LEVEL_SEVERITY[len(passed) - 1] if passed else Severity.HIGH
    reasons = [f"Project {obs.project_id} has received {n(exposed)} distinct participants "
               f"record-level in the last 30 days: {pct(share)} of its allowance of "
               f"{n(limit)} (warnings at "
               + ", ".join(pct(level) for level in p.levels)
               + "; the hard limit refuses at 100 %)."]
    if declared:
        reasons.append(f"Declared jobs reached up to {n(declared)} more; they are not "
                       f"counted here.")
    if cohort >= p.cohort_share:
        severity = Severity.HIGH
        reasons.append(f"That is {pct(cohort)} of the cohort's {n(history.cohort_size)} "
                       f"participants (high from {pct(p.cohort_share)}).")
    level = f"{passed[-1]:.2f}" if passed else "cohort"
    return [Signal(
        detector="coverage.allowance", severity=severity, subject=person_subject(obs),
        title=f"project {obs.project_id} has used {pct(share)} of its 30-day record-level "
              f"allowance",
        reasons=reasons,
        evidence={"exposed_30d": exposed, "declared_30d": declared, "allowance_30d": limit,
                  "share": round(share, 4), "cohort_size": history.cohort_size,
                  "cohort_share": round(cohort, 4), "levels": list(p.levels)},
        dedup=level)]


def sweep(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Record-level exports on several days, nearly all reaching participants new to the
    project: a slow drip through the cohort."""
    p = policy.coverage
    if obs.project_id is None or obs.record_rows <= 0:
        return []
    limit = _allowance(history, policy)
    exposed, exports, _ = _undeclared(history)
    days = exports.select(pl.col("at").dt.date().n_unique()).item()
    rule = next(((d, share) for d, share in p.sweeps
                 if days >= d and exposed >= share * limit), None)
    recent = exports.filter(pl.col("at") >= history.now - dt.timedelta(minutes=p.rush_minutes))
    rushed = (recent.height >= p.rush[0] and exposed >= p.rush[1] * limit
              and _reached(recent) >= p.rush[1] * limit)
    if rule is None and not rushed:
        return []
    reached = _reached(exports)
    novelty = exposed / reached if reached > 0 else 0.0
    if novelty < p.sweep_novelty:
        return []
    if rule is None:
        return [_rush(obs, recent, exposed, limit, novelty, p.rush, p.rush_minutes)]
    return [Signal(
        detector="coverage.sweep", severity=Severity.HIGH, subject=person_subject(obs),
        title=f"project {obs.project_id} is sweeping the cohort: {n(exposed)} new "
              f"participants over {days} days",
        reasons=[f"Project {obs.project_id} took record-level exports on {days} days in the "
                 f"last 30 ({exports.height} exports, declared jobs left out). Together they "
                 f"reached {n(reached)} participants, of whom {n(exposed)} are distinct "
                 f"({pct(novelty)}): each export reached people not exported before, as a "
                 f"walk through the cohort does, where re-exports of one study population "
                 f"overlap. A sweep is {rule[0]}+ days and {pct(rule[1])} of the allowance of "
                 f"{n(limit)} ({n(rule[1] * limit)}), {pct(p.sweep_novelty)}+ of it new."],
        evidence={"export_days": days, "exports": exports.height, "reached": reached,
                  "exposed_30d": exposed, "novelty": round(novelty, 4),
                  "allowance_30d": limit, "rule_days": rule[0], "rule_share": rule[1],
                  "sweep_novelty": p.sweep_novelty},
        suspend=True)]


def _rush(obs: Observation, recent: pl.DataFrame, exposed: int, limit: int, novelty: float,
          rule: tuple[int, float], minutes: int) -> Signal:
    reached = _reached(recent)
    return Signal(
        detector="coverage.sweep", severity=Severity.HIGH, subject=person_subject(obs),
        title=f"project {obs.project_id} is paging through the cohort: {n(reached)} "
              f"participants in {recent.height} exports within {minutes} minutes",
        reasons=[f"Project {obs.project_id} took {recent.height} record-level exports in the "
                 f"last {minutes} minutes reaching {n(reached)} participants; "
                 f"{n(exposed)} distinct in 30 days ({pct(novelty)} of all reached are new). "
                 f"A rush is {rule[0]}+ exports within {minutes} minutes reaching "
                 f"{pct(rule[1])} of the allowance of {n(limit)} ({n(rule[1] * limit)}): a "
                 f"bulk export taken in pages. A large job is declared in advance."],
        evidence={"exports_in_window": recent.height, "window_minutes": minutes,
                  "reached_in_window": reached, "exposed_30d": exposed,
                  "novelty": round(novelty, 4), "allowance_30d": limit,
                  "rush_exports": rule[0], "rush_share": rule[1]},
        suspend=True, dedup="rush")


def _reached(exports: pl.DataFrame) -> int:
    """Participants summed over exports (rows where only rows were metered: rows ≥
    participants, so novelty reads lower, never higher)."""
    reached = int(exports["participants"].sum())
    return reached if reached > 0 else int(exports["record_rows"].sum())


def _allowance(history: History, policy: DetectorPolicy) -> int:
    return (history.record_allowance_30d if history.record_allowance_30d is not None
            else policy.coverage.default_allowance)


def _undeclared(history: History) -> tuple[int, pl.DataFrame, int]:
    """Distinct participants exposed in 30 days outside declared jobs (at least: the jobs'
    exports are subtracted whole), the exports outside them, and the jobs' reach."""
    exports = between(history.project, history.now - WINDOW).filter(pl.col("record_rows") > 0)
    if not history.declared_jobs:
        return history.exposed_30d, exports, 0
    inside = pl.lit(False)
    for job in history.declared_jobs:
        inside |= (pl.col("at") >= job.starts_at) & (pl.col("at") < job.ends_at)
    declared = int(exports.filter(inside).select(
        pl.max_horizontal("participants", "record_rows").sum()).item() or 0)
    return max(history.exposed_30d - declared, 0), exports.filter(~inside), declared
