"""The lifetime allowance's forecast: at the pace of the last fortnight, when will a project,
the person it goes to, or their institution have received every participant it may ever
receive record-level? A patient drip stays under every window's limit; it cannot hide its pace.

Run by the gate at every record-level export (``Watch.guard``), beside the hard limits, so no
caller skips it: an alert when the allowance is a month away at that pace, a suspension when it
is a week away, before the hard limit is crossed; and a high alert once most of the allowance
is taken (``near_share``), whatever the pace, since a drip that takes most of what is left
each fortnight never looks a week away. While an approved declared job is in force the
forecast only reports (the job is the pace it would see).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from strongroom.access import shares
from strongroom.cohort.crypto import MasterKey
from strongroom.watch.detectors.policy import LifetimePolicy
from strongroom.watch.exposure import union_since
from strongroom.watch.limits import SCOPES, lifetime_extra, limits_of
from strongroom.watch.policy import WINDOWS, Meter
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
    near: bool = False  # at least the policy's share of the allowance is taken

    def sentence(self, pace_days: int) -> str:
        taken = (f" ({self.used / self.allowance:.0%} of it)" if self.near and self.allowance
                 else "")
        return (f"{self.scope} {self.target_id} has received {self.used:,} distinct "
                f"participants record-level over its life{taken}, {self.new:,} of them new in "
                f"the last {pace_days} days; at that pace it reaches its lifetime allowance "
                f"of {self.allowance:,} in {self.days_left:.0f} days")


def forecasts(db: Session, key: MasterKey, targets: Sequence[tuple[str, str | None]],
              project_id: str, now: dt.datetime, policy: LifetimePolicy) -> list[Forecast]:
    """Every target (scope, id) whose lifetime allowance is within ``policy.warn_days`` at its
    pace, or of which ``policy.near_share`` is taken."""
    found = []
    recent = now - dt.timedelta(days=policy.pace_days)
    ever_since = now - WINDOWS[Meter.LIFETIME_PARTICIPANTS]
    columns = dict(SCOPES)
    for scope, target in targets:
        if target is None:
            continue
        column = columns[scope]
        # an institution's allowance as this project's share of it, counted on this
        # project's exports alone, as the hard limit is (watch/limits.py): over the whole
        # institution, another project's exports suspended this one
        within = project_id if scope == "institution" else None
        shared_by = (shares.active_projects(db, target, ever_since) if within is not None
                     else 1)
        allowance = (shares.share(limits_of(db, scope, target).lifetime_participants,
                                  shared_by) + lifetime_extra(db, project_id))
        ever = union_since(db, key, column, target, ever_since, within=within)
        before = union_since(db, key, column, target, ever_since, until=recent,
                             within=within)
        new = len(ever) - len(before)
        near = len(ever) >= policy.near_share * allowance
        if new <= 0 and not near:
            continue
        days_left = (max(allowance - len(ever), 0) / (new / policy.pace_days) if new > 0
                     else math.inf)
        if days_left <= policy.warn_days or near:
            found.append(Forecast(scope, target, allowance, len(ever), new, days_left, near))
    return found


def signal(found: list[Forecast], subject: Subject, policy: LifetimePolicy,
           in_a_job: bool) -> Signal | None:
    """One alert for the nearest allowance; it suspends once that is a week away."""
    if not found:
        return None
    nearest = min(found, key=lambda f: (f.days_left, -f.used))
    suspend = nearest.days_left <= policy.suspend_days and not in_a_job
    severity = (Severity.LOW if in_a_job else
                Severity.HIGH if suspend or any(f.near for f in found) else Severity.MEDIUM)
    return Signal(
        detector=DETECTOR, severity=severity, subject=subject,
        title=(f"lifetime allowance of {nearest.scope} {nearest.target_id} near at its pace"
               if math.isfinite(nearest.days_left) and nearest.days_left <= policy.warn_days
               else f"most of the lifetime allowance of {nearest.scope} "
                    f"{nearest.target_id} taken"),
        reasons=[f.sentence(policy.pace_days) for f in found]
        + ([f"suspended before it is crossed: at this pace it would be within "
            f"{policy.suspend_days:.0f} days"] if suspend else []),
        evidence={"forecasts": [{"scope": f.scope, "target": f.target_id,
                                 "allowance": f.allowance, "used": f.used, "new": f.new,
                                 "pace_days": policy.pace_days,
                                 "days_left": (round(f.days_left, 1)
                                               if math.isfinite(f.days_left) else None),
                                 "near": f.near} for f in found]},
        suspend=suspend, dedup=f"lifetime:{nearest.scope}:{nearest.target_id}")
