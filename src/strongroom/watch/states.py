"""Alert severities and the alert lifecycle, as data (a test checks the table is complete)."""

from __future__ import annotations

from enum import StrEnum

from strongroom.errors import Conflict


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RANK: dict[Severity, int] = {s: i for i, s in enumerate(Severity)}


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    REOPEN = "reopen"


TRANSITIONS: dict[AlertStatus, dict[AlertAction, AlertStatus]] = {
    AlertStatus.OPEN: {AlertAction.ACKNOWLEDGE: AlertStatus.ACKNOWLEDGED,
                       AlertAction.RESOLVE: AlertStatus.RESOLVED},
    AlertStatus.ACKNOWLEDGED: {AlertAction.RESOLVE: AlertStatus.RESOLVED},
    AlertStatus.RESOLVED: {AlertAction.REOPEN: AlertStatus.OPEN},
}


def advance(current: AlertStatus, action: AlertAction, alert_id: str) -> AlertStatus:
    table = TRANSITIONS[current]
    if action not in table:
        allowed = ", ".join(a.value for a in table) or "nothing"
        raise Conflict(f"alert {alert_id} is {current.value}: it cannot {action.value}; "
                       f"from {current.value} it can {allowed}")
    return table[action]
