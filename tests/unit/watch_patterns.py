"""Hand-made meter histories for the detector tests: a normal researcher (office hours,
day-to-day variation, a VPN now and then, scripted token use, busy days, conference trips),
and the helpers that put an observation in its history."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from strongroom.watch.detectors import run_all
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.history import DeclaredWindow, History, Observation, frame_of
from strongroom.watch.signals import Signal

NOW = dt.datetime(2026, 3, 11, 14, 30, tzinfo=dt.UTC)  # a Wednesday afternoon
OFFICE = ("192.0.2.10", "192.0.2.11", "192.0.2.57")
VPN = "198.51.100.20"
HOTEL = "203.0.113.50"
ELSEWHERE = "100.64.7.9"


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Researcher:
    person_id: str = "per_alice"
    institution_id: str = "ins_uni"
    project_id: str = "prj_heart"
    token_id: str = "tok_alice"
    per_day: float = 40.0  # median requests on an active day
    start_hour: int = 8  # office hours, UTC
    end_hour: int = 18
    shapes: int = 12  # kinds of query they keep coming back to

    def obs(self, at: dt.datetime, action: str = "data.analyse", **kw: object) -> Observation:
        base: dict[str, object] = {
            "route": "POST /projects/{project_id}/analyses", "status": 200,
            "person_id": self.person_id, "institution_id": self.institution_id,
            "project_id": self.project_id, "source": OFFICE[0], "via": "session"}
        base.update(kw)
        return Observation(at=at, action=action, **base)  # type: ignore[arg-type]


def day_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def normal_days(r: Researcher, *, days: int = 60, until: dt.datetime = NOW, seed: int = 1,
                busy: Iterable[int] = (), trips: Iterable[int] = (), trip_shift: int = 0,
                scale: float = 1.0) -> list[Observation]:
    """A researcher's requests over ``days`` days before ``until`` (today up to ``until``).

    ``busy``: days back (0 = today) with three times the usual work; ``trips``: days back
    spent at a conference (a hotel network, hours shifted by ``trip_shift``)."""
    rng = np.random.default_rng(seed)
    busy, trips = set(busy), set(trips)
    out: list[Observation] = []
    for back in range(days, -1, -1):
        day = day_of(until) - dt.timedelta(days=back)
        if day.weekday() >= 5 or (rng.random() > 0.9 and back not in busy | trips):
            continue
        # ordinary days vary widely (σ = 0.5 on the log scale); a busy day is about three
        # times the usual, give or take a fifth
        spread = 0.2 if back in busy else 0.5
        count = round(r.per_day * scale * (3 if back in busy else 1)
                      * float(np.exp(rng.normal(0, spread))))
        shift = trip_shift if back in trips else 0
        vpn_day = rng.random() < 0.15
        for _ in range(max(count, 1)):
            hour = rng.uniform(r.start_hour, r.end_hour) + shift
            at = day + dt.timedelta(hours=hour)
            if at >= until:
                continue
            out.append(_request(r, rng, at, HOTEL if back in trips else
                                VPN if vpn_day else str(rng.choice(OFFICE))))
    return sorted(out, key=lambda o: o.at)


def _request(r: Researcher, rng: np.random.Generator, at: dt.datetime,
             source: str) -> Observation:
    kind = rng.random()
    scripted = source in OFFICE and rng.random() < 0.3
    who = {"source": source, "via": "token" if scripted else "session",
           "token_id": r.token_id if scripted else None}
    if kind < 0.55:
        shape = int(rng.integers(r.shapes))
        # now and then a table with a sparse corner: a cell or two just over the threshold
        near = int(rng.integers(1, 3)) if rng.random() < 0.08 else 0
        return r.obs(at, participants=int(rng.integers(5_000, 400_000)),
                     rows_scanned=500_000, query_shape=digest(r.person_id, "shape", shape),
                     query_digest=digest(r.person_id, shape, int(rng.integers(6))),
                     near_threshold=near, **who)
    if kind < 0.8:
        cells = int(rng.integers(20, 300))
        return r.obs(at, "output.download", route="GET /outputs/{output_id}/download",
                     cells=cells, bytes_out=cells * 60, **who)
    return r.obs(at, "project.read", route="GET /projects/{project_id}", **who)


def history_for(obs: Observation, past: Iterable[Observation] | pl.DataFrame = (), *,
                exposed_30d: int = 0, cohort_size: int = 500_000,
                allowance: int | None = None,
                declared: tuple[DeclaredWindow, ...] = ()) -> History:
    """The history a service would build around ``obs`` (every frame includes it)."""
    frame = past if isinstance(past, pl.DataFrame) else frame_of(list(past))
    frame = pl.concat([frame, frame_of([obs])]).filter(pl.col("at") <= obs.at).sort("at")
    window = frame.filter(pl.col("at") >= obs.at - dt.timedelta(days=60))

    def of(column: str, value: str | None) -> pl.DataFrame:
        return window.filter(pl.col(column) == value) if value else window.clear()

    return History(now=obs.at, person=of("person_id", obs.person_id),
                   project=of("project_id", obs.project_id),
                   institution=of("institution_id", obs.institution_id),
                   recent=frame.filter(pl.col("at") >= obs.at - dt.timedelta(hours=1)),
                   exposed_30d=exposed_30d, cohort_size=cohort_size,
                   record_allowance_30d=allowance, declared_jobs=declared)


def judge(obs: Observation, past: Iterable[Observation] | pl.DataFrame = (),
          policy: DetectorPolicy | None = None, **kw: Any) -> list[Signal]:
    """Every detector's signals on ``obs`` in its history (the policy applied)."""
    return run_all(obs, history_for(obs, past, **kw), policy)


def named(signals: list[Signal], detector: str) -> list[Signal]:
    found = [s for s in signals if s.detector == detector]
    for s in found:  # what every signal owes an analyst and a SIEM
        assert s.reasons and all(isinstance(r, str) and r for r in s.reasons)
        assert any(ch.isdigit() for r in s.reasons for ch in r), "reasons give numbers"
        json.dumps(s.evidence)
        assert s.title
    return found


def spaced(start: dt.datetime, count: int, every: dt.timedelta) -> list[dt.datetime]:
    return [start + i * every for i in range(count)]


def last(observations: list[Observation]) -> tuple[Observation, list[Observation]]:
    """The last observation and those before it."""
    return observations[-1], observations[:-1]


__all__ = ["ELSEWHERE", "HOTEL", "NOW", "OFFICE", "VPN", "Researcher", "digest",
           "history_for", "judge", "last", "named", "normal_days", "replace", "spaced"]
