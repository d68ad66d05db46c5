"""Watch alerts: list and read them, acknowledge, resolve, reopen, appeal a suspension and
review the appeal, and export one as OCSF, ECS or CEF."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from strongroom.access.permissions import Action
from strongroom.server.security import Caller, Ctx, acts
from strongroom.server.watch_schemas import (
    AcknowledgeIn,
    AlertOut,
    AppealIn,
    AppealOut,
    AppealReviewIn,
    Decision,
    ReopenIn,
    ResolveIn,
    alert_out,
    appeal_out,
)
from strongroom.watch import alerts, appeals
from strongroom.watch.exports import MEDIA_TYPES, Format, render
from strongroom.watch.states import AlertStatus, Severity

router = APIRouter(tags=["watch"])

Since = Annotated[dt.datetime | None, Query(
    description="seen at or after (ISO 8601 with a time zone)")]
Detector = Annotated[str | None, Query(max_length=48,
                                       description="a detector, or a family ending in '.'")]
ExportFormat = Annotated[Format, Query(description="ocsf, ecs or cef")]

EXPORT: dict[int | str, dict[str, Any]] = {200: {
    "content": {"application/json": {}, "text/plain": {}},
    "description": "the alert as one OCSF or ECS JSON object, or one CEF line"}}


@router.get("/watch/alerts", response_model=list[AlertOut],
            openapi_extra=acts(Action.WATCH_READ))
def list_alerts(
    who: Caller, ctx: Ctx,
    status: AlertStatus | None = None, severity: Severity | None = None,
    detector: Detector = None,
    project_id: str | None = None, institution_id: str | None = None,
    person_id: str | None = None,
    since: Since = None,
    limit: int = Query(100, ge=1, le=alerts.MAX_LIMIT),
    offset: int = Query(0, ge=0, le=alerts.MAX_OFFSET),
) -> list[AlertOut]:
    """Alerts, most recently seen first; every filter narrows."""
    flt = alerts.parse_filter(status=status, severity=severity, detector=detector,
                              project_id=project_id, institution_id=institution_id,
                              person_id=person_id, since=since)
    return [alert_out(v) for v in alerts.list_alerts(ctx, who, flt, limit=limit,
                                                     offset=offset)]


@router.get("/watch/alerts/{alert_id}", response_model=AlertOut,
            openapi_extra=acts(Action.WATCH_READ))
def read_alert(alert_id: str, who: Caller, ctx: Ctx) -> AlertOut:
    """One alert: reasons, evidence, suspensions, lifecycle and appeal."""
    return alert_out(alerts.get(ctx, who, alert_id))


@router.post("/watch/alerts/{alert_id}/acknowledge", response_model=AlertOut,
             openapi_extra=acts(Action.WATCH_RESPOND))
def acknowledge(alert_id: str, body: AcknowledgeIn, who: Caller, ctx: Ctx) -> AlertOut:
    """Someone is on it (open → acknowledged)."""
    return alert_out(alerts.acknowledge(ctx, who, alert_id, body.note))


@router.post("/watch/alerts/{alert_id}/resolve", response_model=AlertOut,
             openapi_extra=acts(Action.WATCH_RESPOND))
def resolve(alert_id: str, body: ResolveIn, who: Caller, ctx: Ctx) -> AlertOut:
    """Close it with the reason (a suspension stays until lifted: see the appeal)."""
    return alert_out(alerts.resolve(ctx, who, alert_id, body.reason))


@router.post("/watch/alerts/{alert_id}/reopen", response_model=AlertOut,
             openapi_extra=acts(Action.WATCH_RESPOND))
def reopen(alert_id: str, body: ReopenIn, who: Caller, ctx: Ctx) -> AlertOut:
    """A resolved alert is open again (refused if the finding has a newer open alert)."""
    return alert_out(alerts.reopen(ctx, who, alert_id, body.reason))


@router.post("/watch/alerts/{alert_id}/appeal", response_model=AppealOut,
             openapi_extra=acts(Action.WATCH_APPEAL))
def appeal(alert_id: str, body: AppealIn, who: Caller, ctx: Ctx) -> AppealOut:
    """The suspended person, or their project's lead, appeals the suspension (once)."""
    return appeal_out(appeals.appeal(ctx, who, alert_id, body.text))


@router.post("/watch/alerts/{alert_id}/appeal/review", response_model=AppealOut,
             openapi_extra=acts(Action.WATCH_APPEAL_REVIEW))
def review_appeal(alert_id: str, body: AppealReviewIn, who: Caller, ctx: Ctx) -> AppealOut:
    """A custodian admin upholds the suspension, or lifts it (two admins: ask, confirm)."""
    return appeal_out(appeals.review(ctx, who, alert_id, body.decision is Decision.LIFT,
                                     body.reason))


@router.get("/watch/alerts/{alert_id}/export", response_class=Response, responses=EXPORT,
            openapi_extra=acts(Action.WATCH_READ))
def export(alert_id: str, who: Caller, ctx: Ctx,
           format: ExportFormat = Format.OCSF) -> Response:
    """The alert as a SIEM reads it: OCSF Detection/Data Security Finding, ECS, or CEF."""
    view = alerts.get(ctx, who, alert_id)
    return Response(render(view.alert, format) + "\n", media_type=MEDIA_TYPES[format])
