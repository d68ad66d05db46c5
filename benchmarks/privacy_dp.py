"""Differentially private aggregates at cohort scale, through the service, against exact Polars.

    python benchmarks/privacy_dp.py [--participants 500000] [--runs 15] [--events 2000000]

Builds a data directory with a synthetic cohort, a project granted sex, BMI and hospital
diagnoses, and a DP budget; then times :meth:`strongroom.privacy.service.Privacy.query` (the
whole path: authorisation, the plan check, the ledger's charge, preparing the rows, OpenDP in
its own worker process, the audit entries), warm, median of ``--runs``:

* the mean of BMI (bounds 10–60) over every participant;
* person-level grouped counts over about ``--events`` diagnosis rows (the diagnoses of the
  participants with the lowest pids, cut where that many rows are reached): participants per
  ICD-10 chapter, each participant counted once per chapter, in every chapter they have
  (OpenDP bounds them by the 26 keys) and, with a truncation OpenDP proves, in at most 5.

The anchor is the same exact aggregate in Polars over the same rows (the ratio is the price of
privacy, not a target). The first query of a process (starting the engine's worker: importing
Polars and OpenDP) is reported apart. Prints Markdown, writes it to
benchmarks/results/privacy_dp.md, then prints the figures as one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from strongroom.access import auth, bootstrap, institutions, people, projects
from strongroom.access.context import Principal, Settings, Via
from strongroom.access.states import Vetting
from strongroom.access.totp import code_at
from strongroom.cohort.store import init_store
from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave.service import scope
from strongroom.platform import Platform
from strongroom.privacy.dp_runtime import REQUIREMENT

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "privacy_dp.md"
PASSWORD = "a long benchmark passphrase"
FIELDS = [31, 21001, 41270, 41280]
MEAN_TARGET_S = 0.3
GROUPED_TARGET_S = 3.0


def build(root: Path, n: int) -> tuple[Platform, str, Principal]:
    started = time.perf_counter()
    store = init_store(root / "data", key_file=root / "master.key")
    store.write_version(synthesise(n, seed=1))
    store.close()
    print(f"cohort of {n:,} synthesised and stored in {time.perf_counter() - started:.1f} s",
          flush=True)
    platform = Platform.open(root / "data", root / "master.key",
                             settings=Settings(password_profile="CHEAPEST",
                                               dp_epsilon_ceiling="1000000"))
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
    project = projects.create(ctx, None, title="Bench", purpose="Benchmarking DP queries",
                              lead_id=new.person.id, starts_on=today,
                              expires_on=today + dt.timedelta(days=30), fields=FIELDS)
    now = dt.datetime.now(dt.UTC)
    custodian = auth.verify_credentials(ctx, admin.person.email, PASSWORD,
                                        code_at(admin.totp_secret, now), "127.0.0.1",
                                        Via.SESSION)
    platform.privacy.configure(custodian, project.project.id, dp_mode=True, epsilon="1000000",
                               reason="a benchmark's budget, never spent out")
    researcher = auth.verify_credentials(ctx, new.person.email, PASSWORD,
                                         code_at(new.totp_secret, now), "127.0.0.1",
                                         Via.SESSION)
    return platform, project.project.id, researcher


def median_seconds(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cut_at(diagnoses: pl.DataFrame, rows: int) -> tuple[int, int]:
    """The pid below which the diagnoses hold about ``rows`` rows, and their exact number."""
    per = diagnoses.group_by("pid").len().sort("pid")
    total = per["len"].cum_sum()
    at = min(int((total < rows).sum()), per.height - 1)
    return int(per["pid"][at]), int(total[at - 1]) if at else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--events", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        platform, project_id, who = build(Path(tmp), args.participants)
        where = scope(platform.enclave, who, project_id)
        tables = platform.enclave.tables(where.project, where.fields)
        participants, diagnoses = tables["participants"], tables["diagnoses"]
        below, events = cut_at(diagnoses, args.events)

        def ask(query: dict[str, Any]) -> Callable[[], object]:
            return lambda: platform.privacy.query(who, project_id, query)

        mean = {"kind": "mean", "column": "p21001_i0", "bounds": [10, 60], "epsilon": "0.1"}
        chapters = {"kind": "histogram", "table": "diagnoses", "column": "code", "prefix": 1,
                    "where": [{"column": "pid", "op": "<", "value": below}], "epsilon": "1"}
        started = time.perf_counter()
        ask({"kind": "count", "epsilon": "0.1"})()
        cold = time.perf_counter() - started
        figures: dict[str, Any] = {"participants": participants.height,
                                   "event_rows": events, "runs": args.runs, "cold_s": cold}
        figures["mean_s"] = median_seconds(ask(mean), args.runs)
        figures["mean_exact_s"] = median_seconds(
            lambda: participants["p21001_i0"].drop_nulls().clip(10, 60).mean(), args.runs)
        figures["grouped_all_s"] = median_seconds(
            ask({**chapters, "max_groups": 26}), max(3, args.runs // 3))
        figures["grouped_5_s"] = median_seconds(
            ask({**chapters, "max_groups": 5}), max(3, args.runs // 3))
        figures["grouped_exact_s"] = median_seconds(
            lambda: diagnoses.filter(pl.col("pid") < below)
            .select("pid", pl.col("code").str.slice(0, 1).alias("chapter")).unique()
            .group_by("chapter").len(), args.runs)
        answer = platform.privacy.query(who, project_id, mean)
        figures["mean_noise"] = [n.scale for n in answer.noise]
        figures["load_average"] = os.getloadavg()[1]
        platform.close()
    table = render(figures)
    print(table)
    write(table)
    print(json.dumps(figures))


def write(table: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"## Differential privacy (issue [privacy])\n\n`python benchmarks/"
                       f"privacy_dp.py` ({REQUIREMENT} in its own environment, queries "
                       f"through the service, warm medians).\n\n{table}\n")


def render(f: dict[str, Any]) -> str:
    n, rows = f["participants"], f["event_rows"]
    lines = [
        "| what | figure | target | ratio to target | exact Polars (anchor) | DP / exact |",
        "|---|---|---|---|---|---|",
        f"| mean of BMI over {n:,} participants (ε 0.1), median | {f['mean_s']:.3f} s | "
        f"≤ {MEAN_TARGET_S} s | {f['mean_s'] / MEAN_TARGET_S:.2f} | "
        f"{f['mean_exact_s'] * 1000:.1f} ms | {f['mean_s'] / f['mean_exact_s']:,.1f}× |",
        f"| participants per ICD-10 chapter over {rows:,} diagnosis rows, person-level, "
        f"every chapter (≤ 26), median | {f['grouped_all_s']:.2f} s | ≤ {GROUPED_TARGET_S:.0f} s "
        f"| {f['grouped_all_s'] / GROUPED_TARGET_S:.2f} | {f['grouped_exact_s'] * 1000:.0f} ms "
        f"| {f['grouped_all_s'] / f['grouped_exact_s']:.1f}× |",
        f"| same, at most 5 chapters per participant (OpenDP's rank truncation), median | "
        f"{f['grouped_5_s']:.2f} s | ≤ {GROUPED_TARGET_S:.0f} s | "
        f"{f['grouped_5_s'] / GROUPED_TARGET_S:.2f} | {f['grouped_exact_s'] * 1000:.0f} ms | "
        f"{f['grouped_5_s'] / f['grouped_exact_s']:.1f}× |",
        f"| first query of a process (starts the OpenDP worker) | {f['cold_s']:.2f} s | — | — "
        f"| — | — |",
        "",
        f"Load average over the run: {f['load_average']:.1f} on {os.cpu_count()} cores (the "
        f"machine is shared; the exact anchor shows how loaded it was).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
