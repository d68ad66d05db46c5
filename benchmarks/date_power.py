"""How surely the linkage-free date reading names its leaker, over leaks and keys (issue 57)

    python benchmarks/date_power.py [--worlds 2] [--leaks 20] [--rows 2000 3000]

Builds ``tests/integration/test_attribution_dates.py``'s world (50,000 synthetic participants,
three extracts, fresh keys each world) ``--worlds`` times; in each, cuts ``--leaks`` leaks
(``Dates.leak``'s seeds 0, 1, ...) of each size in ``--rows`` from the leaker's copy, reads
each as issued (the day-level date) and truncated to its month, and prints the leaker's ln P
("values") per leak and, per size and reading, the median, mean, SD and worst, with how many
were named (ln P ≤ ln 10⁻⁹ = −20.7). The test module asserts one leak each, with a margin of 10
past naming; this says how often a leak falls short of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration import test_attribution_dates as world_of

READINGS = {"day": lambda frame: frame,
            "month": lambda frame: frame.with_columns(pl.col(world_of.DATE).dt.truncate("1mo"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=2)
    parser.add_argument("--leaks", type=int, default=20)
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000, 3_000])
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    found: dict[tuple[int, str], list[float]] = {}
    for world in range(args.worlds):
        with tempfile.TemporaryDirectory() as root:
            dates = world_of.build_dates(Path(root))
            try:
                for rows in args.rows:
                    for seed in range(args.leaks):
                        leak = dates.leak(dates.leaker, seed, rows=rows)
                        for reading, shape in READINGS.items():
                            report = dates.attribute(shape(leak), "leak.csv")
                            value = world_of._values(report, dates.leaker)
                            found.setdefault((rows, reading), []).append(value)
                            print(f"world {world + 1} rows {rows} leak {seed} {reading}: "
                                  f"ln P {value:.1f}", flush=True)
            finally:
                dates.world.platform.close()
    print("\n| rows | reading | leaks | median | mean | SD | worst | named |")
    print("|---|---|---|---|---|---|---|---|")
    for (rows, reading), values in found.items():
        named = sum(v <= world_of.NAMED for v in values)
        print(f"| {rows:,} | {reading} | {len(values)} | {statistics.median(values):.1f} | "
              f"{statistics.mean(values):.1f} | {statistics.stdev(values):.1f} | "
              f"{max(values):.1f} | {named} of {len(values)} |")


if __name__ == "__main__":
    main()
