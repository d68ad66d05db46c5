"""A grouped count from request to checked result, through the real HTTP server, at 500,000.

    python benchmarks/enclave.py [--participants 500000] [--runs 40] [--json PATH]

Builds a data directory with a synthetic cohort, a custodian, an institution on 127.0.0.0/8,
a researcher with a project and an API token; serves the API with uvicorn on loopback; defines
a dataset; then times `POST /projects/{id}/analyses` (aggregate SQL: a count by sex and smoking
status) from the client's send to its parsed answer: guard, DuckDB, contributor sets, rules,
suppression, differencing, rendering, the raw-row scan, the sealed file, the database row and
the audit entries. The first call (cold: decrypting the cohort, building the project's view and
the scanner's index) is reported apart. Prints a Markdown table, then the figures as JSON.

Every analysis is answered on its schedule (outputs/timing.py): a grouped count no sooner
than its floor (``Settings.analysis_seconds`` at 500,000, scaled by the cohort's size), so
the target is 100 ms plus that floor; ``--floor 0`` measures the work alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from strongroom.access import auth, bootstrap, institutions, people, projects
from strongroom.access.context import Settings, Via
from strongroom.access.states import Vetting
from strongroom.access.totp import code_at
from strongroom.client import Client
from strongroom.cohort.store import init_store
from strongroom.cohort.synth.generator import synthesise
from strongroom.platform import Platform
from strongroom.server.app import create_app

PASSWORD = "a long benchmark passphrase"
FIELDS = [31, 34, 54, 20116, 21001, 4080]
BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p54_i0 AS centre, p20116_i0 AS smoking, "
        "p21001_i0 AS bmi FROM participants")
GROUPED = "SELECT sex, smoking, count(*) AS n FROM base GROUP BY sex, smoking"
CROSSTAB: dict[str, object] = {"kind": "crosstab", "definition": "base", "rows": "sex",
                               "columns": "centre"}
P50_TARGET_MS = 100.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build(root: Path, n: int, floor: float) -> tuple[Platform, str, str]:
    """A platform with a cohort, a project and a researcher's API token (its secret)."""
    started = time.perf_counter()
    store = init_store(root / "data", key_file=root / "master.key")
    store.write_version(synthesise(n, seed=1))
    store.close()
    print(f"cohort of {n:,} synthesised and stored in {time.perf_counter() - started:.1f} s")
    platform = Platform.open(root / "data", root / "master.key",
                             settings=Settings(password_profile="CHEAPEST",
                                               analysis_seconds=floor))
    ctx = platform.access
    admin = bootstrap.bootstrap(ctx, institution="Custodian", country="GB",
                                jurisdiction="UK GDPR", networks=["127.0.0.0/8"],
                                email="admin@bench.test", name="Admin", password=PASSWORD)
    uni = institutions.create(ctx, None, name="Bench University", country="GB",
                              jurisdiction="UK GDPR", networks=["127.0.0.0/8"])
    today = dt.date.today()
    new = people.create(ctx, None, institution_id=uni.id, email="r@bench.test", name="R",
                        roles=["researcher"], password=PASSWORD, vetting=Vetting.APPROVED)
    people.record_training(ctx, None, new.person.id, course="Safe Researcher",
                           completed_on=today, expires_on=today + dt.timedelta(days=300))
    project = projects.create(ctx, None, title="Bench", purpose="Benchmarking the enclave path",
                              lead_id=new.person.id, starts_on=today,
                              expires_on=today + dt.timedelta(days=30), fields=FIELDS)
    who = auth.verify_credentials(ctx, new.person.email, PASSWORD,
                                  code_at(new.totp_secret, dt.datetime.now(dt.UTC)),
                                  "127.0.0.1", Via.SESSION)
    token = auth.issue_token(ctx, who, project.project.id,
                             ["data.analyse", "output.read", "output.request"], 7)
    del admin
    return platform, project.project.id, token.secret


def timed(client: Client, project_id: str, analysis: dict[str, object]) -> tuple[float, str]:
    started = time.perf_counter()
    answer = client.enclave.analyse(project_id, analysis)
    return (time.perf_counter() - started) * 1000, str(answer["verdict"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--floor", type=float, default=Settings().analysis_seconds,
                        help="Settings.analysis_seconds (0: no schedule)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        platform, project_id, secret = build(Path(tmp), args.participants, args.floor)
        floor_ms = platform.outputs.schedule({"kind": "aggregate_sql"}).floor * 1000
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(platform), host="127.0.0.1",
                                               port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        with Client(f"http://127.0.0.1:{port}", token=secret) as client:
            client.enclave.define(project_id, "base", BASE)
            grouped: dict[str, object] = {"kind": "aggregate_sql", "sql": GROUPED}
            cold, verdict = timed(client, project_id, grouped)
            warm = [timed(client, project_id, grouped)[0] for _ in range(args.runs)]
            crosstab = [timed(client, project_id, CROSSTAB)[0] for _ in range(args.runs // 4)]
        server.should_exit = True
        thread.join()
        platform.close()
    p50 = statistics.median(warm)
    p95 = statistics.quantiles(warm, n=20)[-1]
    target = P50_TARGET_MS + floor_ms
    figures = {"participants": args.participants, "runs": args.runs, "cold_ms": cold,
               "floor_ms": floor_ms, "target_ms": target,
               "runs_over_target": sum(1 for t in warm if t > target),
               "grouped_p50_ms": p50, "grouped_p95_ms": p95, "verdict": verdict,
               "crosstab_2x22_p50_ms": statistics.median(crosstab)}
    print("| what | figure | target | ratio |")
    print("|---|---|---|---|")
    print(f"| grouped count, request → checked result, p50 (floor {floor_ms:.0f} ms) | "
          f"{p50:.0f} ms | ≤ {target:.0f} ms | {p50 / target:.2f} |")
    print(f"| same, p95 | {p95:.0f} ms | — | — |")
    print(f"| first call (decrypt cohort, build view and scanner index) | {cold:.0f} ms | — | — |")
    print(f"| crosstab sex × centre (2×22 + margins), p50 | "
          f"{figures['crosstab_2x22_p50_ms']:.0f} ms | — | — |")
    if args.json:
        args.json.write_text(json.dumps(figures))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
