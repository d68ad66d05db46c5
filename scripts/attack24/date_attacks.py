"""Attacks on the date carrier: what stripping the ±1-day marks costs, and null trials of the
date reading under truncation and shifts (NULL recipients with the same carriers and fresh
keys, never used for any file: P(bound ≤ α) must stay ≤ α).

World as tests/integration/test_extract_dates.py: N participants, field 53 allow-listed,
no gate (k = 1), nothing withheld; the copy keeps only the date and unmarked categories.
Run: PYTHONPATH=$PWD/src:$PWD /work/main/.venv/bin/python scripts/attack24/date_attacks.py
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

import numpy as np
import polars as pl
from scripts.attack24.world import make

from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.model import EID
from strongroom.extracts import accuse, carriers, codes, linkage, manifest
from strongroom.privacy.gate import GatePolicy

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
NULL = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
DATE = "p53_i0"
CATEGORIES = ["p31", "p52", "p54_i0", "p738_i0", "p1558_i0", "p2178_i0", "p6138_i0_a0",
              "p20116_i0", "p20118", "p21000_i0"]
FIELDS = [31, 48, 52, 53, 54, 738, 1558, 2178, 6138, 20116, 20118, 21000, 21001]

made = make(N, 31, FIELDS, 2, allow=[53], policy=GatePolicy(k=1), withhold=0.0)
ctx = made.world.ctx
ids = made.pseudonyms()
copy = pl.read_csv(made.results[0].path, try_parse_dates=True).filter(
    pl.col(EID).is_in(ids["pid"].implode()))
master_all = made.master()
truth = copy.join(ids.rename({"eid": "m", "pid": EID}), on=EID).join(
    master_all.select(pl.col(EID).cast(pl.Int64).alias("m"), pl.col(DATE).alias("orig")), on="m")
leak = truth.select([DATE, *CATEGORIES, "orig"])
rng = np.random.default_rng(9)
n = leak.height


def days(k: np.ndarray) -> pl.Series:
    return pl.Series(k).cast(pl.Int32).cast(pl.Duration("ms")) if False else pl.Series(
        [int(x) for x in k]).cast(pl.Duration("d"))  # type: ignore[unreachable]


def shift(by: np.ndarray) -> pl.Expr:
    return (pl.col(DATE) + pl.Series(by.astype(np.int64)) * pl.duration(days=1))


variants = {
    "day level (untouched)": pl.col(DATE),
    "+1 day everywhere": shift(np.ones(n)),
    "random ±1 day": shift(rng.choice([-1, 1], n)),
    "random -1/0/+1": shift(rng.integers(-1, 2, n)),
    "uniform ±3 days": shift(rng.integers(-3, 4, n)),
    "uniform ±7 days": shift(rng.integers(-7, 8, n)),
    "month truncation": pl.col(DATE).dt.truncate("1mo"),
    "month truncation +1 day": pl.col(DATE).dt.truncate("1mo") + pl.duration(days=1),
    "month end": pl.col(DATE).dt.month_end(),
    "week truncation": pl.col(DATE).dt.truncate("1w"),
    "2-month truncation": pl.col(DATE).dt.truncate("2mo"),
    "half month-truncated": pl.when(pl.Series(rng.random(n) < 0.5)).then(
        pl.col(DATE).dt.truncate("1mo")).otherwise(pl.col(DATE)),
    **{f"{int(100 * f)}% month-truncated": pl.when(pl.Series(rng.random(n) < f)).then(
        pl.col(DATE).dt.truncate("1mo")).otherwise(pl.col(DATE))
       for f in (0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.85)},
}
ONLY = sys.argv[3].split(",") if len(sys.argv) > 3 else None
if ONLY:
    variants = {k: v for k, v in variants.items() if any(o in k for o in ONLY)}

with ctx.transaction() as db:
    records = [manifest.get(db, r.extract_id) for r in made.results]
recipients = manifest.recipients(ctx.key, records)
all_carriers = sorted({c for m in records for c in manifest.carriers_of(m)},
                      key=lambda c: (c.column, c.amplitude, c.low, c.high))
fresh = MasterKey(os.urandom(32))
nulls = [dataclasses.replace(recipients[1], extract_id=f"null{i}",
                             key=codes.recipient_key(fresh, f"null{i}")) for i in range(NULL)]
master = master_all.select([EID, *[c for c in master_all.columns if c in {DATE, *CATEGORIES}]]
                           ).with_columns(pl.col(EID).cast(pl.Int64))
orig_days = carriers.as_numbers(leak["orig"])
sd = float(np.nanstd(orig_days))
print(f"rows {n}, date SD {sd:.0f} days, {NULL} null recipients")
for name, expr in variants.items():
    frame = leak.with_columns(expr.alias(DATE))
    moved = carriers.as_numbers(frame[DATE]) - orig_days
    suspect = frame.drop("orig")
    linked = linkage.link(suspect, master, ctx.dictionary,
                          marked={c.column for c in all_carriers})
    marks, scores = accuse.judge(linked.eids, dict(linked.values), master, all_carriers,
                                 [*recipients, *nulls], codes.bias_key(ctx.key))
    by = {s.extract_id: s for s in scores}
    g, i = by[recipients[0].extract_id], by[recipients[1].extract_id]
    own = np.array([min(by[r.extract_id].kind_log_p[:2]) for r in nulls])
    rate = {a: float(np.mean(own <= math.log(a))) / a for a in (0.1, 0.01, 1e-3)}
    model = marks.models.get(DATE)
    print(f"{name:24s} linked={linked.rows_linked:5d} read={model.calendar or model.grid if model else '-'}"
          f" Σw²={model.informative if model else 0:7.1f} guilty ln p={min(g.kind_log_p[:2]):8.1f}"
          f" named={g.accused} innocent ln p={min(i.kind_log_p[:2]):6.2f} | null P(p≤α)/α "
          + " ".join(f"{a:g}:{r:.2f}" for a, r in rate.items())
          + f" | date moved: mean {np.nanmean(moved):+.2f} d, rms {np.sqrt(np.nanmean(moved ** 2)):.1f} d"
          f" ({np.sqrt(np.nanmean(moved ** 2)) / sd:.4f} SD)")
