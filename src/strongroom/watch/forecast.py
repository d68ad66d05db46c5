"""The lifetime allowance's forecast: at the pace of the last fortnight, when will a project,
the person it goes to, or their institution have received every participant it may ever
receive record-level? A patient drip stays under every window's limit; it cannot hide its pace.

Run by the gate at every record-level export (``Watch.guard``), beside the hard limits, so no
caller skips it: an alert when the allowance is a month away at that pace, a suspension when it
is a week away, before the hard limit is crossed. While an approved declared job is in force
the forecast only reports (the job is the pace it would see).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from strongroom.cohort.crypto import MasterKey
from strongroom.watch.detectors.policy import LifetimePolicy
from strongroom.watch.exposure import union_since
from strongroom.watch.limits import SCOPES, lifetime_extra
from strongroom.watch.policy import WINDOWS, Meter, limits_for
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import Severity

DETECTOR = "coverage.lifetime"


@dataclass(frozen=True)
class Forecast:
    scope: str  # project | person | institution
    target_id: str
    allowance: int  # distinct participants it may ever receive
    used: int  # … received so far
    new: int  # … of them first received within the pace window
    days_left: float  # at that pace

    def sentence(self, pace_days: int) -> str:
        return (f"{self.scope} {self.target_id} has received {self.used:,} distinct "
                f"participants record-level over its life, {self.new:,} of them new in the "
                f"last {pace_days} days; at that pace it reaches its lifetime allowance of "
                f"{self.allowance:,} in {self.days_left:.0f} days")


def forecasts(db: Session, key: MasterKey, targets: Mapping[str, str | None], project_id: str,
              now: dt.datetime, policy: LifetimePolicy) -> list[Forecast]:
    """Every scope whose lifetime allowance is within ``policy.warn_days`` at its pace."""
    found = []
    recent = now - dt.timedelta(days=policy.pace_days)
    ever_since = now - WINDOWS[Meter.LIFETIME_PARTICIPANTS]
    for scope, column in SCOPES:
        target = targets.get(scope)
        if target is None:
            continue
        allowance = (limits_for(db, scope, target).lifetime_participants
                     + lifetime_extra(db, project_id))
        ever = union_since(db, key, column, target, ever_since)
        before = union_since(db, key, column, target, ever_since, until=recent)
        new = len(ever) - len(before)
        if new <= 0:
            continue
        days_left = max(allowance - len(ever), 0) / (new / policy.pace_days)
        if days_left <= policy.warn_days:
            found.append(Forecast(scope, target, allowance, len(ever), new, days_left))
    return found


def signal(found: list[Forecast], subject: Subject, policy: LifetimePolicy,
           in_a_job: bool) -> Signal | None:
    """One alert for the nearest allowance; it suspends once that is a week away."""
    if not found:
        return None
    nearest = min(found, key=lambda f: f.days_left)
    suspend = nearest.days_left <= policy.suspend_days and not in_a_job
    severity = (Severity.LOW if in_a_job else
                Severity.HIGH if nearest.days_left <= policy.suspend_days else Severity.MEDIUM)
    return Signal(
        detector=DETECTOR, severity=severity, subject=subject,
        title=f"lifetime allowance of {nearest.scope} {nearest.target_id} near at its pace",
        reasons=[f.sentence(policy.pace_days) for f in found]
        + ([f"suspended before it is crossed: at this pace it would be within "
            f"{policy.suspend_days:.0f} days"] if suspend else []),
        evidence={"forecasts": [{"scope": f.scope, "target": f.target_id,
                                 "allowance": f.allowance, "used": f.used, "new": f.new,
                                 "pace_days": policy.pace_days,
                                 "days_left": round(f.days_left, 1)} for f in found]},
        suspend=suspend, dedup=f"lifetime:{nearest.scope}:{nearest.target_id}")
