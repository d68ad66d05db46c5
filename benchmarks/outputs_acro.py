"""The output check against ACRO, side by side in one run.   python benchmarks/outputs_acro.py

1. Speed: a 2×10 crosstab (sex × age decile, with margins) over a 500,000-participant synthetic
   cohort. Strongroom builds the crosstab Result (with the distinct participants behind every
   cell) and checks it; ACRO (PyPI ``acro``, installed in its own venv at
   benchmarks/.venv-acro, created on first use and reused) runs its crosstab with its checks
   and suppression on the same two columns, timed inside its own process. Medians of --runs.
2. Traps: the disclosure traps ACRO can express, each run through both tools; the table says
   which tool stops what (reported, never asserted).

Prints Markdown tables, then the figures as one JSON line (or writes them to --json PATH).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from strongroom.enclave.analyses.run import run as run_with
from strongroom.enclave.results import Result
from strongroom.enclave.steps import Rounding
from strongroom.outputs.check import check
from strongroom.outputs.rules import load_rules
from strongroom.outputs.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[1]
ACRO_VENV = ROOT / "benchmarks" / ".venv-acro"
TARGET_S = 0.3
run = partial(run_with, rounding=Rounding(b"a key for these figures only"))

# Runs inside the ACRO venv: argv = data dir, runs. Prints one JSON line.
ACRO_SCRIPT = r'''
import json, logging, statistics, sys, time, warnings
from pathlib import Path
import numpy as np
import pandas as pd
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
import acro

data, runs = Path(sys.argv[1]), int(sys.argv[2])
session = acro.ACRO(suppress=True)
logging.disable(logging.CRITICAL)
sex = pd.Series(np.load(data / "sex.npy"), name="sex")
decile = pd.Series(np.load(data / "decile.npy"), name="age_decile")
seconds = []
for _ in range(runs):
    t0 = time.perf_counter()
    table = session.crosstab(sex, decile, margins=True)
    seconds.append(time.perf_counter() - t0)
speed = {"median_s": statistics.median(seconds), "runs": seconds,
         "status": session.results.get_index(-1).status, "shape": list(table.shape)}

def last():
    record = session.results.get_index(-1)
    return {"status": record.status, "summary": record.summary.strip()}

def attempt(fn):
    try:
        fn()
        return last()
    except Exception as exc:  # an error is ACRO refusing, not passing
        return {"status": "error", "summary": f"{type(exc).__name__}: {exc}"[:200]}

traps = {}
for i, (name, how) in enumerate(json.loads((data / "traps.json").read_text())):
    df = pd.DataFrame({k: np.load(data / f"t{i}.{k}.npy", allow_pickle=False)
                       for k in ("group", "col", "x")})
    if how == "crosstab":
        traps[name] = attempt(lambda: session.crosstab(df.group, df.col))
    elif how == "percent":
        traps[name] = attempt(lambda: session.crosstab(df.group, df.col, normalize="columns"))
    elif how == "ols":
        traps[name] = attempt(lambda: session.ols(df.x, acro.add_constant(
            pd.get_dummies(df.group, drop_first=True, dtype=float).assign(age=df.col))))
    else:
        traps[name] = attempt(lambda: session.crosstab(df.group, df.col, values=df.x,
                                                       aggfunc=how))
print(json.dumps({"speed": speed, "traps": traps}))
'''


def ensure_acro() -> Path:
    """The ACRO venv's python, creating the venv and installing acro if needed."""
    python = ACRO_VENV / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import acro"], capture_output=True)
        if probe.returncode == 0:
            return python
    subprocess.run(["python3", "-m", "venv", "--clear", str(ACRO_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "acro"], check=True)
    return python


def cohort_frame(n: int, seed: int, lean: bool) -> pl.DataFrame:
    """pid, sex and age decile (ten equal groups by age at assessment, ties by pid)."""
    if lean:
        rng = np.random.default_rng(seed)
        return pl.DataFrame({"pid": np.arange(n, dtype=np.int64), "sex": rng.integers(0, 2, n),
                             "age_decile": rng.integers(1, 11, n)})
    from strongroom.cohort.synth.generator import synthesise

    people = synthesise(n, seed).participants
    return people.select(
        pl.col("eid").cast(pl.Int64).alias("pid"), pl.col("p31").alias("sex"),
        ((pl.col("p21003_i0").rank("ordinal") - 1) * 10 // people.height + 1)
        .cast(pl.Int64).alias("age_decile"))


def time_strongroom(frame: pl.DataFrame, runs: int) -> dict[str, Any]:
    rules = load_rules()
    spec = {"kind": "crosstab", "rows": "sex", "columns": "age_decile", "margins": True}
    build, checking, total = [], [], []
    report = None
    result: Result | None = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = run(spec, frame)
        t1 = time.perf_counter()
        report = check(result, rules)
        t2 = time.perf_counter()
        build.append(t1 - t0)
        checking.append(t2 - t1)
        total.append(t2 - t0)
    assert report is not None and result is not None
    return {"build_s": statistics.median(build), "check_s": statistics.median(checking),
            "total_s": statistics.median(total), "verdict": report.verdict.value,
            "cells": len(result.cells), "runs": total}


# ---------------------------------------------------------------- traps


def trap_frames(seed: int) -> dict[str, dict[str, Any]]:
    """Each trap as columns (pid, group, col, x), what ACRO runs, what Strongroom runs."""
    rng = np.random.default_rng(seed)
    traps: dict[str, dict[str, Any]] = {}

    def add(name: str, acro: str, spec: dict[str, Any], group: list[str], x: np.ndarray,
            pid: np.ndarray | None = None, col: np.ndarray | None = None,
            safe: bool = False) -> None:
        n = len(group)
        traps[name] = {"acro": acro, "spec": spec, "group": np.array(group), "safe": safe,
                       "pid": pid if pid is not None else np.arange(n, dtype=np.int64),
                       "col": col if col is not None else np.zeros(n, dtype=np.int64),
                       "x": np.asarray(x, dtype=np.float64)}

    # 2 participants with 15 rows each make a "count" of 30
    add("rows duplicated to inflate a count", "crosstab",
        {"kind": "frequency", "variable": "group"}, ["common"] * 200 + ["rare"] * 30,
        np.zeros(230), pid=np.r_[np.arange(200), np.repeat([500, 501], 15)].astype(np.int64))
    add("a mean over identical values", "mean",
        {"kind": "summary", "variables": ["x"], "statistics": ["n", "mean"]},
        ["g"] * 60, np.full(60, 7.0))
    add("a maximum (one person's value)", "max",
        {"kind": "summary", "variables": ["x"], "statistics": ["n", "max"]},
        ["g"] * 200, np.round(rng.normal(27, 4, 200), 1))
    add("the mode of two people", "mode",
        {"kind": "summary", "variables": ["x"], "statistics": ["n", "mode"]},
        ["g"] * 60, np.r_[5.0, 5.0, np.arange(58) + 10.0])
    add("a regression dummy held by one participant", "ols",
        {"kind": "ols", "outcome": "x", "covariates": ["col", "group"],
         "categorical": ["group"]},
        ["rare"] + ["a"] * 150 + ["b"] * 149, rng.normal(27, 4, 300),
        col=rng.integers(40, 70, 300))
    add("the mean of a 0/1 flag 3 of 200 have", "mean",
        {"kind": "summary", "variables": ["x"], "statistics": ["n", "mean"]},
        ["g"] * 200, np.r_[np.ones(3), np.zeros(197)])
    add("one participant holds 95% of a mean's total", "mean",
        {"kind": "summary", "variables": ["x"], "statistics": ["n", "mean"]},
        ["g"] * 50, np.r_[950.0, np.full(49, 50.0 / 49)])
    add("a 5% share of 1,000 people (must pass)", "percent",
        {"kind": "frequency", "variable": "group"}, ["smoker"] * 50 + ["non-smoker"] * 950,
        np.zeros(1000), safe=True)
    add("a count of 3 (control)", "crosstab",
        {"kind": "frequency", "variable": "group"}, ["common"] * 200 + ["rare"] * 3,
        np.zeros(203))
    return traps


def acro_outcome(record: dict[str, Any]) -> tuple[str, bool]:
    """ACRO's outcome in words, and whether its automatic checks let the output through.

    ACRO 1.x puts every table to review with a blanket "manual review against other outputs
    for differencing" note, so a table whose checks all pass still reads "review": that is
    counted as passing its checks.
    """
    status, summary = record["status"], record["summary"]
    failed = sorted(set(re.findall(r"(\w+Check): fail", summary)))
    if failed:
        return f"{status}: {', '.join(failed)} failed", False
    if status == "pass":
        return "pass", True
    if status == "review" and "Check" not in summary:
        return "review (always, for this statistic)", False
    if status == "review":
        return "review, but only the blanket differencing note: no check failed", True
    return status, status == "pass"


def strongroom_trap(trap: dict[str, Any]) -> tuple[str, bool]:
    """Strongroom's verdict in words, and whether it lets the output out untouched."""
    frame = pl.DataFrame({"pid": trap["pid"], "group": trap["group"], "col": trap["col"],
                          "x": trap["x"]})
    try:
        report = check(run(trap["spec"], frame), load_rules())
    except Exception as exc:  # refused before the check: still not released
        return f"refused ({type(exc).__name__})", False
    rules = sorted({f.rule for f in report.findings})
    words = f"{report.verdict.value} ({', '.join(rules)})" if rules else report.verdict.value
    return words, report.verdict is Verdict.RELEASE


def write_trap_data(traps: dict[str, dict[str, Any]], folder: Path) -> None:
    for i, trap in enumerate(traps.values()):
        for key in ("group", "col", "x"):
            np.save(folder / f"t{i}.{key}.npy", trap[key], allow_pickle=False)
    (folder / "traps.json").write_text(json.dumps([[k, v["acro"]] for k, v in traps.items()]))


def run_acro(python: Path, frame: pl.DataFrame, traps: dict[str, dict[str, Any]],
             runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "sex.npy", frame["sex"].to_numpy())
        np.save(folder / "decile.npy", frame["age_decile"].to_numpy())
        write_trap_data(traps, folder)
        done = subprocess.run([str(python), "-c", ACRO_SCRIPT, str(folder), str(runs)],
                              capture_output=True, text=True, cwd=tmp, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ACRO failed:\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lean", action="store_true",
                        help="a random sex × decile frame instead of the synthetic cohort")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    python = ensure_acro()
    t0 = time.perf_counter()
    frame = cohort_frame(args.n, args.seed, args.lean)
    prepared_s = time.perf_counter() - t0
    ours = time_strongroom(frame, args.runs)
    traps = trap_frames(args.seed)
    theirs = run_acro(python, frame, traps, args.runs)
    acro_s = theirs["speed"]["median_s"]
    rows = [
        (f"2×10 crosstab over {args.n:,}: build Result + check", ours["total_s"], acro_s),
        ("  of which: the check alone", ours["check_s"], None),
    ]
    print(f"\nCohort: {'lean random frame' if args.lean else 'synthetic cohort'} of "
          f"{frame.height:,} (prepared in {prepared_s:.1f} s); medians of {args.runs} runs; "
          f"target ≤ {TARGET_S} s and faster than ACRO\n")
    print("| what | Strongroom s | ACRO s | ratio (ACRO ÷ Strongroom) |")
    print("|---|---:|---:|---:|")
    for what, mine, other in rows:
        ratio = f"{other / mine:.1f}×" if other else "—"
        print(f"| {what} | {mine:.3f} | {other:.3f} | {ratio} |" if other is not None
              else f"| {what} | {mine:.3f} | — | {ratio} |")
    print(f"\nStrongroom verdict: {ours['verdict']} ({ours['cells']} cells); "
          f"ACRO status: {theirs['speed']['status']}\n")
    found = {name: strongroom_trap(trap) for name, trap in traps.items()}
    print("| trap | should | Strongroom | right | ACRO | right |")
    print("|---|---|---|---|---|---|")
    outcome = {name: acro_outcome(theirs["traps"][name]) for name in traps}
    for name, trap in traps.items():
        safe = trap["safe"]
        ours_right = found[name][1] == safe
        acro_right = outcome[name][1] == safe
        print(f"| {name} | {'pass' if safe else 'stop'} | {found[name][0]} | "
              f"{'yes' if ours_right else 'NO'} | {outcome[name][0]} | "
              f"{'yes' if acro_right else 'NO'} |")
    figures = {"n": frame.height, "lean": args.lean, "runs": args.runs,
               "strongroom_build_s": ours["build_s"], "strongroom_check_s": ours["check_s"],
               "strongroom_total_s": ours["total_s"], "acro_s": acro_s,
               "speedup": acro_s / ours["total_s"], "target_s": TARGET_S,
               "strongroom_verdict": ours["verdict"], "acro_status": theirs["speed"]["status"],
               "traps": {name: {"safe": trap["safe"], "strongroom": found[name][0],
                                "strongroom_releases": found[name][1],
                                "acro": outcome[name][0], "acro_passes": outcome[name][1]}
                         for name, trap in traps.items()}}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
