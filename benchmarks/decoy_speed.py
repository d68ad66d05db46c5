"""The CPU of making decoys (each record-level extract makes a set).

    python benchmarks/decoy_speed.py

A 5,000-participant synthetic cohort as the extract's real rows (nine participant-table
columns), then ``make_decoys`` of 200 decoys for each of six seeds in one process. Prints the
process's CPU (user + system) and wall for the six, the load, and writes the decoys' values
(without their pseudonyms, which are fresh each time) to ``--save`` so that two versions of the
code can be compared value for value:

    PYTHONPATH=/tmp/before/src python benchmarks/decoy_speed.py --save /tmp/before.parquet
    python benchmarks/decoy_speed.py --save /tmp/after.parquet --compare /tmp/before.parquet

(``git archive <commit> src | tar -x -C /tmp/before`` makes the earlier code.)
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import polars as pl

from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.synth import synthesise
from strongroom.extracts.decoys import make_decoys

COLUMNS = ("eid", "p31", "p34", "p21001_i0", "p4080_i0_a0", "p50_i0", "p21000_i0", "p54_i0",
           "p20116_i0", "p1558_i0")


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--save", type=Path, help="write the decoys' values here (Parquet)")
    parser.add_argument("--compare", type=Path, help="a --save of another version: equal?")
    args = parser.parse_args()
    dictionary = shipped_dictionary()
    real = synthesise(5_000, 3, dictionary).participants
    frame = real.select([c for c in COLUMNS if c in real.columns])
    load = os.getloadavg()[0]
    cpu, wall = _cpu(), time.perf_counter()
    made = [make_decoys(frame, dictionary, count=200, seed=seed).rows.drop("eid")
            for seed in range(args.seeds)]
    print(f"{args.seeds} decoy sets of 200 ({frame.width - 1} columns): CPU "
          f"{_cpu() - cpu:.2f} s, wall {time.perf_counter() - wall:.2f} s (load before "
          f"{load:.1f}, {os.cpu_count()} cores)")
    values = pl.concat(made)
    if args.save:
        values.write_parquet(args.save)
    if args.compare:
        print("the same values as", args.compare, values.equals(pl.read_parquet(args.compare)))


if __name__ == "__main__":
    main()
