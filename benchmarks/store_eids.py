"""The cohort's participant ids read from the store: the whole participant table decoded (as the
platform did to issue a project's pseudonyms, issue 56) against ``Store.eids`` (the one column,
a chunk at a time), each in a fresh process, alternating.

    python benchmarks/store_eids.py [--participants 500000] [--repeats 2]

Prints, for each way, the process's peak memory above what the opened store held, and the
seconds; the ids read must be the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} in /proc/self/status")


def _child(root: Path, how: str) -> None:
    import polars as pl

    from strongroom.cohort.model import EID
    from strongroom.cohort.store import Store

    store = Store.open(root / "data", root / "master.key")
    # the high-water mark from here (ru_maxrss is kept across exec: it would read the parent's)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    if how == "whole table":
        eids = store.load(tables=["participants"]).participants[EID].cast(pl.Int64).to_numpy()
    else:
        eids = store.eids()
    took = time.perf_counter() - started
    after = _status_mb("VmHWM")
    store.close()
    print(json.dumps({"how": how, "ids": int(eids.size), "sum": int(eids.sum()),
                      "peak_mb": round(after - before), "seconds": round(took, 3)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child[0]), args.child[1])
        return
    from strongroom.cohort.store import init_store
    from strongroom.cohort.synth.generator import synthesise

    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None
                                     ) as tmp:
        root = Path(tmp)
        store = init_store(root / "data", key_file=root / "master.key")
        store.write_version(synthesise(args.participants, seed=7))
        store.close()
        print(f"load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, "
              f"{args.participants:,} participants")
        print("| way | peak above the opened store | seconds |\n|---|---|---|")
        seen = set()
        for _ in range(args.repeats):
            for how in ("whole table", "Store.eids"):
                out = subprocess.run([sys.executable, __file__, "--child", str(root), how],
                                     capture_output=True, text=True, check=True).stdout
                found = json.loads(out.strip().splitlines()[-1])
                seen.add((found["ids"], found["sum"]))
                print(f"| {how} | {found['peak_mb']} MB | {found['seconds']} |", flush=True)
        if len(seen) != 1:
            raise SystemExit(f"the two ways read different ids: {seen}")
        print(f"load {os.getloadavg()[0]:.2f} at the end; the same {seen.pop()[0]:,} ids")


if __name__ == "__main__":
    main()
