"""Attack: truncate a random few percent of the dates to their month (the rest stay at day
level). The calendar is not recognised (< 90% on one day of the month), so linkage fits the
date's error scale as a root-mean-square: the truncated rows (up to 30 days off) inflate it,
the date stops telling people apart, and rows no longer link — every kind of evidence that
needs linked rows is lost with them.

Run: PYTHONPATH=$PWD/src:$PWD /work/main/.venv/bin/python scripts/attack24/mixed_truncation.py
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scripts.attack24.world import make

from strongroom.cohort.model import EID
from strongroom.extracts import linkage
from strongroom.privacy.gate import GatePolicy

DATE = "p53_i0"
CATEGORIES = ["p31", "p52", "p54_i0", "p738_i0", "p1558_i0", "p2178_i0", "p6138_i0_a0",
              "p20116_i0", "p20118", "p21000_i0"]
FIELDS = [31, 48, 52, 53, 54, 738, 1558, 2178, 6138, 20116, 20118, 21000, 21001]
made = make(3000, 31, FIELDS, 1, allow=[53], policy=GatePolicy(k=1), withhold=0.0)
ctx = made.world.ctx
ids = made.pseudonyms()
copy = pl.read_csv(made.results[0].path, try_parse_dates=True).filter(
    pl.col(EID).is_in(ids["pid"].implode()))
master = made.master().with_columns(pl.col(EID).cast(pl.Int64))
rng = np.random.default_rng(9)
for columns in ([DATE, *CATEGORIES], [DATE, *CATEGORIES, "p48_i0"],
                [DATE, *CATEGORIES, "p48_i0", "p21001_i0"]):
    cells = []
    for share in (0.0, 0.05, 0.1, 0.3, 0.6, 1.0):
        pick = pl.Series(rng.random(copy.height) < share)
        leak = copy.select(columns).with_columns(
            pl.when(pick).then(pl.col(DATE).dt.truncate("1mo")).otherwise(pl.col(DATE)))
        linked = linkage.link(leak, master.select([EID, *columns]), ctx.dictionary)
        cells.append(f"{int(100 * share)}%: {linked.rows_linked}")
    print(f"{len(columns) - 1} other columns ({', '.join(columns[len(CATEGORIES) + 1:]) or 'categories only'}):"
          f" rows linked of {copy.height} with a share of dates month-truncated → " + ", ".join(cells))
