"""Watch exports and delivery: how fast alerts render, and how soon a queued alert reaches a
syslog collector and a signed webhook through the outbox.   python benchmarks/watch_exports.py

Prints a Markdown section (and writes it to benchmarks/results/watch-exports.md). Real
components: a SQLite metadata database, the background sender, a UDP socket and an HTTP
server on loopback that verifies every signature.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from strongroom.db import create_all
from strongroom.watch.delivery import Delivery
from strongroom.watch.destinations import parse_destinations
from strongroom.watch.exports import Format, render
from strongroom.watch.exports.webhooks import SIGNATURE_HEADER, verify
from strongroom.watch.models import AlertRow

ROOT = Path(__file__).resolve().parents[1]
AT = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)

RENDERS = 5_000
DELIVERIES = 200
SECRET = "benchmark-webhook-secret-0123456789"
OUT = ROOT / "benchmarks" / "results" / "watch-exports.md"


def make_alert(**changes: Any) -> AlertRow:
    fields: dict[str, Any] = {
        "id": "alr_0123abcd", "detector": "behaviour.off-hours", "severity": "high",
        "status": "open", "dedup_key": "k", "person_id": "per_1", "institution_id": "ins_1",
        "project_id": "prj_1", "title": "off-hours burst of queries",
        "reasons": ["140 queries between 02:00 and 03:00 UTC; this person's usual is 0 to 3"],
        "evidence": {"queries": 140, "baseline_p99": 3, "source": "10.1.2.3"},
        "first_at": AT, "last_at": AT + dt.timedelta(minutes=5), "count": 1,
        "suspensions": ["pau_1"]}
    return AlertRow(**{**fields, **changes})


def render_rate(fmt: Format) -> float:
    alerts = [make_alert(id=f"alr_{n:012x}", count=n % 7 + 1,
                         detector="drip.coverage" if n % 2 else "behaviour.off-hours")
              for n in range(RENDERS)]
    started = time.perf_counter()
    for alert in alerts:
        render(alert, fmt)
    return RENDERS / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def delivery_latency(root: Path) -> dict[str, float]:
    """Seconds from deliver() (the responder's call) to receipt, over the background sender."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(30)
    arrived: dict[str, float] = {}
    hooks: dict[str, float] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            verify(SECRET.encode(), body, self.headers.get(SIGNATURE_HEADER))
            with lock:
                hooks[json.loads(body)["finding_info"]["uid"]] = time.perf_counter()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def collect() -> None:  # read as datagrams come, as a collector does (no buffer overflow)
        while len(arrived) < DELIVERIES:
            try:
                data = udp.recv(65535).decode()
            except OSError:
                return
            arrived[data.split("externalId=")[1].split(" ")[0]] = time.perf_counter()

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    os.environ["BENCH_HOOK_SECRET"] = SECRET
    engine = create_engine(f"sqlite:///{root / 'meta.db'}")
    create_all(engine)
    destinations = parse_destinations({
        "syslog": [{"host": "127.0.0.1", "port": udp.getsockname()[1]}],
        "webhooks": [{"url": f"http://127.0.0.1:{server.server_address[1]}/",
                      "secret": "env:BENCH_HOOK_SECRET"}]})
    delivery = Delivery(engine, destinations, poll_seconds=1.0)
    sent: dict[str, float] = {}
    queue_ms = []
    try:
        for n in range(DELIVERIES):
            alert = make_alert(id=f"alr_{n:012x}")
            sent[alert.id] = time.perf_counter()
            delivery.deliver(alert)
            queue_ms.append((time.perf_counter() - sent[alert.id]) * 1000)
            time.sleep(0.01)
        collector.join(timeout=120)
        deadline = time.monotonic() + 60
        while len(hooks) < DELIVERIES and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        delivery.close()
        server.shutdown()
        server.server_close()
        udp.close()
        engine.dispose()
    syslog = [arrived[k] - sent[k] for k in sent if k in arrived]
    webhook = [hooks[k] - sent[k] for k in sent if k in hooks]
    return {"queue_p50_ms": statistics.median(queue_ms),
            "queue_p99_ms": percentile(queue_ms, 0.99),
            "syslog_p50_s": statistics.median(syslog), "syslog_p95_s": percentile(syslog, 0.95),
            "syslogs": len(syslog),
            "webhook_p50_s": statistics.median(webhook),
            "webhook_p95_s": percentile(webhook, 0.95), "webhooks": len(webhook)}


def main() -> None:
    rates = {fmt: render_rate(fmt) for fmt in Format}
    with tempfile.TemporaryDirectory() as tmp:
        latency = delivery_latency(Path(tmp))
    lines = [
        "## Watch exports and delivery", "",
        f"`python benchmarks/watch_exports.py` ({RENDERS:,} alerts rendered per format; "
        f"{DELIVERIES} alerts delivered to a UDP syslog collector and a signature-checking "
        f"webhook on loopback, SQLite outbox, sender polling every 1 s).", "",
        "| measure | figure |", "|---|---|",
        *[f"| render {fmt.value.upper()} | {rate:,.0f} alerts/s |" for fmt, rate in
          rates.items()],
        f"| `deliver()` on the request's path (queue only), p50 / p99 | "
        f"{latency['queue_p50_ms']:.2f} / {latency['queue_p99_ms']:.2f} ms |",
        f"| queued → received by syslog, p50 / p95 | {latency['syslog_p50_s']:.2f} / "
        f"{latency['syslog_p95_s']:.2f} s ({latency['syslogs']:.0f} of {DELIVERIES}) |",
        f"| queued → received by webhook (signed, verified), p50 / p95 | "
        f"{latency['webhook_p50_s']:.2f} / {latency['webhook_p95_s']:.2f} s "
        f"({latency['webhooks']:.0f} of {DELIVERIES}) |",
    ]
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
