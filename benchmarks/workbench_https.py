"""The researcher how-to's study over HTTPS, as a researcher runs it: the real server in its
own process, the Python client the command line uses, a project token; each output from the
request to its labelled table (CSV), timed (issue [workbench]: under 2 s each at 500,000).

The same study, in the same order, as benchmarks/workbench.py (which calls the output service
in process); here every request also crosses TLS, the server's authentication, authorisation,
watch and audit, and JSON both ways.

    python benchmarks/workbench_https.py [--participants 500000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

import workbench  # benchmarks/workbench.py: the study, its definition and its fields
from strongroom.client import Client, StrongroomError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the functional tests' server
from tests.functional.test_server import code, register, running_server

SOURCE = "127.0.0.60"
WARM_SECONDS = 15  # what a server pays once, before its first researcher (about 4 s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strongroom-workbench-https-") as tmp:
        started = time.perf_counter()
        with running_server(Path(tmp), None, cohort=args.participants, warm=True) as server:
            print(f"server over {args.participants:,} participants: "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            admin = server.admin
            uni = admin.institutions.create("Benchmark University", "GB", "UK GDPR",
                                            ["127.0.0.0/8"])
            who = register(server, "rae@bench.ac.uk", ["researcher"], uni["id"], vetted=True)
            today = dt.date.today()
            project = admin.projects.create(
                "Smoking, adiposity and survival", "The researcher how-to's study, timed",
                who.id, today, today + dt.timedelta(days=90), fields=workbench.FIELDS)["id"]
            with server.client(SOURCE) as session:
                session.login(who.email, who.password, code(who.totp_secret))
                token = session.tokens.issue(project, [
                    "data.analyse", "output.read", "output.request", "output.download"],
                    7)["secret"]
            with Client(server.url, token=token, verify=server.ca,
                        local_address=SOURCE, timeout=600) as sr:
                started = time.perf_counter()
                sr.enclave.define(project, "study", workbench.STUDY_SQL)
                print(f"definition: {time.perf_counter() - started:.1f} s", flush=True)
                # the server loads its model libraries and builds the raw-row scanner's
                # index as it starts (server/run.py, warm); the study starts when it is warm
                time.sleep(WARM_SECONDS)
                print("| output | verdict → status | analyse + check | release | labelled "
                      "table | total | rows × columns |")
                print("|---|---|---|---|---|---|---|")
                worst = 0.0
                for title, spec in workbench.STUDY:
                    t0 = time.perf_counter()
                    out = sr.enclave.analyse(project, {**spec, "definition": "study"})
                    t1 = time.perf_counter()
                    if out["verdict"] not in ("release", "release_with_suppression"):
                        reasons = [f["reason"] for f in out.get("findings", [])]
                        print(f"| {title} | {out['verdict']}: {reasons} | {t1 - t0:.2f} s "
                              "| | | | |")
                        continue
                    try:
                        status = sr.outputs.request_release(out["id"])["status"]
                    except StrongroomError as refused:
                        print(f"| {title} | refused at release: {refused} | | | | | |")
                        continue
                    t2 = time.perf_counter()
                    frame = pl.read_csv(io.BytesIO(sr.outputs.table(out["id"])),
                                        infer_schema_length=None)
                    t3 = time.perf_counter()
                    worst = max(worst, t3 - t0)
                    print(f"| {title} | {out['verdict']} → {status} | {t1 - t0:.2f} s | "
                          f"{t2 - t1:.2f} s | {t3 - t2:.2f} s | {t3 - t0:.2f} s | "
                          f"{frame.height} × {frame.width} |", flush=True)
                print(f"slowest output, request to labelled table: {worst:.2f} s "
                      "(target < 2 s)")


if __name__ == "__main__":
    main()
