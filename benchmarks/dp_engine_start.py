"""A DP engine worker started as its own interpreter (``python -I dp_engine.py``: Polars and
OpenDP imported by each) against one forked by the fork server (imported once), alternating.

    python benchmarks/dp_engine_start.py [--repeats 3] [--projects 8]

Prints, per round: the CPU seconds and wall seconds of a started worker until it answers a
ping (OpenDP imported), and of ``--projects`` forked workers warmed through an ``EnginePool``
whose fork server is already up; then each kind's memory of its own (PSS and private dirty
pages, /proc/PID/smaps_rollup). The machine's load and CPU are printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import time
from pathlib import Path

from strongroom.privacy.dp_runtime import ENGINE_FILE, EnginePool, engine_python


def _rollup(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, *value = line.split()
        if key in ("Rss:", "Pss:", "Private_Dirty:"):
            found[key[:-1]] = int(value[0]) // 1024
    return found


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def started(python: Path) -> tuple[float, float, dict[str, int]]:
    """A worker of its own interpreter: CPU and wall seconds until it has imported OpenDP."""
    cpu, wall = _children_cpu(), time.perf_counter()
    process = subprocess.Popen([str(python), "-I", str(ENGINE_FILE)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    head = json.dumps({"op": "ping"}).encode()
    process.stdin.write(struct.pack(">I", len(head)) + head + struct.pack(">Q", 0))
    process.stdin.flush()
    size = struct.unpack(">I", process.stdout.read(4))[0]
    process.stdout.read(size)
    took = time.perf_counter() - wall
    memory = _rollup(process.pid)
    process.stdin.close()
    process.wait()
    return _children_cpu() - cpu, took, memory


def forked(pool: EnginePool, projects: int, round_: int) -> tuple[float, float,
                                                                  dict[str, int]]:
    """``projects`` workers forked from the running fork server, each warmed (pinged):
    the CPU here and in the fork server, per worker, and the wall seconds per worker."""
    server = pool._forks._process
    assert server is not None
    ticks = os.sysconf("SC_CLK_TCK")

    def server_cpu() -> float:
        fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:13]) / ticks

    cpu, own, wall = server_cpu(), time.process_time(), time.perf_counter()
    owners = [f"prj_{round_}_{n}" for n in range(projects)]
    for owner in owners:
        pool.warm(owner)
    took = (time.perf_counter() - wall) / projects
    spent = (server_cpu() - cpu + time.process_time() - own) / projects
    memory = _rollup(pool._releases[owners[0]]._all[0].pid)
    return spent, took, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--projects", type=int, default=8)
    args = parser.parse_args()
    python = engine_python()
    model = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")).split(":", 1)[1].strip()
    print(f"load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, {model}")
    pool = EnginePool(python)
    wall = time.perf_counter()
    pool.warm()  # the fork server up (its imports), and the plan engine forked
    print(f"fork server up and the plan engine forked: {time.perf_counter() - wall:.2f} s")
    try:
        for round_ in range(args.repeats):
            cpu, took, memory = started(python)
            print(f"round {round_ + 1} started: {cpu:.3f} CPU-s, {took:.3f} s, {memory} MB")
            cpu, took, memory = forked(pool, args.projects, round_)
            print(f"round {round_ + 1} forked:  {cpu:.3f} CPU-s, {took:.3f} s per worker, "
                  f"{memory} MB")
    finally:
        pool.close()


if __name__ == "__main__":
    main()
