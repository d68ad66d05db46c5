"""What detectors read: the request just metered and the recent history around it.

Detectors are pure functions of an :class:`Observation` and a :class:`History` (Polars frames
of meter rows), so they can be tested on hand-made frames and run the same in the service and
in the simulation. They read queries, counts and what was already released — never an answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import polars as pl

from strongroom.watch.models import MeterRow

# The meter columns a history frame carries, with their Polars types.
METER_SCHEMA: dict[str, pl.DataType] = {
    "at": pl.Datetime("us", "UTC"),
    "person_id": pl.String(),
    "institution_id": pl.String(),
    "project_id": pl.String(),
    "token_id": pl.String(),
    "source": pl.String(),
    "via": pl.String(),
    "action": pl.String(),
    "route": pl.String(),
    "status": pl.Int64(),
    "rows_scanned": pl.Int64(),
    "participants": pl.Int64(),
    "cells": pl.Int64(),
    "bytes_out": pl.Int64(),
    "record_rows": pl.Int64(),
    "near_threshold": pl.Int64(),
    "differencing": pl.Int64(),
    "differencing_within": pl.Int64(),
    "walls": pl.Int64(),
    "diverged": pl.Int64(),
    "late": pl.Int64(),
    "query_digest": pl.String(),
    "query_shape": pl.String(),
    "duration_ms": pl.Float64(),
}


@dataclass(frozen=True)
class Observation:
    """One metered request (or one security event from the audit log, e.g. a failed MFA:
    then ``action`` is the audit event type, such as ``auth.mfa.failed``)."""

    at: dt.datetime
    action: str
    route: str
    status: int
    person_id: str | None = None
    institution_id: str | None = None
    project_id: str | None = None
    token_id: str | None = None
    source: str | None = None
    via: str | None = None
    rows_scanned: int = 0
    participants: int = 0
    cells: int = 0
    bytes_out: int = 0
    record_rows: int = 0
    near_threshold: int = 0
    differencing: int = 0
    differencing_within: int = 0
    walls: int = 0  # a job's tries at its sandbox's walls (network, other programs)
    # a job whose real run ended otherwise than its dummy run (failed, planned or wrote
    # otherwise, met other walls): 1; one seen to end at a late step of the ladder: ``late`` 1
    diverged: int = 0
    late: int = 0
    query_digest: str | None = None
    query_shape: str | None = None
    duration_ms: float = 0.0

    def to_row(self) -> MeterRow:
        return MeterRow(**{f.name: getattr(self, f.name) for f in fields(self)})


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=METER_SCHEMA)


def frame_of(observations: list[Observation]) -> pl.DataFrame:
    """A history frame from observations (tests and the simulation build them this way)."""
    if not observations:
        return empty_frame()
    return pl.DataFrame([{name: getattr(o, name) for name in METER_SCHEMA}
                         for o in observations], schema=METER_SCHEMA)


@dataclass(frozen=True)
class DeclaredWindow:
    """An approved declared job of the project: what it may take out is expected, not an
    anomaly, while it runs and afterwards."""

    job_id: str
    starts_at: dt.datetime
    ends_at: dt.datetime

    def in_force(self, now: dt.datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True)
class History:
    """Meter rows around an observation (each frame includes the observation itself).

    ``person``, ``project`` and ``institution``: that subject's rows over the look-back window
    (default 60 days), oldest first. ``recent``: the last hour's rows, platform-wide, that
    share the request's API token or its source address, oldest first (for detectors that
    count across people: a refused token's uses, failed sign-ins from one address).
    ``exposed_30d``: distinct participants the project has received record-level in the last
    30 days, including this request; ``cohort_size``: participants in the cohort.
    ``record_allowance_30d``: the project's limit of distinct participants record-level per
    30 days, declared jobs in force included (None: not known, detectors use the default).
    ``declared_jobs``: the project's approved declared jobs whose window overlaps the last
    30 days (those in force at ``now`` cap the volume detectors; rows inside any window are
    left out of the drip and coverage reckoning).
    """

    now: dt.datetime
    person: pl.DataFrame
    project: pl.DataFrame
    institution: pl.DataFrame
    recent: pl.DataFrame
    exposed_30d: int = 0
    cohort_size: int = 0
    record_allowance_30d: int | None = None
    declared_jobs: tuple[DeclaredWindow, ...] = ()
