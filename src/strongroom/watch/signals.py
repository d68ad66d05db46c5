"""What a detector or a limit reports: a signal, which the responder turns into an alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strongroom.watch.states import Severity


@dataclass(frozen=True)
class Subject:
    """Whom a signal is about (any may be None: an unknown caller has no person)."""

    person_id: str | None = None
    institution_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class Signal:
    detector: str  # stable name, e.g. "drip.coverage", "limit.record-level"
    severity: Severity
    subject: Subject
    title: str  # one line for a list of alerts
    reasons: list[str]  # sentences an analyst understands; no participant values
    evidence: dict[str, Any] = field(default_factory=dict)  # counts, digests, thresholds
    suspend: bool = False  # the detector's policy asks for automatic suspension
    # alerts with the same key on the same subject are one alert with a count
    dedup: str = ""

    @property
    def dedup_key(self) -> str:
        s = self.subject
        return "|".join([self.detector, s.person_id or "-", s.project_id or "-",
                         s.institution_id or "-", self.dedup])
