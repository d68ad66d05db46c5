"""Alerts made by hand for the export and lifecycle tests (the watch tables' own rows)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from strongroom.watch.models import AlertRow

AT = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)


def make_alert(**changes: Any) -> AlertRow:
    """An alert as the responder stores it; keyword arguments replace any field."""
    fields: dict[str, Any] = {
        "id": "alr_0123abcd", "detector": "behaviour.off-hours", "severity": "high",
        "status": "open", "dedup_key": "behaviour.off-hours|per_1|prj_1|ins_1|",
        "person_id": "per_1", "institution_id": "ins_1", "project_id": "prj_1",
        "title": "off-hours burst of queries",
        "reasons": ["140 queries between 02:00 and 03:00 UTC; this person's usual is 0 to 3"],
        "evidence": {"queries": 140, "baseline_p99": 3, "source": "10.1.2.3"},
        "first_at": AT, "last_at": AT + dt.timedelta(minutes=5), "count": 1,
        "suspensions": [],
    }
    fields.update(changes)
    return AlertRow(**fields)
