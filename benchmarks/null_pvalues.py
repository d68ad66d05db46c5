"""Are the linkage-free readings' p-values p-values, far into the tail? (issue 57)

    python benchmarks/null_pvalues.py [--worlds 1] [--keys 1000000]

Builds ``tests/integration/test_attribution_dates.py``'s world (50,000 synthetic participants,
three extracts of categorical and date columns, fresh keys each world), reads four suspects
from it as that module's null test does (the leaker's 2,000 rows as issued, relabelled and
shifted by 61 days, truncated to months; and 2,000 raw cohort rows), and scores each reading
against ``--keys`` keys made under a master key no extract was ever made under. For each
suspect, prints the share of keys with p ≤ a as a multiple of a (a valid p-value: at most 1
within sampling error) and the least p. The test suite's version of this is
``test_an_unused_keys_p_value_is_a_p_value`` (1,000 keys).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration import test_attribution_dates as world_of

from strongroom.cohort.crypto import MasterKey
from strongroom.extracts import accuse, codes, multiset

LEVELS = (0.2, 0.05, 0.01, 1e-3, 1e-4, 1e-5, 1e-6)
BATCH = 50_000  # keys scored at once (memory: a batch's recipients and scores)


def suspects(dates: world_of.Dates, seed: int) -> dict[str, pl.DataFrame]:
    master = dates.world.platform.store.load(["participants"]).participants
    guilty = dates.leak(dates.leaker, seed)
    raw = master.select(guilty.columns)[
        np.random.default_rng(seed + 1).choice(world_of.N, world_of.ROWS, replace=False)]
    day = pl.col(world_of.DATE)
    return {"guilty": guilty, "raw": raw,
            "labels, shifted": world_of.as_text(guilty, dates).with_columns(
                day + pl.duration(days=61)),
            "months": guilty.with_columns(day.dt.truncate("1mo"))}


def null_log_p(readings: tuple[multiset.Reading, ...], keys: int) -> np.ndarray:
    """ln p of ``keys`` never-used keys on ``readings`` (as ``ValueEvidence.log_p``)."""
    secret = MasterKey(os.urandom(32))
    carriers = frozenset(readings[0].marks.carriers)
    out = []
    for start in range(0, keys, BATCH):
        nulls = [accuse.Recipient(f"null_{i}", codes.recipient_key(secret, f"null_{i}"),
                                  carriers) for i in range(start, min(keys, start + BATCH))]
        found = multiset.ValueEvidence(tuple(multiset.score(r.name, r.marks, nulls)
                                             for r in readings))
        out.append([found.log_p(r.extract_id) for r in nulls])
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=1)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.keys:,} keys each")
    print("| world | suspect | positions | " + " | ".join(f"≤ {a:g}" for a in LEVELS)
          + " | least p |")
    print("|---|---|---|" + "---|" * (len(LEVELS) + 1))
    for world in range(args.worlds):
        with tempfile.TemporaryDirectory() as root:
            dates = world_of.build_dates(Path(root))
            try:
                for name, frame in suspects(dates, 7 + world).items():
                    started = time.perf_counter()
                    report = dates.attribute(frame, "suspect.csv")
                    assert report.values is not None
                    p = np.exp(null_log_p(report.values.readings, args.keys))
                    shares = [f"{np.mean(p <= a) / a:.2f}×" for a in LEVELS]
                    print(f"| {world + 1} | {name} | "
                          f"{'+'.join(str(len(r.marks)) for r in report.values.readings)} | "
                          + " | ".join(shares) + f" | {p.min():.2g} |  "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
            finally:
                dates.world.platform.close()


if __name__ == "__main__":
    main()
