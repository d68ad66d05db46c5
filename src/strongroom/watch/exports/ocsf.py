"""Alerts as OCSF 1.7.0 findings: Detection Finding (2004), or Data Security Finding (2006)
for alerts about data leaving (limits, coverage, drips, bulk).

Field mapping (docs/reference/watch-exports.md has the full table): the alert is the finding
(``finding_info.uid``); its lifecycle is the finding's ``status_id`` and the event's
``activity_id`` (Create for a new alert, Update for a repeat or a change, Close once resolved);
the person is ``actor.user`` and the recorded address ``src_endpoint.ip`` (inside
``evidences`` for a Detection Finding, at the top of a Data Security Finding, which has no
``evidences``); the project is a resource; the institution is the user's organisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.watch.exports import fields
from strongroom.watch.states import AlertStatus, Severity

if TYPE_CHECKING:  # annotations only: see the package (issue 55)
    from strongroom.watch.models import AlertRow

OCSF_VERSION = "1.7.0"
FINDINGS = (2, "Findings")
DETECTION_FINDING = (2004, "Detection Finding")
DATA_SECURITY_FINDING = (2006, "Data Security Finding")
ACTIVITIES = {1: "Create", 2: "Update", 3: "Close"}
SEVERITY_ID: dict[Severity, tuple[int, str]] = {
    Severity.INFO: (1, "Informational"),
    Severity.LOW: (2, "Low"),
    Severity.MEDIUM: (3, "Medium"),
    Severity.HIGH: (4, "High"),
    Severity.CRITICAL: (5, "Critical"),
}
STATUS_ID: dict[AlertStatus, tuple[int, str]] = {
    AlertStatus.OPEN: (1, "New"),
    AlertStatus.ACKNOWLEDGED: (2, "In Progress"),
    AlertStatus.RESOLVED: (4, "Resolved"),
}
OBSERVABLE_IP, OBSERVABLE_RESOURCE_UID, OBSERVABLE_USER_UID = 2, 10, 31
ANALYTIC_RULE, ANALYTIC_BEHAVIORAL = (1, "Rule"), (2, "Behavioral")


def activity_id(alert: AlertRow) -> int:
    """Close once resolved; Update after a repeat or an analyst's move; else Create."""
    if alert.status == AlertStatus.RESOLVED:
        return 3
    if alert.count > 1 or alert.status != AlertStatus.OPEN or alert.appeal is not None:
        return 2
    return 1


def class_of(alert: AlertRow) -> tuple[int, str]:
    return DATA_SECURITY_FINDING if fields.is_data_movement(alert) else DETECTION_FINDING


def to_ocsf(alert: AlertRow) -> dict[str, Any]:
    """One alert as an OCSF finding (a JSON object)."""
    class_uid, class_name = class_of(alert)
    activity = activity_id(alert)
    severity_id, severity = SEVERITY_ID[fields.severity(alert)]
    status_id, status = STATUS_ID[fields.status(alert)]
    event: dict[str, Any] = {
        "activity_id": activity, "activity_name": ACTIVITIES[activity],
        "category_uid": FINDINGS[0], "category_name": FINDINGS[1],
        "class_uid": class_uid, "class_name": class_name,
        "type_uid": class_uid * 100 + activity,
        "type_name": f"{class_name}: {ACTIVITIES[activity]}",
        "severity_id": severity_id, "severity": severity,
        "status_id": status_id, "status": status,
        "time": fields.epoch_ms(alert.last_at),
        "start_time": fields.epoch_ms(alert.first_at),
        "end_time": fields.epoch_ms(alert.last_at),
        "count": alert.count,
        "message": alert.title,
        "is_alert": True,
        "metadata": _metadata(alert),
        "finding_info": _finding_info(alert),
        "observables": _observables(alert),
        "unmapped": {"strongroom": _unmapped(alert, class_uid)},
    }
    subject = _actor_and_source(alert)
    if class_uid == DATA_SECURITY_FINDING[0]:
        event.update(subject)
        event["data_security"] = {
            "detection_system_id": 99, "detection_system": fields.PRODUCT,
            "detection_pattern": alert.detector,
            "data_lifecycle_state_id": 2, "data_lifecycle_state": "Data in-Transit",
            "category_id": 1, "category": "Personal",
        }
    else:
        evidence = {**subject, "data": fields.safe_evidence(alert.evidence or {})}
        event["evidences"] = [evidence]
    if alert.project_id is not None:
        event["resources"] = [{"uid": alert.project_id, "type": "project"}]
    return event


def _metadata(alert: AlertRow) -> dict[str, Any]:
    return {
        "version": OCSF_VERSION,
        "product": {"name": fields.PRODUCT, "vendor_name": fields.VENDOR,
                    "version": fields.VERSION},
        "uid": f"{alert.id}-{alert.count}-{alert.status}",
        "event_code": alert.detector,
        "log_name": "watch.alerts",
        "modified_time": fields.epoch_ms(fields.modified_at(alert)),
        "labels": ["strongroom", "watch", fields.family(alert)],
    }


def _finding_info(alert: AlertRow) -> dict[str, Any]:
    analytic = ANALYTIC_RULE if fields.family(alert) == "limit" else ANALYTIC_BEHAVIORAL
    info: dict[str, Any] = {
        "uid": alert.id, "title": alert.title,
        "created_time": fields.epoch_ms(alert.first_at),
        "first_seen_time": fields.epoch_ms(alert.first_at),
        "last_seen_time": fields.epoch_ms(alert.last_at),
        "modified_time": fields.epoch_ms(fields.modified_at(alert)),
        "types": [alert.detector],
        "analytic": {"uid": alert.detector, "name": alert.detector,
                     "type_id": analytic[0], "type": analytic[1]},
        "data_sources": ["strongroom.watch.meter"],
    }
    text = fields.description(alert)
    if text:
        info["desc"] = text
    return info


def _actor_and_source(alert: AlertRow) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if alert.person_id is not None:
        user: dict[str, Any] = {"uid": alert.person_id, "type_id": 1, "type": "User"}
        if alert.institution_id is not None:
            user["org"] = {"uid": alert.institution_id}
        found["actor"] = {"user": user}
    ip = fields.source_ip(alert)
    if ip is not None:
        found["src_endpoint"] = {"ip": ip}
    return found


def _observables(alert: AlertRow) -> list[dict[str, Any]]:
    class_uid = class_of(alert)[0]
    where = "" if class_uid == DATA_SECURITY_FINDING[0] else "evidences[0]."
    found = []
    if alert.person_id is not None:
        found.append({"name": f"{where}actor.user.uid", "type_id": OBSERVABLE_USER_UID,
                      "value": alert.person_id})
    ip = fields.source_ip(alert)
    if ip is not None:
        found.append({"name": f"{where}src_endpoint.ip", "type_id": OBSERVABLE_IP,
                      "value": ip})
    if alert.project_id is not None:
        found.append({"name": "resources[0].uid", "type_id": OBSERVABLE_RESOURCE_UID,
                      "value": alert.project_id})
    return found


def _unmapped(alert: AlertRow, class_uid: int) -> dict[str, Any]:
    extra: dict[str, Any] = {"alert_status": alert.status,
                             "suspensions": list(alert.suspensions or []),
                             "appealed": alert.appeal is not None}
    if alert.resolution is not None:
        extra["resolution"] = alert.resolution
    if class_uid == DATA_SECURITY_FINDING[0]:  # no evidences there: keep the counts here
        extra["evidence"] = fields.safe_evidence(alert.evidence or {})
    return extra
