"""What every export format takes from an alert, decided once.

An export carries the alert's own fields only: ids of the person, project and institution, the
detector, its sentences, and the evidence the detector recorded (counts, digests and thresholds
by the contract of :class:`strongroom.watch.signals.Signal`). Evidence is copied through
:func:`safe_evidence`, which keeps plain JSON of bounded size, so that nothing large or
unexpected (a list of participants, a blob) can ride along even if a detector misbehaved.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from typing import TYPE_CHECKING, Any

import strongroom
from strongroom.watch.states import AlertStatus, Severity

if TYPE_CHECKING:  # annotations only: see the package (issue 55)
    from strongroom.watch.models import AlertRow

VENDOR = "Strongroom"
PRODUCT = "Strongroom Watch"
VERSION = strongroom.__version__

# Detector families (the name before the first ".") that watch data leaving: these alerts are
# OCSF Data Security Findings and carry the ECS "database" category.
DATA_MOVEMENT = frozenset({"limit", "coverage", "drip", "bulk", "export"})

MAX_STRING = 200  # longest evidence string kept
MAX_ITEMS = 50  # most keys or list items kept at any level
MAX_DEPTH = 3


def family(alert: AlertRow) -> str:
    return alert.detector.split(".", 1)[0]


def is_data_movement(alert: AlertRow) -> bool:
    return family(alert) in DATA_MOVEMENT


def severity(alert: AlertRow) -> Severity:
    return Severity(alert.severity)


def status(alert: AlertRow) -> AlertStatus:
    return AlertStatus(alert.status)


def epoch_ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def iso(at: dt.datetime) -> str:
    """UTC with milliseconds and a Z, as SIEMs parse most reliably."""
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def modified_at(alert: AlertRow) -> dt.datetime:
    """The latest moment the alert changed (seen again, acknowledged, resolved, appealed)."""
    times = [alert.last_at, alert.acknowledged_at, alert.resolved_at, alert.appealed_at]
    return max(t for t in times if t is not None)


def description(alert: AlertRow) -> str:
    return " ".join(str(r).strip() for r in alert.reasons or [] if str(r).strip())


def source_ip(alert: AlertRow) -> str | None:
    """The network address a detector recorded as evidence (``source``), if it is one."""
    value = (alert.evidence or {}).get("source")
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def safe_evidence(evidence: Any, depth: int = 0) -> Any:
    """``evidence`` as plain, bounded JSON: numbers, booleans, short strings, small lists."""
    if evidence is None or isinstance(evidence, bool | int):
        return evidence
    if isinstance(evidence, float):
        return evidence if math.isfinite(evidence) else None
    if isinstance(evidence, str):
        return evidence[:MAX_STRING]
    if depth >= MAX_DEPTH:
        return None
    if isinstance(evidence, dict):
        return {str(k)[:64]: safe_evidence(v, depth + 1)
                for k, v in list(evidence.items())[:MAX_ITEMS]}
    if isinstance(evidence, list | tuple):
        return [safe_evidence(v, depth + 1) for v in list(evidence)[:MAX_ITEMS]]
    return None


def scalar_evidence(alert: AlertRow) -> dict[str, str | int | float | bool]:
    """The top-level evidence that is one number, flag or short word (for flat formats)."""
    kept = safe_evidence(alert.evidence or {})
    return {k: v for k, v in kept.items()
            if isinstance(v, bool | int | float | str) and k.replace("_", "").isalnum()}
