"""Null trials of the weighted membership test on real class weights, under a seller's edits.

A real extract (gate on) is reduced to its coarse quasi-identifiers (pseudonyms dropped), then
edited: rows of small classes duplicated, rows crafted to hit every class the copy shows,
foreign rows (another cohort banded alike). Weights come from the real pipeline (linkage,
exact-unique, classes); the test is then run under TRIALS keys never used for any file.
Sound means P(p ≤ α) ≤ α. The guilty extract's own p-value shows what each edit costs it.

Run: PYTHONPATH=$PWD/src:$PWD /work/main/.venv/bin/python scripts/attack24/membership_null.py
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import polars as pl
from scripts.attack24.world import make

from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.model import EID
from strongroom.cohort.synth import synthesise
from strongroom.extracts import classes, codes, evidence, linkage, membership
from strongroom.privacy.gate import GatePolicy

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
TRIALS = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
COARSE = ["p31", "p34", "p52", "p54_i0"]

made = make(N, 47, [31, 34, 52, 54, 30690], 1)
print("levels:", made.results[0].risk.get("generalisation"))
copy = made.copy(0).select(COARSE)
master = made.master().with_columns(pl.col(EID).cast(pl.Int64))
ctx = made.world.ctx
key = made.key(0)

# a foreign cohort released through the same gate the same way (origin 0 and its own levels)
other = synthesise(N, 999).participants.with_columns(pl.col(EID).cast(pl.Int64))
from strongroom.privacy import gate  # noqa: E402

decision = gate.check(other.select([EID, *[c for c in master.columns if c in COARSE]]),
                      ctx.dictionary, COARSE, GatePolicy())
foreign = decision.release(other.select([EID, *COARSE])).select(COARSE) if hasattr(
    decision, "release") else None

rng = np.random.default_rng(5)
small = copy.group_by(COARSE).len().filter(pl.col("len") <= 8)
variants = {
    "copy": copy,
    "small classes x10": pl.concat([copy, *[copy.join(small.drop("len"), on=COARSE)] * 10]),
    "one row per class shown": pl.concat([copy, copy.unique(COARSE)]),
    "half the rows": copy.sample(fraction=0.5, seed=1),
    "rows in small classes dropped": copy.join(small.drop("len"), on=COARSE, how="anti"),
}
if foreign is not None:
    variants["foreign rows added"] = pl.concat([copy, foreign.cast(copy.schema)])


def weights_of(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    linked = linkage.link(frame, master.select([EID, *COARSE]), ctx.dictionary)
    held = np.where(linked.eids >= 0, linked.eids,
                    evidence.exact_unique(linked, master, ctx.dictionary))
    return classes.weights(frame, linked, master, ctx.dictionary, held)


base = MasterKey(os.urandom(32))
keys = {f"null{i}": (codes.recipient_key(base, f"null{i}"), membership.SHARE)
        for i in range(TRIALS)}
for name, frame in variants.items():
    eids, w = weights_of(frame)
    own = membership.weighted_evidence(eids, w, {"guilty": (key, membership.SHARE)})["guilty"]
    null = membership.weighted_evidence(eids, w, keys)
    logs = np.array([v.log_p for v in null.values()])
    rates = {a: float(np.mean(logs <= math.log(a))) for a in (0.1, 0.01, 1e-3)}
    print(f"{name:30s} rows={frame.height:6d} weighted={len(eids):6d} Σw={w.sum():8.1f} "
          f"guilty ln p={own.log_p:8.2f} | null P(p≤α)/α: "
          + " ".join(f"{a:g}:{r / a:.2f}" for a, r in rates.items()))
