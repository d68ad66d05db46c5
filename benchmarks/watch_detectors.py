"""The watch's detectors offline: their cost per call, and what they say about normal work.

    python benchmarks/watch_detectors.py [--partners 50] [--days 180] [--seed 7] [--json PATH]

A normal workload is generated as meter rows (no server: this measures the detectors alone,
the simulation benchmark drives the real service): partners of three kinds — light (1 to 6
analyses a working day, as in the simulation), steady (20 to 60 requests) and scripted
(100 to 250, much of it through an API token) — each with office hours in its own time zone,
day-to-day variation, busy days (three times the usual), conference trips (another network,
hours shifted by up to six), VPN days, quiet weekends and, for a quarter of them,
occasional record-level extracts of a few thousand participants; three partners run an
approved declared job of 30,000. Every light partner's request is judged in its history, a
sample of the others' and the last request of every day (when a day's totals peak).

Prints Markdown: the time ``run_all`` takes per call, and for each detector the alerts it
raised on this normal work per 1,000 partner-days, and the false suspensions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from strongroom.watch.detectors import run_all
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.history import METER_SCHEMA, DeclaredWindow, History

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday
COHORT = 500_000
ALLOWANCE = 20_000


@dataclass
class Partner:
    index: int
    kind: str
    per_day: float
    start_hour: float
    exports: bool
    job_day: int | None = None
    rows: list[dict[str, object]] = field(default_factory=list)
    exposures: list[tuple[dt.datetime, np.ndarray]] = field(default_factory=list)

    @property
    def person(self) -> str:
        return f"per_{self.index:03d}"


def build(partners: int, days: int, rng: np.random.Generator) -> list[Partner]:
    out = []
    for i in range(partners):
        kind = ("light", "steady", "scripted")[i % 3]
        per_day = {"light": rng.uniform(1, 6) * 1.6, "steady": rng.uniform(20, 60),
                   "scripted": rng.uniform(100, 250)}[kind]
        zone = float(rng.choice([0, 0, 0, 1, -5, 8]))
        p = Partner(i, kind, per_day, float(rng.normal(9, 0.8)) - zone, i % 4 == 0)
        _work(p, days, rng)
        out.append(p)
    for k, p in enumerate([p for p in out if p.exports][:3]):
        p.job_day = days // 2 + 7 * k
        _job(p, rng)
    return out


def _work(p: Partner, days: int, rng: np.random.Generator) -> None:
    home = f"10.{p.index}.1."
    site = f"10.{p.index}.130."
    for day in range(days):
        date = START + dt.timedelta(days=day)
        weekend = date.weekday() >= 5
        busy = rng.random() < 0.05
        trip = rng.random() < 0.05
        vpn = rng.random() < 0.15
        rate = p.per_day * (0.05 if weekend else 1.0) * (3 if busy else 1)
        count = int(rng.poisson(rate * float(np.exp(rng.normal(0, 0.2 if busy else 0.5)))))
        shift = float(rng.choice([0, 3, 6, -6])) if trip else 0.0
        start = p.start_hour + shift + float(rng.normal(0, 0.5))
        net = site if trip else f"10.{p.index}.77." if vpn else home
        for _ in range(count):
            at = date + dt.timedelta(hours=start + float(rng.uniform(0, 9)))
            p.rows.append(_request(p, at, net + str(int(rng.integers(2, 250))), rng))
        if p.exports and not weekend and rng.random() < 0.02:
            at = date + dt.timedelta(hours=start + 2)
            size = int(rng.integers(500, 3_000))
            first = int(rng.integers(0, COHORT - size))
            p.exposures.append((at, np.arange(first, first + size)))
            p.rows.append(_row(p, at, "data.export", home + "9", record_rows=size,
                               participants=size, bytes_out=size * 400,
                               query_shape="extract", query_digest=f"extract{first}"))


def _job(p: Partner, rng: np.random.Generator) -> None:
    assert p.job_day is not None
    at = START + dt.timedelta(days=p.job_day, hours=10)
    for page in range(3):
        when = at + dt.timedelta(minutes=20 * page)
        p.exposures.append((when, np.arange(10_000 * page, 10_000 * (page + 1))))
        p.rows.append(_row(p, when, "data.export", f"10.{p.index}.1.9", record_rows=10_000,
                           participants=10_000, bytes_out=4_000_000, query_shape="job",
                           query_digest=f"job{page}"))


def _request(p: Partner, at: dt.datetime, source: str,
             rng: np.random.Generator) -> dict[str, object]:
    token = p.kind == "scripted" or rng.random() < 0.2
    kind = rng.random()
    if kind < 0.6:
        shape = int(rng.integers(15))
        return _row(p, at, "data.analyse", source, token=token,
                    participants=int(rng.integers(5_000, 400_000)),
                    near_threshold=int(rng.integers(1, 3)) if rng.random() < 0.08 else 0,
                    query_shape=f"s{shape}", query_digest=f"s{shape}.{int(rng.integers(8))}")
    if kind < 0.85:
        cells = int(rng.integers(20, 300))
        return _row(p, at, "output.download", source, token=token, cells=cells,
                    bytes_out=cells * 60)
    return _row(p, at, "project.read", source, token=token)


def _row(p: Partner, at: dt.datetime, action: str, source: str, token: bool = False,
         **counts: object) -> dict[str, object]:
    row: dict[str, object] = {name: 0 for name in METER_SCHEMA if METER_SCHEMA[name] ==
                              pl.Int64()}
    row.update(at=at, person_id=p.person, institution_id=f"ins_{p.index:03d}",
               project_id=f"prj_{p.index:03d}", token_id=f"tok_{p.index:03d}" if token else None,
               source=source, via="token" if token else "session", action=action,
               route=action, status=200, query_digest=None, query_shape=None, duration_ms=0.0)
    row.update(counts)
    return row


def judge(partners: list[Partner], rng: np.random.Generator, policy: DetectorPolicy
          ) -> dict[str, object]:
    sample = {"light": 1.0, "steady": 0.3, "scripted": 0.06}
    alerts: Counter[tuple[str, str]] = Counter()
    notable: list[str] = []
    seen: set[tuple[int, str, str, str]] = set()
    suspensions: set[tuple[int, str]] = set()
    on_jobs: set[tuple[int, str]] = set()
    times: dict[str, list[float]] = {"light": [], "steady": [], "scripted": []}
    for p in partners:
        frame = pl.DataFrame(p.rows, schema=METER_SCHEMA).sort("at")
        stamps = frame["at"].to_numpy()
        days = stamps.astype("datetime64[D]")
        last_of_day = np.r_[days[1:] != days[:-1], True]
        pick = (rng.random(frame.height) < sample[p.kind]) | last_of_day | (
            frame["record_rows"].to_numpy() > 0)
        jobs = () if p.job_day is None else (DeclaredWindow(
            f"job_{p.index}", START + dt.timedelta(days=p.job_day),
            START + dt.timedelta(days=p.job_day + 3)),)
        for i in np.flatnonzero(pick):
            now = frame["at"][int(i)]
            lo = int(np.searchsorted(stamps, np.datetime64(
                (now - dt.timedelta(days=60)).replace(tzinfo=None), "us")))
            window = frame.slice(lo, int(i) + 1 - lo)
            in_force = any(j.in_force(now) for j in jobs)
            exposed = _exposed(p, now)
            history = History(now=now, person=window, project=window, institution=window,
                              recent=window.tail(400), exposed_30d=exposed,
                              cohort_size=COHORT,
                              record_allowance_30d=ALLOWANCE + (30_000 if in_force else 0),
                              declared_jobs=jobs)
            obs = _observation(window.row(window.height - 1, named=True))
            started = time.perf_counter()
            signals = run_all(obs, history, policy)
            times[p.kind].append((time.perf_counter() - started) * 1000)
            day = now.date().isoformat()
            for s in signals:
                key = (p.index, day, s.detector, s.severity.value)
                if key not in seen:
                    seen.add(key)
                    alerts[(s.detector, s.severity.value)] += 1
                    if s.severity.value not in ("info", "low"):
                        notable.append(f"{p.kind} {p.person} {day}: {s.detector} "
                                       f"{s.severity.value}: {s.title}")
                if s.suspend:
                    suspensions.add((p.index, day))
                    if jobs:
                        on_jobs.add((p.index, day))
    return {"alerts": alerts, "suspensions": sorted(suspensions), "on_jobs": sorted(on_jobs),
            "times": times, "notable": notable}


def _exposed(p: Partner, now: dt.datetime) -> int:
    sets = [ids for at, ids in p.exposures if now - dt.timedelta(days=30) <= at <= now]
    return int(np.unique(np.concatenate(sets)).size) if sets else 0


def _observation(row: dict[str, object]) -> object:
    from strongroom.watch.history import Observation

    return Observation(**row)  # type: ignore[arg-type]


def report(partners: list[Partner], days: int, result: dict[str, object]) -> dict[str, object]:
    partner_days = len(partners) * days
    times = result["times"]
    assert isinstance(times, dict)
    alerts = result["alerts"]
    assert isinstance(alerts, Counter)
    suspensions = result["suspensions"]
    assert isinstance(suspensions, list)
    calls = sum(len(v) for v in times.values())
    rows = sum(len(p.rows) for p in partners)
    print(f"## Watch detectors (offline)\n\n{len(partners)} partners × {days} days = "
          f"{partner_days:,} partner-days of normal work, {rows:,} meter rows; {calls:,} "
          f"requests judged in their history.\n")
    print("| partners | rows a day (median) | run_all p50 | p99 |\n|---|---|---|---|")
    figures: dict[str, object] = {"partner_days": partner_days, "judged": calls}
    for kind, values in times.items():
        group = [p for p in partners if p.kind == kind]
        per_day = statistics.median(len(p.rows) / days * 7 / 5 for p in group)
        p50, p99 = np.percentile(values, 50), np.percentile(values, 99)
        figures[f"ms_{kind}"] = {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}
        print(f"| {kind} ({len(group)}) | {per_day:,.0f} | {p50:.2f} ms | {p99:.2f} ms |")
    print("\n| detector | severity | alerts on normal work | per 1,000 partner-days |\n"
          "|---|---|---|---|")
    for (detector, severity), count in sorted(alerts.items()):
        print(f"| `{detector}` | {severity} | {count:,} | {1000 * count / partner_days:.2f} |")
    notable = result["notable"]
    assert isinstance(notable, list)
    if notable:
        print("\nAlerts at medium or above on normal work (first 15):\n")
        print("\n".join(f"- {line}" for line in notable[:15]))
    rate = len(suspensions) / partner_days
    print(f"\nFalse suspensions: {len(suspensions)} partner-days of {partner_days:,} "
          f"({100 * rate:.3f} %; target ≤ 0.1 %); on declared jobs: "
          f"{len(result['on_jobs'])}.")  # type: ignore[arg-type]
    figures.update(false_suspension_days=len(suspensions), false_suspension_rate=rate,
                   alerts={f"{d}|{s}": c for (d, s), c in alerts.items()},
                   suspended=suspensions[:20])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    partners = build(args.partners, args.days, rng)
    figures = report(partners, args.days, judge(partners, rng, DetectorPolicy()))
    line = json.dumps(figures)
    if args.json:
        args.json.write_text(line)
    else:
        print(line)


if __name__ == "__main__":
    main()
