"""Rows of coarse columns matched to classes of participants (extracts/classes.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.model import EID
from strongroom.extracts import classes, linkage

DICTIONARY = shipped_dictionary()


def _master(n: int = 1500) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    start = dt.date(2007, 1, 1)
    return pl.DataFrame({
        EID: np.arange(1_000_000, 1_000_000 + n, dtype=np.int64),
        "p31": rng.integers(0, 2, n),
        "p53_i0": [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 1400, n)],
        "p1558_i0": rng.integers(1, 7, n),
        "p2178_i0": rng.integers(1, 5, n),
    })


def test_a_coarsened_date_is_read_through_its_hierarchy() -> None:
    master = _master()
    quarter = (master["p53_i0"].dt.year().cast(pl.String) + "-Q"
               + master["p53_i0"].dt.quarter().cast(pl.String))
    suspect = pl.DataFrame({"when": quarter[:500], "sex": master["p31"][:500]})
    found = classes.generalised_columns(suspect, master, DICTIONARY, {"sex": "p31"})
    assert [(g.suspect, g.master, g.level) for g in found] == [("when", "p53_i0", "quarter")]
    # a column of something else is not taken for the date
    other = pl.DataFrame({"when": ["red", "blue"] * 250})
    assert classes.generalised_columns(other, master, DICTIONARY, {}) == []


def test_a_few_junk_rows_do_not_remove_a_column_from_the_reading() -> None:
    """A seller who writes junk into one coarse column of a few rows: the column is still
    read (those rows match no class) — at 98%, 3% junk dropped it, and every class with it."""
    master = _master()
    quarter = (master["p53_i0"].dt.year().cast(pl.String) + "-Q"
               + master["p53_i0"].dt.quarter().cast(pl.String))[:500]
    junk = pl.Series("when", ["unknown"] * 25)  # 5% of the rows
    suspect = pl.DataFrame({"when": pl.concat([quarter, junk]),
                            "sex": pl.concat([master["p31"][:500], master["p31"][:25]])})
    found = classes.generalised_columns(suspect, master, DICTIONARY, {"sex": "p31"})
    assert [(g.suspect, g.level) for g in found] == [("when", "quarter")]
    linked = linkage.link(suspect.select("sex"), master.select(EID, "p31"), DICTIONARY)
    held = np.full(suspect.height, -1, dtype=np.int64)
    _, weights = classes.weights(suspect, linked, master, DICTIONARY, held)
    assert weights.sum() <= 500 + 1e-9  # the junk rows weigh nothing


def test_each_row_spreads_one_unit_over_its_class() -> None:
    master = _master()
    rows = master[:300]
    suspect = rows.select(pl.col("p31").alias("sex"), pl.col("p1558_i0").alias("alcohol"),
                          pl.col("p2178_i0").alias("health"))
    linked = linkage.link(suspect, master.drop("p53_i0"), DICTIONARY)
    held = np.full(suspect.height, -1, dtype=np.int64)
    eids, weights = classes.weights(suspect, linked, master.drop("p53_i0"), DICTIONARY, held)
    assert weights.sum() == pytest.approx(suspect.height)  # classes here are all ≤ 64
    assert set(rows[EID].to_list()) <= set(eids.tolist())
    # linked rows weigh 1 for their participant and nothing for anyone else
    held[:10] = rows[EID][:10].to_numpy()
    eids2, weights2 = classes.weights(suspect, linked, master.drop("p53_i0"), DICTIONARY, held)
    assert weights2.sum() == pytest.approx(suspect.height)
    assert dict(zip(eids2.tolist(), weights2.tolist(), strict=True))[int(rows[EID][0])] >= 1.0
