"""Alerts in the formats security teams already ingest: OCSF and ECS JSON, CEF lines (sent
over syslog), and HMAC-signed webhooks. Only the alert's own fields are exported."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from strongroom.watch.exports.cef import to_cef
from strongroom.watch.exports.ecs import to_ecs
from strongroom.watch.exports.ocsf import to_ocsf

# the alerts' database model is named in annotations only, here and in the formats' modules:
# Format is then read without the database layer (`strongroom watch --help`, issue 55)
if TYPE_CHECKING:
    from strongroom.watch.models import AlertRow


class Format(StrEnum):
    OCSF = "ocsf"
    ECS = "ecs"
    CEF = "cef"


MEDIA_TYPES = {Format.OCSF: "application/json", Format.ECS: "application/json",
               Format.CEF: "text/plain"}


def document(alert: AlertRow, fmt: Format) -> dict[str, Any]:
    """The JSON formats as objects."""
    if fmt is Format.OCSF:
        return to_ocsf(alert)
    if fmt is Format.ECS:
        return to_ecs(alert)
    raise ValueError(f"{fmt.value} is not a JSON format")


def render(alert: AlertRow, fmt: Format) -> str:
    """One alert as one line of text: compact JSON (OCSF, ECS) or a CEF line."""
    if fmt is Format.CEF:
        return to_cef(alert)
    return json.dumps(document(alert, fmt), separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False)
