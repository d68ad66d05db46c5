"""A platform killed in the first milliseconds of a job's start: does anything of the sandbox
outlive it? (Root only: the platform's vault and the job's own host user.)

    python benchmarks/sandbox_early_kill.py [--delays 3,9,12,15,18,20,25,30,35,40] [--runs 2]

For each delay a "platform" process starts one sandbox through ``sandbox.run`` (its code
unchanged: only ``subprocess.Popen`` is wrapped) and kills itself with SIGKILL that long
after the sandbox's process is made, once it has read that process's children (a red team's
harness, session 58, whose timing this keeps: a plain kill at the same delays did not show
it). Three seconds later the job's control group is read host-side: every process still in
it is counted, and whether the job can still read its decrypted input (through
``/proc/PID/root``); what is found is then killed. Before the guard (``sandbox._guard``)
bubblewrap's inner process, whose parent-death signal is armed a moment after it is made,
outlived the platform at 9-60 ms, the job with it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PLATFORM = """
import os, signal, subprocess, sys, time
from strongroom.jobs import runner, sandbox
group, delay = sys.argv[1], float(sys.argv[2])
real = subprocess.Popen
class Dying(real):
    def __init__(self, args, *a, **k):
        super().__init__(args, *a, **k)
        if args and sandbox.BWRAP in args:
            time.sleep(delay)
            try:
                open(f"/proc/{self.pid}/cmdline", "rb").read()
                kids = open(f"/proc/{self.pid}/task/{self.pid}/children").read().split()
                print("children", len(kids), flush=True)
            except OSError:
                pass
            os.kill(os.getpid(), signal.SIGKILL)
sandbox.subprocess.Popen = Dying
with runner.scratch("job_earlykill") as place:
    code, data, out, plan = (place / n for n in ("code", "inputs", "out", "plan"))
    for folder in (code / "inputs", code / "output", data, out, plan):
        folder.mkdir(parents=True)
    runner._give(out, plan)
    (data / "cohort.parquet").write_bytes(b"PAR1" + b"SECRETROW" * 1000)
    (code / "study.py").write_text(
        "import time\\nd = open('inputs/cohort.parquet', 'rb').read()\\ntime.sleep(300)\\n")
    sandbox.run([sys.executable, "-B", "study.py"],
                [sandbox.Mount(code, "/job"), sandbox.Mount(data, "/job/inputs"),
                 sandbox.Mount(out, "/job/output", writable=True)],
                limits=sandbox.Limits(wall_seconds=60, low_priority=False), name=group)
"""


def _left(group: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and group in (entry / "cgroup").read_text():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", default="3,9,12,15,18,20,25,30,35,40")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the platform's vault and the job's user need it")
    from strongroom.jobs import cgroups, runner

    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}")
    outlived = trials = 0
    for _ in range(args.runs):
        for delay_ms in (float(d) for d in args.delays.split(",")):
            group = f"strongroom-earlykill-{time.monotonic_ns()}"
            subprocess.run([sys.executable, "-c", PLATFORM, group, str(delay_ms / 1000)],
                           capture_output=True, timeout=60, check=False)
            time.sleep(3)
            left = _left(group)
            readable = 0
            for pid in left:
                with contextlib.suppress(OSError):
                    readable += b"SECRETROW" in Path(
                        f"/proc/{pid}/root/job/inputs/cohort.parquet").read_bytes()
            trials += 1
            outlived += bool(left)
            print(f"{delay_ms:5.1f} ms: {len(left)} processes left, "
                  f"{readable} reading the decrypted input")
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            cgroups.leftovers({"earlykill"})
            for job_id, folder in runner.leftovers():
                if job_id == "job_earlykill":
                    runner.destroy(folder)
    print(f"outlived the platform: {outlived} of {trials} kills")


if __name__ == "__main__":
    main()
