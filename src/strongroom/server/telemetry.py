"""Health and telemetry for the platform team: readiness and Prometheus metrics.

Counts and timings only, by route template (never a concrete path, an ID, a person or a
value): requests by method and status, their latency, refusals, the alerts watch raises by
detector, and the audit writer's lag. Each application has its own registry, so two servers
in one process (the tests) never mix their figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import text

from strongroom.platform import Platform

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Telemetry:
    """The metrics of one application."""

    def __init__(self, platform: Platform | None):
        self.registry = CollectorRegistry()
        self.requests = Counter("strongroom_requests", "Requests answered, by route template, "
                                "method and status", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("strongroom_request_seconds", "Time to answer a request, by "
                                 "route template", ["route"], buckets=BUCKETS,
                                 registry=self.registry)
        self.refusals = Counter("strongroom_refusals", "Requests refused (4xx), by route "
                                "template and status", ["route", "status"],
                                registry=self.registry)
        self.alerts = Counter("strongroom_alerts", "Alerts raised by watch, by detector",
                              ["detector"], registry=self.registry)
        if platform is not None:
            audit = platform.audit
            Gauge("strongroom_audit_queue", "Audit events waiting for the writer",
                  registry=self.registry).set_function(lambda: audit.pending)
            Gauge("strongroom_audit_unsigned", "Audit entries since the latest signed "
                  "checkpoint", registry=self.registry).set_function(audit.unsigned)
            Gauge("strongroom_audit_writing", "1 while the audit writer records, 0 once it "
                  "has stopped (then nothing runs)", registry=self.registry).set_function(
                lambda: 1.0 if audit.writing else 0.0)

    def observe(self, route: str, method: str, status: int, seconds: float,
                alerts: list[str]) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if 400 <= status < 500:
            self.refusals.labels(route, str(status)).inc()
        for detector in alerts:
            self.alerts.labels(detector).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]  # each check: "ok", or what is wrong (never a secret)


def readiness(platform: Platform | None) -> Readiness:
    """Whether this server can serve: its database answers, its key is the store's, and the
    audit writer records (without which nothing runs)."""
    if platform is None:
        return Readiness(False, {"platform": "no data directory is open"})
    checks: dict[str, str] = {}
    try:
        with platform.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # any failure is "not ready", said without its details
        checks["database"] = "the metadata database does not answer"
    key = platform.store.key
    checks["key"] = ("ok" if key is not None and key.key_id == platform.store.config.key_id
                     else "the master key is missing or is not this store's")
    checks["audit"] = ("ok" if platform.audit.writing else
                       "the audit writer has stopped, so every request is refused")
    return Readiness(all(v == "ok" for v in checks.values()), checks)
