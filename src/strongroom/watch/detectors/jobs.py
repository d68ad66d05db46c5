"""``jobs.sandbox``: a job that tried its sandbox's walls; ``jobs.shape``: a job whose real run
ended otherwise than its dummy run, or that repeatedly ended late.

The walls hold whatever a job tries (jobs/sandbox.py): there is no network to reach and no
other program worth starting. A try is still worth a person's look, since nothing in an honest
analysis needs either; it alerts at high severity and, by default, does not suspend (the
custodian may add it to ``auto_suspend`` in watch.yaml).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from strongroom.watch.detectors.frames import between, person_subject
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.detectors.queries import JOB_ROUTE
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal
from strongroom.watch.states import Severity


def sandbox(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    if obs.walls <= 0 or obs.person_id is None:
        return []
    return [Signal(
        detector="jobs.sandbox",
        severity=Severity.HIGH,
        subject=person_subject(obs),
        title=f"a job of person {obs.person_id} tried its sandbox's walls {obs.walls} times",
        reasons=[f"A job run for person {obs.person_id} tried {obs.walls} times to reach the "
                 "network or start another program inside its sandbox. The walls held and "
                 "nothing left, but no honest analysis needs either: read the job's code "
                 "(its SHA-256 is in the audit log) and ask the researcher why."],
        evidence={"tries": obs.walls, "route": obs.route},
        dedup=f"{obs.route}|{obs.at.date().isoformat()}")]


def shape(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """``jobs.shape``: a job whose real run ended otherwise than its dummy run, or that was
    seen to end at a late step of the ladder.

    What a researcher sees of a job's real run is one fixed shape (jobs/service.py): every
    declared output, or one constant failure; its end at its expected moment. What is left
    (finished or failed, on time or at which step) is one answer from the person's ration.
    A job whose real run ended otherwise than on the dummy data is the mark of that answer
    being asked for on purpose (a script that fails, or skips an output, when one person's
    value is large): each is an alert; several in the window are high. A late end is often
    an honest underestimate, so only repeats alert."""
    if obs.person_id is None or (obs.diverged <= 0 and obs.late <= 0):
        return []
    if obs.via == "job" and obs.route != JOB_ROUTE:
        return []  # an analysis the job planned: its overrun is ``queries.overrun``'s
    p = policy.job_shape
    since = history.now - dt.timedelta(days=p.window_days)
    jobs = between(history.person, since)
    jobs = (jobs.filter((pl.col("via") == "job") & (pl.col("route") == JOB_ROUTE))
            if jobs.height else jobs)
    diverged = max(int(jobs["diverged"].gt(0).sum()) if jobs.height else 0, obs.diverged)
    late = max(int(jobs["late"].gt(0).sum()) if jobs.height else 0, obs.late)
    found: list[Signal] = []
    day = obs.at.date().isoformat()
    if obs.diverged > 0:
        high = diverged >= p.diverged_extreme
        found.append(Signal(
            detector="jobs.shape",
            severity=Severity.HIGH if high else Severity.MEDIUM,
            subject=person_subject(obs),
            title=f"a job of person {obs.person_id} ended otherwise on the real data than on "
                  f"the dummy data ({diverged} in {p.window_days} days)",
            reasons=[f"A job run for person {obs.person_id} ended otherwise on the real data "
                     "than on the dummy data (it failed, planned otherwise, wrote other files "
                     f"or met other walls); {diverged} of their jobs did in the last "
                     f"{p.window_days} days. The researcher saw one constant failure and it "
                     "cost an answer, but a script that fails or skips an output when one "
                     "person's value is large asks exactly this: read the job's code (its "
                     "SHA-256 is in the audit log, the real run's facts in the job's usage) "
                     "and ask why." + (f" {p.diverged_extreme} or more in the window are "
                                       "high." if high else "")],
            evidence={"diverged": diverged, "late": late, "window_days": p.window_days,
                      "route": obs.route},
            suspend=high, dedup=f"diverged|{day}"))
    if obs.late > 0 and late >= p.late_alert:
        high = late >= p.late_extreme
        found.append(Signal(
            detector="jobs.shape",
            severity=Severity.HIGH if high else Severity.MEDIUM,
            subject=person_subject(obs),
            title=f"jobs of person {obs.person_id} ended past their expected time "
                  f"{late} times in {p.window_days} days",
            reasons=[f"{late} jobs run for person {obs.person_id} in the last "
                     f"{p.window_days} days ran past their declared expected time and were "
                     "seen to end at a later step of the ladder. Which step is an answer about "
                     "the data (a script can sleep for a participant's value); each cost an "
                     "answer, but repeats look like the clock being read on purpose."],
            evidence={"late": late, "diverged": diverged, "window_days": p.window_days,
                      "route": obs.route},
            suspend=high, dedup=f"late|{day}"))
    return found
