"""One cohort benchmark step in a fresh process, so that its peak memory is its own.

    python benchmarks/cohort.py synth N OUT      synthesise N participants to OUT
    python benchmarks/cohort.py ingest DIR DATA  ingest cohort dir DIR into a new store DATA
    python benchmarks/cohort.py query DATA       grouped count (sex x smoking) over the store

Prints one JSON line: the step's figures, wall seconds and peak RSS in MiB.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from strongroom.cohort.ingest import ingest
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.store import COHORT_DIR, Store, init_store
from strongroom.cohort.synth import synthesise

QUERY = (
    "SELECT p31 AS sex, p20116_i0 AS smoking, count(*) AS n "
    "FROM participants GROUP BY ALL ORDER BY ALL"
)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synth(n: int, out: Path) -> dict[str, float]:
    start = time.perf_counter()
    cohort = synthesise(n, seed=1)
    seconds = time.perf_counter() - start
    rows = {name: frame.height for name, frame in cohort.tables()}
    write_cohort_dir(cohort, out, {"seed": 1, "participants": n})
    return {"seconds": seconds, "peak_mib": peak_mib(), **{f"rows_{k}": v for k, v in rows.items()}}


def ingest_step(source: Path, data: Path) -> dict[str, float]:
    with init_store(data, key_file=data.with_name(data.name + ".key")) as store:
        start = time.perf_counter()
        ingest(store, [source])
        seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in (data / COHORT_DIR).rglob("*") if p.is_file())
    source_size = sum(p.stat().st_size for p in source.iterdir())
    return {"seconds": seconds, "peak_mib": peak_mib(), "store_bytes": size,
            "source_bytes": source_size}


def query(data: Path) -> dict[str, float]:
    with Store.open(data, data.with_name(data.name + ".key")) as store:
        start = time.perf_counter()
        con = store.connect(["participants"])
        load = time.perf_counter() - start
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        con.execute(QUERY).fetchall()
        timings.append(time.perf_counter() - t0)
    timings.sort()
    return {"load_seconds": load, "query_median_seconds": timings[len(timings) // 2],
            "peak_mib": peak_mib()}


def main() -> None:
    step, *args = sys.argv[1:]
    if step == "synth":
        result = synth(int(args[0]), Path(args[1]))
    elif step == "ingest":
        result = ingest_step(Path(args[0]), Path(args[1]))
    elif step == "query":
        result = query(Path(args[0]))
    else:
        raise SystemExit(f"unknown step {step!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
