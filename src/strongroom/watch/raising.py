"""Turn a signal into an alert: a new alert, or one more count on the same open alert."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.access.tokens import new_id
from strongroom.watch.models import AlertRow
from strongroom.watch.signals import Signal
from strongroom.watch.states import RANK, AlertStatus, Severity


def raise_alert(db: Session, signal: Signal, now: dt.datetime) -> tuple[AlertRow, bool]:
    """The alert for ``signal`` and whether it is new (an unresolved one with the same key
    absorbs the repeat: its count, last time and severity go up, its reasons are refreshed)."""
    found = db.scalar(select(AlertRow).where(
        AlertRow.dedup_key == signal.dedup_key,
        AlertRow.status != AlertStatus.RESOLVED.value).with_for_update())
    if found is not None:
        found.count += 1
        found.last_at = now
        if RANK[signal.severity] > RANK[Severity(found.severity)]:
            found.severity = signal.severity.value
        found.reasons, found.evidence = list(signal.reasons), dict(signal.evidence)
        return found, False
    s = signal.subject
    row = AlertRow(id=new_id("alr"), detector=signal.detector, severity=signal.severity.value,
                   status=AlertStatus.OPEN.value, dedup_key=signal.dedup_key,
                   person_id=s.person_id, institution_id=s.institution_id,
                   project_id=s.project_id, title=signal.title, reasons=list(signal.reasons),
                   evidence=dict(signal.evidence), first_at=now, last_at=now, count=1,
                   suspensions=[])
    db.add(row)
    return row, True
