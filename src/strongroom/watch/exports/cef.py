"""Alerts as ArcSight Common Event Format lines (``CEF:0|…``).

Escaping follows the CEF specification (rev. 25): in the six header fields a backslash and a
pipe are escaped (``\\\\``, ``\\|``) and a line break cannot appear (it becomes a space); in
extension values a backslash and an equals sign are escaped (``\\\\``, ``\\=``) and line
breaks are written ``\\n`` / ``\\r``. Extension keys are fixed here, never taken from data.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from strongroom.watch.exports import fields
from strongroom.watch.states import Severity

if TYPE_CHECKING:  # annotations only: see the package (issue 55)
    from strongroom.watch.models import AlertRow

# CEF severity 0–10: 0–3 low, 4–6 medium, 7–8 high, 9–10 very high
SEVERITY: dict[Severity, int] = {Severity.INFO: 1, Severity.LOW: 3, Severity.MEDIUM: 5,
                                 Severity.HIGH: 8, Severity.CRITICAL: 10}
MAX_MSG = 1023  # ArcSight's length for msg and the cs… strings we fill
_KEY = re.compile(r"[A-Za-z0-9_]+\Z")


def escape_header(value: str) -> str:
    flat = re.sub(r"[\r\n]+", " ", value)
    return flat.replace("\\", "\\\\").replace("|", "\\|")


def escape_value(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("=", "\\=")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r"))


def line(header: list[str], extension: list[tuple[str, str]]) -> str:
    """``CEF:0|`` + the six escaped header fields (vendor, product, version, signature id,
    name, severity) + ``|`` + ``key=value`` pairs separated by spaces (keys checked)."""
    if len(header) != 6:
        raise ValueError("a CEF header has six fields after CEF:0")
    for key, _ in extension:
        if not _KEY.match(key):
            raise ValueError(f"{key!r} is not a CEF extension key")
    head = "|".join(escape_header(h) for h in header)
    tail = " ".join(f"{k}={escape_value(v)}" for k, v in extension)
    return f"CEF:0|{head}|{tail}"


def to_cef(alert: AlertRow) -> str:
    """One alert as one CEF line (no line breaks, whatever its text holds)."""
    header = [fields.VENDOR, fields.PRODUCT, fields.VERSION, alert.detector, alert.title,
              str(SEVERITY[fields.severity(alert)])]
    pairs: list[tuple[str, str]] = [
        ("rt", str(fields.epoch_ms(alert.last_at))),
        ("start", str(fields.epoch_ms(alert.first_at))),
        ("end", str(fields.epoch_ms(alert.last_at))),
        ("cnt", str(alert.count)),
        ("externalId", alert.id),
        ("cat", "data-movement" if fields.is_data_movement(alert) else "behaviour"),
    ]
    if alert.person_id is not None:
        pairs.append(("suid", alert.person_id))
    ip = fields.source_ip(alert)
    if ip is not None:
        pairs.append(("src", ip))
    custom = [("project", alert.project_id), ("institution", alert.institution_id),
              ("status", alert.status),
              ("suspensions", ",".join(alert.suspensions or []) or None),
              ("evidence", json.dumps(fields.safe_evidence(alert.evidence or {}),
                                      sort_keys=True, separators=(",", ":"))[:MAX_MSG])]
    for n, (label, value) in enumerate(custom, start=1):
        if value is not None:
            pairs += [(f"cs{n}Label", label), (f"cs{n}", value)]
    if alert.suspensions:
        pairs.append(("act", "suspended"))
    text = fields.description(alert)
    if text:
        pairs.append(("msg", text[:MAX_MSG]))
    return line(header, pairs)
