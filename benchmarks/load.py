"""Thirty (and a hundred) researchers at once: 5xx, dropped connections, lost meter records and
overshoot at the last unit of a limit, on SQLite and PostgreSQL (issue 52).

    python benchmarks/load.py --clients 30 --seconds 120 --database both --seed 7 [--overshoot]
    python benchmarks/load.py --clients 30,100 --seconds 120 --overshoot   # the issue's figures

A real server (uvicorn on a loopback port, the application ``strongroom serve`` runs) over a
fresh store of ``--cohort`` synthetic participants (strongroom.attacks.world.AttackWorld).
Each client is a researcher in a thread with its own connection and loopback address: two in
three sign in with password and authenticator code, the rest use an API token; they read
who they are and their limits, run grouped counts, take small record-level extracts, ask for
outputs' release and download released outputs (bytes and table) for ``--seconds``. Several
institutions and projects; most members work in a project led at another institution.

Then the ground truth is read custodian-side from the database: ``watch_meter`` rows per
route against the answers served (lost and duplicated meter records), exposure rows against
the extracts served, cells metered against the cells downloaded. ``--overshoot`` adds the
races at the last unit: 30 downloads at a cells limit with room for 5, 30 extracts at a
record-participants allowance with room for one, 30 analyses at an answer budget with one
left. The tables are Markdown, for BENCHMARKS.md; the server log's warnings are counted and
the first tracebacks printed below them (written whole to ``--log``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from strongroom.attacks import load
from strongroom.attacks.world import AttackWorld
from strongroom.server.app import create_app

POSTGRES = os.environ.get("STRONGROOM_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def world_on(kind: str, cohort: int, seed: int) -> Iterator[AttackWorld]:
    """A fresh world on SQLite (in a temporary directory) or in a fresh PostgreSQL schema."""
    with tempfile.TemporaryDirectory(prefix="strongroom-load-") as tmp:
        schema = url = None
        if kind == "postgresql":
            schema = f"load_{uuid.uuid4().hex[:10]}"
            with create_engine(POSTGRES).begin() as con:
                con.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        try:
            world = AttackWorld.build(Path(tmp), cohort=cohort, seed=seed, database_url=url,
                                      networks=("127.0.0.0/8", "10.0.0.0/8"))
            try:
                yield world
            finally:
                world.close()
        finally:
            if schema is not None:
                with create_engine(POSTGRES).begin() as con:
                    con.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="30",
                        help="clients at once; several runs: 30,100")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cohort", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a client waits for an answer before it counts as dropped")
    parser.add_argument("--overshoot", action="store_true",
                        help="also race 30 requests at the last unit of each limit")
    parser.add_argument("--racers", type=int, default=30)
    parser.add_argument("--log", type=Path, default=None,
                        help="write the server log's counts and tracebacks here")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    counts = [int(c) for c in str(args.clients).split(",")]
    results: list[load.LoadResult] = []
    races: list[load.Overshoot] = []
    logs: list[tuple[str, load.ServerLog]] = []
    for kind in kinds:
        for clients in counts:
            print(f"{kind}: {clients} clients for {args.seconds:g} s …", file=sys.stderr,
                  flush=True)
            with world_on(kind, args.cohort, args.seed) as world:
                result = load.run_load(world, create_app, database=kind, clients=clients,
                                       seconds=args.seconds, seed=args.seed,
                                       cohort=args.cohort, timeout=args.timeout)
            results.append(result)
            logs.append((f"{kind}, {clients} clients", result.server_log))
            print(load.summary_table([result]).splitlines()[-1], file=sys.stderr, flush=True)
        if args.overshoot:
            print(f"{kind}: {args.racers} at the last unit …", file=sys.stderr, flush=True)
            with world_on(kind, args.cohort, args.seed) as world:
                race_log = load.ServerLog()
                races += load.race_all(world, create_app, kind, racers=args.racers,
                                       timeout=args.timeout, server_log=race_log)
            logs.append((f"{kind}, overshoot races", race_log))
    print(f"\nMixed load, seed {args.seed}, {args.cohort:,} participants; load average "
          f"(1 min) and CPUs as measured on this machine\n")
    print(load.summary_table(results))
    r0 = results[0]
    print(f"\n{r0.institutions} institutions, {r0.projects} projects, {r0.led_elsewhere} of "
          f"{r0.clients} clients members of a project led at another institution, "
          f"{r0.sessions} signing in (the rest with API tokens)\n")
    print(load.load_table(results))
    if races:
        print("\nAt the last unit (requests released together by a barrier)\n")
        print(load.overshoot_table(races))
    print("\nThe first answer of each kind that was not a success\n")
    print(load.refusals(results))
    report = "\n\n".join(f"## server log: {name}\n{load.server_log_report(log_, top=20)}"
                         for name, log_ in logs if log_.counts)
    if report:
        print("\n" + "\n".join(report.splitlines()[:80]))
        if args.log is not None:
            args.log.write_text(report + "\n")


if __name__ == "__main__":
    main()
