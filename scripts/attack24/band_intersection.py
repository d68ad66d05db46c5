"""Attack: two extracts of the same project (same pseudonyms), banded from different keyed
origins, joined on the pseudonym: intersecting their bands narrows year of birth below what
the risk gate released, and the pooled file no longer meets k.

Before keyed origins every extract of a project banded from 0: the same bands every time.
Run: PYTHONPATH=$PWD/src:$PWD /work/main/.venv/bin/python scripts/attack24/band_intersection.py
"""

from __future__ import annotations

import sys

import polars as pl
from scripts.attack24.world import make

from strongroom.cohort.model import EID
from strongroom.privacy.risk import assess

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 4
FIELDS = [int(f) for f in sys.argv[3].split(",")] if len(sys.argv) > 3 else [31, 34, 52, 54, 30690]
QI = ["p31", "p34", "p52", "p54_i0", "p21000_i0"]

made = make(N, 41, FIELDS, COUNT)
copies = [made.copy(i) for i in range(COUNT)]
origins = [next((b.origin(made.key(i)) for b in made.banded(i) if b.field_id == 34), None)
           for i in range(COUNT)]
print("origins of year of birth:", origins)
print("levels:", [r.risk.get("generalisation") for r in made.results])
qis = [c for c in QI if c in copies[0].columns]
single = assess(copies[0].select(qis), qis, threshold_k=5)
print(f"one copy: k={single.k}, rows below 5: {single.records_below_threshold}, "
      f"uniques {single.sample_uniques}")


def bounds(label: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    parts = label.str.split("–")
    return (parts.list.first().cast(pl.Int64, strict=False).fill_null(-10**6),
            parts.list.last().cast(pl.Int64, strict=False).fill_null(10**6))


joined = copies[0].select([EID, *qis])
low, high = bounds(pl.col("p34"))
joined = joined.with_columns(low.alias("lo"), high.alias("hi"))
for i, other in enumerate(copies[1:], 1):
    o = other.select([EID, pl.col("p34").alias(f"y{i}")])
    lo, hi = bounds(pl.col(f"y{i}"))
    joined = (joined.join(o, on=EID, how="inner")
              .with_columns(pl.max_horizontal("lo", lo).alias("lo"),
                            pl.min_horizontal("hi", hi).alias("hi")).drop(f"y{i}"))
joined = joined.with_columns((pl.col("lo").cast(pl.String) + "–" + pl.col("hi").cast(pl.String))
                             .alias("p34"))
width = (joined["hi"] - joined["lo"] + 1)
print("pooled rows:", joined.height, "year-of-birth interval widths:",
      width.value_counts().sort("hi").rows())
master = made.master().select(pl.col(EID).cast(pl.Int64).alias("eid_m"), pl.col("p34").alias("yob"))
ids = made.pseudonyms().rename({"eid": "eid_m", "pid": EID})
truth = joined.join(ids, on=EID).join(master, on="eid_m")
inside = ((truth["yob"] >= truth["lo"]) & (truth["yob"] <= truth["hi"])).mean()
print(f"true year inside the pooled interval: {inside:.3f}")
pooled = assess(joined.select(qis), qis, threshold_k=5)
print(f"pooled copies: k={pooled.k}, rows below 5: {pooled.records_below_threshold}, "
      f"uniques {pooled.sample_uniques}")

# baseline: the same copies (same widths, same suppressed rows) had every band started at 0
# (as before keyed origins): what pooling gave then
trueyear = truth.select(EID, "yob")
base = copies[0].select([EID, *qis]).join(trueyear, on=EID)
lo0, hi0 = pl.lit(-10**6), pl.lit(10**6)
base = base.with_columns(lo0.alias("lo"), hi0.alias("hi"))
for i, c in enumerate(copies):
    w = c.select([EID, pl.col("p34").alias("lab")]).join(trueyear, on=EID)
    lo, hi = bounds(pl.col("lab"))
    width_i = (w.select((hi - lo + 1).alias("w")).filter(pl.col("w") < 100)["w"].mode()[0])
    w = w.with_columns(
        pl.when(pl.col("lab") == "*").then(-10**6)
        .otherwise((pl.col("yob") // width_i) * width_i).alias(f"l{i}"))
    w = w.with_columns(pl.when(pl.col("lab") == "*").then(10**6)
                       .otherwise(pl.col(f"l{i}") + width_i - 1).alias(f"h{i}"))
    base = (base.join(w.select(EID, f"l{i}", f"h{i}"), on=EID)
            .with_columns(pl.max_horizontal("lo", f"l{i}").alias("lo"),
                          pl.min_horizontal("hi", f"h{i}").alias("hi")))
base = base.with_columns((pl.col("lo").cast(pl.String) + "–" + pl.col("hi").cast(pl.String))
                         .alias("p34"))
b = assess(base.select(qis), qis, threshold_k=5)
print(f"baseline (every origin 0, same widths): k={b.k}, rows below 5: "
      f"{b.records_below_threshold}, uniques {b.sample_uniques}, widths "
      f"{(base['hi'] - base['lo'] + 1).value_counts().sort('hi').rows()}")
