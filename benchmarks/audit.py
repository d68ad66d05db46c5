"""Audit log benchmark: durable append throughput and latency, and verification time.

    python benchmarks/audit.py [--events N] [--threads T] [--verify-events N]

1. ``--threads`` threads append to a fresh SQLite log (WAL, synchronous=FULL) until ``--events``
   are in; every append returns only once its entry is committed. Reports events/s and the
   p50/p99 latency of single appends.
2. A change and its event, each thread committing a one-row change then recording its event,
   two ways in the same run: as before the outbox (commit the change, then ``append``: the
   anchor) and through it (the change and its outbox row in one transaction, then wait until the
   writer has drained it into the log). Reported as the ratio outbox ÷ anchor.
3. A log of ``--verify-events`` entries is bulk-loaded (the rows ``append`` would write, with a
   signed checkpoint every 1,000 entries and a witness file), then verified from a fresh engine.

The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from strongroom.audit import (
    AuditEvent,
    AuditLog,
    Checkpoint,
    EventType,
    salt_key_from_secret,
    signing_key_from_secret,
)
from strongroom.audit.checkpoints import append_witness
from strongroom.audit.log import checkpoint_row, entry_row
from strongroom.audit.merkle import Frontier
from strongroom.audit.tables import CHECKPOINTS, ENTRIES
from strongroom.audit.verify import verify
from strongroom.db import create_all, make_engine

SECRET = bytes(range(32))
TYPES = [EventType.DATA_ACCESSED, EventType.AUTH_LOGIN_SUCCEEDED, EventType.ACCESS_REFUSED,
         EventType.PROJECT_MEMBER_ADDED, EventType.AUTH_TOKEN_ISSUED]


def event(i: int, at: dt.datetime | None = None) -> AuditEvent:
    """A typical event: a person, a project, a few details, a hashed address."""
    return AuditEvent(
        type=TYPES[i % len(TYPES)],
        actor=f"per_{i % 997:06d}",
        subject=f"prj_{i % 89:04d}",
        details={"via": "session", "fields": [31, 34, 21001], "rows": i % 5000},
        sensitive={"source": f"10.{i % 251}.{i % 13}.{i % 7}"},
        at=at,
    )


CHANGES = Table("bench_changes", MetaData(), Column("id", Integer, primary_key=True),
                Column("what", String(64)))


def bench_append(where: Path, events: int, threads: int, *,
                 mode: str = "append") -> dict[str, float]:
    """``mode``: "append" (events alone), "change+append" (the anchor), "change+outbox"."""
    name = {"append": "append", "change+append": "anchor", "change+outbox": "outbox"}[mode]
    engine = make_engine(f"sqlite:///{where / f'{name}.db'}")
    create_all(engine)
    CHANGES.create(engine)
    log = AuditLog(engine, signing_key=signing_key_from_secret(SECRET),
                   salt_key=salt_key_from_secret(SECRET), witness=where / f"{name}.jsonl")
    per_thread = events // threads
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def record(e: AuditEvent) -> None:
        if mode == "append":
            log.append(e)
            return
        with engine.begin() as conn:
            conn.execute(insert(CHANGES).values(what=str(e.subject)))
            if mode == "change+outbox":
                log.stage(conn, e)
        if mode == "change+outbox":
            log.drain()
        else:
            log.append(e)

    def work(k: int) -> None:
        mine = latencies[k]
        for i in range(per_thread):
            t0 = time.perf_counter()
            record(event(k * per_thread + i))
            mine.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    log.close()
    engine.dispose()
    flat = sorted(x for mine in latencies for x in mine)
    quantiles = statistics.quantiles(flat, n=100, method="inclusive")
    return {f"{name}_events_per_s": len(flat) / seconds,
            f"{name}_p50_ms": quantiles[49] * 1000, f"{name}_p99_ms": quantiles[98] * 1000,
            f"{name}_threads": threads}


def build(where: Path, n: int, every: int = 1000) -> Path:
    """A log of ``n`` entries exactly as append writes them, loaded in bulk."""
    engine = make_engine(f"sqlite:///{where / 'verify.db'}")
    create_all(engine)
    key = signing_key_from_secret(SECRET)
    salt = salt_key_from_secret(SECRET)
    witness = where / "verify.jsonl"
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    frontier = Frontier()
    chunk = 50_000
    for lo in range(0, n, chunk):
        rows, checkpoints = [], []
        for seq in range(lo, min(lo + chunk, n)):
            at = base + dt.timedelta(milliseconds=seq)
            row = entry_row(seq, event(seq, at), salt, at)
            rows.append(row)
            frontier.append(row["leaf_hash"])
            if frontier.size % every == 0 or frontier.size == n:
                cp = Checkpoint.sign(key, frontier.size, frontier.root(), at)
                checkpoints.append(checkpoint_row(cp, frontier))
                append_witness(witness, cp, key.public_key())
        with engine.begin() as conn:
            conn.execute(insert(ENTRIES), rows)
            conn.execute(insert(CHECKPOINTS), checkpoints)
    engine.dispose()
    return witness


def bench_verify(where: Path, n: int) -> dict[str, float]:
    start = time.perf_counter()
    witness = build(where, n)
    print(f"built {n:,} entries in {time.perf_counter() - start:.1f} s", flush=True)
    engine = make_engine(f"sqlite:///{where / 'verify.db'}")
    report = verify(engine, public_key=signing_key_from_secret(SECRET).public_key(),
                    witness=witness)
    engine.dispose()
    if not report.ok or report.entries != n:
        raise SystemExit(f"verification failed: {report.summary()}")
    return {"verify_events": n, "verify_s": report.seconds,
            "verify_checkpoints": report.checkpoints}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strongroom-audit-bench-") as tmp:
        figures: dict[str, float] = {}
        figures |= bench_append(Path(tmp), args.events, args.threads)
        print(f"append: {figures['append_events_per_s']:,.0f} events/s, "
              f"p50 {figures['append_p50_ms']:.2f} ms, p99 {figures['append_p99_ms']:.2f} ms "
              f"({args.threads} threads)", flush=True)
        for mode in ("change+append", "change+outbox"):
            figures |= bench_append(Path(tmp), args.events, args.threads, mode=mode)
        figures["outbox_to_anchor"] = (figures["outbox_events_per_s"]
                                       / figures["anchor_events_per_s"])
        for name in ("anchor", "outbox"):
            print(f"{name} (change, then its event): {figures[f'{name}_events_per_s']:,.0f} "
                  f"changes/s, p50 {figures[f'{name}_p50_ms']:.2f} ms, "
                  f"p99 {figures[f'{name}_p99_ms']:.2f} ms", flush=True)
        print(f"outbox ÷ anchor: {figures['outbox_to_anchor']:.2f}", flush=True)
        figures |= bench_verify(Path(tmp), args.verify_events)
        print(f"verify {args.verify_events:,}: {figures['verify_s']:.2f} s", flush=True)
        figures["cpus"] = os.cpu_count() or 0
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
