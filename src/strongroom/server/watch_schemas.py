"""The API's shapes for watch alerts: the alert, its appeal, and the lifecycle requests."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from strongroom.watch.alerts import AlertView
from strongroom.watch.appeals import AppealStatus, AppealView

Note = Annotated[str, StringConstraints(max_length=5000)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=5000)]


class SuspensionOut(BaseModel):
    pause_id: str
    level: str
    target_id: str | None
    state: str = Field(description="active, lift-requested or lifted")


class AppealOut(BaseModel):
    alert_id: str
    status: AppealStatus = Field(description="none, pending, upheld, lifting (one admin "
                                             "decided to lift; a second must confirm) or "
                                             "lifted")
    text: str | None
    by: str | None
    at: dt.datetime | None
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_reason: str | None
    confirmed_by: str | None
    confirmed_at: dt.datetime | None
    suspensions: list[SuspensionOut]


class AlertOut(BaseModel):
    id: str
    detector: str = Field(description="what raised it, e.g. limit.record-level, drip.coverage")
    severity: str
    status: str = Field(description="open, acknowledged or resolved")
    title: str
    reasons: list[str]
    evidence: dict[str, Any] = Field(description="counts, digests and thresholds; never "
                                                 "participant values")
    person_id: str | None
    institution_id: str | None
    project_id: str | None
    first_at: dt.datetime
    last_at: dt.datetime
    count: int = Field(description="how many times the same finding was seen")
    suspensions: list[str] = Field(description="pauses set because of this alert")
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    resolved_by: str | None
    resolved_at: dt.datetime | None
    resolution: str | None
    appeal: AppealOut


def appeal_out(view: AppealView) -> AppealOut:
    decision = view.decision
    return AppealOut(
        alert_id=view.alert_id, status=view.status, text=view.text, by=view.by, at=view.at,
        decided_by=decision.decided_by if decision else None,
        decided_at=decision.decided_at if decision else None,
        decision_reason=decision.reason if decision else None,
        confirmed_by=decision.confirmed_by if decision else None,
        confirmed_at=decision.confirmed_at if decision else None,
        suspensions=[SuspensionOut(pause_id=s.pause_id, level=s.level, target_id=s.target_id,
                                   state=s.state.value) for s in view.suspensions])


def alert_out(view: AlertView) -> AlertOut:
    a = view.alert
    return AlertOut(
        id=a.id, detector=a.detector, severity=a.severity, status=a.status, title=a.title,
        reasons=list(a.reasons or []), evidence=dict(a.evidence or {}),
        person_id=a.person_id, institution_id=a.institution_id, project_id=a.project_id,
        first_at=a.first_at, last_at=a.last_at, count=a.count,
        suspensions=list(a.suspensions or []), acknowledged_by=a.acknowledged_by,
        acknowledged_at=a.acknowledged_at, resolved_by=a.resolved_by,
        resolved_at=a.resolved_at, resolution=a.resolution, appeal=appeal_out(view.appeal))


class AcknowledgeIn(BaseModel):
    note: Note = Field(default="", description="optional; kept in the audit log")


class ResolveIn(BaseModel):
    reason: Reason = Field(description="why it is resolved (10+ characters); kept with the "
                                       "alert and in the audit log")


class ReopenIn(BaseModel):
    reason: Note = Field(default="", description="optional; kept in the audit log")


class AppealIn(BaseModel):
    text: Reason = Field(description="why the suspension should be lifted (20+ characters)")


class Decision(StrEnum):
    UPHOLD = "uphold"
    LIFT = "lift"


class AppealReviewIn(BaseModel):
    decision: Decision = Field(description="uphold (the suspension stays) or lift (asks for "
                                           "the lift; a second custodian admin's lift "
                                           "confirms it)")
    reason: Reason = Field(description="why (10+ characters); the appellant reads it")
