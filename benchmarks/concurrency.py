"""Twenty clients at once for a minute: errors, throughput and latency, on SQLite and PostgreSQL.

    python benchmarks/concurrency.py [--clients 20] [--seconds 60] [--database both]

A real server (uvicorn on a local port, the application as `strongroom serve` runs it) over a
fresh store of 3,000 synthetic participants; one researcher with an API token for a project
whose request limit is raised out of the way (this measures the server, not the limits). Each
client, in its own thread with its own HTTP connection, alternates an authenticated read
(`GET /projects/{id}`) and a grouped-count analysis (`POST /projects/{id}/analyses`, a
frequency by sex) for ``--seconds``. Every answer that is not a success is an error; the issue
saw HTTP 500 ("database is locked") from a token's last-used update at 20 clients on SQLite.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from sqlalchemy import create_engine, text

from strongroom.access import auth
from strongroom.attacks.catalogue import BASE
from strongroom.attacks.world import AttackWorld
from strongroom.server.app import create_app

POSTGRES = os.environ.get("STRONGROOM_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    rows = [run(kind, args.clients, args.seconds) for kind in kinds]
    print(f"\n{args.clients} clients for {args.seconds:g} s each\n")
    print("| database | requests | errors | throughput | read p50 / p99 | analysis p50 / p99 |")
    print("|---|---|---|---|---|---|")
    for kind, done, errors, read, analysis in rows:
        print(f"| {kind} | {done:,} | {errors} | {done / args.seconds:.0f}/s | "
              f"{_ms(read, 50)} / {_ms(read, 99)} ms | {_ms(analysis, 50)} / "
              f"{_ms(analysis, 99)} ms |")


def run(kind: str, clients: int, seconds: float) -> tuple[str, int, dict[str, int],
                                                          list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="strongroom-concurrency-") as tmp:
        schema = None
        url = None
        if kind == "postgresql":
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with create_engine(POSTGRES).begin() as con:
                con.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        try:
            world = AttackWorld.build(Path(tmp), database_url=url,
                                      networks=("127.0.0.0/8", "10.0.0.0/8"))
            try:
                return (kind, *_hammer(world, clients, seconds))
            finally:
                world.close()
        finally:
            if schema is not None:
                with create_engine(POSTGRES).begin() as con:
                    con.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _hammer(world: AttackWorld, clients: int, seconds: float
            ) -> tuple[int, dict[str, int], list[float], list[float]]:
    who, project = world.researcher()
    world.platform.outputs.define(who, project, "base", BASE)
    admin = world.staff("custodian-admin")
    world.platform.watch.set_limits(admin, "project", project, {"requests": 10**9})
    world.platform.watch.set_limits(admin, "person", who.person_id, {"requests": 10**9})
    world.platform.watch.set_limits(admin, "institution", who.institution_id,
                                    {"requests": 10**9})
    token = auth.issue_token(world.platform.access, who, project,
                             ["data.analyse", "project.read", "output.read"], 1).secret
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(world.platform), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    errors: dict[str, int] = {}
    read: list[float] = []
    analysis: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    body = {"analysis": {"kind": "frequency", "definition": "base", "variable": "sex"}}

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            turn = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                answer = (http.get(f"/projects/{project}") if turn % 2 == 0
                          else http.post(f"/projects/{project}/analyses", json=body))
                took = time.perf_counter() - started
                with lock:
                    (read if turn % 2 == 0 else analysis).append(took)
                    if answer.status_code >= 300:
                        key = f"{answer.status_code} {answer.text[:80]}"
                        errors[key] = errors.get(key, 0) + 1
                turn += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.should_exit = True
    thread.join(timeout=10)
    return len(read) + len(analysis), errors, read, analysis


def _ms(values: list[float], q: float) -> str:
    return f"{float(np.percentile(values, q)) * 1000:.0f}" if values else "–"


if __name__ == "__main__":
    main()
