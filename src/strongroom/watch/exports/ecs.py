"""Alerts as Elastic Common Schema (ECS 8.11) documents, ``event.kind: alert``.

The detector is the rule (``rule.id``/``rule.name``), the alert id is ``event.id``, the person
``user.id``, the institution ``organization.id``, the recorded address ``source.ip``; what ECS
has no field for (project, status, count, suspensions, evidence numbers) goes in ``labels``,
whose values ECS keeps as keywords.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.watch.exports import fields
from strongroom.watch.states import Severity

if TYPE_CHECKING:  # annotations only: see the package (issue 55)
    from strongroom.watch.models import AlertRow

ECS_VERSION = "8.11.0"
# event.severity: the same 0–10 scale as CEF; event.risk_score: Elastic's own rule scale
SEVERITY: dict[Severity, int] = {Severity.INFO: 1, Severity.LOW: 3, Severity.MEDIUM: 5,
                                 Severity.HIGH: 8, Severity.CRITICAL: 10}
RISK_SCORE: dict[Severity, float] = {Severity.INFO: 0.0, Severity.LOW: 21.0,
                                     Severity.MEDIUM: 47.0, Severity.HIGH: 73.0,
                                     Severity.CRITICAL: 99.0}


def categories(alert: AlertRow) -> tuple[list[str], list[str]]:
    """``event.category`` and ``event.type`` (each type expected by one of the categories)."""
    category = ["intrusion_detection"]
    kinds = ["info"]
    if fields.is_data_movement(alert):
        category.append("database")
    if fields.family(alert) == "limit":
        kinds.append("denied")  # the request over the limit was refused before it ran
    return category, kinds


def to_ecs(alert: AlertRow) -> dict[str, Any]:
    """One alert as an ECS document (nested objects, as Elasticsearch stores them)."""
    level = fields.severity(alert)
    category, kinds = categories(alert)
    event: dict[str, Any] = {
        "kind": "alert", "category": category, "type": kinds,
        "severity": SEVERITY[level], "risk_score": RISK_SCORE[level],
        "id": alert.id, "code": alert.detector, "action": alert.detector,
        "created": fields.iso(alert.first_at), "start": fields.iso(alert.first_at),
        "end": fields.iso(alert.last_at),
        "dataset": "strongroom.watch", "module": "strongroom", "provider": "strongroom-watch",
    }
    text = fields.description(alert)
    if text:
        event["reason"] = text[:1024]
    document: dict[str, Any] = {
        "@timestamp": fields.iso(alert.last_at),
        "ecs": {"version": ECS_VERSION},
        "message": alert.title,
        "tags": ["strongroom", "watch", fields.family(alert)],
        "event": event,
        "rule": {"id": alert.detector, "name": alert.detector,
                 "ruleset": "strongroom-watch",
                 "category": "data movement" if fields.is_data_movement(alert)
                 else "behaviour"},
        "labels": _labels(alert),
    }
    if alert.person_id is not None:
        document["user"] = {"id": alert.person_id}
    if alert.institution_id is not None:
        document["organization"] = {"id": alert.institution_id}
    ip = fields.source_ip(alert)
    if ip is not None:
        document["source"] = {"ip": ip, "address": ip}
    return document


def _labels(alert: AlertRow) -> dict[str, str]:
    labels = {"alert_status": alert.status, "alert_count": str(alert.count),
              "severity": alert.severity,
              "suspended": "true" if alert.suspensions else "false",
              "appealed": "true" if alert.appeal is not None else "false"}
    if alert.project_id is not None:
        labels["project_id"] = alert.project_id
    if alert.suspensions:
        labels["suspensions"] = ",".join(alert.suspensions)
    for name, value in fields.scalar_evidence(alert).items():
        labels[f"evidence_{name}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return labels
