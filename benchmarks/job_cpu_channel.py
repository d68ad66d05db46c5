"""A job's CPU load against the server's response times: a bit a job, with and without the
sandbox's low CPU priority (``sandbox.Limits.low_priority``), in one run.

    python benchmarks/job_cpu_channel.py [--targets 3] [--load 6] [--modes low,normal]
                                         [--json PATH]

The attack (session 54's red team): a job's real run keeps six processes busy for 8 s when
its target's BMI is over 27, and sleeps 8 s otherwise; it finishes on time either way, so
its answer is given back. Meanwhile the researcher times batches of 30 reads of the job
(``Jobs.get``, which has no floor) and takes their 90th percentile. ``--targets`` obese and
as many lean participants (ground truth read custodian-side) are attacked in turn, once per
mode; ``--load N`` keeps N other busy processes in a session of their own through the run
(the machine as the red team found it: busy already). A mode leaks when the obese targets'
percentiles stand apart from the lean ones': reported per target, and as how many targets a
threshold midway between the two groups' medians would classify rightly (a fair coin: half).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import delete

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.jobs_world import archive, build_jobs_world  # noqa: E402

from strongroom.outputs.models import AnswerRow  # noqa: E402

BUSY_SECONDS = 8
SCRIPT = """\
import os, time
from strongroom import sdc
frame = sdc.read("cohort")
row = frame[frame.pid.astype(str) == "{target}"]
open("output/note.txt", "w").write("done\\n")
if len(row) and float(row.bmi.iloc[0]) > 27:
    kids = []
    for _ in range(6):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + {busy}
            while time.monotonic() < end:
                pass
            os._exit(0)
        kids.append(pid)
    for k in kids:
        os.waitpid(k, 0)
else:
    time.sleep({busy})
"""
PROJECT = ("version: 1\nactions:\n  study:\n    expected_seconds: 20\n"
           "    run: python analysis/study.py\n    inputs: [cohort]\n"
           "    outputs:\n      note: {path: output/note.txt, kind: text}\n")


def attack(world: Any, target: str, low: bool) -> dict[str, Any]:
    """One job against ``target``, the reads timed beside it."""
    jobs = world.platform.jobs
    jobs.limits = replace(jobs.limits, low_priority=low)
    me = world.sign_in(world.researcher)
    with world.ctx.transaction() as db:
        db.execute(delete(AnswerRow))  # every job may spend its answer
    job = jobs.submit(me, world.project_id, archive({
        "project.yaml": PROJECT, "plans/study.json": "[]",
        "analysis/study.py": SCRIPT.format(target=target, busy=BUSY_SECONDS)}), "study")
    batches: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            start = time.monotonic()
            for _ in range(30):
                jobs.get(me, job.id)
            batches.append(time.monotonic() - start)

    reader = threading.Thread(target=read)
    reader.start()
    row = jobs.run(job.id, me)
    done.set()
    reader.join()
    ordered = sorted(batches)
    return {"status": row.status, "batches": len(ordered),
            "median_ms": round(1000 * statistics.median(ordered), 1),
            "p90_ms": round(1000 * ordered[int(0.9 * len(ordered))], 1)}


def classified(rows: list[dict[str, Any]]) -> int:
    """How many targets a threshold midway between the groups' median p90 gets right."""
    high = statistics.median(r["p90_ms"] for r in rows if r["obese"])
    low = statistics.median(r["p90_ms"] for r in rows if not r["obese"])
    line = (high + low) / 2
    return sum((r["p90_ms"] > line) == r["obese"] if high >= low else
               (r["p90_ms"] < line) == r["obese"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--load", type=int, default=6)
    parser.add_argument("--modes", default="low,normal")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",")]
    busy = subprocess.Popen(
        [sys.executable, "-c", "import multiprocessing as m, itertools as i\n"
         f"def spin(_):\n    for _ in i.count(): pass\n"
         f"m.Pool({args.load}).map(spin, range({args.load}))"],
        start_new_session=True) if args.load else None
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    try:
        with tempfile.TemporaryDirectory(prefix="job-cpu-") as root:
            world = build_jobs_world(Path(root))
            project = world.platform.jobs._project(world.project_id)
            frame = world.platform.enclave.definition(project, "cohort")[1]
            bmi = {str(p): float(b) for p, b in zip(frame["pid"].to_list(),
                                                    frame["bmi"].to_list(), strict=True)
                   if b is not None}
            obese = [p for p, b in sorted(bmi.items()) if b > 30][:args.targets]
            lean = [p for p, b in sorted(bmi.items()) if b < 24][:args.targets]
            for target in [t for pair in zip(obese, lean, strict=True) for t in pair]:
                for mode in modes:  # alternating, so the machine's drift is shared
                    found = attack(world, target, low=mode == "low")
                    found |= {"target": target, "obese": bmi[target] > 27,
                              "load": os.getloadavg()[0]}
                    results[mode].append(found)
                    print(mode, json.dumps(found), flush=True)
            world.platform.close()
    finally:
        if busy is not None:
            os.killpg(busy.pid, 9)
    print(f"\n{os.cpu_count()} cores, {args.load} other busy processes, load "
          f"{os.getloadavg()[0]:.2f} at the end")
    print("| mode | p90 of the reads, obese targets (ms) | lean targets (ms) | "
          "targets classified rightly |")
    print("|---|---|---|---|")
    for mode, rows in results.items():
        fat = ", ".join(str(r["p90_ms"]) for r in rows if r["obese"])
        thin = ", ".join(str(r["p90_ms"]) for r in rows if not r["obese"])
        print(f"| {mode} | {fat} | {thin} | {classified(rows)} of {len(rows)} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
