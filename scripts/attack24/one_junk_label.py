"""Attack: one row with a band label of another origin (or width) in the banded column.

read_labels needs every label's start to agree; one junk row gives no origin, so
(1) the band-origin evidence against the guilty extract disappears, and
(2) the class reading falls back to origin 0, the copy's keyed-origin labels are not labels of
any level there, and the column drops out of the classes membership reads.

Run: PYTHONPATH=$PWD/src:$PWD /work/main/.venv/bin/python scripts/attack24/one_junk_label.py
"""

from __future__ import annotations

import polars as pl
from scripts.attack24.world import make

from strongroom.extracts import band_evidence, classes

made = make(3000, 29, [31, 34, 52, 30690], 1)
print("levels:", made.results[0].risk.get("generalisation"))
copy = made.copy(0).select(["p31", "p34", "p52"])
master = made.master()
labels = copy["p34"].drop_nulls()
label = labels.filter(labels != "*")[0]
lo, hi = (int(x) for x in label.split("–"))
junk_origin = f"{lo - 1}–{hi - 1}"  # same width, another origin
junk_width = f"{lo}–{hi + 5}"  # another width
for name, extra in [("copy", None), ("+1 row, other origin", junk_origin),
                    ("+1 row, other width", junk_width)]:
    frame = copy if extra is None else pl.concat(
        [copy, copy.head(1).with_columns(pl.lit(extra).alias("p34"))])
    report = made.attribute(frame, name.replace(" ", "_").replace(",", "") + ".csv")
    ev = report.bands[made.results[0].extract_id]
    found = classes.generalised_columns(frame, master, made.world.ctx.dictionary, {})
    print(f"{name:24s} rows={frame.height} bands considered={ev.considered} matched={ev.matched}"
          f" ln p={ev.log_p:.2f}; class reading uses {[(g.suspect, g.level) for g in found]};"
          f" membership ln p={report.subsets[made.results[0].extract_id].log_p:.2f}")
    print("   reading:", band_evidence.read_labels("p34", frame["p34"]))
